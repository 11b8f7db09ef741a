"""The decision matrix: how one attempt of a run starts its conversation.

``mode=auto``:

- no session id for the key → ``fresh`` (with a pre-assigned id), full prompt;
- transcript on local disk and intact → ``resume`` by id;
- transcript missing locally, or shorter than the store's snapshot, or unreadable → hydrate it from the
  snapshot, then ``resume``;
- gone everywhere, or the snapshot itself is corrupt or missing blobs, or the agent says "not found"
  → ``recover``: fresh, with a recap of earlier runs. The run's ``note`` says why.

A resumed turn after an interrupted one (crashed, timed out, cancelled, or a failed attempt being
retried) gets the "you were interrupted" prompt instead of the bare delta.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baton.agents import Agent
from baton.errors import BadInput, BatonError
from baton.keys import Key
from baton.models import Fence, Mode, PromptKind, RunRecord, SessionRecord, Snapshot
from baton.runner.request import RunRequest
from baton.sessions.snapshots import hydrate
from baton.settings import Settings
from baton.store import Store
from baton.workspace.workdirs import Workdirs


@dataclass
class Context:
    """What every step of one run works with."""

    request: RunRequest
    settings: Settings
    store: Store
    key: Key
    agent: Agent
    workdirs: Workdirs
    lost: threading.Event  # set when the key's lease was taken over: stop, write nothing more
    fence: Fence | None = None  # the lease's proof: the store refuses this run's writes after a takeover
    worktree: Path = Path()
    worktree_note: str | None = None  # what preparing the worktree had to do: noted on the first attempt
    sync: dict[str, Any] | None = None  # what syncing with upstream brought in: recorded on the first attempt
    sync_text: str = ""  # ...and what the first attempt's prompt tells the agent about it
    recap: str = ""  # a hand-off's recap of the other agent's conversation
    source: str = ""  # the agent a hand-off came from


@dataclass
class Decision:
    mode: Mode
    session_id: str | None  # the conversation to resume or fork
    kind: PromptKind
    reason: str = ""  # for the interrupted note: how the last turn ended
    previous: str = ""  # the interrupted instruction (the agent may not have flushed it to disk)
    note: str | None = None  # why: recorded on the run


@dataclass
class Local:
    """Whether a conversation can be resumed from local disk, and what it took to get there."""

    ok: bool
    note: str | None = None


def decide(
    ctx: Context, session: SessionRecord, forced: Mode | None, interrupted: RunRecord | None
) -> Decision:
    mode = forced or ctx.request.mode
    if mode == Mode.FRESH:
        return Decision(Mode.FRESH, None, PromptKind.FULL)
    if mode == Mode.RECOVER:
        return Decision(
            Mode.RECOVER, None, PromptKind.RECAP, note="the agent could not find the conversation"
        )
    if mode == Mode.FORK:
        return _decide_fork(ctx, session)
    follow_up, reason, previous = PromptKind.DELTA, "", ""
    if interrupted is not None:
        follow_up, reason = PromptKind.INTERRUPTED, interrupted.outcome.value.replace("_", " ")
        if interrupted.prompt.strip() != ctx.request.prompt.strip():
            previous = f"That turn's instruction was:\n\n{interrupted.prompt.strip()}\n"
    if mode == Mode.CONTINUE:
        kind = follow_up if session.agent_session_id else PromptKind.FULL
        return Decision(Mode.CONTINUE, None, kind, reason, previous)
    if not session.agent_session_id:
        return Decision(Mode.FRESH, None, PromptKind.FULL)
    local = ensure_local(ctx, ctx.key, session.agent_session_id, ctx.worktree)
    if local.ok:
        return Decision(Mode.RESUME, session.agent_session_id, follow_up, reason, previous, local.note)
    return Decision(Mode.RECOVER, None, PromptKind.RECAP, note=local.note)


def fork_source(ctx: Context, session: SessionRecord | None) -> tuple[Key, str, Path]:
    """The key, conversation and directory a fork branches from; BadInput when there is none (checked
    before anything is written)."""
    source_key, source_dir = ctx.key, ctx.workdirs.worktree_path(ctx.key)
    source_id = session.agent_session_id if session else None
    if ctx.request.fork_from:
        source_key = Key(ctx.key.agent, ctx.key.repo, ctx.request.fork_from)
        source = ctx.store.get_session(source_key.agent, source_key.repo.slug, source_key.thread)
        source_id = source.agent_session_id if source else None
        source_dir = Path(source.worktree) if source else source_dir
    if not source_id:
        raise BadInput(f"{source_key} has no conversation to fork")
    return source_key, source_id, source_dir


def _decide_fork(ctx: Context, session: SessionRecord) -> Decision:
    source_key, source_id, source_dir = fork_source(ctx, session)
    # hydrated for the SOURCE's directory: agents that key sessions by directory (Gemini) must keep
    # finding the source conversation from its own worktree afterwards
    local = ensure_local(ctx, source_key, source_id, source_dir)
    if not local.ok:
        raise BadInput(f"the conversation of {source_key} is lost ({local.note}); cannot fork it")
    return Decision(Mode.FORK, source_id, PromptKind.DELTA, note=local.note)


def ensure_local(ctx: Context, key: Key, session_id: str, cwd: Path) -> Local:
    """Make the conversation resumable from local disk, hydrating it from the store's snapshot when the
    local transcript is missing, shorter than the snapshot, or unreadable. Never raises for a broken
    snapshot: that is a lost conversation (recover), not a wedged key."""
    agent, store = ctx.agent, ctx.store
    files = agent.transcript_files(session_id)
    try:
        snapshot = store.get_snapshot(key.agent, key.repo.slug, key.thread)
    except (BatonError, ValueError) as exc:
        return Local(
            bool(files), None if files else f"no local transcript and the snapshot is unreadable: {exc}"
        )
    if snapshot is not None and snapshot.agent_session_id != session_id:
        snapshot = None
    damage = _damage(files, snapshot)
    if files and damage is None:
        return Local(True)
    if snapshot is None:  # nothing better to offer: the agent judges a damaged local transcript
        return Local(
            bool(files), None if files else "no transcript on this machine and no snapshot in the store"
        )
    try:
        hydrate(store, agent, key, session_id, cwd, overwrite=True)
    except (BatonError, OSError, ValueError) as exc:
        if files:
            return Local(
                True, f"the local transcript looks damaged ({damage}) and the snapshot is unusable: {exc}"
            )
        return Local(False, f"no local transcript and the snapshot is unusable: {exc}")
    if not agent.transcript_files(session_id):
        return Local(False, "the snapshot held no usable transcript")
    return Local(True, f"hydrated from the store's snapshot ({damage or 'no transcript on this machine'})")


def _damage(files: list[Path], snapshot: Snapshot | None) -> str | None:
    """Why the local transcript cannot be trusted over the snapshot, or None. Cheap: sizes, and the
    first line of each file (a transcript is JSONL; a binary or rewritten file fails to parse)."""
    if not files:
        return None
    size = sum(p.stat().st_size for p in files)
    if snapshot is not None and size < snapshot.total_bytes:
        return f"the local transcript has {size} bytes, the snapshot {snapshot.total_bytes}"
    for path in files:
        with path.open("rb") as fh:
            first = fh.readline()
        try:
            json.loads(first)
        except ValueError:
            return f"{path.name} does not parse as JSONL"
    return None
