"""The merge policy on GitLab (:class:`~baton.forge.kinds.readiness.MergeClient`). A draft is a merge request
whose title starts with ``Draft:`` (``[Draft]``, ``(Draft)``, ``Draft -``): marked ready by editing its
title (``PUT …/merge_requests/:iid``). Approvals are ``…/approvals``' ``approved_by`` (GitLab counts
them for the merge request, not a commit: a push drops them only where the project says so, "Remove all
approvals when commits are added"); a reviewer who requested changes (GitLab 17.x) is read from
``…/reviewers``. The checks are the head's newest pipelines, each by its source; a project that only
merges after a successful pipeline waits for one. Auto-merge is ``PUT …/merge`` with ``auto_merge``
(GitLab 17.11 and later) and the older ``merge_when_pipeline_succeeds`` both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from baton.forge.data.model import Review
from baton.forge.kinds.gitlab.client import GitLabClient
from baton.forge.kinds.gitlab.pipelines import latest_pipelines
from baton.forge.kinds.gitlab.rest import actor, project_path
from baton.forge.kinds.gitlab.text import is_draft, ready_title
from baton.forge.kinds.readiness import GREEN, PENDING, RED, CheckState, PullState
from baton.forge.kinds.rest import epoch

PIPELINE_STATES = {"success": GREEN, "skipped": GREEN, "failed": RED, "canceled": RED}  # others: pending
REVIEWER_STATES = {"requested_changes": "CHANGES_REQUESTED"}
REQUIRED = "pipeline"  # the check a project that merges only after a successful pipeline waits for


class GitLabMerge:
    """:class:`~baton.forge.kinds.readiness.MergeClient` over a :class:`GitLabClient` (its HTTP and
    paging)."""

    def __init__(self, client: GitLabClient) -> None:
        self.client, self.http = client, client.http
        self._titles: dict[tuple[str, int], str] = {}  # (repo, number) -> the title, as read

    def pull_state(self, repo: str, number: int) -> PullState:
        path = self.client.thread_path(repo, number, True)
        mr = self.http.json("GET", path)
        head = str(mr.get("sha") or (mr.get("diff_refs") or {}).get("head_sha") or "")
        title = str(mr.get("title") or "")
        self._titles[(repo, int(number))] = title
        checks = self._checks(repo, head) if head else []
        return PullState(
            number=int(number),
            open=mr.get("state") == "opened",
            draft=bool(mr.get("draft") or mr.get("work_in_progress")) or is_draft(title),
            head_sha=head,
            base_ref=str(mr.get("target_branch") or ""),
            reviews=tuple(self._reviews(path, head)),
            checks=tuple(checks),
            required=(REQUIRED,) if not checks and self._pipeline_required(repo) else None,
            auto_merge=bool(mr.get("merge_when_pipeline_succeeds")),
        )

    def _reviews(self, path: str, head: str) -> list[Review]:
        """Those who requested changes, then the approvals (read as approvals of the head)."""
        found = []
        for reviewer in self.http.optional(f"{path}/reviewers") or ():
            state = REVIEWER_STATES.get(str((reviewer or {}).get("state") or ""))
            if state and isinstance(reviewer.get("user"), Mapping):
                found.append(_review(reviewer["user"], state, None, reviewer.get("created_at")))
        approvals = self.http.json("GET", f"{path}/approvals") or {}
        for approval in approvals.get("approved_by") or ():
            if isinstance(approval, Mapping) and isinstance(approval.get("user"), Mapping):
                found.append(_review(approval["user"], "APPROVED", head, approval.get("approved_at")))
        return sorted(found, key=lambda review: review.at)  # a reviewer's latest word last

    def _checks(self, repo: str, sha: str) -> list[CheckState]:
        pipelines = self.http.json(
            "GET", f"{project_path(repo)}/pipelines", params={"sha": sha, "per_page": 20}
        )
        return [
            CheckState(
                f"pipeline ({p.get('source') or 'push'})", PIPELINE_STATES.get(str(p.get("status")), PENDING)
            )
            for p in latest_pipelines(pipelines, sha)
        ]

    def _pipeline_required(self, repo: str) -> bool:
        project = self.http.optional(project_path(repo)) or {}
        return bool(project.get("only_allow_merge_if_pipeline_succeeds"))

    def mark_ready(self, repo: str, number: int) -> None:
        path = self.client.thread_path(repo, number, True)
        title = self._titles.get((repo, int(number)))
        if title is None:
            title = str(self.http.json("GET", path).get("title") or "")
        if is_draft(title):
            self.http.request("PUT", path, json={"title": ready_title(title)})

    def enable_auto_merge(self, repo: str, number: int, head_sha: str) -> str:
        """GitLab's auto-merge at ``head_sha`` (a merge of another head GitLab refuses: 409), asked with
        both of its names: ``auto_merge`` (GitLab 17.11 and later) and the older
        ``merge_when_pipeline_succeeds``. GitLab reads them as one (``lib/api/merge_requests.rb``: either
        one true), and a GitLab that knows only the older name ignores the newer one instead of refusing
        it — so one request serves every version, and none merges at once for want of the other name."""
        path = f"{self.client.thread_path(repo, number, True)}/merge"
        body = {"sha": head_sha, "auto_merge": True, "merge_when_pipeline_succeeds": True}
        mr = self.http.json("PUT", path, json=body)
        if isinstance(mr, Mapping) and mr.get("state") == "merged":
            return "merge; nothing was left to wait for, so GitLab merged it at once"
        return "merge when the pipeline succeeds"


def _review(user: Mapping[str, Any], state: str, commit: str | None, when: Any) -> Review:
    return Review(
        id=int(user.get("id") or 0),
        author=actor(user),
        state=state,
        body="",
        commit=commit,
        url="",
        at=epoch(str(when) if when else None),
    )
