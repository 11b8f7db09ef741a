"""Marks (:mod:`baton.sessions.marks`): a transcript rewritten in the middle since its snapshot, at the
same size (which the size and first-line checks cannot see, and which Codex resumes silently without
the turns before the damage), is hydrated from the store, and so is one damaged in place with its
size, mtime and inode kept (found by the digest kept with the marks); one appended to since (a turn
killed after the last snapshot) is resumed as it is; a mark written by an older baton is trusted as
before."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from baton import Mode, Outcome, RunRequest, RunResult, run
from baton.models import Snapshot
from baton.sessions import marks
from baton.sessions.chunking import CHUNK, chunks
from baton.settings import Settings
from baton.workspace.keyspace import session_agent


def go(settings: Settings, repo: Path, prompt: str) -> RunResult:
    return run(RunRequest(agent="fake", repo=str(repo), thread="t1", prompt=prompt), settings=settings)


def three_turns(settings: Settings, repo: Path) -> tuple[RunResult, Path]:
    for step in range(3):
        last = go(settings, repo, f"step {step}")
    assert last.run.result == "fake reply: received 6 messages"
    [path] = session_agent(last.session, settings).transcript_files(str(last.session.agent_session_id))
    return last, path


def test_a_transcript_rewritten_in_the_middle_is_hydrated(settings: Settings, src_repo: Path) -> None:
    _, path = three_turns(settings, src_repo)
    data = bytearray(path.read_bytes())
    third = len(data) // 3
    data[third : 2 * third] = b"\x00" * third  # garbage of the same length: size and first line pass
    path.write_bytes(bytes(data))
    again = go(settings, src_repo, "step 3")
    assert again.run.mode == Mode.RESUME and "rewritten since its snapshot" in str(again.run.note)
    assert again.run.result == "fake reply: received 8 messages"  # the whole history


def overwrite_in_place(path: Path, at: int, data: bytes) -> None:
    """Damage that the marks cannot see: bytes written into the file itself (same inode), its size
    unchanged and its mtime set back to the nanosecond (as bit rot, or a restore that keeps mtimes)."""
    before = os.stat(path)
    with path.open("r+b") as fh:
        fh.seek(at)
        fh.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    marks_of = [(st.st_size, st.st_mtime_ns, st.st_ino) for st in (before, os.stat(path))]
    assert marks_of[0] == marks_of[1]


def test_a_transcript_damaged_in_place_with_its_marks_kept_is_hydrated(
    settings: Settings, src_repo: Path
) -> None:
    _, path = three_turns(settings, src_repo)
    third = path.stat().st_size // 3
    overwrite_in_place(path, third, b"\x00" * third)  # its middle third
    again = go(settings, src_repo, "step 3")
    assert again.run.mode == Mode.RESUME, again.run.note
    assert "changed in place since its snapshot (its bytes differ" in str(again.run.note)
    assert "the snapshot holds the bytes the last turn left (their digest agrees)" in str(again.run.note)
    assert again.run.result == "fake reply: received 8 messages"  # the whole history
    assert path.read_bytes().count(b"\x00") == 0
    assert "hydrated" not in str(go(settings, src_repo, "step 4").run.note)  # marked again: in step


def test_a_transcript_untouched_since_its_snapshot_is_resumed_without_hydrating(
    settings: Settings, src_repo: Path
) -> None:
    _, path = three_turns(settings, src_repo)
    os.chmod(path, 0o600)  # its ctime moves, its bytes do not: checked whole, found intact
    again = go(settings, src_repo, "step 3")
    assert again.run.mode == Mode.RESUME and "hydrated" not in str(again.run.note), again.run.note
    assert again.run.result == "fake reply: received 8 messages"


def test_a_mark_without_digests_is_judged_by_its_stat_alone(settings: Settings, src_repo: Path) -> None:
    """A session marked by a baton before digests: damage in place is not seen, as before."""
    last, path = three_turns(settings, src_repo)
    agent = session_agent(last.session, settings)
    mark = agent.home.with_name(agent.home.name + marks.MARK)
    found = json.loads(mark.read_text())
    found.pop("content", None)
    mark.write_text(json.dumps(found))
    third = path.stat().st_size // 3
    overwrite_in_place(path, third, b"\x00" * third)
    again = go(settings, src_repo, "step 3")
    assert again.run.mode == Mode.RESUME and "hydrated" not in str(again.run.note)
    assert again.run.outcome == Outcome.SUCCEEDED


def test_a_transcript_appended_to_since_its_snapshot_is_resumed_as_it_is(
    settings: Settings, src_repo: Path
) -> None:
    last, path = three_turns(settings, src_repo)
    entry = {
        "type": "user",
        "uuid": "u-extra",
        "parentUuid": None,
        "sessionId": last.session.agent_session_id,
    }
    with path.open("a") as fh:  # what a turn killed after the last snapshot leaves: its prompt, appended
        fh.write(json.dumps({**entry, "message": {"role": "user", "content": "killed turn"}}) + "\n")
    again = go(settings, src_repo, "step 3")
    assert again.run.mode == Mode.RESUME and "hydrated" not in str(again.run.note)
    assert again.run.result == "fake reply: received 9 messages"  # the appended line is kept


def test_a_mark_of_an_older_baton_is_trusted(settings: Settings, src_repo: Path) -> None:
    last, path = three_turns(settings, src_repo)
    agent = session_agent(last.session, settings)
    mark = agent.home.with_name(agent.home.name + marks.MARK)
    found = json.loads(mark.read_text())
    mark.write_text(found["identity"])  # the bare identity an older baton wrote
    with path.open("a") as fh:
        fh.write("\n")
    again = go(settings, src_repo, "step 3")
    assert again.run.mode == Mode.RESUME and "hydrated" not in str(again.run.note)


def test_begins_with_over_several_chunks(tmp_path: Path) -> None:
    """A transcript of several chunks: an append keeps it "beginning with" its snapshot, a byte changed
    in any chunk does not; the search for the last chunk stops one chunk on."""
    lines = [json.dumps({"n": i, "pad": "x" * 200}).encode() + b"\n" for i in range(4000)]
    data = b"".join(lines)
    assert len(chunks(data)) >= 3 and len(data) > 2 * CHUNK
    snapshot = Snapshot("fake", "o/r", "t", "s", {"t.jsonl": [_sha(c) for c in chunks(data)]}, len(data), 0.0)

    class Home:
        home = tmp_path / "home"

    Home.home.mkdir()
    agent = Home()
    target = Home.home / "t.jsonl"
    target.write_bytes(data + b'{"appended": true}\n' * 3000)
    assert marks._begins_with(agent, "t.jsonl", snapshot.files["t.jsonl"])  # type: ignore[arg-type]
    for at in (10, CHUNK + 10, len(data) - 10):
        changed = bytearray(data)
        changed[at] ^= 0x01
        target.write_bytes(bytes(changed))
        assert not marks._begins_with(agent, "t.jsonl", snapshot.files["t.jsonl"]), at  # type: ignore[arg-type]
    os.unlink(target)
    assert not marks._begins_with(agent, "t.jsonl", snapshot.files["t.jsonl"])  # type: ignore[arg-type]


def _sha(chunk: memoryview) -> str:
    return hashlib.sha256(chunk).hexdigest()
