"""Benchmark 13: what walling an agent in with Landlock costs per start (the goal: ≤ 5 ms).

Set-up, untimed: a ``BATON_HOME`` laid out as baton lays it out (a bare cache clone of a one-commit
repository and a key's linked worktree on ``baton/fake/bench``). Each row interleaves two variants
(rotating order, one warm-up round); the cost is the median of the per-repetition differences:

- baseline: ``runner.process.run_process()`` starting the program, as the runner does today (its own
  process group, ``setpriv --pdeathsig``, the pumps, the reaper);
- candidate: the same, plus building the walls (``walls.ruleset()``: resolve the paths, split them
  around ``BATON_HOME``, open each, one ``landlock_add_rule`` each) and starting through
  ``Ruleset.spawn`` (a thread that confines itself and starts the process, still with ``vfork``).

Rows: 13a ``/bin/true`` (the start alone); 13b ``python -c pass`` (a start that opens a few hundred
files, each now checked against the rules). 13d: the agent's own mount namespace (``sandbox/mountns``:
the layout computed from the walls, then in the spawn thread a tmpfs root, one bind per allowed path,
a fresh procfs with ``hidepid=ptraceable``, an empty file over each system secret, ``pivot_root``) ÷
the same walled start without it, ``/bin/true`` through ``run_process``. As root, the walls without
a namespace (13a, 13b, 13d's baseline) also spare those secrets, granting ``/etc`` child by child
(``sandbox/hostsecrets``). A note
gives, for information, the same start through ``preexec_fn`` (``Ruleset.child_hook``), which makes
CPython fork instead of vfork, in this process.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    Group,
    Plan,
    Repos,
    Row,
    Suite,
    interleave,
    median,
    ms,
    pair_differences,
    rmtree,
    setting_turns,
    sh,
)

from baton.runner.process import RunLog, run_process
from baton.sandbox import mountns, walls
from baton.sandbox.enclosure import Spawn
from baton.sandbox.walls import Walls, git_parts

REPS = Plan(full=200, quick=30)
GOAL = 0.005


def layout(root: Path) -> Walls:
    """A fake BATON_HOME with a cache clone and one key's worktree; the walls of that key."""
    source = root / "source"
    source.mkdir(parents=True)
    sh(["git", "init", "-q", "-b", "main"], cwd=source)
    (source / "README").write_text("bench\n")
    sh(["git", "add", "."], cwd=source)
    ident = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b"}
    sh(["git", "commit", "-qm", "init"], cwd=source, env={**ident, "GIT_COMMITTER_EMAIL": "b@x"})
    home = root / "home"
    cache = home / "repos" / "source.git"
    worktree = home / "worktrees" / "fake" / "source" / "bench"
    sh(["git", "clone", "--bare", "-q", str(source), str(cache)])
    sh(["git", "-C", str(cache), "worktree", "add", "-q", "-b", "baton/fake/bench", str(worktree), "main"])
    spec = Walls(
        home=home,
        worktree=worktree,
        git=git_parts(worktree),
        agent_home=home / "homes" / "fake" / "bench",
        tmp=home / "tmp" / "bench",
        path=os.environ.get("PATH", ""),
        commands=(Path(sys.executable),),
        ports=frozenset({80, 443, 22, 9418}),
    )
    walls.prepare(spec)
    return spec


def start(argv: list[str], spec: Walls, root: Path, confined: bool, ns: bool = False) -> float:
    """One run of ``argv`` through run_process; seconds from before the walls are built to its end.
    ``ns``: walled and in its own mount namespace."""
    t0 = time.perf_counter()
    spawn: Spawn | None = walls.ruleset(spec).spawn if confined and not ns else None
    if ns:
        spawn = mountns.walled(spec)[1]
    with RunLog(root / "log.jsonl") as log:
        result = run_process(
            argv,
            dict(os.environ),
            spec.worktree,
            log,
            lambda _line: None,
            on_start=lambda _pid: None,
            heartbeat=lambda: True,
            heartbeat_every=60,
            timeout=60,
            cancel=threading.Event(),
            kill_grace=1,
            spawn=spawn,
        )
    elapsed = time.perf_counter() - t0
    if result.exit_code != 0:
        raise RuntimeError(f"{argv} exited {result.exit_code}: {result.stderr[-300:]}")
    return elapsed


def pair(name: str, argv: list[str], spec: Walls, root: Path, reps: int) -> Row:
    samples = interleave(
        {
            "unconfined": lambda _rep: start(argv, spec, root, confined=False),
            "confined": lambda _rep: start(argv, spec, root, confined=True),
        },
        reps,
    )
    cost = median(pair_differences(samples["confined"], samples["unconfined"]))
    return Row(
        name=name,
        kind="overhead",
        candidate=median(samples["confined"]),
        baseline=median(samples["unconfined"]),
        goal=GOAL,
        n=reps,
        overhead=cost,
        samples={"candidate": samples["confined"], "baseline": samples["unconfined"]},
    )


def ns_row(spec: Walls, root: Path, reps: int) -> Row:
    """13d: ``/bin/true`` walled in and in its own mount namespace ÷ walled in alone."""
    samples = interleave(
        {
            "walls": lambda _rep: start(["/bin/true"], spec, root, confined=True),
            "ns": lambda _rep: start(["/bin/true"], spec, root, confined=True, ns=True),
        },
        reps,
    )
    return Row(
        name="13d mount namespace: start /bin/true walled, in its own mount namespace ÷ walled alone",
        kind="overhead",
        candidate=median(samples["ns"]),
        baseline=median(samples["walls"]),
        goal=GOAL,
        n=reps,
        overhead=median(pair_differences(samples["ns"], samples["walls"])),
        samples={"candidate": samples["ns"], "baseline": samples["walls"]},
    )


def preexec_note(spec: Walls, reps: int) -> str:
    """``/bin/true`` through plain Popen: bare, with the walls through spawn, with them in preexec_fn."""

    def timed(variant: str) -> Callable[[int], float]:
        def run(_rep: int) -> float:
            t0 = time.perf_counter()
            if variant == "bare":
                subprocess.run(["/bin/true"], check=True)
                return time.perf_counter() - t0
            rules = walls.ruleset(spec)
            if variant == "spawn":
                rules.spawn(lambda: subprocess.Popen(["/bin/true"])).wait()
            else:
                proc = subprocess.Popen(["/bin/true"], preexec_fn=rules.child_hook())
                rules.close()
                proc.wait()
            return time.perf_counter() - t0

        return run

    samples = interleave({name: timed(name) for name in ("bare", "spawn", "preexec")}, reps)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    spawn = median(pair_differences(samples["spawn"], samples["bare"]))
    preexec = median(pair_differences(samples["preexec"], samples["bare"]))
    return (
        f"13: the walls cost {ms(spawn)} per start through Ruleset.spawn (a confined thread, vfork) and "
        f"{ms(preexec)} through preexec_fn (fork) in this process of {rss / 2**20:.0f} MiB peak RSS "
        f"(plain Popen of /bin/true, n={reps}); fork copies the page tables, so preexec_fn grows "
        "with the runner's size (~20 ms at 300 MiB)"
    )


def turn_row(root: Path, reps: int) -> Row:
    """13c: one resumed turn of the fake agent through ``baton.run``, BATON_CONFINE auto (walled in)
    vs off, on one key: the whole cost of confinement per turn (walls, allow-listed environment)."""

    def walled_as_asked(result: Any, changes: dict[str, Any]) -> str | None:
        return None if result.run.confined is (changes["confine"] == "auto") else "not as confined as asked"

    return setting_turns(
        root,
        "13c walls: a resumed baton.run turn of the fake agent, confined ÷ BATON_CONFINE=off",
        reps,
        GOAL,
        ({"confine": "off"}, {"confine": "auto"}),
        walled_as_asked,
    )


def bench_landlock(root: Path, reps: int) -> tuple[list[Row], str]:
    spec = layout(root)
    rows = [
        pair("13a walls: start /bin/true", ["/bin/true"], spec, root, reps),
        pair(
            "13b walls: start python -c pass", [sys.executable, "-c", "pass"], spec, root, max(reps // 4, 5)
        ),
        turn_row(root, max(reps // 5, 5)),
    ]
    if mountns.probe() is None:  # root, or CAP_SYS_ADMIN in baton's user namespace
        rows.append(ns_row(spec, root, reps))
    return rows, preexec_note(spec, reps)


def run_group(suite: Suite, repos: Repos) -> None:
    def work() -> None:
        rows, note = bench_landlock(suite.scratch / "b13", suite.pick(REPS))
        suite.rows.extend(rows)
        suite.notes.append(note)

    suite.step("13 Landlock walls: confined vs unconfined agent start", work)


GROUP = Group(
    "landlock",
    "13a-13d: an agent start and a fake-agent turn walled in with Landlock vs unconfined, and in its own"
    " mount namespace vs walled alone (≤ 5 ms)",
    run_group,
)


if __name__ == "__main__":
    import _venv  # noqa: F401  (re-runs with .venv's interpreter when baton is missing)

    scratch = Path(tempfile.mkdtemp(prefix="baton-bench-landlock-"))
    try:
        found, text = bench_landlock(scratch, int(sys.argv[1]) if len(sys.argv) > 1 else 200)
        for row in found:
            assert row.overhead is not None
            sides = f"confined {row.candidate * 1000:.2f} ms, unconfined {row.baseline * 1000:.2f} ms"
            print(f"{row.name}: {sides}, cost {row.overhead * 1000:+.2f} ms (n={row.n})")
        print(text)
    finally:
        rmtree(scratch)
