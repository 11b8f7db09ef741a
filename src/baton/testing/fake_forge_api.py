"""The fake forge's REST API: GitHub's routes under ``/api/v3``, each request and response checked against
GitHub's OpenAPI description (where the tests installed their checker), its GraphQL endpoint's two
operations baton uses (:mod:`fake_forge_graphql`), and the log downloads that
``…/actions/jobs/{id}/logs`` redirects to (:class:`ApiHandler`).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any
from urllib.parse import parse_qs, quote

from baton.testing import fake_forge_graphql
from baton.testing._http import QuietHandler
from baton.testing.fake_forge_app import ForgeApp, app_route
from baton.testing.fake_forge_core import ApiRequest, ForgeRefused, Violation
from baton.testing.fake_forge_merge import GRAPHQL_PATH, ForgeMerge, graphql
from baton.testing.fake_forge_routes import Call, Handler, Reply, route
from baton.testing.fake_forge_threads import ForgeThreads

# the merge policy's GraphQL operations (fake_forge_merge); anything else is the review threads'
MERGE_OPERATIONS = (b"markPullRequestReadyForReview", b"enablePullRequestAutoMerge", b"autoMergeAllowed")
_CHUNK = 1 << 20


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
        """One request, in order: the next injected fault (a stall, a failure), the token (401 without
        a known one), the route (404), the description's check of the request (400 with the errors),
        the handler (its :class:`~baton.testing.fake_forge.ForgeRefused` becomes GitHub's error), the
        ETag (304 when ``If-None-Match`` names it), the description's check of the response (a
        violation when it fails), the reply — and then the webhook deliveries the request caused go to
        the fake's delivery thread (:meth:`~baton.testing.fake_forge_core.ForgeCore.send_later`), so a
        receiver that calls back into the API never waits on the request, or the pooled connection,
        that caused its delivery (:meth:`~baton.testing.fake_forge_core.ForgeCore.settle` waits for
        them)."""
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
            try:
                self._send(status, payload, "application/json; charset=utf-8", headers)
            finally:  # a client that gave up (a stall, a timeout) does not lose what its request did
                fake.send_later(deferred)

    def _api(self, path: str, query: str, body: bytes) -> Reply:
        """The request's answer; a fault, 404, 401 or 400 before its route's handler is reached."""
        fake = self.owner
        fault = fake.take_fault()
        if fault and fault[0] == "stall":
            time.sleep(fault[1])
        elif fault:
            status = int(fault[1])
            # a rate limit says when to come back, as GitHub's secondary limits do
            limited = {"Retry-After": "1", "X-RateLimit-Remaining": "0"} if status in (403, 429) else {}
            return status, fake.render.error(f"injected {status}", status), limited
        authorization = self.headers.get("Authorization") or ""
        scheme, _, token = authorization.partition(" ")
        api_path = path.removeprefix("/api/v3") if path.startswith("/api/v3/") else None
        app_found = app_route(self.command, api_path) if api_path and isinstance(fake, ForgeApp) else None
        if app_found is not None and isinstance(fake, ForgeApp):  # a GitHub App's own routes: its JWT
            try:
                login = fake.verify_jwt(authorization)
            except ForgeRefused as exc:
                return exc.status, fake.render.error(exc.message, exc.status), {}
            return self._checked(api_path or "", query, body, login, *app_found)
        user = fake.user_by_token(token.strip()) if scheme.lower() in ("bearer", "token") else None
        found = route(self.command, api_path) if api_path else None
        if user is None:  # GitHub's words: no token, or one it does not know (expired, revoked)
            words = "Bad credentials" if token.strip() else "Requires authentication"
            return 401, fake.render.error(words, 401), {}
        if api_path and isinstance(fake, ForgeApp) and fake.installation_refuses(user.login, api_path):
            return 404, fake.render.error("Not Found", 404), {}
        if path == GRAPHQL_PATH and self.command == "POST":  # the merge policy's operations, or the threads'
            merging = isinstance(fake, ForgeMerge) and any(op in body for op in MERGE_OPERATIONS)
            answer = graphql if merging else fake_forge_graphql.answer
            status, obj = answer(fake, user.login, body)  # type: ignore[arg-type]
            return status, obj, {}
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
        except Exception as exc:  # a bug in the fake (or input the description allows and it does not)
            fake.violations.append(Violation("fake", what, (f"{type(exc).__name__}: {exc}",)))
            status, obj, headers = 500, fake.render.error(f"the fake failed: {exc}", 500), {}
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
