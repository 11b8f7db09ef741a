"""Refs in a cache clone that name no object, which would make every fetch of the repo fail. After it
receives objects, ``git fetch`` checks that they connect to every ref the clone has, the HEADs and
private refs of all linked worktrees included (``rev-list --all``); one ref naming an object the clone
lacks makes it die with ``fatal: bad object <ref>``, for every key of the repo. Such a ref comes from
a ``git worktree add`` killed between the placeholder HEAD it writes first (forty zeros) and the real
one, or from an agent, whose walls let it write its own admin dir (its HEAD) and its branch.
:func:`fetch_healing` runs a fetch and, while it fails naming such a ref, :func:`heal` s it and
fetches again. The caller holds the repo's lock.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from baton import retry
from baton.errors import GitError
from baton.workspace import gitlinks, nofollow
from baton.workspace.gitcmd import run_git

log = logging.getLogger("baton.workspace")
_BAD = re.compile(r"fatal: bad object (\S+)")
_PRIVATE = re.compile(r"worktrees/([^/]+)/((?:HEAD|refs/.+))")
TRIES = 8  # refs healed per fetch at most: each costs a failed fetch


def fetch_healing(cache: Path, fetch: Callable[[], object]) -> list[str]:
    """Run ``fetch``; while it fails on a ref naming no object, heal that ref and run it again. The
    refs healed; the fetch's own error when it fails otherwise, or on a ref that cannot be healed."""
    healed: list[str] = []

    def healed_one(exc: BaseException) -> bool:
        """Whether ``exc`` named a bad ref that is healed now (so the fetch is worth another try)."""
        found = _BAD.search(str(exc)) if isinstance(exc, GitError) else None
        ref = found.group(1) if found else None
        if ref is None or ref in healed or len(healed) >= TRIES or not heal(cache, ref):
            return False
        healed.append(ref)
        return True

    retry.Retrying(
        retry=retry.retry_if_exception(healed_one),
        wait=retry.wait_none(),  # at once: the fetch failed on the ref, not on the network
        stop=retry.stop_never,  # bounded by TRIES: healed_one says no after that many refs
        reraise=True,
    )(fetch)
    return healed


def heal(cache: Path, ref: str) -> bool:
    """Remove ``ref`` of the cache clone (as git named it in ``bad object <ref>``) when it names no
    object; False when it is not a ref baton can remove, or names an object after all. A worktree's
    private ref (``worktrees/<name>/HEAD``) is removed, and baton points that HEAD at the key's branch
    the next time the key runs (:func:`baton.workspace.gitlinks.ensure_head`); a shared ref
    (``refs/...``) is deleted. Neither held anything: the object it names does not exist. Both are
    logged with what they held."""
    private = _PRIVATE.fullmatch(ref)
    if private:
        held = _remove_private(cache, cache / gitlinks.ADMIN / private.group(1), private.group(2))
    elif ref.startswith("refs/"):
        held = _remove_shared(cache, ref)
    else:
        held = None
    if held is None:
        return False
    log.warning(
        "removed %s from %s: it named no object (%r), and fetches failed on it", ref, cache, held[:80]
    )
    return True


def _remove_private(cache: Path, admin: Path, rel: str) -> str | None:
    """Remove a worktree's private ref ``admin/rel`` when it names no object; what it held, or None.
    The admin dir is the agent's to write: no component below it is followed, to read or remove."""
    if not gitlinks.is_real_dir(admin):
        return None
    try:
        held = nofollow.read_beneath(admin, rel).decode("utf-8", "replace")
    except (OSError, ValueError):
        return None
    if _names_object(cache, held) or not nofollow.remove_beneath(admin, rel):
        return None
    return held


def _remove_shared(cache: Path, ref: str) -> str | None:
    """Delete the shared ``ref`` when it names no object; what it held, or None."""
    held = _value(cache, ref)
    if held is None or _names_object(cache, held):
        return None
    run_git(["update-ref", "--no-deref", "-d", ref], cwd=cache)
    return held


def _value(cache: Path, ref: str) -> str | None:
    try:
        return run_git(["rev-parse", "--verify", "--quiet", "--end-of-options", ref], cwd=cache)
    except GitError:
        return None


def _names_object(cache: Path, held: str) -> bool:
    """Whether a ref's text (an object id, or ``ref: <name>``: the agent's words, never an option)
    names an existing object."""
    text = held.strip()
    if text.startswith("ref:"):
        target = text.removeprefix("ref:").strip()
        try:
            run_git(
                ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{target}^{{object}}"], cwd=cache
            )
        except GitError:
            return False
        return True
    try:
        run_git(["cat-file", "-e", "--end-of-options", f"{text}^{{object}}"], cwd=cache)
    except GitError:
        return False
    return True
