"""``baton mcp``'s relay (:mod:`baton.service.mcp_stdio`) against a stand-in ``/mcp``: it starts without the
MCP SDK, httpx, Typer or pydantic; each message is one POST over one kept-alive connection, its JSON or
event-stream answer written back a line a message (progress as it comes), with the token and the agreed
protocol version; a refused token fails ``initialize`` with the service's words, on stderr too, and exit
1; a service out of reach fails it as well; a cancelled call's connection is closed and nothing answers
it."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any

import pytest

from tests.conftest import BATON
from tests.service_fixtures import free_port

HELLO = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}
VERSION = "2025-06-18"


@dataclass
class Seen:
    """What the stand-in ``/mcp`` was sent: each request's client port, headers and message."""

    posts: list[tuple[int, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    refusal: tuple[int, bytes] | None = None  # the status and body every request is answered with
    release: threading.Event = field(default_factory=threading.Event)


class Mcp(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    seen: Seen

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        message = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.posts.append((self.client_address[1], dict(self.headers.items()), message))
        if self.seen.refusal is not None:
            return self.answer(self.seen.refusal[0], "text/plain", self.seen.refusal[1])
        if "id" not in message:
            return self.answer(202, "application/json", b"")
        if message["method"] == "initialize":
            result = {"protocolVersion": VERSION, "capabilities": {}, "serverInfo": {"name": "x"}}
            body = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode()
            return self.answer(200, "application/json", body)
        if message["params"]["name"] == "slow":
            self.seen.release.wait(30)
        progress = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}}
        done = {"jsonrpc": "2.0", "id": message["id"], "result": {"content": []}}
        if message["params"]["name"] == "streaming":  # progress now, the answer once released
            return self.stream([progress, done])
        events = "".join(f"event: message\ndata: {json.dumps(m)}\n\n" for m in (progress, done))
        self.answer(200, "text/event-stream", events.encode())

    def stream(self, messages: list[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i, message in enumerate(messages):
            if i:
                self.seen.release.wait(30)
            event = f"event: message\ndata: {json.dumps(message)}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def answer(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def handler(seen: Seen) -> type[BaseHTTPRequestHandler]:
    return type("BoundMcp", (Mcp,), {"seen": seen})


@contextmanager
def stand_in() -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(seen))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        seen.release.set()
        server.shutdown()
        server.server_close()


def start(url: str, token: str = "tok", *python: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BATON_URL": url, "BATON_TOKEN": token}
    return subprocess.Popen(
        [BATON[0], *python, *BATON[1:], "mcp"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def send(process: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
    assert process.stdin is not None
    process.stdin.write(json.dumps(message).encode() + b"\n")
    process.stdin.flush()


def read(stdout: IO[bytes] | None) -> dict[str, Any]:
    assert stdout is not None
    line = stdout.readline()
    assert line.endswith(b"\n"), line
    answer: dict[str, Any] = json.loads(line)
    return answer


def call(number: int, name: str = "list_threads") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": number, "method": "tools/call", "params": {"name": name, "arguments": {}}}


def test_it_starts_without_the_sdk_httpx_typer_or_pydantic() -> None:
    """What ``baton mcp`` imports before it can answer: the standard library and baton's errors."""
    process = start(f"http://127.0.0.1:{free_port()}", "tok", "-X", "importtime")
    _, err = process.communicate(b"", timeout=60)
    assert process.returncode == 0, err.decode()
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in err.decode().splitlines()
        if "import time:" in line
    }
    assert "baton" in imported
    assert not imported & {"mcp", "mcp_types", "httpx", "anyio", "typer", "pydantic", "sqlalchemy", "rich"}


def test_each_message_is_one_post_over_one_kept_alive_connection() -> None:
    with stand_in() as (url, seen):
        process = start(url)
        send(process, HELLO)
        assert read(process.stdout)["result"]["protocolVersion"] == VERSION
        send(process, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        for number in (1, 2):
            send(process, call(number))
            assert read(process.stdout)["method"] == "notifications/progress"  # the stream's, in order
            assert read(process.stdout) == {"jsonrpc": "2.0", "id": number, "result": {"content": []}}
        out, err = process.communicate(b"", timeout=30)
    assert process.returncode == 0 and out == b"", err.decode()
    methods = [message.get("method") for _, _, message in seen.posts]
    assert methods == ["initialize", "notifications/initialized", "tools/call", "tools/call"]
    assert len({port for port, _, _ in seen.posts}) == 1  # one connection, kept alive
    assert all(headers["Authorization"] == "Bearer tok" for _, headers, _ in seen.posts)
    assert [headers.get("MCP-Protocol-Version") for _, headers, _ in seen.posts] == [None, *[VERSION] * 3]


def test_progress_is_written_as_it_comes_before_the_answer() -> None:
    with stand_in() as (url, seen):
        process = start(url)
        send(process, HELLO)
        read(process.stdout)
        send(process, call(3, "streaming"))
        assert read(process.stdout)["method"] == "notifications/progress"  # the answer still held
        seen.release.set()
        assert read(process.stdout) == {"jsonrpc": "2.0", "id": 3, "result": {"content": []}}
        process.communicate(b"", timeout=30)
    assert process.returncode == 0


def test_a_refused_token_fails_initialize_with_the_services_words() -> None:
    with stand_in() as (url, seen):
        seen.refusal = (401, b'{"detail":"unknown or revoked token"}')
        process = start(url, "wrong")
        send(process, HELLO)
        answer = read(process.stdout)
        out, err = process.communicate(timeout=30)
    said = f"baton mcp: the service at {url} refused the token (401): unknown or revoked token"
    assert answer["id"] == 0 and answer["error"]["message"] == said, answer
    assert process.returncode == 1 and out == b""
    assert said in err.decode()


def test_a_name_the_service_does_not_answer_to_fails_initialize_saying_where_to_add_it() -> None:
    with stand_in() as (url, seen):
        seen.refusal = (421, b"Invalid Host header")
        process = start(url)
        send(process, HELLO)
        answer = read(process.stdout)
        _, err = process.communicate(timeout=30)
    said = f"the service at {url} is not known by that name (421): Invalid Host header; name it in"
    assert said in answer["error"]["message"] and "BATON_MCP_HOSTS" in answer["error"]["message"], answer
    assert process.returncode == 1 and said in err.decode()


def test_a_service_out_of_reach_fails_initialize() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    process = start(url)
    send(process, HELLO)
    answer = read(process.stdout)
    _, err = process.communicate(timeout=30)
    assert f"baton serve at {url} cannot be reached" in answer["error"]["message"], answer
    assert process.returncode == 1 and "cannot be reached" in err.decode()


def test_a_cancelled_call_is_not_answered_and_the_next_one_is() -> None:
    with stand_in() as (url, seen):
        process = start(url)
        send(process, HELLO)
        read(process.stdout)
        send(process, call(7, "slow"))
        for _ in range(500):
            if any(m.get("id") == 7 for _, _, m in seen.posts):
                break
            threading.Event().wait(0.01)
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}
        send(process, cancel)
        send(process, call(8))
        assert read(process.stdout)["method"] == "notifications/progress"
        assert read(process.stdout)["id"] == 8
        seen.release.set()
        out, err = process.communicate(b"", timeout=30)
    assert process.returncode == 0, err.decode()
    assert b'"id": 7' not in out and b'"id":7' not in out  # nothing answered the cancelled call
    assert [m.get("method") for _, _, m in seen.posts].count("notifications/cancelled") == 0
    assert [m.get("id") for _, _, m in seen.posts].count(7) == 1  # not sent again on a new connection


@pytest.mark.parametrize("environ", [{"BATON_URL": "", "BATON_TOKEN": "x"}, {"BATON_URL": "ftp://x"}])
def test_without_a_usable_environment_it_says_what_to_set(environ: dict[str, str]) -> None:
    env = {**os.environ, "BATON_TOKEN": "x", **environ}
    done = subprocess.run([*BATON, "mcp"], env=env, capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    assert done.returncode == 2 and done.stdout == b""
    assert b"BATON_URL" in done.stderr
