"""The agent's own network namespace, holding only loopback. Entered (``unshare(CLONE_NEWNET)``) in the
thread that starts the agent, before Landlock confines it, as the mount namespace is; the listeners
the agent reaches baton through (the egress proxy, a relay to its model API) are made in that thread,
so they live in the agent's namespace while baton, outside, accepts on them: no UNIX socket nor helper
process is needed to cross. Where baton may not make one (:func:`probe`: no root nor ``CAP_SYS_ADMIN``
in its user namespace, a seccomp profile), the walls' TCP rule stands in (docs/security.md).
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import os
import socket
import struct
import threading

_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def enter() -> None:
    """Move the calling thread into a new network namespace and bring its loopback up. OSError when
    either fails (the thread's namespace is then unusable: start nothing from it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(ctypes.c_int(_CLONE_NEWNET)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"the agent's network namespace: unshare: {os.strerror(code)}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | _IFF_UP, b""))


def listener(port: int = 0) -> socket.socket:
    """A TCP socket listening on 127.0.0.1:``port`` of the calling thread's network namespace."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


@functools.cache
def probe() -> str | None:
    """Whether agents may get a network namespace here: None when they may, else why not (once)."""
    why: list[str] = []

    def attempt() -> None:
        try:
            enter()
            listener().close()
        except OSError as exc:
            why.append(exc.strerror or str(exc))
        except AttributeError:
            why.append("this C library has no unshare() (not Linux)")

    thread = threading.Thread(target=attempt, name="netns-probe", daemon=True)
    thread.start()
    thread.join()
    return why[0] if why else None
