"""A key's disk budget during a run (``BATON_KEY_DISK``), and the volume's ``min_free`` as the last line.
A run may not grow its key's files (the worktree, the key's temp dir and its agent home, whatever the
caller names) past the budget: when it does, the agent is stopped with a reason written for people
before the volume fills, so the store and the other keys keep working; whoever fills the volume, a run
is also stopped when its free space falls under ``min_free``. :class:`DiskWatch` measures it cheaply
beside a 2 GB ``node_modules`` (exact walks, paced, and a bound from ``statvfs`` between them) and holds
the budget with one more walk when the turn ends; what that guarantees: docs/security.md, "Disk".
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from baton.settings import Settings, format_size

WALK_SHARE = 0.008  # of a core: the walks' CPU over the run, the first included, stays under it
MIN_SPACING = 1.0  # seconds, at least, between walks (a small key's walk takes milliseconds)
REFRESH = 120.0  # seconds between walks when the bound never asks for one (when the pace allows)
SAMPLE_EVERY = 0.25  # seconds between looks at the volumes (a statvfs is a round trip on NFS)


@dataclass(frozen=True)
class Walk:
    """One exact measurement: the key's allocated bytes, and what it cost."""

    allocated: int
    cpu: float  # seconds of CPU the walk took (du's, or its thread's)
    began: float  # monotonic time it began
    first: bool = False  # the walk at the start of the run


class DiskWatch:
    """The disk budget of one run of one key. Made at the start of the run (its first walk begins at
    once, in the background); :meth:`stop` is the supervision loop's ``stop_when``; :meth:`final` when
    the agent is done; :meth:`close` at the end of the run::

        disk = DiskWatch.from_settings(settings, [worktree, key_tmp, agent_home])
        try:
            result = run_process(..., stop_when=lambda: model_watch.stop() or disk.stop())
            over = disk.final()  # the budget held however fast the agent wrote
        finally:
            disk.close()

    :meth:`stop` is called every 0.1 s and returns in a quarter of a microsecond (2.4 µs four times a
    second, when it looks at the volumes). How:

    - **One exact walk at the start**, in the background (the agent starts meanwhile): the key's
      allocated bytes as ``du -s`` counts them — each entry's ``st_blocks``, links never followed, a
      file with several hard links once — by GNU ``du`` itself at the lowest CPU priority (half the CPU
      of the same walk in Python, and none of it under this process's GIL, which the run's output pumps
      and the service need), else by :func:`key_usage` in a thread.
    - **A bound from** ``statvfs`` **every quarter of a second** (under a microsecond each; the calls in
      between only read the clock): the sum of every fall of the free space of the key's volumes since
      the last exact walk began is an upper bound on what the key grew by since (other writers' growth
      is included; rises are never subtracted, so space another key frees cannot hide this one's
      growth). While walk + falls ≤ budget, nothing else is done.
    - **Only when the bound crosses the budget, another exact walk**, again in the background; its
      result plus the falls since it began is the new bound, and the run is stopped when the walk
      itself is over the budget. Walks are paced so that all of them, the first included, take at most
      :data:`WALK_SHARE` (0.8 %) of a core over the run: the next one comes no sooner than when the
      walks' CPU so far plus the last one's again is 0.8 % of the time since the run began (``du`` walks
      a 100,000-file worktree in ~0.15 s of CPU: a second walk from ~37 s into the run, then one every
      ~19 s at most); the bound keeps being checked meanwhile. Whatever the bound says, a walk every
      :data:`REFRESH` seconds (when the pace allows) catches what a sample can hide (a key writing
      while, in the same quarter of a second, another frees as much).

    So a key that writes faster than the walks may come can overshoot its budget by what it writes
    between two walks; ``min_free`` bounds the damage to the volume, and :meth:`final` holds the budget
    (a 200 MB ``dd`` in the turn's last second still ends it ``limited``). A key over its budget when a
    turn starts is stopped by that turn's first walk, or at its end."""

    def __init__(
        self,
        paths: Sequence[Path],
        budget: int | None,
        min_free: int,
        home: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.paths = tuple(Path(p) for p in paths)
        self.budget, self.min_free, self._clock = budget, min_free, clock
        self._home_fd = _volume_fd(home) if home is not None else None
        self.home = home
        # the budgeted paths' volumes, one descriptor each (statvfs of a path would resolve it anew)
        self._volumes: list[int] = []
        if budget is not None:
            seen: set[int] = set()
            for path in self.paths:
                fd = _volume_fd(path)
                if fd is None:
                    continue
                device = os.fstat(fd).st_dev
                if device in seen:
                    os.close(fd)
                else:
                    seen.add(device)
                    self._volumes.append(fd)
        self._free = [_free_blocks(fd) or 0 for fd in self._volumes]
        self._falls = 0  # bytes: every fall of the volumes' free space since the watch began
        self._lock = threading.Lock()
        self._walking: threading.Thread | None = None
        self._du_proc: subprocess.Popen[bytes] | None = None
        self._walk_falls = 0  # self._falls when the walk in flight began
        self._closed = threading.Event()
        self.last: Walk | None = None  # the last exact walk that finished
        self._base_falls = 0  # self._falls when self.last began
        self._next_walk = 0.0  # monotonic time before which the bound may not ask for a walk
        self._refresh_at = float("inf")
        self._began = clock()
        self._sample_at = 0.0  # stop() looks at the volumes again from then on
        self.cpu = 0.0  # seconds of CPU all the walks took
        self.walks = 0  # exact walks done (for tests and the benchmark)
        self._use_du = _du_path() is not None
        self.reason: str | None = None
        if budget is not None:
            self._start_walk()

    @classmethod
    def from_settings(cls, settings: Settings, paths: Sequence[Path]) -> DiskWatch:
        """The watch ``settings`` ask for: ``key_disk`` over ``paths``, ``min_free`` where BATON_HOME
        lives."""
        return cls(paths, settings.key_disk_bytes, settings.min_free_bytes, home=settings.home)

    # -- the supervision loop's side ------------------------------------------------------------------

    def stop(self) -> str | None:
        """A reason to stop the agent now, or None; once given, given on every later call."""
        if self.reason is None:
            now = self._clock()
            if now < self._sample_at:
                return None
            self._sample_at = now + SAMPLE_EVERY
            self.reason = self._short_of_space() or self._over_budget()
        return self.reason

    def _short_of_space(self) -> str | None:
        if self._home_fd is None or not self.min_free:
            return None
        free = _available(self._home_fd)
        if free is None or free >= self.min_free:
            return None
        return (
            f"the volume holding BATON_HOME ({self.home}) has {_size(free)} free, under "
            f"min_free of {_size(self.min_free)} (BATON_MIN_FREE); the conversation is kept"
        )

    def _over_budget(self) -> str | None:
        if self.budget is None:
            return None
        self._sample()
        with self._lock:
            last, walking = self.last, self._walking is not None
            base = self._base_falls
        if last is None:
            return None  # the first walk is still under way
        if last.allocated > self.budget:
            return self._over(last)
        now = self._clock()
        bound = last.allocated + self._falls - base
        if not walking and ((bound > self.budget and now >= self._next_walk) or now >= self._refresh_at):
            self._start_walk()
        return None

    def _sample(self) -> None:
        """Add every fall of the volumes' free space since the last call to ``_falls``."""
        for i, fd in enumerate(self._volumes):
            free = _free_blocks(fd)
            if free is None:
                continue
            if free < self._free[i]:
                self._falls += self._free[i] - free
            self._free[i] = free

    def final(self) -> str | None:
        """The turn ended (its processes are gone): the key measured exactly once more, in this thread,
        at full priority (the run waits for it), after any walk under way (which may have begun before
        the last write). The reason to end the turn ``limited``, or None. The files are never touched:
        they are the agent's work, reported, not deleted."""
        if self.reason is not None or self.budget is None or self._closed.is_set():
            return self.reason
        self.wait()
        measured = self._du() if self._use_du else None
        allocated = measured[0] if measured is not None else key_usage(self.paths, self._closed)
        if allocated > self.budget:
            over = f"{_size(allocated - self.budget)} over its disk budget of {_size(self.budget)}"
            self.reason = (
                f"the key's files take {_size(allocated)} at the end of the turn, {over} (BATON_KEY_DISK): "
                "nothing was deleted; free some of them or raise the budget; the conversation is kept"
            )
        return self.reason

    def close(self) -> None:
        """The run ended: a walk under way gives up at its next directory."""
        self._closed.set()
        with self._lock:  # not Popen.kill, which may reap du under the walk's wait4
            if self._du_proc is not None:
                with contextlib.suppress(OSError):
                    os.kill(self._du_proc.pid, signal.SIGKILL)
        for fd in (*self._volumes, *([self._home_fd] if self._home_fd is not None else [])):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._volumes, self._home_fd = [], None

    def wait(self, timeout: float | None = None) -> Walk | None:
        """The walk under way finished (for tests and the benchmark): the last walk's result."""
        with self._lock:
            thread = self._walking
        if thread is not None:
            thread.join(timeout)
        return self.last

    def _over(self, walk: Walk) -> str:
        assert self.budget is not None
        over = f"{_size(walk.allocated - self.budget)} over its disk budget of {_size(self.budget)}"
        if walk.first:
            return (
                f"the key's files take {_size(walk.allocated)}, {over} (BATON_KEY_DISK): free some of "
                "them or raise the budget; the conversation is kept"
            )
        return (
            f"the key's files grew to {_size(walk.allocated)}, {over} (BATON_KEY_DISK); "
            "the conversation is kept"
        )

    # -- the walks -------------------------------------------------------------------------------------

    def _start_walk(self) -> None:
        with self._lock:
            if self._walking is not None or self._closed.is_set():
                return
            self._walk_falls = self._falls
            thread = threading.Thread(target=self._walk, name="baton-diskwatch", daemon=True)
            self._walking = thread
        thread.start()

    def _walk(self) -> None:
        began = self._clock()
        measured = None
        try:
            measured = self._measure()
        finally:  # whatever happened, the next walk may come
            with self._lock:
                self._walking = None
                if measured is not None and not self._closed.is_set():
                    self._record(*measured, began)

    def _measure(self) -> tuple[int, float] | None:
        """The key's allocated bytes and the walk's CPU; None when the watch was closed meanwhile."""
        measured = self._du() if self._use_du else None
        if measured is not None or self._closed.is_set():
            return measured
        _lowest_priority()  # no du, or it failed: the same count in this thread
        cpu0 = time.thread_time()
        return key_usage(self.paths, self._closed), time.thread_time() - cpu0

    def _record(self, allocated: int, cpu: float, began: float) -> None:
        """A walk's result (under the lock): the new base of the bound, and when the next walk may come."""
        self.last = Walk(allocated, cpu, began, first=self.walks == 0)
        self._base_falls = self._walk_falls
        self.walks += 1
        self.cpu += cpu
        end = self._clock()
        self._next_walk = max(end + MIN_SPACING, self._began + (self.cpu + cpu) / WALK_SHARE)
        self._refresh_at = max(end + REFRESH, self._next_walk)

    def _du(self) -> tuple[int, float] | None:
        """``du``'s count of the key and its CPU (user + system): half the CPU of the same walk in
        Python (the ``lstat`` calls are most of it), none of it under this process's GIL, at the
        lowest priority. None when it cannot say (not found, killed, output not understood)."""
        du = _du_path()
        assert du is not None
        existing = [os.path.abspath(p) for p in self.paths if os.path.lexists(p)]
        if not existing:
            return 0, 0.0
        # -D: a path given that is a link is followed (as key_usage does); none below it is.
        # -c: one total, each hard-linked file counted once across all the paths
        argv = [du, "-s", "-c", "-D", "--block-size=1", "--", *existing]
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                env={"LC_ALL": "C", "PATH": os.defpath},
            )
        except OSError:
            return None
        with self._lock:
            self._du_proc = proc
            if self._closed.is_set():  # close() ran before it could see this du
                os.kill(proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, proc.pid, 19)
        assert proc.stdout is not None
        with proc.stdout:
            out = proc.stdout.read()
        # Its end is seen without reaping it (WNOWAIT), so close() can never signal a reused pid; then
        # reaped by wait4 for its CPU (Popen.wait would give the exit status alone).
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        with self._lock:
            self._du_proc = None
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            cpu = usage.ru_utime + usage.ru_stime
        except ChildProcessError:  # a reaper of any child in this process took it: its output stands
            proc.returncode, cpu = 0, time.monotonic() - started
        if proc.returncode < 0:
            return None  # killed (closed)
        # -c's last line is "N<tab>total" (every path given is absolute, so no path's line ends so)
        last = out.decode("utf-8", "replace").rstrip("\n").rpartition("\n")[2]
        total, tab, name = last.partition("\t")
        if not (total.isdigit() and tab and name == "total"):
            self._use_du = False  # not GNU du (BusyBox's has no --block-size): walk in Python from now on
            return None
        # exit 1 only says some entry vanished or was unreadable mid-walk: the total counts the rest
        return int(total), cpu


def key_usage(paths: Sequence[Path], stop: threading.Event | None = None) -> int:
    """Allocated bytes under ``paths`` as ``du -s`` counts them (:mod:`baton.workspace.du`: every
    entry's blocks, links never followed, a file with several hard links once across all the paths);
    a path that does not exist counts 0. ``stop``: give up at the next directory once it is set."""
    linked: set[tuple[int, int]] = set()
    return sum(_tree(path, linked, stop or threading.Event()) for path in paths)


def _tree(path: Path, linked: set[tuple[int, int]], stop: threading.Event) -> int:
    try:
        top = os.stat(path)
    except OSError:
        return 0
    total = int(top.st_blocks) * 512
    stack = [os.fspath(path)] if stat.S_ISDIR(top.st_mode) else []
    while stack and not stop.is_set():
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(entry.path)
                    elif st.st_nlink > 1:
                        if (st.st_dev, st.st_ino) in linked:
                            continue
                        linked.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
        except OSError:
            continue  # vanished or unreadable mid-walk: counts what was read
    return total


@functools.cache
def _du_path() -> str | None:
    """GNU ``du``, which the walks run in a process of their own (else they run in a thread)."""
    return shutil.which("du")


def _volume_fd(path: Path) -> int | None:
    """A descriptor on the volume holding ``path`` (its nearest existing ancestor), or None."""
    probe = Path(path).absolute()
    while True:
        try:
            return os.open(probe, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except NotADirectoryError:
            probe = probe.parent
        except OSError:
            if probe == probe.parent:
                return None
            probe = probe.parent


def _free_blocks(fd: int) -> int | None:
    """The volume's free bytes, reserved blocks included (what any writer's growth takes from)."""
    try:
        st = os.fstatvfs(fd)
    except OSError:
        return None
    return st.f_bfree * st.f_frsize


def _available(fd: int) -> int | None:
    """The volume's free bytes as ``shutil.disk_usage`` says (what baton's own writes may use)."""
    try:
        st = os.fstatvfs(fd)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _lowest_priority() -> None:
    """This thread (on Linux, ``setpriority`` on a thread id is the thread's alone) yields the CPU to
    the agent: the walk is bookkeeping."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def _size(n: int) -> str:
    """``5 GiB``, ``5.2 GiB``, ``180 MiB``."""
    text = format_size(n)
    return text.replace(".0 ", " ")
