"""The containers of the keys' services (:mod:`baton.environment.servicerun` starts them), as baton keeps
track of them: one state file each in ``BATON_HOME/services/<container>.json`` (its engine, the key's
space it belongs to, its port, when a turn last used it), their data in that key's space. Here is what
ends them: the key's removal (:func:`stop_space`, from :func:`baton.workspace.keyspace.remove_space`)
and the sweep, for those idle ``services_idle_minutes`` or whose key is gone (:func:`sweep_idle`). An
idle one's state outlives its container, marked ``stopped``: the key's next turn starts it again on the
same port when that is free, since the agent's conversation already knows the old address.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from baton.files import atomic_write_text
from baton.settings import Settings

log = logging.getLogger("baton.services")
SERVICES = "services"  # under BATON_HOME: the state files; under a key's space: the data
PREFIX = "baton-svc-"
STOP_SECONDS = 10


@dataclass(frozen=True)
class State:
    """One service container of a key, as its state file says."""

    container: str
    engine: str  # the engine's program (podman, docker)
    space: str  # the key's space
    service: str
    port: int
    spec: str  # the hash of what it was started from: another one is started again
    used: float  # when a turn last used it
    stopped: bool = False  # the sweep removed its container for idleness; its port is kept for the next

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def container_name(space: Path, service: str) -> str:
    """The container of ``service`` for the key whose space is ``space``: one per key and service."""
    return f"{PREFIX}{hashlib.sha256(str(space).encode()).hexdigest()[:12]}-{service}"


def state_path(settings: Settings, container: str) -> Path:
    return settings.home / SERVICES / f"{container}.json"


def read_state(settings: Settings, container: str) -> State | None:
    try:
        data = json.loads(state_path(settings, container).read_text())
        return State(**data)
    except (OSError, ValueError, TypeError):
        return None


def write_state(settings: Settings, state: State) -> None:
    path = state_path(settings, state.container)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(state.to_json()), mode=0o600)


def states(settings: Settings) -> list[State]:
    """Every service container baton started from this home and has not forgotten (the sweep's idle
    ones too, ``stopped``)."""
    root = settings.home / SERVICES
    found = []
    for path in sorted(root.glob(f"{PREFIX}*.json")) if root.is_dir() else ():
        state = read_state(settings, path.stem)
        if state is not None:
            found.append(state)
    return found


def remove_argv(engine: str, container: str) -> list[str]:
    """The engine's argv that stops and removes ``container`` (podman's ``rm`` waits ``-t``; docker's
    has no such flag and kills at once)."""
    wait = ["-t", str(STOP_SECONDS)] if Path(engine).name == "podman" else []
    return [engine, "rm", "-f", *wait, container]


def stop(settings: Settings, state: State, keep: bool = False) -> str | None:
    """Remove the container (its data stays in the key's space) and its state, or with ``keep`` mark
    the state stopped (its port is wanted again); the error, if any."""
    try:
        done = subprocess.run(
            remove_argv(state.engine, state.container),
            capture_output=True,
            text=True,
            timeout=STOP_SECONDS + 60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{state.container}: {exc}"
    if done.returncode != 0 and "no such container" not in done.stderr.lower():
        return f"{state.container}: {state.engine} rm exited {done.returncode}: {done.stderr.strip()[-300:]}"
    if keep:
        write_state(settings, replace(state, stopped=True))
    else:
        state_path(settings, state.container).unlink(missing_ok=True)
    return None


def stop_space(settings: Settings, space: Path) -> None:
    """Stop the services of the key whose space is ``space``, before the space is removed; a data
    directory a rootless engine owns through its user namespace is removed through it."""
    for state in states(settings):
        if state.space != str(space):
            continue
        error = stop(settings, state)
        if error is not None:
            log.warning("stopping a service of %s: %s", space, error)
    data = space / SERVICES
    if data.is_dir() and os.geteuid() != 0:
        for engine in {s.engine for s in states(settings)} | {"podman"}:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run([engine, "unshare", "rm", "-rf", str(data)], capture_output=True, timeout=120)
                break


def sweep_idle(settings: Settings, now: float, dry_run: bool = False) -> tuple[list[str], dict[str, str]]:
    """Stop the containers no turn used for ``services_idle_minutes`` (0: never by age), keeping their
    state for their port, and those whose key's space is gone, forgetting them (a state already stopped
    only that): (the ones stopped, errors by container)."""
    stopped: list[str] = []
    errors: dict[str, str] = {}
    idle = settings.services_idle_minutes * 60
    for state in states(settings):
        gone = not Path(state.space).is_dir()
        if state.stopped and gone and not dry_run:
            state_path(settings, state.container).unlink(missing_ok=True)
        if state.stopped or (not gone and (idle <= 0 or state.used >= now - idle)):
            continue
        error = None if dry_run else stop(settings, state, keep=not gone)
        if error is None:
            stopped.append(state.container)
        else:
            errors[state.container] = error
    return stopped, errors
