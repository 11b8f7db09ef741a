"""The fake forge speaking Gitea (and so Forgejo): the same state and drive API as
:class:`~baton.testing.fake_forge.FakeForge` (users, repositories with git over HTTP, issues, pull
requests, comments, reviews, check runs, statuses), served with Gitea's REST API v1 at
``http://127.0.0.1:PORT/api/v1`` and Gitea's webhooks, every request, answer and delivery checked
against Gitea's description (:mod:`gitea_spec`). :class:`FakeGitea` says how each part speaks Gitea.
"""

from __future__ import annotations

import hmac
import json
import time
import urllib.error
import urllib.request
from hashlib import sha1, sha256
from typing import Any
from urllib.parse import parse_qs, quote

from baton.testing._http import QuietHandler
from baton.testing.fake_forge import FakeForge
from baton.testing.fake_forge_core import ApiRequest, ForgeRefused, Violation
from baton.testing.fake_forge_hooks import Delivery, new_delivery
from tests.support.fake_gitea_render import (
    ACTIONS_USER,
    REVIEW_TYPES,
    STATUS_OF,
    GiteaPayloads,
    GiteaRender,
    run_state,
)
from tests.support.fake_gitea_routes import Call, Reply, route
from tests.support.gitea_spec import SpecError, check_payload, check_request, check_response

__all__ = ["FakeGitea", "GiteaHandler", "gitea_sign"]

PREFIX = "/api/v1"
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
    or delivery Gitea's description rejects: a test's fixture asserts it stays empty.

    - **REST**: the routes baton's :class:`~baton.forge.kinds.gitea.client.GiteaClient` calls, with Gitea's
      paths, shapes (:mod:`~tests.support.fake_gitea_render`), paging (``page``/``limit`` cut to 50,
      ``X-Total-Count``, a ``Link`` written from the server's own URL), errors (``{"message", "url"}``;
      409 for a second PR of one head) and no ``ETag``s (Gitea's API sends none for these). A request
      Gitea's description rejects is answered 400.
    - **Actions**: a check run is a Gitea Actions job alone in its run; adding one also posts the commit
      status Gitea Actions posts for it (context ``"<name> (pull_request)"``, by ``gitea-actions``,
      linked to the job), and its log is served at ``/actions/jobs/{id}/logs`` (``Range`` honoured).
    - **Webhooks**: Gitea's payloads (checked against its webhook structs and definitions), with
      ``X-Gitea-Event``, ``X-Gitea-Event-Type``, ``X-Gitea-Delivery``, ``X-Gitea-Signature`` (the bare
      hex HMAC-SHA256) and the Gogs and GitHub copies Gitea also sends. A review is one delivery
      (``pull_request_approved``/``_rejected``/``_comment``), without its inline comments; check runs
      send nothing (their statuses do).
    """

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
        found = route(self.command, sub) if path.startswith(PREFIX + "/") else None
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
        url = f"{fake.api_url}{quote(sub)}"
        call = Call(fake, fake.gitea, fake.status_creator, login, params, params_q, data, url)
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
