"""Shared pieces of the benchmark suite: interleaved timing, statistics, result rows, the table, and
one run of the suite (:class:`Suite`) with the groups of benchmarks it runs (:class:`Group`).

Every timing benchmark hands :func:`interleave` one callable per variant. Each callable does its own
untimed preparation and clean-up and returns the seconds of the part being measured, so only the
operation under test is timed. Variants run in a rotating order within each repetition (A B C, B C A,
C A B, ...): slow drift of the machine (page cache, CPU frequency, a growing transcript) hits every
variant alike, and no variant always runs first or last.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
import statistics
import string
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import httpx
from repogen import RepoShape

from baton.service.auth import create_token
from baton.service.records import TokenScope
from baton.settings import Settings
from baton.store import open_store
from baton.testing._http import MockServer
from baton.testing.demo import environ_patch
from baton.testing.mock_anthropic import MockAnthropic
from baton.testing.mock_gemini import MockGemini
from baton.testing.mock_openai import MockOpenAI

# the checkout's test support (tests/support: the browser the dashboard group drives) is not in the wheel
if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parents[1]))

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


def setting_turns(
    root: Path,
    name: str,
    reps: int,
    goal: float,
    variants: tuple[dict[str, Any], dict[str, Any]],
    check: Callable[[Any, dict[str, Any]], str | None],
) -> Row:
    """A resumed ``baton.run`` turn of the fake agent on one key under two settings, ``variants`` =
    (baseline, candidate) changes, interleaved: the candidate's cost a turn. ``check(result, changes)``
    says what is wrong with a turn (None: nothing)."""
    from baton import RunRequest, run
    from baton.settings import load_settings
    from baton.testing.fake import register_fake

    register_fake()
    repo = root / "turn-repo"
    repo.mkdir()
    sh(["git", "init", "-q", "-b", "main"], cwd=repo)
    (repo / "README").write_text("bench\n")
    sh(["git", "add", "."], cwd=repo)
    ident = {
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@x",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@x",
    }
    sh(["git", "commit", "-qm", "init"], cwd=repo, env={**os.environ, **ident})
    base = load_settings(overrides={"home": str(root / "turn-home")})

    def turn(changes: dict[str, Any]) -> Callable[[int], float]:
        def once(_rep: int) -> float:
            request = RunRequest(agent="fake", repo=str(repo), thread="bench", prompt="go")
            t0 = time.perf_counter()
            result = run(request, settings=base.with_(**changes))
            elapsed = time.perf_counter() - t0
            wrong = "it failed" if not result.ok else check(result, changes)
            if wrong:
                raise RuntimeError(f"{name}: {wrong}: {result.run}")
            return elapsed

        return once

    baseline, candidate = variants
    turn(baseline)(0)  # the key's worktree, home and conversation exist before timing
    samples = interleave({"baseline": turn(baseline), "candidate": turn(candidate)}, reps)
    return Row(
        name=name,
        kind="overhead",
        candidate=median(samples["candidate"]),
        baseline=median(samples["baseline"]),
        goal=goal,
        n=reps,
        overhead=median(pair_differences(samples["candidate"], samples["baseline"])),
        samples=samples,
    )


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


AGENT_HOMES = ("CLAUDE_CONFIG_DIR", "CODEX_HOME", "GEMINI_CLI_HOME")


def clean_environ() -> dict[str, str]:
    """This process's environment without any BATON_* or agent home (CLAUDE_CONFIG_DIR, CODEX_HOME,
    GEMINI_CLI_HOME) the caller may have set."""
    return {k: v for k, v in os.environ.items() if not k.startswith("BATON_") and k not in AGENT_HOMES}


# baton.run launches the agent (and git) with this process's environment: point it at a mock.
patched_environ = environ_patch


FILLER_BYTES = 96_000  # per growth turn; one argv string may not exceed 128 KiB (MAX_ARG_STRLEN)


def filler(rng: random.Random) -> str:
    """~``FILLER_BYTES`` of random lowercase words: text that compresses like prose, not like zeros."""
    words: list[str] = []
    size = 0
    while size < FILLER_BYTES:
        word = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 10)))
        words.append(word)
        size += len(word) + 1
    return "Note for later, no action needed: " + " ".join(words)


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


def ms(seconds: float) -> str:
    """Milliseconds, rounded, for the notes."""
    return f"{seconds * 1000:.0f} ms"


def row_order(row: Row) -> tuple[int, str]:
    """Rows sort by their number and letter: 1a, 1b, ..., 2, 2b, 3a, ..., 5c."""
    match = re.match(r"(\d+)([a-z]?)", row.name)
    return (int(match.group(1)), match.group(2)) if match else (99, row.name)


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
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"baton serve did not start (exit code {server.poll()})") from None
            time.sleep(0.05)


@contextmanager
def serving(settings: Settings) -> Iterator[httpx.Client]:
    """``baton serve`` for ``settings.home`` in its own process (the runs it executes do not share an
    interpreter with this client), and a client holding a run-scope token."""
    settings.home.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.resolved_store_url)
    token = create_token(store, f"bench-{time.monotonic_ns()}", TokenScope.RUN)
    store.close()
    # TCP_NODELAY, as curl and browsers set it: httpx writes a POST's headers and body separately,
    # and without it the body waits for a delayed ACK.
    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    auth = {"Authorization": f"Bearer {token}"}
    with (
        baton_serve(settings.home, {"BATON_CONCURRENCY": str(settings.concurrency)}) as port,
        httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=120, transport=transport
        ) as http,
    ):
        yield http


# -- one run of the suite ---------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class Plan(NamedTuple):
    """A number (repetitions, bytes, ...) for a full run and for a ``--quick`` one."""

    full: int
    quick: int


@dataclass(frozen=True)
class Repos:
    """The generated repositories: the small one every group uses, and the large one, generated only
    when a selected group needs it (:attr:`Group.big`)."""

    small: RepoShape
    large: RepoShape | None = None

    @property
    def big(self) -> RepoShape:
        if self.large is None:
            raise RuntimeError("the large repository was not generated")
        return self.large


@dataclass
class Suite:
    """One run: where it works, how long, and the rows, notes and failures found so far.

    Each benchmark runs through :meth:`step`, so one that fails is reported under the table and the
    others still run.
    """

    scratch: Path
    quick: bool
    keep: bool
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    cleaner: threading.Thread | None = None

    def pick(self, plan: Plan) -> int:
        """``plan``'s number for this run (full or quick)."""
        return plan.quick if self.quick else plan.full

    def step(self, name: str, work: Callable[[], None]) -> None:
        log(f"{name} ...")
        t0 = time.perf_counter()
        try:
            work()
        except Exception as exc:  # one failed benchmark must not hide the others' results
            self.failed(name, exc)
        log(f"{name} done in {time.perf_counter() - t0:.1f} s")

    def failed(self, name: str, exc: Exception) -> None:
        traceback.print_exc()
        message = " ".join(str(exc).split())  # one line, for the Markdown list
        self.failures.append(f"{name}: {type(exc).__name__}: {message[:400]}")

    def clean_later(self, paths: list[Path]) -> None:
        """Delete ``paths`` in a background thread (unless ``--keep``); :meth:`clean_up` waits for it."""
        if not self.keep:
            self.cleaner = threading.Thread(target=_rmtrees, args=(paths,), daemon=True)
            self.cleaner.start()

    def clean_up(self) -> None:
        if self.keep:
            log(f"kept {self.scratch}")
            return
        if self.cleaner is not None:
            self.cleaner.join()
        log(f"deleting {self.scratch} ...")
        _, took = clock(lambda: rmtree(self.scratch))
        log(f"deleted in {took:.1f} s")


def _rmtrees(paths: list[Path]) -> None:
    for path in paths:
        rmtree(path)


@dataclass(frozen=True)
class Group:
    """A group of benchmarks ``--only`` selects: its name, its rows and what they measure (for
    ``--help``), how it runs, and whether it needs the large repository."""

    name: str
    about: str
    run: Callable[[Suite, Repos], None]
    big: bool = False
