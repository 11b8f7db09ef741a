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
import string
from pathlib import Path

from common import History, Row, clock, interleave, make_mock, median, patched_environ

from baton import Mode, RunRequest, RunResult, load_settings, open_store, run
from baton.agents import AGENTS, get_agent
from baton.keys import make_key
from baton.snapshots import hydrate

SHORT = "benchmark turn: reply in one line"
FILLER_BYTES = 96_000  # per growth turn; one argv string may not exceed 128 KiB (MAX_ARG_STRLEN)
MAX_GROWTH_TURNS = 80
WARMUP = 1


def filler(rng: random.Random) -> str:
    """~``FILLER_BYTES`` of random lowercase words: text that compresses like prose, not like zeros."""
    words: list[str] = []
    size = 0
    while size < FILLER_BYTES:
        word = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 10)))
        words.append(word)
        size += len(word) + 1
    return "Note for later, no action needed: " + " ".join(words)


def bench_hydrate(root: Path, source: Path, agent_name: str, reps: int, tag: str, min_bytes: int) -> Row:
    home = root / "baton-home"
    settings = load_settings(overrides={"home": str(home)}, environ={})
    repo = str(source)
    thread = "bench-hydrate"
    mock = make_mock(agent_name)
    hist = History(f"hydrate {agent_name}")
    rng = random.Random(5)
    with mock, patched_environ(mock.env()):
        mock.configure_home(home / "homes" / agent_name)
        agent = get_agent(agent_name, settings)
        store = open_store(settings.resolved_store_url)
        try:
            session_id = ""

            def turn(prompt: str, label: str) -> tuple[RunResult, float]:
                request = RunRequest(agent=agent_name, repo=repo, thread=thread, prompt=prompt)
                result, elapsed = clock(lambda: run(request, settings=settings, store=store))
                rec = result.run
                mock.requests.clear()  # the mock keeps every request body: megabytes per turn here
                if not result.ok:
                    raise RuntimeError(f"{agent_name} {label}: {rec.outcome.value}, {rec.error}")
                ids = (rec.session_id_in, rec.session_id_out)
                if session_id and (rec.mode != Mode.RESUME or ids != (session_id, session_id)):
                    raise RuntimeError(
                        f"{agent_name} {label}: {rec.mode.value}, session {ids[0]} -> {ids[1]}, "
                        f"not a resume of {session_id}"
                    )
                hist.check(rec.result)
                return result, elapsed

            def size() -> int:
                return sum(p.stat().st_size for p in agent.transcript_files(session_id))

            first, _ = turn(SHORT, "first turn")
            session_id = first.run.session_id_out or ""
            if not session_id:
                raise RuntimeError(f"{agent_name}: the first run reported no session id")
            growth = 0
            while size() < min_bytes:
                if growth >= MAX_GROWTH_TURNS:
                    raise RuntimeError(f"{agent_name}: transcript {size()} B after {growth} turns of filler")
                turn(filler(rng), "growth turn")
                growth += 1
            start_bytes = size()
            snapshot = store.get_snapshot(agent_name, first.session.repo, thread)
            if snapshot is None or snapshot.agent_session_id != session_id:
                raise RuntimeError(f"{agent_name}: no snapshot of the grown conversation in the store")

            # The run record's duration (launch to exit: the agent process) of every measured turn, so
            # the notes can tell the agent's share of the difference from baton's.
            process: dict[str, list[float]] = {"hydrate": [], "local": []}

            def measured(name: str, rep: int, label: str) -> float:
                result, elapsed = turn(SHORT, label)
                if rep >= WARMUP:
                    process[name].append(result.run.duration_s or 0.0)
                return elapsed

            def hydrated(rep: int) -> float:
                for path in agent.transcript_files(session_id):
                    path.unlink()
                if agent.transcript_files(session_id):
                    raise RuntimeError(f"{agent_name}: transcript still on disk after deleting it")
                elapsed = measured("hydrate", rep, "hydrate + resume")
                if not agent.transcript_files(session_id):
                    raise RuntimeError(f"{agent_name}: the hydrated resume left no transcript")
                return elapsed

            def local(rep: int) -> float:
                if not agent.transcript_files(session_id):
                    raise RuntimeError(f"{agent_name}: the transcript is not on disk for the local resume")
                return measured("local", rep, "local resume")

            samples = interleave({"hydrate": hydrated, "local": local}, reps, warmup=WARMUP)
            end_bytes = size()
            # For the notes: ``hydrate()`` alone (fetch, decompress, verify and write the snapshot, then
            # the agent's after_hydrate), on the final transcript, without the agent run around it.
            key = make_key(agent_name, repo, thread, AGENTS)
            cwd = Path(first.session.worktree)
            alone = []
            for _ in range(5):
                for path in agent.transcript_files(session_id):
                    path.unlink()
                alone.append(clock(lambda: hydrate(store, agent, key, session_id, cwd, overwrite=True))[1])
            if not agent.transcript_files(session_id):
                raise RuntimeError(f"{agent_name}: hydrate() left no transcript")
        finally:
            store.close()

    span = f"{start_bytes / 2**20:.1f} → {end_bytes / 2**20:.1f} MiB"
    return Row(
        f"5{tag} hydrate-then-resume ÷ local resume, transcript {span}", "ratio",
        median(samples["hydrate"]), median(samples["local"]), 1.1, reps,
        samples={"candidate": samples["hydrate"], "baseline": samples["local"]}, agent=agent_name,
        extra={
            "transcript_bytes_start": start_bytes, "transcript_bytes_end": end_bytes, "growth_turns": growth,
            "hydrate_alone_s": median(alone),
            "process_s": {"hydrate": median(process["hydrate"]), "local": median(process["local"])},
        },
    )
