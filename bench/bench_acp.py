"""Benchmark 26: what restoring an ACP agent's conversation costs, ``session/resume`` (restored, its
history not sent back) against ``session/load`` (its history replayed as ``session/update``
notifications), with the REAL OpenCode CLI against its mock; the pinned Copilot CLI does not advertise
``session/resume``, so it has no row. Two conversations of one repository, grown alike by untimed turns
of ~96 KB prompts, then resumed in rotating order: one by the adapter as it is (resume), the other with
``OpenCodeAgent.resumes = False`` (load), each turn checked (succeeded, a resume of the same session, the
mock's history count grown by 2, restored the way wanted). 26a: the whole ``baton.run`` turn; 26b: the
restore alone, the bridge's ``restore_ms`` (the agent's answer to the request; its start and the model
not included). Ratios of medians.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from common import (
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
    patched_environ,
    rmtree,
)

from baton import Mode, RunRequest, RunResult, load_settings, run
from baton.agents.opencode import OpenCodeAgent
from baton.settings import Settings
from baton.testing.mock_openai_agents import MockOpenCode

REPS = Plan(full=11, quick=3)
GROW = Plan(full=10, quick=2)  # untimed turns of FILLER-sized prompts before timing, per conversation
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
    """The two conversations, one per variant (its thread is the variant's name), and what each turn
    of them said: the restore it took, its time and what the agent replayed."""

    settings: Settings
    repo: str
    hist: dict[str, History] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    restore: dict[str, list[float]] = field(default_factory=lambda: {"resume": [], "load": []})
    replayed: dict[str, list[int]] = field(default_factory=lambda: {"resume": [], "load": []})

    def turn(self, way: str, prompt: str) -> tuple[RunResult, float]:
        request = RunRequest(agent="opencode", repo=self.repo, thread=way, prompt=prompt)
        with resuming(way == "resume"):
            result, elapsed = clock(lambda: run(request, settings=self.settings))
        rec = result.run
        if not result.ok:
            raise RuntimeError(f"opencode {way}: {rec.mode.value} {rec.outcome.value}, {rec.error}")
        self.hist.setdefault(way, History(f"opencode {way}")).check(rec.result)
        self.ids.setdefault(way, rec.session_id_out or "")
        if rec.session_id_out != self.ids[way]:
            raise RuntimeError(f"opencode {way}: session {self.ids[way]} -> {rec.session_id_out}")
        return result, elapsed

    def timed(self, way: str) -> float:
        result, elapsed = self.turn(way, PROMPT)
        if result.run.mode != Mode.RESUME:
            raise RuntimeError(f"opencode {way}: {result.run.mode.value}, not a resume")
        log = [json.loads(line) for line in Path(result.run.log_path).read_text().splitlines()]
        said = next(e for e in log if e.get("type") == "acp.session")
        if said.get("restored") != WAYS[way]:
            raise RuntimeError(f"opencode {way}: restored by {said.get('restored')!r}, not {WAYS[way]}")
        self.restore[way].append(said["restore_ms"] / 1000)
        self.replayed[way].append(said["replayed"])
        return elapsed


def timed(talks: Conversations, way: str, _rep: int) -> float:
    return talks.timed(way)


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
        samples = interleave({way: partial(timed, talks, way) for way in WAYS}, reps)
    for way in WAYS:  # the warm-up turn's restore is not a sample
        talks.restore[way] = talks.restore[way][-reps:]
        talks.replayed[way] = talks.replayed[way][-reps:]
    size = f"{talks.hist['resume'].count} history items, {grow} of ~96 KB"
    extra = {"replayed": talks.replayed, "history_items": talks.hist["resume"].count}
    return [
        Row(
            f"26a a resumed OpenCode turn (`baton.run`), `session/resume` ÷ `session/load`, {size}",
            "ratio",
            median(samples["resume"]),
            median(samples["load"]),
            1.0,
            reps,
            samples={"candidate": samples["resume"], "baseline": samples["load"]},
            extra=extra,
            agent="opencode",
        ),
        Row(
            f"26b its restore alone (the agent's answer), `session/resume` ÷ `session/load`, {size}",
            "ratio",
            median(talks.restore["resume"]),
            median(talks.restore["load"]),
            1.0,
            reps,
            samples={"candidate": talks.restore["resume"], "baseline": talks.restore["load"]},
            extra=extra,
            agent="opencode",
        ),
    ]


def note(rows: list[Row]) -> str:
    turn, alone = rows
    replayed = turn.extra["replayed"]
    return (
        f"26a/26b (opencode): a resumed turn {turn.candidate:.2f} s by `session/resume`, "
        f"{turn.baseline:.2f} s by `session/load` ({(turn.candidate - turn.baseline) * 1000:+.0f} ms, "
        f"difference of medians); the restore alone {alone.candidate * 1000:.0f} ms against "
        f"{alone.baseline * 1000:.0f} ms; the load replayed a median {median(replayed['load']):.0f} "
        f"`session/update` notifications, the resume sent {median(replayed['resume']):.0f}."
    )


def run_group(suite: Suite, repos: Repos) -> None:
    def work() -> None:
        rows = bench_acp(suite.scratch / "b26", repos.small.path, suite.pick(REPS), suite.pick(GROW))
        suite.rows.extend(rows)
        suite.notes.append(note(rows))

    suite.step("26 acp: an OpenCode conversation restored by session/resume vs session/load", work)


GROUP = Group(
    "acp",
    "26a, 26b: a resumed OpenCode turn, and its restore alone, by `session/resume` ÷ by `session/load`",
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
