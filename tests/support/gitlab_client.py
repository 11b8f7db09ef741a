"""What the fake GitLab's own tests talk to it with: :class:`Api` (one token's requests, answers as
``(status, headers, JSON or text)``) and :class:`Receiver` (a webhook endpoint keeping each request's
headers and body, answering ``status``)."""

from __future__ import annotations

import functools
import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from baton.testing._http import BackgroundServer, QuietHandler, QuietServer
from baton.testing.fake_gitlab import FakeGitLab


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


class Api:
    """Requests to the fake's REST API with one token (``Authorization: Bearer``, or ``PRIVATE-TOKEN``)."""

    def __init__(self, fake: FakeGitLab | str, token: str, *, private_token: bool = False) -> None:
        self.base = fake if isinstance(fake, str) else fake.api_url  # the fake, or its API URL
        self.token, self.private_token = token, private_token

    def __call__(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        sent = {"PRIVATE-TOKEN" if self.private_token else "Authorization": self._auth(), **(headers or {})}
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            sent["Content-Type"] = "application/json"
        url = path if path.startswith("http") else f"{self.base}{path}"
        request = urllib.request.Request(url, data=data, headers=sent, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return _answer(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as exc:
            with exc:  # its socket closed, not left to the collector
                return _answer(exc.code, dict(exc.headers), exc.read())

    def _auth(self) -> str:
        return self.token if self.private_token else f"Bearer {self.token}"

    def get(self, path: str, **headers: str) -> Answer:
        return self(method="GET", path=path, headers=headers)


def _answer(status: int, headers: dict[str, str], raw: bytes) -> Answer:
    kind = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if kind.startswith("application/json") and raw:
        return Answer(status, headers, json.loads(raw))
    return Answer(status, headers, raw.decode("utf-8", "replace"))


@dataclass
class Hit:
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def event(self) -> str:
        return self.headers["X-Gitlab-Event"]

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class Receiver(BackgroundServer):
    """A webhook endpoint: ``hits`` in order; it answers ``status``."""

    port: int = 0
    status: int = 200
    hits: list[Hit] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    thread_name = "gitlab-hook-receiver"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/gitlab"

    def handler_class(self) -> type[QuietHandler]:
        return _Receive

    def start(self) -> Receiver:
        """Listen, polling for the shutdown every 50 ms (stop() returns at once, not after 0.5 s)."""
        if self._server is None:
            bound = type("ReceiverHandler", (_Receive,), {"owner": self})
            self._server = QuietServer(self.port, bound)
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(
                target=functools.partial(self._server.serve_forever, 0.05), name=self.thread_name, daemon=True
            )
            self._thread.start()
        return self

    def events(self, event: str | None = None) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if event in (None, h.event)]


class _Receive(QuietHandler):
    owner: Receiver

    def do_POST(self) -> None:
        body = json.loads(self._body())
        with self.owner._lock:
            self.owner.hits.append(Hit(dict(self.headers.items()), body))
        self._send(self.owner.status, b"", "text/plain")
