"""The agent's own mount namespace, in which only the paths its walls allow exist. Landlock before ABI 9
does not check the path of ``connect()`` to a pathname UNIX socket (PostgreSQL's, a ``docker.sock``), and
its ptrace rule hides no process's ``cmdline``. Where baton may make a mount namespace (root, or
``CAP_SYS_ADMIN`` in its user namespace: :func:`probe`), the agent's root is a fresh tmpfs holding only
the paths of :func:`baton.sandbox.walls.rules`, each bound at its own path (:func:`layout`), with the
system's secrets masked and a fresh procfs with ``hidepid=ptraceable`` (:func:`proc_probe`), entered in
the thread that starts the agent before Landlock confines it (:func:`enter`, :class:`Spawner`). What an
agent sees then, and what stays visible: docs/security.md, "What the walls add" and "What an agent sees".
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from baton.sandbox import hostsecrets
from baton.sandbox.landlock import Ruleset
from baton.sandbox.walls import READ, Rules, Walls, named, prepare, rules, ruleset

_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT = 1, 2, 4, 8, 32
_MS_BIND, _MS_REC, _MS_PRIVATE = 4096, 16384, 1 << 18
_MNT_DETACH = 2
_HIDEPID = b"hidepid=ptraceable"  # Linux 5.8: hide every process the reader may not ptrace
_WHAT = "the agent's mount namespace: "
BASE = ".mountns"  # in BATON_HOME: see Layout.base
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "armv7l": 218, "i686": 217, "ppc64le": 203}
# What a program finds in /dev without asking for it: bash's process substitution, `> /dev/stderr`.
DEV_LINKS = (
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
)


@dataclass(frozen=True)
class Layout:
    """The agent's root: what is made in the fresh tmpfs, in order, then bound."""

    dirs: tuple[str, ...]  # directories made (parents first): the way to binds and links
    files: tuple[str, ...]  # empty files made, on which a file is bound
    binds: tuple[str, ...]  # bound at their own path, recursively; none within another
    links: tuple[tuple[str, str], ...]  # (path, target): symbolic links made
    # An empty directory on which the tmpfs is mounted, in the agent's namespace only (the host never
    # sees a mount there): BATON_HOME/.mountns, out of reach of /tmp cleaners, never bound.
    base: str = ""
    proc: bool = False  # /proc is a fresh procfs with hidepid=ptraceable (else bound, or absent)
    masks: tuple[str, ...] = ()  # secrets an empty file or directory is bound over (after the binds)
    # writable by the walls, yet read-only here: the cache clone's objects/info, whose alternates would
    # point every key's git (and baton's) at objects elsewhere (Landlock cannot carve it out of objects/)
    readonly: tuple[str, ...] = ()


def _bound(path: str, binds: set[str]) -> bool:
    """Whether ``path`` is one of ``binds`` or beneath one."""
    while path not in binds:
        if path == "/":
            return False
        path = os.path.dirname(path)
    return True


def _links(names: Iterable[str], binds: set[str]) -> dict[str, str]:
    """The symbolic links on the way to ``names`` that no bind brings along (followed, link after link:
    ``/bin`` → ``usr/bin``)."""
    found: dict[str, str] = {}
    plain: set[str] = set()  # prefixes seen to be no link (nor bound)
    todo = [n for n in names if os.path.isabs(n)]
    for _ in range(1000):  # a loop of links ends here
        if not todo:
            break
        parts = os.path.normpath(todo.pop()).split("/")[1:]
        for i in range(len(parts)):
            path = "/" + "/".join(parts[: i + 1])
            if path in plain:
                continue
            if path in binds or path in found:
                break
            if not os.path.islink(path):
                plain.add(path)
                continue
            target = os.readlink(path)
            found[path] = target
            todo.append(os.path.join(os.path.dirname(path), target, *parts[i + 1 :]))
            break
    return found


def layout(walls: Walls, found: Rules | None = None, proc: bool | None = None) -> Layout:
    """The tree for ``walls``: the paths of ``found``, its :func:`~baton.sandbox.walls.rules` (computed
    when not given; reads the filesystem), with ``masked=True``: the secrets are masked here (an empty,
    mode-0 file or directory bound over each, so that ``/etc`` stays one bind). ``proc``: a fresh procfs
    for ``/proc`` (by default where :func:`proc_probe` allows; else the host's ``/proc`` is bound).

    Each path is bound (recursively) at its own path, with the symbolic links on the way to what the
    walls name (``/bin`` → ``usr/bin``, ``/etc/resolv.conf``'s target, an nvm ``current``), plus
    ``/dev/fd`` and ``/dev/std*``. ``/sys`` is the host's. The walls (Landlock) apply on top, unchanged:
    rules are on inodes, which a bind mount keeps."""
    binds: set[str] = set()
    for path in sorted({p for p, _ in (found or rules(walls, masked=True)).paths}):
        if not _bound(path, binds):  # sorted: an ancestor comes first and brings it along
            binds.add(path)
    proc = ("/proc" in binds) and (proc_probe() is None if proc is None else proc)
    if proc:
        binds = {p for p in binds if not _bound(p, {"/proc"})}
    links = _links(named(walls), binds)
    links.update((p, t) for p, t in DEV_LINKS if not _bound(p, binds))
    files = {p for p in binds if not os.path.isdir(p)}
    dirs: set[str] = {p for p in binds if p not in files}
    if proc:
        dirs.add("/proc")
    for path in [*binds, *links]:
        dirs.update(_parents(path))
    base = os.path.join(walls.home, BASE)
    masks = tuple(sorted(p for p in hostsecrets.readable() if _bound(p, binds)))
    info = str(walls.git.common / "objects" / "info") if walls.git is not None else ""
    readonly = (info,) if info and os.path.isdir(info) and _bound(info, binds) else ()
    return Layout(
        tuple(sorted(dirs)),
        tuple(sorted(files)),
        tuple(sorted(binds)),
        tuple(sorted(links.items())),
        base,
        proc,
        masks,
        readonly,
    )


def _parents(path: str) -> list[str]:
    found = []
    while (path := os.path.dirname(path)) != "/":
        found.append(path)
    return found


class _Libc:
    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.unshare = libc.unshare
        self.unshare.argtypes = [ctypes.c_int]
        self.mount = libc.mount
        self.mount.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_char_p,
        ]
        self.umount2 = libc.umount2
        self.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        self.syscall = libc.syscall
        self.syscall.restype = ctypes.c_long


@functools.cache
def _libc() -> _Libc:
    return _Libc()


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{_WHAT}{what}: {os.strerror(code)}")


def enter(found: Layout) -> None:
    """Move the calling thread into a new mount namespace holding only ``found``, as its root (and cwd).
    Call it in a thread of its own, before Landlock confines it (a confined thread may not change mounts);
    the runner's other threads keep the host's namespace, root and cwd. OSError when a step fails (the
    thread's namespace is then unusable: start nothing from it). The old root is detached and every
    mount is private, so nothing propagates back to the host."""
    libc, base = _libc(), found.base
    number = _PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(0, f"{_WHAT}pivot_root unknown on {platform.machine()}")
    _check(libc.unshare(_CLONE_NEWNS), "unshare")
    _check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "making / private")
    _check(libc.mount(b"tmpfs", base.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=0755"), "tmpfs")
    for path in found.dirs:
        os.mkdir(base + path, 0o755)
    for path in found.files:
        os.close(os.open(base + path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    for path, target in found.links:
        os.symlink(target, base + path)
    for path in found.binds:
        source = path.encode()
        _check(libc.mount(source, base.encode() + source, None, _MS_BIND | _MS_REC, None), f"binding {path}")
    if found.proc:
        flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
        _check(libc.mount(b"proc", base.encode() + b"/proc", b"proc", flags, _HIDEPID), "procfs")
    _mask(libc, base, found.masks)
    for path in found.readonly:
        where = (base + path).encode()
        _check(libc.mount(where, where, None, _MS_BIND, None), f"binding {path}")
        flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
        _check(libc.mount(None, where, None, flags, None), f"making {path} read-only")
    os.chdir(base)
    _check(libc.syscall(ctypes.c_long(number), b".", b"."), "pivot_root")
    _check(libc.umount2(b".", _MNT_DETACH), "detaching the old root")
    os.chdir("/")


def _mask(libc: _Libc, base: str, masks: tuple[str, ...]) -> None:
    """Bind an empty, mode-0 file (or directory) over each of ``masks``: in the tmpfs, out of the
    agent's sight (the tmpfs root is never reachable once pivoted; a bind's source is its own root)."""
    if not masks:
        return
    empty_file, empty_dir = f"{base}/.masked-file", f"{base}/.masked-dir"
    os.close(os.open(empty_file, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0))
    os.mkdir(empty_dir, 0)
    for path in masks:
        source = empty_dir if os.path.isdir(base + path) else empty_file
        flags = _MS_BIND
        _check(libc.mount(source.encode(), (base + path).encode(), None, flags, None), f"masking {path}")


@functools.cache
def proc_probe() -> str | None:
    """Whether agents' namespaces may have a fresh procfs with ``hidepid=ptraceable``: None when they
    may, else why not (once): a container whose ``/proc`` has masked paths is refused one (the kernel's
    ``mount_too_revealing``). Only meaningful where :func:`probe` allows a namespace. Chosen over a PID
    namespace, which needs an init in front of the agent (a pid 1 ignores signals it has no handler
    for, and procfs must then be mounted from inside it) for the same result here."""
    why = probe()
    if why is not None:
        return why
    return _attempt(Layout(("/proc",), (), (), (), tempfile.gettempdir(), proc=True))


@functools.cache
def probe() -> str | None:
    """Whether this process may give agents a mount namespace: None when it may, else why not (once)."""
    if platform.machine() not in _PIVOT_ROOT:
        return f"pivot_root is unknown on {platform.machine()}"
    # over the temp dir: in the probe thread's private namespace, which ends with it
    return _attempt(Layout((), (), (), (), tempfile.gettempdir()))


def _attempt(found: Layout) -> str | None:
    """Enter ``found`` in a thread of its own (its namespace ends with it): None, or why it failed."""
    why: list[str] = []

    def attempt() -> None:
        try:
            enter(found)
        except OSError as exc:
            why.append((exc.strerror or str(exc)).removeprefix(_WHAT))
        except AttributeError:
            why.append("this C library has no unshare() (not Linux)")

    thread = threading.Thread(target=attempt, name="mountns-probe", daemon=True)
    thread.start()
    thread.join()
    return why[0] if why else None


def host_hides(mountinfo: str = "/proc/self/mountinfo") -> bool:
    """Whether the host's ``/proc`` hides the processes an agent may not ptrace (``hidepid=ptraceable``,
    shown as ``hidepid=4`` by some kernels): what a walled agent sees without a namespace of its own."""
    try:
        with open(mountinfo, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return False
    for line in lines:
        fields = line.split(" ")
        if len(fields) > 4 and fields[4] == "/proc" and " - proc " in line:
            options = line.rsplit(" ", 1)[-1].split(",")
            return "hidepid=ptraceable" in options or "hidepid=4" in options
    return False


class _HasPid(Protocol):
    @property
    def pid(self) -> int: ...


P = TypeVar("P", bound=_HasPid)


class Spawner:
    """:meth:`Ruleset.spawn` with the agent in its own mount namespace, ``layout``: ``before`` (a run
    group's enter) first, then :func:`enter`, in the thread that confines itself and starts the agent.
    The agent is still started with ``vfork`` (no ``preexec_fn``, so no fork of the whole runner: +2 ms
    at 12 MiB, +20 ms at 300 MiB): the cost is the layout and the mounts, ~1 ms
    (``bench/bench_landlock.py``, 13d). As with Landlock, Python code that thread runs meanwhile (a
    garbage collection's finalizers) sees the agent's view: it can only do less."""

    def __init__(self, ruleset: Ruleset, layout: Layout) -> None:
        self.ruleset = ruleset
        self.layout = layout

    def __call__(self, start: Callable[[], P], before: Callable[[], None] | None = None) -> P:
        def first() -> None:
            if before is not None:
                before()
            enter(self.layout)
            if self.layout.proc:  # a new procfs: a new root inode, which the parent's rules do not name
                self.ruleset.allow_path("/proc", READ)

        return self.ruleset.spawn(start, first)


def walled(walls: Walls) -> tuple[Ruleset, Spawner]:
    """The kernel ruleset for ``walls`` (:func:`~baton.sandbox.walls.ruleset`) and how to start an agent
    behind it in its own mount namespace of the same paths. OSError when either cannot be built."""
    prepare(walls)
    found = rules(walls, masked=True)
    built = ruleset(walls, found)
    try:
        tree = layout(walls, found)
        os.makedirs(tree.base, mode=0o700, exist_ok=True)
        return built, Spawner(built, tree)
    except BaseException:
        built.close()
        raise


def applies(setting: str) -> bool:
    """Whether agents get their own mount namespace: ``BATON_MOUNT_NS`` (``auto``/``off``) against what
    this host allows (:func:`probe`)."""
    return setting != "off" and probe() is None
