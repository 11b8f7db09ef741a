"""The marker a sync writes before it touches a worktree, and the undoing of a sync killed mid-way.

Only a clean result (or a conflict handed to the agent) touches the worktree, and first
``baton-sync.json`` (:data:`MARKER`: the branch, HEAD before, the checkpoint of the uncommitted work,
the commits the branch may be moved to) and a copy of the index (:data:`INDEX_COPY`) are written to
the worktree's gitdir (:func:`begin`); a sync that ends removes them (:func:`finish`). A marker still
there means the sync was killed: :func:`restore` puts back the branch, the key's checkpoint ref, HEAD,
every tracked and untracked file (from the checkpoint) and the index (from its copy). A marker the
worktree has moved on from (:func:`interrupted` says no) is stale and only dropped.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any

from baton.files import atomic_write_bytes, atomic_write_text
from baton.sync.git import SHA, SyncGit, read_bytes
from baton.sync.plan import LABELS
from baton.workspace import nofollow
from baton.workspace.gitcmd import checkout_changes

MARKER = "baton-sync.json"
INDEX_COPY = "baton-sync.index"
# What a merge, rebase, cherry-pick or revert leaves in a gitdir, files and directories.
_LEFTOVERS = ("MERGE_HEAD", "MERGE_MSG", "MERGE_MODE", "AUTO_MERGE", "CHERRY_PICK_HEAD", "REVERT_HEAD")
_STATE_DIRS = ("rebase-merge", "rebase-apply", "sequencer")


def begin(g: SyncGit, head: str, checkpoint: str | None, targets: list[str]) -> dict[str, Any]:
    """Write the marker (after a copy of the index) before anything in the worktree changes."""
    if g.index_before is not None:
        atomic_write_bytes(g.gitdir / INDEX_COPY, g.index_before)
    marker = {
        "version": 1,
        "branch": g.branch,
        "head_before": head,
        "checkpoint": checkpoint,
        "index": g.index_before is not None,
        "targets": targets,
        "pid": os.getpid(),
        "started": time.time(),
    }
    atomic_write_text(g.gitdir / MARKER, json.dumps(marker))
    return marker


def add_target(g: SyncGit, marker: dict[str, Any], commit: str) -> None:
    """Name in the marker a commit the branch is about to point to (recovery recognises it)."""
    marker["targets"].append(commit)
    atomic_write_text(g.gitdir / MARKER, json.dumps(marker))


def finish(g: SyncGit) -> None:
    for name in (MARKER, INDEX_COPY, *LABELS):
        (g.gitdir / name).unlink(missing_ok=True)


def put_back_index(g: SyncGit) -> None:
    """The index file's bytes as they were before the sync (a checkpoint refreshes its stat data)."""
    if g.index_before is not None and read_bytes(g.gitdir / "index") != g.index_before:
        atomic_write_bytes(g.gitdir / "index", g.index_before)


def read_marker(g: SyncGit) -> dict[str, Any] | None:
    """The marker: None when there is none, {} when it cannot be read."""
    try:
        data = json.loads(nofollow.read_regular(g.gitdir / MARKER))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    head = data.get("head_before")
    shaped = isinstance(data.get("branch"), str) and isinstance(data.get("targets"), list)
    return data if shaped and isinstance(head, str) and SHA.fullmatch(head) else {}


def interrupted(g: SyncGit, marker: dict[str, Any]) -> bool:
    """Whether the worktree is where a killed sync could have left it (else the marker is stale):
    an operation in progress, HEAD detached (a rebase), or the branch where the sync had put it."""
    head = g.head_ref()
    if g.in_progress() is not None or head is None:
        return True
    if head != f"refs/heads/{g.branch}":
        return False
    return g.ref(head) in {marker["head_before"], *marker["targets"]}


def restore(g: SyncGit, marker: dict[str, Any]) -> None:
    """The branch, HEAD, files and index as they were when ``marker`` was written."""
    head, checkpoint = marker["head_before"], marker.get("checkpoint")
    _clear_operation(g)
    g.git("symbolic-ref", "HEAD", f"refs/heads/{g.branch}")
    ref = g.checkpoint_ref()
    moves = f"update refs/heads/{g.branch} {head}\n"
    moves += f"update {ref} {checkpoint}\n" if checkpoint else f"delete {ref}\n"
    g.update_refs("baton: undo an interrupted sync", moves)
    g.git("reset", "--hard", "--quiet", head)
    if checkpoint:
        checkout_changes(g.wt, head, checkpoint)
    _remove_leftovers(g, checkpoint or head)
    if marker.get("index") and read_bytes(g.gitdir / INDEX_COPY) is not None:
        os.replace(g.gitdir / INDEX_COPY, g.gitdir / "index")
    finish(g)


def _clear_operation(g: SyncGit) -> None:
    """Forget a merge or rebase left half-done (its files only; the worktree is reset after)."""
    lock = g.gitdir / "index.lock"
    deadline = time.monotonic() + 2.0
    while lock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # a git process of the killed sync may still be finishing
    lock.unlink(missing_ok=True)
    for name in _LEFTOVERS:
        (g.gitdir / name).unlink(missing_ok=True)
    for name in _STATE_DIRS:
        shutil.rmtree(g.gitdir / name, ignore_errors=True)


def _remove_leftovers(g: SyncGit, state: str) -> None:
    """Delete the untracked files that ``state`` (the worktree before the sync) did not have: the
    files a killed checkout wrote before it could record them in the index."""
    untracked = g.git("ls-files", "--others", "--exclude-standard", "-z", raw=True).split("\0")
    kept = set(g.git("ls-tree", "-r", "--name-only", "-z", state, raw=True).split("\0"))
    for name in untracked:
        if not name or name.endswith("/") or name in kept:
            continue
        nofollow.remove_beneath(g.worktree, name)
