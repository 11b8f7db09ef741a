"""What a setup run in the key's own worktree may not leave behind: a commit, a moved ``HEAD``, a change
to a tracked file. Its branch is not writable inside its walls (no commit lands there), yet a setup can
still detach ``HEAD``, stage, or rewrite a tracked file (``npm install`` rewriting
``package-lock.json``, or a script the agent planted). :func:`before` notes the worktree's state (its
``HEAD`` file, its commit, its index as a tree, its tracked files as a commit of
``git stash create``), and :func:`undo` puts back whatever differs and says what it undid, for the
run's note. Untracked files (``.venv``, ``node_modules``) are the setup's results and stay; the
agent's own uncommitted work is part of the noted state, so it is restored, never lost. baton's git
runs here through :class:`~baton.workspace.gitcmd.WorktreeGit` (never the agent's pointers).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from baton.errors import BatonError
from baton.workspace.gitcmd import WorktreeGit

# a stash commit needs an author; none of the key's identity is used for it
_IDENTITY = ["-c", "user.name=baton", "-c", "user.email=baton@localhost"]
_LITERAL = {"GIT_LITERAL_PATHSPECS": "1"}


@dataclass(frozen=True)
class Before:
    """The worktree's state before a setup."""

    head: str  # the HEAD file's text (``ref: refs/heads/…`` or a commit)
    commit: str  # the commit it names
    index: str | None  # the index as a tree (None: it could not be written, an unmerged index)
    files: str  # the tracked files as they were: a stash commit, or ``commit`` when clean


def before(wt: WorktreeGit) -> Before | None:
    """The worktree's state now; None when it cannot be read (nothing is then undone)."""
    head, commit = wt.head(), wt.commit_of("HEAD")
    if head is None or commit is None:
        return None
    try:
        index = _tree(wt)
        files = wt.run([*_IDENTITY, "stash", "create"]) or commit
    except BatonError:
        return None
    return Before(head, commit, index, files)


def undo(wt: WorktreeGit, was: Before) -> str | None:
    """Put back what the setup changed of ``was``: what was undone, for the run's note; None when it
    changed nothing. BatonError when git fails (the caller says so)."""
    said = []
    if wt.head() != was.head:
        if was.head.startswith("ref: "):
            wt.run(["symbolic-ref", "HEAD", was.head.removeprefix("ref: ")])
        else:
            wt.run(["update-ref", "--no-deref", "HEAD", was.head])
        said.append("its move of HEAD")
    if wt.commit_of("HEAD") != was.commit:
        wt.run(["update-ref", "HEAD", was.commit])
        said.append("its commit")
    now = wt.run([*_IDENTITY, "stash", "create"]) or was.commit
    changed = [p for p in wt.run(["diff", "--name-only", "-z", was.files, now], raw=True).split("\0") if p]
    present = set(wt.run(["ls-tree", "-r", "-z", "--name-only", was.files], raw=True).split("\0"))
    back = [p for p in changed if p in present]
    if back:
        paths = "\0".join(back)
        restore = ["restore", f"--source={was.files}", "--worktree", "--pathspec-from-file=-"]
        wt.run([*restore, "--pathspec-file-nul"], env={**os.environ, **_LITERAL}, stdin=paths)
    if was.index is not None and _tree(wt) != was.index:
        wt.run(["read-tree", was.index])
        wt.call(["update-index", "-q", "--refresh"])
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        said.append(f"its changes to tracked files ({shown})")
    return f"undone: {'; '.join(said)}" if said else None


def _tree(wt: WorktreeGit) -> str | None:
    out = wt.call(["write-tree"], text=True)
    return out.stdout.strip() if out.returncode == 0 else None
