"""Shared fixtures for the HTTP service: a REAL uvicorn server on 127.0.0.1 (a free port) serving
``create_app(settings)`` for a given ``BATON_HOME``, and token factories.

Use from a test module::

    from tests.service_fixtures import Service, service_fixture  # noqa: F401 (the `service` fixture)

    def test_x(service: Service) -> None:
        with service.client("admin") as http:          # a fresh admin token, as a bearer header
            assert http.get("/v1/sessions").status_code == 200

- ``service`` (fixture; import ``service_fixture``, which registers it under that name without ruff's
  F811 on every test that takes ``service``): the server for the ``settings`` fixture (conftest's
  scratch home, FAST timings), stopped after the test.
- ``run_service(settings)``: the same as a context manager, for tests that need other settings or a
  restart (a second server on the same home).
- ``Service.token(scope, name=None)``: create a token directly in the store (returns the secret);
  ``Service.revoked_token(scope)``: one created and revoked; ``Service.client(token_or_scope)``: an
  ``httpx.Client`` on the server's URL, ``None`` for no Authorization header. A scope name
  (``read``/``run``/``admin``) as the argument makes a fresh token of that scope.
- ``free_port()`` and ``wait_http(url)`` for tests that start ``baton serve`` as a subprocess.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from baton.service.app import create_app
from baton.service.auth import create_token
from baton.service.records import TokenScope
from baton.service.tables import token_store
from baton.settings import Settings
from baton.store import Store, open_store
from tests.conftest import wait_for
from tests.private_services import free_port as free_port  # re-exported: tests import it from here

_names = itertools.count(1)
SCOPES = {s.value: s for s in TokenScope}


def wait_http(url: str, timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers at all (any status); fail after ``timeout`` seconds."""

    def answers() -> bool:
        try:
            httpx.get(url, timeout=1.0)
            return True
        except httpx.TransportError:
            return False

    wait_for(answers, timeout=timeout, interval=0.05, what=f"{url} to answer")


@dataclass
class Service:
    """A running server: its base ``url``, its ``settings`` and a store on the same home."""

    url: str
    settings: Settings
    store: Store

    def token(self, scope: TokenScope | str, name: str | None = None) -> str:
        """A new token's secret (stored as the service stores it: only its hash)."""
        scope = SCOPES[scope] if isinstance(scope, str) else scope
        return create_token(self.store, name or f"t{next(_names)}-{scope.value}", scope)

    def revoked_token(self, scope: TokenScope | str = TokenScope.ADMIN) -> str:
        name = f"revoked{next(_names)}"
        secret = self.token(scope, name)
        token_store(self.store).revoke_token(name, time.time())
        return secret

    def client(self, token: str | None = None, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client on this server; ``token`` is a secret, a scope name (a fresh token of that
        scope) or None (no Authorization header)."""
        if token in SCOPES:
            token = self.token(token)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)


@contextmanager
def run_service(settings: Settings, wrap: Callable[[ASGIApp], ASGIApp] | None = None) -> Iterator[Service]:
    """Serve ``create_app(settings)`` (inside ``wrap``'s middleware, if given) with uvicorn in a thread
    on a socket bound here (no port race); stops it (lifespan shut-down included) on exit."""
    settings.home.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without it, a socket handed to uvicorn answers after the 40 ms
    # of Nagle + delayed ACK (measured: 44 ms a request instead of 0.4 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app: ASGIApp = create_app(settings)
    config = uvicorn.Config(wrap(app) if wrap else app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait_started(server, thread)
        store = open_store(settings.resolved_store_url)
        try:
            yield Service(f"http://127.0.0.1:{port}", settings, store)
        finally:
            store.close()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    def started() -> bool:
        assert thread.is_alive(), "the service did not start (its lifespan failed: see the log)"
        return server.started

    wait_for(started, timeout=60, interval=0.01, what="the service to start")


@pytest.fixture(name="service")
def service_fixture(settings: Settings) -> Iterator[Service]:
    """A real uvicorn server for the ``settings`` fixture's BATON_HOME."""
    with run_service(settings) as running:
        yield running
