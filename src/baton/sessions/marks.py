"""Marks: beside each agent home, which snapshot its copy of the conversation is in step with, and what
its transcript files were then (size, mtime, inode, and a digest of their bytes: :mod:`.digest`),
written when a snapshot is taken or hydrated (:func:`mark`), in a file the agent's walls do not reach.
A turn's decision reads it (:func:`in_step`: another machine took a snapshot since, so this copy is
older) and checks each file (:func:`altered`): one changed since the mark without a turn to explain it
must still begin with the snapshot's bytes (an append, a turn killed after the last snapshot, is kept;
a rewrite in the middle is not); one whose size, mtime and inode did not change must still match its
digest (damage in place: bit rot, a restore that keeps mtimes). Either way the conversation is hydrated
from the store instead of resumed with a history the CLI would silently cut.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from baton.agents.base import Agent
from baton.models import Snapshot
from baton.sessions import digest
from baton.sessions.chunking import CHUNK, chunks
from baton.workspace import nofollow

MARK = ".snapshot-mark"  # the agent home's name + this
log = logging.getLogger("baton.sessions")


def identity(snapshot: Snapshot) -> str:
    """What names a snapshot's content: its conversation and every file's chunk digests."""
    body = json.dumps([snapshot.agent_session_id, snapshot.files], sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def _mark_path(agent: Agent) -> Path:
    return agent.home.with_name(agent.home.name + MARK)


def mark(agent: Agent, snapshot: Snapshot) -> None:
    """Remember that the agent home's copy of the conversation is ``snapshot`` (just taken or hydrated),
    and each of its files' size, mtime and inode, and what it holds (:func:`baton.sessions.digest.take`:
    the file read once more, hashed whole). A conversation kept in a file that does not only grow
    (OpenCode's database, Copilot's session state) cannot be judged by its size, and a machine that ran
    turn one, while another ran turn two, must hydrate turn two rather than resume its own older copy.
    A mark that cannot be written is only logged: the next decision then trusts the local copy."""
    path = _mark_path(agent)
    files: dict[str, list[int] | None] = {}
    content: dict[str, dict[str, object]] = {}
    for rel in snapshot.files:
        seen = digest.take(agent.home, rel)
        if seen is None:  # missing, a link, changing: its stat alone, as before
            files[rel] = _stat(agent.home / rel)
        else:
            files[rel], content[rel] = seen.stat, seen.to_json()
    body = {"identity": identity(snapshot), "files": files, "content": content}
    try:
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(body), encoding="ascii")
        temporary.replace(path)
    except OSError as exc:
        log.warning("could not mark %s as in step with its snapshot: %s", agent.home, exc)


def read_mark(agent: Agent) -> dict[str, Any] | None:
    """The mark (a bare identity: one written by an older baton); None when there is none."""
    try:
        text = _mark_path(agent).read_text(encoding="ascii")
    except (OSError, ValueError):
        return None
    try:
        found = json.loads(text)
    except ValueError:
        return {"identity": text, "files": {}}
    return found if isinstance(found, dict) else None


def in_step(agent: Agent, snapshot: Snapshot) -> bool | None:
    """Whether the agent home's copy was last in step with ``snapshot`` (False: the store's snapshot
    was taken elsewhere since, so the local copy is older); None when no mark was ever written."""
    found = read_mark(agent)
    return None if found is None else found.get("identity") == identity(snapshot)


def out_of_step(agent: Agent, snapshot: Snapshot) -> str | None:
    """Why the local copy cannot be resumed over the store's ``snapshot``, or None: another machine
    took it since (this copy is older), or a file was rewritten since this copy's own (:func:`altered`)."""
    step = in_step(agent, snapshot)
    if step is False:
        return "this machine's copy is older: the store's snapshot was taken on another machine since"
    return altered(agent, snapshot) if step else None


def altered(agent: Agent, snapshot: Snapshot) -> str | None:
    """Why the local copy, in step with ``snapshot`` by its mark, cannot be trusted: a file changed
    since the mark that no longer begins with the snapshot's bytes, or one whose size, mtime and inode
    did not change that no longer holds the bytes its digest names; else None. Costs a stat per file
    and its digest's check (:func:`baton.sessions.digest.check`: ~2 ms for a file of 4 MiB, ~0.6 ms
    sampled for a longer one); a changed file is read and hashed up to the snapshot's length."""
    found = read_mark(agent)
    files = found.get("files") if found else None
    if not isinstance(files, dict):
        return None
    content = found.get("content") if found else None
    kept = content if isinstance(content, dict) else {}  # none: marked by an older baton
    for rel, digests in snapshot.files.items():
        was, now = files.get(rel), _stat(agent.home / rel)
        if not isinstance(was, list) or now is None:
            continue  # moved (the size check judges); or marked by an older baton
        if now == was:
            how = digest.check(agent.home, rel, was, kept.get(rel))
            if how:
                name = Path(rel).name
                return (
                    f"{name} changed in place since its snapshot ({how}; its size, mtime and inode did not)"
                )
            continue
        if not _begins_with(agent, rel, [digests] if isinstance(digests, str) else digests):
            return f"{Path(rel).name} was rewritten since its snapshot (it no longer begins with its bytes)"
    return None


def confirmed(agent: Agent, snapshot: Snapshot) -> str | None:
    """Whether ``snapshot`` holds the bytes the agent home's copy had when its mark was taken (the end
    of its last turn), by their digests (:func:`baton.sessions.digest.root`), no byte read: words for
    the note of a run that hydrates it over a damaged copy; None when nothing can be told (the mark is
    of another snapshot, or has no digests)."""
    found = read_mark(agent)
    kept = found.get("content") if found and found.get("identity") == identity(snapshot) else None
    if not isinstance(kept, dict):
        return None
    told = {rel: _whole(kept.get(rel)) for rel in snapshot.files}
    differ = [
        Path(rel).name for rel, whole in told.items() if whole and whole != digest.root(snapshot.files[rel])
    ]
    if not any(told.values()):
        return None
    if not differ:
        return "the snapshot holds the bytes the last turn left (their digest agrees)"
    return f"the snapshot's {', '.join(differ)} differ from the bytes the last turn left (by their digest)"


def _whole(kept: object) -> str | None:
    value = kept.get("whole") if isinstance(kept, dict) else None
    return value if isinstance(value, str) else None


def _stat(path: Path) -> list[int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _begins_with(agent: Agent, rel: str, digests: list[str]) -> bool:
    """Whether the file's bytes begin with the chunks ``digests`` names. Chunks end at a newline
    (:func:`baton.sessions.chunking.chunks`): every chunk but the last is the local file's own chunk;
    the last, cut at the snapshot's end, is one of the local bytes' prefixes ending at a newline or at
    the file's end."""
    try:
        data = nofollow.read_beneath(agent.home, Path(rel))
    except (OSError, ValueError):
        return False
    local = chunks(data)
    *whole, last = digests or [""]
    if len(local) < len(digests) or any(
        hashlib.sha256(c).hexdigest() != d for c, d in zip(local, whole, strict=False)
    ):
        return False
    start = sum(len(c) for c in local[: len(whole)])
    digest, at = hashlib.sha256(), start
    while at < len(data):  # every prefix of the rest ending at a newline, hashed once in all
        cut = data.find(b"\n", at)
        end = len(data) if cut < 0 else cut + 1
        digest.update(data[at:end])
        if digest.hexdigest() == last:
            return True
        if end > start + CHUNK:  # a chunk ends at the first newline past CHUNK bytes: no longer one
            break
        at = end
    return not digests
