"""Benchmark 2: baton's own cost per run, measured with the fake agent on an existing worktree.

The fake agent (``python -S src/baton/testing/fake_agent_run.py``) starts in a few tens of milliseconds,
so what is left when its direct run is subtracted is baton's overhead: key validation, the SQLite
store, the lease, the crash sweep, the worktree fast path, the agent home, streaming the events to the
log, the transcript snapshot and the worktree checkpoint.

- candidate: ``baton.run(RunRequest(agent="fake", ...))`` resuming the key's conversation;
- baseline: the same fake command with the same flags (``-p X --output-format stream-json --verbose
  --resume ID``) as a plain subprocess, ``CLAUDE_CONFIG_DIR`` set, in its own worktree of the repo.

The overhead is the median of the per-repetition differences (candidate minus baseline).

A third variant, ``baton.run(..., store=store)`` with one store opened up front and reused, is
measured alongside for information: ``run`` without a store opens a new one (a SQLAlchemy engine and
a migration check) per call, so that part of the overhead is shown separately.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

from common import (
    Group,
    History,
    Plan,
    Repos,
    Row,
    Suite,
    clean_environ,
    clock,
    direct_worktree,
    interleave,
    median,
    ms,
    pair_differences,
)
from repogen import RepoShape

from baton import Mode, RunRequest, Store, load_settings, open_store, run
from baton.keys import make_key
from baton.testing.fake import fake_agent_bin, register_fake
from baton.workspace.workdirs import Workdirs, branch_for

PROMPT = "X"
REPS = Plan(full=60, quick=10)  # row 2, the small repository
BIG_REPS = Plan(full=21, quick=5)  # row 2b, the large one
register_fake()


def bench_fake(root: Path, source: Path, reps: int, label: str, goal_s: float = 0.030) -> Row:
    home = root / "baton-home"
    settings = load_settings(overrides={"home": str(home)}, environ={})
    repo = str(source)
    store = open_store(settings.resolved_store_url)
    hist = {name: History(f"{label} {name}") for name in ("baton", "baton+store", "direct")}
    for thread in ("bench-fake", "bench-fake-store"):
        first = run(RunRequest(agent="fake", repo=repo, thread=thread, prompt=PROMPT), settings=settings)
        if not first.ok:
            raise RuntimeError(f"the first fake run failed: {first.run.error}")
        hist["baton" if thread == "bench-fake" else "baton+store"].check(first.run.result)

    direct_cache = root / "direct-cache.git"
    workdir = root / "direct-worktree"
    direct_worktree(source, direct_cache, workdir, "direct/fake")
    env = {**clean_environ(), "CLAUDE_CONFIG_DIR": str(root / "direct-fake-home")}
    session_id = str(uuid.uuid4())
    argv = [*fake_agent_bin(), "-p", PROMPT, "--output-format", "stream-json", "--verbose"]

    def direct(args: list[str]) -> None:
        out = subprocess.run(
            [*argv, *args], cwd=workdir, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        last = json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {}
        if out.returncode != 0 or last.get("session_id") != session_id:
            raise RuntimeError(f"the direct fake run failed ({out.returncode}): {out.stderr.strip()[-500:]}")
        hist["direct"].check(last.get("result"))

    direct(["--session-id", session_id])

    def baton_run(name: str, thread: str, reuse: Store | None) -> float:
        request = RunRequest(agent="fake", repo=repo, thread=thread, prompt=PROMPT)
        result, elapsed = clock(lambda: run(request, settings=settings, store=reuse))
        if not result.ok or result.run.mode != Mode.RESUME:
            outcome = result.run.outcome.value
            raise RuntimeError(f"baton.run with the fake agent: {outcome}, {result.run.error}")
        hist[name].check(result.run.result)
        return elapsed

    def baseline(_rep: int) -> float:
        return clock(lambda: direct(["--resume", session_id]))[1]

    try:
        samples = interleave(
            {
                "baton": lambda _rep: baton_run("baton", "bench-fake", None),
                "baton+store": lambda _rep: baton_run("baton+store", "bench-fake-store", store),
                "direct": baseline,
            },
            reps,
            warmup=2,
        )
    finally:
        store.close()
    diffs = pair_differences(samples["baton"], samples["direct"])
    with_store = median(pair_differences(samples["baton+store"], samples["direct"]))
    return Row(
        label,
        "overhead",
        median(samples["baton"]),
        median(samples["direct"]),
        goal_s,
        reps,
        overhead=median(diffs),
        samples={
            "candidate": samples["baton"],
            "baseline": samples["direct"],
            "with_store": samples["baton+store"],
        },
        extra={"overhead_with_reused_store": with_store},
        agent="fake",
    )


def run_group(suite: Suite, repos: Repos) -> None:
    suite.step("2 runner overhead, small repo", lambda: record(suite, "2", repos.small, REPS))
    suite.step("2b runner overhead, large repo", lambda: record(suite, "2b", repos.big, BIG_REPS))


def record(suite: Suite, tag: str, shape: RepoShape, reps: Plan) -> None:
    label = f"{tag} runner overhead, fake agent, {shape.files}-file worktree"
    row = bench_fake(suite.scratch / f"b{tag}", shape.path, suite.pick(reps), label)
    suite.rows.append(row)
    suite.notes.append(fake_note(tag, row, checkpoint_cost(suite.scratch / f"b{tag}", shape.path)))


def checkpoint_cost(root: Path, source: Path, reps: int = 5) -> float:
    """Median seconds of ``Workdirs.checkpoint`` on benchmark 2's clean worktree of ``source``."""
    settings = load_settings(overrides={"home": str(root / "baton-home")}, environ={})
    workdirs = Workdirs(settings)
    key = make_key("fake", str(source), "bench-fake", ["fake"])
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    return median([clock(lambda: workdirs.checkpoint(key, path))[1] for _ in range(reps)])


def fake_note(tag: str, row: Row, checkpoint: float) -> str:
    stored = row.extra["overhead_with_reused_store"]
    return (
        f"{tag}: `Workdirs.checkpoint` of this clean worktree alone takes {ms(checkpoint)} (median of 5, "
        f"measured after the benchmark); with one store opened up front and passed as "
        f"`run(..., store=)` (a third variant, interleaved with the two) the overhead is "
        f"{stored * 1000:+.1f} ms."
    )


GROUP = Group("fake", "2, 2b: runner overhead with the fake agent", run_group, big=True)
