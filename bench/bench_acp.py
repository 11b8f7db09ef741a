"""Benchmark 26: what restoring an ACP agent's conversation costs, ``session/resume`` (restored, its
history not sent back) against ``session/load`` (its history replayed as ``session/update``
notifications), with the REAL OpenCode CLI against its mock (the pinned Copilot CLI has no
``session/resume``: no row). Two conversations of one repository, grown alike by untimed turns of ~96 KB
prompts, then resumed in rotating order, one by the adapter as it is (resume), the other with
``OpenCodeAgent.resumes = False`` (load); each turn checked (succeeded, the same session, the mock's
history count grown by 2, restored the way wanted). Medians of the paired differences: 27a the restore
alone (the bridge's ``restore_ms``), 27b the CPU of the turn's processes, 27c (information: on a shared
machine its wall time is the load's) the whole ``baton.run``.
"""

from __future__ import annotations

import json
import random
import resource
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from bench_sync import InfoRow
from common import (
    TIMES,
    Group,
    History,
    Plan,
    Repos,
    Row,
    Suite,
    clock,
    filler,
    interleave,
    median,
    pair_differences,
    patched_environ,
    rmtree,
)

from baton import Mode, RunRequest, RunResult, load_settings, run
from baton.agents.opencode import OpenCodeAgent
from baton.settings import Settings
from baton.testing.mock_openai_agents import MockOpenCode

REPS = Plan(full=15, quick=3)
GROW = Plan(full=10, quick=2)  # untimed turns of ~96 KB prompts before timing, per conversation
GOAL = 0.0  # resume no dearer than load: the median of the paired differences at most 0 ms
WAYS = {"resume": "session/resume", "load": "session/load"}  # variant -> the restore it must take
PROMPT = "next step"


@contextmanager
def resuming(allowed: bool) -> Iterator[None]:
    """OpenCode's adapter with ``session/resume`` allowed or not (the bridge's ``--restore load``)."""
    before = OpenCodeAgent.resumes
    OpenCodeAgent.resumes = allowed
    try:
        yield
    finally:
        OpenCodeAgent.resumes = before


@dataclass
class Conversations:
    """The two conversations, one per variant (its thread is the variant's name), and what each timed
    turn of them measured: ``wall`` (the whole ``baton.run``), ``restore`` (the bridge's ``restore_ms``),
    ``cpu`` (the user and system seconds of the turn's processes: the bridge, OpenCode, git), and what
    the agent sent while restoring (``replayed``)."""

    settings: Settings
    repo: str
    hist: dict[str, History] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    seen: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def turn(self, way: str, prompt: str) -> tuple[RunResult, float, float]:
        """One checked turn of ``way``'s conversation: its result, wall and CPU seconds."""
        request = RunRequest(agent="opencode", repo=self.repo, thread=way, prompt=prompt)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with resuming(way == "resume"):
            result, elapsed = clock(lambda: run(request, settings=self.settings))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        rec = result.run
        if not result.ok:
            raise RuntimeError(f"opencode {way}: {rec.mode.value} {rec.outcome.value}, {rec.error}")
        self.hist.setdefault(way, History(f"opencode {way}")).check(rec.result)
        self.ids.setdefault(way, rec.session_id_out or "")
        if rec.session_id_out != self.ids[way]:
            raise RuntimeError(f"opencode {way}: session {self.ids[way]} -> {rec.session_id_out}")
        return result, elapsed, cpu

    def timed(self, way: str, _rep: int) -> float:
        result, elapsed, cpu = self.turn(way, PROMPT)
        if result.run.mode != Mode.RESUME:
            raise RuntimeError(f"opencode {way}: {result.run.mode.value}, not a resume")
        log = [json.loads(line) for line in Path(result.run.log_path).read_text().splitlines()]
        said = next(e for e in log if e.get("type") == "acp.session")
        if said.get("restored") != WAYS[way]:
            raise RuntimeError(f"opencode {way}: restored by {said.get('restored')!r}, not {WAYS[way]}")
        seen = self.seen.setdefault(way, {"wall": [], "restore": [], "cpu": [], "replayed": []})
        for what, value in (("wall", elapsed), ("restore", said["restore_ms"] / 1000), ("cpu", cpu)):
            seen[what].append(value)
        seen["replayed"].append(said["replayed"])
        return elapsed

    def samples(self, what: str, reps: int) -> dict[str, list[float]]:
        """``what`` of each variant's timed turns, the warm-up's dropped: candidate (resume), baseline."""
        return {"candidate": self.seen["resume"][what][-reps:], "baseline": self.seen["load"][what][-reps:]}


def bench_acp(root: Path, source: Path, reps: int, grow: int) -> list[Row]:
    settings = load_settings(overrides={"home": str(root / "baton-home")}, environ={})
    talks = Conversations(settings, str(source))
    rng = random.Random(26)
    mock = MockOpenCode()
    with mock, patched_environ(mock.env()):
        mock.configure_home(settings.home / "homes" / "opencode")
        for _ in range(grow + 1):
            text = filler(rng)
            for way in WAYS:
                talks.turn(way, text)
        interleave({way: partial(talks.timed, way) for way in WAYS}, reps)
    size = f"{talks.hist['resume'].count} history items, {grow} of ~96 KB"
    extra = {"replayed": talks.samples("replayed", reps), "history_items": talks.hist["resume"].count}
    rows: list[Row] = []
    for tag, what, about in (
        ("27a", "restore", "the restore alone (the agent's answer to it)"),
        ("27b", "cpu", "CPU of the turn's processes (bridge, OpenCode, git)"),
    ):
        found = talks.samples(what, reps)
        rows.append(
            Row(
                f"{tag} a resumed OpenCode turn, {about}: `session/resume` ÷ `session/load`, {size}",
                "overhead",
                median(found["candidate"]),
                median(found["baseline"]),
                GOAL,
                reps,
                overhead=median(pair_differences(found["candidate"], found["baseline"])),
                samples=found,
                extra=extra,
                agent="opencode",
            )
        )
    wall = talks.samples("wall", reps)
    rows.append(
        InfoRow(
            f"27c a resumed OpenCode turn, the whole `baton.run`: `session/resume` ÷ `session/load`, {size}",
            "overhead",
            median(wall["candidate"]),
            median(wall["baseline"]),
            GOAL,
            reps,
            overhead=median(pair_differences(wall["candidate"], wall["baseline"])),
            samples=wall,
            extra=extra,
            agent="opencode",
        )
    )
    return rows


def paired(row: Row) -> str:
    assert row.overhead is not None
    return f"{row.overhead * 1000:+.0f} ms"


def note(rows: list[Row]) -> str:
    restore, cpu, wall = rows
    replayed = restore.extra["replayed"]
    diff = [c / b for c, b in zip(wall.samples["candidate"], wall.samples["baseline"], strict=True)]
    return (
        f"27a-27c (opencode, {restore.extra['history_items']} history items): the restore "
        f"{restore.candidate * 1000:.0f} ms by `session/resume` against {restore.baseline * 1000:.0f} ms by "
        f"`session/load` (paired {paired(restore)}); the turn's processes' CPU {cpu.candidate:.2f} s "
        f"against {cpu.baseline:.2f} s (paired {paired(cpu)}); the whole turn {wall.candidate:.2f} s "
        f"against {wall.baseline:.2f} s (paired {paired(wall)}, pair ratios "
        f"{min(diff):.2f}-{max(diff):.2f}{TIMES}); the load "
        f"replayed a median {median(replayed['baseline']):.0f} `session/update` notifications, the resume "
        f"{median(replayed['candidate']):.0f}."
    )


def run_group(suite: Suite, repos: Repos) -> None:
    def work() -> None:
        rows = bench_acp(suite.scratch / "b26", repos.small.path, suite.pick(REPS), suite.pick(GROW))
        suite.rows.extend(rows)
        suite.notes.append(note(rows))

    suite.step("26 acp: an OpenCode conversation restored by session/resume vs session/load", work)


GROUP = Group(
    "acp",
    "27a-27c: a resumed OpenCode turn by `session/resume` ÷ by `session/load` (restore, CPU, wall)",
    run_group,
)


if __name__ == "__main__":
    import _venv  # noqa: F401  (re-runs with .venv's interpreter when baton is missing)
    from repogen import generate_repo

    scratch = Path(tempfile.mkdtemp(prefix="baton-bench-acp-"))
    try:
        repo = generate_repo(scratch / "small.git", initial_files=40, commits=20, seed=7).path
        reps, grow = (int(a) for a in (sys.argv[1:3] + ["11", "10"][len(sys.argv[1:3]) :]))
        found = bench_acp(scratch, repo, reps, grow)
        for row in found:
            print(f"{row.name} (n={row.n}): {row.candidate * 1000:.0f} ms ÷ {row.baseline * 1000:.0f} ms")
        print(note(found))
    finally:
        rmtree(scratch)
