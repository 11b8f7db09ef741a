"""The operator's own proxy (``egress_upstream``, baton.allowlist.Upstream): baton's egress proxy
connects through it, as a ``CONNECT`` tunnel with basic auth, for what baton's allow-list allowed and
nothing else. The upstream here is a small CONNECT proxy of the test's, which records what it was asked
and maps the test's names to 127.0.0.1; the agent is the fake one, at ``full``, its ``curl`` its shell
tool."""

from __future__ import annotations

import base64
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton import RunRequest, allowlist, run
from baton.errors import BadInput
from baton.models import Access, Outcome
from baton.settings import load_settings
from tests.conftest import FAST
from tests.sandbox import test_egress
from tests.sandbox.test_egress import BODY

web, named = test_egress.web, test_egress.named  # its fixtures: a local HTTP server, the proxy's names
AUTH = "Basic " + base64.b64encode(b"ops:s3cret pass").decode()


class _Upstream(socketserver.BaseRequestHandler):
    seen: list[tuple[str, str]]  # (request line, Proxy-Authorization)

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            head += self.request.recv(4096) or b"\r\n\r\n"
        lines = head.decode("latin-1").split("\r\n")
        said = [h.split(":", 1) for h in lines[1:] if ":" in h]
        auth = next((v.strip() for k, v in said if k.lower() == "proxy-authorization"), "")
        self.seen.append((lines[0], auth))
        method, target = [*lines[0].split(" "), "", ""][:2]
        if method != "CONNECT" or auth != AUTH:
            self.request.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            return
        with socket.create_connection(("127.0.0.1", int(target.rsplit(":", 1)[1]))) as up:
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            back = threading.Thread(target=_pipe, args=(up, self.request), daemon=True)
            back.start()
            _pipe(self.request, up)
            back.join(10)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@pytest.fixture
def upstream() -> Iterator[tuple[int, list[tuple[str, str]]]]:
    seen: list[tuple[str, str]] = []
    handler = type("Handler", (_Upstream,), {"seen": seen})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def test_allowed_connections_go_through_the_operators_proxy(
    home: Path,
    src_repo: Path,
    web: int,
    named: None,
    upstream: tuple[int, list[tuple[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port, seen = upstream
    monkeypatch.setenv(
        "FAKE_AGENT_RUN",
        f"{{ curl -sS --max-time 10 http://allowed.test:{web}/; echo; "
        f"curl -s --max-time 10 -o /dev/null -w '%{{http_code}}' http://blocked.test:{web}/; }} > out.txt",
    )
    values = {"home": str(home), **FAST, "egress": f"allowed.test:{web}"}
    values["egress_upstream"] = f"http://ops:s3cret%20pass@127.0.0.1:{port}"
    settings = load_settings(overrides=values, environ={})
    request = RunRequest(agent="fake", repo=str(src_repo), thread="t", prompt="go", access=Access.FULL)
    result = run(request, settings=settings)
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    lines = (Path(result.session.worktree) / "out.txt").read_text().splitlines()
    assert lines == [BODY, "403"], lines
    assert seen == [(f"CONNECT allowed.test:{web} HTTP/1.1", AUTH)], "only what baton allowed, tunnelled"
    assert "s3cret" not in (home / "logs" / f"{result.run.id}.jsonl").read_text()


def test_the_upstream_is_read_from_the_setting_or_baton_s_environment() -> None:
    up = allowlist.upstream_of("http://ops:s3cret%20pass@proxy.corp:3128", {})
    assert up is not None and (up.host, up.port, up.auth) == ("proxy.corp", 3128, AUTH)
    assert "s3cret" not in repr(up)
    assert allowlist.upstream_of("direct", {"HTTPS_PROXY": "http://p:1"}) is None
    assert allowlist.upstream_of("", {}) is None
    env = {"https_proxy": "proxy.corp:8080", "NO_PROXY": "localhost,.internal.example,pypi.org:443"}
    found = allowlist.upstream_of("", env)
    assert found is not None and (found.host, found.port) == ("proxy.corp", 8080)
    assert not found.applies("git.internal.example") and not found.applies("pypi.org")
    assert found.applies("registry.npmjs.org") and found.applies("notpypi.org")
    assert not allowlist.upstream_of("", {"HTTP_PROXY": "p:1", "NO_PROXY": "*"}).applies("x.org")  # type: ignore[union-attr]
    for bad in ("https://ops:s3cret@proxy.corp:3128", "http://:3128", "http://proxy.corp:99999"):
        with pytest.raises(BadInput, match="egress_upstream") as caught:
            allowlist.upstream_of(bad, {})
        assert "s3cret" not in str(caught.value)


def test_a_malformed_upstream_is_refused_when_the_settings_load(home: Path) -> None:
    with pytest.raises(BadInput, match="egress_upstream"):
        load_settings(overrides={"home": str(home), "egress": "registries", "egress_upstream": "ftp://x"})
