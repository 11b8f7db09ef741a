"""Benchmark 5: resuming a conversation whose transcript was lost locally (hydrated from the store)
against resuming it with the transcript on disk, per agent, with a transcript of at least 3 MiB.

Set-up, untimed: one conversation (one key) with the REAL agent CLI against its mock model API,
grown cheaply to ``min_bytes`` of transcript (``agent.transcript_files(session_id)``) by turns whose
prompt is ~96 KB of random words — under Linux's 128 KiB limit on one argv string, which every agent
CLI takes its prompt as. baton snapshots the transcript into the store after every run.

Then the two variants take turns on that same conversation (so both see the same transcript, one
turn apart), each a ``baton.run`` with a short prompt and one store opened up front:

- candidate: the agent's local transcript files are deleted (untimed), so the run finds the
  transcript missing, hydrates it from the store's snapshot and resumes;
- baseline: the transcript is on disk, so the run resumes at once.

Every turn is checked: it succeeded, ``mode=resume``, the same session id in and out, and the mock's
reply shows two more history items than the conversation's previous turn — proof the hydrated
transcript carried the whole history. Each measured turn adds to the transcript (for Gemini a lot:
every resumed turn rewrites the whole message list as one ``$set`` line), so the row reports the size
at the start and at the end of the measured part.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from common import (
    Group,
    History,
    Plan,
    Repos,
    Row,
    Suite,
    clock,
    filler,
    fmt_bytes,
    interleave,
    log,
    make_mock,
    median,
    ms,
    patched_environ,
)

from baton import Mode, RunRequest, RunResult, load_settings, open_store, run
from baton.agents import AGENTS, Agent
from baton.keys import make_key
from baton.sessions.snapshots import hydrate
from baton.settings import Settings
from baton.store import Store
from baton.testing._http import MockServer
from baton.workspace.keyspace import agent_for

SHORT = "benchmark turn: reply in one line"
MAX_GROWTH_TURNS = 80
WARMUP = 1
REPS = Plan(full=11, quick=3)
MIN_BYTES = Plan(full=3 * 2**20, quick=2**20)  # of transcript, grown before the measured turns


def bench_hydrate(root: Path, source: Path, agent_name: str, reps: int, tag: str, min_bytes: int) -> Row:
    home = root / "baton-home"
    settings = load_settings(overrides={"home": str(home)}, environ={})
    mock = make_mock(agent_name)
    with mock, patched_environ(mock.env()):
        mock.configure_home(home / "homes" / agent_name)
        # the key's adapter: its transcripts are in the key's own home (workspace/keyspace.py)
        agent = agent_for(make_key(agent_name, str(source), Conversation.thread, AGENTS), settings)
        store = open_store(settings.resolved_store_url)
        try:
            talk = Conversation(agent, settings, store, mock, str(source))
            first = talk.start()
            growth = talk.grow(min_bytes, random.Random(5))
            start_bytes = talk.size()
            talk.check_snapshot(first)
            samples = interleave({"hydrate": talk.hydrated, "local": talk.local}, reps, warmup=WARMUP)
            end_bytes = talk.size()
            alone = talk.hydrate_alone(Path(first.session.worktree))
        finally:
            store.close()

    span = f"{start_bytes / 2**20:.1f} → {end_bytes / 2**20:.1f} MiB"
    return Row(
        f"5{tag} hydrate-then-resume ÷ local resume, transcript {span}",
        "ratio",
        median(samples["hydrate"]),
        median(samples["local"]),
        1.1,
        reps,
        samples={"candidate": samples["hydrate"], "baseline": samples["local"]},
        agent=agent_name,
        extra={
            "transcript_bytes_start": start_bytes,
            "transcript_bytes_end": end_bytes,
            "growth_turns": growth,
            "hydrate_alone_s": median(alone),
            "process_s": {name: median(values) for name, values in talk.process.items()},
        },
    )


class Conversation:
    """The benchmark's one conversation: every turn a ``baton.run`` with one store, checked to be a
    resume of the same session that carried the whole history (see the module docstring)."""

    thread = "bench-hydrate"

    def __init__(
        self, agent: Agent, settings: Settings, store: Store, mock: MockServer[Any], repo: str
    ) -> None:
        self.agent, self.settings, self.store, self.mock, self.repo = agent, settings, store, mock, repo
        self.name = agent.name
        self.hist = History(f"hydrate {self.name}")
        self.session_id = ""
        # The run record's duration (launch to exit: the agent process) of every measured turn, so
        # the notes can tell the agent's share of the difference from baton's.
        self.process: dict[str, list[float]] = {"hydrate": [], "local": []}

    def turn(self, prompt: str, label: str) -> tuple[RunResult, float]:
        request = RunRequest(agent=self.name, repo=self.repo, thread=self.thread, prompt=prompt)
        result, elapsed = clock(lambda: run(request, settings=self.settings, store=self.store))
        rec = result.run
        self.mock.requests.clear()  # the mock keeps every request body: megabytes per turn here
        if not result.ok:
            raise RuntimeError(f"{self.name} {label}: {rec.outcome.value}, {rec.error}")
        ids = (rec.session_id_in, rec.session_id_out)
        if self.session_id and (rec.mode != Mode.RESUME or ids != (self.session_id, self.session_id)):
            raise RuntimeError(
                f"{self.name} {label}: {rec.mode.value}, session {ids[0]} -> {ids[1]}, "
                f"not a resume of {self.session_id}"
            )
        self.hist.check(rec.result)
        return result, elapsed

    def transcript(self) -> list[Path]:
        return self.agent.transcript_files(self.session_id)

    def delete_transcript(self) -> None:
        for path in self.transcript():
            path.unlink()

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.transcript())

    def start(self) -> RunResult:
        first, _ = self.turn(SHORT, "first turn")
        self.session_id = first.run.session_id_out or ""
        if not self.session_id:
            raise RuntimeError(f"{self.name}: the first run reported no session id")
        return first

    def grow(self, min_bytes: int, rng: random.Random) -> int:
        """Turns of filler until the transcript holds ``min_bytes``; returns how many it took."""
        growth = 0
        while self.size() < min_bytes:
            if growth >= MAX_GROWTH_TURNS:
                raise RuntimeError(f"{self.name}: transcript {self.size()} B after {growth} turns of filler")
            self.turn(filler(rng), "growth turn")
            growth += 1
        return growth

    def check_snapshot(self, first: RunResult) -> None:
        snapshot = self.store.get_snapshot(self.name, first.session.repo, self.thread)
        if snapshot is None or snapshot.agent_session_id != self.session_id:
            raise RuntimeError(f"{self.name}: no snapshot of the grown conversation in the store")

    def measured(self, name: str, rep: int, label: str) -> float:
        result, elapsed = self.turn(SHORT, label)
        if rep >= WARMUP:
            self.process[name].append(result.run.duration_s or 0.0)
        return elapsed

    def hydrated(self, rep: int) -> float:
        """The candidate: the transcript deleted (untimed), so the run hydrates it from the store."""
        self.delete_transcript()
        if self.transcript():
            raise RuntimeError(f"{self.name}: transcript still on disk after deleting it")
        elapsed = self.measured("hydrate", rep, "hydrate + resume")
        if not self.transcript():
            raise RuntimeError(f"{self.name}: the hydrated resume left no transcript")
        return elapsed

    def local(self, rep: int) -> float:
        """The baseline: the transcript on disk, so the run resumes at once."""
        if not self.transcript():
            raise RuntimeError(f"{self.name}: the transcript is not on disk for the local resume")
        return self.measured("local", rep, "local resume")

    def hydrate_alone(self, cwd: Path) -> list[float]:
        """For the notes: ``hydrate()`` alone (fetch, decompress, verify and write the snapshot, then the
        agent's after_hydrate), on the final transcript, without the agent run around it; 5 samples."""
        key = make_key(self.name, self.repo, self.thread, AGENTS)
        alone = []
        for _ in range(5):
            self.delete_transcript()
            alone.append(
                clock(lambda: hydrate(self.store, self.agent, key, self.session_id, cwd, overwrite=True))[1]
            )
        if not self.transcript():
            raise RuntimeError(f"{self.name}: hydrate() left no transcript")
        return alone


def run_group(suite: Suite, repos: Repos) -> None:
    title = "5 hydrate-then-resume vs local resume (claude, codex, gemini)"
    suite.step(title, lambda: record(suite, repos.small.path))


def record(suite: Suite, small: Path) -> None:
    for tag, agent in (("a", "claude"), ("b", "codex"), ("c", "gemini")):
        log(f"  5{tag} {agent} ...")
        try:
            root = suite.scratch / f"b5-{agent}"
            row = bench_hydrate(root, small, agent, suite.pick(REPS), tag, suite.pick(MIN_BYTES))
        except Exception as exc:  # the other agents' rows still count
            suite.failed(f"5{tag} hydrate {agent}", exc)
            continue
        suite.rows.append(row)
        suite.notes.append(hydrate_note(tag, agent, row))


def hydrate_note(tag: str, agent: str, row: Row) -> str:
    x = row.extra
    after, without = x["process_s"]["hydrate"], x["process_s"]["local"]
    return (
        f"5{tag} ({agent}): the conversation was grown by {x['growth_turns']} turns of ~96 KB "
        f"prompts to {fmt_bytes(x['transcript_bytes_start'])} of transcript, "
        f"{fmt_bytes(x['transcript_bytes_end'])} after the measured turns. Hydrating adds "
        f"{(row.candidate - row.baseline) * 1000:+.0f} ms (difference of medians); "
        f"`hydrate()` alone takes {ms(x['hydrate_alone_s'])} (median of 5, measured after), "
        f"and the agent process itself (the run records' launch-to-exit time) takes "
        f"{ms(after)} after a hydration against {ms(without)} without "
        f"({(after - without) * 1000:+.0f} ms)."
    )


GROUP = Group("hydrate", "5a-5c: hydrate-then-resume vs local resume, per agent", run_group)
