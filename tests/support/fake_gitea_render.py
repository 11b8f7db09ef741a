"""The fake forge's state in Gitea's shapes (:class:`GiteaRender`) and Gitea's webhook payloads
(:class:`GiteaPayloads`), for :class:`~tests.support.fake_gitea.FakeGitea`. The objects are the
definitions of Gitea's swagger description (1.27; checked by :mod:`tests.support.gitea_spec` on the way
out), the payloads Gitea's webhook structs (``modules/structs/hook.go``); where the shared state speaks
GitHub, Gitea's words are used (:class:`GiteaRender`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from baton.testing.fake_forge_state import (
    CheckRun,
    Issue,
    IssueComment,
    Repo,
    Review,
    ReviewComment,
    Status,
    iso,
)

ZERO_TIME = "0001-01-01T00:00:00Z"
ACTIONS_USER = "gitea-actions"  # Gitea's Actions user (id -2): it posts the Actions jobs' statuses
WIP_PREFIXES = ("WIP:", "[WIP]")
MODES = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read", "read": "read"}
REVIEW_STATES = {"APPROVED": "APPROVED", "CHANGES_REQUESTED": "REQUEST_CHANGES", "COMMENTED": "COMMENT"}
REVIEW_TYPES = {  # a review's ReviewPayload.type, and its X-Gitea-Event
    "APPROVED": ("pull_request_review_approved", "pull_request_approved"),
    "CHANGES_REQUESTED": ("pull_request_review_rejected", "pull_request_rejected"),
    "COMMENTED": ("pull_request_review_comment", "pull_request_comment"),
}
# a check run's conclusion as the commit status Gitea Actions posts for its job
STATUS_OF = {"success": "success", "skipped": "skipped", "neutral": "success"}


def wip(title: str) -> bool:
    return title.upper().startswith(WIP_PREFIXES)


def run_state(run: CheckRun) -> tuple[str, str]:
    """A check run as Gitea's Actions status and conclusion (``waiting``: a maintainer must approve)."""
    if run.conclusion == "action_required":
        return "waiting", ""
    if run.status != "completed":
        return ("in_progress" if run.status == "in_progress" else "queued"), ""
    conclusion = {"timed_out": "failure", "startup_failure": "failure", "neutral": "success"}.get(
        run.conclusion or "", run.conclusion or "failure"
    )
    return "completed", conclusion


class GiteaRender:
    """Gitea-shaped objects of the fake's state; ``urls()`` gives the fake's (web, api, git) bases now
    (they are known once its servers listen). Gitea's words for GitHub's:

    - a collaborator's role is Gitea's access mode (the repository's owner ``owner``; maintain and
      write ``write``; triage and read ``read``; anyone else ``read``, as on a public repository);
    - a review's state is ``APPROVED``, ``REQUEST_CHANGES`` or ``COMMENT``; an inline comment's line its
      ``position``;
    - a check run is a Gitea Actions job, alone in its run (the run's id is the check suite's, the
      job's the check run's), linked as ``/{owner}/{repo}/actions/runs/{run}/jobs/0``;
    - ``mergeable`` is false for a work-in-progress PR (a ``WIP:`` title) and while unknown, as Gitea
      says.
    """

    def __init__(self, urls: Callable[[], tuple[str, str, str]], users: Callable[[str], Any]) -> None:
        self.urls, self.users = urls, users

    @property
    def web(self) -> str:
        return self.urls()[0]

    @property
    def api(self) -> str:
        return self.urls()[1]

    def error(self, message: str) -> dict[str, Any]:
        return {"message": message, "url": f"{self.web}/api/swagger"}

    def user(self, login: str) -> dict[str, Any]:
        uid = -2 if login == ACTIONS_USER else self.users(login).id
        return {
            "id": uid,
            "login": login,
            "login_name": "",
            "source_id": 0,
            "full_name": "",
            "email": f"{login}@noreply.gitea.fake",
            "avatar_url": f"{self.web}/avatars/{abs(uid)}",
            "html_url": f"{self.web}/{login}",
            "language": "",
            "is_admin": False,
            "last_login": ZERO_TIME,
            "created": ZERO_TIME,
            "restricted": False,
            "active": True,
            "prohibit_login": False,
            "location": "",
            "website": "",
            "description": "",
            "visibility": "public",
            "followers_count": 0,
            "following_count": 0,
            "starred_repos_count": 0,
            "username": login,
        }

    def repository(self, repo: Repo) -> dict[str, Any]:
        web, api, git = self.urls()
        open_issues = [i for i in repo.issues.values() if i.state == "open"]
        return {
            "id": repo.id,
            "owner": self.user(repo.owner),
            "name": repo.name,
            "full_name": repo.full_name,
            "description": "",
            "empty": False,
            "private": False,
            "fork": False,
            "template": False,
            "mirror": False,
            "size": 1,
            "language": "",
            "html_url": f"{web}/{repo.full_name}",
            "url": f"{api}/repos/{repo.full_name}",
            "link": "",
            "ssh_url": f"git@127.0.0.1:{repo.full_name}.git",
            "clone_url": f"{git}/{repo.full_name}.git",
            "website": "",
            "stars_count": 0,
            "forks_count": 0,
            "watchers_count": 0,
            "open_issues_count": sum(1 for i in open_issues if i.pr is None),
            "open_pr_counter": sum(1 for i in open_issues if i.pr is not None),
            "release_counter": 0,
            "default_branch": repo.default_branch,
            "archived": False,
            "created_at": iso(repo.created_at),
            "updated_at": iso(repo.created_at),
            "archived_at": "1970-01-01T00:00:00Z",
            "has_issues": True,
            "has_wiki": False,
            "has_pull_requests": True,
            "has_projects": False,
            "has_releases": True,
            "has_packages": False,
            "has_actions": True,
            "ignore_whitespace_conflicts": False,
            "allow_merge_commits": True,
            "allow_rebase": True,
            "allow_rebase_explicit": True,
            "allow_squash_merge": True,
            "allow_fast_forward_only_merge": True,
            "allow_rebase_update": True,
            "default_delete_branch_after_merge": False,
            "default_merge_style": "merge",
            "default_allow_maintainer_edit": False,
            "avatar_url": "",
            "internal": False,
            "mirror_interval": "",
            "object_format_name": "sha1",
            "mirror_updated": ZERO_TIME,
            "topics": [],
            "licenses": [],
        }

    def label(self, repo: Repo, name: str) -> dict[str, Any]:
        lid = zlib.crc32(f"{repo.full_name}:{name}".encode()) % 100_000 + 1
        return {
            "id": lid,
            "name": name,
            "exclusive": False,
            "is_archived": False,
            "color": "ee0701",
            "description": "",
            "url": f"{self.api}/repos/{repo.full_name}/labels/{lid}",
        }

    def issue_url(self, repo: Repo, issue: Issue) -> str:
        return f"{self.web}/{repo.full_name}/{'pulls' if issue.pr else 'issues'}/{issue.number}"

    def issue(self, repo: Repo, issue: Issue) -> dict[str, Any]:
        pull = None
        if issue.pr is not None:
            pull = {
                "merged": issue.pr.merged,
                "merged_at": iso(issue.pr.merged_at) if issue.pr.merged_at else None,
                "draft": wip(issue.title),
                "html_url": self.issue_url(repo, issue),
            }
        assignees = [self.user(a) for a in issue.assignees]
        return {
            "id": issue.id,
            "url": f"{self.api}/repos/{repo.full_name}/issues/{issue.number}",
            "html_url": self.issue_url(repo, issue),
            "number": issue.number,
            "user": self.user(issue.author),
            "original_author": "",
            "original_author_id": 0,
            "title": issue.title,
            "body": issue.body,
            "ref": "",
            "assets": [],
            "labels": [self.label(repo, name) for name in issue.labels],
            "milestone": None,
            "assignee": assignees[0] if assignees else None,
            "assignees": assignees or None,
            "state": issue.state,
            "is_locked": False,
            "comments": len(issue.comments),
            "created_at": iso(issue.created_at),
            "updated_at": iso(issue.updated_at),
            "closed_at": iso(issue.closed_at) if issue.closed_at else None,
            "due_date": None,
            "time_estimate": 0,
            "pull_request": pull,
            "repository": {
                "id": repo.id,
                "name": repo.name,
                "owner": repo.owner,
                "full_name": repo.full_name,
            },
            "pin_order": 0,
        }

    def branch(self, repo: Repo, ref: str, sha: str) -> dict[str, Any]:
        return {"label": ref, "ref": ref, "sha": sha, "repo_id": repo.id, "repo": self.repository(repo)}

    def pull(self, repo: Repo, issue: Issue, review_comments: int = 0) -> dict[str, Any]:
        part = issue.pr
        assert part is not None, f"#{issue.number} is not a pull request"
        head, base = repo.pr_head(issue), repo.head(part.base_ref) or "0" * 40
        body = self.issue(repo, issue)
        for key in ("ref", "assets", "original_author", "original_author_id", "repository", "time_estimate"):
            body.pop(key)
        body.pop("pull_request")
        body.update(
            id=issue.id,
            url=self.issue_url(repo, issue),
            draft=wip(issue.title),
            requested_reviewers=None,
            requested_reviewers_teams=None,
            review_comments=review_comments,
            additions=1,
            deletions=0,
            changed_files=1,
            diff_url=f"{self.issue_url(repo, issue)}.diff",
            patch_url=f"{self.issue_url(repo, issue)}.patch",
            # Gitea: not mergeable while checking, on a conflict, and for every work-in-progress PR
            mergeable=bool(part.mergeable) and not wip(issue.title),
            merged=part.merged,
            merged_at=iso(part.merged_at) if part.merged_at else None,
            merge_commit_sha=head if part.merged else None,
            merged_by=self.user(repo.owner) if part.merged else None,
            allow_maintainer_edit=False,
            base=self.branch(repo, part.base_ref, base),
            head=self.branch(repo, part.head_ref, head),
            merge_base=base,
        )
        return body

    def comment(self, repo: Repo, comment: IssueComment, is_pr: bool) -> dict[str, Any]:
        kind = "pulls" if is_pr else "issues"
        where = f"{self.web}/{repo.full_name}/{kind}/{comment.number}"
        return {
            "id": comment.id,
            "html_url": f"{where}#issuecomment-{comment.id}",
            "pull_request_url": where if is_pr else "",
            "issue_url": "" if is_pr else where,
            "user": self.user(comment.author),
            "original_author": "",
            "original_author_id": 0,
            "body": comment.body,
            "assets": [],
            "created_at": iso(comment.created_at),
            "updated_at": iso(comment.updated_at),
        }

    def review(self, repo: Repo, review: Review) -> dict[str, Any]:
        pr_url = f"{self.web}/{repo.full_name}/pulls/{review.number}"
        return {
            "id": review.id,
            "user": self.user(review.author),
            "team": None,
            "state": REVIEW_STATES.get(review.state, "COMMENT"),
            "body": review.body,
            "commit_id": review.commit_id,
            "stale": repo.pr_head(repo.issues[review.number]) != review.commit_id,
            "official": review.state != "COMMENTED",
            "dismissed": False,
            "comments_count": len(review.comments),
            "submitted_at": iso(review.submitted_at),
            "updated_at": iso(review.submitted_at),
            "html_url": f"{pr_url}#issuecomment-{review.id}",
            "pull_request_url": pr_url,
        }

    def review_comment(self, repo: Repo, number: int, comment: ReviewComment) -> dict[str, Any]:
        pr_url = f"{self.web}/{repo.full_name}/pulls/{number}"
        return {
            "id": comment.id,
            "body": comment.body,
            "user": self.user(comment.author),
            "resolver": None,
            "pull_request_review_id": comment.review_id,
            "created_at": iso(comment.created_at),
            "updated_at": iso(comment.created_at),
            "path": comment.path,
            "commit_id": comment.commit_id,
            "original_commit_id": comment.commit_id,
            "diff_hunk": comment.diff_hunk,
            "position": comment.line or 0,
            "original_position": 0,
            "html_url": f"{pr_url}/files#issuecomment-{comment.id}",
            "pull_request_url": pr_url,
        }

    def status(self, repo: Repo, status: Status, creator: str) -> dict[str, Any]:
        return {
            "id": status.id,
            "status": status.state,
            "target_url": status.target_url or "",
            "description": status.description or "",
            "url": f"{self.api}/repos/{repo.full_name}/statuses/{status.sha}",
            "context": status.context,
            "creator": self.user(creator),
            "created_at": iso(status.created_at),
            "updated_at": iso(status.created_at),
        }

    def job_link(self, repo: Repo, run: CheckRun) -> str:
        return f"{self.web}/{repo.full_name}/actions/runs/{run.suite_id}/jobs/0"

    def workflow_run(self, repo: Repo, run: CheckRun) -> dict[str, Any]:
        status, conclusion = run_state(run)
        return {
            "id": run.suite_id,
            "url": f"{self.api}/repos/{repo.full_name}/actions/runs/{run.suite_id}",
            "html_url": f"{self.web}/{repo.full_name}/actions/runs/{run.suite_id}",
            "display_title": run.name,
            "path": "ci.yml@refs/heads/main",
            "event": "pull_request",
            "run_attempt": 1,
            "run_number": run.suite_id,
            "head_sha": run.head_sha,
            "head_branch": "",
            "status": status,
            "conclusion": conclusion,
            "actor": self.user(repo.owner),
            "trigger_actor": self.user(repo.owner),
            "repository": self.repository(repo),
            "repository_id": repo.id,
            "started_at": iso(run.started_at),
            "completed_at": iso(run.completed_at) if run.completed_at else ZERO_TIME,
        }

    def job(self, repo: Repo, run: CheckRun) -> dict[str, Any]:
        status, conclusion = run_state(run)
        steps = [{"number": 1, "name": "Set up job", "status": "completed", "conclusion": "success"}]
        if status == "completed":
            steps.append(
                {"number": 2, "name": run.title or "Run", "status": status, "conclusion": conclusion}
            )
        return {
            "id": run.id,
            "url": f"{self.api}/repos/{repo.full_name}/actions/jobs/{run.id}",
            "html_url": self.job_link(repo, run),
            "run_id": run.suite_id,
            "run_url": f"{self.api}/repos/{repo.full_name}/actions/runs/{run.suite_id}",
            "name": run.name,
            "labels": ["ubuntu-latest"],
            "run_attempt": 1,
            "head_sha": run.head_sha,
            "head_branch": "",
            "status": status,
            "conclusion": conclusion,
            "runner_id": 1,
            "runner_name": "fake-runner",
            "steps": steps,
            "created_at": iso(run.started_at),
            "started_at": iso(run.started_at),
            "completed_at": iso(run.completed_at) if run.completed_at else ZERO_TIME,
        }

    def commit(self, repo: Repo, sha: str, at: float) -> dict[str, Any]:
        """A ``PayloadCommit`` (a status payload's commit)."""
        who = {"name": repo.owner, "email": f"{repo.owner}@noreply.gitea.fake", "username": repo.owner}
        return {
            "id": sha,
            "message": repo.git("log", "-1", "--format=%B", sha, check=False) + "\n",
            "url": f"{self.web}/{repo.full_name}/commit/{sha}",
            "author": who,
            "committer": who,
            "verification": None,
            "timestamp": iso(at),
            "added": [],
            "removed": [],
            "modified": [],
        }


class GiteaPayloads:
    """Gitea's webhook payloads, with the methods the shared drive API calls (the GitHub fake's
    :class:`~baton.testing.fake_forge_hooks.Payloads`); an event Gitea does not send (a check run, a
    review's inline comment on its own) is ``{}``, which is not delivered."""

    def __init__(self, render: GiteaRender) -> None:
        self.render = render

    def _common(self, repo: Repo, sender: str) -> dict[str, Any]:
        return {"repository": self.render.repository(repo), "sender": self.render.user(sender)}

    def issue(self, action: str, repo: Repo, issue: Issue, sender: str, **extra: str) -> dict[str, Any]:
        """``issues`` opened, closed; ``label_updated`` and ``assigned`` (their issue holds every current
        label and assignee: Gitea does not say which one changed)."""
        gitea_action = {"labeled": "label_updated"}.get(action, action)
        return {
            "action": gitea_action,
            "number": issue.number,
            "issue": self.render.issue(repo, issue),
            **self._common(repo, sender),
            "commit_id": "",
        }

    def issue_comment(self, repo: Repo, issue: Issue, comment: IssueComment) -> dict[str, Any]:
        payload = {
            "action": "created",
            "issue": self.render.issue(repo, issue),
            "comment": self.render.comment(repo, comment, issue.pr is not None),
            **self._common(repo, comment.author),
            "is_pull": issue.pr is not None,
        }
        if issue.pr is not None:
            payload["pull_request"] = self.render.pull(repo, issue)
        return payload

    def pull_request(
        self, action: str, repo: Repo, issue: Issue, sender: str, before: str | None = None
    ) -> dict[str, Any]:
        """``pull_request`` opened, synchronized, closed (Gitea says ``closed`` for a merge too)."""
        return {
            "action": {"synchronize": "synchronized"}.get(action, action),
            "number": issue.number,
            "pull_request": self.render.pull(repo, issue),
            "requested_reviewer": None,
            **self._common(repo, sender),
            "commit_id": repo.pr_head(issue) if action == "synchronize" else "",
            "review": None,
        }

    def review(self, repo: Repo, issue: Issue, review: Review) -> dict[str, Any]:
        kind = REVIEW_TYPES.get(review.state, REVIEW_TYPES["COMMENTED"])[0]
        return {
            "action": "reviewed",
            "number": issue.number,
            "pull_request": self.render.pull(repo, issue),
            "requested_reviewer": None,
            **self._common(repo, review.author),
            "commit_id": review.commit_id,
            "review": {"type": kind, "content": review.body},
        }

    def review_comment(
        self, repo: Repo, issue: Issue, comment: ReviewComment, pull: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {"pull_request": pull or {}}  # Gitea sends the review alone, its comments inside it

    def check_run(self, repo: Repo, run: CheckRun, prs: list[Issue], sender: str) -> dict[str, Any]:
        return {}

    def check_suite(self, repo: Repo, run: CheckRun, prs: list[Issue], sender: str) -> dict[str, Any]:
        return {}

    def status(self, repo: Repo, status: Status, sender: str) -> dict[str, Any]:
        return {
            "commit": self.render.commit(repo, status.sha, status.created_at),
            "context": status.context,
            "created_at": iso(status.created_at),
            "description": status.description or "",
            "id": status.id,
            "repository": self.render.repository(repo),
            "sender": self.render.user(sender),
            "sha": status.sha,
            "state": status.state,
            "target_url": status.target_url or "",
            "updated_at": iso(status.created_at),
        }
