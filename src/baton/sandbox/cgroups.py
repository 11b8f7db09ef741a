"""A control group per run: where the kernel lets baton make one, every process a run starts is in it,
however it detached, so the run's end can end them all, count them, and bound their memory, process
count and CPU. Both layouts are supported, alone or side by side (the "hybrid" layout): cgroup v2, a
child of the runner's own group, and cgroup v1, ``<runner's group>/baton/<run id>`` in each hierarchy
(:class:`Host`). A group is made only beneath the runner's own group and only where baton may write;
anything the kernel refuses drops that piece, never the run (:func:`probe` says what this host
enforces, for ``baton doctor``). Groups are named by run id, so the next runner of a key can end what a
crashed run left (:func:`end_stale`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from baton import retry

V1_CONTROLLERS = ("memory", "pids", "cpu", "freezer")
# walks of the agent's tree when it is moved in: each moves what the last found; they stop when one finds
# nothing new (a busy host's slow moves let the agent fork between two walks)
PLACING_WALKS = 10
PARENT = "baton"  # v1: the runs' groups live in <own group>/baton/; v2: <own group>/baton-<run id>


@dataclass(frozen=True)
class Limits:
    """One run's bounds; None: not bounded."""

    memory: int | None = None  # bytes
    pids: int | None = None  # processes and threads
    cpu: float | None = None  # cores' worth of CPU time per second


@dataclass(frozen=True)
class Host:
    """Where this host lets baton make run groups: the directories under which they go.

    - **cgroup v2** (the unified hierarchy, ``cgroup2`` in ``/proc/self/mountinfo``) always gives
      ``cgroup.procs`` and ``cgroup.kill`` (Linux 5.14), so it is the preferred *tracker*. Its limits
      (``memory.max``, ``pids.max``, ``cpu.max``) need the controllers enabled in the parent's
      ``cgroup.subtree_control``, which the kernel refuses (EBUSY) in a non-root group that holds
      processes itself: then v2 tracks and ends the run's processes, and limits come from v1 or nowhere.
    - **cgroup v1** (one hierarchy per controller): ``memory`` (``memory.limit_in_bytes``, OOM kills
      counted in ``memory.oom_control``), ``pids`` (``pids.max``, ``pids.events``), ``cpu``
      (``cpu.cfs_quota_us``) and ``freezer`` (to stop a fork bomb in place while it is killed). v1 is
      preferred where both are writable: it has the limits on hosts of the hybrid layout.
    """

    v2: Path | None = None  # the runner's own v2 group, where baton may make children
    v2_controllers: frozenset[str] = frozenset()  # limits v2 can enforce there
    v1: dict[str, Path] = field(default_factory=dict)  # controller → <own group>/baton in its hierarchy
    reason: str | None = None  # why nothing can be made (for doctor)

    @property
    def tracks(self) -> bool:
        return self.v2 is not None or bool(self.v1)

    def enforces(self) -> dict[str, str]:
        """Each limit this host enforces → how (``cgroup v2`` / ``cgroup v1``)."""
        found: dict[str, str] = {}
        for name in ("memory", "pids", "cpu"):
            if name in self.v2_controllers:
                found[name] = "cgroup v2"
            elif name in self.v1:
                found[name] = "cgroup v1"
        return found

    def describe(self) -> str:
        if not self.tracks:
            return f"no run groups: {self.reason or 'no writable cgroup hierarchy'}"
        how = "cgroup v2" if self.v2 is not None else f"cgroup v1 ({', '.join(sorted(self.v1))})"
        limits = self.enforces()
        said = ", ".join(f"{k} ({v})" for k, v in limits.items()) if limits else "none"
        return f"a group per run through {how}; limits enforced: {said}"


def _mounts() -> list[tuple[str, Path, str, set[str]]]:
    """The cgroup mounts: (fs type, mount point, root within the hierarchy, super options)."""
    found = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            parts, tail = left.split(), right.split()
            if len(parts) >= 5 and tail and tail[0] in ("cgroup", "cgroup2"):
                found.append((tail[0], Path(parts[4]), parts[3], set(tail[-1].split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """``/proc/self/cgroup``: hierarchy (``""`` for v2, else its controllers joined) → own path."""
    found = {}
    with contextlib.suppress(OSError), open("/proc/self/cgroup", encoding="utf-8") as fh:
        for line in fh:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            found[controllers] = path
    return found


def _beneath(mount: Path, root: str, own: str) -> Path | None:
    """Where the runner's own group appears under ``mount`` (None: outside what is mounted here)."""
    if root != "/" and own != root and not own.startswith(root.rstrip("/") + "/"):
        return None
    rel = own[len(root) :] if root != "/" else own
    return mount / rel.lstrip("/")


def _writable(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK) and os.access(path / "cgroup.procs", os.W_OK)


@cache
def probe() -> Host:
    """What this host lets baton make (read once per process)."""
    if not os.path.isdir("/sys/fs/cgroup"):
        return Host(reason="no /sys/fs/cgroup (not Linux, or not mounted)")
    own, mounts = _own_paths(), _mounts()
    v2 = next((p for kind, m, root, _ in mounts if kind == "cgroup2" for p in _v2_place(m, root, own)), None)
    v1 = _v1_places(mounts, own)
    if v2 is None and not v1:
        return Host(reason="no cgroup hierarchy baton may write (not root, and no delegated subtree)")
    if {"freezer", "pids"} & v1.keys():  # v1 groups take the agent from its first instruction on
        return Host(None, frozenset(), v1)
    return Host(v2, _v2_limits(v2) if v2 is not None else frozenset(), v1)


def _v2_place(mount: Path, root: str, own: dict[str, str]) -> list[Path]:
    """The runner's own v2 group under this mount, when baton may make groups in it."""
    place = _beneath(mount, root, own[""]) if "" in own else None
    return [place] if place is not None and _writable(place) else []


def _v1_places(mounts: list[tuple[str, Path, str, set[str]]], own: dict[str, str]) -> dict[str, Path]:
    """Each v1 controller baton uses → ``<own group>/baton`` in its hierarchy, where writable."""
    found: dict[str, Path] = {}
    for kind, mount, root, options in mounts:
        for name in V1_CONTROLLERS if kind == "cgroup" else ():
            hierarchy = next((k for k in own if name in k.split(",")), None)
            if name not in options or hierarchy is None or name in found:
                continue
            place = _beneath(mount, root, own[hierarchy])
            if place is not None and _v1_parent(place / PARENT):
                found[name] = place / PARENT
    return found


def _v1_parent(path: Path) -> bool:
    """``<own>/baton`` made (or there) and writable."""
    try:
        path.mkdir(exist_ok=True)
    except OSError:
        return False
    return _writable(path)


def _v2_limits(place: Path) -> frozenset[str]:
    """The limit controllers baton can enable for children of ``place``."""
    try:
        available = set((place / "cgroup.controllers").read_text().split())
    except OSError:
        return frozenset()
    enabled = set()
    for name in ("memory", "pids", "cpu"):
        if name not in available:
            continue
        try:
            (place / "cgroup.subtree_control").write_text(f"+{name}")
        except OSError:  # EBUSY: the group holds processes and is not the root
            continue
        enabled.add(name)
    return frozenset(enabled)


class RunGroup:
    """One run's groups: ``add`` its processes, ``tripped`` when a limit struck, ``end`` them all."""

    def __init__(self, host: Host, run_id: str, limits: Limits) -> None:
        self.limits = limits
        self.dirs: dict[str, Path] = {}  # "v2" or a v1 controller → the run's directory
        if host.v2 is not None:
            self._make("v2", host.v2 / f"{PARENT}-{run_id}")
        for name, parent in host.v1.items():
            if name in self._v1_needed(host, limits):
                self._make(name, parent / run_id)
        self.v2_limits = host.v2_controllers if "v2" in self.dirs else frozenset()
        self._set_limits()

    @staticmethod
    def _v1_needed(host: Host, limits: Limits) -> set[str]:
        """The v1 hierarchies this run needs: one to track its processes (``pids``, else ``freezer``),
        and those of its limits (each group costs a ``mkdir`` and a placement)."""
        needed = {"pids"} if "pids" in host.v1 else {"freezer"}
        if limits.memory is not None:
            needed.add("memory")
        if limits.cpu is not None:
            needed.add("cpu")
        return needed

    @property
    def made(self) -> bool:
        return bool(self.dirs)

    def _make(self, name: str, path: Path) -> None:
        with contextlib.suppress(OSError):
            path.mkdir(exist_ok=True)
            self.dirs[name] = path

    def _write(self, name: str, file: str, value: str) -> bool:
        path = self.dirs.get(name)
        if path is None:
            return False
        try:
            (path / file).write_text(value)
        except OSError:
            return False
        return True

    def _set_limits(self) -> None:
        memory, pids, cpu = self.limits.memory, self.limits.pids, self.limits.cpu
        v2 = self.v2_limits
        if memory is not None:
            if "memory" in v2:
                self._write("v2", "memory.max", str(memory))
                self._write("v2", "memory.swap.max", "0")
            elif self._write("memory", "memory.limit_in_bytes", str(memory)):
                self._write("memory", "memory.memsw.limit_in_bytes", str(memory))  # swap counts too
        if pids is not None:
            if "pids" in v2:
                self._write("v2", "pids.max", str(pids))
            else:
                self._write("pids", "pids.max", str(pids))
        if cpu is not None:
            period = 100_000
            quota = max(1000, int(cpu * period))
            if "cpu" in v2:
                self._write("v2", "cpu.max", f"{quota} {period}")
            elif self._write("cpu", "cpu.cfs_period_us", str(period)):
                self._write("cpu", "cpu.cfs_quota_us", str(quota))

    def doors(self) -> list[int]:
        """The ``cgroup.procs`` of the run's tracking group (the one its end kills and counts), opened
        for writing now, by the runner (the walled child could not open it; the kernel judges a move by
        the opener's credentials). The child writes ``0`` to it between its fork and its exec (from a
        ``bash -p`` that then execs it: :mod:`baton.runner.process`; else :func:`enter`), so the agent
        or setup is born in it and nothing it forks, however early, outlives the run. Each move waits
        for the kernel's cgroup lock, so only this one is made before the exec: the limits' groups (v1
        ``memory``, ``cpu``) are entered right after (:meth:`add`). Close-on-exec: the process never
        holds it. The caller closes it once the child has started."""
        tracker = self._tracker()
        if tracker is None:
            return []
        try:
            return [os.open(tracker / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)]
        except OSError:
            return []

    def add(self, pid: int, born: bool = False) -> None:
        """Move ``pid``, then every descendant it has by then, into the run's groups; ``born``: it
        entered the tracking group itself before its exec (:meth:`doors`), and so did all it forked,
        so only the limits' groups are left to enter (none: nothing to do).

        Python cannot start a process inside a group (``CLONE_INTO_CGROUP``), hence the doors; the
        limits' groups are entered here, from a thread of the caller's, as each move waits for the
        kernel's cgroup lock."""
        # a door the kernel refused (the child's write is silent): moved in here as before
        tracker = self._tracker() if born and pid in self.procs() else None
        names = [name for name, path in self.dirs.items() if path != tracker]
        if not names:
            return
        moved: set[int] = set()
        for _ in range(PLACING_WALKS):  # what it started while it was being moved, until nothing is new
            new = [found for found in [pid, *descendants(pid)] if found not in moved]
            if not new and moved:
                return
            for found in new:
                moved.add(found)
                for name in names:
                    self._write(name, "cgroup.procs", str(found))

    def _tracker(self) -> Path | None:
        for name in ("v2", "freezer", "pids", "memory", "cpu"):
            if name in self.dirs:
                return self.dirs[name]
        return None

    def procs(self) -> list[int]:
        """The processes in the run's group now."""
        tracker = self._tracker()
        if tracker is None:
            return []
        try:
            text = (tracker / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(line) for line in text.split()]

    def tripped(self) -> str | None:
        """``"memory"`` once the kernel killed a process at the memory limit, ``"pids"`` once a fork
        was refused at the process limit; None while neither happened."""
        if self.limits.memory is not None and self._count("oom") > 0:  # a new group counts from 0
            return "memory"
        if self.limits.pids is not None and self._count("pids") > 0:
            return "pids"
        return None

    def _count(self, what: str) -> int:
        if what == "oom":
            name, file, key = (
                ("v2", "memory.events", "oom_kill")
                if "memory" in self.v2_limits
                else (
                    "memory",
                    "memory.oom_control",
                    "oom_kill",
                )
            )
        else:
            name, file, key = ("v2" if "pids" in self.v2_limits else "pids"), "pids.events", "max"
        path = self.dirs.get(name)
        if path is None:
            return 0
        try:
            text = (path / file).read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            word, _, value = line.partition(" ")
            if word == key and value.strip().isdigit():
                return int(value)
        return 0

    def end(self) -> list[int]:
        """SIGKILL every process still in the group and remove it: the pids ended."""
        ended = kill_all(self.dirs)
        remove(self.dirs)
        return ended


def enter(doors: list[int]) -> None:
    """In the child between its fork and its exec: into the run's groups (:meth:`RunGroup.doors`). Only
    ``write``: the child of a threaded runner may take no lock. A refused door is left to the move
    after the start (:meth:`RunGroup.add`)."""
    for door in doors:
        with contextlib.suppress(OSError):
            os.write(door, b"0")


def kill_all(dirs: dict[str, Path]) -> list[int]:
    """End every process in the groups ``dirs``: ``cgroup.kill`` in v2, else freeze, kill, thaw."""
    seen: set[int] = set()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        found: set[int] = set()
        for path in dirs.values():
            with contextlib.suppress(OSError, ValueError):
                found.update(int(p) for p in (path / "cgroup.procs").read_text().split())
        if not found:
            break
        seen |= found
        _kill_once(dirs, found)
        time.sleep(0.005)
    return sorted(seen)


def _kill_once(dirs: dict[str, Path], pids: set[int]) -> None:
    if "v2" in dirs:
        with contextlib.suppress(OSError):
            (dirs["v2"] / "cgroup.kill").write_text("1")
            return
    freezer = dirs.get("freezer")
    frozen = False
    if freezer is not None:
        with contextlib.suppress(OSError):
            (freezer / "freezer.state").write_text("FROZEN")
            frozen = True
    # without a freezer, all stopped first: killed one by one, a shell whose child died first could run
    # its next command (`sleep N; echo late > late.txt` wrote late.txt) before its own turn came
    handles = _members(dirs, pids)
    try:
        for sig in (signal.SIGKILL,) if frozen else (signal.SIGSTOP, signal.SIGKILL):
            for handle in handles:
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(handle, sig)
    finally:
        for handle in handles:
            os.close(handle)
    if frozen and freezer is not None:
        with contextlib.suppress(OSError):
            (freezer / "freezer.state").write_text("THAWED")


def _members(dirs: dict[str, Path], pids: set[int]) -> list[int]:
    """A pidfd for each of ``pids`` that is (still) in the group: a pid read from ``cgroup.procs`` may
    have exited and been reused by another process before it is signalled (pid_max is often 32768,
    and a fork bomb being ended cycles through it in seconds: the full suite saw an unrelated agent
    of another test ended). The pidfd holds the process it was opened on; its ``/proc/PID/cgroup``,
    read after, says whether that process is the group's."""
    names = {f"/{path.name}" for path in dirs.values()}
    handles = []
    for pid in pids:
        try:
            handle = os.pidfd_open(pid)
        except OSError:
            continue
        try:
            with open(f"/proc/{pid}/cgroup") as fh:
                ours = any(line.rstrip("\n").endswith(tuple(names)) for line in fh)
        except OSError:
            ours = False
        if ours:
            handles.append(handle)
        else:
            os.close(handle)
    return handles


def remove(dirs: dict[str, Path]) -> None:
    """Remove the (emptied) groups; one the kernel still calls busy is retried briefly, then left."""
    for path in dirs.values():
        # FileNotFoundError: gone already; any other OSError (EBUSY) 50 times, 2 ms apart, then left
        with contextlib.suppress(OSError):
            retry.Retrying(
                retry=retry.retry_if_exception(
                    lambda exc: isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError)
                ),
                wait=retry.wait_fixed(0.002),
                stop=retry.stop_after_attempt(50),
                sleep=retry.sleep,
                reraise=True,
            )(path.rmdir)


def end_stale(run_id: str) -> list[int]:
    """End what a run that is no longer supervised (its runner died) left in its groups here."""
    host = probe()
    dirs = {name: parent / run_id for name, parent in host.v1.items()}
    if host.v2 is not None:
        dirs["v2"] = host.v2 / f"{PARENT}-{run_id}"
    found = {name: path for name, path in dirs.items() if path.is_dir()}
    if not found:
        return []
    ended = kill_all(found)
    remove(found)
    return ended


def run_groups() -> list[str]:
    """The run ids whose groups exist here (a run under way, or one whose runner died)."""
    host, found = probe(), set[str]()
    for parent in host.v1.values():
        with contextlib.suppress(OSError):
            found.update(p.name for p in parent.iterdir() if p.is_dir())
    if host.v2 is not None:
        with contextlib.suppress(OSError):
            prefix = f"{PARENT}-"
            found.update(p.name[len(prefix) :] for p in host.v2.iterdir() if p.name.startswith(prefix))
    return sorted(found)


def descendants(pid: int) -> list[int]:
    """Every descendant of ``pid`` now (``/proc/<pid>/task/*/children``), depth first."""
    found: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        for child in children(current):
            if child not in found:
                found.append(child)
                stack.append(child)
    return found


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (of all its threads)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        with (
            contextlib.suppress(OSError, ValueError),
            open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as fh,
        ):
            found.extend(int(p) for p in fh.read().split())
    return found
