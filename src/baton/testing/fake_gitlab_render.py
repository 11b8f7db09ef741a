"""The fake GitLab's REST shapes of users, members, tokens and projects (:class:`Render`), written as
GitLab's REST API v4 writes them to a maintainer of a project in a group (the fields its documentation
shows, ``null`` where it sends ``null``); issues, merge requests and the rest are
:mod:`fake_gitlab_render_threads`'. The tests check each against GitLab's published types.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from baton.testing.fake_gitlab_state import (
    Hook,
    MergeRequest,
    Project,
    Token,
    User,
    iso,
)


class Render:
    """GitLab's REST shapes of the fake's state; ``web_url`` is read when a shape is made (the server's
    port is known once it listens), ``user`` finds a user by name, ``mergeability`` an MR's merge
    status, ``diff_refs`` its base, head and start, ``mr_sha`` its head, ``project_id`` a project's id
    by its path (a fork's)."""

    def __init__(
        self,
        web_url: Callable[[], str],
        user: Callable[[str], User],
        mergeability: Callable[[Project, MergeRequest], tuple[str, str, bool]],
        diff_refs: Callable[[Project, MergeRequest], dict[str, str]],
        mr_sha: Callable[[Project, MergeRequest], str],
        project_id: Callable[[str], int],
    ) -> None:
        self._web, self.user, self.project_id = web_url, user, project_id
        self.mergeability, self.diff_refs, self.mr_sha = mergeability, diff_refs, mr_sha

    @property
    def web(self) -> str:
        return self._web()

    # -- users ------------------------------------------------------------------------------------------

    def avatar(self, user: User) -> str:
        digest = hashlib.sha256(user.email.encode()).hexdigest()
        return f"https://www.gravatar.com/avatar/{digest}?s=80&d=identicon"

    def user_basic(self, name: str) -> dict[str, Any]:
        """The user an issue, note or MR names (GitLab's ``UserBasic`` without ``locked``)."""
        user = self.user(name)
        return {
            "id": user.id,
            "username": user.username,
            "name": user.name,
            "state": user.state,
            "avatar_url": self.avatar(user),
            "web_url": f"{self.web}/{user.username}",
        }

    def user_public(self, name: str) -> dict[str, Any]:
        """``GET /users/:id``'s user (also a job's ``user``)."""
        user = self.user(name)
        return {
            **self.user_basic(name),
            "locked": False,
            "created_at": iso(user.created_at),
            "bio": "",
            "location": "",
            "public_email": None,
            "skype": "",
            "linkedin": "",
            "twitter": "",
            "discord": "",
            "website_url": "",
            "organization": "",
            "job_title": "",
            "pronouns": None,
            "bot": user.bot,
            "work_information": None,
            "followers": 0,
            "following": 0,
            "is_followed": False,
            "local_time": None,
        }

    def user_self(self, name: str) -> dict[str, Any]:
        """``GET /user``: the token's own user, with what only its owner sees."""
        user = self.user(name)
        return {
            **self.user_public(name),
            "last_sign_in_at": iso(user.created_at),
            "confirmed_at": iso(user.created_at),
            "last_activity_on": iso(user.created_at)[:10],
            "email": user.email,
            "theme_id": 1,
            "color_scheme_id": 1,
            "projects_limit": 100000,
            "current_sign_in_at": None,
            "identities": [],
            "can_create_group": not user.bot,
            "can_create_project": not user.bot,
            "two_factor_enabled": False,
            "external": False,
            "private_profile": None,
            "commit_email": user.email,
            "is_admin": False,
            "note": None,
            "namespace_id": user.id,
            "created_by": None,
        }

    def user_listed(self, name: str) -> dict[str, Any]:
        """``GET /users?username=``'s entry, as a user who is not an administrator sees it."""
        return {**self.user_basic(name), "locked": False}

    def member(self, project: Project, name: str, level: int) -> dict[str, Any]:
        user = self.user(name)
        return {
            **self.user_basic(name),
            "locked": False,
            "access_level": level,
            "created_at": iso(max(project.created_at, user.created_at)),
            "expires_at": None,
            "membership_state": "active",
        }

    def token(self, token: Token, now: float) -> dict[str, Any]:
        return {
            "id": token.id,
            "name": token.name,
            "description": None,
            "revoked": token.revoked,
            "created_at": iso(token.created_at),
            "scopes": list(token.scopes),
            "user_id": self.user(token.username).id,
            "last_used_at": None if token.last_used_at is None else iso(token.last_used_at),
            "active": token.active(now),
            "expires_at": None if token.expires_at is None else iso(token.expires_at)[:10],
        }

    # -- projects ---------------------------------------------------------------------------------------

    def namespace(self, project: Project) -> dict[str, Any]:
        group = project.namespace
        return {
            "id": 1000 + len(group),
            "name": group.rpartition("/")[2],
            "path": group.rpartition("/")[2],
            "kind": "group",
            "full_path": group,
            "parent_id": None,
            "avatar_url": None,
            "web_url": f"{self.web}/groups/{group}",
        }

    def project(self, project: Project, level: int | None, now: float) -> dict[str, Any]:
        web = f"{self.web}/{project.path}"
        created, activity = iso(project.created_at), iso(now)
        return {
            "id": project.id,
            "description": project.description,
            "description_html": f"<p>{project.description}</p>" if project.description else "",
            "name": project.name,
            "name_with_namespace": project.path.replace("/", " / "),
            "path": project.name,
            "path_with_namespace": project.path,
            "created_at": created,
            "updated_at": activity,
            "default_branch": project.default_branch,
            "tag_list": [],
            "topics": [],
            "ssh_url_to_repo": f"git@127.0.0.1:{project.path}.git",
            "http_url_to_repo": f"{web}.git",
            "web_url": web,
            "readme_url": f"{web}/-/blob/{project.default_branch}/README.md",
            "forks_count": 0,
            "avatar_url": None,
            "star_count": 0,
            "last_activity_at": activity,
            "namespace": self.namespace(project),
            "container_registry_image_prefix": f"registry.example.invalid/{project.path}",
            "_links": {
                "self": f"{self.web}/api/v4/projects/{project.id}",
                "issues": f"{self.web}/api/v4/projects/{project.id}/issues",
                "merge_requests": f"{self.web}/api/v4/projects/{project.id}/merge_requests",
                "repo_branches": f"{self.web}/api/v4/projects/{project.id}/repository/branches",
                "labels": f"{self.web}/api/v4/projects/{project.id}/labels",
                "events": f"{self.web}/api/v4/projects/{project.id}/events",
                "members": f"{self.web}/api/v4/projects/{project.id}/members",
                "cluster_agents": f"{self.web}/api/v4/projects/{project.id}/cluster_agents",
            },
            "packages_enabled": True,
            "empty_repo": False,
            "archived": False,
            "visibility": project.visibility,
            "resolve_outdated_diff_discussions": False,
            "container_expiration_policy": {
                "cadence": "1d",
                "enabled": False,
                "keep_n": 10,
                "older_than": "90d",
                "name_regex_keep": None,
                "name_regex_delete": None,
                "next_run_at": created,
            },
            "repository_object_format": "sha1",
            "issues_enabled": True,
            "merge_requests_enabled": True,
            "wiki_enabled": True,
            "jobs_enabled": True,
            "snippets_enabled": True,
            "container_registry_enabled": True,
            "service_desk_enabled": False,
            "service_desk_address": None,
            "can_create_merge_request_in": level is not None and level >= 30,
            "issues_access_level": "enabled",
            "repository_access_level": "enabled",
            "merge_requests_access_level": "enabled",
            "forking_access_level": "enabled",
            "wiki_access_level": "enabled",
            "builds_access_level": "enabled",
            "snippets_access_level": "enabled",
            "pages_access_level": "private",
            "analytics_access_level": "enabled",
            "container_registry_access_level": "enabled",
            "security_and_compliance_access_level": "private",
            "releases_access_level": "enabled",
            "environments_access_level": "enabled",
            "feature_flags_access_level": "enabled",
            "infrastructure_access_level": "enabled",
            "monitor_access_level": "enabled",
            "model_experiments_access_level": "enabled",
            "model_registry_access_level": "enabled",
            "emails_disabled": False,
            "emails_enabled": True,
            "shared_runners_enabled": True,
            "lfs_enabled": True,
            "creator_id": self.user(project.namespace.partition("/")[0]).id,
            "external_authorization_classification_label": None,
            "import_url": None,
            "import_type": None,
            "import_status": "none",
            "import_error": None,
            "open_issues_count": sum(1 for i in project.issues.values() if i.state == "opened"),
            "description_markdown": project.description,
            "updated_by_id": None,
            "ci_default_git_depth": 20,
            "ci_delete_pipelines_in_seconds": None,
            "ci_forward_deployment_enabled": True,
            "ci_forward_deployment_rollback_allowed": True,
            "ci_job_token_scope_enabled": False,
            "ci_separated_caches": True,
            "ci_allow_fork_pipelines_to_run_in_parent_project": True,
            "ci_id_token_sub_claim_components": ["project_path", "ref_type", "ref"],
            "build_git_strategy": "fetch",
            "keep_latest_artifact": True,
            "restrict_user_defined_variables": True,
            "ci_pipeline_variables_minimum_override_role": "developer",
            "runner_token_expiration_interval": None,
            "group_runners_enabled": True,
            "auto_cancel_pending_pipelines": "enabled",
            "build_timeout": 3600,
            "auto_devops_enabled": False,
            "auto_devops_deploy_strategy": "continuous",
            "ci_push_repository_for_job_token_allowed": False,
            "ci_config_path": "",
            "public_jobs": True,
            "shared_with_groups": [],
            "only_allow_merge_if_pipeline_succeeds": project.only_allow_merge_if_pipeline_succeeds,
            "allow_merge_on_skipped_pipeline": None,
            "request_access_enabled": True,
            "only_allow_merge_if_all_discussions_are_resolved": (
                project.only_allow_merge_if_all_discussions_are_resolved
            ),
            "remove_source_branch_after_merge": True,
            "printing_merge_request_link_enabled": True,
            "printing_merge_requests_link_enabled": True,
            "merge_method": "merge",
            "merge_request_title_regex": None,
            "squash_option": "default_off",
            "enforce_auth_checks_on_uploads": True,
            "suggestion_commit_message": None,
            "merge_commit_template": None,
            "squash_commit_template": None,
            "issue_branch_template": None,
            "warn_about_potentially_unwanted_characters": True,
            "autoclose_referenced_issues": True,
            "max_artifacts_size": None,
            "marked_for_deletion_at": None,
            "marked_for_deletion_on": None,
            "compliance_frameworks": [],
            "ci_restrict_pipeline_cancellation_role": "developer",
            "permissions": {
                "project_access": None if level is None else {"access_level": level, "notification_level": 3},
                "group_access": None,
            },
        }

    def hook(self, project: Project, hook: Hook, now: float) -> dict[str, Any]:
        """A project hook as the hooks API shows it to a Maintainer (never its token)."""
        events = {
            f"{name}_events": name in hook.events for name in ("push", "issues", "merge_requests", "note")
        }
        return {
            "id": hook.id,
            "url": hook.url,
            "name": "",
            "description": "",
            "project_id": project.id,
            "created_at": iso(project.created_at),
            **events,
            "push_events_branch_filter": "",
            "branch_filter_strategy": "wildcard",
            "tag_push_events": False,
            "confidential_issues_events": "issues" in hook.events,
            "confidential_note_events": "note" in hook.events,
            "job_events": "job" in hook.events,
            "pipeline_events": "pipeline" in hook.events,
            "wiki_page_events": False,
            "deployment_events": False,
            "feature_flag_events": False,
            "releases_events": False,
            "emoji_events": False,
            "resource_access_token_events": False,
            "repository_update_events": False,
            "enable_ssl_verification": True,
            "alert_status": "executable",
            "disabled_until": None,
            "url_variables": [],
            "custom_webhook_template": "",
            "custom_headers": [],
        }
