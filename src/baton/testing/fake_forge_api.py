"""The fake forge's REST API: GitHub's routes under ``/api/v3``, each request and response checked
against GitHub's OpenAPI description, and the log downloads that ``…/actions/jobs/{id}/logs``
redirects to.

Order of a request: the next injected fault (a stall, a failure), the token (401 without a known one),
the route (404), the description's check of the request (400 with the errors), the handler (its
:class:`~baton.testing.fake_forge.ForgeRefused` becomes GitHub's error), the ETag (304 when
``If-None-Match`` names it), the description's check of the response (a violation when it fails),
the reply — and then the webhook deliveries the request caused, so a receiver that calls back into the
API never waits on the request that caused its delivery.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from baton.testing._http import QuietHandler
from baton.testing.fake_forge_core import ApiRequest, ForgeRefused, Violation
from baton.testing.fake_forge_state import ROLES, parse_iso
from baton.testing.fake_forge_threads import ForgeThreads

Reply = tuple[int, Any, dict[str, str]]  # status, JSON body (None: none), extra headers
Handler = Callable[["Call"], Reply]

_CHUNK = 1 << 20


class Call:
    """One API request, as a route handler sees it."""

    def __init__(
        self,
        fake: ForgeThreads,
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
            raise ForgeRefused(403, "Resource not accessible by personal access token")

    def page(self, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        """One page of ``items`` (``per_page`` ≤ 100, default 30) and its ``Link`` header."""
        per_page = min(100, max(1, int(self.arg("per_page", "30") or 30)))
        page = max(1, int(self.arg("page", "1") or 1))
        last = max(1, -(-len(items) // per_page))
        links = []

        def link(n: int, rel: str) -> str:
            query = {k: v[-1] for k, v in self.query.items()}
            query.update(per_page=str(per_page), page=str(n))
            return f'<{self.url}?{urlencode(query)}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        return items[(page - 1) * per_page : page * per_page], {"Link": ", ".join(links)} if links else {}


# -- route handlers ---------------------------------------------------------------------------------------


def get_repo(c: Call) -> Reply:
    return 200, c.fake.render.repository(c.fake.repo(c.repo_name)), {}


def get_permission(c: Call) -> Reply:
    repo = c.fake.repo(c.repo_name)
    if c.params["username"] not in c.fake.users:
        raise ForgeRefused(404, f"{c.params['username']} is not a user")
    return 200, c.fake.render.permission(repo, c.params["username"]), {}


def list_issues(c: Call) -> Reply:
    repo = c.fake.repo(c.repo_name)
    state, since = c.arg("state", "open"), c.arg("since")
    labels = set(filter(None, (c.arg("labels") or "").split(",")))
    with c.fake.lock:
        issues = [
            i
            for i in repo.issues.values()
            if state in ("all", i.state)
            and (since is None or i.updated_at >= int(parse_iso(since)))
            and labels <= set(i.labels)
        ]
        key = "updated_at" if c.arg("sort") == "updated" else "created_at"
        issues.sort(key=lambda i: (getattr(i, key), i.number), reverse=c.arg("direction", "desc") == "desc")
        page, headers = c.page(issues)
        return 200, [c.fake.render.issue(repo, i) for i in page], headers


def get_issue(c: Call) -> Reply:
    repo = c.fake.repo(c.repo_name)
    return 200, c.fake.render.issue(repo, c.fake.issue(c.repo_name, int(c.params["issue_number"]))), {}


def _pull(c: Call, number: int) -> Any:
    repo, issue = c.fake.repo(c.repo_name), c.fake.issue(c.repo_name, number)
    if issue.pr is None:
        raise ForgeRefused(404, "Not Found")
    count = sum(len(r.comments) for r in c.fake.reviews(c.repo_name, number))
    return c.fake.render.pull(repo, issue, count)


def get_pull(c: Call) -> Reply:
    return 200, _pull(c, int(c.params["pull_number"])), {}


def list_pulls(c: Call) -> Reply:
    state, head, base = c.arg("state", "open"), c.arg("head"), c.arg("base")
    with c.fake.lock:
        prs = [
            p
            for p in c.fake.pulls(c.repo_name)
            if p.pr
            and state in ("all", p.state)
            and head in (None, p.pr.head_ref, f"{c.params['owner']}:{p.pr.head_ref}")
            and base in (None, p.pr.base_ref)
        ]
        prs.sort(key=lambda p: p.number, reverse=True)
        page, headers = c.page(prs)
        repo = c.fake.repo(c.repo_name)
        return 200, [c.fake.render.pull(repo, p) for p in page], headers


def create_pull(c: Call) -> Reply:
    c.require("write")
    body = c.body
    number = c.fake.open_pr(
        c.repo_name,
        c.login,
        body["head"],
        body["base"],
        body.get("title") or "",
        body.get("body") or "",
        bool(body.get("draft")),
    )
    return 201, _pull(c, number), {}


def list_comments(c: Call) -> Reply:
    repo_name, number = c.repo_name, int(c.params["issue_number"])
    issue, since = c.fake.issue(repo_name, number), c.arg("since")
    with c.fake.lock:
        comments = [
            x
            for x in c.fake.comments(repo_name, number)
            if since is None or x.updated_at >= int(parse_iso(since))
        ]
        page, headers = c.page(comments)
        repo = c.fake.repo(repo_name)
        return 200, [c.fake.render.comment(repo, x, issue.pr is not None) for x in page], headers


def create_comment(c: Call) -> Reply:
    number = int(c.params["issue_number"])
    issue = c.fake.issue(c.repo_name, number)
    comment_id = c.fake.comment(c.repo_name, number, c.login, c.body["body"])
    comment = c.fake.comments(c.repo_name, number)[-1]
    assert comment.id == comment_id
    repo = c.fake.repo(c.repo_name)
    location = f"{c.fake.api_url}/repos/{c.repo_name}/issues/comments/{comment_id}"
    return 201, c.fake.render.comment(repo, comment, issue.pr is not None), {"Location": location}


def update_comment(c: Call) -> Reply:
    comment_id = int(c.params["comment_id"])
    found = [x for x in c.fake.comments(c.repo_name) if x.id == comment_id]
    if not found:
        raise ForgeRefused(404, "Not Found")
    if found[0].author != c.login:
        c.require("write")
    comment = c.fake.edit_comment(comment_id, c.body["body"])
    issue = c.fake.issue(c.repo_name, comment.number)
    return 200, c.fake.render.comment(c.fake.repo(c.repo_name), comment, issue.pr is not None), {}


def list_reviews(c: Call) -> Reply:
    reviews = c.fake.reviews(c.repo_name, int(c.params["pull_number"]))
    page, headers = c.page(reviews)
    repo = c.fake.repo(c.repo_name)
    return 200, [c.fake.render.review(repo, r) for r in page], headers


def list_review_comments(c: Call) -> Reply:
    number, review_id = int(c.params["pull_number"]), int(c.params["review_id"])
    review = next((r for r in c.fake.reviews(c.repo_name, number) if r.id == review_id), None)
    if review is None:
        raise ForgeRefused(404, "Not Found")
    page, headers = c.page(review.comments)
    repo = c.fake.repo(c.repo_name)
    return 200, [c.fake.render.review_comment(repo, number, x) for x in page], headers


def _sha(c: Call) -> str:
    ref = c.params["ref"]
    return c.fake.repo(c.repo_name).head(ref.removeprefix("heads/")) or ref


def list_check_runs(c: Call) -> Reply:
    sha, name, status = _sha(c), c.arg("check_name"), c.arg("status")
    repo = c.fake.repo(c.repo_name)
    with c.fake.lock:
        runs = [r for r in repo.check_runs if r.head_sha == sha]
        if c.arg("filter", "latest") == "latest":
            latest = {r.name: r for r in runs}  # later runs of a name replace earlier ones
            runs = list(latest.values())
        runs = [r for r in runs if name in (None, r.name) and status in (None, r.status)]
        runs.sort(key=lambda r: r.id, reverse=True)
        page, headers = c.page(runs)
        body = {"total_count": len(runs), "check_runs": [c.fake.render.check_run(repo, r) for r in page]}
        return 200, body, headers


def list_annotations(c: Call) -> Reply:
    repo, run = c.fake.repo(c.repo_name), c.fake.check_run(c.repo_name, int(c.params["check_run_id"]))
    page, headers = c.page(run.annotations)
    return 200, [c.fake.render.annotation(repo, run, a) for a in page], headers


def job_logs(c: Call) -> Reply:
    run = c.fake.check_run(c.repo_name, int(c.params["job_id"]))
    url = f"{c.fake.web_url}/_fake/logs/{c.repo_name}/{run.id}?key={c.fake.log_key}"
    return 302, None, {"Location": url}


def combined_status(c: Call) -> Reply:
    sha, repo = _sha(c), c.fake.repo(c.repo_name)
    with c.fake.lock:
        latest = {s.context: s for s in repo.statuses if s.sha == sha}
        statuses = sorted(latest.values(), key=lambda s: s.id, reverse=True)
        return 200, c.fake.render.combined_status(repo, sha, statuses), {}


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/repos/{owner}/{repo}", get_repo),
    ("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission", get_permission),
    ("GET", "/repos/{owner}/{repo}/issues", list_issues),
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}", get_issue),
    ("GET", "/repos/{owner}/{repo}/pulls", list_pulls),
    ("POST", "/repos/{owner}/{repo}/pulls", create_pull),
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}", get_pull),
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments", list_comments),
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments", create_comment),
    ("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}", update_comment),
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews", list_reviews),
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}/comments", list_review_comments),
    ("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs", list_check_runs),
    ("GET", "/repos/{owner}/{repo}/check-runs/{check_run_id}/annotations", list_annotations),
    ("GET", "/repos/{owner}/{repo}/actions/jobs/{job_id}/logs", job_logs),
    ("GET", "/repos/{owner}/{repo}/commits/{ref}/status", combined_status),
]
_COMPILED = [
    (method, template, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"), handler)
    for method, template, handler in ROUTES
]


def route(method: str, path: str) -> tuple[str, dict[str, str], Handler] | None:
    """The route's template, its path parameters and its handler; None when nothing matches."""
    for m, template, pattern, handler in _COMPILED:
        if m == method and (match := pattern.match(path)):
            return template, match.groupdict(), handler
    return None


def etag(body: bytes) -> str:
    return 'W/"' + hashlib.sha256(body).hexdigest()[:40] + '"'


def _matches(header: str | None, tag: str) -> bool:
    if not header:
        return False
    bare = tag.removeprefix("W/")
    return any(t.strip() == "*" or t.strip().removeprefix("W/") == bare for t in header.split(","))


class ApiHandler(QuietHandler):
    owner: ForgeThreads
    timeout = 120

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        path, _, query = self.path.partition("?")
        if path.startswith("/_fake/logs/") and self.command == "GET":
            status = self._log(path, parse_qs(query))
            self.owner.requests.append(_request(self.command, path, status, query))
            return
        body = self._body()
        fake = self.owner
        fake._local.deferred = []
        with fake.pending:
            try:
                status, obj, headers = self._api(path, query, body)
            finally:
                deferred, fake._local.deferred = fake._local.deferred, None
            fake.requests.append(_request(self.command, path, status, query))
            payload = b"" if obj is None else json.dumps(obj).encode()
            headers = {"X-GitHub-Media-Type": "github.v3; format=json", **headers}
            self._send(status, payload, "application/json; charset=utf-8", headers)
            for delivery in deferred:
                fake.send(delivery)

    def _api(self, path: str, query: str, body: bytes) -> Reply:
        """The request's answer; a fault, 404, 401 or 400 before its route's handler is reached."""
        fake = self.owner
        fault = fake.take_fault()
        if fault and fault[0] == "stall":
            time.sleep(fault[1])
        elif fault:
            return int(fault[1]), fake.render.error("Server Error (injected)", int(fault[1])), {}
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        user = fake.user_by_token(token.strip()) if scheme.lower() in ("bearer", "token") else None
        found = route(self.command, path.removeprefix("/api/v3")) if path.startswith("/api/v3/") else None
        if user is None:
            return 401, fake.render.error("Requires authentication", 401), {}
        if found is None:
            return 404, fake.render.error("Not Found", 404), {}
        return self._checked(path.removeprefix("/api/v3"), query, body, user.login, *found)

    def _checked(
        self,
        path: str,
        query: str,
        body: bytes,
        login: str,
        template: str,
        params: dict[str, str],
        handler: Handler,
    ) -> Reply:
        """The route's answer, its request and response checked against the description."""
        fake = self.owner
        what = f"{self.command} {template}"
        params_q = parse_qs(query, keep_blank_values=True)
        checked = fake.rest.check_request(
            template,
            self.command,
            host_url=fake.web_url,
            path=path,
            params=params,
            query=params_q,
            headers={k: v for k, v in self.headers.items() if k.lower() != "authorization"},
            body=body,
            content_type=self.headers.get("Content-Type") or "",
        )
        if not checked.ok:
            fake.violations.append(Violation("request", what, checked.errors))
            return 400, fake.render.error("Invalid request: " + "; ".join(checked.errors), 400), {}
        url = f"{fake.api_url}{quote(path)}"
        call = Call(fake, login, params, params_q, json.loads(body) if body else None, url)
        try:
            status, obj, headers = handler(call)
        except ForgeRefused as exc:
            status, headers = exc.status, {}
            obj = (
                fake.render.validation_failed(exc.resource, exc.message)
                if exc.status == 422
                else fake.render.error(exc.message, exc.status)
            )
        payload = b"" if obj is None else json.dumps(obj).encode()
        if self.command == "GET" and status == 200:
            tag = etag(payload)
            headers = {**headers, "ETag": tag, "Cache-Control": "private, max-age=60, s-maxage=60"}
            if _matches(self.headers.get("If-None-Match"), tag):
                return 304, None, {"ETag": tag}
        response = fake.rest.check_response(template, self.command, status, payload)
        if not response.ok:
            fake.violations.append(Violation("response", f"{what} → {status}", response.errors))
        return status, obj, headers

    def _log(self, path: str, query: dict[str, list[str]]) -> int:
        """A job's raw log, as GitHub's pre-signed download URL serves it: no token, ``Range`` honoured."""
        fake = self.owner
        parts = path.removeprefix("/_fake/logs/").split("/")
        if len(parts) != 3 or query.get("key", [""])[0] != fake.log_key:
            self._send(404, b"not found\n", "text/plain")
            return 404
        try:
            run = fake.check_run(f"{parts[0]}/{parts[1]}", int(parts[2]))
        except Exception:
            self._send(404, b"not found\n", "text/plain")
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


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` (end exclusive) of a single ``bytes=`` range, None without one (or one this
    server ignores, as HTTP allows); an empty span when it cannot be satisfied."""
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


def _request(method: str, path: str, status: int, query: str) -> Any:
    return ApiRequest(method, path.removeprefix("/api/v3"), status, query)
