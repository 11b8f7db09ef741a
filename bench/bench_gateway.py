"""Benchmark 24: what baton's model gateway (``model_gateway = on``: ``sandbox/gateway.py``) costs a model
request. A model API stand-in (asyncio, a process of its own) answers ``POST /v1/messages`` with a
small Messages reply and ``POST /v1/messages?stream=1`` with 1 MiB of server-sent events in 64 pieces,
10 ms apart (a model streaming its answer); the gateway runs in a process of its own too, as in
baton's (the agent's requests never share a process with it). The client keeps its connection alive,
as the CLIs do.

- 24a a small request through the gateway ÷ straight to the model API: the median of the per-pair
  differences (goal ≤ 2 ms);
- 24c 24a with the run held to a tokens cap in a SQLite store (the gateway asks the caps after each
  reply; the next request waits for the answer): goal ≤ 2 ms;
- 24d 24c with another request of the run always in flight: each request is admitted against the
  caps before it is forwarded (spent plus in flight, in a thread of its own), as requests an agent
  fires at once are: goal ≤ 2 ms;
- 24b a streamed 1 MiB reply, request to its last byte, through the gateway ÷ straight (goal: ≤ 1 %
  longer).

Each row interleaves its variants (rotating order, one warm-up round).
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from common import Group, Plan, Repos, Row, Suite, interleave, median, pair_differences, rmtree

SMALL = Plan(full=400, quick=60)
STREAMED = Plan(full=21, quick=5)
OVERHEAD_GOAL = 0.002
STREAM_GOAL = 1.01
# model calls: the gateway lends the key for no other
FAST, STREAM = "/v1/messages", "/v1/messages?stream=1"
BODY = b'{"model":"m","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}'

UPSTREAM = r"""
import asyncio, json, os, sys
SMALL = json.dumps({"type": "message", "content": [{"type": "text", "text": "hi"}],
                    "usage": {"input_tokens": 10, "output_tokens": 12}}).encode()
HEAD = b"HTTP/1.1 200 OK\r\n"
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = next(int(l.split(":")[1]) for l in lines if l.lower().startswith("content-length"))
            await reader.readexactly(length)
            if "?stream=1 " in lines[0]:
                writer.write(HEAD + b"Content-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                for index in range(64):
                    event = json.dumps({"type": "ping", "n": index}).encode().ljust(16375, b" ")
                    piece = b"data: " + event + b"\n\n"
                    writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
                    await writer.drain()
                    await asyncio.sleep(0.01)
                writer.write(b"0\r\n\r\n")
            else:
                length = b"Content-Length: %d\r\n\r\n" % len(SMALL)
                writer.write(HEAD + b"Content-Type: application/json\r\n" + length + SMALL)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    os._exit(0)
asyncio.run(main())
"""

GATEWAY = r"""
import sys
from baton.agents.base import ModelApi
from baton.sandbox import gateway
upstream = gateway.Upstream(sys.argv[1], "x-api-key", "the-real-key", ModelApi.ANTHROPIC)
admitted = gateway.admit("bench", upstream)
if len(sys.argv) > 2:  # held to a thread's tokens cap in a SQLite store, as a capped run is
    from baton.caps.check import Holds, Running, reached
    from baton.caps.model import Caps
    from baton.store import open_store
    store = open_store(f"sqlite:///{sys.argv[2]}")
    held = Holds("claude:acme/api:t", "acme/api", Caps(tokens=1e12), Caps())
    def spend(total, models):
        return None if reached(store, held, Running(float(sum(total.values())))) is None else "capped"
    admit = None
    if len(sys.argv) > 3:  # admitted before it is forwarded, as a run's WireHold does: another in flight
        from types import SimpleNamespace
        from baton.runner.capped import WireHold
        from baton.settings import load_settings
        hold = WireHold.__new__(WireHold)
        settings = load_settings(overrides={"home": sys.argv[2] + ".home"}, environ={})
        hold.ctx = SimpleNamespace(settings=settings, tables=store)
        hold.held, hold.reached, hold.unpriced_said, hold.standings = held, None, False, None
        admitted.flying.append(("m", 1000))
        spend, admit = (lambda total, models: hold.spend(total, models, lambda event: None)), hold.admit
    admitted.guard = gateway.Guard(spend, lambda status, headers, body: None, None, admit)
print(admitted.url, admitted.token, flush=True)
sys.stdin.read()
"""


@contextmanager
def process(code: str, *args: str) -> Iterator[list[str]]:
    """A Python process running ``code``: the words of its first line; it ends when its stdin closes."""
    child = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        yield child.stdout.readline().decode().split()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)


class Client:
    """A kept-alive connection to ``url``, posting :data:`BODY` with ``token``."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.path, self.token = parts.path, token
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)

    def post(self, route: str) -> float:
        """Seconds from sending the request to its reply's last byte."""
        headers = {"x-api-key": self.token, "content-type": "application/json"}
        start = time.perf_counter()
        self.conn.request("POST", self.path + route, BODY, headers)
        reply = self.conn.getresponse()
        size = 0
        while piece := reply.read1(65536):
            size += len(piece)
        size += len(reply.read())  # none left: ends the reply, the connection kept for the next
        elapsed = time.perf_counter() - start
        if reply.status != 200 or not size:
            raise RuntimeError(f"{route}: HTTP {reply.status}, {size} bytes")
        return elapsed


def bench_gateway(small: int, streamed: int) -> list[Row]:
    store = Path(tempfile.mkdtemp(prefix="baton-bench-gateway-")) / "baton.db"
    with ExitStack() as stack:
        (port,) = stack.enter_context(process(UPSTREAM))
        url, token = stack.enter_context(process(GATEWAY, f"http://127.0.0.1:{port}"))
        held_url, held_token = stack.enter_context(process(GATEWAY, f"http://127.0.0.1:{port}", str(store)))
        admit_url, admit_token = stack.enter_context(
            process(GATEWAY, f"http://127.0.0.1:{port}", str(store), "admit")
        )
        direct, through = Client(f"http://127.0.0.1:{port}", token), Client(url, token)
        capped, admitted = Client(held_url, held_token), Client(admit_url, admit_token)
        fast = interleave(
            {
                "direct": lambda _: direct.post(FAST),
                "gateway": lambda _: through.post(FAST),
                "capped": lambda _: capped.post(FAST),
                "admitted": lambda _: admitted.post(FAST),
            },
            small,
        )
        slow = interleave(
            {"direct": lambda _: direct.post(STREAM), "gateway": lambda _: through.post(STREAM)},
            streamed,
        )
    rmtree(store.parent)
    return [
        Row(
            name="24a model gateway: a small request through it ÷ straight to the model API",
            kind="overhead",
            candidate=median(fast["gateway"]),
            baseline=median(fast["direct"]),
            goal=OVERHEAD_GOAL,
            n=small,
            overhead=median(pair_differences(fast["gateway"], fast["direct"])),
            samples={"candidate": fast["gateway"], "baseline": fast["direct"]},
        ),
        Row(
            name="24c model gateway, the run held to a tokens cap (its store asked after each reply, "
            "the next request waiting for the answer): a small request ÷ straight to the model API",
            kind="overhead",
            candidate=median(fast["capped"]),
            baseline=median(fast["direct"]),
            goal=OVERHEAD_GOAL,
            n=small,
            overhead=median(pair_differences(fast["capped"], fast["direct"])),
            samples={"candidate": fast["capped"], "baseline": fast["direct"]},
        ),
        Row(
            name="24d model gateway, the run held to a tokens cap with another request always in flight "
            "(each request admitted against the store before it is forwarded, and its reply checked): a "
            "small request ÷ straight to the model API",
            kind="overhead",
            candidate=median(fast["admitted"]),
            baseline=median(fast["direct"]),
            goal=OVERHEAD_GOAL,
            n=small,
            overhead=median(pair_differences(fast["admitted"], fast["direct"])),
            samples={"candidate": fast["admitted"], "baseline": fast["direct"]},
        ),
        Row(
            name="24b model gateway: a 1 MiB streamed reply (64 pieces, 10 ms apart) through it ÷ straight",
            kind="ratio",
            candidate=median(slow["gateway"]),
            baseline=median(slow["direct"]),
            goal=STREAM_GOAL,
            n=streamed,
            samples={"candidate": slow["gateway"], "baseline": slow["direct"]},
        ),
    ]


def run_group(suite: Suite, repos: Repos) -> None:
    def work() -> None:
        suite.rows.extend(bench_gateway(suite.pick(SMALL), suite.pick(STREAMED)))

    suite.step("24 model gateway: a request and a streamed reply through it vs straight", work)


GROUP = Group(
    "gateway",
    "24a-24c: a model request through baton's model gateway, also held to a cap (≤ 2 ms); 24b a streamed "
    "reply (≤ 1 % longer)",
    run_group,
)


if __name__ == "__main__":
    import _venv  # noqa: F401  (re-runs with .venv's interpreter when baton is missing)

    scratch = Path(tempfile.mkdtemp(prefix="baton-bench-gateway-"))
    try:
        reps = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (SMALL.full, STREAMED.full)
        for row in bench_gateway(*reps):
            cost = f"{row.overhead * 1000:+.3f} ms" if row.overhead is not None else f"ratio {row.ratio:.4f}"
            sides = f"gateway {row.candidate * 1000:.3f} ms, straight {row.baseline * 1000:.3f} ms"
            print(f"{row.name}: {sides}, {cost} (n={row.n})")
    finally:
        rmtree(scratch)
