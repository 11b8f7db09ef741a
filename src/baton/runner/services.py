"""The services a key's repository declares (``.baton/services.toml``, else its dev container's
``dockerComposeFile``: :func:`declared`), started for the key before its
setup and its agent (:func:`start_services`): their variables go into both environments
(:attr:`~baton.runner.state.Prepared.services`), their ports into the walls and, when the agent has a
network namespace of its own, a relay each. Imported only for a key whose worktree has one. A
file that cannot be used, or a service that does not start, ends the turn before its agent runs; a
host with no container engine runs the turn with a note saying the services were skipped.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from pathlib import Path
from typing import Any

from baton.environment import DEVCONTAINER, DEVCONTAINER_ROOT, SERVICES
from baton.environment.discover import Unreadable, read, read_devcontainer
from baton.environment.servicerun import start
from baton.environment.services import COMPOSE_MAX, Service, compose_services, read_services
from baton.models import Outcome, RunRecord
from baton.runner.attempt import record_unstarted
from baton.runner.state import Context, Prepared
from baton.workspace import keyspace

MAX_FILE = 64 * 1024


def start_services(ctx: Context, prepared: Prepared) -> tuple[Prepared, RunRecord | None]:
    """``prepared`` with the key's services running and their variables; or the turn's recorded end."""
    try:
        services, skipped = declared(ctx.settings.services_network, prepared.worktree)
    except (Unreadable, UnicodeDecodeError, ValueError) as exc:
        said = "environment: the repository's services cannot be used"
        return prepared, record_unstarted(ctx, prepared, Outcome.FAILED, f"environment: {exc}", said)
    started = start(ctx.settings, keyspace.key_dir(ctx.settings, ctx.key), services)
    if started.error is not None:
        return prepared, record_unstarted(ctx, prepared, Outcome.FAILED, started.error, started.note)
    set_aside = f"services set aside: {'; '.join(skipped)}" if skipped else None
    note = "; ".join(filter(None, [prepared.note, started.note, set_aside])) or None
    text = _told(started.env, services) if started.fresh else ""
    return dataclasses.replace(prepared, note=note, services=started.env, services_text=text), None


def declared(network: str, worktree: Path) -> tuple[tuple[Service, ...], tuple[str, ...]]:
    """The key's services, and the ones set aside (why): ``.baton/services.toml``'s, else those of its
    dev container's compose files (under host networking, ``network``, none: a compose service names
    no variable that tells it its port)."""
    if os.path.lexists(worktree / SERVICES):
        return read_services(read(worktree, SERVICES, MAX_FILE).decode("utf-8")), ()
    found = devcontainer(worktree)
    if found is None:
        return (), ()
    source, data = found
    compose = compose_services(data, lambda p: read(worktree, p, COMPOSE_MAX), posixpath.dirname(source))
    if compose.services and network == "host":
        names = ", ".join(s.name for s in compose.services)
        why = f"{names} of {source}'s dockerComposeFile (services_network = host: declare them in {SERVICES})"
        return (), (why, *compose.skipped)
    return compose.services, compose.skipped


def devcontainer(worktree: Path) -> tuple[str, dict[str, Any]] | None:
    """(its path, what it says) of the worktree's devcontainer.json when it names compose files."""
    source = next((s for s in (DEVCONTAINER, DEVCONTAINER_ROOT) if os.path.lexists(worktree / s)), None)
    if source is None:
        return None
    try:
        _text, data = read_devcontainer(worktree, source)
    except Unreadable:
        return None  # the setup says what is wrong with it
    return (source, data) if "dockerComposeFile" in data else None


def _told(env: dict[str, str], services: tuple[object, ...]) -> str:
    """The prompt's line: which variables reach the services, so the agent's tests use them."""
    names = ", ".join(sorted(n for n in env if n != "BATON_SERVICE_PORTS"))
    ports = env["BATON_SERVICE_PORTS"]
    return (
        f"This thread has its own services for the tests ({len(services)}, on 127.0.0.1 ports {ports}); "
        f"their addresses are in your environment: {names or 'BATON_SERVICE_PORTS'}."
    )
