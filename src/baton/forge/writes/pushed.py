"""A turn its publisher pushed before it died. Published again from the store's checkpoint (on another
machine: :mod:`baton.forge.background.adopt`), the turn's uncommitted work is committed again, as a commit
with the same tree on the same parent but another hash (its time differs), which the forge refuses as a
non-fast-forward of the one already pushed. :func:`twin` finds that the forge's branch holds the turn
already: its tip is our commit's twin, and the worktree moves to it (``reset --soft``: the trees are
the same, nothing in the worktree changes), so the publish goes on as if it had pushed it itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from baton.errors import GitError
from baton.workspace.gitcmd import WorktreeGit, run_git

SAFE_GIT = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"]
Fetch = Callable[[list[str]], str]  # runs a git command that reaches the forge (its credentials given)


def twin(wt: WorktreeGit, cache: Path, url: str, branch: str, head: str, fetch: Fetch) -> str | None:
    """The forge's tip of ``branch`` when it is ``head``'s twin (the same tree, the same parents), the
    worktree moved to it; None when it is not (or cannot be read: the refusal stands)."""
    ref = f"refs/baton/forge-tip/{head}"
    try:
        fetch([*SAFE_GIT, "fetch", "--quiet", "--no-tags", url, f"+refs/heads/{branch}:{ref}"])
        tip = run_git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=cache)
        if not tip or _shape(cache, tip) != _shape(cache, head):
            return None
        wt.run([*SAFE_GIT, "reset", "--quiet", "--soft", tip])
        return tip
    except GitError:
        return None
    finally:
        with contextlib.suppress(GitError):
            run_git(["update-ref", "-d", ref], cwd=cache)


def _shape(cache: Path, commit: str) -> str:
    """A commit's tree and parents: what two commits of the same work share whatever their times."""
    return run_git(["show", "--no-patch", "--format=%T %P", commit], cwd=cache)
