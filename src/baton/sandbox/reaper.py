"""The runner as its runs' child subreaper: a process an agent starts and detaches (``setsid``, a double
fork, ``nohup``, ``disown``) is re-parented to the runner when its parent exits, never to init, so it
stays in reach until the run ends. Which run it belongs to is the run group's business
(:mod:`baton.sandbox.cgroups`) where the host allows one; without a group, :class:`Tree` keeps the
agent's descendants and the re-parented children that belong to the run (its gap: docs/security.md).
The runner must reap what is re-parented to it: :func:`reap_orphans`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time

from baton.sandbox.cgroups import children, descendants

_PR_SET_CHILD_SUBREAPER = 36
LIVE: set[int] = set()  # agents started by this process and not yet waited for (never reaped here)
# held while an agent is started and registered in LIVE, and while a run that may be this process's only
# one ends what it left: a run that judged itself alone must not end an agent started meanwhile
STARTING = threading.Lock()
_lock = threading.Lock()
_subreaper: bool | None = None


def become_subreaper() -> bool:
    """Make this process the subreaper of everything it starts (once; False where the kernel cannot)."""
    global _subreaper
    with _lock:
        if _subreaper is None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                _subreaper = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
            except (OSError, AttributeError):
                _subreaper = False
        return _subreaper


def stat(pid: int) -> tuple[str, int, int, int] | None:
    """``/proc/<pid>/stat``: (state, parent pid, session id, start time in clock ticks); None: gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()  # the command name may hold spaces and parentheses
    try:
        return fields[0].decode(), int(fields[1]), int(fields[3]), int(fields[19])
    except (IndexError, ValueError):
        return None


_SIGKILL_BIT = 1 << (signal.SIGKILL - 1)
_PF_EXITING = 0x4


def ending(pid: int, killed: int = 0) -> bool:
    """Whether ``pid`` is gone or on its way out: exiting (``PF_EXITING``), a zombie, with a SIGKILL
    pending, or a member of the process group ``killed`` (a timed-out agent's group was SIGKILLed: its
    members are on their way out, though one may be between taking the signal and ``PF_EXITING``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        if fields[0] in (b"Z", b"X", b"x") or int(fields[6]) & _PF_EXITING:
            return True
        if killed and int(fields[2]) == killed:
            return True
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                name, _, value = line.partition(":")
                if name in ("SigPnd", "ShdPnd") and int(value, 16) & _SIGKILL_BIT:
                    return True
    except (OSError, ValueError, IndexError):
        return True
    return False


def command(pid: int, limit: int = 80) -> str:
    """A process's command line, short, for the run's record (empty when gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read(4096)
    except OSError:
        return ""
    text = " ".join(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tagged(pid: int, name: bytes, value: bytes) -> bool:
    """Whether ``pid``'s environment holds ``name=value``."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return name + b"=" + value in fh.read().split(b"\0")
    except OSError:
        return False


def own_children() -> list[int]:
    return children(os.getpid())


def reap_orphans() -> None:
    """Wait for this process's exited children that are re-parented orphans (not baton's own, not a
    live agent): otherwise each would stay a zombie for the life of a long-running service. Never a
    child of baton's own, which a ``subprocess.Popen`` will wait for: those share the runner's session,
    and live agents are registered in :data:`LIVE`."""
    me = stat(os.getpid())
    if me is None:
        return
    for pid in own_children():
        found = stat(pid)
        if found is None or found[0] != "Z" or found[2] == me[2] or pid in LIVE:
            continue
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


class Tree:
    """A run's processes without a run group: the agent's descendants as they appear (walked at each
    supervision tick, by pid and start time, so a reused pid is never mistaken), and at the end the
    runner's re-parented children that carry the run's ``BATON_RUN_ID``, or — when this run is the only
    one under way in the process — any that started while the agent ran."""

    def __init__(self, run_id: str) -> None:
        self.tag = run_id.encode()
        self.seen: dict[int, int] = {}  # pid → start time
        self.agent = 0
        self.since = 0  # clock ticks since boot when the agent started

    def add(self, pid: int) -> None:
        self.agent = pid
        found = stat(pid)
        self.since = found[3] if found else 0
        self.watch()

    def watch(self) -> None:
        """Note the agent's descendants now (every supervision tick)."""
        for pid in descendants(self.agent):
            found = stat(pid)
            if found is not None:
                self.seen.setdefault(pid, found[3])

    def _belongs(self, pid: int, alone: bool, me: tuple[str, int, int, int], killed: int) -> bool:
        found = stat(pid)
        if found is None or pid in LIVE or ending(pid, killed):
            return False
        if self.seen.get(pid) == found[3]:
            return True
        if found[2] == me[2] or found[3] < self.since:  # baton's own, or older than the run
            return False
        return tagged(pid, b"BATON_RUN_ID", self.tag) or alone

    def end(self, alone: bool, killed: int = 0) -> list[tuple[int, str]]:
        """SIGKILL what remains of the run (and what that leaves re-parented): (pid, command) each;
        ``killed``: the process group already SIGKILLed (see :func:`ending`)."""
        me = stat(os.getpid())
        ended: dict[int, str] = {}
        for _ in range(50):
            if me is None:
                break
            found = [*self.seen, *own_children()]
            roots = [p for p in found if p not in ended and self._belongs(p, alone, me, killed)]
            if not roots:
                break
            for pid in [*roots, *(d for r in roots for d in descendants(r) if not ending(d, killed))]:
                ended.setdefault(pid, command(pid))
                self.seen.setdefault(pid, (stat(pid) or ("", 0, 0, -1))[3])
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)
        reap_orphans()
        return list(ended.items())
