"""Benchmark 17: what containing a run costs (the goal: ≤ 5 ms a run): the runner as subreaper, a control
group per run with its limits (``BATON_CGROUPS=auto``: made, the agent born in it, emptied and removed
at the end), or the subreaper's process tree where there is no group (``off``).

Each row interleaves two variants (rotating order, one warm-up round); the cost is the median of the
per-repetition differences:

- 17a ``/bin/true`` through ``runner.process.run_process()``: with a run group and its limits ÷ no
  containment at all (the start and end alone, where the cost shows most);
- 17b the same, with the subreaper's tree instead of a group (a host without cgroups) ÷ none;
- 17c a resumed ``baton.run`` turn of the fake agent: ``BATON_CGROUPS=auto`` ÷ ``off`` (the group's own
  cost in a whole turn).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from common import Group, Plan, Repos, Row, Suite, interleave, median, pair_differences, rmtree, setting_turns

from baton.runner.process import RunLog, run_process
from baton.sandbox.contain import Containment, limits_of
from baton.settings import Settings, load_settings

REPS = Plan(full=200, quick=30)
GOAL = 0.005


def start(root: Path, settings: Settings | None) -> float:
    """``/bin/true`` through run_process, contained under ``settings`` (None: not at all)."""
    t0 = time.perf_counter()
    contain = None
    if settings is not None:
        contain = Containment(settings, uuid.uuid4().hex[:12], limits_of(settings, cpu=1.0))
    with RunLog(root / "log.jsonl") as log:
        result = run_process(
            ["/bin/true"],
            dict(os.environ),
            root,
            log,
            lambda _line: None,
            on_start=lambda _pid: None,
            heartbeat=lambda: True,
            heartbeat_every=60,
            timeout=60,
            cancel=threading.Event(),
            kill_grace=1,
            stop_when=contain.check if contain else None,
            contain=contain,
        )
    elapsed = time.perf_counter() - t0
    if result.exit_code != 0:
        raise RuntimeError(f"/bin/true exited {result.exit_code}: {result.stderr[-300:]}")
    return elapsed


def pair(name: str, root: Path, settings: Settings, reps: int) -> Row:
    samples = interleave(
        {"none": lambda _rep: start(root, None), "contained": lambda _rep: start(root, settings)}, reps
    )
    return Row(
        name=name,
        kind="overhead",
        candidate=median(samples["contained"]),
        baseline=median(samples["none"]),
        goal=GOAL,
        n=reps,
        overhead=median(pair_differences(samples["contained"], samples["none"])),
        samples={"candidate": samples["contained"], "baseline": samples["none"]},
    )


def turn_row(root: Path, reps: int) -> Row:
    """17c: a resumed turn of the fake agent through ``baton.run``, run groups on vs off."""
    return setting_turns(
        root,
        "17c contain: a resumed baton.run turn of the fake agent, BATON_CGROUPS=auto ÷ off",
        reps,
        GOAL,
        ({"cgroups": "off"}, {"cgroups": "auto"}),
        lambda result, _changes: "it left something running" if result.run.reaped else None,
    )


def bench_contain(root: Path, reps: int) -> list[Row]:
    root.mkdir(parents=True, exist_ok=True)
    grouped = load_settings(overrides={"home": str(root / "home"), "cgroups": "auto"})
    tree = grouped.with_(cgroups="off")
    return [
        pair("17a contain: start /bin/true in a run group with limits ÷ uncontained", root, grouped, reps),
        pair("17b contain: start /bin/true, subreaper tree only (no group) ÷ uncontained", root, tree, reps),
        turn_row(root, max(reps // 5, 5)),
    ]


def run_group(suite: Suite, repos: Repos) -> None:
    def work() -> None:
        suite.rows.extend(bench_contain(suite.scratch / "b17", suite.pick(REPS)))

    suite.step("17 run containment: subreaper, run groups and limits vs none", work)


GROUP = Group(
    "contain",
    "17a-17c: an agent start and a turn in a run group with limits, or the subreaper only (≤ 5 ms)",
    run_group,
)


if __name__ == "__main__":
    import _venv  # noqa: F401  (re-runs with .venv's interpreter when baton is missing)

    scratch = Path(tempfile.mkdtemp(prefix="baton-bench-contain-"))
    try:
        for row in bench_contain(scratch, int(sys.argv[1]) if len(sys.argv) > 1 else 200):
            assert row.overhead is not None
            sides = f"contained {row.candidate * 1000:.2f} ms, baseline {row.baseline * 1000:.2f} ms"
            print(f"{row.name}: {sides}, cost {row.overhead * 1000:+.2f} ms (n={row.n})")
    finally:
        rmtree(scratch)
