"""Merge requests and pipelines on the fake GitLab (:class:`GitLabMerge`): opened (409 for a second open
one of a source branch), updated, closed, approved and merged as GitLab's merge API decides (405 when it
cannot be merged yet, 409 for a stale ``sha``, 422 on conflicts, auto-merge waiting for the head's
pipeline), pipelines with jobs and their logs, and the faults a test injects (429s, errors, merge
statuses still being checked).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from baton.testing.fake_gitlab_core import GitLabRefused
from baton.testing.fake_gitlab_drive import GitLabDrive
from baton.testing.fake_gitlab_state import ACCESS, Job, MergeRequest, Pipeline, Project

_CLOSES = re.compile(
    r"(?i)\b(?:clos(?:e|es|ed|ing)|fix(?:|es|ed|ing)|resolv(?:e|es|ed|ing)|implement(?:s|ed|ing)?)\s*:?\s+#(\d+)\b"
)
FINAL = ("success", "failed", "canceled", "skipped")


class GitLabMerge(GitLabDrive):
    """Merge requests, pipelines and faults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._faults: list[tuple[int, float]] = []  # (status, Retry-After), the next requests' answers
        self.checking = 0  # the next reads of an open MR say its merge status is still being checked
        self.uncounted = False  # True: lists carry no X-Total, X-Total-Pages nor rel="last" (large sets)

    # -- merge requests ------------------------------------------------------------------------------------

    def open_mr(
        self,
        project: str,
        source_branch: str,
        title: str,
        *,
        target_branch: str | None = None,
        description: str = "",
        author: str = "alice",
        source_project: str | None = None,
        remove_source_branch: bool = False,
    ) -> MergeRequest:
        """A merge request (Merge Request Hook ``open``); 409 when the source branch already has an
        open one, as GitLab answers."""
        with self.change():
            proj = self.project(project)
            source = self.project(source_project) if source_project else proj
            target = target_branch or proj.default_branch
            for other in proj.mrs.values():
                if (
                    other.state == "opened"
                    and other.source_branch == source_branch
                    and (other.source_project or proj.path) == source.path
                ):
                    message = (
                        f"Another open merge request already exists for this source branch: !{other.iid}"
                    )
                    raise GitLabRefused(409, [message])
            if source.head(source_branch) is None:
                raise GitLabRefused(422, [f'Source branch "{source_branch}" does not exist'])
            if proj.head(target) is None:
                raise GitLabRefused(422, [f'Target branch "{target}" does not exist'])
            now = self.clock()
            mr = MergeRequest(
                next(self._ids), proj.next_mr, title, description, author, source_branch, target, now, now
            )
            mr.source_project = None if source is proj else source.path
            mr.remove_source_branch = remove_source_branch
            proj.next_mr += 1
            proj.mrs[mr.iid] = mr
            self.track_head(proj, mr)
            self.emit(proj, "Merge Request Hook", self.payloads.merge_request(proj, mr, "open", author, {}))
            return mr

    def update_mr(
        self,
        project: str,
        iid: int,
        *,
        by: str = "alice",
        title: str | None = None,
        description: str | None = None,
        state_event: str | None = None,
    ) -> MergeRequest:
        """A merge request's title, description or state (``close``, ``reopen``) changed: Merge Request
        Hook ``update`` (``changes`` says what), ``close`` or ``reopen``."""
        with self.change():
            proj = self.project(project)
            mr = self.mr(proj, iid)
            changes: dict[str, Any] = {}
            if title is not None and title != mr.title:
                draft = mr.draft
                changes["title"] = {"previous": mr.title, "current": title}
                mr.title = title
                if draft != mr.draft:
                    changes["draft"] = {"previous": draft, "current": mr.draft}
            if description is not None and description != mr.description:
                changes["description"] = {"previous": mr.description, "current": description}
                mr.description = description
            action = "update"
            if state_event == "close" and mr.state == "opened":
                mr.sha_at_close, mr.frozen_refs = self.mr_sha(proj, mr), self.diff_refs(proj, mr)
                mr.state, mr.closed_at, mr.closed_by, action = "closed", self.clock(), by, "close"
            elif state_event == "reopen" and mr.state == "closed":
                mr.state, mr.closed_at, mr.closed_by, mr.frozen_refs, action = (
                    "opened",
                    None,
                    None,
                    None,
                    "reopen",
                )
            old = self._touch(mr)
            if changes or action != "update":
                changes |= self._stamp(old, mr.updated_at, by)
                self.emit(
                    proj, "Merge Request Hook", self.payloads.merge_request(proj, mr, action, by, changes)
                )
            return mr

    def set_reviewer(self, project: str, iid: int, username: str, state: str = "unreviewed") -> None:
        """``username`` reviews the merge request; its review's ``state`` (unreviewed, reviewed,
        requested_changes, approved, review_started) as ``GET …/reviewers`` shows it."""
        with self.change():
            proj = self.project(project)
            mr = self.mr(proj, iid)
            self.user(username)
            if username not in mr.reviewers:
                mr.reviewers.append(username)
            mr.review_states[username] = (state, self.clock())
            self._touch(mr)

    def approve(self, project: str, iid: int, username: str) -> None:
        """``username`` approves the merge request (Merge Request Hook ``approval``, and ``approved``
        once no approval is left)."""
        with self.change():
            proj = self.project(project)
            mr = self.mr(proj, iid)
            if username not in mr.approved_by:
                mr.approved_by.append(username)
            self._touch(mr)
            self.emit(
                proj, "Merge Request Hook", self.payloads.merge_request(proj, mr, "approval", username, {})
            )
            if len(mr.approved_by) >= mr.approvals_required:
                self.emit(
                    proj,
                    "Merge Request Hook",
                    self.payloads.merge_request(proj, mr, "approved", username, {}),
                )

    def merge_mr(
        self, project: str, iid: int, *, by: str, sha: str | None = None, auto_merge: bool = False
    ) -> MergeRequest:
        """Merge as GitLab's merge API decides: 405 when it cannot be merged yet, 409 when ``sha`` is
        not the head, 401 for who may not merge into the target, 422 on conflicts; ``auto_merge``
        waits for the head's pipeline when it has not succeeded yet (then merged by :meth:`pass_pipeline`)."""
        with self.change():
            proj = self.project(project)
            mr = self.mr(proj, iid)
            level = self.access(proj, by)
            needed = proj.protected.get(mr.target_branch, (0, ACCESS["developer"]))[1]
            if level < max(needed, ACCESS["developer"]):
                raise GitLabRefused(401, "401 Unauthorized")
            if mr.state != "opened" or mr.draft:
                raise GitLabRefused(405, "405 Method Not Allowed")
            head = self.mr_sha(proj, mr)
            if sha is not None and sha != head:
                raise GitLabRefused(409, f"SHA does not match HEAD of source branch: {head}")
            _, detailed, conflicts = self.mergeability(proj, mr)
            if conflicts:
                raise GitLabRefused(422, "Branch cannot be merged")
            pipeline = self.head_pipeline(proj, head)
            waiting = pipeline is not None and pipeline.status not in FINAL
            if auto_merge and (waiting or detailed in ("ci_must_pass", "ci_still_running")):
                if pipeline is not None and pipeline.status == "failed":
                    raise GitLabRefused(405, "405 Method Not Allowed")
                mr.auto_merge, mr.auto_merge_by = True, by
                self._touch(mr)
                return mr
            if detailed not in ("mergeable",):
                raise GitLabRefused(405, "405 Method Not Allowed")
            self._merge(proj, mr, by)
            return mr

    def _merge(self, proj: Project, mr: MergeRequest, by: str) -> None:
        """The merge commit on the target branch (GitLab's default merge method), the MR merged, issues
        its description closes closed, the source branch removed when asked."""
        head = self.mr_sha(proj, mr)
        refs = self.diff_refs(proj, mr)
        target = proj.head(mr.target_branch) or refs["start_sha"]
        repo = proj.repo.path
        tree = _run(repo, "merge-tree", "--write-tree", "--no-messages", target, head).splitlines()[0]
        source = mr.source_project or proj.path
        message = (
            f"Merge branch '{mr.source_branch}' into '{mr.target_branch}'\n\n{mr.title}\n\n"
            f"See merge request {proj.path}!{mr.iid}"
        )
        user = self.user(by)
        env = {
            "GIT_AUTHOR_NAME": user.name,
            "GIT_AUTHOR_EMAIL": user.email,
            "GIT_COMMITTER_NAME": user.name,
            "GIT_COMMITTER_EMAIL": user.email,
        }
        merge = _run(repo, "commit-tree", tree, "-p", target, "-p", head, "-m", message, env=env)
        proj.repo.git("update-ref", f"refs/heads/{mr.target_branch}", merge, target)
        mr.state, mr.merged_at, mr.merged_by, mr.merge_commit_sha = "merged", self.clock(), by, merge
        mr.sha_at_close, mr.frozen_refs, mr.auto_merge = head, refs, False
        self._touch(mr)
        self.pushed(proj.path, by, [(target, merge, f"refs/heads/{mr.target_branch}")])
        self.emit(proj, "Merge Request Hook", self.payloads.merge_request(proj, mr, "merge", by, {}))
        for number in dict.fromkeys(int(n) for n in _CLOSES.findall(mr.description)):
            if number in proj.issues and proj.issues[number].state == "opened":
                self.close_issue(proj.path, number, by=by)
        if mr.remove_source_branch and source == proj.path and proj.head(mr.source_branch) == head:
            self.delete_branch(proj.path, mr.source_branch, by=by)

    # -- pipelines -----------------------------------------------------------------------------------------

    def add_pipeline(
        self,
        project: str,
        sha: str | None = None,
        *,
        ref: str | None = None,
        status: str = "running",
        jobs: list[tuple[str, str, str, bytes | str | Path]] | None = None,
        user: str = "root",
        source: str = "push",
    ) -> Pipeline:
        """A pipeline on ``sha`` (default: the head of ``ref``, default the default branch) with
        ``jobs`` ``(name, stage, status, log)``; a Pipeline Hook (with its MR for a ``source``
        ``merge_request_event`` pipeline, which runs on ``refs/merge-requests/<iid>/head``)."""
        with self.change():
            proj = self.project(project)
            branch = ref or self._branch_of(proj, sha) or proj.default_branch
            if source == "merge_request_event" and ref is None:  # GitLab runs it on the MR's ref
                mr = next(
                    (m for m in proj.mrs.values() if m.state == "opened" and self.mr_sha(proj, m) == sha),
                    None,
                )
                branch = f"refs/merge-requests/{mr.iid}/head" if mr else branch
            sha = sha or proj.head(branch) or ""
            now = self.clock()
            pipeline = Pipeline(
                next(self._ids), proj.next_pipeline, sha, branch, status, source, user, now, now
            )
            pipeline.started_at = now if status != "created" else None
            proj.next_pipeline += 1
            proj.pipelines[pipeline.id] = pipeline
            for name, stage, job_status, log in jobs or [("test", "test", status, b"")]:
                data = log.encode() if isinstance(log, str) else log
                job = Job(next(self._ids), pipeline.id, name, stage, job_status, now, log=data)
                job.started_at = (
                    now if job_status not in ("created", "pending", "manual", "skipped") else None
                )
                job.finished_at = now + 1 if job_status in FINAL else None
                job.failure_reason = "script_failure" if job_status == "failed" else None
                proj.jobs[job.id] = job
                pipeline.jobs.append(job.id)
            if status in FINAL:
                pipeline.finished_at = now + 1
            self._pipeline_hook(proj, pipeline)
            return pipeline

    def _branch_of(self, proj: Project, sha: str | None) -> str | None:
        if sha is None:
            return None
        heads = proj.repo.branches()
        mrs = [
            mr.source_branch
            for mr in proj.mrs.values()
            if mr.state == "opened" and heads.get(mr.source_branch) == sha
        ]
        return mrs[0] if mrs else next((b for b, s in heads.items() if s == sha), None)

    def finish_pipeline(
        self, project: str, pipeline_id: int, status: str, *, job_status: str | None = None
    ) -> Pipeline:
        """A pipeline ends with ``status`` (its unfinished jobs too, or with ``job_status``); a
        Pipeline Hook; a success merges the MRs set to auto-merge on its commit."""
        with self.change():
            proj = self.project(project)
            pipeline = proj.pipelines[pipeline_id]
            now = self.clock()
            for job_id in pipeline.jobs:
                job = proj.jobs[job_id]
                if job.status not in FINAL:
                    job.status = job_status or status
                    job.started_at = job.started_at or now
                    job.finished_at = now
                    job.failure_reason = "script_failure" if job.status == "failed" else None
            pipeline.status, pipeline.finished_at, pipeline.updated_at = status, now, now
            pipeline.started_at = pipeline.started_at or now
            self._pipeline_hook(proj, pipeline)
            if status == "success":
                for mr in list(proj.mrs.values()):
                    if mr.state == "opened" and mr.auto_merge and self.mr_sha(proj, mr) == pipeline.sha:
                        self._merge(proj, mr, mr.auto_merge_by or "root")
            return pipeline

    def fail_pipeline(
        self,
        project: str,
        sha: str | None = None,
        jobs: list[tuple[str, str | bytes | Path]] | None = None,
        *,
        ref: str | None = None,
        source: str = "push",
    ) -> Pipeline:
        """A finished, failed pipeline on ``sha`` whose ``jobs`` ``(name, log)`` failed (a job named
        ``build`` passed before them); ``source`` ``merge_request_event`` makes it the MR's pipeline."""
        failing = [(name, "test", "failed", log) for name, log in (jobs or [("test", "FAILED\n")])]
        jobs_run: list[tuple[str, str, str, bytes | str | Path]] = [("build", "build", "success", b"ok\n")]
        return self.add_pipeline(
            project, sha, ref=ref, status="failed", jobs=jobs_run + failing, source=source
        )

    def pass_pipeline(
        self, project: str, sha: str | None = None, *, ref: str | None = None, source: str = "push"
    ) -> Pipeline:
        """A finished pipeline that succeeded; an MR set to auto-merge on ``sha`` is merged."""
        pipeline = self.add_pipeline(
            project,
            sha,
            ref=ref,
            status="running",
            jobs=[("test", "test", "running", b"ok\n")],
            source=source,
        )
        return self.finish_pipeline(project, pipeline.id, "success")

    def _pipeline_hook(self, proj: Project, pipeline: Pipeline) -> None:
        jobs = [proj.jobs[j] for j in pipeline.jobs]
        mr = None
        if pipeline.source == "merge_request_event":
            mr = next((m for m in proj.mrs.values() if self.mr_sha(proj, m) == pipeline.sha), None)
        self.emit(proj, "Pipeline Hook", self.payloads.pipeline(proj, pipeline, jobs, mr))

    def job(self, project: str, job_id: int) -> Job:
        proj = self.project(project)
        with self.lock:
            if job_id not in proj.jobs:
                raise GitLabRefused(404, "404 Job Not Found")
            return proj.jobs[job_id]

    # -- faults -------------------------------------------------------------------------------------------

    def rate_limit_next(self, n: int = 1, retry_after: float = 1.0) -> None:
        """The next ``n`` API requests are answered 429 with ``Retry-After`` and ``RateLimit-*``."""
        with self.lock:
            self._faults.extend([(429, retry_after)] * n)

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """The next ``n`` API requests are answered ``status``."""
        with self.lock:
            self._faults.extend([(status, 0.0)] * n)

    def take_fault(self) -> tuple[int, float] | None:
        with self.lock:
            return self._faults.pop(0) if self._faults else None

    def mergeability(self, project: Project, mr: MergeRequest) -> tuple[str, str, bool]:
        """:meth:`GitLabCore.mergeability`, or "checking" while ``checking`` reads are left."""
        if self.checking > 0 and mr.state == "opened":
            return "checking", "checking", False
        return super().mergeability(project, mr)


def _run(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    import os

    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    return proc.stdout.strip()
