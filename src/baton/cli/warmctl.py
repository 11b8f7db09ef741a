"""``baton warm``: the warm server of this ``BATON_HOME`` (:mod:`baton.cli.warmserver`), seen and stopped.

The server is found by its abstract socket (:func:`baton.cli.warm.address`): a connection's
``SO_PEERCRED`` names its process (and :func:`baton.cli.warm.connect` refuses another user's). The
connection sends nothing: the server's door drops it unanswered. ``stop`` sends that process SIGTERM
through a pidfd taken while the connection is still open (so the pid cannot have been reused) and waits
until the process has exited; runs the server's children are serving go on to their end.
"""

from __future__ import annotations

import os
import select
import signal
from dataclasses import dataclass

from baton.cli import warm
from baton.cli.common import JsonOpt, emit_json, esc, group, out

warm_app = group("The warm server of this BATON_HOME: see it, stop it.")
STOP_WAIT = 10.0  # seconds `warm stop` waits for the server to leave


@dataclass(frozen=True)
class WarmServer:
    """A running warm server: its pid and its child processes (the spare, and the runs it serves)."""

    pid: int
    children: int

    def to_json(self) -> dict[str, object]:
        return {"running": True, "pid": self.pid, "children": self.children}


def find_server(home: str) -> WarmServer | None:
    """This home's warm server, or None when none is listening (or none can be: not Linux)."""
    if not warm.SUPPORTED:
        return None
    try:
        conn = warm.connect(warm.address(home))
    except OSError:
        return None
    try:
        pid = warm.peer(conn)[0]
    finally:
        conn.close()
    return WarmServer(pid, len(_children(pid)))


def stop_server(home: str, wait: float = STOP_WAIT) -> WarmServer | None:
    """Stop this home's warm server (SIGTERM) and wait for it to leave: the server it was, or None
    when none ran. TimeoutError when it is still listening after ``wait`` seconds."""
    if not warm.SUPPORTED:
        return None
    try:
        conn = warm.connect(warm.address(home))
    except OSError:
        return None
    try:  # a handle on the process taken while connected: the pid is the listener's, alive
        pid = warm.peer(conn)[0]
        server = WarmServer(pid, len(_children(pid)))
        handle = os.pidfd_open(pid)
    finally:
        conn.close()
    try:
        signal.pidfd_send_signal(handle, signal.SIGTERM)
        # gone, not only silent: a server between closing its socket and exiting still holds the
        # home's volume (an unmount right after `warm stop` would find it busy)
        if not select.select([handle], [], [], wait)[0]:
            raise TimeoutError(f"the warm server (pid {pid}) did not stop within {wait:g} s")
    finally:
        os.close(handle)
    return server


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from ``/proc``)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    fields = fh.read().rpartition(b")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


@warm_app.command("status")
def warm_status(as_json: JsonOpt = False) -> None:
    """Show whether this home's warm server runs (its pid and child processes)."""
    server = find_server(warm.home_dir(os.environ))
    if as_json:
        emit_json(server.to_json() if server else {"running": False})
    elif server is None:
        out().print("no warm server runs for this home", highlight=False)
    else:
        text = f"warm server: pid {server.pid}, {server.children} child process(es) (its spare and runs)"
        out().print(esc(text), highlight=False)


@warm_app.command("stop")
def warm_stop(as_json: JsonOpt = False) -> None:
    """Stop this home's warm server now; runs it is serving go on to their end."""
    from baton.errors import BatonError

    try:
        server = stop_server(warm.home_dir(os.environ))
    except TimeoutError as exc:
        raise BatonError(str(exc)) from exc
    if as_json:
        emit_json({"stopped": server is not None, "pid": server.pid if server else None})
    elif server is None:
        out().print("no warm server runs for this home", highlight=False)
    else:
        out().print(esc(f"stopped the warm server (pid {server.pid})"), highlight=False)
