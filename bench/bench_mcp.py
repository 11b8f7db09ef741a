"""26a, 26b: baton's MCP server, the ``mcp`` group. ``baton serve`` runs in its own process on 127.0.0.1
(``common.baton_serve``); both sides speak raw JSON-RPC (no MCP client library in the timing).

- 26a: a ``tools/call`` of ``list_threads`` through ``baton mcp`` (stdio, one process started once and
  initialized) ÷ the same call posted to ``/mcp`` (streamable HTTP, a kept-alive connection),
  interleaved. Goal ≤ 2 times.
- 26b: ``baton mcp`` started until its answer to ``initialize`` is read (what an MCP client waits for
  before its first request), fresh processes, beside ``python -c pass``. Goal ≤ 0.5 s.

``python bench/bench_mcp.py [REPS]`` runs just this group.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
from common import Group, Plan, Repos, Row, Suite, baton_serve, interleave, median, rmtree

from baton.service.auth import create_token
from baton.service.records import TokenScope
from baton.settings import load_settings
from baton.store import open_store

CALL_REPS = Plan(full=60, quick=15)
START_REPS = Plan(full=21, quick=5)
CALL_GOAL, START_GOAL = 2.0, 0.5
BATON = [sys.executable, "-m", "baton.cli"]
HELLO = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def call(number: int) -> dict[str, Any]:
    params = {"name": "list_threads", "arguments": {}}
    return {"jsonrpc": "2.0", "id": number, "method": "tools/call", "params": params}


def answer_to(lines: IO[bytes], number: int) -> dict[str, Any]:
    """The response to request ``number`` among the lines ``baton mcp`` writes (notifications skipped)."""
    for line in iter(lines.readline, b""):
        message: dict[str, Any] = json.loads(line)
        if message.get("id") == number:
            if "error" in message or message.get("result", {}).get("isError"):
                raise RuntimeError(f"baton mcp answered {number} with an error: {message}")
            return message
    raise RuntimeError("baton mcp closed its stdout")


def send(stdin: IO[bytes], message: dict[str, Any]) -> None:
    stdin.write(json.dumps(message).encode() + b"\n")
    stdin.flush()


@contextmanager
def stdio_server(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``baton mcp`` started and initialized."""
    server = subprocess.Popen([*BATON, "mcp"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert server.stdin is not None and server.stdout is not None
    try:
        send(server.stdin, HELLO)
        answer_to(server.stdout, 0)
        send(server.stdin, INITIALIZED)
        yield server
    finally:
        server.stdin.close()
        server.wait(30)


def started(env: dict[str, str]) -> float:
    """Seconds from starting ``baton mcp`` to its answer to ``initialize``."""
    t0 = time.perf_counter()
    server = subprocess.Popen([*BATON, "mcp"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert server.stdin is not None and server.stdout is not None
    send(server.stdin, HELLO)
    answer_to(server.stdout, 0)
    elapsed = time.perf_counter() - t0
    server.stdin.close()
    server.wait(30)
    return elapsed


def floor(_rep: int) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - t0


def over_http(http: httpx.Client, number: int) -> None:
    """One ``tools/call`` posted to ``/mcp``, its answer (JSON or an event stream) read whole."""
    answered = http.post("/mcp", json=call(number))
    answered.raise_for_status()
    data = [line[5:] for line in answered.text.splitlines() if line.startswith("data:") and line[5:].strip()]
    messages = [json.loads(d) for d in data] if data else [answered.json()]
    if not any(m.get("id") == number and not m.get("result", {}).get("isError") for m in messages):
        raise RuntimeError(f"/mcp answered {number} without a result: {answered.text[:500]}")


def bench_mcp(scratch: Path, call_reps: int, start_reps: int) -> list[Row]:
    settings = load_settings(overrides={"home": str(scratch / "mcp-home")}, environ={})
    settings.home.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.resolved_store_url)
    token = create_token(store, "bench-mcp", TokenScope.RUN)
    store.close()
    with baton_serve(settings.home) as port:
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "BATON_HOME": str(settings.home), "BATON_URL": url, "BATON_TOKEN": token}
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
        transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        with (
            stdio_server(env) as server,
            httpx.Client(base_url=url, headers=headers, timeout=60, transport=transport) as http,
        ):
            assert server.stdin is not None and server.stdout is not None
            stdin, stdout = server.stdin, server.stdout

            def stdio(rep: int) -> float:
                t0 = time.perf_counter()
                send(stdin, call(1000 + rep))
                answer_to(stdout, 1000 + rep)
                return time.perf_counter() - t0

            def http_call(rep: int) -> float:
                t0 = time.perf_counter()
                over_http(http, 1000 + rep)
                return time.perf_counter() - t0

            calls = interleave({"stdio": stdio, "http": http_call}, call_reps, warmup=3)
        starts = interleave({"mcp": lambda _rep: started(env), "floor": floor}, start_reps)
    call_row = Row(
        "26a an MCP tool call (`list_threads`) through `baton mcp` (stdio) ÷ posted to `/mcp`",
        "ratio",
        median(calls["stdio"]),
        median(calls["http"]),
        CALL_GOAL,
        call_reps,
        samples={"candidate": calls["stdio"], "baseline": calls["http"]},
    )
    start_row = Row(
        "26b `baton mcp` started to its answer to `initialize`, against `python -c pass`",
        "overhead",
        median(starts["mcp"]),
        median(starts["floor"]),
        START_GOAL,
        start_reps,
        overhead=median(starts["mcp"]),
        samples={"candidate": starts["mcp"], "baseline": starts["floor"]},
    )
    return [call_row, start_row]


def run_group(suite: Suite, repos: Repos) -> None:
    title = "26 MCP: a stdio tool call against /mcp; `baton mcp`'s start-up"
    reps = suite.pick(CALL_REPS), suite.pick(START_REPS)
    suite.step(title, lambda: suite.rows.extend(bench_mcp(suite.scratch / "b26", *reps)))


GROUP = Group(
    "mcp", "26a, 26b: a tool call through `baton mcp` (stdio) ÷ `/mcp`; `baton mcp`'s start-up", run_group
)


if __name__ == "__main__":
    import _venv  # noqa: F401  (re-runs with .venv's interpreter when baton is missing)

    scratch = Path(tempfile.mkdtemp(prefix="baton-bench-mcp-"))
    try:
        reps = int(sys.argv[1]) if len(sys.argv) > 1 else CALL_REPS.full
        for row in bench_mcp(scratch, reps, max(reps // 3, 5)):
            print(
                f"{row.name}: {row.candidate * 1000:.1f} ms against {row.baseline * 1000:.1f} ms (n={row.n})"
            )
    finally:
        rmtree(scratch)
