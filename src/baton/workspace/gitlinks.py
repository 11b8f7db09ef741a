"""How baton finds a key's worktree's git without trusting anything its agent can write. git links a
linked worktree and its admin dir in the cache clone both ways (the worktree's ``.git`` file names the
admin dir, the admin dir's ``gitdir`` names the worktree and its ``commondir`` the cache clone), and an
agent may write all three (its worktree and its admin dir are inside its walls), so baton reads none
of them to decide where git looks (:class:`~baton.workspace.gitcmd.WorktreeGit`): the admin dir has
the key's name (:func:`admin_name`, given by :func:`claim` right after ``git worktree add``), and
:func:`repair` puts the links back each time baton resolves them.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
from pathlib import Path

from baton.errors import GitError
from baton.files import atomic_write_text
from baton.keys import Key
from baton.workspace import nofollow
from baton.workspace.gitcmd import WorktreeGit

log = logging.getLogger("baton.workspace")
ADMIN = "worktrees"  # in the cache clone: git's admin dirs of linked worktrees
_HEAD = re.compile(  # a branch, or a commit id other than git's placeholder of zeros
    r"ref: refs/heads/(?!.*(?:\.\.|//|@\{|\.lock(?:/|$)|/\.))[A-Za-z0-9._/@+-]+"
    r"|(?!0+$)(?:[0-9a-f]{40}|[0-9a-f]{64})"
)


def admin_name(key: Key) -> str:
    """The name of the key's admin dir in its cache clone: ``<agent>+<thread>``.

    The name is a function of the key, so nothing needs recording: no other key's admin dir can have it
    (an agent cannot create or rename entries of ``worktrees/``, only write inside its own admin dir),
    and git never makes a name with ``+`` (a thread has none). A stale dir of that name is the same
    key's. Chosen over scanning ``worktrees/*/gitdir`` for the one that points back at the worktree,
    which another agent can forge (its own ``gitdir`` may name any path), and over a record beside the
    cache, which goes stale when git prunes an admin dir and reuses its name."""
    agent = re.sub(r"[^A-Za-z0-9._-]", "_", key.agent)
    if agent != key.agent:
        agent += "-" + hashlib.sha256(key.agent.encode()).hexdigest()[:8]
    return f"{agent}+{key.thread}"


def admin_dir(cache: Path, key: Key) -> Path:
    return cache / ADMIN / admin_name(key)


def names(cache: Path) -> set[str]:
    """The admin dirs of the cache clone, by name."""
    try:
        return set(os.listdir(cache / ADMIN))
    except FileNotFoundError:
        return set()


def is_real_dir(path: Path) -> bool:
    """A directory, not a link to one."""
    return path.is_dir() and not path.is_symlink()


def claim(cache: Path, before: set[str], path: Path, key: Key) -> WorktreeGit:
    """After ``git worktree add`` made the worktree at ``path`` (``before``: the admin dirs until then;
    the caller holds the repo's lock): give its admin dir the key's name and point ``.git`` at it. git
    names it after the worktree's directory (the thread, with a number when two agents share a thread);
    this runs under the repo's lock, before any agent ran there."""
    made = names(cache) - before
    if len(made) != 1:
        raise GitError(f"git worktree add made {len(made)} admin dirs in {cache / ADMIN}, not one")
    target = admin_dir(cache, key)
    if target.exists() or target.is_symlink():
        drop(cache, key)
    os.rename(cache / ADMIN / made.pop(), target)
    _put(path / ".git", f"gitdir: {target}\n")
    return WorktreeGit(path, target, cache)


def drop(cache: Path, key: Key) -> None:
    """Remove the key's admin dir (a stale one: its worktree is gone), so it claims no branch."""
    target = admin_dir(cache, key)
    if target.is_symlink():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)


def find(cache: Path, key: Key) -> Path | None:
    """The key's admin dir when it exists (its name is the key's: :func:`admin_name`)."""
    target = admin_dir(cache, key)
    return target if is_real_dir(target) else None


def adopt(cache: Path, path: Path, key: Key) -> Path | None:
    """A worktree made before admin dirs had the key's name: the one git-named admin dir whose
    ``gitdir`` points back at ``path``, renamed to the key's name (the caller holds the repo's lock);
    None when there is none, or more than one (one is forged): the worktree is then treated as
    broken."""
    if find(cache, key) is not None:
        return admin_dir(cache, key)
    want = str(path.resolve() / ".git")
    found = [
        cache / ADMIN / name
        for name in sorted(names(cache))
        if "+" not in name
        and is_real_dir(cache / ADMIN / name)
        and not os.path.lexists(cache / ADMIN / name / "locked")  # unfinished: see drop_unfinished
        and (nofollow.read_text(cache / ADMIN / name / "gitdir") or "").strip() == want
    ]
    if len(found) != 1:
        if found:
            log.warning("%d admin dirs claim the worktree %s: none is trusted", len(found), path)
        return None
    target = admin_dir(cache, key)
    os.rename(found[0], target)
    log.info("renamed the admin dir of worktree %s to %s", path, target.name)
    return target


def drop_unfinished(cache: Path, root: Path) -> list[Path]:
    """Remove what a killed ``git worktree add`` left: a git-named admin dir still holding the
    ``locked`` file git writes first and removes last (baton never locks a worktree, and renames an
    admin dir to the key's name only after the add), and the half-made worktree under ``root`` it
    names, which no agent ever ran in. Its HEAD may still be git's placeholder of forty zeros, on which
    every fetch of the repo fails; ``git worktree prune`` keeps a locked admin dir. The caller holds
    the repo's lock, under which every ``git worktree add`` runs. The half-made worktrees removed."""
    removed = []
    for name in sorted(names(cache)):
        admin = cache / ADMIN / name
        if "+" in name or not is_real_dir(admin) or not os.path.lexists(admin / "locked"):
            continue
        made = Path((nofollow.read_text(admin / "gitdir") or "").strip()).parent
        if made.is_absolute() and ".." not in made.parts and root in made.parents and is_real_dir(made):
            shutil.rmtree(made, ignore_errors=True)  # an orphaned checkout may still write
            removed.append(made)
        shutil.rmtree(admin, ignore_errors=True)
        log.warning("removed an unfinished git worktree add (%s) of %s", name, made)
    return removed


def repair(wt: WorktreeGit) -> WorktreeGit:
    """Make the links between the worktree and its admin dir what baton made them, and remove what no
    git dir holds; logged when anything was changed. The ``.git`` file, ``gitdir`` and ``commondir``
    are rewritten when they say anything else (the agent's own git, and the walls built for its next
    run, read them); links, FIFOs, sockets and devices in the admin dir are removed (git appends to
    ``logs/HEAD`` and locks ``index`` through a link, which would write wherever it points). A ``HEAD``
    that names no commit or branch is pointed at the key's branch by :func:`ensure_head`."""
    fixed = [f"{name} (not a file or directory)" for name in nofollow.scrub(wt.admin)]
    fixed += drop_alternates(wt.common)
    wanted = {
        wt.path / ".git": f"gitdir: {wt.admin}\n",
        wt.admin / "gitdir": f"{wt.path.resolve() / '.git'}\n",
        wt.admin / "commondir": "../..\n",
    }
    for path, text in wanted.items():
        if nofollow.read_text(path) != text:
            _put(path, text)
            fixed.append(str(path))
    if fixed:
        log.warning("repaired the git links of worktree %s: %s", wt.path, ", ".join(fixed))
    return wt


# Where git finds objects of other repositories: baton never writes one, so one is an agent's (an agent at
# `full` writes objects/; its mount namespace holds objects/info read-only, the walls alone do not).
ALTERNATES = ("alternates", "http-alternates")


def drop_alternates(cache: Path) -> list[str]:
    """Remove the alternates files of the cache clone ``cache`` before baton's git reads it (they would
    point it at another key's, or another repository's, objects); what was removed, logged."""
    removed = []
    for name in ALTERNATES:
        path = cache / "objects" / "info" / name
        if os.path.lexists(path):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            removed.append(str(path))
    if removed:
        log.warning("removed what no clone of baton's has: %s", ", ".join(removed))
    return removed


def ensure_head(wt: WorktreeGit, branch: str) -> bool:
    """Point a HEAD that names no branch and no commit (missing, a link, garbage) at ``branch``;
    True when it was rewritten. A HEAD on another branch or detached is the agent's choice: kept."""
    head = wt.head()
    if head is not None and _HEAD.fullmatch(head):
        return False
    _put(wt.admin / "HEAD", f"ref: refs/heads/{branch}\n")
    log.warning(
        "the HEAD of worktree %s was unusable (%r): pointed at %s", wt.path, (head or "")[:80], branch
    )
    return True


def _put(path: Path, text: str) -> None:
    """Write ``path`` atomically, whatever is there now (a directory the agent made is removed)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    atomic_write_text(path, text)
