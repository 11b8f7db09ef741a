"""Benchmarks 18 and 19: what usage-limit handling costs a run.

18 — classifying a turn's events for usage limits (the goal: ≤ 1 ms a turn). A real turn is recorded
first, untimed: baton runs the real CLI against its mock model with a prompt of 100 tool calls, and the
agent's stdout lines are taken from the run's event log (Claude Code: 100 ``Read`` calls, ~200 events,
~0.3 MiB; Codex: 100 ``exec_command`` calls, ~200 events). Each repetition then feeds those lines to the
key's adapter, interleaved:

- candidate: ``read_event`` on every line (the JSON parse, the adapter's ``on_event``, and
  ``limit_event`` merged into ``turn.limit``), then ``usage_limit`` on the turn, as the runner does;
- baseline: the same lines without limit detection: ``parse_event`` and ``on_event`` alone, no
  ``usage_limit`` (the runner's work per turn before usage limits were recognised);
- for the notes: the classification alone, ``limit_event`` and ``merge`` over the already parsed
  events, then ``usage_limit``.

The cost is the median of the per-repetition differences. 18a and 18b are those turns as they ended
(succeeded); 18c and 18d, Codex's turn of 100 calls ending in a spent plan limit (the ``error`` and
``turn.failed`` lines of a real refused turn of the same thread, made against the mock's ``usage_limit``
refusal, in place of its ``turn.completed``), for which ``usage_limit`` also reads the rollout's tail
to take the reset to the second: after one such turn (a 0.4 MiB rollout, 18c) and after
``LONG_TURNS`` of them (a rollout over ``ROLLOUT_TAIL``, 1 MiB, all of which is read: the worst case
found, 18d). Each Codex thread has its own baton home, so the first refusal's breaker does not hold the
second thread's turns.

19 — the breaker check before a run (the goal: ≤ 2 ms): ``quota.Breaker.check(store, agent, env)``
as ``baton.runner.run`` calls it (the credential's hash, then one primary-key read of ``quotas``), for
Claude Code with an API key in the environment, on a SQLite store (a file in the scratch directory)
and on a PostgreSQL store (a scratch database on ``BATON_TEST_PG_URL``, default the local server's
``test``; :func:`bench_leases.scratch_pg`), each with no breaker row for the credential (19a, 19c) and
with a held one (19b, 19d: ``QuotaHeld`` raised and caught), 100 other credentials' rows beside it. The
baseline, interleaved with them on the same store: the store's cheapest read of one row,
``get_session`` of a key that has no session. The table judges the check's median against the goal
and shows its difference from that read. The two stores' calls alternate, so that every PostgreSQL
call follows a SQLite one (see :func:`bench_breaker`).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench_leases import scratch_pg
from common import Group, Plan, Repos, Row, Suite, interleave, median, pair_differences, rmtree, sh

from baton import RunRequest, run
from baton.agents import AGENTS, get_agent
from baton.agents import limits as limits_mod
from baton.agents.base import Agent, AgentBase, Turn, parse_event
from baton.agents.codex import ROLLOUT_TAIL
from baton.agents.codex_threads import rollout_files
from baton.agents.limits import Limit, LimitKind
from baton.errors import QuotaHeld
from baton.keys import make_key
from baton.models import Outcome
from baton.runner import quota
from baton.settings import Settings, load_settings
from baton.store import Store, open_store
from baton.testing.demo import environ_patch
from baton.testing.mock_anthropic import MockAnthropic
from baton.testing.mock_openai import MockOpenAI, usage_limit
from baton.testing.tools import tool_marker
from baton.workspace.keyspace import agent_for

TURN_REPS = Plan(full=300, quick=40)
CHECK_REPS = Plan(full=1000, quick=200)
CALLS = 100  # tool calls in the recorded turn: ~200 events (full and quick alike: the turn is the input)
FILES = 100
LONG_TURNS = 3  # turns of CALLS calls before 18d's refusal: the thread's rollout over ROLLOUT_TAIL
GOAL_TURN = 0.001
GOAL_CHECK = 0.002
THREAD = "quota-bench"
IDENT = {
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@x",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@x",
}


@dataclass
class FineRow(Row):
    """An ``overhead`` row of sub-millisecond numbers (shown to the µs); ``absolute``: the overhead
    column is the candidate's own median, judged against the goal, with its difference from the
    baseline (``extra['difference_s']``) beside it."""

    absolute: bool = False

    def cells(self) -> list[str]:
        assert self.overhead is not None
        cells = super().cells()
        cells[2], cells[3] = f"{self.candidate * 1000:.3f} ms", f"{self.baseline * 1000:.3f} ms"
        if self.absolute:
            diff = self.extra["difference_s"] * 1000
            cells[4] = f"{self.overhead * 1000:.3f} ms ({diff:+.3f} ms over the read)"
        else:
            cells[4] = f"{self.overhead * 1000:+.3f} ms"
        return cells


# -- 18: classifying a turn --------------------------------------------------------------------------


@dataclass
class Recorded:
    """A turn as the agent printed it: its stdout lines, stderr, exit code, and the key's adapter."""

    label: str
    agent: AgentBase
    lines: list[str]
    stderr: str
    exit_code: int
    expect: LimitKind | None  # what usage_limit must find
    rollout: int = 0  # bytes of Codex's rollout of the thread (its tail read by a refused turn's usage_limit)


def make_repo(repo: Path) -> None:
    """A repository of ``FILES`` small Python files for the tool calls to read."""
    repo.mkdir(parents=True)
    for i in range(FILES):
        body = "".join(f"def f{i}_{j}(x):\n    return x * {j}\n" for j in range(30))
        (repo / f"f{i:03d}.py").write_text(body)
    sh(["git", "init", "-q", "-b", "main"], cwd=repo)
    sh(["git", "add", "."], cwd=repo)
    sh(["git", "commit", "-qm", "init"], cwd=repo, env={**os.environ, **IDENT})


def logged(log_path: str) -> tuple[list[str], str]:
    """A run's event log split back into the agent's stdout lines and its stderr."""
    lines, stderr = [], []
    for line in Path(log_path).read_text().splitlines():
        event = json.loads(line)
        kind = str(event.get("type", ""))
        if kind == "baton.stderr":
            stderr.append(str(event.get("line", "")))
        elif not kind.startswith("baton."):
            lines.append(line)
    return lines, "\n".join(stderr)


def turn_of(settings: Settings, repo: Path, agent: str, prompt: str) -> tuple[list[str], str, int]:
    result = run(RunRequest(agent=agent, repo=str(repo), thread=THREAD, prompt=prompt), settings=settings)
    lines, stderr = logged(result.run.log_path)
    if result.run.outcome == Outcome.SUCCEEDED:
        return lines, stderr, 0
    if result.run.outcome == Outcome.RATE_LIMITED:
        return lines, stderr, 1
    raise RuntimeError(f"the recorded {agent} turn ended {result.run.outcome.value}: {result.run.error}")


def adapter(settings: Settings, agent: str, repo: Path) -> AgentBase:
    """The key's adapter: its transcripts are in the key's own home (workspace/keyspace.py)."""
    chosen = agent_for(make_key(agent, str(repo), THREAD, AGENTS), settings)
    assert isinstance(chosen, AgentBase)
    return chosen


def claude_turn(home: Path, repo: Path) -> Recorded:
    settings = load_settings(overrides={"home": str(home)}, environ={})
    with MockAnthropic() as anthropic, environ_patch(anthropic.env()):
        calls = " ".join(tool_marker("Read", file_path=f"f{i % FILES:03d}.py") for i in range(CALLS))
        lines, stderr, code = turn_of(settings, repo, "claude", f"read these files {calls}")
    return Recorded("Claude Code", adapter(settings, "claude", repo), lines, stderr, code, None)


def codex_turns(home: Path, repo: Path, long_turns: int) -> tuple[Recorded, Recorded]:
    """Codex's last of ``long_turns`` turns of ``CALLS`` calls on one thread, and that turn again
    ending in a spent plan limit (see the module docstring), its rollout then of ``rollout`` bytes."""
    settings = load_settings(overrides={"home": str(home)}, environ={})
    agent = adapter(settings, "codex", repo)
    with MockOpenAI() as openai, environ_patch(openai.env()):
        openai.configure_home(home / "homes" / "codex")
        calls = " ".join(tool_marker("exec_command", cmd=f"cat f{i % FILES:03d}.py") for i in range(CALLS))
        for _ in range(long_turns):
            lines, stderr, code = turn_of(settings, repo, "codex", f"read these files {calls}")
        openai.refusal = usage_limit(int(time.time()) + 3 * 3600)
        refused, refused_err, refused_code = turn_of(settings, repo, "codex", "one more")
    ending = [line for line in refused if json.loads(line).get("type") in ("error", "turn.failed")]
    if refused_code != 1 or not ending:
        raise RuntimeError(f"the refused Codex turn printed no refusal: {refused[-3:]}")
    thread = next(str(e["thread_id"]) for e in map(json.loads, lines) if e.get("type") == "thread.started")
    rollout = sum(path.stat().st_size for path in rollout_files(agent.home, thread))
    kept = [line for line in lines if json.loads(line).get("type") != "turn.completed"]
    spent = Recorded("Codex", agent, kept + ending, refused_err, 1, LimitKind.EXHAUSTED, rollout)
    return Recorded("Codex", agent, lines, stderr, code, None), spent


def record_turns(root: Path) -> list[Recorded]:
    """Claude Code's and Codex's long turns, and Codex's refused ones (see the module docstring)."""
    repo = root / "repo"
    make_repo(repo)
    found = [claude_turn(root / "claude", repo), *codex_turns(root / "codex", repo, 1)]
    found.append(codex_turns(root / "codex-long", repo, LONG_TURNS)[1])
    for turn in found:
        if len(turn.lines) < 2 * CALLS:
            raise RuntimeError(
                f"the recorded {turn.label} turn has {len(turn.lines)} events, not ~{2 * CALLS}"
            )
    if found[-1].rollout <= ROLLOUT_TAIL:
        raise RuntimeError(f"the long Codex thread's rollout is {found[-1].rollout} bytes, not over 1 MiB")
    return found


def classify(recorded: Recorded) -> Callable[[int], float]:
    """The candidate: every line through ``read_event``, then ``usage_limit``."""
    agent, lines = recorded.agent, recorded.lines

    def timed(_rep: int) -> float:
        turn = Turn()
        t0 = time.perf_counter()
        for line in lines:
            agent.read_event(line, turn)
        limit = agent.usage_limit(recorded.exit_code, turn, recorded.stderr)
        elapsed = time.perf_counter() - t0
        check(recorded, turn, limit)
        return elapsed

    return timed


def parse_only(recorded: Recorded) -> Callable[[int], float]:
    """The baseline: every line parsed and folded into the turn, no limit detection."""
    agent, lines = recorded.agent, recorded.lines

    def timed(_rep: int) -> float:
        turn = Turn()
        t0 = time.perf_counter()
        for line in lines:
            event = parse_event(line, turn)
            if event is not None:
                agent.on_event(event, turn)
        elapsed = time.perf_counter() - t0
        if turn.events != len(lines) or turn.limit is not None:
            raise RuntimeError(f"{recorded.label}: {turn.events} events parsed of {len(lines)}")
        return elapsed

    return timed


def classify_alone(recorded: Recorded) -> Callable[[int], float]:
    """For the notes: ``limit_event`` + ``merge`` over the events already parsed, then ``usage_limit``."""
    agent = recorded.agent
    turn = Turn()
    events = [e for line in recorded.lines if (e := parse_event(line, turn)) is not None]
    for event in events:
        agent.on_event(event, turn)

    def timed(_rep: int) -> float:
        turn.limit = None
        t0 = time.perf_counter()
        for event in events:
            turn.limit = limits_mod.merge(turn.limit, agent.limit_event(event))
        limit = agent.usage_limit(recorded.exit_code, turn, recorded.stderr)
        elapsed = time.perf_counter() - t0
        check(recorded, turn, limit)
        return elapsed

    return timed


def check(recorded: Recorded, turn: Turn, limit: Limit | None) -> None:
    kind = limit.kind if limit is not None else None
    if turn.events != len(recorded.lines) or kind != recorded.expect:
        raise RuntimeError(f"{recorded.label}: usage_limit found {limit} in {turn.events} events")
    if limit is not None and limit.resets_at is None:
        raise RuntimeError(f"{recorded.label}: the exhausted limit has no reset: {limit}")


def bench_classify(root: Path, reps: int) -> list[Row]:
    recorded = record_turns(root)
    rows: list[Row] = []
    for tag, turn in zip("abcd", recorded, strict=True):
        samples = interleave(
            {"with": classify(turn), "without": parse_only(turn), "alone": classify_alone(turn)},
            reps,
            warmup=5,
        )
        size = sum(len(line) + 1 for line in turn.lines)
        ending = "that succeeded"
        if turn.expect:
            read = min(turn.rollout, ROLLOUT_TAIL) / 2**20
            size_mib = turn.rollout / 2**20
            ending = f"ending in a spent plan limit (its rollout {size_mib:.1f} MiB, {read:.1f} MiB read)"
        rows.append(
            FineRow(
                f"18{tag} usage limits: classifying a {turn.label} turn of {len(turn.lines)} "
                f"events ({size / 2**10:.0f} KiB) {ending}, `read_event` + `usage_limit` ÷ parsing alone",
                "overhead",
                median(samples["with"]),
                median(samples["without"]),
                GOAL_TURN,
                reps,
                overhead=median(pair_differences(samples["with"], samples["without"])),
                samples={
                    "candidate": samples["with"],
                    "baseline": samples["without"],
                    "alone": samples["alone"],
                },
                extra={
                    "events": len(turn.lines),
                    "bytes": size,
                    "rollout_bytes": turn.rollout,
                    "alone_s": median(samples["alone"]),
                },
                agent=turn.agent.name,
            )
        )
    return rows


# -- 19: the breaker check ---------------------------------------------------------------------------


def checked(store: Store, agent: Agent, env: dict[str, str], held: bool) -> Callable[[int], float]:
    def timed(_rep: int) -> float:
        t0 = time.perf_counter()
        try:
            breaker = quota.Breaker.check(store, agent, env)
        except QuotaHeld:
            elapsed = time.perf_counter() - t0
            if not held:
                raise
            return elapsed
        elapsed = time.perf_counter() - t0
        if held or breaker.previous is not None:
            raise RuntimeError(f"the breaker check found {breaker.previous} where it expected {held=}")
        return elapsed

    return timed


def missing_session(store: Store) -> Callable[[int], float]:
    def timed(_rep: int) -> float:
        t0 = time.perf_counter()
        found = store.get_session("claude", "local/bench-0123abcd", "no-such-thread")
        elapsed = time.perf_counter() - t0
        assert found is None
        return elapsed

    return timed


def credential_only(agent: Agent, env: dict[str, str]) -> Callable[[int], float]:
    def timed(_rep: int) -> float:
        t0 = time.perf_counter()
        quota.credential(agent, env)
        return time.perf_counter() - t0

    return timed


def trip_breakers(store: Store, agent: Agent, env: dict[str, str], settings: Settings) -> None:
    """The held breaker of ``env``'s credential, and 100 other credentials' rows (half of them held)."""
    limit = Limit(LimitKind.EXHAUSTED, time.time() + 86400, "five_hour", "bench")
    key, label = quota.credential(agent, env)
    quota.trip(store, key, label, "claude", limit, "bench-run", settings, None)
    for i in range(100):
        other, other_label = quota.credential(agent, {"ANTHROPIC_API_KEY": f"sk-ant-bench-other-{i}"})
        record = quota.trip(store, other, other_label, "claude", limit, f"bench-{i}", settings, None)
        if i % 2:
            quota.clear(store, other, record, time.time() + 1)


def bench_breaker(root: Path, reps: int) -> tuple[list[Row], dict[str, float]]:
    root.mkdir(parents=True, exist_ok=True)
    settings = load_settings(overrides={"home": str(root / "home")}, environ={})
    agent = get_agent("claude", settings)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "ANTHROPIC_", "CLAUDE_"))}
    held_env = {**base, "ANTHROPIC_API_KEY": "sk-ant-bench-held-0123456789"}
    free_env = {**base, "ANTHROPIC_API_KEY": "sk-ant-bench-free-0123456789"}
    with scratch_pg() as pg_url:
        stores = {"sqlite": open_store(f"sqlite:///{root / 'baton.db'}"), "postgresql": open_store(pg_url)}
        try:
            for store in stores.values():
                trip_breakers(store, agent, held_env, settings)
            # The stores alternate, so every PostgreSQL call follows a SQLite one: a server process
            # idle since the call before wakes up for each alike (on a loaded machine the first call
            # of a run of PostgreSQL calls waits longest for it).
            variants: dict[str, Callable[[int], float]] = {}
            for what in ("absent", "held", "read"):
                for name, store in stores.items():
                    variants[f"{name}_{what}"] = (
                        missing_session(store)
                        if what == "read"
                        else checked(store, agent, held_env if what == "held" else free_env, what == "held")
                    )
            variants["credential"] = credential_only(agent, free_env)
            samples = interleave(variants, reps, warmup=20)
        finally:
            for store in stores.values():
                store.close()
    labels = {
        "sqlite_absent": ("19a", "SQLite store, no breaker row for the credential"),
        "sqlite_held": ("19b", "SQLite store, the credential's breaker held (`QuotaHeld`)"),
        "postgresql_absent": ("19c", "PostgreSQL store, no breaker row for the credential"),
        "postgresql_held": ("19d", "PostgreSQL store, the credential's breaker held (`QuotaHeld`)"),
    }
    rows: list[Row] = []
    for name, (tag, what) in labels.items():
        read = samples[name.split("_")[0] + "_read"]
        rows.append(
            FineRow(
                f"{tag} usage limits: `Breaker.check` before a run, {what}, "
                "vs `get_session` of a missing key",
                "overhead",
                median(samples[name]),
                median(read),
                GOAL_CHECK,
                reps,
                overhead=median(samples[name]),
                samples={"candidate": samples[name], "baseline": read},
                extra={"difference_s": median(pair_differences(samples[name], read))},
                absolute=True,
            )
        )
    return rows, {"credential_s": median(samples["credential"])}


def credential_costs(root: Path, reps: int) -> dict[str, float]:
    """For the notes: the credential's hash alone when it comes from a login file (Claude Code's
    ``.credentials.json``) and for Codex (its ``config.toml`` read for the provider)."""
    settings = load_settings(overrides={"home": str(root / "cred-home")}, environ={})
    claude, codex = get_agent("claude", settings), get_agent("codex", settings)
    login = claude.auth().files[0]
    login.parent.mkdir(parents=True, exist_ok=True)
    login.write_text(json.dumps({"claudeAiOauth": {"accessToken": "x" * 108, "refreshToken": "y" * 108}}))
    toml = codex.home / "config.toml"
    toml.parent.mkdir(parents=True, exist_ok=True)
    toml.write_text('model = "gpt-5.5"\n[projects."/srv/repo"]\ntrust_level = "trusted"\n')
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "ANTHROPIC_", "CLAUDE_"))}
    codex_env = {**base, "OPENAI_API_KEY": "sk-bench-0123456789"}
    samples = interleave(
        {"login_file": credential_only(claude, base), "codex": credential_only(codex, codex_env)},
        reps,
        warmup=5,
    )
    return {f"credential_{name}_s": median(values) for name, values in samples.items()}


def quota_notes(turns: list[Row], checks: list[Row], costs: dict[str, float]) -> list[str]:
    notes = []
    if turns:
        alone = "; ".join(
            f"{row.name.split(' ')[0]} {row.extra['alone_s'] * 1e6:.0f} µs"
            + (
                f" (a rollout of {row.extra['rollout_bytes'] / 2**20:.1f} MiB)"
                if row.extra["rollout_bytes"]
                else f" ({row.extra['alone_s'] * 1e6 / row.extra['events']:.2f} µs an event)"
            )
            for row in turns
        )
        notes.append(
            "18a-18d: the classification alone, `limit_event` and `merge` over the parsed events then "
            f"`usage_limit`: {alone}. A refused Codex turn's is mostly `usage_limit` reading its "
            "rollout's tail (at most its last MiB, `ROLLOUT_TAIL`) for the exact reset; the rest of a "
            "turn's reading (the JSON parse, `on_event`) is the baseline."
        )
    if checks:
        us = {k: f"{v * 1e6:.0f} µs" for k, v in costs.items()}
        notes.append(
            "19a-19d: the credential's hash alone (`quota.credential`): Claude Code with an API key "
            f"{us.get('credential_s', '?')}, with its login file {us.get('credential_login_file_s', '?')}, "
            f"Codex (its config.toml read for the provider) {us.get('credential_codex_s', '?')}; the rest "
            "of the check is one primary-key read of `quotas`."
        )
    return notes


def run_group(suite: Suite, repos: Repos) -> None:
    turns: list[Row] = []
    checks: list[Row] = []
    costs: dict[str, float] = {}

    def classify_work() -> None:
        turns.extend(bench_classify(suite.scratch / "b18", suite.pick(TURN_REPS)))

    def breaker_work() -> None:
        found, cost = bench_breaker(suite.scratch / "b19", suite.pick(CHECK_REPS))
        checks.extend(found)
        costs.update(cost, **credential_costs(suite.scratch / "b19", suite.pick(CHECK_REPS)))

    suite.step("18 usage limits: classifying a turn's events", classify_work)
    suite.step("19 usage limits: the breaker check before a run", breaker_work)
    suite.rows.extend(turns + checks)
    suite.notes.extend(quota_notes(turns, checks, costs))


GROUP = Group(
    "quota",
    "18a-18d, 19a-19d: usage limits: classifying a turn's events (≤ 1 ms a turn) and the breaker "
    "check before a run on SQLite and PostgreSQL (≤ 2 ms)",
    run_group,
)


if __name__ == "__main__":
    import _venv  # noqa: F401  (re-runs with .venv's interpreter when baton is missing)

    scratch = Path(tempfile.mkdtemp(prefix="baton-bench-quota-"))
    try:
        reps = int(sys.argv[1]) if len(sys.argv) > 1 else 300
        found = bench_classify(scratch / "b18", reps)
        checks, cost = bench_breaker(scratch / "b19", reps * 3)
        cost.update(credential_costs(scratch / "b19", reps))
        for row in found + checks:
            print(" | ".join(row.cells()))
        for note in quota_notes(found, checks, cost):
            print(note)
    finally:
        rmtree(scratch)
