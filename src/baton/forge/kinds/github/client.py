"""GitHub's REST API (github.com and GitHub Enterprise Server) as a
:class:`~baton.forge.data.model.ForgeClient`: a thin client over :class:`~baton.forge.kinds.http.ForgeHTTP`
(retries, rate limits, pagination, ETags, the token's manners), reading GitHub's answers into the room's
dataclasses. The endpoints are those of GitHub's REST API v3 (``X-GitHub-Api-Version: 2022-11-28``);
``api_url`` is ``https://api.github.com`` or an Enterprise server's ``https://HOST/api/v3``. What a failing
check says is :meth:`GitHubClient.failed_checks`'s; check runs GitHub refuses to a fine-grained token (a
private repository) leave the commit statuses to read: :attr:`GitHubClient.refused_checks`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import quote

from baton.forge.data.model import (
    Actor,
    Changed,
    Comment,
    FailedCheck,
    ForgeError,
    Review,
    ReviewComment,
    ThreadInfo,
)
from baton.forge.kinds.github.inline import GitHubInline
from baton.forge.kinds.http import Auth, RateLimited, head_clone_url
from baton.forge.kinds.rest import RestForge, epoch, iso, log_text, repo_path

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
PER_PAGE = 100
# a check run's conclusions that are a failure to act on (action_required: waiting for a human's approval)
FAILING = frozenset({"failure", "timed_out", "cancelled", "action_required", "startup_failure"})
FAILING_STATUS = frozenset({"failure", "error"})
ROLES = frozenset({"admin", "maintain", "write", "triage", "read", "none"})
MAX_ANNOTATIONS = 50  # per check run: the first page of them
MAX_DETAILED = 20  # check runs whose job, annotations and log are read; the others are named and linked
RETRY_REFUSED = 3600.0  # seconds before check runs the forge refused are asked again
_JOB_URL = re.compile(r"/job/(\d+)(?:[/?#]|$)")


def actor(user: dict[str, Any] | None, association: str | None = None) -> Actor:
    """Who a payload's ``user`` is; a deleted account is GitHub's ``ghost``."""
    if not user:
        return Actor("ghost", association=association)
    login = str(user.get("login") or "ghost")
    return Actor(login, bot=user.get("type") == "Bot" or login.endswith("[bot]"), association=association)


def _issue_info(issue: dict[str, Any]) -> ThreadInfo:
    pull = issue.get("pull_request")
    return ThreadInfo(
        number=int(issue["number"]),
        is_pr=pull is not None,
        state=str(issue.get("state") or "open"),
        title=str(issue.get("title") or ""),
        body=str(issue.get("body") or ""),
        url=str(issue.get("html_url") or ""),
        author=actor(issue.get("user"), issue.get("author_association")),
        merged=bool(isinstance(pull, dict) and pull.get("merged_at")),
        labels=tuple(str(label["name"]) for label in issue.get("labels") or () if isinstance(label, dict)),
    )


def _pull_info(issue: dict[str, Any], pull: dict[str, Any]) -> ThreadInfo:
    info = _issue_info(issue)
    head, base = pull.get("head") or {}, pull.get("base") or {}
    head_repo, base_repo = head.get("repo"), base.get("repo") or {}
    return ThreadInfo(
        number=info.number,
        is_pr=True,
        state=str(pull.get("state") or info.state),
        title=info.title,
        body=info.body,
        url=str(pull.get("html_url") or info.url),
        author=info.author,
        merged=bool(pull["merged"] if "merged" in pull else pull.get("merged_at")),
        head_sha=head.get("sha"),
        head_ref=head.get("ref"),
        base_ref=base.get("ref"),
        head_clone_url=head_clone_url(head),
        # a deleted fork's head repo is null: it was a fork all the same
        from_fork=head_repo is None or head_repo.get("full_name") != base_repo.get("full_name"),
        mergeable=pull.get("mergeable"),
        labels=info.labels,
    )


def _review_comment(data: dict[str, Any]) -> ReviewComment:
    line = data.get("line")
    return ReviewComment(
        id=int(data["id"]),
        path=str(data.get("path") or ""),
        line=int(line) if line is not None else _int_or_none(data.get("original_line")),
        diff_hunk=str(data.get("diff_hunk") or ""),
        body=str(data.get("body") or ""),
        url=str(data.get("html_url") or ""),
    )


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None else None


def _annotation(data: dict[str, Any]) -> str:
    where = str(data.get("path") or "")
    if data.get("start_line"):
        where += f":{data['start_line']}"
    message = " ".join(str(data.get("message") or data.get("title") or "").split())
    return f"{where}: {message}" if where else message


class GitHubClient(RestForge, GitHubInline):
    """:class:`~baton.forge.data.model.ForgeClient` for GitHub at ``api_url`` with ``token`` (a fine-grained
    token, or a GitHub App installation's token). ``retries``, ``timeout`` and ``transport`` go to the
    shared HTTP client; ``sleep`` and ``clock`` are injectable for tests."""

    NAME, AUTH = "GitHub", "Bearer"
    author = staticmethod(actor)  # how a payload's user is read (the inline threads' mixin too)
    HEADERS: ClassVar[dict[str, str]] = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
    }

    # -- who and what ---------------------------------------------------------------------------------

    def permission(self, repo: str, login: str) -> str:
        path = f"{_repo_path(repo)}/collaborators/{quote(login, safe='')}/permission"
        response = self.http.request("GET", path, allow=(404,))
        if response.status_code == 404:
            return "none"
        data = response.json()
        # role_name is the finer one (maintain, triage); a custom role's name is not, its base is permission
        role = str(data.get("role_name") or "")
        return role if role in ROLES else str(data.get("permission") or "none")

    def thread(self, repo: str, number: int, *, pr: bool = False) -> ThreadInfo:
        issue = self.http.json("GET", f"{_repo_path(repo)}/issues/{int(number)}")
        if issue.get("pull_request") is None:
            return _issue_info(issue)
        pull = self.http.json("GET", f"{_repo_path(repo)}/pulls/{int(number)}")
        return _pull_info(issue, pull)

    def updated_since(self, repo: str, since: float) -> list[ThreadInfo]:
        params = {
            "state": "all",
            "sort": "updated",
            "direction": "asc",
            "since": iso(since),
            "per_page": PER_PAGE,
        }
        return [_issue_info(issue) for issue in self.http.pages(f"{_repo_path(repo)}/issues", params)]

    # -- conversation ---------------------------------------------------------------------------------

    def comments(
        self, repo: str, number: int, since: float | None = None, *, pr: bool = False
    ) -> list[Comment]:
        params: dict[str, Any] = {"per_page": PER_PAGE}
        if since is not None:
            params["since"] = iso(since)
        return [
            Comment(
                id=int(c["id"]),
                author=actor(c.get("user"), c.get("author_association")),
                body=str(c.get("body") or ""),
                url=str(c.get("html_url") or ""),
                at=epoch(c.get("created_at")),
            )
            for c in self.http.pages(f"{_repo_path(repo)}/issues/{int(number)}/comments", params)
        ]

    def reviews(self, repo: str, number: int, since: float | None = None) -> list[Review]:
        path = f"{_repo_path(repo)}/pulls/{int(number)}/reviews"
        reviews = []
        for r in self.http.pages(path, {"per_page": PER_PAGE}):
            if r.get("state") == "PENDING":  # a draft only its author sees: not submitted
                continue
            if since is not None and epoch(r.get("submitted_at")) < since:
                continue  # read before: its inline comments are not asked again (one request each)
            comments = tuple(
                _review_comment(c)
                for c in self.http.pages(f"{path}/{int(r['id'])}/comments", {"per_page": PER_PAGE})
            )
            reviews.append(
                Review(
                    id=int(r["id"]),
                    author=actor(r.get("user"), r.get("author_association")),
                    state=str(r.get("state") or ""),
                    body=str(r.get("body") or ""),
                    commit=r.get("commit_id"),
                    url=str(r.get("html_url") or ""),
                    comments=comments,
                    at=epoch(r.get("submitted_at")),
                )
            )
        return reviews

    def open_pr(self, repo: str, head: str, base: str, title: str, body: str, draft: bool) -> tuple[int, str]:
        """Open a pull request from ``head`` (a branch of ``repo``, or ``owner:branch``) into ``base``;
        when one is open for that head already, that one."""
        path = f"{_repo_path(repo)}/pulls"
        payload = {"title": title, "head": head, "base": base, "body": body, "draft": draft}
        try:
            data = self.http.json("POST", path, json=payload)
        except ForgeError as exc:
            if exc.status != 422 or "already exists" not in str(exc):
                raise
            owner_head = head if ":" in head else f"{repo.split('/')[0]}:{head}"
            found = self.http.json("GET", path, params={"head": owner_head, "state": "open", "per_page": 1})
            if not found:
                raise
            data = found[0]
        return int(data["number"]), str(data["html_url"])

    # -- checks ---------------------------------------------------------------------------------------

    def __init__(self, api_url: str, token: str | Auth, **kwargs: Any) -> None:
        super().__init__(api_url, token, **kwargs)
        # Repositories whose check runs the forge refused: its words and when. GitHub may answer 403 to a
        # fine-grained token's check-run reads on a private repository (check runs are an App
        # permission); that is no reason to lose the failing *commit statuses* the token can read, so a
        # refused read counts as "no check runs", said once in the log and kept here (the dispatcher
        # notes it on the thread, ``baton forge test`` says it), and the reconcile's conditional request
        # watches the combined status instead. Check runs are asked again after RETRY_REFUSED seconds
        # (a token given the permission meanwhile).
        self.refused_checks: dict[str, tuple[str, float]] = {}

    def _check_runs_usable(self, repo: str) -> bool:
        refused = self.refused_checks.get(repo)
        return refused is None or time.time() - refused[1] >= RETRY_REFUSED

    def _refused(self, repo: str, exc: ForgeError) -> bool:
        """Whether ``exc`` is the forge refusing check runs (then remembered, logged once)."""
        if exc.status != 403 or isinstance(exc, RateLimited):
            return False
        if repo not in self.refused_checks:
            log.warning(
                "%s: check runs cannot be read (%s); CI failures are read from commit statuses only",
                repo,
                exc,
            )
        self.refused_checks[repo] = (str(exc), time.time())
        return True

    def webhooks(self, repo: str) -> list[tuple[str, frozenset[str]]]:
        """The repository's webhooks (``baton forge test``): each one's URL and events (``*``: all).
        GitHub tells them to an admin of the repository only (ForgeError 403/404 otherwise)."""
        found = []
        for hook in self.http.pages(f"{_repo_path(repo)}/hooks", {"per_page": PER_PAGE}):
            if hook.get("active", True):
                url = str((hook.get("config") or {}).get("url") or "")
                found.append((url, frozenset(str(e) for e in hook.get("events") or ())))
        return found

    def check_runs_refusal(self, repo: str, ref: str) -> str | None:
        """The forge's words when it refuses to read the check runs of ``ref`` (``baton forge test``),
        else None."""
        try:
            self.http.request("GET", _check_runs_path(repo, ref), params={"per_page": 1})
        except ForgeError as exc:
            if self._refused(repo, exc):
                return str(exc)
            raise
        self.refused_checks.pop(repo, None)
        return None

    def checks_changed(self, repo: str, sha: str, etag: str | None) -> Changed:
        if self._check_runs_usable(repo):
            try:
                return self.http.changed(_check_runs_path(repo, sha), etag, params={"per_page": PER_PAGE})
            except ForgeError as exc:
                if not self._refused(repo, exc):
                    raise
        return self.http.changed(_status_path(repo, sha), etag, params={"per_page": PER_PAGE})

    def failed_checks(self, repo: str, sha: str, tail_bytes: int = 16_384) -> list[FailedCheck]:
        """The commit's check runs that failed (and those waiting for a human: ``action_required``) and
        its failing commit statuses; each check run with its first annotations, and — for a GitHub
        Actions job (a check run's id is its job's id; its URL ends ``/job/<id>``) — the failing steps'
        names and the last ``tail_bytes`` of its log, asked with a ``Range`` request of the download the
        API redirects to (never the whole log: the check's ``url`` links it). A check's details that
        cannot be read (an expired log, a missing permission) leave its fields empty rather than hide
        the failure itself."""
        failed: list[FailedCheck] = []
        if self._check_runs_usable(repo):
            try:
                runs = self.http.pages(_check_runs_path(repo, sha), {"per_page": PER_PAGE}, key="check_runs")
                for run in runs:
                    if run.get("conclusion") in FAILING:
                        detailed = len(failed) < MAX_DETAILED
                        failed.append(
                            self._failed_run(repo, run, tail_bytes) if detailed else _plain_run(run)
                        )
                self.refused_checks.pop(repo, None)
            except ForgeError as exc:
                if not self._refused(repo, exc):
                    raise
        failed.extend(self._failed_statuses(repo, sha))
        return failed

    def _failed_run(self, repo: str, run: dict[str, Any], tail_bytes: int) -> FailedCheck:
        check = _plain_run(run)
        annotations: tuple[str, ...] = ()
        if (run.get("output") or {}).get("annotations_count"):
            annotations = self._annotations(repo, int(run["id"]))
        job_id = _job_id(run)
        if job_id is None:
            return FailedCheck(check.name, check.conclusion, check.url, annotations=annotations)
        name, steps = self._job(repo, job_id, check.name)
        tail = self._log_tail(repo, job_id, tail_bytes) if check.conclusion != "action_required" else ""
        return FailedCheck(name, check.conclusion, check.url, steps, annotations, tail, job_id)

    def _annotations(self, repo: str, check_run_id: int) -> tuple[str, ...]:
        path = f"{_repo_path(repo)}/check-runs/{check_run_id}/annotations"
        try:
            data = self.http.json("GET", path, params={"per_page": MAX_ANNOTATIONS})
        except ForgeError as exc:
            log.warning("%s", exc)
            return ()
        return tuple(_annotation(a) for a in (data or ())[:MAX_ANNOTATIONS])

    def _job(self, repo: str, job_id: int, name: str) -> tuple[str, tuple[str, ...]]:
        """A workflow job's "workflow / job" name and its failed steps."""
        try:
            job = self.http.json("GET", f"{_repo_path(repo)}/actions/jobs/{job_id}")
        except ForgeError as exc:
            log.warning("%s", exc)
            return name, ()
        steps = tuple(str(s.get("name")) for s in job.get("steps") or () if s.get("conclusion") == "failure")
        workflow, job_name = job.get("workflow_name"), job.get("name") or name
        return (f"{workflow} / {job_name}" if workflow else str(job_name)), steps

    def _log_tail(self, repo: str, job_id: int, tail_bytes: int) -> str:
        try:
            data = self.http.tail(f"{_repo_path(repo)}/actions/jobs/{job_id}/logs", tail_bytes)
        except ForgeError as exc:  # an expired log (410), no actions:read permission (403), ...
            log.warning("%s", exc)
            return ""
        return log_text(data)

    def _failed_statuses(self, repo: str, sha: str) -> Iterator[FailedCheck]:
        """The failing commit statuses (the combined status holds the latest of each context)."""
        combined = self.http.json("GET", _status_path(repo, sha), params={"per_page": PER_PAGE})
        for status in combined.get("statuses") or ():
            if status.get("state") in FAILING_STATUS:
                description = str(status.get("description") or "")
                yield FailedCheck(
                    name=str(status.get("context") or "status"),
                    conclusion=str(status["state"]),
                    url=str(status.get("target_url") or ""),
                    annotations=(description,) if description else (),
                )


def _plain_run(run: dict[str, Any]) -> FailedCheck:
    """A failed check run named and linked, without its details."""
    url = str(run.get("html_url") or run.get("details_url") or "")
    return FailedCheck(str(run.get("name") or "check"), str(run["conclusion"]), url, job_id=_job_id(run))


def _job_id(run: dict[str, Any]) -> int | None:
    """A GitHub Actions check run's job id (the same as the check run's), from its ``/job/<id>`` URL."""
    for key in ("details_url", "html_url"):
        match = _JOB_URL.search(str(run.get(key) or ""))
        if match:
            return int(match.group(1))
    return None


def _repo_path(repo: str) -> str:
    return repo_path(repo, "GitHub")


def _check_runs_path(repo: str, sha: str) -> str:
    return f"{_repo_path(repo)}/commits/{quote(sha, safe='')}/check-runs"


def _status_path(repo: str, sha: str) -> str:
    return f"{_repo_path(repo)}/commits/{quote(sha, safe='')}/status"
