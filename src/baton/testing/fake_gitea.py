"""The fake forge speaking Gitea (and so Forgejo): the same state and drive API as
:class:`~baton.testing.fake_forge.FakeForge` (users, repositories with git over HTTP, issues, pull
requests, comments, reviews, check runs, statuses), served with Gitea's REST API v1 at
``http://127.0.0.1:PORT/api/v1`` and Gitea's webhooks.

- **REST**: the routes baton's :class:`~baton.forge.gitea.GiteaClient` calls, with Gitea's paths,
  shapes (:mod:`fake_gitea_render`), paging (``page``/``limit`` cut to 50, ``X-Total-Count``, a ``Link``
  written from the server's own URL), errors (``{"message", "url"}``; 409 for a second PR of one head)
  and no ``ETag``s (Gitea's API sends none for these). Every request and answer is checked against
  Gitea's description (:mod:`gitea_spec`): a request it rejects is answered 400, and both kinds go to
  :attr:`violations`.
- **Actions**: a check run is a Gitea Actions job alone in its run; adding one also posts the commit
  status Gitea Actions posts for it (context ``"<name> (pull_request)"``, by ``gitea-actions``, linked to
  the job), and its log is served at ``/actions/jobs/{id}/logs`` (``Range`` honoured).
- **Webhooks**: Gitea's payloads (checked against its webhook structs and definitions), with
  ``X-Gitea-Event``, ``X-Gitea-Event-Type``, ``X-Gitea-Delivery``, ``X-Gitea-Signature`` (the bare hex
  HMAC-SHA256) and the Gogs and GitHub copies Gitea also sends. A review is one delivery
  (``pull_request_approved``/``_rejected``/``_comment``), without its inline comments; check runs send
  nothing (their statuses do).
"""

from __future__ import annotations

import hmac
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from hashlib import sha1, sha256
from typing import Any
from urllib.parse import parse_qs, quote

from baton.testing._http import QuietHandler
from baton.testing.fake_forge import FakeForge
from baton.testing.fake_forge_core import ApiRequest, ForgeRefused, Violation
from baton.testing.fake_forge_hooks import Delivery, new_delivery
from baton.testing.fake_forge_state import ROLES, CheckRun, Issue, parse_iso
from baton.testing.fake_gitea_render import (
    ACTIONS_USER,
    MODES,
    REVIEW_TYPES,
    STATUS_OF,
    GiteaPayloads,
    GiteaRender,
    run_state,
    wip,
)
from baton.testing.gitea_spec import SpecError, check_payload, check_request, check_response

__all__ = ["FakeGitea", "GiteaHandler", "gitea_sign"]

PREFIX = "/api/v1"
LIMIT = 50  # Gitea's MAX_RESPONSE_ITEMS
_CHUNK = 1 << 20
# the drive API's events as Gitea's: (X-Gitea-Event, X-Gitea-Event-Type, payload struct); None: not sent
_EVENTS: dict[tuple[str, str | None], tuple[str, str, str] | None] = {
    ("issues", "opened"): ("issues", "issues", "IssuePayload"),
    ("issues", "closed"): ("issues", "issues", "IssuePayload"),
    ("issues", "labeled"): ("issues", "issue_label", "IssuePayload"),
    ("issues", "assigned"): ("issues", "issue_assign", "IssuePayload"),
    ("issue_comment", "created"): ("issue_comment", "issue_comment", "IssueCommentPayload"),
    ("pull_request", "opened"): ("pull_request", "pull_request", "PullRequestPayload"),
    ("pull_request", "closed"): ("pull_request", "pull_request", "PullRequestPayload"),
    ("pull_request", "synchronize"): ("pull_request", "pull_request_sync", "PullRequestPayload"),
    ("pull_request_review", "submitted"): (
        "pull_request_comment",
        "pull_request_review_comment",
        "PullRequestPayload",
    ),
    ("pull_request_review_comment", "created"): None,
    ("check_run", "completed"): None,
    ("check_suite", "completed"): None,
    ("status", None): ("status", "status", "CommitStatusPayload"),
}


def gitea_sign(secret: str, body: bytes) -> str:
    """Gitea's ``X-Gitea-Signature``: the bare hex HMAC-SHA256 of the body."""
    return hmac.new(secret.encode(), body, sha256).hexdigest()


class FakeGitea(FakeForge):
    """The fake Gitea; ``with FakeGitea(tmp_path) as fake:``. ``violations`` holds every request, answer
    or delivery Gitea's description rejects: a test's fixture asserts it stays empty."""

    thread_name = "fake-gitea"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gitea = GiteaRender(lambda: (self.web_url, self.api_url, self.git_url), self.user)
        self.payloads = GiteaPayloads(self.gitea)  # type: ignore[assignment]
        self._status_creators: dict[int, str] = {}
        self.event_types: dict[str, str] = {}  # delivery id -> its X-Gitea-Event-Type

    @property
    def api_url(self) -> str:
        return f"{self.web_url}{PREFIX}"

    @property
    def git_url(self) -> str:
        return f"http://127.0.0.1:{self.git_port}"

    def handler_class(self) -> type[QuietHandler]:
        return GiteaHandler

    # -- Gitea Actions: a check run posts its job's commit status -------------------------------------------

    def add_check_run(
        self, repo: str, sha: str, name: str, conclusion: str | None = "failure", **kw: Any
    ) -> int:
        job_id = super().add_check_run(repo, sha, name, conclusion, **kw)
        run = self.check_run(repo, job_id)
        status, result = run_state(run)
        state = "pending" if status != "completed" else STATUS_OF.get(result, "failure")
        description = {"pending": "Waiting to run", "success": "Successful in 1s"}.get(
            state, "Failing after 1s"
        )
        link = self.gitea.job_link(self.repo(repo), run)
        self.set_status(repo, sha, f"{name} (pull_request)", state, description, link, sender=ACTIONS_USER)
        return job_id

    def set_status(
        self,
        repo: str,
        sha: str,
        context: str,
        state: str,
        description: str | None = None,
        target_url: str | None = None,
        sender: str = "woodpecker",
    ) -> int:
        """A commit status (error, failure, pending, success, warning); sends ``status``. Its id."""
        with self.lock:
            status_id = super().set_status(repo, sha, context, state, description, target_url, sender)
            self._status_creators[status_id] = sender
            return status_id

    def status_creator(self, status_id: int) -> str:
        return self._status_creators.get(status_id, ACTIONS_USER)

    # -- webhooks ---------------------------------------------------------------------------------------

    def _emit(self, event: str, action: str | None, payload: dict[str, Any]) -> None:
        mapped = _EVENTS.get((event, action))
        if mapped is None or not payload:
            return
        name, kind, envelope = mapped
        if event == "pull_request_review":
            kind, name = next(
                types for types in REVIEW_TYPES.values() if types[0] == payload["review"]["type"]
            )
        if event == "issue_comment" and payload.get("is_pull"):
            kind = "pull_request_comment"
        try:
            check_payload(envelope, payload)
        except SpecError as exc:
            self.violations.append(Violation("webhook", f"{name}.{payload.get('action')}", (str(exc),)))
        delivery = new_delivery(name, payload.get("action"), payload)
        with self.lock:
            self.event_types[delivery.id] = kind
            self.deliveries.append(delivery)
        deferred = getattr(self._local, "deferred", None)
        if deferred is not None:
            deferred.append(delivery)
        else:
            self.send(delivery)

    def send(self, delivery: Delivery, *, forged: bool = False) -> int:
        """One attempt at ``delivery``, with Gitea's headers; the receiver's status (0: no answer)."""
        if not self.deliver_to:
            return 0
        secret = self.secret + ("-forged" if forged else "")
        body = delivery.body
        hexsig = gitea_sign(secret, body)
        kind = self.event_types.get(delivery.id, delivery.event)
        headers = {"Content-Type": "application/json", "User-Agent": "Go-http-client/1.1"}
        for forge in ("Gitea", "Gogs", "GitHub"):
            headers[f"X-{forge}-Delivery"] = delivery.id
            headers[f"X-{forge}-Event"] = delivery.event
            headers[f"X-{forge}-Event-Type"] = kind
        headers["X-Gitea-Signature"] = headers["X-Gogs-Signature"] = hexsig
        headers["X-Hub-Signature"] = "sha1=" + hmac.new(secret.encode(), body, sha1).hexdigest()
        headers["X-Hub-Signature-256"] = "sha256=" + hexsig
        request = urllib.request.Request(self.deliver_to, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10.0) as response:
                response.read()
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
        except (OSError, TimeoutError):
            status = 0
        with self.lock:
            delivery.statuses.append(status)
        return status


# -- routes ---------------------------------------------------------------------------------------------

Reply = tuple[int, Any, dict[str, str]]  # status, JSON body (None: none), extra headers


class Call:
    """One API request, as a route sees it."""

    def __init__(
        self,
        fake: FakeGitea,
        login: str,
        params: dict[str, str],
        query: dict[str, list[str]],
        body: Any,
        url: str,
    ) -> None:
        self.fake, self.login, self.params, self.query, self.body, self.url = (
            fake,
            login,
            params,
            query,
            body,
            url,
        )

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    @property
    def repo_name(self) -> str:
        return f"{self.params['owner']}/{self.params['repo']}"

    def role(self) -> str:
        return self.fake.repo(self.repo_name).permissions.get(self.login, "none")

    def require(self, role: str) -> None:
        if ROLES.index(self.role()) < ROLES.index(role):
            raise ForgeRefused(403, "user does not have the permission to do this")


def _page(c: Call, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
    """Gitea's paging: ``page`` from 1, ``limit`` cut to 50; ``X-Total-Count`` and a ``Link``."""
    limit = min(LIMIT, max(1, int(c.arg("limit", str(LIMIT)) or LIMIT)))
    page = max(1, int(c.arg("page", "1") or 1))
    last = max(1, -(-len(items) // limit))
    headers = {"X-Total-Count": str(len(items))}
    if page < last:
        query = "&".join(
            f"{quote(k)}={quote(v[-1])}" for k, v in c.query.items() if k not in ("page", "limit")
        )
        base = f"{c.url}?{query + '&' if query else ''}limit={limit}"
        headers["Link"] = f'<{base}&page={page + 1}>; rel="next",<{base}&page={last}>; rel="last"'
    return items[(page - 1) * limit : page * limit], headers


def get_repo(c: Call) -> Reply:
    return 200, c.fake.gitea.repository(c.fake.repo(c.repo_name)), {}


def get_permission(c: Call) -> Reply:
    fake, repo = c.fake, c.fake.repo(c.repo_name)
    who = c.params["collaborator"]
    if c.role() != "admin" and c.login != who:
        raise ForgeRefused(
            403, "Only admins can query all permissions, repo admins can query all repo permissions"
        )
    if who not in fake.users:
        raise ForgeRefused(404, "user does not exist")
    role = repo.permissions.get(who, "none")
    mode = "owner" if who == repo.owner else MODES.get(role, "read")  # a public repository: read for anyone
    return 200, {"permission": mode, "role_name": mode, "user": fake.gitea.user(who)}, {}


def list_issues(c: Call) -> Reply:
    fake, repo = c.fake, c.fake.repo(c.repo_name)
    state, since, kind = c.arg("state", "open"), c.arg("since"), c.arg("type")
    labels = set(filter(None, (c.arg("labels") or "").split(",")))
    with c.fake.lock:
        issues = [
            i
            for i in repo.issues.values()
            if state in ("all", i.state)
            and (since is None or i.updated_at >= int(parse_iso(since)))
            and (not labels or labels & set(i.labels))
            and kind in (None, "pulls" if i.pr else "issues")
        ]
        issues.sort(key=lambda i: i.number, reverse=True)
        page, headers = _page(c, issues)
        return 200, [fake.gitea.issue(repo, i) for i in page], headers


def get_issue(c: Call) -> Reply:
    return (
        200,
        c.fake.gitea.issue(c.fake.repo(c.repo_name), c.fake.issue(c.repo_name, int(c.params["index"]))),
        {},
    )


def _pull(c: Call, number: int) -> Any:
    repo, issue = c.fake.repo(c.repo_name), c.fake.issue(c.repo_name, number)
    if issue.pr is None:
        raise ForgeRefused(404, "pull request does not exist")
    count = sum(len(r.comments) for r in c.fake.reviews(c.repo_name, number))
    return c.fake.gitea.pull(repo, issue, count)


def get_pull(c: Call) -> Reply:
    return 200, _pull(c, int(c.params["index"])), {}


def list_pulls(c: Call) -> Reply:
    state = c.arg("state", "open")
    with c.fake.lock:
        prs: list[Issue] = [p for p in c.fake.pulls(c.repo_name) if state in ("all", p.state)]
        newest = c.arg("sort") in ("recentupdate", None)
        prs.sort(key=lambda p: (p.updated_at, p.number), reverse=newest)
        page, headers = _page(c, prs)
        return 200, [_pull(c, p.number) for p in page], headers


def create_pull(c: Call) -> Reply:
    c.require("write")
    body = c.body
    title = body.get("title") or ""
    try:
        number = c.fake.open_pr(
            c.repo_name, c.login, body["head"], body["base"], title, body.get("body") or "", wip(title)
        )
    except ForgeRefused as exc:
        if "already exists" in exc.message:
            targets = f"[head_branch: {body['head']}, base_branch: {body['base']}]"
            raise ForgeRefused(409, f"pull request already exists for these targets {targets}") from None
        raise
    return 201, _pull(c, number), {}


def list_comments(c: Call) -> Reply:
    repo_name, number = c.repo_name, int(c.params["index"])
    issue, since = c.fake.issue(repo_name, number), c.arg("since")
    with c.fake.lock:
        comments = [
            x
            for x in c.fake.comments(repo_name, number)
            if since is None or x.updated_at >= int(parse_iso(since))
        ]
        repo = c.fake.repo(repo_name)
        body = [c.fake.gitea.comment(repo, x, issue.pr is not None) for x in comments]
        return 200, body, {"X-Total-Count": str(len(body))}


def create_comment(c: Call) -> Reply:
    number = int(c.params["index"])
    issue = c.fake.issue(c.repo_name, number)
    comment_id = c.fake.comment(c.repo_name, number, c.login, c.body["body"])
    comment = next(x for x in c.fake.comments(c.repo_name, number) if x.id == comment_id)
    return 201, c.fake.gitea.comment(c.fake.repo(c.repo_name), comment, issue.pr is not None), {}


def edit_comment(c: Call) -> Reply:
    comment_id = int(c.params["id"])
    found = [x for x in c.fake.comments(c.repo_name) if x.id == comment_id]
    if not found:
        raise ForgeRefused(404, "comment does not exist")
    if found[0].author != c.login:
        c.require("write")
    comment = c.fake.edit_comment(comment_id, c.body["body"])
    issue = c.fake.issue(c.repo_name, comment.number)
    return 200, c.fake.gitea.comment(c.fake.repo(c.repo_name), comment, issue.pr is not None), {}


def list_reviews(c: Call) -> Reply:
    repo = c.fake.repo(c.repo_name)
    page, headers = _page(c, c.fake.reviews(c.repo_name, int(c.params["index"])))
    return 200, [c.fake.gitea.review(repo, r) for r in page], headers


def list_review_comments(c: Call) -> Reply:
    number, review_id = int(c.params["index"]), int(c.params["id"])
    review = next((r for r in c.fake.reviews(c.repo_name, number) if r.id == review_id), None)
    if review is None:
        raise ForgeRefused(404, "review does not exist")
    repo = c.fake.repo(c.repo_name)
    return 200, [c.fake.gitea.review_comment(repo, number, x) for x in review.comments], {}


def _sha(c: Call) -> str:
    ref = c.params["ref"]
    return c.fake.repo(c.repo_name).head(ref) or ref


def combined_status(c: Call) -> Reply:
    fake, sha, repo = c.fake, _sha(c), c.fake.repo(c.repo_name)
    with c.fake.lock:
        latest = {s.context: s for s in repo.statuses if s.sha == sha}
        statuses = sorted(latest.values(), key=lambda s: s.id, reverse=True)
        states = {s.state for s in statuses}
        worst = next(
            (s for s in ("error", "failure", "pending", "warning", "success") if s in states), "pending"
        )
        page, headers = _page(c, statuses)
        body = {
            "state": worst if statuses else "pending",
            "sha": sha,
            "total_count": len(statuses),
            "statuses": [fake.gitea.status(repo, s, fake.status_creator(s.id)) for s in page],
            "repository": fake.gitea.repository(repo),
            "commit_url": f"{fake.api_url}/repos/{repo.full_name}/commits/{sha}",
            "url": f"{fake.api_url}/repos/{repo.full_name}/commits/{sha}/status",
        }
        return 200, body, headers


def _runs(c: Call) -> list[CheckRun]:
    return list(c.fake.repo(c.repo_name).check_runs)


def list_runs(c: Call) -> Reply:
    fake, repo, head = c.fake, c.fake.repo(c.repo_name), c.arg("head_sha")
    with c.fake.lock:
        runs = sorted(
            (r for r in _runs(c) if head in (None, r.head_sha)), key=lambda r: r.suite_id, reverse=True
        )
        page, headers = _page(c, runs)
        body = {"total_count": len(runs), "workflow_runs": [fake.gitea.workflow_run(repo, r) for r in page]}
        return 200, body, headers


def list_run_jobs(c: Call) -> Reply:
    fake, repo = c.fake, c.fake.repo(c.repo_name)
    with c.fake.lock:
        jobs = [r for r in _runs(c) if r.suite_id == int(c.params["run"])]
        if not jobs:
            raise ForgeRefused(404, "run does not exist")
        page, headers = _page(c, jobs)
        return 200, {"total_count": len(jobs), "jobs": [fake.gitea.job(repo, r) for r in page]}, headers


ROUTES: list[tuple[str, str, Callable[[Call], Reply]]] = [
    ("GET", "/repos/{owner}/{repo}", get_repo),
    ("GET", "/repos/{owner}/{repo}/collaborators/{collaborator}/permission", get_permission),
    ("GET", "/repos/{owner}/{repo}/issues", list_issues),
    ("GET", "/repos/{owner}/{repo}/issues/{index}", get_issue),
    ("GET", "/repos/{owner}/{repo}/pulls", list_pulls),
    ("POST", "/repos/{owner}/{repo}/pulls", create_pull),
    ("GET", "/repos/{owner}/{repo}/pulls/{index}", get_pull),
    ("GET", "/repos/{owner}/{repo}/issues/{index}/comments", list_comments),
    ("POST", "/repos/{owner}/{repo}/issues/{index}/comments", create_comment),
    ("PATCH", "/repos/{owner}/{repo}/issues/comments/{id}", edit_comment),
    ("GET", "/repos/{owner}/{repo}/pulls/{index}/reviews", list_reviews),
    ("GET", "/repos/{owner}/{repo}/pulls/{index}/reviews/{id}/comments", list_review_comments),
    ("GET", "/repos/{owner}/{repo}/commits/{ref}/status", combined_status),
    ("GET", "/repos/{owner}/{repo}/actions/runs", list_runs),
    ("GET", "/repos/{owner}/{repo}/actions/runs/{run}/jobs", list_run_jobs),
]


class GiteaHandler(QuietHandler):
    """Gitea's API: faults, the token (``token`` or ``Bearer``), the route, the description's checks."""

    owner: FakeGitea
    timeout = 120

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        path, _, query = self.path.partition("?")
        fake = self.owner
        logs = path.removeprefix(PREFIX).split("/")
        if (
            self.command == "GET"
            and len(logs) == 8
            and logs[4:6] == ["actions", "jobs"]
            and logs[7] == "logs"
        ):
            status = self._job_log(f"{logs[2]}/{logs[3]}", logs[6])
            fake.requests.append(ApiRequest(self.command, path.removeprefix(PREFIX), status, query))
            return
        body = self._body()
        fake._local.deferred = []
        with fake.pending:
            try:
                status, obj, headers = self._api(path, query, body)
            finally:
                deferred, fake._local.deferred = fake._local.deferred, None
            fake.requests.append(ApiRequest(self.command, path.removeprefix(PREFIX), status, query))
            payload = b"" if obj is None else json.dumps(obj).encode()
            self._send(status, payload, "application/json;charset=utf-8", headers)
            for delivery in deferred:
                fake.send(delivery)

    def _user(self) -> str | None:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        user = self.owner.user_by_token(token.strip()) if scheme.lower() in ("token", "bearer") else None
        return None if user is None else user.login

    def _api(self, path: str, query: str, body: bytes) -> Reply:
        fake = self.owner
        fault = fake.take_fault()
        if fault and fault[0] == "stall":
            time.sleep(fault[1])
        elif fault:
            return int(fault[1]), fake.gitea.error("injected failure"), {}
        login = self._user()
        if login is None:
            return 401, fake.gitea.error("token is required"), {}
        sub = path.removeprefix(PREFIX)
        found = _route(self.command, sub) if path.startswith(PREFIX + "/") else None
        if found is None:
            return 404, fake.gitea.error("The target couldn't be found."), {}
        handler, params = found
        params_q = parse_qs(query, keep_blank_values=True)
        what = f"{self.command} {sub}"
        try:
            data = json.loads(body) if body else None
            check_request(self.command, sub, {k: v[-1] for k, v in params_q.items()}, data)
        except (SpecError, ValueError) as exc:
            fake.violations.append(Violation("request", what, (str(exc),)))
            return 400, fake.gitea.error(f"invalid request: {exc}"), {}
        call = Call(fake, login, params, params_q, data, f"{fake.api_url}{quote(sub)}")
        try:
            status, obj, headers = handler(call)
        except ForgeRefused as exc:
            status, obj, headers = exc.status, fake.gitea.error(exc.message), {}
        try:
            check_response(self.command, sub, status, obj)
        except SpecError as exc:
            fake.violations.append(Violation("response", f"{what} → {status}", (str(exc),)))
        return status, obj, headers

    def _job_log(self, repo: str, job: str) -> int:
        """A job's log as Gitea serves it (``text/plain``, ``Range`` honoured), to a token with access."""
        fake = self.owner
        if self._user() is None:
            self._send(401, json.dumps(fake.gitea.error("token is required")).encode(), "application/json")
            return 401
        try:
            run = fake.check_run(repo, int(job))
        except (ForgeRefused, ValueError):
            self._send(404, json.dumps(fake.gitea.error("job does not exist")).encode(), "application/json")
            return 404
        size = run.log_size()
        span = _range(self.headers.get("Range"), size)
        if span is not None and span[0] >= span[1]:
            self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
            return 416
        start, end = span or (0, size)
        self.send_response(206 if span else 200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Accept-Ranges", "bytes")
        if span:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.send_header("Content-Length", str(end - start))
        self.end_headers()
        for offset in range(start, end, _CHUNK):
            self.wfile.write(run.log_slice(offset, min(end, offset + _CHUNK)))
        return 206 if span else 200


_COMPILED = [
    (method, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"), handler)
    for method, template, handler in ROUTES
]


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` of a single ``bytes=`` range (None without one); an empty span when unsatisfiable."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header.removeprefix("bytes=").strip().partition("-")
    try:
        if first == "":
            n = int(last)
            return (max(0, size - n), size) if n > 0 and size > 0 else (0, 0)
        start = int(first)
        end = min(size, int(last) + 1) if last else size
    except ValueError:
        return None
    return (start, end) if start < size and start < end else (0, 0)


def _route(method: str, path: str) -> tuple[Callable[[Call], Reply], dict[str, str]] | None:
    for m, pattern, handler in _COMPILED:
        if m == method and (match := pattern.match(path)):
            return handler, match.groupdict()
    return None
