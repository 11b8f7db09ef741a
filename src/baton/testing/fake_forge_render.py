"""The fake forge's state as GitHub's JSON: REST response bodies and webhook payloads.

Nothing here is a hand-written shape. Every object starts from one of GitHub's own examples — the REST
description's ``components/examples`` (``issue``, ``pull-request``, ``issue-comment``, …) and, for
deliveries, ``@octokit/webhooks-examples`` — with its URLs moved to the fake's and its fields replaced
by the fake's state. The same overlay (:meth:`Render.issue_fields`, …) fills a REST template and a
webhook template alike, since both describe the same GitHub objects.
The webhook templates themselves (which example, repaired how) are in :mod:`fake_forge_hooks`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from baton.testing.fake_forge_openapi import RestDescription
from baton.testing.fake_forge_state import (
    LEGACY_PERMISSION,
    Annotation,
    CheckRun,
    Issue,
    IssueComment,
    Repo,
    Review,
    ReviewComment,
    Status,
    User,
    iso,
)


def _node_id(kind: str, number: int) -> str:
    return f"{kind}_{number:08d}"


class Render:
    """Builds GitHub's JSON for one fake; ``users`` and ``clone_url`` read the fake's current state."""

    def __init__(
        self,
        rest: RestDescription,
        api_url: str,
        web_url: str,
        clone_url: Callable[[Repo], str],
        users: Callable[[str], User],
        repos: Callable[[str], Repo] | None = None,
    ) -> None:
        self.rest = rest
        self.api_url, self.web_url = api_url.rstrip("/"), web_url.rstrip("/")
        self.clone_url, self.user_of, self.repo_of = clone_url, users, repos
        self._texts: dict[tuple[str, str, str], str] = {}  # (example, repo, api_url): rebased JSON
        self._lock = threading.Lock()

    # -- templates ---------------------------------------------------------------------------------

    def rebased(self, text: str, full_name: str) -> str:
        return (
            text.replace(
                "https://api.github.com/repos/octocat/Hello-World", f"{self.api_url}/repos/{full_name}"
            )
            .replace("https://github.com/octocat/Hello-World", f"{self.web_url}/{full_name}")
            .replace("https://api.github.com", self.api_url)
            .replace("https://github.com", self.web_url)
        )

    def template(self, name: str, full_name: str, pick: Callable[[Any], Any] = lambda v: v) -> Any:
        """A fresh copy of the REST example ``name`` (``pick`` chooses a part), URLs moved to the fake's."""
        key = (name, full_name, self.api_url)  # the URL: a template made before the server had its port
        with self._lock:
            text = self._texts.get(key)
        if text is None:
            text = self.rebased(json.dumps(pick(self.rest.example(name))), full_name)
            with self._lock:
                self._texts[key] = text
        return json.loads(text)

    # -- shared overlays: fill a REST or a webhook template ------------------------------------------

    def user_fields(self, obj: dict[str, Any], login: str) -> dict[str, Any]:
        user = self.user_of(login)
        old, path = obj.get("login", "octocat"), quote(login)  # GitHub's URLs say dependabot%5Bbot%5D
        for key, value in list(obj.items()):
            if isinstance(value, str) and key.endswith("_url"):
                obj[key] = value.replace(f"/{old}", f"/{path}")
        obj.update(
            login=login,
            id=user.id,
            node_id=_node_id("U", user.id),
            type=user.type,
            site_admin=False,
            url=f"{self.api_url}/users/{path}",
            html_url=f"{self.web_url}/{path}",
            avatar_url=f"{self.web_url}/avatars/{path}",
        )
        return obj

    def repo_fields(self, obj: dict[str, Any], repo: Repo) -> dict[str, Any]:
        obj.update(
            id=repo.id,
            node_id=_node_id("R", repo.id),
            name=repo.name,
            full_name=repo.full_name,
            private=False,
            fork=repo.fork_of is not None,
            url=f"{self.api_url}/repos/{repo.full_name}",
            html_url=f"{self.web_url}/{repo.full_name}",
        )
        if "owner" in obj and isinstance(obj["owner"], dict):
            self.user_fields(obj["owner"], repo.owner)
        for key in ("clone_url", "git_url", "ssh_url", "svn_url"):
            if key in obj:
                obj[key] = self.clone_url(repo)
        if "default_branch" in obj:
            obj["default_branch"] = repo.default_branch
        for key in ("created_at", "updated_at", "pushed_at"):
            if isinstance(obj.get(key), str):
                obj[key] = iso(repo.created_at)
        return obj

    def association(self, repo: Repo, login: str) -> str:
        if login == repo.owner:
            return "OWNER"
        return "COLLABORATOR" if repo.permissions.get(login, "none") != "none" else "NONE"

    def label(self, repo: Repo, name: str) -> dict[str, Any]:
        return {
            "id": abs(hash((repo.full_name, name))) % 10**9,
            "node_id": _node_id("LA", abs(hash(name)) % 10**8),
            "url": f"{self.api_url}/repos/{repo.full_name}/labels/{name}",
            "name": name,
            "description": None,
            "color": "ededed",
            "default": False,
        }

    def issue_fields(self, obj: dict[str, Any], repo: Repo, issue: Issue, base: str) -> dict[str, Any]:
        """An issue (REST ``issue`` or a webhook's ``issue``); ``base`` the issue's API URL."""
        html = f"{self.web_url}/{repo.full_name}/{'pull' if issue.pr else 'issues'}/{issue.number}"
        obj.update(
            id=issue.id,
            node_id=_node_id("I", issue.id),
            url=base,
            repository_url=f"{self.api_url}/repos/{repo.full_name}",
            labels_url=f"{base}/labels{{/name}}",
            comments_url=f"{base}/comments",
            events_url=f"{base}/events",
            html_url=html,
            number=issue.number,
            state=issue.state,
            title=issue.title,
            body=issue.body,
            user=self.user_fields(obj.get("user") or {}, issue.author),
            labels=[self.label(repo, name) for name in issue.labels],
            assignee=self.user_fields(dict(obj.get("assignee") or obj["user"]), issue.assignees[0])
            if issue.assignees
            else None,
            assignees=[self.user_fields(dict(obj["user"]), login) for login in issue.assignees],
            milestone=None,
            locked=False,
            active_lock_reason=None,
            comments=len(issue.comments),
            created_at=iso(issue.created_at),
            updated_at=iso(issue.updated_at),
            closed_at=iso(issue.closed_at) if issue.closed_at else None,
            author_association=self.association(repo, issue.author),
        )
        for key in ("closed_by", "state_reason", "pinned_comment"):
            if key in obj:
                obj[key] = None
        if issue.pr is None:
            obj.pop("pull_request", None)
        else:
            pulls = f"{self.api_url}/repos/{repo.full_name}/pulls/{issue.number}"
            obj["pull_request"] = {
                "url": pulls,
                "html_url": html,
                "diff_url": f"{html}.diff",
                "patch_url": f"{html}.patch",
                "merged_at": iso(issue.pr.merged_at) if issue.pr.merged_at else None,
            }
        return obj

    def pull_fields(
        self, obj: dict[str, Any], repo: Repo, issue: Issue, review_comments: int = 0
    ) -> dict[str, Any]:
        """A pull request (REST ``pull-request`` or a webhook's ``pull_request``)."""
        pr = issue.pr
        assert pr is not None
        pulls = f"{self.api_url}/repos/{repo.full_name}/pulls/{issue.number}"
        issue_url = f"{self.api_url}/repos/{repo.full_name}/issues/{issue.number}"
        self.issue_fields(obj, repo, issue, issue_url)
        for key in ("repository_url", "labels_url", "events_url", "pull_request", "closed_by"):
            obj.pop(key, None)
        for key in ("state_reason", "pinned_comment"):
            obj.pop(key, None)
        head_sha = repo.pr_head(issue)
        base_sha = repo.head(pr.base_ref) or "0" * 40
        obj.update(
            url=pulls,
            issue_url=issue_url,
            commits_url=f"{pulls}/commits",
            review_comments_url=f"{pulls}/comments",
            comments_url=f"{issue_url}/comments",
            statuses_url=f"{self.api_url}/repos/{repo.full_name}/statuses/{head_sha}",
            merged_at=iso(pr.merged_at) if pr.merged_at else None,
            merge_commit_sha=None,
            requested_reviewers=[],
            requested_teams=[],
            draft=pr.draft,
            auto_merge=None,
        )
        if pr.auto_merge:
            obj["auto_merge"] = {
                "enabled_by": self.user_fields(dict(obj["user"]), pr.auto_merge_by or issue.author),
                "merge_method": pr.auto_merge,
                "commit_title": f"{issue.title} (#{issue.number})",
                "commit_message": "",
            }
        head_repo = self.repo_of(pr.head_repo) if pr.head_repo and self.repo_of else repo
        for side, where, ref, sha in (
            ("head", head_repo, pr.head_ref, head_sha),
            ("base", repo, pr.base_ref, base_sha),
        ):
            part = obj[side]
            part.update(label=f"{where.owner}:{ref}", ref=ref, sha=sha)
            self.user_fields(part["user"], where.owner)
            if isinstance(part.get("repo"), dict):
                self.repo_fields(part["repo"], where)
        for key, value in (
            ("merged", pr.merged),
            ("mergeable", pr.mergeable),
            ("rebaseable", pr.mergeable),
            ("mergeable_state", {True: "clean", False: "dirty", None: "unknown"}[pr.mergeable]),
            ("merged_by", None),
            ("comments", len(issue.comments)),
            ("review_comments", review_comments),
            ("maintainer_can_modify", False),
        ):
            if key in obj:
                obj[key] = value
        return obj

    # -- REST bodies ---------------------------------------------------------------------------------

    def repository(self, repo: Repo) -> dict[str, Any]:
        obj = self.template("full-repository-default-response", repo.full_name)
        for key in ("organization", "parent", "source", "template_repository"):
            obj.pop(key, None)
        obj.update(
            open_issues_count=0,
            open_issues=0,
            topics=[],
            visibility="public",
            archived=False,
            license=None,
            language=None,
        )
        return self.repo_fields(obj, repo)

    def branch(self, repo: Repo, name: str, sha: str) -> dict[str, Any]:
        """A branch with its protection: the required checks of the repository's default branch."""
        obj = self.template("branch-get", repo.full_name)
        obj["name"] = name
        obj["commit"]["sha"] = sha
        required = repo.required_checks if name == repo.default_branch else []
        obj["protected"] = bool(required)
        checks = obj["protection"].setdefault("required_status_checks", {})
        checks.update(
            enforcement_level="non_admins" if required else "off",
            contexts=list(required),
            checks=[{"context": c, "app_id": None} for c in required],
        )
        obj["protection"]["enabled"] = bool(required)
        return obj  # type: ignore[no-any-return]

    def permission(self, repo: Repo, login: str) -> dict[str, Any]:
        name = "repository-collaborator-permission-response-if-user-has-admin-permissions"
        obj = self.template(name, repo.full_name)
        role = repo.permissions.get(login, "none")
        obj.update(permission=LEGACY_PERMISSION.get(role, "none"), role_name=role)
        self.user_fields(obj["user"], login)
        obj["user"]["role_name"] = role
        return obj  # type: ignore[no-any-return]

    def issue(self, repo: Repo, issue: Issue) -> dict[str, Any]:
        base = f"{self.api_url}/repos/{repo.full_name}/issues/{issue.number}"
        return self.issue_fields(self.template("issue", repo.full_name), repo, issue, base)

    def pull(self, repo: Repo, issue: Issue, review_comments: int = 0) -> dict[str, Any]:
        return self.pull_fields(self.template("pull-request", repo.full_name), repo, issue, review_comments)

    def comment_fields(self, obj: dict[str, Any], repo: Repo, c: IssueComment, is_pr: bool) -> dict[str, Any]:
        kind = "pull" if is_pr else "issues"
        obj.update(
            id=c.id,
            node_id=_node_id("IC", c.id),
            url=f"{self.api_url}/repos/{repo.full_name}/issues/comments/{c.id}",
            html_url=f"{self.web_url}/{repo.full_name}/{kind}/{c.number}#issuecomment-{c.id}",
            issue_url=f"{self.api_url}/repos/{repo.full_name}/issues/{c.number}",
            body=c.body,
            user=self.user_fields(obj["user"], c.author),
            created_at=iso(c.created_at),
            updated_at=iso(c.updated_at),
            author_association=self.association(repo, c.author),
        )
        return obj

    def comment(self, repo: Repo, c: IssueComment, is_pr: bool) -> dict[str, Any]:
        return self.comment_fields(self.template("issue-comment", repo.full_name), repo, c, is_pr)

    def review_fields(self, obj: dict[str, Any], repo: Repo, r: Review) -> dict[str, Any]:
        pulls = f"{self.api_url}/repos/{repo.full_name}/pulls/{r.number}"
        html = f"{self.web_url}/{repo.full_name}/pull/{r.number}"
        obj.update(
            id=r.id,
            node_id=_node_id("PRR", r.id),
            user=self.user_fields(obj["user"], r.author),
            body=r.body,
            state=r.state,
            html_url=f"{html}#pullrequestreview-{r.id}",
            pull_request_url=pulls,
            submitted_at=iso(r.submitted_at),
            commit_id=r.commit_id,
            author_association=self.association(repo, r.author),
            _links={"html": {"href": f"{html}#pullrequestreview-{r.id}"}, "pull_request": {"href": pulls}},
        )
        return obj

    def review(self, repo: Repo, r: Review) -> dict[str, Any]:
        obj = self.template("pull-request-review-items", repo.full_name, lambda v: v[0])
        return self.review_fields(obj, repo, r)

    def review_comment_fields(
        self, obj: dict[str, Any], repo: Repo, number: int, c: ReviewComment
    ) -> dict[str, Any]:
        pulls = f"{self.api_url}/repos/{repo.full_name}/pulls/{number}"
        url = f"{self.api_url}/repos/{repo.full_name}/pulls/comments/{c.id}"
        html = f"{self.web_url}/{repo.full_name}/pull/{number}#discussion_r{c.id}"
        obj.pop("in_reply_to_id", None)
        if c.in_reply_to is not None:
            obj["in_reply_to_id"] = c.in_reply_to
        obj.update(
            url=url,
            pull_request_review_id=c.review_id,
            id=c.id,
            node_id=_node_id("PRRC", c.id),
            diff_hunk=c.diff_hunk,
            path=c.path,
            position=c.line,
            original_position=c.line,
            commit_id=c.commit_id,
            original_commit_id=c.commit_id,
            user=self.user_fields(obj["user"], c.author),
            body=c.body,
            created_at=iso(c.created_at),
            updated_at=iso(c.created_at),
            html_url=html,
            pull_request_url=pulls,
            author_association=self.association(repo, c.author),
            _links={"self": {"href": url}, "html": {"href": html}, "pull_request": {"href": pulls}},
            line=c.line,
            original_line=c.line,
            side="RIGHT",
            start_line=None,
            original_start_line=None,
            start_side=None,
        )
        return obj

    def review_comment(self, repo: Repo, number: int, c: ReviewComment) -> dict[str, Any]:
        obj = self.template("review-comment-items", repo.full_name, lambda v: v[0])
        return self.review_comment_fields(obj, repo, number, c)

    def pull_review_comment(self, repo: Repo, number: int, c: ReviewComment) -> dict[str, Any]:
        """An inline comment as a pull request's list of them (and a reply's creation) shows it."""
        obj = self.template("pull-request-review-comment", repo.full_name)
        return self.review_comment_fields(obj, repo, number, c)

    def check_run_fields(self, obj: dict[str, Any], repo: Repo, run: CheckRun) -> dict[str, Any]:
        url = f"{self.api_url}/repos/{repo.full_name}/check-runs/{run.id}"
        obj.update(
            id=run.id,
            head_sha=run.head_sha,
            node_id=_node_id("CR", run.id),
            external_id=str(run.id),
            url=url,
            html_url=f"{self.web_url}/{repo.full_name}/actions/runs/{run.suite_id}/job/{run.id}",
            details_url=f"{self.web_url}/{repo.full_name}/actions/runs/{run.suite_id}/job/{run.id}",
            status=run.status,
            conclusion=run.conclusion,
            started_at=iso(run.started_at),
            completed_at=iso(run.completed_at) if run.completed_at else None,
            name=run.name,
            pull_requests=[],
        )
        obj["output"] = {
            "title": run.title,
            "summary": run.summary,
            "text": None,
            "annotations_count": len(run.annotations),
            "annotations_url": f"{url}/annotations",
        }
        if isinstance(obj.get("check_suite"), dict):
            obj["check_suite"] = {"id": run.suite_id}
        return obj

    def check_run(self, repo: Repo, run: CheckRun) -> dict[str, Any]:
        obj = self.template("check-run-paginated", repo.full_name, lambda v: v["check_runs"][0])
        return self.check_run_fields(obj, repo, run)

    def annotation(self, repo: Repo, run: CheckRun, a: Annotation) -> dict[str, Any]:
        return {
            "path": a.path,
            "start_line": a.start_line,
            "end_line": a.end_line if a.end_line is not None else a.start_line,
            "start_column": None,
            "end_column": None,
            "annotation_level": a.annotation_level,
            "title": a.title,
            "message": a.message,
            "raw_details": a.raw_details,
            "blob_href": f"{self.web_url}/{repo.full_name}/blob/{run.head_sha}/{a.path}",
        }

    def status_fields(self, obj: dict[str, Any], repo: Repo, s: Status) -> dict[str, Any]:
        obj.update(
            url=f"{self.api_url}/repos/{repo.full_name}/statuses/{s.sha}",
            id=s.id,
            node_id=_node_id("SC", s.id),
            state=s.state,
            description=s.description,
            target_url=s.target_url,
            context=s.context,
            created_at=iso(s.created_at),
            updated_at=iso(s.created_at),
        )
        return obj

    def combined_status(self, repo: Repo, sha: str, statuses: list[Status]) -> dict[str, Any]:
        obj = self.template("combined-commit-status", repo.full_name)
        item = obj["statuses"][0]
        states = {s.state for s in statuses}
        if not statuses:
            state = "pending"
        elif states & {"error", "failure"}:
            state = "failure"
        elif "pending" in states:
            state = "pending"
        else:
            state = "success"
        obj.update(
            state=state,
            statuses=[self.status_fields(dict(item), repo, s) for s in statuses],
            sha=sha,
            total_count=len(statuses),
            commit_url=f"{self.api_url}/repos/{repo.full_name}/commits/{sha}",
            url=f"{self.api_url}/repos/{repo.full_name}/commits/{sha}/status",
        )
        self.repo_fields(obj["repository"], repo)
        return obj  # type: ignore[no-any-return]

    @staticmethod
    def error(message: str, status: int) -> dict[str, Any]:
        return {
            "message": message,
            "documentation_url": "https://docs.github.com/enterprise-server@3.19/rest",
            "status": str(status),
        }

    @staticmethod
    def validation_failed(resource: str, message: str) -> dict[str, Any]:
        return {
            "message": "Validation Failed",
            "errors": [{"resource": resource, "code": "custom", "message": message}],
            "documentation_url": "https://docs.github.com/enterprise-server@3.19/rest",
            "status": "422",
        }
