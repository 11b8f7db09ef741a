"""The walls around one agent: which paths it may read and write and which TCP ports it may connect to, as
Landlock rules (:mod:`baton.sandbox.landlock` is the kernel binding; this module is the policy). The
system, the CLI's installation and the key's own parts are readable, devices usable, the key's worktree,
home, temp dir, caches and the git data of a commit on its branch writable at the levels that allow
it, TCP only to :func:`tcp_ports`; no signal to, or abstract socket of, a process outside the walls; a
root agent loses the capabilities that get around them (:data:`DROP_CAPS`). What they hold and what they
do not stop (measured on Linux 6.18, Landlock ABI 7): docs/security.md, "What the walls add" and "Known
gaps".
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from baton.errors import BadInput
from baton.sandbox import hostsecrets
from baton.sandbox.landlock import Fs, Net, Ruleset, Scope, probe
from baton.sandbox.toolchains import toolchains
from baton.settings import Settings

READ = Fs.EXECUTE | Fs.READ_FILE | Fs.READ_DIR
# Making device nodes is left out: root could mknod a disk inside its worktree and read it raw.
WRITE = Fs((1 << 16) - 1) & ~(Fs.MAKE_CHAR | Fs.MAKE_BLOCK | Fs.IOCTL_DEV)
# In the git data baton itself reads and writes later, no links, FIFOs or sockets either: git follows
# a linked reflog or index, so an agent could aim baton's own git at a file outside the walls.
GIT_WRITE = WRITE & ~(Fs.MAKE_SYM | Fs.MAKE_FIFO | Fs.MAKE_SOCK)
DEVICE = Fs.READ_FILE | Fs.WRITE_FILE | Fs.TRUNCATE | Fs.IOCTL_DEV  # `> /dev/null` opens with O_TRUNC
HANDLED_FS = Fs((1 << 16) - 1)  # every right of ABI 1-7 (masked by the kernel's ABI when built)
SCOPED = Scope.SIGNAL | Scope.ABSTRACT_UNIX_SOCKET
# Capabilities a root agent must not have, dropped from its bounding set: measured on Linux 6.18,
# CAP_SYS_ADMIN or CAP_PERFMON lets a Landlocked root read /proc/<pid>/environ (and maps, auxv) of
# processes outside its domain, i.e. baton's secrets; NET_RAW and NET_ADMIN get around the TCP rules
# (raw sockets, firewall), BPF, SYS_MODULE, SYS_RAWIO and SYS_PTRACE around everything,
# DAC_READ_SEARCH opens files by handle. Harmless for an unprivileged baton: it has none of them.
DROP_CAPS = (2, 12, 13, 16, 17, 19, 21, 22, 32, 33, 34, 38, 39, 40)
# DAC_READ_SEARCH, NET_ADMIN, NET_RAW, SYS_MODULE, SYS_RAWIO, SYS_PTRACE, SYS_ADMIN, SYS_BOOT,
# MAC_OVERRIDE, MAC_ADMIN, SYSLOG, PERFMON, BPF, CHECKPOINT_RESTORE

PACKAGE_ROOT = str(
    Path(__file__).resolve().parents[2]
)  # where baton is installed (the fake agent runs from it)
# Read and execute. Not /home, /root (unless a PATH entry or a CLI lives there, then only that subtree),
# /tmp, /var, /run (Kubernetes service-account tokens live in /run/secrets), /srv, /mnt, /media, nor /dev
# as a whole (a root agent could read raw disks). /proc is whole because processes come and go:
# Landlock's ptrace rule already refuses another domain's /proc/<pid>/environ, mem, fd and cwd (and the
# agent's own mount namespace hides the other processes altogether: baton.sandbox.mountns).
SYSTEM = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/opt",
    "/nix",
    "/proc",
    "/sys",
)
# Read, write, truncate and ioctl; ptmx and pts/ for tools that allocate a pty. Not /dev/shm: it is
# shared by every process on the machine (PostgreSQL's dynamic shared memory lives there); Python's
# multiprocessing in agents needs it added to Walls.write.
DEVICES = (
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
)
AGENT_PORTS = frozenset({80, 443, 22, 9418})  # HTTP(S), SSH and git's own protocol
# an agent's variable naming a server it listens on itself (OpenCode's own HTTP server): its port is
# granted, and in the agent's own network namespace nothing of baton's listens there
OWN_URL = "_OWN_URL"
DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    "ssh": 22,
    "git": 9418,
    "postgresql": 5432,
    "postgres": 5432,
    "redis": 6379,
    "rediss": 6379,
    "amqp": 5672,
    "amqps": 5671,
    "socks5": 1080,
    "socks5h": 1080,
}


@dataclass(frozen=True)
class Walls:
    """What one agent start is walled into; every path may be given unresolved."""

    home: Path  # BATON_HOME: nothing of it is reachable but the key's own parts
    worktree: Path  # the key's worktree (readable; writable with ``edit``)
    agent_home: Path  # the key's agent home (writable)
    tmp: Path  # the key's private temp dir (writable)
    commands: tuple[Path, ...] = ()  # the CLI's executables: their installations readable
    path: str = ""  # the agent's PATH: each absolute directory readable
    read: tuple[Path, ...] = ()  # more readable paths
    write: tuple[Path, ...] = ()  # more writable paths (e.g. /dev/shm)
    hide: tuple[Path, ...] = ()  # more paths never readable (a SQLite store outside BATON_HOME)
    # The package caches the key's repository's threads share (BATON_HOME/caches/<slug>/@shared/<tool>,
    # agentenv.CACHES): readable and writable, each made if missing; none at access read.
    caches: tuple[Path, ...] = ()
    ports: frozenset[int] = field(default_factory=frozenset)  # TCP ports it may connect to
    # The worktree's git data, as baton knows it (never read from the agent-writable ``.git`` file or
    # ``HEAD``: an agent that rewrote them would widen its next walls): readable, and with ``commit``
    # the parts a commit writes.
    git: GitParts | None = None
    edit: bool = True  # the worktree is writable (access edit and full)
    commit: bool = True  # the git parts a commit writes are writable (access full)


@dataclass(frozen=True)
class GitParts:
    """The git data a linked worktree writes to commit on its branch."""

    gitdir: Path  # repos/<slug>.git/worktrees/<name>
    common: Path  # repos/<slug>.git
    branch: str | None  # refs/heads/... checked out; None on a detached HEAD

    def writable(self) -> list[Path]:
        """What a commit writes, measured by running ``git add``, ``commit``, ``status`` and ``log`` under
        the walls: the worktree's own gitdir (index, HEAD, logs/HEAD), the common ``objects/``, and the
        directories of the branch's ref and reflog (git writes ``<ref>.lock`` beside the ref and renames
        it). The rest of the common dir (config, hooks, packed-refs, other refs) stays read-only, so an
        agent cannot plant a hook or a config that baton's own git commands would run."""
        found = [self.gitdir, self.common / "objects"]
        if self.branch is not None:
            parent = Path(self.branch).parent
            found += [self.common / parent, self.common / "logs" / parent]
        return found


@dataclass(frozen=True)
class Rules:
    """The walls as Landlock rules: (path, rights) pairs, the TCP ports to allow, the scopes."""

    paths: tuple[tuple[str, Fs], ...]  # resolved
    ports: frozenset[int]
    scoped: Scope = SCOPED


@dataclass(frozen=True)
class Support:
    """Whether agents can be confined here: the kernel's Landlock ABI, and why not when they cannot."""

    abi: int
    reason: str | None  # None: confinement works
    missing: tuple[str, ...] = ()  # walls this kernel's ABI cannot build (they are left open)

    @property
    def ok(self) -> bool:
        return self.reason is None


def support() -> Support:
    """Can agents be walled in here, and if not why (for ``BATON_CONFINE`` and ``baton doctor``)."""
    version, reason = probe()
    missing = []
    if 1 <= version < 3:
        missing.append("truncating files is not controlled (Landlock ABI 3, Linux 6.2)")
    if 1 <= version < 4:
        missing.append("TCP ports are not walled (Landlock ABI 4, Linux 6.7)")
    if 1 <= version < 6:
        missing.append("signals and abstract UNIX sockets are not scoped (Landlock ABI 6, Linux 6.12)")
    return Support(version, reason, tuple(missing))


def git_parts(worktree: Path) -> GitParts | None:
    """The worktree's gitdir, common dir and branch, read from its ``.git`` file; None when it is not
    a linked worktree (a plain directory, or a ``.git`` directory: then the worktree holds it all)."""
    try:
        text = (worktree / ".git").read_text()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    gitdir = (worktree / text.removeprefix("gitdir:").strip()).resolve()
    try:
        common = (gitdir / (gitdir / "commondir").read_text().strip()).resolve()
        head = (gitdir / "HEAD").read_text().strip()
    except FileNotFoundError:
        return None
    branch = head.removeprefix("ref: ") if head.startswith("ref: refs/heads/") else None
    return GitParts(gitdir, common, branch)


def installation(command: Path) -> Path:
    """Where a CLI's files live, from its executable: the outermost ``node_modules`` of a node package
    (its dependencies may be hoisted there), the prefix of a ``<prefix>/bin/<exe>`` layout with a
    ``lib`` beside (nvm, a venv, /opt/node), else the executable's own directory."""
    real = command.resolve()
    modules = [p for p in real.parents if p.name == "node_modules"]
    if modules:
        return modules[-1]
    prefix = real.parent.parent
    if real.parent.name == "bin" and (prefix / "lib").is_dir() and prefix not in (Path("/"), Path.home()):
        return prefix
    return real.parent


def _readable(walls: Walls) -> list[str]:
    found = [*SYSTEM, "/etc/resolv.conf", sys.prefix, sys.base_prefix, PACKAGE_ROOT]
    # "/" or the home directory on PATH would open everything beside BATON_HOME: not granted
    broad = {"/", os.path.realpath(Path.home())}
    found += [
        p for p in walls.path.split(os.pathsep) if os.path.isabs(p) and os.path.realpath(p) not in broad
    ]
    found += toolchains(walls.path).roots  # what a shim or a prefix's bin on PATH runs
    return found + [str(installation(c)) for c in walls.commands]


def _granted(walls: Walls) -> list[tuple[Path, Fs]]:
    """What is granted by name, even inside BATON_HOME: the key's own parts, the askpass helper and
    the caller's extra paths."""
    found = [(p, READ) for p in (walls.home / "bin", *walls.read)]
    found.append((walls.worktree, READ | WRITE if walls.edit else READ))
    found += [(p, READ | WRITE) for p in (walls.agent_home, walls.tmp, *walls.caches, *walls.write)]
    parts = walls.git
    if parts is not None:
        found += [(parts.common, READ), (parts.gitdir, READ)]
        if walls.commit:
            found += [(p, READ | GIT_WRITE) for p in parts.writable()]
    return found


# Paths are handled as resolved strings here: pathlib's resolve() and parents cost ~4x more, and this
# runs on every agent start.
def _resolve(paths: Iterable[str | Path]) -> list[str]:
    """Resolved and existing, in order, once each."""
    seen: dict[str, None] = {}
    for path in paths:
        real = os.path.realpath(path)
        if real not in seen and os.path.exists(real):
            seen[real] = None
    return list(seen)


def _within(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _around(path: str, hidden: list[str], rights: Fs, seen: set[str]) -> list[tuple[str, Fs]]:
    """``path`` with ``rights``, or, when it contains a hidden path, each of its children except the
    branch leading there (recursively). A symbolic link among them is followed to its target, which is
    walled the same way (granting the link itself would grant nothing: the kernel checks the target)."""
    if path in seen:
        return []
    seen.add(path)
    if not any(h != path and _within(h, [path]) for h in hidden):
        return [(path, rights)]
    found: list[tuple[str, Fs]] = []
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.path in hidden:
                continue
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if os.path.exists(target) and not _within(target, hidden):
                    found += _around(target, hidden, rights, seen)
                continue
            found += _around(entry.path, hidden, rights, seen)
    return found


def rules(walls: Walls, masked: bool = False) -> Rules:
    """The Landlock rules for ``walls`` (reads the filesystem, changes nothing). ``masked``: the
    system's secrets (:mod:`~baton.sandbox.hostsecrets`) are masked by the agent's mount namespace, so
    the rules need not spare them.

    Landlock is an allow-list that cannot deny a subpath of an allowed path, so "everything but
    ``BATON_HOME``" is built by granting, beneath an allowed directory that contains ``BATON_HOME``, its
    children one by one except the branch leading to ``BATON_HOME`` (:func:`_around`). Paths are
    compared resolved: the kernel sees inodes, not the names that reach them."""
    hidden = _resolve([walls.home, *walls.hide])
    spared = [] if masked else hostsecrets.readable()
    seen: set[str] = set()
    paths: list[tuple[str, Fs]] = []
    for path in _resolve(_readable(walls)):
        if not _within(path, hidden):
            paths += [
                (p, r)
                for part in hostsecrets.sparing(path, spared)
                for p, r in _around(part, hidden, READ, seen)
            ]
    paths += [(path, DEVICE) for path in _resolve(DEVICES)]
    for given, rights in _granted(walls):
        for path in _resolve([given]):
            paths += _around(path, hidden, rights, set())
    return Rules(tuple(paths), walls.ports - {0})


def named(walls: Walls) -> list[str]:
    """Every path the walls name, as named (unresolved; :func:`rules` resolves them): the agent's own
    mount namespace (:mod:`baton.sandbox.mountns`) recreates the symbolic links on the way to them."""
    return [
        *_readable(walls),
        *DEVICES,
        *(str(c) for c in walls.commands),
        *(str(p) for p, _ in _granted(walls)),
    ]


def prepare(walls: Walls) -> None:
    """Create what the agent needs and cannot create under the walls: its home and temp dir, and for
    git the directory of the branch's reflog (a bare
    cache has no ``logs/``; a linked worktree is not bare, so git logs its branch's updates there)
    and of the branch's ref (gone after ``git pack-refs``)."""
    for path in (walls.agent_home, walls.tmp, *walls.caches):
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    parts = walls.git
    if parts is not None and walls.commit:
        for path in parts.writable()[2:]:
            path.mkdir(parents=True, exist_ok=True)
    if parts is not None:  # there to be bound read-only in the agent's mount namespace (mountns.layout)
        (parts.common / "objects" / "info").mkdir(parents=True, exist_ok=True)


def ruleset(walls: Walls, found: Rules | None = None) -> Ruleset:
    """:func:`prepare`, then the kernel ruleset for ``walls``, ready for :meth:`Ruleset.spawn`
    (``found``: its :func:`rules`, computed after :func:`prepare`, when the caller needs them too).
    Raises :class:`~baton.sandbox.landlock.LandlockError` (an OSError) when the kernel has none."""
    prepare(walls)
    found = rules(walls) if found is None else found
    built = Ruleset(HANDLED_FS, Net.CONNECT_TCP, found.scoped, drop_caps=DROP_CAPS)
    try:
        for path, rights in found.paths:
            built.allow_path(path, rights)
        for port in sorted(found.ports):
            built.allow_port(port)
    except BaseException:
        built.close()
        raise
    return built


def url_port(url: str) -> int | None:
    """The TCP port a URL names, or its scheme's default (``postgresql+psycopg`` counts as
    ``postgresql``); None for a URL without one (``sqlite:///...``) or a malformed one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if port is not None:
        return port
    return DEFAULT_PORTS.get(parts.scheme.split("+")[0].lower()) if parts.netloc else None


def denied_ports(settings: Settings) -> frozenset[int]:
    """The ports of baton's own services, which no agent may reach: the store's, the broker's, Redis's."""
    found = (url_port(url) for url in (settings.store_url, settings.broker_url, settings.redis_url) if url)
    return frozenset(port for port in found if port is not None)


def tcp_ports(settings: Settings, env: Mapping[str, str], urls: Iterable[str] = ()) -> frozenset[int]:
    """The TCP ports an agent may connect to: HTTP(S), SSH and git; the ports of its environment's
    base URLs and proxies (``ANTHROPIC_BASE_URL``, ``GOOGLE_GEMINI_BASE_URL``, ``HTTPS_PROXY``, ...),
    of its own servers (:data:`OWN_URL`) and of ``urls`` (the key's repository); its services'
    (``BATON_SERVICE_PORTS``, which only baton sets); ``settings.agent_ports`` — minus
    :func:`denied_ports`."""
    found = set(AGENT_PORTS)
    for name, value in env.items():
        upper = name.upper()
        if upper.endswith(("_BASE_URL", "_PROXY", OWN_URL)) and upper != "NO_PROXY":
            found.add(url_port(value) or 0)
    found.update(url_port(url) or 0 for url in urls)
    found.update(service_ports(env))
    found.update(_setting_ports(settings.agent_ports))
    return frozenset(found - {0}) - denied_ports(settings)


def own_ports(env: Mapping[str, str]) -> frozenset[int]:
    """The ports of the servers the agent listens on itself (its ``…_OWN_URL`` variables)."""
    return frozenset(url_port(v) or 0 for k, v in env.items() if k.upper().endswith(OWN_URL)) - {0}


def service_ports(env: Mapping[str, str]) -> set[int]:
    """The ports of the key's services, as baton told the agent (:mod:`baton.runner.services`)."""
    items = env.get("BATON_SERVICE_PORTS", "").split(",")
    return {int(i) for i in items if i.isdigit() and 0 < int(i) < 65536}


def _setting_ports(text: str) -> set[int]:
    ports = set()
    for item in text.split(","):
        if not item.strip():
            continue
        if not item.strip().isdigit() or not 0 < int(item) < 65536:
            raise BadInput(
                f"setting 'agent_ports' must list TCP ports (1-65535) separated by commas, not {text!r}"
            )
        ports.add(int(item))
    return ports
