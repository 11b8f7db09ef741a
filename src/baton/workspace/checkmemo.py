"""What a key's last checkpoint was made of, so that the next checkpoint of a worktree that has not
changed since is that same commit without staging anything again (staging a dirty worktree costs two
git processes and a third to compare, tens of ms on a loaded machine; most checkpoints find the
worktree as the last one left it: a turn that edited nothing, a worker taking a key over that first
checkpoints its own older state). The memo (:class:`Memo`) says, for the last checkpoint commit, the
HEAD it sits on, the status it was made from, and what git staged for every path that status named;
:func:`holds` believes it only when all of that is still so, the contents hashed again. It lives in
``BATON_HOME/cache/checkpoints/``, out of every agent's reach.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from baton.files import atomic_write_text
from baton.keys import Key
from baton.workspace import nofollow

MAX_PATHS = 512


@dataclass(frozen=True)
class Memo:
    head: str
    status: str
    commit: str
    staged: dict[str, tuple[str, str] | None]  # path → (mode, object id) as staged; None: removed


def path_of(home: Path, key: Key) -> Path:
    return home / "cache" / "checkpoints" / f"{hashlib.sha256(str(key).encode()).hexdigest()[:32]}.json"


def paths(status: str) -> list[str] | None:
    """The paths a porcelain v1 ``-z`` status names; None when it cannot be memoised (a status naming a
    nested repository, ``dir/``, or more than :data:`MAX_PATHS` paths)."""
    found = [entry[3:] for entry in status.split("\0") if entry]
    if len(found) > MAX_PATHS or any(p.endswith("/") or not p for p in found):
        return None
    return found


def load(home: Path, key: Key) -> Memo | None:
    try:
        data = json.loads(path_of(home, key).read_text())
        staged = {p: (tuple(v) if v else None) for p, v in data["staged"].items()}
        return Memo(data["head"], data["status"], data["commit"], staged)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def save(home: Path, key: Key, memo: Memo) -> None:
    """Best effort: a memo that cannot be written only costs the next checkpoint its staging."""
    data = {"head": memo.head, "status": memo.status, "commit": memo.commit, "staged": memo.staged}
    with contextlib.suppress(OSError):
        target = path_of(home, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, json.dumps(data))


def forget(home: Path, key: Key) -> None:
    with contextlib.suppress(OSError):
        path_of(home, key).unlink()


def holds(memo: Memo, worktree: Path, head: str | None, status: str) -> bool:
    """Whether the worktree (``head``, ``status``: just read) still holds the memo's commit: HEAD and
    the status are the same and every named path has the same mode and content — hashed again here, as
    git hashes a blob, never trusted from stat data. Paths the status does not name are HEAD's (that is
    what the status says), so the tree is the same. A memo that is missing, unreadable or of another
    checkpoint than the key's ref (the ref was moved here: a take-over) is never believed: the caller
    then checks the checkpoint commit itself the same way, against its diff from HEAD
    (:func:`baton.workspace.checkpoints.take`), and stages as before when it does not hold."""
    if head != memo.head or status != memo.status:
        return False
    named = paths(status)
    if named is None or set(named) != set(memo.staged):
        return False
    algorithm = "sha1" if len(head) == 40 else "sha256"
    return all(blob(worktree, rel, algorithm) == memo.staged[rel] for rel in named)


def blob(worktree: Path, rel: str, algorithm: str) -> tuple[str, str] | None:
    """The mode and object id git would stage for ``rel`` (None: no such file), read without
    following a link below the worktree; ``("", "")`` for anything git would not stage as a blob."""
    try:
        info = os.lstat(worktree / rel)
    except FileNotFoundError:
        return None
    except OSError:
        return ("", "")
    if stat.S_ISLNK(info.st_mode):
        mode, data = "120000", os.fsencode(os.readlink(worktree / rel))
    elif stat.S_ISREG(info.st_mode):
        mode = "100755" if info.st_mode & stat.S_IXUSR else "100644"
        try:
            data = nofollow.read_beneath(worktree, rel)
        except OSError:
            return ("", "")
    else:
        return ("", "")
    digest = hashlib.new(algorithm, b"blob %d\0" % len(data))
    digest.update(data)
    return mode, digest.hexdigest()
