"""Copy-on-write worktrees: a new worktree is a reflinked copy of a pristine checkout of its commit.
Where ``BATON_HOME``'s cache clones and worktrees are on one file system that clones files (XFS,
btrfs: :func:`usable`), the cache clone keeps a **pristine checkout** per commit a worktree was made
from, ``repos/<slug>.git/baton-pristine/<commit>/`` (``tree/``, the files, and ``index``, git's index
of them), and :func:`make_worktree` copies it (or a near one) into a staging directory that becomes the
key's worktree only when it is whole; a commit with none near it is checked out by git, and its
pristine checkout made from that worktree in the background (:func:`adopt`). Anything that goes wrong
raises :class:`CowUnavailable` after undoing what it made: the caller runs ``git worktree add``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from baton.errors import GitError
from baton.files import atomic_write_bytes, atomic_write_text
from baton.keys import Key
from baton.workspace import gitlinks
from baton.workspace.cow import clonetree, reflink, spares
from baton.workspace.gitcmd import WorktreeGit, run_git

log = logging.getLogger("baton.workspace")
DIRNAME = "baton-pristine"  # in the cache clone
KEEP = 3  # pristine checkouts kept per repo, most recently used first
NEAR = 0.05  # a pristine checkout of another commit is copied when at most this share of files differ
STAGE = ".cow-"
# the pristine index's version, which every worktree copied from it keeps (each holding its own index)
INDEX_VERSION = 4  # each path stored as what differs from the one before: Django's index 27 % smaller


class CowUnavailable(Exception):
    """The copy-on-write path cannot make this worktree; make it with ``git worktree add``."""


class NoPristine(CowUnavailable):
    """No pristine checkout to copy yet: check the worktree out, and make one from it (:func:`adopt`)."""


def usable(cache: Path, worktrees: Path) -> bool:
    """Whether worktrees under ``worktrees`` can be reflinked from pristine checkouts in ``cache``."""
    try:
        return reflink.supported(cache, worktrees)
    except OSError as exc:
        log.warning("could not probe %s for reflinks (%s): worktrees are full checkouts", worktrees, exc)
        return False


def stages(path: Path) -> list[Path]:
    """The staging directories a build of the worktree at ``path`` may have left."""
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    return [path.parent / n for n in names if n.startswith(f"{STAGE}{path.name}-")]


def clear_stages(path: Path) -> None:
    """Remove what a killed build of the worktree at ``path`` left (the caller holds the repo lock,
    and runs ``git worktree prune`` next, which drops their admin dirs)."""
    for stage in stages(path):
        shutil.rmtree(stage, ignore_errors=True)


def nearest(cache: Path, commit: str) -> tuple[Path, str] | None:
    """A pristine checkout to copy for ``commit`` and the commit it holds: ``commit``'s own; else the
    most recently used one when few files differ (a key on a branch one agent commit ahead, a base
    that moved on by a few commits: copying it and checking out the difference costs far less than
    a full checkout); else None (the worktree is checked out, and a pristine checkout made from it:
    :func:`adopt`)."""
    root = cache / DIRNAME
    own = root / commit
    if (own / "index").is_file():
        os.utime(own)  # most recently used: kept longest
        return own, commit
    found = sorted(_checkouts(root), key=_used, reverse=True)[:1]
    for near in found:
        try:
            changed = run_git(["diff-tree", "-r", "--name-only", "-z", near.name, commit], cwd=cache).count(
                "\0"
            )
            with (near / "index").open("rb") as f:
                files = int.from_bytes(f.read(12)[8:], "big")
        except (GitError, OSError):
            continue
        if changed <= NEAR * files:
            os.utime(near)
            return near, near.name
    return None


def _checkouts(root: Path) -> list[Path]:
    try:
        return [
            root / n for n in os.listdir(root) if not n.startswith(".") and (root / n / "index").is_file()
        ]
    except FileNotFoundError:
        return []


def _install(tmp: Path, target: Path) -> bool:
    """Rename the finished build ``tmp`` into place; False when another process put one there first
    (renaming onto a directory that is not empty fails: a complete one is never replaced). A pristine
    checkout is built in a temporary directory and renamed into place whole, so one that exists is
    complete. Only the :data:`KEEP` most recently used of a repo are kept (:func:`_evict`; removing one
    does not touch the worktrees cloned from it: their extents are reference-counted), and they go with
    the cache clone they live in. Agents cannot write there: their walls grant only the cache's
    ``objects/``, their own admin dir and branch refs."""
    if target.exists() and not (target / "index").is_file():
        shutil.rmtree(target, ignore_errors=True)  # a directory without its index: not one we made
    try:
        os.rename(tmp, target)
    except OSError:
        if (target / "index").is_file():
            return False
        raise
    return True


def adopt(cache: Path, commit: str, worktree: Path, env: dict[str, str]) -> bool:
    """Make ``commit``'s pristine checkout from a worktree just checked out at it (``git worktree
    add``, when there was no pristine checkout to copy): its files reflinked from the worktree, then
    verified by git itself against the commit — ``git update-index --refresh`` re-hashes every copy
    (their stat data is not the index's) and a file that is not the commit's (the agent had changed
    it, or a link led elsewhere) is written again from git (``checkout-index``). The worktree's own
    index and links are never trusted: the entries come from ``git read-tree`` of the commit. So the
    first worktree of a commit costs one checkout, not a checkout and a copy, and still shares its
    blocks with the pristine copy. Runs in the background (:func:`adopt_later`); whether it made one
    (any failure only logs: the next worktree builds the pristine checkout from git)."""
    root = cache / DIRNAME
    target = root / commit
    if (target / "index").is_file():
        return False
    root.mkdir(exist_ok=True)
    _evict(root, keep=KEEP - 1)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    building = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(building, fcntl.LOCK_EX)  # under way: never a leftover to _evict
        (tmp / "tree").mkdir()
        index_env = {**env, "GIT_INDEX_FILE": str(tmp / "index"), "GIT_INDEX_VERSION": str(INDEX_VERSION)}
        git = ["--git-dir", str(cache), "--work-tree", str(tmp / "tree")]
        run_git([*git, "read-tree", commit], env=index_env)
        files = (tmp / "index").read_bytes()
        clonetree.clone(worktree, tmp / "tree", files, len(commit) // 2, skip_unreadable=True)
        with contextlib.suppress(GitError):  # some files are not the commit's: listed next
            run_git([*git, "update-index", "-q", "--refresh"], env=index_env)
        wrong = run_git(
            [*git, "diff-files", "--name-only", "-z", "--ignore-submodules"], env=index_env, raw=True
        )
        if wrong:
            run_git([*git, "checkout-index", "-f", "-u", "-z", "--stdin"], env=index_env, stdin=wrong)
        made = _install(tmp, target)
    except (GitError, OSError, ValueError) as exc:
        log.info("no pristine checkout of %s made from %s: %s", commit[:12], worktree, exc)
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.close(building)
    if made:
        spares.refill(target, len(commit) // 2)
    return made


def adopt_later(cache: Path, commit: str, worktree: Path, env: dict[str, str]) -> None:
    """:func:`adopt` in a background thread (:func:`baton.workspace.cow.spares.start`)."""
    spares.start(cache / DIRNAME / commit, lambda: adopt(cache, commit, worktree, env))


def _evict(root: Path, keep: int) -> None:
    """Remove leftover temporary builds, and all but the ``keep`` most recently used checkouts."""
    entries = [root / n for n in os.listdir(root)]
    for tmp in (p for p in entries if p.name.startswith(".tmp-")):
        _remove_leftover(tmp)
    done = sorted((p for p in entries if not p.name.startswith(".")), key=_used, reverse=True)
    for old in done[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def _remove_leftover(tmp: Path) -> None:
    """Remove a build a killed process left; one under way (its directory locked) is left alone."""
    try:
        fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        shutil.rmtree(tmp, ignore_errors=True)
    except BlockingIOError:
        return
    finally:
        os.close(fd)


def _used(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def make_worktree(
    cache: Path, path: Path, key: Key, branch: str, commit: str, env: dict[str, str]
) -> WorktreeGit:
    """The key's worktree at ``path`` on ``branch`` (which exists, at ``commit``), reflinked from the
    pristine checkout of ``commit`` or a near one (:func:`nearest`; the caller holds the repo's lock
    and has cleared ``path``). Raises :class:`CowUnavailable` having undone its own work;
    :class:`NoPristine`, having done nothing, when there is none to copy (the caller checks the
    worktree out, then :func:`adopt_later`). The new worktree is

    1. registered with git without files (``git worktree add --no-checkout``) at a **staging** path
       beside its own, ``.cow-<thread>-*`` (a thread never starts with a dot, so no key owns that name);
    2. filled with a reflinked copy of ``tree/`` and given the pristine index with each entry's stat
       data carried over to the copy, so git trusts it without re-reading the files, in one pass over
       the index (:func:`baton.workspace.cow.clonetree.clone`: the file system shares the extents, so
       the copy costs metadata only; an agent's write to a file unshares just that file's changed
       blocks, never touching the pristine copy or another key's file), or given the pristine
       checkout's **spare copy** whole when it has one (:mod:`baton.workspace.cow.spares`, made ahead
       in the background: :func:`_spare_or_fill`);
    3. pointed at its stable path in git's record (``gitdir``), then
    4. renamed to its stable path, and only then is it a worktree baton reuses.

    Copied from a near commit's checkout, ``git read-tree -m -u`` then writes only the files that
    differ, and their index entries, in the staging directory. A process killed at any step leaves a
    staging directory, never a half-filled worktree at the key's path: :func:`clear_stages` removes the
    key's leftovers before the next build, and ``git worktree prune`` then drops the admin dir that
    pointed there."""
    spares.wait(cache / DIRNAME / commit)  # this process is making it (or its spare): it is nearly there
    found = nearest(cache, commit)
    if found is None:
        raise NoPristine(f"no pristine checkout of {commit[:12]} or near it yet")
    pristine, holds = found
    started = time.perf_counter()
    holder = Path(tempfile.mkdtemp(prefix=f"{STAGE}{path.name}-", dir=path.parent))
    stage = holder / "w"
    before = gitlinks.names(cache)
    wt: WorktreeGit | None = None
    try:
        run_git(["worktree", "add", "--quiet", "--no-checkout", str(stage), branch], cwd=cache, env=env)
        wt = gitlinks.claim(cache, before, stage, key)
        index, missed = _spare_or_fill(pristine, holder, stage, len(commit) // 2)
        atomic_write_bytes(wt.admin / "index", index)
        if holds != commit:  # the files that differ, and their index entries; nothing else is read
            WorktreeGit(stage, wt.admin, cache).run(["read-tree", "-m", "-u", holds, commit], env=env)
        # git's record points at the final path first: a kill before the rename leaves a record of a
        # missing worktree, which the next prune drops (a record of the stage would keep the branch)
        atomic_write_text(wt.admin / "gitdir", f"{path.resolve() / '.git'}\n")
        os.rename(stage, path)
        wt = WorktreeGit(path, wt.admin, cache)
    except (GitError, OSError, ValueError, subprocess.SubprocessError) as exc:
        shutil.rmtree(holder, ignore_errors=True)
        if wt is not None:
            shutil.rmtree(wt.admin, ignore_errors=True)
        raise CowUnavailable(f"a reflinked worktree of {commit[:12]} could not be made: {exc}") from exc
    finally:
        shutil.rmtree(holder, ignore_errors=True)
    log.debug(
        "reflinked the worktree of %s from %s in %.3f s (%d index entries re-read by git)",
        key,
        commit[:12],
        time.perf_counter() - started,
        missed,
    )
    spares.refill(pristine, len(commit) // 2)
    return wt


def _spare_or_fill(pristine: Path, holder: Path, stage: Path, oid_size: int) -> tuple[bytes, int]:
    """Fill ``stage`` (holding only its ``.git`` file): with the pristine checkout's spare copy when
    it has one (:mod:`baton.workspace.cow.spares`: moved in whole, its index ready), else with a copy made
    now; the index for it, and how many entries git will re-read."""
    spare = spares.take(pristine, holder)
    if spare is None:
        return _fill(pristine, stage, oid_size)
    tree, index = spare
    os.rename(stage / ".git", tree / ".git")
    os.rmdir(stage)
    os.rename(tree, stage)  # a kill before it leaves all of it in holder: cleared as a stage
    return index, 0


def _fill(pristine: Path, stage: Path, oid_size: int) -> tuple[bytes, int]:
    """Reflink the pristine checkout's files into ``stage``; its index for them, and how many
    entries git will re-read (20-byte object ids for SHA-1, 32 for SHA-256)."""
    return clonetree.clone(pristine / "tree", stage, (pristine / "index").read_bytes(), oid_size)
