"""Transcript snapshots with the fake agent's home and a real SQLite store."""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from baton.agents import Agent, get_agent
from baton.errors import StoreError
from baton.keys import Key, Repo
from baton.models import Snapshot
from baton.sessions.snapshots import hydrate, take_snapshot
from baton.settings import Settings, load_settings
from baton.store import SQLStore

SID = "6f1c2d3e-0000-4000-8000-000000000001"
CWD = Path("/nonexistent-worktree")
KEY = Key("fake", Repo("https://github.com/acme/api", "github.com/acme/api", local=False), "issue-1")
TRANSCRIPT = b"".join(f'{{"type":"user","sessionId":"{SID}","n":{i}}}\n'.encode() for i in range(50))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(overrides={"home": str(tmp_path / "home")}, environ={})


@pytest.fixture
def agent(settings: Settings) -> Agent:
    return get_agent("fake", settings)


@pytest.fixture
def store(settings: Settings) -> Iterator[SQLStore]:
    opened = SQLStore(settings.resolved_store_url)
    yield opened
    opened.close()


def _write_transcript(
    agent: Agent, session_id: str = SID, data: bytes = TRANSCRIPT, project: str = "-w-api"
) -> Path:
    path = agent.home / "projects" / project / f"{session_id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _wipe_home(agent: Agent) -> None:
    for root, dirs, files in os.walk(agent.home, topdown=False):
        for name in files:
            os.unlink(os.path.join(root, name))
        for name in dirs:
            os.rmdir(os.path.join(root, name))


def test_fake_agent_home_is_under_baton_home(agent: Agent, settings: Settings) -> None:
    assert agent.home == settings.home / "homes" / "fake"


def test_snapshot_then_hydrate_round_trip(store: SQLStore, agent: Agent) -> None:
    original = _write_transcript(agent)
    _write_transcript(agent, session_id="someone-else", data=b"{}\n")
    snapshot = take_snapshot(store, agent, KEY, SID)
    assert snapshot is not None
    digest = hashlib.sha256(TRANSCRIPT).hexdigest()
    assert snapshot.files == {f"projects/-w-api/{SID}.jsonl": [digest]}
    assert snapshot.total_bytes == len(TRANSCRIPT)
    assert (snapshot.agent, snapshot.repo, snapshot.thread, snapshot.agent_session_id) == (
        "fake",
        "github.com/acme/api",
        "issue-1",
        SID,
    )
    assert store.get_snapshot("fake", "github.com/acme/api", "issue-1") == snapshot
    stored = store.get_blob(digest)
    assert stored is not None and len(stored) < len(TRANSCRIPT)  # compressed
    assert zlib.decompress(stored) == TRANSCRIPT

    _wipe_home(agent)
    assert agent.transcript_files(SID) == []
    assert hydrate(store, agent, KEY, SID, CWD) == snapshot
    assert original.read_bytes() == TRANSCRIPT
    assert agent.transcript_files(SID) == [original]
    assert not list(original.parent.glob(".*baton-tmp"))


def test_snapshot_of_a_session_without_transcripts_is_none(store: SQLStore, agent: Agent) -> None:
    assert take_snapshot(store, agent, KEY, SID) is None
    _write_transcript(agent, data=b"")  # empty files do not count as a conversation
    assert take_snapshot(store, agent, KEY, SID) is None
    assert store.get_snapshot("fake", "github.com/acme/api", "issue-1") is None


def test_new_snapshot_replaces_the_old_and_drops_its_blob(store: SQLStore, agent: Agent) -> None:
    path = _write_transcript(agent)
    first = take_snapshot(store, agent, KEY, SID)
    assert first is not None
    path.write_bytes(TRANSCRIPT + b'{"type":"assistant"}\n')
    second = take_snapshot(store, agent, KEY, SID)
    assert second is not None
    assert second.files != first.files
    assert store.get_blob(next(iter(first.files.values()))[0]) is None
    assert store.get_blob(next(iter(second.files.values()))[0]) is not None


def test_hydrate_without_a_snapshot_or_for_another_session_is_none(store: SQLStore, agent: Agent) -> None:
    assert hydrate(store, agent, KEY, SID, CWD) is None
    _write_transcript(agent)
    take_snapshot(store, agent, KEY, SID)
    _wipe_home(agent)
    assert hydrate(store, agent, KEY, "another-session", CWD) is None
    assert agent.transcript_files(SID) == []


def test_hydrate_keeps_a_longer_local_transcript(store: SQLStore, agent: Agent) -> None:
    path = _write_transcript(agent)
    take_snapshot(store, agent, KEY, SID)
    longer = TRANSCRIPT + b'{"type":"user","n":"local"}\n'
    path.write_bytes(longer)
    hydrate(store, agent, KEY, SID, CWD)
    assert path.read_bytes() == longer


def test_hydrate_replaces_a_truncated_local_transcript(store: SQLStore, agent: Agent) -> None:
    path = _write_transcript(agent)
    take_snapshot(store, agent, KEY, SID)
    path.write_bytes(TRANSCRIPT[:10])
    hydrate(store, agent, KEY, SID, CWD)
    assert path.read_bytes() == TRANSCRIPT


def _forged(store: SQLStore, rel: str, content: bytes, stored: bytes | None = None) -> str:
    """Save a snapshot of one file whose stored blob is ``stored`` (default: the honest one)."""
    digest = hashlib.sha256(content).hexdigest()
    store.put_blob(digest, zlib.compress(content) if stored is None else stored, len(content))
    store.save_snapshot(
        Snapshot("fake", "github.com/acme/api", "issue-1", SID, {rel: [digest]}, len(content), 1.0)
    )
    return digest


def test_corrupt_blob_is_detected(store: SQLStore, agent: Agent) -> None:
    rel = f"projects/-w-api/{SID}.jsonl"
    _forged(store, rel, TRANSCRIPT, stored=zlib.compress(b"tampered\n"))
    with pytest.raises(StoreError, match="corrupt"):
        hydrate(store, agent, KEY, SID, CWD)
    assert not (agent.home / rel).exists()


def test_undecompressable_blob_is_a_store_error(store: SQLStore, agent: Agent) -> None:
    rel = f"projects/-w-api/{SID}.jsonl"
    _forged(store, rel, TRANSCRIPT, stored=b"not zlib at all")
    with pytest.raises(StoreError, match="corrupt"):
        hydrate(store, agent, KEY, SID, CWD)
    assert not (agent.home / rel).exists()


def test_missing_blob_is_reported(store: SQLStore, agent: Agent) -> None:
    # a plain digest, not a list: the first snapshot format, which hydrate still reads
    first_format: dict[str, Any] = {"projects/p/x.jsonl": "ab" * 32}
    store.save_snapshot(Snapshot("fake", "github.com/acme/api", "issue-1", SID, first_format, 1, 1.0))
    with pytest.raises(StoreError, match="missing blob abababababab"):
        hydrate(store, agent, KEY, SID, CWD)


@pytest.mark.parametrize(
    "rel", ["../escaped.jsonl", "projects/../../escaped.jsonl", "{outside}/escaped.jsonl", "."]
)
def test_path_escaping_the_home_is_rejected(store: SQLStore, agent: Agent, rel: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    _forged(store, rel.format(outside=outside), b"evil\n")
    with pytest.raises(StoreError, match="outside the agent home"):
        hydrate(store, agent, KEY, SID, CWD)
    assert not (agent.home.parent / "escaped.jsonl").exists()
    assert list(outside.iterdir()) == []


def test_symlink_out_of_the_home_is_rejected(store: SQLStore, agent: Agent, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    agent.home.mkdir(parents=True)
    (agent.home / "projects").symlink_to(outside)
    _forged(store, "projects/p/x.jsonl", b"data\n")
    with pytest.raises(StoreError, match="outside the agent home"):
        hydrate(store, agent, KEY, SID, CWD)
    assert list(outside.iterdir()) == []


def test_long_transcript_is_chunked_and_unchanged_chunks_are_not_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from baton.sessions.chunking import CHUNK, chunks

    line = b'{"type":"user","message":"' + b"x" * 1000 + b'"}\n'
    data = line * (2 * CHUNK // len(line) + 5)
    parts = chunks(data)
    assert b"".join(parts) == data and len(parts) == 3
    assert all(bytes(p).endswith(b"\n") for p in parts)
    assert chunks(data + line)[:2] == parts[:2], "appending leaves earlier chunks byte-identical"

    settings = load_settings(overrides={"home": str(tmp_path / "home")}, environ={})
    store = SQLStore(settings.resolved_store_url)
    agent = get_agent("fake", settings)
    path = agent.home / "projects" / "-w-api" / f"{SID}.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    first = take_snapshot(store, agent, KEY, SID)
    written: list[str] = []
    original = store.put_blob

    def spy(digest: str, blob: bytes, size: int) -> None:
        written.append(digest)
        original(digest, blob, size)

    monkeypatch.setattr(store, "put_blob", spy)
    path.write_bytes(data + line)
    second = take_snapshot(store, agent, KEY, SID)
    assert first is not None and second is not None
    assert len(written) == 1, "only the changed last chunk is compressed and stored"
    path.unlink()
    assert hydrate(store, agent, KEY, SID, CWD) is not None
    assert path.read_bytes() == data + line


def test_hydrate_takes_the_chunks_an_older_local_copy_holds_from_it(
    store: SQLStore, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    from baton.sessions.chunking import CHUNK

    line = b'{"type":"user","message":"' + b"y" * 1000 + b'"}\n'
    older = line * (2 * CHUNK // len(line) + 5)  # three chunks, the last one partial
    path = _write_transcript(agent, data=older + line * 3)
    take_snapshot(store, agent, KEY, SID)
    path.write_bytes(older)  # this machine's copy is a turn behind
    read: list[str] = []
    original = store.get_blob

    def spy(digest: str) -> bytes | None:
        read.append(digest)
        return original(digest)

    monkeypatch.setattr(store, "get_blob", spy)
    hydrate(store, agent, KEY, SID, CWD, overwrite=True)
    assert path.read_bytes() == older + line * 3
    assert len(read) == 1, "only the chunk that grew comes from the store"
    path.write_bytes(older[:-1] + b"X")  # a local copy whose chunk differs is not trusted for it
    read.clear()
    hydrate(store, agent, KEY, SID, CWD, overwrite=True)
    assert path.read_bytes() == older + line * 3 and len(read) == 1
