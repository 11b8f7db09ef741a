"""Landlock, the kernel binding: nothing baton-specific (the policy is :mod:`baton.sandbox.walls`).
Landlock lets an unprivileged process restrict itself and everything it will ever start: which paths it
may read, write or execute (ABI 1-3, 5), which TCP ports it may connect to (ABI 4) and whether it may
signal or reach abstract UNIX sockets of processes outside its domain (ABI 6); it needs no capability,
so it works in containers and under Kubernetes' restricted profile. A :class:`Ruleset` is built in the
parent, then enforced on the agent as it starts (:meth:`Ruleset.spawn`, or :meth:`Ruleset.child_hook`
for a caller that forks anyway), through ctypes: three syscalls, three structs and one prctl.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import stat
from collections.abc import Callable
from enum import IntFlag
from pathlib import Path
from typing import Protocol, TypeVar

# A ctypes binding of our own rather than one from PyPI: ``landlock`` (1.0.0.dev5) knows only the
# filesystem rights; ``py-landlock`` (0.1.1) and ``landlockpy`` (0.2.0) cover the network rules and the
# scopes but are young, and none of them lets us choose *where* the ruleset is enforced, which is what
# decides the cost (Ruleset.spawn). ~200 lines we can read.
_SYS_CREATE_RULESET = 444  # the same number on every architecture (the syscall table was unified)
_SYS_ADD_RULE = 445
_SYS_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_RULE_NET_PORT = 2
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAPBSET_DROP = 24


class Fs(IntFlag):
    """Filesystem access rights (``LANDLOCK_ACCESS_FS_*``)."""

    EXECUTE = 1 << 0
    WRITE_FILE = 1 << 1
    READ_FILE = 1 << 2
    READ_DIR = 1 << 3
    REMOVE_DIR = 1 << 4
    REMOVE_FILE = 1 << 5
    MAKE_CHAR = 1 << 6
    MAKE_DIR = 1 << 7
    MAKE_REG = 1 << 8
    MAKE_SOCK = 1 << 9
    MAKE_FIFO = 1 << 10
    MAKE_BLOCK = 1 << 11
    MAKE_SYM = 1 << 12
    REFER = 1 << 13  # ABI 2: link or rename across directories
    TRUNCATE = 1 << 14  # ABI 3
    IOCTL_DEV = 1 << 15  # ABI 5: ioctl on character and block devices


class Net(IntFlag):
    """Network access rights (``LANDLOCK_ACCESS_NET_*``), ABI 4."""

    NONE = 0
    BIND_TCP = 1 << 0
    CONNECT_TCP = 1 << 1


class Scope(IntFlag):
    """IPC scopes (``LANDLOCK_SCOPE_*``), ABI 6: nothing outside the domain can be reached."""

    NONE = 0
    ABSTRACT_UNIX_SOCKET = 1 << 0
    SIGNAL = 1 << 1


# The rights a right-holder may have on a regular file (the others only make sense on a directory:
# the kernel answers EINVAL when a rule on a file names them).
FILE_RIGHTS = Fs.EXECUTE | Fs.WRITE_FILE | Fs.READ_FILE | Fs.TRUNCATE | Fs.IOCTL_DEV


def fs_rights(abi: int) -> Fs:
    """Every filesystem right the kernel of Landlock ``abi`` knows (0 without Landlock)."""
    if abi < 1:
        return Fs(0)
    known = Fs((1 << 13) - 1)  # ABI 1: EXECUTE .. MAKE_SYM
    for since, right in ((2, Fs.REFER), (3, Fs.TRUNCATE), (5, Fs.IOCTL_DEV)):
        if abi >= since:
            known |= right
    return known


def net_rights(abi: int) -> Net:
    return Net.BIND_TCP | Net.CONNECT_TCP if abi >= 4 else Net(0)


def scopes(abi: int) -> Scope:
    return Scope.ABSTRACT_UNIX_SOCKET | Scope.SIGNAL if abi >= 6 else Scope(0)


class LandlockError(OSError):
    """A Landlock syscall failed for a reason other than "not supported here"."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),  # ABI 4
        ("scoped", ctypes.c_uint64),  # ABI 6
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel's struct is packed: 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPortAttr(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


class _Libc:
    """libc's ``syscall`` and ``prctl``, resolved once with fixed argument types, so that the calls
    made in a child between fork and exec neither look symbols up nor build prototypes."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.syscall = libc.syscall
        self.syscall.restype = ctypes.c_long
        self.prctl = libc.prctl
        self.prctl.restype = ctypes.c_int
        self.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

    def call(self, number: int, *args: object) -> int:
        result = int(self.syscall(ctypes.c_long(number), *args))
        if result < 0:
            code = ctypes.get_errno()
            raise LandlockError(code, os.strerror(code))
        return result


@functools.cache
def _libc() -> _Libc:
    return _Libc()


@functools.cache
def probe() -> tuple[int, str | None]:
    """The kernel's Landlock ABI version, or 0 and why there is none: not Linux, a kernel built
    without it (ENOSYS, also what a seccomp policy refusing the syscall answers), or Landlock not
    among the active LSMs (EOPNOTSUPP: the boot parameter ``lsm=`` lacks it)."""
    try:
        version = _libc().call(
            _SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION)
        )
    except AttributeError:
        return 0, "no Landlock: this C library has no syscall() (not Linux)"
    except OSError as exc:
        return 0, _why_not(exc)
    return version, None


def _why_not(exc: OSError) -> str:
    if exc.errno == errno.ENOSYS:
        return "no Landlock: the kernel lacks it (before 5.13) or a seccomp policy refuses its syscalls"
    if exc.errno == errno.EOPNOTSUPP:
        return (
            "no Landlock: the kernel has it but it is not enabled (add landlock to the lsm= boot parameter)"
        )
    return f"no Landlock: landlock_create_ruleset failed: {exc.strerror}"


def abi() -> int:
    """The kernel's Landlock ABI version (cached), 0 when Landlock cannot be used (:func:`probe`)."""
    return probe()[0]


class _HasPid(Protocol):
    @property
    def pid(self) -> int: ...


P = TypeVar("P", bound=_HasPid)


class Ruleset:
    """A Landlock ruleset being built: what is handled (denied unless a rule allows it) and the rules.

    Best effort like the Rust crate: rights, network rules and scopes the running kernel does not
    know are dropped (masked by :func:`abi`), never an EINVAL. Use it once: :meth:`spawn` or
    :meth:`child_hook` + :meth:`close`; the descriptor is close-on-exec, so it never reaches an agent.
    """

    def __init__(
        self,
        fs: Fs,
        net: Net = Net.NONE,
        scoped: Scope = Scope.NONE,
        version: int | None = None,
        drop_caps: tuple[int, ...] = (),
    ) -> None:
        self.drop_caps = drop_caps  # capability numbers taken out of the bounding set before enforcing
        self.abi = abi() if version is None else version
        if self.abi < 1:
            raise LandlockError(errno.EOPNOTSUPP, "Landlock is not available on this kernel")
        self.fs = fs & fs_rights(self.abi)
        self.net = net & net_rights(self.abi)
        self.scoped = scoped & scopes(self.abi)
        attr = _RulesetAttr(self.fs, self.net, self.scoped)
        size = 8 if self.abi < 4 else 16 if self.abi < 6 else ctypes.sizeof(attr)  # what this ABI reads
        self.fd = _libc().call(
            _SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
        )
        self.rules = 0

    def allow_path(self, path: Path | str, rights: Fs) -> bool:
        """Allow ``rights`` beneath ``path`` (on it alone when it is a file: only file rights). False
        when the path does not exist or no handled right is left to grant."""
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except (
            FileNotFoundError,
            NotADirectoryError,
            PermissionError,
        ):  # PermissionError: nor could the child
            return False
        try:
            allowed = rights & self.fs
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                allowed &= FILE_RIGHTS
            if not allowed:
                return False
            attr = _PathBeneathAttr(allowed, fd)
            _libc().call(_SYS_ADD_RULE, self.fd, _RULE_PATH_BENEATH, ctypes.byref(attr), ctypes.c_uint32(0))
        finally:
            os.close(fd)
        self.rules += 1
        return True

    def allow_port(self, port: int, rights: Net = Net.CONNECT_TCP) -> bool:
        """Allow ``rights`` on TCP ``port``; False when the kernel has no network rules (ABI < 4)."""
        if not 0 <= port <= 65535:
            raise ValueError(f"not a TCP port: {port}")
        allowed = rights & self.net
        if not allowed:
            return False
        attr = _NetPortAttr(allowed, port)
        _libc().call(_SYS_ADD_RULE, self.fd, _RULE_NET_PORT, ctypes.byref(attr), ctypes.c_uint32(0))
        self.rules += 1
        return True

    def restrict_self(self) -> None:
        """Enforce the ruleset on the calling thread (and everything it starts from now on), after
        dropping ``drop_caps`` from its bounding set (so a root child does not get them at exec).
        A drop fails only without CAP_SETPCAP (then a non-root child gains no capability at exec:
        ``no_new_privs`` ignores file capabilities) or for a capability this kernel lacks."""
        libc = _libc()
        for cap in self.drop_caps:
            libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            code = ctypes.get_errno()
            raise LandlockError(code, os.strerror(code))
        libc.call(_SYS_RESTRICT_SELF, self.fd, ctypes.c_uint32(0))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Ruleset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def spawn(self, start: Callable[[], P], before: Callable[[], None] | None = None) -> P:
        """Call ``start`` (which starts one process, e.g. ``lambda: subprocess.Popen(...)``) in a new
        thread confined by this ruleset, and return what it returned; the ruleset is closed. ``before``
        runs in that thread before it is confined (a run group's :meth:`enter`). The
        thread lives, blocked in ``waitid(WNOWAIT)``, until that process has exited, so a parent-death
        signal the process set does not fire early; it never reaps the process (its caller does).
        ``start`` itself runs confined: what it opens (Popen's /dev/null for ``DEVNULL``) must be allowed.

        The default way (both measured, ``bench/bench_landlock.py``): Landlock and ``no_new_privs`` are
        per thread, so the thread enforces the ruleset on *itself* and ``subprocess.Popen`` keeps using
        ``vfork``: the child inherits the thread's domain. Cost: a thread start and two syscalls, under a
        millisecond beyond an unconfined start (/bin/true 1.7 → 2.4 ms with 11 rules built). The thread
        waits without reaping because a parent-death signal (``setpriv --pdeathsig``) fires when the
        *thread* that started a process ends. The rest of the parent (heartbeats, log readers) is never
        restricted; Python code the thread runs meanwhile (Popen's own set-up, a garbage collection) is
        restricted too: it can only do less, never more."""
        # lazy: the run path's module budget (tests/cli/test_cli_fast.py)
        from baton.sandbox import spawnthread

        def confine() -> None:
            if before is not None:
                before()
            self.restrict_self()

        try:
            return spawnthread.spawn(start, confine, "landlock")
        finally:
            self.close()  # the domain is made (or failed): the descriptor is no longer needed

    def child_hook(self) -> Callable[[], None]:
        """A ``preexec_fn`` enforcing this ruleset in the child between fork and exec: only ``prctl``
        and ``landlock_restrict_self``, through functions resolved here in the parent (no import, no
        lookup, no lock in the child). Close the ruleset once the child has started. Safe, but any
        ``preexec_fn`` makes CPython fork the whole runner instead of ``vfork``, copying its page tables:
        +2 ms for a 12 MiB parent, +23 ms for one of 300 MiB. Kept for callers that fork anyway."""
        libc = _libc()
        prctl, syscall = libc.prctl, libc.syscall
        nr, fd, flags = ctypes.c_long(_SYS_RESTRICT_SELF), ctypes.c_long(self.fd), ctypes.c_uint32(0)
        caps = self.drop_caps

        def enforce() -> None:
            for cap in caps:
                prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
            if prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or syscall(nr, fd, flags) != 0:
                raise LandlockError(ctypes.get_errno(), "cannot enforce the Landlock ruleset")

        return enforce
