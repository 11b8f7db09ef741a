"""Gitea's REST API v1 (Gitea, and Forgejo, which keeps it) as a :class:`~baton.forge.data.model.ForgeClient`:
a thin client over :class:`~baton.forge.kinds.http.ForgeHTTP` (retries, rate limits, ETags, a log's tail, the
token's manners), reading Gitea's answers into the room's dataclasses. The shapes are those of Gitea's
swagger description (1.27; ``tests.support.gitea_spec`` checks the tests' answers against it). Where
Gitea differs from GitHub (paging, permissions, mergeable, drafts, reviews, checks and Actions logs,
bots), the method that meets it says what it does about it; what an operator sees of it: docs/forge.md
(Setting up Gitea and Forgejo).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

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
from baton.forge.kinds.gitea.inline import GiteaInline
from baton.forge.kinds.http import head_clone_url, next_link
from baton.forge.kinds.rest import RestForge, epoch, iso, log_text, repo_path

log = logging.getLogger(__name__)

LIMIT = 50  # Gitea's default MAX_RESPONSE_ITEMS: a larger limit is cut to it anyway
MAX_PAGES = 200
RUN_PAGES = 2  # Actions runs read for a head: the newest 100
WIP = "WIP: "
WIP_PREFIXES = ("WIP:", "[WIP]")  # Gitea's default WORK_IN_PROGRESS_PREFIXES
FAILING_STATUS = frozenset({"failure", "error"})
FAILING_JOB = frozenset({"failure", "cancelled"})
MAX_DETAILED = 20  # failing jobs whose steps and log are read; the others are named and linked
ACTIONS_USER_ID = -2
_REVIEW_STATES = {"APPROVED": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}
_PERMISSIONS = {"owner": "admin", "admin": "admin", "write": "write", "read": "read", "none": "none"}
_JOB_LINK = re.compile(r"/actions/runs/(\d+)/jobs/(\d+)/?$")


def actor(user: Mapping[str, Any] | None) -> Actor:
    """Who a payload's ``user`` is; a deleted account is Gitea's ``Ghost`` (id -1). Gitea's API has no bot
    flag: the Actions user (id -2, ``gitea-actions``/``forgejo-actions``) and logins ending in ``[bot]``
    or ``-bot`` are bots."""
    if not user:
        return Actor("Ghost")
    login = str(user.get("login") or user.get("username") or "Ghost")
    bot = user.get("id") == ACTIONS_USER_ID or login.endswith(("[bot]", "-bot"))
    return Actor(login, bot=bot)


def _draft(title: str) -> bool:
    return title.upper().startswith(tuple(p.upper() for p in WIP_PREFIXES))


def _issue_info(issue: Mapping[str, Any]) -> ThreadInfo:
    pull = issue.get("pull_request")
    return ThreadInfo(
        number=int(issue["number"]),
        is_pr=pull is not None,
        state=str(issue.get("state") or "open"),
        title=str(issue.get("title") or ""),
        body=str(issue.get("body") or ""),
        url=str(issue.get("html_url") or ""),
        author=actor(issue.get("user")),
        merged=bool(isinstance(pull, Mapping) and (pull.get("merged") or pull.get("merged_at"))),
        labels=tuple(str(label["name"]) for label in issue.get("labels") or () if isinstance(label, Mapping)),
    )


def _pull_info(issue: Mapping[str, Any], pull: Mapping[str, Any]) -> ThreadInfo:
    """A pull request as ThreadInfo. Gitea says ``mergeable: false`` while it is still checking and for
    every work-in-progress PR (a ``WIP:`` title), as well as for a conflict: a draft's (or a closed
    one's) ``false`` says nothing and is read as unknown (``None``); an open PR's ``false`` is read as
    not mergeable."""
    info = _issue_info(issue)
    head, base = pull.get("head") or {}, pull.get("base") or {}
    merged = bool(pull.get("merged") or pull.get("merged_at"))
    state = str(pull.get("state") or info.state)
    mergeable: bool | None = pull.get("mergeable")
    if mergeable is False and (merged or state != "open" or pull.get("draft") or _draft(info.title)):
        mergeable = None  # Gitea's false for a WIP PR (or one closed) says nothing about conflicts
    return ThreadInfo(
        number=info.number,
        is_pr=True,
        state=state,
        title=info.title,
        body=info.body,
        url=str(pull.get("html_url") or info.url),
        author=info.author,
        merged=merged,
        head_sha=head.get("sha"),
        head_ref=head.get("ref"),
        base_ref=base.get("ref"),
        head_clone_url=head_clone_url(head),
        from_fork=_from_fork(head, base),
        mergeable=mergeable,
        labels=info.labels,
    )


def _from_fork(head: Mapping[str, Any], base: Mapping[str, Any]) -> bool:
    """A PR whose head lives in another repository (a deleted fork's head repo is gone: a fork still)."""
    head_repo, base_repo = head.get("repo"), base.get("repo") or {}
    if head.get("repo_id") and base.get("repo_id"):
        return bool(head["repo_id"] != base["repo_id"])
    if not head_repo:
        return True
    return bool(head_repo.get("full_name") != base_repo.get("full_name"))


def _review_comment(data: Mapping[str, Any]) -> ReviewComment:
    """An inline comment; its line is ``position`` (the new file's line), or ``original_position`` for a
    comment on a removed line."""
    line = data.get("position") or data.get("original_position") or None
    return ReviewComment(
        id=int(data["id"]),
        path=str(data.get("path") or ""),
        line=int(line) if line else None,
        diff_hunk=str(data.get("diff_hunk") or ""),
        body=str(data.get("body") or ""),
        url=str(data.get("html_url") or ""),
    )


def _job_link(url: str | None) -> tuple[int, int] | None:
    """The ``(run, job)`` numbers of a Gitea Actions link (``.../actions/runs/12/jobs/0``), if it is one."""
    match = _JOB_LINK.search(httpx.URL(url).path) if url else None
    return (int(match.group(1)), int(match.group(2))) if match else None


def status_etag(combined: Mapping[str, Any]) -> str:
    """baton's own ETag of a combined status: what changes when a status is added, changed or removed."""
    seen = sorted(
        (int(s.get("id") or 0), str(s.get("context")), str(s.get("status")), str(s.get("updated_at")))
        for s in combined.get("statuses") or ()
    )
    data = json.dumps([combined.get("state"), combined.get("total_count"), seen], separators=(",", ":"))
    return f'W/"baton-{hashlib.sha256(data.encode()).hexdigest()[:32]}"'


class GiteaClient(RestForge, GiteaInline):
    """:class:`~baton.forge.data.model.ForgeClient` for Gitea or Forgejo at ``api_url`` (``https://HOST/api/v1``)
    with ``token`` (an access token of baton's own user, sent as ``Authorization: token <t>``; scopes
    ``write:repository`` and ``write:issue``, and admin on each repository for :meth:`permission`).
    ``retries``, ``timeout`` and ``transport`` go to the shared HTTP client; ``sleep`` and ``clock`` are
    injectable for tests."""

    NAME, AUTH = "Gitea", "token"
    author = staticmethod(actor)  # how a payload's user is read (the inline threads' mixin too)
    HEADERS: ClassVar[dict[str, str]] = {"Accept": "application/json"}

    # -- paging ---------------------------------------------------------------------------------------

    def pages(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        limit: int = LIMIT,
        max_pages: int = MAX_PAGES,
    ) -> Iterator[Any]:
        """Every item of a Gitea list, asked ``page=1, 2, ...`` with ``limit``: until ``X-Total-Count``
        items came, or (without it) while ``Link`` names a next page; an empty page ends it too, and so
        does ``max_pages``. ``key`` names the list in an object page (``workflow_runs``).

        The ``Link`` URL is not followed: Gitea writes it from its configured ``ROOT_URL``, which behind
        a proxy is often not the origin baton talks to (and the token only goes to that origin)."""
        seen, first = 0, None
        for page in range(1, max_pages + 1):
            response = self.http.request("GET", path, params={**(params or {}), "page": page, "limit": limit})
            data = self._json(response)
            items = data.get(key) if key and isinstance(data, dict) else data
            if not isinstance(items, list):
                raise ForgeError(f"Gitea answered GET {path} without a list", 0)
            if items and page > 1 and items[0] == first:  # an endpoint that ignores page: the same again
                log.warning("Gitea: %s answered page %d as page 1; stopped there", path, page)
                return
            first = items[0] if items else None
            yield from items
            seen += len(items)
            total = _total(response.headers.get("x-total-count"))
            if key and isinstance(data, dict) and total is None:
                total = _total(str(data.get("total_count", "")))
            if not items or (total is not None and seen >= total):
                return
            if total is None and next_link(response.headers.get("link")) is None:
                return
        if max_pages == MAX_PAGES:
            log.warning("Gitea: stopped paging %s after %d pages", path, max_pages)

    def _all(self, path: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """An unpaged list (Gitea answers these endpoints whole: a thread's comments, a review's)."""
        data = self._json(self.http.request("GET", path, params=params))
        if not isinstance(data, list):
            raise ForgeError(f"Gitea answered GET {path} without a list", 0)
        return data

    def _json(self, response: httpx.Response) -> Any:
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError:
            raise ForgeError(
                f"Gitea answered {response.request.method} {response.url.path} with something "
                "that is not JSON",
                0,
            ) from None

    # -- who and what ---------------------------------------------------------------------------------

    def permission(self, repo: str, login: str) -> str:
        """``collaborators/{user}/permission`` answers Gitea's access mode (``owner``, ``admin``,
        ``write``, ``read``, ``none``); ``owner`` is read as ``admin``. Gitea answers it only to a site
        admin, a repository admin, or the user themselves: baton's token needs admin on the repository
        (a 403 says so)."""
        path = f"{_repo_path(repo)}/collaborators/{quote(login, safe='')}/permission"
        try:
            response = self.http.request("GET", path, allow=(404,))
        except ForgeError as exc:
            if exc.status != 403:
                raise
            hint = f"baton's Gitea user needs admin on {repo} to ask for another user's permission"
            raise ForgeError(f"{exc} ({hint})", 403) from None
        if response.status_code == 404:  # no such user (or repository)
            return "none"
        data = self._json(response) or {}
        return _PERMISSIONS.get(str(data.get("permission") or "none"), "none")

    def thread(self, repo: str, number: int, *, pr: bool = False) -> ThreadInfo:
        issue = self.http.json("GET", f"{_repo_path(repo)}/issues/{int(number)}")
        if issue.get("pull_request") is None:
            return _issue_info(issue)
        pull = self.http.json("GET", f"{_repo_path(repo)}/pulls/{int(number)}")
        return _pull_info(issue, pull)

    def updated_since(self, repo: str, since: float) -> list[ThreadInfo]:
        params = {"state": "all", "since": iso(since)}
        return [_issue_info(issue) for issue in self.pages(f"{_repo_path(repo)}/issues", params)]

    # -- conversation ---------------------------------------------------------------------------------

    def comments(
        self, repo: str, number: int, since: float | None = None, *, pr: bool = False
    ) -> list[Comment]:
        params = {"since": iso(since)} if since is not None else None
        return [
            Comment(
                id=int(c["id"]),
                author=actor(c.get("user")),
                body=str(c.get("body") or ""),
                url=str(c.get("html_url") or ""),
                at=epoch(c.get("created_at")),
            )
            for c in self._all(f"{_repo_path(repo)}/issues/{int(number)}/comments", params)
        ]

    def reviews(self, repo: str, number: int, since: float | None = None) -> list[Review]:
        path = f"{_repo_path(repo)}/pulls/{int(number)}/reviews"
        reviews = []
        # states APPROVED, REQUEST_CHANGES, COMMENT are read as GitHub's words (CHANGES_REQUESTED,
        # COMMENTED); PENDING (a draft review) and REQUEST_REVIEW (a request) are no submitted reviews
        for r in self.pages(path):
            state = _REVIEW_STATES.get(str(r.get("state") or ""))
            if state is None:  # PENDING: a draft only its author sees; REQUEST_REVIEW: a request
                continue
            if since is not None and epoch(r.get("submitted_at")) < since:
                continue  # read before: its inline comments are not asked again
            comments: tuple[ReviewComment, ...] = ()
            if r.get("comments_count", 1):
                comments = tuple(_review_comment(c) for c in self._all(f"{path}/{int(r['id'])}/comments"))
            reviews.append(
                Review(
                    id=int(r["id"]),
                    author=actor(r.get("user")),
                    state=state,
                    body=str(r.get("body") or ""),
                    commit=r.get("commit_id") or None,
                    url=str(r.get("html_url") or ""),
                    comments=comments,
                    at=epoch(r.get("submitted_at")),
                )
            )
        return reviews

    def open_pr(self, repo: str, head: str, base: str, title: str, body: str, draft: bool) -> tuple[int, str]:
        """Open a pull request from ``head`` (a branch of ``repo``, or ``owner:branch``) into ``base``, a
        draft as a ``WIP:`` title (Gitea has no draft flag to set; ``WIP:`` is its default
        work-in-progress prefix); when one is open for that head and base already (Gitea's 409), that
        one."""
        if draft and not _draft(title):
            title = WIP + title
        path = f"{_repo_path(repo)}/pulls"
        try:
            data = self.http.json(
                "POST", path, json={"title": title, "head": head, "base": base, "body": body}
            )
        except ForgeError as exc:
            if exc.status != 409 or "already exists" not in str(exc):
                raise
            data = self._open_pr_for(repo, head, base)
            if data is None:
                raise
        return int(data["number"]), str(data["html_url"])

    def _open_pr_for(self, repo: str, head: str, base: str) -> Mapping[str, Any] | None:
        """The open PR from ``head`` into ``base`` (the most recently updated first)."""
        branch = head.split(":", 1)[1] if ":" in head else head
        params = {"state": "open", "sort": "recentupdate"}
        for pull in self.pages(f"{_repo_path(repo)}/pulls", params):
            if (pull.get("head") or {}).get("ref") == branch and (pull.get("base") or {}).get("ref") == base:
                return dict(pull)
        return None

    # -- checks ---------------------------------------------------------------------------------------

    def checks_changed(self, repo: str, sha: str, etag: str | None) -> Changed:
        """Checks are commit statuses (Gitea's combined status: ``status`` per context). Gitea answers
        this endpoint without an ``ETag``, so the client makes its own from what it read
        (:func:`status_etag`: ``W/"baton-<digest>"`` of the statuses' ids, states and times) and answers
        "unchanged" when it is the one it was given: still one request per head."""
        headers = {"If-None-Match": etag} if etag else None
        response = self.http.request(
            "GET", _status_path(repo, sha), params={"limit": LIMIT}, headers=headers, allow=(304,)
        )
        if response.status_code == 304:
            return Changed(False, etag)
        if response.headers.get("etag"):  # a Gitea that sends one: its own word
            return Changed(True, response.headers["etag"])
        mine = status_etag(self._json(response) or {})
        return Changed(mine != etag, mine)

    def failed_checks(self, repo: str, sha: str, tail_bytes: int = 16_384) -> list[FailedCheck]:
        """Each failing (``failure``/``error``) status, named by its context, linked by its
        ``target_url``, its description as the annotation. For Gitea Actions (the ``actions/runs``,
        ``actions/runs/{run}/jobs`` and ``actions/jobs/{id}/logs`` endpoints, in the descriptions of
        Gitea 1.25, 1.26 and 1.27), the head's runs are read (``head_sha``), their failing jobs matched to
        the statuses by their ``/actions/runs/<n>/jobs/<m>`` link, and each matched job's failing steps
        and a bounded tail of its log are added. A server without those endpoints (an older Gitea,
        Actions disabled, Forgejo, whose API has no jobs or logs) gives the statuses alone, without
        tails; a status of another CI (Woodpecker, ...) is always alone, linked. A run waiting for a
        maintainer's approval (a fork's PR: Gitea's run status ``waiting``, Forgejo's
        ``need_approval``) is reported as ``action_required``."""
        failed = [
            FailedCheck(
                name=str(s.get("context") or "status"),
                conclusion=str(s["status"]),
                url=str(s.get("target_url") or ""),
                annotations=(str(s["description"]),) if s.get("description") else (),
            )
            for s in self.pages(_status_path(repo, sha), key="statuses")
            if s.get("status") in FAILING_STATUS
        ]
        waiting: list[FailedCheck] = []
        # read also when no status failed: a run may wait for a maintainer's approval
        jobs = self._failing_jobs(repo, sha, waiting)
        detailed = 0
        for i, check in enumerate(failed):
            link = _job_link(check.url)
            job = jobs.get(link) if link else None
            if job is None or detailed >= MAX_DETAILED:
                continue
            detailed += 1
            steps = tuple(
                str(s.get("name")) for s in job.get("steps") or () if s.get("conclusion") == "failure"
            )
            tail = self._log_tail(repo, int(job["id"]), tail_bytes)
            failed[i] = FailedCheck(
                check.name, check.conclusion, check.url, steps, check.annotations, tail, int(job["id"])
            )
        return failed + waiting

    def _failing_jobs(self, repo: str, sha: str, waiting: list[FailedCheck]) -> dict[tuple[int, int], Any]:
        """The head's failing Gitea Actions jobs by their ``(run, job)`` link numbers; the runs that wait
        for an approval go to ``waiting``. Empty where the server has no Actions API (an older Gitea,
        Actions disabled) or none of Gitea's (Forgejo lists its runs, ``commit_sha`` and
        ``need_approval``, but has no jobs or logs API: its runs only say which wait for an approval)."""
        jobs: dict[tuple[int, int], Any] = {}
        path = f"{_repo_path(repo)}/actions/runs"
        try:
            # the newest runs first; a server that ignores head_sha is not read to its oldest run
            runs = list(self.pages(path, {"head_sha": sha}, key="workflow_runs", max_pages=RUN_PAGES))
        except ForgeError as exc:
            if exc.status not in (403, 404):
                raise
            log.info("Gitea: no Actions runs for %s@%s: %s", repo, sha[:12], exc)
            return jobs
        for run in runs:
            if (run.get("head_sha") or run.get("commit_sha")) != sha:
                continue
            if run.get("status") == "waiting" or (run.get("need_approval") and not run.get("approved_by")):
                name = str(run.get("display_title") or run.get("title") or run.get("path") or "workflow")
                waiting.append(FailedCheck(name, "action_required", str(run.get("html_url") or "")))
            elif run.get("conclusion") in FAILING_JOB:
                try:
                    jobs.update(self._run_jobs(repo, int(run["id"])))
                except ForgeError as exc:
                    if exc.status not in (403, 404):
                        raise
                    log.info("Gitea: no jobs of run %s in %s: %s", run["id"], repo, exc)
        return jobs

    def _run_jobs(self, repo: str, run_id: int) -> dict[tuple[int, int], Any]:
        """A failed run's failing jobs, by both numbers a status may link them with: those of the job's own
        page (``html_url``) and, as newer Gitea links them, the run's and the job's ids. Either names
        only this head's failing jobs."""
        jobs: dict[tuple[int, int], Any] = {}
        for job in self.pages(f"{_repo_path(repo)}/actions/runs/{run_id}/jobs", key="jobs"):
            if job.get("conclusion") in FAILING_JOB:
                link = _job_link(job.get("html_url"))
                if link:
                    jobs[link] = job
                jobs.setdefault((run_id, int(job["id"])), job)
        return jobs

    def _log_tail(self, repo: str, job_id: int, tail_bytes: int) -> str:
        try:
            data = self.http.tail(f"{_repo_path(repo)}/actions/jobs/{job_id}/logs", tail_bytes)
        except ForgeError as exc:  # an expired or removed log, no permission, an older Gitea
            log.warning("%s", exc)
            return ""
        return log_text(data)


def _total(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _repo_path(repo: str) -> str:
    return repo_path(repo, "Gitea")


def _status_path(repo: str, sha: str) -> str:
    return f"{_repo_path(repo)}/commits/{quote(sha, safe='')}/status"
