"""Spare copies: a new key's copy-on-write worktree made ahead, off the run's critical path. A
reflinked copy of a pristine checkout (:mod:`baton.workspace.cow.pristine`) costs what a checkout costs
in the kernel, one inode per file and directory (Django's 6,809 files: ~0.7 s here, as much as ``git
worktree add``). So each pristine checkout keeps one **spare**, ``<pristine>/spare/`` (``tree/``, a
reflinked copy, and ``index``, git's index of it, stat data included): a new worktree takes it whole
(:func:`take`, one ``rename``) and is ready in the time of a few renames, and the worktree that took it,
or made a copy because there was none, starts a new one in a background thread (:func:`refill`) while
its agent takes its turn. A spare costs the inodes of one checkout (XFS: ~4.9 MiB for Django), not its
data: it shares its extents with the pristine files.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from baton.files import atomic_write_bytes
from baton.workspace.cow import clonetree

log = logging.getLogger("baton.workspace")
SPARE = "spare"
BUILD = ".spare-"
_threads: dict[Path, threading.Thread] = {}  # pristine checkout -> its spare being made
_guard = threading.Lock()


def take(pristine: Path, holder: Path) -> tuple[Path, bytes] | None:
    """Claim ``pristine``'s spare: moved into ``holder`` (a new worktree's staging directory); its
    files' directory and its index. None when it has none (or another process took it first: of two
    takers, one gets it, the other copies as before)."""
    claimed = holder / SPARE
    try:
        os.rename(pristine / SPARE, claimed)
        return claimed / "tree", (claimed / "index").read_bytes()
    except OSError:  # none, taken meanwhile, or not whole (then cleared with holder)
        return None


def refill(pristine: Path, oid_size: int) -> None:
    """Make ``pristine``'s spare in a background thread when it has none, so it is made while the new
    worktree's agent takes its turn (seconds with a real model; the copy of Django, ~0.7 s)."""
    if not (pristine / SPARE).exists():
        start(pristine, lambda: build(pristine, oid_size))


def start(pristine: Path, work: Callable[[], object]) -> None:
    """Run ``work`` for the pristine checkout ``pristine`` in a background thread, unless work for it
    is under way in this process (the thread calling this excepted: work may chain more work)."""
    with _guard:
        running = _threads.get(pristine)
        if running is not None and running.is_alive() and running is not threading.current_thread():
            return
        thread = threading.Thread(target=work, name="baton-pristine")
        _threads[pristine] = thread
        thread.start()  # not a daemon: a process waits for it before it exits, never leaves it half-made


def wait(pristine: Path) -> None:
    """Wait for this process's work on ``pristine`` (and what it chained), if any."""
    while True:
        with _guard:
            running = _threads.get(pristine)
        if running is None or running is threading.current_thread() or not running.is_alive():
            return
        running.join()


def settle() -> None:
    """Wait for all the work on pristine checkouts under way in this process (tests and benchmarks,
    between steps; threads still copying are also waited for at the process's exit)."""
    while True:
        with _guard:
            running = [t for t in _threads.values() if t.is_alive() and t is not threading.current_thread()]
            if not running:
                _threads.clear()
                return
        for thread in running:
            thread.join()


def build(pristine: Path, oid_size: int) -> bool:
    """Make ``pristine``'s spare now, unless it has one or another process is making it; whether one
    was made. Failures (the pristine checkout evicted meanwhile, a full disk) only log: the next
    worktree copies as before. A spare is built in ``<pristine>/.spare-*`` and renamed into place
    whole, so one that exists is complete; a kill mid-build leaves a ``.spare-*`` directory, removed by
    the next build under the same lock. It lives inside the pristine checkout and goes with it when
    that is evicted; agents cannot write there (their walls grant only the cache's ``objects/``, their
    own admin dir and branch refs)."""
    try:
        lock = os.open(pristine / "index", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False  # evicted
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by a process making one: leave it
        if (pristine / SPARE).exists():
            return False
        _clear_builds(pristine)
        return _build(pristine, oid_size)
    except BlockingIOError:
        return False
    finally:
        os.close(lock)


def _build(pristine: Path, oid_size: int) -> bool:
    tmp = Path(tempfile.mkdtemp(prefix=BUILD, dir=pristine))
    try:
        (tmp / "tree").mkdir()
        files = (pristine / "index").read_bytes()
        index, _ = clonetree.clone(pristine / "tree", tmp / "tree", files, oid_size)
        atomic_write_bytes(tmp / "index", index)
        os.rename(tmp, pristine / SPARE)
        return True
    except (OSError, ValueError) as exc:
        log.info("no spare copy of %s made: %s", pristine.name[:12], exc)
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _clear_builds(pristine: Path) -> None:
    """Remove the builds a killed process left (the caller holds the pristine checkout's lock)."""
    for name in os.listdir(pristine):
        if name.startswith(BUILD):
            shutil.rmtree(pristine / name, ignore_errors=True)
