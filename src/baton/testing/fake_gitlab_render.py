"""The fake GitLab's REST shapes (:class:`Render`): users, members, tokens, projects, issues, merge
requests, notes, discussions, diffs, pipelines, jobs and approvals, written as GitLab's REST API v4
writes them to a maintainer of a project in a group (the fields its documentation shows, ``null`` where
it sends ``null``). The tests check every one against GitLab's published types (``tests/support/
gitlab_spec.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from baton.testing.fake_gitlab_state import (
    Discussion,
    Issue,
    Job,
    MergeRequest,
    Note,
    Pipeline,
    Project,
    Token,
    User,
    iso,
)

SHARED_RUNNER = {
    "id": 1,
    "description": "fake-shared-runner",
    "ip_address": "127.0.0.1",
    "active": True,
    "paused": False,
    "is_shared": True,
    "runner_type": "instance_type",
    "name": "gitlab-runner",
    "online": True,
    "status": "online",
    "tags": ["docker"],
}
_TIME_STATS = {"time_estimate": 0, "total_time_spent": 0, "human_time_estimate": None, "human_total_time_spent": None}
_DETAILED = {  # a pipeline's detailed_status per status: (icon, text, label, group)
    "success": ("status_success", "Passed", "passed", "success"),
    "failed": ("status_failed", "Failed", "failed", "failed"),
    "running": ("status_running", "Running", "running", "running"),
    "pending": ("status_pending", "Pending", "pending", "pending"),
    "canceled": ("status_canceled", "Canceled", "canceled", "canceled"),
    "skipped": ("status_skipped", "Skipped", "skipped", "skipped"),
    "created": ("status_created", "Created", "created", "created"),
    "manual": ("status_manual", "Manual", "manual action", "manual"),
}


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
                "name_regex": ".*",
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

    # -- issues and merge requests -------------------------------------------------------------------------

    def _refs(self, project: Project, sign: str, iid: int) -> dict[str, str]:
        return {"short": f"{sign}{iid}", "relative": f"{sign}{iid}", "full": f"{project.path}{sign}{iid}"}

    def _notes_count(self, project: Project, ids: list[str]) -> int:
        notes = (project.notes[n] for d in ids for n in project.discussions[d].notes)
        return sum(1 for n in notes if not n.system)

    def issue(self, project: Project, issue: Issue) -> dict[str, Any]:
        api = f"{self.web}/api/v4/projects/{project.id}"
        assignees = [self.user_basic(a) for a in issue.assignees]
        return {
            "id": issue.id,
            "iid": issue.iid,
            "project_id": project.id,
            "title": issue.title,
            "description": issue.description,
            "state": issue.state,
            "created_at": iso(issue.created_at),
            "updated_at": iso(issue.updated_at),
            "closed_at": None if issue.closed_at is None else iso(issue.closed_at),
            "closed_by": None if issue.closed_by is None else self.user_basic(issue.closed_by),
            "labels": list(issue.labels),
            "milestone": None,
            "assignees": assignees,
            "author": self.user_basic(issue.author),
            "type": "ISSUE",
            "assignee": assignees[0] if assignees else None,
            "user_notes_count": self._notes_count(project, issue.discussions),
            "merge_requests_count": 0,
            "upvotes": 0,
            "downvotes": 0,
            "due_date": None,
            "confidential": False,
            "discussion_locked": None,
            "issue_type": "issue",
            "web_url": f"{self.web}/{project.path}/-/issues/{issue.iid}",
            "time_stats": dict(_TIME_STATS),
            "task_completion_status": {"count": 0, "completed_count": 0},
            "has_tasks": False,
            "task_status": "0 of 0 checklist items completed",
            "_links": {
                "self": f"{api}/issues/{issue.iid}",
                "notes": f"{api}/issues/{issue.iid}/notes",
                "award_emoji": f"{api}/issues/{issue.iid}/award_emoji",
                "project": api,
                "closed_as_duplicate_of": None,
            },
            "references": self._refs(project, "#", issue.iid),
            "severity": "UNKNOWN",
            "subscribed": True,
            "moved_to_id": None,
            "imported": False,
            "imported_from": "none",
            "service_desk_reply_to": None,
        }

    def mr(self, project: Project, mr: MergeRequest, *, expanded: bool, viewer_level: int = 0) -> dict[str, Any]:
        """A merge request: the list's form, or (``expanded``) the single one's, with ``diff_refs``."""
        merge_status, detailed, conflicts = self.mergeability(project, mr)
        assignees = [self.user_basic(a) for a in mr.assignees]
        body: dict[str, Any] = {
            "id": mr.id,
            "iid": mr.iid,
            "project_id": project.id,
            "title": mr.title,
            "description": mr.description,
            "state": mr.state,
            "created_at": iso(mr.created_at),
            "updated_at": iso(mr.updated_at),
            "merged_by": None if mr.merged_by is None else self.user_basic(mr.merged_by),
            "merge_user": None if mr.merged_by is None else self.user_basic(mr.merged_by),
            "merged_at": None if mr.merged_at is None else iso(mr.merged_at),
            "merge_after": None,
            "closed_by": None if mr.closed_by is None else self.user_basic(mr.closed_by),
            "closed_at": None if mr.closed_at is None else iso(mr.closed_at),
            "target_branch": mr.target_branch,
            "source_branch": mr.source_branch,
            "user_notes_count": self._notes_count(project, mr.discussions),
            "upvotes": 0,
            "downvotes": 0,
            "author": self.user_basic(mr.author),
            "assignees": assignees,
            "assignee": assignees[0] if assignees else None,
            "reviewers": [self.user_basic(r) for r in mr.reviewers],
            "source_project_id": project.id if mr.source_project is None else self.project_id(mr.source_project),
            "target_project_id": project.id,
            "labels": list(mr.labels),
            "draft": mr.draft,
            "imported": False,
            "imported_from": "none",
            "work_in_progress": mr.draft,
            "milestone": None,
            "merge_when_pipeline_succeeds": mr.auto_merge,
            "merge_status": merge_status,
            "detailed_merge_status": detailed,
            "sha": self.mr_sha(project, mr),
            "merge_commit_sha": mr.merge_commit_sha,
            "squash_commit_sha": None,
            "discussion_locked": None,
            "should_remove_source_branch": None,
            "force_remove_source_branch": mr.remove_source_branch,
            "prepared_at": iso(mr.created_at),
            "reference": f"!{mr.iid}",
            "references": self._refs(project, "!", mr.iid),
            "web_url": f"{self.web}/{project.path}/-/merge_requests/{mr.iid}",
            "time_stats": dict(_TIME_STATS),
            "squash": False,
            "squash_on_merge": False,
            "task_completion_status": {"count": 0, "completed_count": 0},
            "has_conflicts": conflicts,
            "blocking_discussions_resolved": self.discussions_resolved(project, mr),
            "approvals_before_merge": None,
        }
        if expanded:
            body.update(self._expanded(project, mr, viewer_level))
        return body

    def discussions_resolved(self, project: Project, mr: MergeRequest) -> bool:
        notes = (project.notes[d.notes[0]] for d in map(project.discussions.__getitem__, mr.discussions))
        return all(n.resolved for n in notes if n.resolvable)

    def _expanded(self, project: Project, mr: MergeRequest, viewer_level: int) -> dict[str, Any]:
        sha = self.mr_sha(project, mr)
        pipelines = sorted((p for p in project.pipelines.values() if p.sha == sha), key=lambda p: -p.id)
        head = pipelines[0] if pipelines else None
        return {
            "subscribed": True,
            "changes_count": str(len(self.changed_paths(project, mr))),
            "latest_build_started_at": None if head is None or head.started_at is None else iso(head.started_at),
            "latest_build_finished_at": (
                None if head is None or head.finished_at is None else iso(head.finished_at)
            ),
            "first_deployed_to_production_at": None,
            "pipeline": None if head is None else self.pipeline(project, head),
            "head_pipeline": None if head is None else self.pipeline_expanded(project, head),
            "diff_refs": self.diff_refs(project, mr),
            "merge_error": None,
            "first_contribution": False,
            "user": {"can_merge": viewer_level >= 40},
        }

    def changed_paths(self, project: Project, mr: MergeRequest) -> list[str]:
        refs = self.diff_refs(project, mr)
        names = project.repo.git("diff", "--name-only", refs["base_sha"], refs["head_sha"], check=False)
        return [n for n in names.splitlines() if n]

    def approvals(self, project: Project, mr: MergeRequest) -> dict[str, Any]:
        left = max(0, mr.approvals_required - len(mr.approved_by))
        merge_status, _, _ = self.mergeability(project, mr)
        return {
            "id": mr.id,
            "iid": mr.iid,
            "project_id": project.id,
            "title": mr.title,
            "description": mr.description,
            "state": mr.state,
            "created_at": iso(mr.created_at),
            "updated_at": iso(mr.updated_at),
            "merge_status": merge_status,
            "approved": left == 0 if mr.approvals_required else bool(mr.approved_by),
            "approvals_required": mr.approvals_required,
            "approvals_left": left,
            "require_password_to_approve": False,
            "approved_by": [{"user": self.user_basic(u)} for u in mr.approved_by],
            "suggested_approvers": [],
            "approvers": [],
            "approver_groups": [],
            "user_has_approved": False,
            "user_can_approve": True,
            "approval_rules_left": [],
            "has_approval_rules": mr.approvals_required > 0,
            "merge_request_approvers_available": False,
            "multiple_approval_rules_available": False,
            "invalid_approvers_rules": [],
        }

    # -- notes and discussions ---------------------------------------------------------------------------

    def note(self, project: Project, note: Note) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": note.id,
            "type": note.type,
            "body": note.body,
            "attachment": None,
            "author": self.user_basic(note.author),
            "created_at": iso(note.created_at),
            "updated_at": iso(note.updated_at),
            "system": note.system,
            "noteable_id": note.noteable_id,
            "noteable_type": note.noteable_type,
            "project_id": project.id,
            "resolvable": note.resolvable,
            "confidential": False,
            "internal": False,
            "imported": False,
            "imported_from": "none",
            "noteable_iid": note.noteable_iid,
            "commands_changes": {},
        }
        if note.resolvable:
            body["resolved"] = note.resolved
            body["resolved_by"] = None if note.resolved_by is None else self.user_basic(note.resolved_by)
            body["resolved_at"] = None if note.resolved_at is None else iso(note.resolved_at)
        if note.position is not None:
            body["position"] = dict(note.position)
        return body

    def discussion(self, project: Project, discussion: Discussion) -> dict[str, Any]:
        return {
            "id": discussion.id,
            "individual_note": discussion.individual_note,
            "notes": [self.note(project, project.notes[n]) for n in discussion.notes],
        }

    # -- pipelines and jobs -------------------------------------------------------------------------------

    def pipeline(self, project: Project, pipeline: Pipeline) -> dict[str, Any]:
        return {
            "id": pipeline.id,
            "iid": pipeline.iid,
            "project_id": project.id,
            "sha": pipeline.sha,
            "ref": pipeline.ref,
            "status": pipeline.status,
            "source": pipeline.source,
            "created_at": iso(pipeline.created_at),
            "updated_at": iso(pipeline.updated_at),
            "web_url": f"{self.web}/{project.path}/-/pipelines/{pipeline.id}",
        }

    def detailed_status(self, project: Project, pipeline: Pipeline) -> dict[str, Any]:
        icon, text, label, group = _DETAILED.get(pipeline.status, _DETAILED["created"])
        path = f"/{project.path}/-/pipelines/{pipeline.id}"
        return {
            "icon": icon,
            "text": text,
            "label": label,
            "group": group,
            "tooltip": label,
            "has_details": True,
            "details_path": path,
            "illustration": None,
            "favicon": f"/assets/ci_favicons/favicon_{icon}.png",
        }

    def pipeline_expanded(self, project: Project, pipeline: Pipeline) -> dict[str, Any]:
        started, finished = pipeline.started_at, pipeline.finished_at
        return {
            **self.pipeline(project, pipeline),
            "name": None,
            "before_sha": pipeline.before_sha,
            "tag": False,
            "yaml_errors": None,
            "user": self.user_basic(pipeline.user),
            "started_at": None if started is None else iso(started),
            "finished_at": None if finished is None else iso(finished),
            "committed_at": None,
            "duration": None if started is None or finished is None else int(finished - started),
            "queued_duration": None,
            "coverage": None,
            "detailed_status": self.detailed_status(project, pipeline),
            "archived": False,
        }

    def job(self, project: Project, job: Job) -> dict[str, Any]:
        pipeline = project.pipelines[job.pipeline_id]
        commit = project.repo.git("log", "-1", "--format=%s%x00%an%x00%ae%x00%cI%x00%B", pipeline.sha, check=False)
        title, author, email, when, message = (commit.split("\x00") + [""] * 5)[:5]
        started, finished = job.started_at, job.finished_at
        body: dict[str, Any] = {
            "id": job.id,
            "status": job.status,
            "stage": job.stage,
            "name": job.name,
            "ref": pipeline.ref,
            "tag": False,
            "coverage": None,
            "allow_failure": job.allow_failure,
            "created_at": iso(job.created_at),
            "started_at": None if started is None else iso(started),
            "finished_at": None if finished is None else iso(finished),
            "erased_at": None,
            "duration": None if started is None or finished is None else finished - started,
            "queued_duration": 0.5,
            "user": self.user_public(pipeline.user),
            "commit": {
                "id": pipeline.sha,
                "short_id": pipeline.sha[:8],
                "created_at": when,
                "parent_ids": [],
                "title": title,
                "message": message,
                "author_name": author,
                "author_email": email,
                "authored_date": when,
                "committer_name": author,
                "committer_email": email,
                "committed_date": when,
                "trailers": {},
                "extended_trailers": {},
                "web_url": f"{self.web}/{project.path}/-/commit/{pipeline.sha}",
            },
            "pipeline": self.pipeline(project, pipeline),
            "web_url": f"{self.web}/{project.path}/-/jobs/{job.id}",
            "project": {"ci_job_token_scope_enabled": False},
            "artifacts": [],
            "runner": SHARED_RUNNER if started is not None else None,
            "runner_manager": None,
            "artifacts_expire_at": None,
            "archived": False,
            "tag_list": [],
        }
        if job.status == "failed":
            body["failure_reason"] = job.failure_reason or "script_failure"
        return body
