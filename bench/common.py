"""Shared pieces of the benchmark suite: interleaved timing, statistics, result rows, the table.

Every timing benchmark hands :func:`interleave` one callable per variant. Each callable does its own
untimed preparation and clean-up and returns the seconds of the part being measured, so only the
operation under test is timed. Variants run in a rotating order within each repetition (A B C, B C A,
C A B, ...): slow drift of the machine (page cache, CPU frequency, a growing transcript) hits every
variant alike, and no variant always runs first or last.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from baton.testing._http import MockServer
from baton.testing.demo import environ_patch
from baton.testing.mock_anthropic import MockAnthropic
from baton.testing.mock_gemini import MockGemini
from baton.testing.mock_openai import MockOpenAI

T = TypeVar("T")
TIMES = "\u00d7"  # the multiplication sign, written so the linter does not mistake it for an x
Timed = Callable[[int], float]  # called with the repetition number, returns elapsed seconds


def interleave(variants: Mapping[str, Timed], reps: int, warmup: int = 1) -> dict[str, list[float]]:
    """Run every variant ``warmup + reps`` times in rotating order; the warm-up rounds are dropped."""
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(warmup + reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            elapsed = variants[name](rep)
            if rep >= warmup:
                samples[name].append(elapsed)
    return samples


def clock(fn: Callable[[], T]) -> tuple[T, float]:
    """Call ``fn``; return its result and the seconds it took."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def pair_differences(candidate: Sequence[float], baseline: Sequence[float]) -> list[float]:
    return [c - b for c, b in zip(candidate, baseline, strict=True)]


def sh(args: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    """Run a command that must succeed; returns its stdout."""
    out = subprocess.run(
        list(args),
        cwd=cwd,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if out.returncode != 0:
        command = " ".join(args[:4])
        raise RuntimeError(f"{command} ... failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    return out.stdout


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


AGENT_HOMES = ("CLAUDE_CONFIG_DIR", "CODEX_HOME", "GEMINI_CLI_HOME")


def clean_environ() -> dict[str, str]:
    """This process's environment without any BATON_* or agent home (CLAUDE_CONFIG_DIR, CODEX_HOME,
    GEMINI_CLI_HOME) the caller may have set."""
    return {k: v for k, v in os.environ.items() if not k.startswith("BATON_") and k not in AGENT_HOMES}


# baton.run launches the agent (and git) with this process's environment: point it at a mock.
patched_environ = environ_patch


def direct_worktree(source: Path, cache: Path, workdir: Path, branch: str) -> None:
    """A worktree of ``source`` for a baseline, made the way baton makes its own (bare clone +
    ``git worktree add``), so both sides run in the same kind of directory."""
    sh(["git", "clone", "--bare", "--quiet", str(source), str(cache)])
    sh(["git", "-C", str(cache), "worktree", "add", "--quiet", "-b", branch, str(workdir), "main"])


# -- the mock model servers ---------------------------------------------------------------------------

# Every mock's reply says how much history the request carried: "received N messages" (Anthropic),
# "N items" (OpenAI Responses), "N contents" (Gemini). Each resumed turn adds exactly two.
COUNT_RE = re.compile(r"received (\d+) (?:messages|items|contents)\b")


def make_mock(agent: str) -> MockServer[Any]:
    """The mock model API of ``agent`` (not started)."""
    if agent == "claude":
        return MockAnthropic()
    if agent == "codex":
        return MockOpenAI()
    if agent == "gemini":
        return MockGemini()
    raise KeyError(agent)


class History:
    """Checks that one conversation's history count grows by exactly two per turn."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.count: int | None = None

    def check(self, text: str | None) -> None:
        match = COUNT_RE.search(text or "")
        if not match:
            raise RuntimeError(f"{self.label}: unexpected reply {(text or '')[:200]!r}")
        count = int(match.group(1))
        if self.count is not None and count != self.count + 2:
            expected = self.count + 2
            raise RuntimeError(f"{self.label}: the request carried {count} history items, not {expected}")
        self.count = count


# -- results ----------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table. ``kind`` decides how the numbers are shown and judged:

    - ``ratio``: candidate ÷ baseline medians, met when ≤ ``goal``;
    - ``overhead``: ``overhead`` (seconds, median of per-pair differences) met when ≤ ``goal`` seconds;
    - ``bytes``: candidate ÷ baseline byte counts, met when ≤ ``goal``.
    """

    name: str
    kind: str
    candidate: float
    baseline: float
    goal: float
    n: int
    overhead: float | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    agent: str = ""  # the agent CLI the row measures ("" for git and disk rows)

    @property
    def ratio(self) -> float:
        return self.candidate / self.baseline if self.baseline else float("inf")

    @property
    def met(self) -> bool:
        if self.kind == "overhead":
            assert self.overhead is not None
            return self.overhead <= self.goal
        return self.ratio <= self.goal

    def cells(self) -> list[str]:
        if self.kind == "bytes":
            cand, base = fmt_bytes(self.candidate), fmt_bytes(self.baseline)
        else:
            cand, base = fmt_seconds(self.candidate), fmt_seconds(self.baseline)
        if self.kind == "overhead":
            assert self.overhead is not None
            value, goal = f"{self.overhead * 1000:+.1f} ms", f"≤ {self.goal * 1000:.0f} ms"
        else:
            value, goal = f"{self.ratio:.3f}{TIMES}", f"≤ {self.goal:g}{TIMES}"
        n = "n=1" if self.kind == "bytes" else f"n={self.n}"
        met = "✅ pass" if self.met else "❌ miss"
        return [f"{self.name} ({n})", self.agent or "—", cand, base, value, goal, met]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "agent": self.agent or None,
            "kind": self.kind,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "overhead": self.overhead,
            "goal": self.goal,
            "met": self.met,
            "n": self.n,
            "samples": self.samples,
            **self.extra,
        }


def fmt_seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value >= 0.1 else f"{value * 1000:.1f} ms"


def fmt_bytes(value: float) -> str:
    return f"{value / 2**20:.1f} MiB"


def markdown_table(rows: Sequence[Row]) -> str:
    header = ["benchmark", "agent", "candidate median", "baseline median", "ratio/overhead", "goal", "met"]
    align = ["---", ":---"] + ["---:"] * 4 + [":---:"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


@contextmanager
def baton_serve(home: Path, env: Mapping[str, str] | None = None) -> Iterator[int]:
    """``baton serve`` for ``home`` as its own process (as it is deployed) on a free port of 127.0.0.1,
    answering ``/healthz``; yields the port and stops the server after the block."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "baton.cli", "serve", "--port", str(port)],
        env={**os.environ, "BATON_HOME": str(home), **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_healthy(port, server)
        yield port
    finally:
        server.terminate()
        server.wait(60)


def _wait_healthy(port: int, server: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"baton serve did not start (exit code {server.poll()})") from None
            time.sleep(0.05)
