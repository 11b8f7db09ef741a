"""The fake GitLab's HTTP handler (:class:`GitLabHandler`): the REST API under ``/api/v4`` (faults,
the token and its scopes, the route, the answer checked against GitLab's published types when a checker
is installed, ``ETag``/304, the request log), a job's log as ``text/plain`` (``Range`` honoured), git
over smart HTTP at ``/<full path>.git`` (a token as the Basic password), and the repositories' git hooks
asking and telling the fake about a push (``/_fake/pre-receive``, ``/_fake/pushed``).
"""

from __future__ import annotations

import hashlib
import json
import time
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from baton.testing.fake_gitlab_core import GitLabRefused
from baton.testing.fake_gitlab_merge import GitLabMerge
from baton.testing.fake_gitlab_outbox import SpecViolation
from baton.testing.fake_gitlab_routes import TRACE, TRACE_PATTERN, Call, Reply, allowed, route
from baton.testing.fake_gitlab_state import (
    ACCESS,
    READ_API,
    READ_GIT,
    WRITE_API,
    WRITE_GIT,
    ApiRequest,
    Token,
    Violation,
)
from baton.testing.git_http import GitHttpRequest, _basic_credentials
from baton.testing.git_http import _Handler as GitHandler

PREFIX = "/api/v4"
_CHUNK = 1 << 20
_GIT_SERVICES = ("/info/refs", "/git-upload-pack", "/git-receive-pack")
_SCOPE = {
    "error": "insufficient_scope",
    "error_description": "The request requires higher privileges than provided by the access token.",
}


def etag(body: bytes) -> str:
    return 'W/"' + hashlib.md5(body).hexdigest() + '"'  # Rack::ETag's digest, not a secret


class GitLabHandler(GitHandler):
    owner: Any  # the FakeGitLab
    timeout = 120

    def do_GET(self) -> None:
        self._route_request()

    def do_POST(self) -> None:
        self._route_request()

    def do_PUT(self) -> None:
        self._route_request()

    def do_DELETE(self) -> None:
        self._route_request()

    def _route_request(self) -> None:
        path, _, query = self.path.partition("?")
        if path.startswith("/_fake/") and self.command == "POST":
            self._git_hook(path, query)
        elif ".git/" in path and path.endswith(_GIT_SERVICES):
            self._git(path, query)
        elif path.startswith(PREFIX + "/"):
            self._api(path, query)
        else:
            self._send(404, b"Not Found\n", "text/plain")

    # -- the API ------------------------------------------------------------------------------------------

    def _api(self, path: str, query: str) -> None:
        fake: GitLabMerge = self.owner
        body = self._body()
        fake._local.deferred = []
        with fake.pending:
            try:
                status, payload, content_type, headers = self._answer(path.removeprefix(PREFIX), query, body)
            finally:
                deferred, fake._local.deferred = fake._local.deferred, None
            fake.requests.append(ApiRequest(self.command, path.removeprefix(PREFIX), status, query))
            try:
                self._send(status, payload, content_type, headers)
            finally:  # a client that gave up does not lose what its request did
                fake.send_later(deferred)

    def _answer(self, path: str, query: str, body: bytes) -> tuple[int, bytes, str, dict[str, str]]:
        """The request's answer: a fault, 401, 403 (scope), 404/405, the route's answer (a job's log is
        text), then its ETag (304 when ``If-None-Match`` names it)."""
        fake: GitLabMerge = self.owner
        fault = fake.take_fault()
        if fault is not None:
            return self._fault(*fault)
        try:
            token = fake.authenticate(self._token())
            self._scoped(token, path)
        except GitLabRefused as exc:
            return exc.status, json.dumps(exc.body).encode(), "application/json", {}
        if self.command == "GET" and (match := TRACE_PATTERN.match(path)):
            return self._trace(token, match.group("id"), int(match.group("job_id")))
        found = route(self.command, path)
        if found is None:
            status = 405 if allowed(self.command, path) else 404
            message = {"error": "404 Not Found"} if status == 404 else {"message": "405 Method Not Allowed"}
            return status, json.dumps(message).encode(), "application/json", {}
        template, params, handler = found
        status, obj, headers = self._handled(token, template, params, handler, query, body)
        payload = b"" if obj is None else json.dumps(obj).encode()
        if self.command == "GET" and status == 200:
            tag = etag(payload)
            headers = {**headers, "ETag": tag, "Cache-Control": "max-age=0, private, must-revalidate"}
            if _matches(self.headers.get("If-None-Match"), tag):
                return 304, b"", "application/json", {"ETag": tag}
        return status, payload, "application/json", headers

    def _handled(
        self, token: Token, template: str, params: dict[str, str], handler: Any, query: str, body: bytes
    ) -> Reply:
        fake: GitLabMerge = self.owner
        what = f"{self.command} {template}"
        try:
            call = Call(
                fake,
                token,
                params,
                parse_qs(query, keep_blank_values=True),
                self._params(body),
                self._url(template, params),
            )
            status, obj, headers = handler(call)
        except GitLabRefused as exc:
            status, obj, headers = exc.status, exc.body, {}
        except SpecViolation as exc:  # a webhook this request made does not match GitLab's types
            return 500, {"message": f"500 the fake GitLab failed: {exc}"}, {}
        except Exception as exc:  # a bug in the fake
            fake.violations.append(Violation("fake", what, (f"{type(exc).__name__}: {exc}",)))
            return 500, {"message": f"500 the fake GitLab failed: {type(exc).__name__}: {exc}"}, {}
        if fake.checker is not None:
            try:
                fake.checker.answer(self.command, template, status, obj)
            except AssertionError as exc:
                fake.violations.append(Violation("response", f"{what} → {status}", (str(exc),)))
                return (
                    500,
                    {"message": f"500 the fake GitLab's answer does not match GitLab's types: {exc}"},
                    {},
                )
        return status, obj, headers

    def _token(self) -> str:
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return (self.headers.get("PRIVATE-TOKEN") or "").strip()

    def _scoped(self, token: Token, path: str) -> None:
        """403 ``insufficient_scope`` when the token's scopes do not reach the request."""
        if path == "/personal_access_tokens/self":
            return
        needed = READ_API if self.command == "GET" else WRITE_API
        if path == "/user" and self.command == "GET":
            needed = READ_API | {"read_user"}
        if not token.allows(needed):
            raise GitLabRefused(403, body={**_SCOPE, "scope": "api" if needed == WRITE_API else "read_api"})

    def _params(self, body: bytes) -> dict[str, Any]:
        if not body:
            return {}
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if kind == "application/x-www-form-urlencoded":
            return {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        try:
            data = json.loads(body)
        except ValueError:
            raise GitLabRefused(400, body={"error": "The request body is not valid JSON"}) from None
        if not isinstance(data, dict):
            raise GitLabRefused(400, body={"error": "The request body is not a JSON object"})
        return data

    def _url(self, template: str, params: dict[str, str]) -> str:
        path = template
        for name, value in params.items():
            path = path.replace(f":{name}", quote(unquote(value), safe=""))
        return f"{self.owner.api_url}{path}"

    def _fault(self, status: int, retry_after: float) -> tuple[int, bytes, str, dict[str, str]]:
        if status != 429:
            return status, json.dumps({"message": f"{status} injected"}).encode(), "application/json", {}
        reset = int(time.time() + retry_after)
        headers = {
            "Retry-After": str(max(0, round(retry_after))),
            "RateLimit-Name": "throttle_authenticated_api",
            "RateLimit-Limit": "2000",
            "RateLimit-Observed": "2001",
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(reset),
            "RateLimit-ResetTime": formatdate(reset, usegmt=True),
        }
        return 429, b"Retry later\n", "text/plain", headers

    def _trace(self, token: Token, project_id: str, job_id: int) -> tuple[int, bytes, str, dict[str, str]]:
        """A job's whole log as ``text/plain`` (``Range: bytes=-N``: its last N bytes, 206)."""
        fake: GitLabMerge = self.owner
        try:
            project = fake.project(unquote(project_id))
            if fake.access(project, token.username) < ACCESS["reporter"]:
                raise GitLabRefused(404, "404 Project Not Found")
            job = fake.job(project.path, job_id)
        except GitLabRefused as exc:
            return exc.status, json.dumps(exc.body).encode(), "application/json", {}
        size = job.log_size()
        span = _range(self.headers.get("Range"), size)
        if span is not None and span[0] >= span[1]:
            return 416, b"", "text/plain", {"Content-Range": f"bytes */{size}"}
        start, end = span or (0, size)
        headers = {"Accept-Ranges": "bytes"} | (
            {"Content-Range": f"bytes {start}-{end - 1}/{size}"} if span else {}
        )
        return 206 if span else 200, job.log_slice(start, end), "text/plain; charset=utf-8", headers

    # -- git ------------------------------------------------------------------------------------------------

    def _git(self, path: str, query: str) -> None:
        """git's smart HTTP for ``/<full path>.git/…``: a token as the Basic password (401 without a
        usable one), a member at Reporter to fetch, a token with ``write_repository`` or ``api`` to
        push (403 otherwise); then ``git http-backend``."""
        fake = self.owner
        repo_path = path[1 : path.index(".git/")]
        pushing = path.endswith("/git-receive-pack") or "service=git-receive-pack" in query
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        creds = _basic_credentials(self.headers.get("Authorization"))
        try:
            if creds is None:
                raise GitLabRefused(401)
            token = fake.authenticate(creds[1])
            project = fake.project(repo_path)
            if fake.access(project, token.username) < ACCESS["reporter"]:
                raise GitLabRefused(404)
            if not token.allows(WRITE_GIT if pushing else READ_GIT) or (
                pushing and fake.access(project, token.username) < ACCESS["developer"]
            ):
                raise GitLabRefused(403)
        except GitLabRefused as exc:
            fake.git_requests.append(
                GitHttpRequest(self.command, path, False, None, None, chunked, exc.status)
            )
            self._git_refused(exc.status)
            return
        body = self._read_body(chunked)
        status = self._run_backend(path, query, token.username, body)
        fake.git_requests.append(
            GitHttpRequest(self.command, path, True, token.username, None, chunked, status)
        )

    def _git_refused(self, status: int) -> None:
        text = {
            401: b"HTTP Basic: Access denied.\n",
            403: b"You are not allowed to push code to this project.\n",
            404: b"The project you were looking for could not be found "
            b"or you don't have permission to view it.\n",
        }[status]
        headers = {"WWW-Authenticate": 'Basic realm="GitLab"'} if status == 401 else {}
        self._send(status, text, "text/plain", {**headers, "Connection": "close"})
        self.close_connection = True

    def _git_hook(self, path: str, query: str) -> None:
        """A repository's pre-receive (``/_fake/pre-receive/<path>``: 403 with GitLab's words refuses
        the push) or post-receive (``/_fake/pushed/<path>``) hook, from inside a push."""
        fake = self.owner
        body = self._body()
        kind, _, where = path.removeprefix("/_fake/").partition("/")
        if parse_qs(query).get("key", [""])[0] != fake.log_key or kind not in ("pre-receive", "pushed"):
            self._send(404, b"not found\n", "text/plain")
            return
        user = self.headers.get("X-Fake-Forge-User") or ""
        updates = [(u[0], u[1], u[2]) for line in body.decode().splitlines() if len(u := line.split()) >= 3]
        if kind == "pre-receive":
            refusal = fake.pre_receive(unquote(where), user, updates)
            self._send(403 if refusal else 200, (refusal or "ok").encode() + b"\n", "text/plain")
            return
        fake._local.deferred = []
        with fake.pending:
            try:
                fake.pushed(unquote(where), user, updates)
            finally:
                deferred, fake._local.deferred = fake._local.deferred, None
                self._send(204, b"", "text/plain")
                fake.send_later(deferred)


def _matches(header: str | None, tag: str) -> bool:
    if not header:
        return False
    bare = tag.removeprefix("W/")
    return any(t.strip() == "*" or t.strip().removeprefix("W/") == bare for t in header.split(","))


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` (end exclusive) of a single ``bytes=`` range; None without one; an empty span
    when it cannot be satisfied."""
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


__all__ = ["TRACE", "GitLabHandler", "etag"]
