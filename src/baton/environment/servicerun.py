"""Starting a key's services (:func:`start`): each in its own container of podman (rootless where baton
is not root) or docker, on its own free port of 127.0.0.1, its data in the key's space, reused by the
key's later turns while it runs (:mod:`baton.workspace.containers` keeps their state and stops them).
``services_network = "host"``: the container shares the host's network and is told its port through
the service's ``port_env`` (or a ``${port}`` in its ``env``); ``"publish"``: its ``port`` is published
on the free port. Nothing from the repository reaches a shell: the engine gets argv, and the
container's variables go through an ``--env-file`` in the key's space (0600), never its argv.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from baton import retry
from baton.environment.services import HOST, Service, fill
from baton.settings import Settings
from baton.workspace import containers, enginelimits
from baton.workspace.containers import State

RUN_SECONDS = 300  # `run` may unpack an image first
TAIL = 1500  # characters of an engine's error or a container's output on the run's error


class ServiceFailed(RuntimeError):
    """A service that could not be started or did not become ready: said on the run."""


@dataclass(frozen=True)
class Started:
    """What starting a key's services gave: the variables the agent and its setup get, the ports they
    may connect to, the run's note; ``error`` when one failed (the turn ends with it)."""

    env: dict[str, str] = field(default_factory=dict)
    ports: tuple[int, ...] = ()
    note: str | None = None
    error: str | None = None
    fresh: bool = False  # one was started this turn (not all reused): its port may be new


def engine(settings: Settings) -> str | None:
    """The container engine's program: the setting's, or podman else docker on ``PATH``; None."""
    if settings.services_engine == "off":
        return None
    names = ("podman", "docker") if settings.services_engine == "auto" else (settings.services_engine,)
    return next((found for name in names if (found := shutil.which(name))), None)


def _wanted(settings: Settings) -> str:
    return "podman or docker" if settings.services_engine == "auto" else settings.services_engine


def start(settings: Settings, space: Path, services: tuple[Service, ...]) -> Started:
    """Start (or reuse) each of ``services`` for the key whose space is ``space``."""
    if not services:
        return Started()
    program = engine(settings)
    names = ", ".join(s.name for s in services)
    if program is None:
        why = (
            "services_engine = off"
            if settings.services_engine == "off"
            else f"no {_wanted(settings)} on PATH"
        )
        return Started(note=f"services: {names} skipped ({why}; `baton doctor` says so)")
    env: dict[str, str] = {}
    ports: list[int] = []
    said: list[str] = []
    for service in services:
        try:
            port, how = _ensure(settings, program, space, service)
        except ServiceFailed as exc:
            note = f"services: {service.name} did not start"
            return Started(
                note=note, error=f"environment: service {service.name!r} ({service.source}): {exc}"
            )
        ports.append(port)
        env.update({name: fill(value, port) for name, value in service.export.items()})
        said.append(f"{service.name} on {HOST}:{port} ({how})")
    env["BATON_SERVICE_PORTS"] = ",".join(map(str, ports))
    fresh = any("reused" not in s for s in said)
    return Started(env, tuple(ports), f"services: {'; '.join(said)}", fresh=fresh)


def _ensure(settings: Settings, program: str, space: Path, service: Service) -> tuple[int, str]:
    """The service's port, and how it got there: reused, or started in so many seconds."""
    network = settings.services_network
    name = containers.container_name(space, service.name)
    spec = _spec(service, network, program)
    state = containers.read_state(settings, name)
    if state is not None and _reusable(program, state, spec):
        containers.write_state(settings, _used(state))
        return state.port, "reused"
    began = time.monotonic()
    _run(program, containers.remove_argv(program, name)[1:], check=False)
    port = _old_port(state) or _free_port()
    argv = _run_argv(program, name, space, service, port, network)
    fresh = State(name, program, str(space), service.name, port, spec, time.time())
    containers.write_state(settings, fresh)  # before it runs: the key's removal finds it either way
    try:
        _run_container(program, name, argv, service.image)
        _ready(program, name, service, port)
    except ServiceFailed as exc:
        raise ServiceFailed(f"{exc}\n{_discard(settings, fresh)}") from exc
    return port, f"started in {time.monotonic() - began:.1f} s"


def _discard(settings: Settings, state: State) -> str:
    """Remove the container of a service that did not start or become ready, its port kept for the
    next turn: left running, it would hold its port and memory until the sweep though no turn uses it.
    What became of it, said on the error."""
    error = containers.stop(settings, state, keep=True)
    return "its container was removed" if error is None else f"removing its container failed: {error}"


def _reusable(program: str, state: State, spec: str) -> bool:
    """Whether the key's container is the one wanted, still running and answering."""
    fits = not state.stopped and state.spec == spec
    return fits and _running(program, state.container) and _answers(state.port)


def _old_port(state: State | None) -> int | None:
    """The port the service had, when it is free: the agent's conversation already knows that address.
    A container just removed may hold it a moment longer; one the sweep stopped for idleness does not."""
    if state is None:
        return None
    free = _free(state.port) if state.stopped else _free_soon(state.port)
    return state.port if free else None


def _used(state: State) -> State:
    return State(**{**state.to_json(), "used": time.time()})


def _spec(service: Service, network: str, program: str) -> str:
    text = json.dumps([service.__dict__, network, program], sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()


def _run_argv(program: str, name: str, space: Path, service: Service, port: int, network: str) -> list[str]:
    """``run -d`` of the service's container: its name, labels, variables (a file), network, data."""
    home = space / containers.SERVICES
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    env_file = home / f"{service.name}.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in _container_env(service, port, network).items()))
    os.chmod(env_file, 0o600)
    argv = [
        "run",
        "-d",
        "--name",
        name,
        "--label",
        "baton.service=" + service.name,
        "--env-file",
        str(env_file),
    ]
    if network == "host":
        argv += ["--network", "host"]
    else:
        argv += ["-p", f"{HOST}:{port}:{service.port}"]
    if service.data is not None:
        data = home / service.name / "data"
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        chown = ":U" if Path(program).name == "podman" else ""  # owned by the container's user
        argv += ["-v", f"{data}:{service.data}{chown}"]
    return [*argv, "--", service.image]


def _run_container(program: str, name: str, argv: list[str], image: str) -> None:
    """``run -d`` of the container, again with baton's own rlimits when the engine refused its
    defaults (:mod:`baton.workspace.enginelimits`); a missing image said as such (:func:`_missing`)."""
    try:
        if enginelimits.needed(program):
            _run(program, [argv[0], *enginelimits.flags(), *argv[1:]])
            return
        try:
            _run(program, argv)
        except ServiceFailed as exc:
            if not enginelimits.refused(str(exc)):
                raise
            _run(program, containers.remove_argv(program, name)[1:], check=False)  # it was created
            enginelimits.remember(program)
            _run(program, [argv[0], *enginelimits.flags(), *argv[1:]])
    except ServiceFailed as exc:
        if _has_image(program, image):
            raise
        raise _missing(program, image, exc) from exc


def _has_image(program: str, image: str) -> bool:
    return (
        _run(program, ["image", "inspect", "--format", "{{.Id}}", "--", image], check=False).returncode == 0
    )


def _missing(program: str, image: str, exc: ServiceFailed) -> ServiceFailed:
    """The error of a service whose image the engine has not and could not pull: the image named,
    the engine's last words, and the ways out."""
    engine = Path(program).name
    return ServiceFailed(
        f"the image {image} is not among {engine}'s images and could not be pulled: {exc}\n"
        f"Build it on this host (`{engine} build -t {image} ...`), or pull it where a registry is "
        f"reachable (`{engine} pull {image}`) and bring it here (`{engine} save` there, `{engine} load` "
        "here); or set services_engine = off to run the turns without their services."
    )


def _container_env(service: Service, port: int, network: str) -> dict[str, str]:
    """The container's variables: the service's ``env`` with its port filled in, and its ``port_env``
    (the free port with host networking, its own ``port`` when published)."""
    if (
        network == "host"
        and service.port_env is None
        and not any("${port}" in v for v in service.env.values())
    ):
        raise ServiceFailed("with services_network = host it needs port_env (or ${port} in its env)")
    if network == "publish" and service.port is None:
        raise ServiceFailed("with services_network = publish it needs port (its port in the container)")
    inside = port if network == "host" else service.port
    assert inside is not None
    env = {name: fill(value, inside) for name, value in service.env.items()}
    if service.port_env is not None:
        env[service.port_env] = str(inside)
    return env


def _ready(program: str, name: str, service: Service, port: int) -> None:
    """Wait until the service answers: its ``ready`` command in its container exits 0, else a TCP
    connection to its port succeeds; ServiceFailed when it stopped or ``ready_timeout`` passed."""
    deadline = time.monotonic() + service.ready_timeout
    command = [fill(a, port) for a in service.ready]
    while time.monotonic() < deadline:
        if command:
            done = _run(program, ["exec", name, *command], check=False, timeout=30)
            if done.returncode == 0:
                return
        elif _answers(port):
            return
        if not _running(program, name):
            raise ServiceFailed(f"its container stopped; its last output:\n{_logs(program, name)}")
        time.sleep(0.2)
    raise ServiceFailed(
        f"not ready after {service.ready_timeout:g} s; its last output:\n{_logs(program, name)}"
    )


def _run(
    program: str, argv: list[str], check: bool = True, timeout: float = RUN_SECONDS
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run([program, *argv], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceFailed(f"{Path(program).name} {argv[0]}: {exc}") from exc
    if check and done.returncode != 0:
        said = tail(done.stderr or done.stdout)
        raise ServiceFailed(f"{Path(program).name} {argv[0]} exited {done.returncode}:\n{said}")
    return done


def _running(program: str, name: str) -> bool:
    done = _run(program, ["container", "inspect", "--format", "{{.State.Running}}", name], check=False)
    return done.returncode == 0 and done.stdout.strip() == "true"


def _logs(program: str, name: str) -> str:
    done = _run(program, ["logs", "--tail", "15", name], check=False)
    return tail(done.stdout + done.stderr) or "(none)"


def tail(text: str, limit: int = TAIL) -> str:
    """The end of an engine's or a container's output, whole lines (a single longer line from a word),
    at most ``limit`` characters, "…" where some were left off; control characters escaped, since the
    container's output is anyone's and goes into the run's error."""
    lines = [_printable(line) for line in text.strip().splitlines()]
    kept: list[str] = []
    while lines and sum(len(k) + 1 for k in kept) + len(lines[-1]) <= limit:
        kept.insert(0, lines.pop())
    if not kept and lines:  # one line longer than the limit: its end, from a word's start
        end = lines.pop()[1 - limit :]
        return "…" + (end.partition(" ")[2] if " " in end else end)
    return "\n".join(["…", *kept] if lines else kept)


def _printable(line: str) -> str:
    return "".join(c if c.isprintable() or c == "\t" else repr(c)[1:-1] for c in line)


def _answers(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
    except OSError:
        return False
    return True


# How long a restart waits for its service's old port (a container just removed may hold it a moment
# longer) before it takes a new one: the agent's conversation already knows the old address.
OLD_PORT_WAIT = 3.0


def _free_soon(port: int) -> bool:
    """Whether a server can listen on ``port`` now or within :data:`OLD_PORT_WAIT`."""
    return bool(
        retry.Retrying(
            retry=retry.retry_if_result(lambda free: not free),
            wait=retry.wait_fixed(0.1),
            stop=retry.stop_before_delay(OLD_PORT_WAIT),
            retry_error_callback=lambda _state: False,
        )(_free, port)
    )


def _free(port: int) -> bool:
    """Whether a server can listen on ``port``: probed as servers bind (``SO_REUSEADDR``), so the
    closed connections of a server just stopped do not count as in use."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port
