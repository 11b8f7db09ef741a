"""``baton du`` over many stored sessions (``baton.housekeeping.disk.usage`` and its ``Scan``): it
measures what is at the canonical paths (``Workdirs.worktree_path``, ``keyspace.key_dir``, the agent's
base home for a conversation from before key spaces), a session with nothing on disk counts 0 without
being looked for anywhere else, and every stored session is in the report once with its snapshot's
stored bytes."""

from __future__ import annotations

import os
import time
from pathlib import Path

from baton.housekeeping.disk import files_bytes, local_bytes, local_transcript, snapshot_bytes, usage
from baton.keys import key_of
from baton.models import SessionRecord, Snapshot
from baton.settings import Settings
from baton.store import Store
from baton.workspace.keyspace import key_dir
from baton.workspace.workdirs import Workdirs, disk_usage

SESSION_ID = "0b6f3a52-1d4e-4c8e-9a51-3f0d2b7c9e11"


def record(settings: Settings, thread: str, session_id: str | None = None) -> SessionRecord:
    now = time.time()
    return SessionRecord(
        agent="claude",
        repo="github.com/acme/api",
        thread=thread,
        repo_url="https://github.com/acme/api",
        branch=f"baton/claude/{thread}",
        worktree=str(settings.home / "worktrees" / thread),
        agent_session_id=session_id,
        created_at=now,
        last_used_at=now,
        expires_at=now + 86400,
    )


def write(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))


def test_du_measures_the_canonical_paths_and_nothing_for_a_bare_record(
    settings: Settings, store: Store
) -> None:
    full = record(settings, "full", "11111111-2222-4333-8444-555555555555")
    legacy = record(settings, "legacy", SESSION_ID)  # its conversation still in the base home
    bare = [record(settings, f"bare-{i}", f"00000000-0000-4000-8000-{i:012d}") for i in range(40)]
    for session in [full, legacy, *bare]:
        store.save_session(session)
    write(Workdirs(settings).worktree_path(key_of(full)) / "src" / "main.py", 50_000)
    write(
        key_dir(settings, key_of(full)) / "home" / "projects" / "p" / f"{full.agent_session_id}.jsonl", 20_000
    )
    base_transcript = settings.home / "homes" / "claude" / "projects" / "-old-cwd" / f"{SESSION_ID}.jsonl"
    write(base_transcript, 30_000)
    store.put_blob("d" * 64, b"z" * 4096, 9000)
    store.save_snapshot(
        Snapshot("claude", full.repo, "full", "sid", {"a.jsonl": ["d" * 64]}, 9000, time.time())
    )

    report = usage(store, settings)
    by_thread = {s.thread: s for s in report.sessions}
    assert len(report.sessions) == 42 and set(by_thread) == {"full", "legacy", *(b.thread for b in bare)}

    one = by_thread["full"]
    assert one.worktree == disk_usage(Workdirs(settings).worktree_path(key_of(full))) >= 50_000
    assert one.transcript == local_bytes(settings, full, local_transcript(settings, full)) >= 20_000
    assert one.snapshot == snapshot_bytes(store, full) == 4096
    old = by_thread["legacy"]
    assert old.transcript == files_bytes([base_transcript]) >= 30_000  # found in the base home
    assert old.transcript == local_bytes(settings, legacy, local_transcript(settings, legacy))
    assert old.worktree == old.snapshot == 0
    for session in bare:
        empty = by_thread[session.thread]
        assert (empty.worktree, empty.transcript, empty.snapshot, empty.artefacts) == (0, 0, 0, [])

    agents = report.per("agent")["claude"]
    assert agents["sessions"] == 42 and agents["worktree"] == one.worktree
    assert agents["transcript"] == one.transcript + old.transcript and agents["snapshot"] == 4096
    assert report.to_json()["sessions"] == [s.to_json() for s in report.sessions]
    assert "sessions" not in report.to_json(sessions=False)
