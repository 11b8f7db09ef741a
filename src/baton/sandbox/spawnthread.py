"""Starting one process from a thread of its own, for what Linux keeps per thread: a Landlock domain
and ``no_new_privs`` (:meth:`baton.sandbox.landlock.Ruleset.spawn`), a network namespace
(:meth:`baton.sandbox.egress.Egress.spawn`). Whatever that thread enters, the process it starts
inherits, and the rest of baton (heartbeats, log readers, the store) never does.

The thread lives, blocked in ``waitid(WNOWAIT)``, until that process has exited: a parent-death
signal the process set (``setpriv --pdeathsig``) fires when the *thread* that started it ends, not
the process. It never reaps the process (its caller does).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar


class _HasPid(Protocol):
    @property
    def pid(self) -> int: ...


P = TypeVar("P", bound=_HasPid)


def spawn(start: Callable[[], P], first: Callable[[], None] | None, name: str) -> P:
    """Call ``first`` then ``start`` (which starts one process) in a new thread named ``name``, and
    return what ``start`` returned; what either raised is raised here."""
    box: list[P | BaseException] = []
    ready = threading.Event()
    thread = threading.Thread(target=_started, args=(start, first, box, ready), daemon=True, name=name)
    thread.start()
    try:
        ready.wait()
    except BaseException:  # interrupted: the process may start all the same, unsupervised
        ready.wait()
        if box and not isinstance(box[0], BaseException):
            with contextlib.suppress(OSError):
                os.kill(box[0].pid, signal.SIGKILL)
        raise
    found = box[0]
    if isinstance(found, BaseException):
        raise found
    return found


def _started(
    start: Callable[[], P],
    first: Callable[[], None] | None,
    box: list[P | BaseException],
    ready: threading.Event,
) -> None:
    try:
        if first is not None:
            first()
        proc = start()
    except BaseException as exc:  # handed to the caller's thread
        box.append(exc)
        ready.set()
        return
    box.append(proc)
    ready.set()
    with contextlib.suppress(ChildProcessError, OSError):  # already reaped by its owner: gone
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
