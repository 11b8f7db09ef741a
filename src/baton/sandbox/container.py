"""The agent (and its repository's setup) inside the repository's own image, for ``environment =
"container"``: another way to start it, chosen by :meth:`baton.sandbox.enclosure.Enclosure.open`. baton
starts and watches ``podman run --rm -i --init`` (or docker's): its stdout is the agent's, a SIGTERM to
its group reaches the agent through the engine's signal proxy and the init, and the enclosure removes
by name (``rm -f``) whatever a kill left. The walls' promises, by the container's means: only the key's
parts mounted, at their own paths (:func:`mounts`), a read-only root, no capabilities, its own PID
namespace, the run's limits as flags; a variable goes as ``-e NAME``, its value in the engine's own
environment, never on the argv. ``--network host``: under ``egress = "open"`` the host's network; under
an allow-list the agent's own namespace, baton's proxy and relays alone on its loopback (the engine
started in it: :meth:`.egress.Egress.spawn`; docker and a rootless podman refused, :func:`netns_refusal`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from baton.errors import AgentError
from baton.sandbox.cgroups import Limits
from baton.sandbox.walls import PACKAGE_ROOT, SYSTEM, Walls, installation, prepare

ENGINES = ("podman", "docker")
# the engine's own variables, from baton's environment (never the agent's): where its storage and
# configuration are. An agent variable of the same name goes on the argv (PATH, HOME, TMPDIR: no secret).
ENGINE_ENV = ("PATH", "HOME", "TMPDIR", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "USER")
PASSED_OPENLY = frozenset({"PATH", "HOME", "TMPDIR", "TMP", "TEMP", "LANG", "LC_ALL", "TERM", "USER"})
LABEL = "baton.run"
QUICK = 60.0  # seconds for an engine command that is not a build
OUTLIVED = 60  # seconds past the run's timeout after which the engine kills a container baton left


def engine_path(name: str) -> str:
    """The engine's executable; :class:`AgentError` when it is not installed."""
    if name not in ENGINES:
        raise AgentError(f"container_engine must be one of {', '.join(ENGINES)}, not {name!r}")
    found = shutil.which(name)
    if found is None:
        raise AgentError(f"environment container needs {name}, which is not installed here")
    return found


def netns_refusal(engine: str) -> str | None:
    """Why a container ``engine`` (its name or path) starts would not be in the network namespace of
    the process that starts it, so an egress allow-list could not hold there; None where it is: podman
    as root, whose ``--network host`` leaves the container in its caller's namespace (measured:
    ``unshare -n podman run --network host … cat /proc/net/dev`` shows only ``lo``)."""
    if Path(engine).name == "docker":
        return "docker's daemon makes its containers' network namespaces, not baton's process"
    if os.geteuid() != 0:  # not measured: its containers join the namespaces of its pause process
        return "a rootless podman starts its containers from its own pause process's namespaces"
    return None


def engine_env() -> dict[str, str]:
    """What the engine itself needs of baton's environment."""
    keep = [n for n in os.environ if n in ENGINE_ENV or n.startswith(("CONTAINERS_", "DOCKER_"))]
    return {name: os.environ[name] for name in keep}


def ensure_image(
    engine: str,
    tag: str,
    dockerfile: Path | None,
    context: Path | None,
    args: Mapping[str, str],
    timeout: float | None,
) -> tuple[bool, str]:
    """``tag`` present in the engine: built from ``dockerfile`` when it is missing (never pulled); True
    when it was built now, and the image's id (its content: a tag rebuilt is another id; ``""`` when
    the engine does not say). :class:`AgentError` with the output's tail when it cannot be had."""
    found = _run([engine, "image", "inspect", "--format", "{{.Id}}", tag], QUICK)  # docker's too
    if found.returncode == 0:
        return False, found.stdout.strip()
    if dockerfile is None or context is None:
        raise AgentError(f"the image {tag} is not in {Path(engine).name}'s storage (baton never pulls)")
    argv = [engine, "build", "--pull=never", "--network", "host", "-f", str(dockerfile), "-t", tag]
    for name, value in sorted(args.items()):
        argv += ["--build-arg", f"{name}={value}"]
    done = _run([*argv, str(context)], timeout)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-3000:]
        raise AgentError(
            f"building the image from {dockerfile.name} failed (exit {done.returncode}):\n{tail}"
        )
    built = _run([engine, "image", "inspect", "--format", "{{.Id}}", tag], QUICK)
    return True, built.stdout.strip() if built.returncode == 0 else ""


def _run(argv: list[str], timeout: float | None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=engine_env(), stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise AgentError(f"{' '.join(argv[:2])} took longer than {timeout:g} s") from exc
    except OSError as exc:
        raise AgentError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc


@dataclass(frozen=True)
class Container:
    """How an agent or a setup command starts inside ``image`` through ``engine``."""

    engine: str  # the engine's executable (absolute)
    image: str  # a reference the engine has
    env: dict[str, str] = field(default_factory=dict)  # the image's containerEnv (data, no secret)
    image_id: str = ""  # the image's id, as the engine has it now ("": unknown)
    ulimits: tuple[str, ...] = ()  # where the engine cannot set its defaults (baton.workspace.enginelimits)

    @property
    def identity(self) -> str:
        """The image as its content (its id; else its reference): what a preparation made in it is
        keyed by, so an image rebuilt under the same tag is prepared again."""
        return self.image_id or self.image

    def command(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        walls: Walls,
        limits: Limits,
        timeout: float | None = None,
    ) -> tuple[list[str], dict[str, str]]:
        """The engine's argv and environment that run ``argv`` in the container named ``name``, in ``cwd``,
        with ``env``, behind what ``walls`` allow, within ``limits``; podman ends it by itself
        :data:`OUTLIVED` seconds after ``timeout`` (a runner killed with SIGKILL cannot)."""
        prepare(walls)
        options = [
            *("run", "--rm", "-i", "--init", "--pull", "never", "--name", name, "--label", f"{LABEL}={name}"),
            *("--network", "host", "--read-only", "--cap-drop", "all"),
            *("--security-opt", "no-new-privileges", "--user", f"{os.getuid()}:{os.getgid()}"),
        ]
        if Path(self.engine).name == "podman" and os.getuid() != 0:
            options += ["--userns", "keep-id"]  # rootless: the container's user is baton's on the host
        if Path(self.engine).name == "podman" and timeout:
            options += ["--timeout", str(int(timeout + OUTLIVED))]
        options += [*_limits(limits), *self.ulimits]
        for host, inside, mode in mounts(walls):
            options += ["-v", f"{host}:{inside}:{mode}"]
        options += ["--workdir", str(cwd)]
        passed = dict(engine_env())
        for key, value in {**self.env, **env}.items():
            if key.startswith(("CONTAINERS_", "DOCKER_")) or "=" in key:
                continue  # the agent has no business with the host's engine
            if key in PASSED_OPENLY or key in ENGINE_ENV or key not in env:  # no secret: on the argv
                options += ["-e", f"{key}={value}"]
            else:
                options += ["-e", key]
                passed[key] = value
        program = argv[0]  # a mounted installation's by its resolved path; the image's system's as named
        if os.path.isabs(program) and not _system(program):
            program = os.path.realpath(program)
        return [self.engine, *options, self.image, program, *argv[1:]], passed

    def remove(self, name: str) -> None:
        """The container ``name`` gone (killed first), whether or not it still exists."""
        podman = Path(self.engine).name == "podman"  # docker's rm has neither flag (a missing one: exit 1)
        _run([self.engine, "rm", "--force", *(("--ignore", "--time", "0") if podman else ()), name], QUICK)


def _limits(limits: Limits) -> list[str]:
    found = []
    if limits.memory:
        found += ["--memory", str(limits.memory), "--memory-swap", str(limits.memory)]
    if limits.pids:
        found += ["--pids-limit", str(limits.pids)]
    if limits.cpu:
        found += ["--cpus", f"{limits.cpu:g}"]
    return found


def mounts(walls: Walls) -> list[tuple[str, str, str]]:
    """(host path, path inside, ``ro``/``rw``) for each part ``walls`` allow, at its own path, both as
    named and resolved when they differ; the system is the image's, so none of it is mounted."""
    found: dict[str, tuple[str, str]] = {}

    home = os.path.realpath(walls.home)
    given = [walls.home / "bin", *walls.read]

    def add(path: Path | str, mode: str, named: bool = True) -> None:
        real = os.path.realpath(path)
        if not os.path.exists(real) or _system(real) or (not named and _within(real, home)):
            return  # the image's own system; nothing of BATON_HOME that is not named
        for inside in dict.fromkeys([real, os.path.abspath(path)]):
            if ":" in real or ":" in inside or "," in inside:
                raise AgentError(f"cannot mount {inside} into a container: its name holds ':' or ','")
            found[inside] = (real, mode)

    for path in given:
        add(path, "ro")
    for own in (PACKAGE_ROOT, sys.prefix, sys.base_prefix):  # baton's own helpers (the fake agent)
        add(own, "ro", named=False)
    for command in walls.commands:
        if not _system(os.path.realpath(command)):
            add(installation(command), "ro", named=False)
    _key_parts(walls, add)
    return sorted((real, inside, mode) for inside, (real, mode) in found.items())


def _key_parts(walls: Walls, add: Callable[[Path | str, str], None]) -> None:
    add(walls.worktree, "rw" if walls.edit else "ro")
    for path in (walls.agent_home, walls.tmp, *walls.caches, *walls.write):
        add(path, "rw")
    parts = walls.git
    if parts is not None:
        add(parts.common, "ro")
        add(parts.gitdir, "rw" if walls.commit else "ro")
        if walls.commit:
            for path in parts.writable()[1:]:
                add(path, "rw")


def _system(path: str) -> bool:
    return any(_within(path, root) for root in SYSTEM)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")
