"""A head commit's pipelines as GitLab's checks (mixed into
:class:`~baton.forge.kinds.gitlab.client.GitLabClient`): one conditional request tells whether they changed
(GitLab's ETag, else baton's own), and the failing jobs of the newest pipelines are read with a bounded,
cleaned tail of each job's log. A head may carry several pipelines (a branch's, a merge request's, a child's;
a retried one replaces the one before it on its ref): the newest of each ref and source counts.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from baton.forge.data.model import Changed, FailedCheck, ForgeError
from baton.forge.kinds.gitlab.rest import PER_PAGE, GitLabREST, project_path
from baton.forge.kinds.gitlab.text import log_text

log = logging.getLogger(__name__)

PIPELINES = 20  # a head's newest pipelines read (GitLab lists them newest first)
MAX_DETAILED = 20  # failing jobs whose log tail is read; the others are named and linked
FAILED_PIPELINES = frozenset({"failed", "canceled"})
TIMED_OUT = frozenset({"job_execution_timeout", "stuck_or_timeout_failure"})


def pipelines_etag(pipelines: Any) -> str:
    """baton's own ETag of a head's pipelines, for a GitLab (or a proxy) that sends none: their ids,
    statuses and times."""
    seen = sorted(
        f"{p.get('id')}:{p.get('status')}:{p.get('updated_at')}"
        for p in pipelines or ()
        if isinstance(p, Mapping)
    )
    return f'W/"baton-{hashlib.sha256("|".join(seen).encode()).hexdigest()[:32]}"'


class GitLabPipelines(GitLabREST):
    """:meth:`checks_changed` and :meth:`failed_checks` of GitLab's client."""

    def checks_changed(self, repo: str, sha: str, etag: str | None) -> Changed:
        """One conditional request for the head's pipelines (GitLab answers 304 to its own ETag); a
        GitLab, or a proxy, that sends no ETag gets baton's own (:func:`pipelines_etag`)."""
        headers = {"If-None-Match": etag} if etag else None
        response = self.http.request(
            "GET", self._pipelines_path(repo), params=_pipelines_query(sha), headers=headers, allow=(304,)
        )
        if response.status_code == 304:
            return Changed(False, etag)
        if response.headers.get("etag"):
            return Changed(True, response.headers["etag"])
        mine = pipelines_etag(response.json())
        return Changed(mine != etag, mine)

    def failed_checks(self, repo: str, sha: str, tail_bytes: int = 16_384) -> list[FailedCheck]:
        """The failing jobs of the head's newest pipelines (the newest of each ref and source — a branch
        pipeline, a merge request pipeline, a child pipeline — whose status is failed or canceled): each
        ``"<stage> / <job>"``, failure (cancelled, timed_out), linked to the job's page, with the bounded
        tail of its log as a person reads it (:func:`~baton.forge.kinds.gitlab.text.log_text`) for the first
        :data:`MAX_DETAILED`. A job allowed to fail is none. A failed pipeline without a failed job (its
        configuration is invalid) is named itself; a pipeline blocked on a manual job is reported like
        GitHub's ``action_required``."""
        pipelines = self.http.json("GET", self._pipelines_path(repo), params=_pipelines_query(sha)) or []
        jobs: dict[str, tuple[FailedCheck, int]] = {}
        bare, waiting = [], []
        for pipeline in latest_pipelines(pipelines, sha):
            name = f"pipeline #{pipeline.get('iid') or pipeline.get('id')}"
            url = str(pipeline.get("web_url") or "")
            if pipeline.get("status") == "manual":
                waiting.append(FailedCheck(name, "action_required", url))
            elif pipeline.get("status") in FAILED_PIPELINES:
                found = self._failed_jobs(repo, int(pipeline["id"]))
                for check, job_id in found:
                    jobs.setdefault(check.name, (check, job_id))  # the newest pipeline's, when two ran it
                if not found:
                    conclusion = "cancelled" if pipeline["status"] == "canceled" else "failure"
                    bare.append(FailedCheck(name, conclusion, url))
        failed = [
            self._with_tail(repo, check, job_id, tail_bytes) if i < MAX_DETAILED else check
            for i, (check, job_id) in enumerate(jobs.values())
        ]
        return failed + (bare if not failed else []) + waiting

    def _failed_jobs(self, repo: str, pipeline_id: int) -> list[tuple[FailedCheck, int]]:
        path = f"{project_path(repo)}/pipelines/{pipeline_id}/jobs"
        found = []
        for job in self.pages(path, {"scope[]": ["failed", "canceled"], "per_page": PER_PAGE}):
            if (
                not isinstance(job, Mapping)
                or job.get("allow_failure")
                or job.get("status") not in ("failed", "canceled")
            ):
                continue
            reason = str(job.get("failure_reason") or "")
            conclusion = "timed_out" if reason in TIMED_OUT else "failure"
            if job["status"] == "canceled":
                conclusion = "cancelled"
            name = " / ".join(str(p) for p in (job.get("stage"), job.get("name")) if p) or f"job {job['id']}"
            said = (f"failure reason: {reason}",) if reason and reason != "script_failure" else ()
            check = FailedCheck(
                name, conclusion, str(job.get("web_url") or ""), annotations=said, job_id=int(job["id"])
            )
            found.append((check, int(job["id"])))
        return found

    def _with_tail(self, repo: str, check: FailedCheck, job_id: int, tail_bytes: int) -> FailedCheck:
        try:
            data = self.http.tail(f"{project_path(repo)}/jobs/{job_id}/trace", tail_bytes)
        except ForgeError as exc:  # an erased or expired log, no permission
            log.warning("%s", exc)
            return check
        return FailedCheck(
            check.name, check.conclusion, check.url, check.steps, check.annotations, log_text(data), job_id
        )

    @staticmethod
    def _pipelines_path(repo: str) -> str:
        return f"{project_path(repo)}/pipelines"


def _pipelines_query(sha: str) -> dict[str, Any]:
    return {"sha": sha, "per_page": PIPELINES}


def latest_pipelines(pipelines: Any, sha: str) -> list[Mapping[str, Any]]:
    """The newest pipeline of each ref and source on ``sha`` (a retried or re-run pipeline replaces
    the one before it)."""
    newest: dict[tuple[str, str], Mapping[str, Any]] = {}
    for pipeline in pipelines if isinstance(pipelines, list) else ():
        if (
            not isinstance(pipeline, Mapping)
            or pipeline.get("sha") not in (sha, None)
            or "id" not in pipeline
        ):
            continue
        key = (str(pipeline.get("ref") or ""), str(pipeline.get("source") or ""))
        if key not in newest or int(pipeline["id"]) > int(newest[key]["id"]):
            newest[key] = pipeline
    return sorted(newest.values(), key=lambda p: -int(p["id"]))
