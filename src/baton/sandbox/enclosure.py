"""The sandbox's one entry for the runner: an :class:`Enclosure` is everything that surrounds one agent
process of one attempt, opened before the agent starts and closed once it has ended — the walls it
starts behind (:attr:`Enclosure.spawn`, in a mount namespace of its own where allowed), its containment
(:attr:`Enclosure.contain`: told the agent's pid as it starts, asked at its end what outlived it) and
the key's disk budget (:meth:`Enclosure.stop` while it runs, :meth:`Enclosure.final` at its end), and
its way out (:class:`~baton.sandbox.egress.Egress`: a network namespace, baton's egress proxy). The
process itself is the runner's (:func:`baton.runner.process.run_process`): reading it, heartbeats,
timeouts and cancels are about a run, which the sandbox knows nothing of. The rest the runner needs of
the sandbox is re-exported here (:data:`__all__`), so this is the only sandbox module it imports
(``tests/project/test_architecture.py`` holds it to that).
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from baton.allowlist import Refusal
from baton.errors import AgentError
from baton.sandbox import egress, mountns
from baton.sandbox.agentenv import agent_env, allowed
from baton.sandbox.cgroups import Limits
from baton.sandbox.cgroups import enter as enter_groups
from baton.sandbox.confine import check_confine, walls_for
from baton.sandbox.contain import Containment, Reaped, end_stale, limits_of
from baton.sandbox.diskwatch import DiskWatch
from baton.sandbox.egress import Egress, loopback_entries, model_endpoints, service_endpoints
from baton.sandbox.landlock import Ruleset
from baton.sandbox.reaper import STARTING
from baton.sandbox.walls import GitParts, Walls, denied_ports, own_ports, ruleset
from baton.settings import Settings

if TYPE_CHECKING:  # loaded only for a run that uses them: a container (container_for), the gateway
    from baton.agents import Agent
    from baton.sandbox.container import Container as Container
    from baton.sandbox.gateway import Pass as Pass

__all__ = [
    "STARTING",
    "Containment",
    "Egress",
    "Enclosure",
    "GitParts",
    "Limits",
    "Reaped",
    "Refusal",
    "Spawn",
    "Walls",
    "agent_env",
    "allowed",
    "check_confine",
    "container_for",
    "denied_ports",
    "end_stale",
    "enter_groups",
    "limits_of",
    "loopback_entries",
    "model_endpoints",
    "model_gateway",
    "netns_applies",
    "own_ports",
    "service_endpoints",
    "walls_for",
]

netns_applies = egress.applies


def model_gateway(
    agent: Agent,
    env: dict[str, str],
    run_id: str,
    upstream: str | None = None,
    spend: Callable[[dict[str, int], dict[str, dict[str, int]]], str | None] | None = None,
    limit: Callable[[int, dict[str, str], bytes], None] | None = None,
    refused: Callable[[str, str, str], None] | None = None,
    admit: Callable[[dict[str, int], dict[str, dict[str, int]]], str | None] | None = None,
    unreachable: Callable[[str], None] | None = None,
) -> tuple[dict[str, str], Pass, str] | None:
    """``env`` with baton's model gateway standing in for ``agent``'s model API and credential (read on
    the operator's base home), the run's pass to close at its end, and the setting of the CLI that
    names the base URL (``""``: a variable does); None when it cannot stand in
    (:func:`baton.sandbox.gateway.stand_in`). ``upstream``: the model API the operator named
    (``model_gateway_upstream``), else the one the agent's own configuration names. ``spend`` and
    ``limit`` (and ``refused``, ``admit``, ``unreachable``): the pass's guard
    (:class:`baton.sandbox.gateway.Guard`), when both are given."""
    key = agent.gateway_key(env)
    if key is None:
        return None
    # lazy: cold CLI
    from baton.sandbox import gateway

    dropped = (*agent.credentials, *(name for name, _ in key.keys), *key.also)
    where = upstream or agent.model_url(env)
    found = gateway.stand_in(key.keys, key.base_url, dropped, where, env, run_id, key.secret, key.api)
    if found is None:
        return None
    if spend is not None and limit is not None:
        found[1].guard = gateway.Guard(spend, limit, refused, admit, unreachable)
    return (*found, key.config)


# A wrapper around the start of the agent's process: called with the function that starts it and a
# function to call first in the thread that will (the walls are entered in that thread, never in the
# runner's own, which must stay free to write the store, the logs and the next key's worktree).
Spawn = Callable[
    [Callable[[], "subprocess.Popen[bytes]"], Callable[[], None] | None], "subprocess.Popen[bytes]"
]


@dataclass
class Enclosure:
    """One attempt's agent, surrounded. Use it as a context manager: leaving it closes the walls'
    ruleset and the disk watch, whatever happened to the agent. The runner starts and watches the agent
    with its three parts (``spawn``, ``contain``, ``stop``) and learns how it ended from
    :class:`Reaped` (what outlived it, and a limit struck)."""

    contain: Containment  # given the agent's pid as it starts; asked at its end what outlived it
    disk: DiskWatch
    ruleset: Ruleset | None  # None: the agent is not walled in (BATON_CONFINE=off, or no Landlock)
    spawn: Spawn | None  # how the agent starts behind the walls; None: as any process
    out: Egress | None = None  # its way out; None: egress open
    inside: Container | None = None  # the image it runs in (environment container); None: the host
    name: str = ""  # the run's name: its container's
    walls: Walls | None = None  # what it may reach (inside a container: what is mounted)
    limits: Limits | None = None

    @classmethod
    def open(
        cls,
        settings: Settings,
        run_id: str,
        limits: Limits,
        walls: Walls | None,
        watched: Sequence[Path],
        out: Egress | None = None,
        inside: Container | None = None,
    ) -> Enclosure:
        """The enclosure of run ``run_id``'s agent: behind ``walls`` (None: unwalled), within
        ``limits``, with the key's disk budget over ``watched`` (its worktree, temp dir and home), out
        through ``out`` only (its ports the walls' only ones; the enclosure closes it); ``inside``:
        in that container instead, ``walls`` what is mounted (:meth:`command`).
        :class:`~baton.errors.AgentError` when the walls cannot be built: the agent is never started
        unwalled in their place."""
        built: Ruleset | None = None
        try:
            if inside is not None:
                return cls._contained(settings, run_id, limits, walls, watched, out, inside)
            if walls is not None and out is not None:  # in its own namespace nothing else listens
                walls = dataclasses.replace(
                    walls, ports=out.ports | (walls.ports if out.namespaced else set())
                )
            built, spawn = _walled(settings, walls) if walls is not None else (None, None)
            if spawn is not None and out is not None and out.namespaced:
                spawn = _namespaced(spawn, out)
            return cls(
                Containment(settings, run_id, limits),
                DiskWatch.from_settings(settings, watched),
                built,
                spawn,
                out,
            )
        except BaseException:
            if built is not None:
                built.close()
            if out is not None:
                out.close()
            raise

    @classmethod
    def _contained(
        cls,
        settings: Settings,
        run_id: str,
        limits: Limits,
        walls: Walls | None,
        watched: Sequence[Path],
        out: Egress | None,
        inside: Container,
    ) -> Enclosure:
        if walls is None:
            raise AgentError("an agent in a container needs its walls: they say what is mounted")
        # under an allow-list the engine starts in the agent's network namespace, its container too
        spawn = _engine_spawn(settings, inside, out) if out is not None else None
        disk = DiskWatch.from_settings(settings, watched)
        box = cls(Containment(settings, run_id, limits), disk, None, spawn, out)
        box.inside, box.name, box.walls, box.limits = inside, f"baton-{run_id}", walls, limits
        return box

    def command(
        self, argv: list[str], env: dict[str, str], cwd: Path, timeout: float | None = None
    ) -> tuple[list[str], dict[str, str]]:
        """What to start for ``argv`` in ``cwd`` with ``env`` (stopped at ``timeout``): itself on the
        host, the container's engine running it inside (:meth:`.container.Container.command`)."""
        if self.inside is None or self.walls is None or self.limits is None:
            return argv, env
        return self.inside.command(self.name, argv, env, cwd, self.walls, self.limits, timeout)

    def stop(self) -> str | None:
        """While the agent runs: a reason to stop it now (a limit of the run struck, the key's disk
        budget or the volume's free space), or None."""
        return self.contain.check() or self.disk.stop()

    def final(self, reaped: Reaped) -> None:
        """The agent and what it started have ended: the key's disk measured once more (a write faster
        than the watch counts too), and a budget it broke made a limit of the run, as memory is."""
        self.disk.final()
        if self.disk.reason:
            reaped.limit = reaped.limit or self.disk.reason

    def close(self) -> None:
        if self.inside is not None:  # whatever a kill left of it (the engine's run was stopped)
            self.inside.remove(self.name)
        self.disk.close()
        if self.ruleset is not None:
            self.ruleset.close()
        if self.out is not None:
            self.out.close()

    def __enter__(self) -> Enclosure:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def container_for(
    engine: str,
    tag: str,
    env: dict[str, str],
    dockerfile: Path | None = None,
    context: Path | None = None,
    args: dict[str, str] | None = None,
    timeout: float | None = None,
) -> tuple[Container, bool]:
    """The container an agent of ``environment = "container"`` runs in, its image ``tag`` built from
    ``dockerfile`` when missing (and whether it was, now); loaded for such a run only."""
    # lazy: cold CLI
    from baton.sandbox import container
    from baton.workspace import enginelimits

    path = container.engine_path(engine)
    built, image_id = container.ensure_image(path, tag, dockerfile, context, args or {}, timeout)
    ulimits = tuple(enginelimits.probe(path, tag, container.engine_env()))
    return container.Container(path, tag, env, image_id, ulimits), built


def _engine_spawn(settings: Settings, inside: Container, out: Egress) -> Spawn:
    """How a container's engine starts under ``out``: from a thread in the agent's network namespace,
    so its container (``--network host``) is in that namespace too, with only baton's proxy and relays
    on its loopback; no Landlock (the container's walls are its mounts). :class:`AgentError` where the
    container would not be in it: the allow-list would not hold."""
    # lazy: cold CLI (loaded already for this run: container_for)
    from baton.sandbox import container

    why, way = container.netns_refusal(inside.engine), "run it with podman as root (container_engine)"
    if why is None and not out.namespaced:
        why, way = egress.no_namespace(settings.net_ns), "let baton make network namespaces (as root)"
    if why is not None:
        raise AgentError(
            f"an egress allow-list cannot hold inside this container ({why}): set egress open for "
            f"this repository, or {way}"
        )
    return out.spawn


def _namespaced(spawn: Spawn, out: Egress) -> Spawn:
    """``spawn`` with the agent in its own network namespace, entered after ``before`` (a run group's)."""

    def started(
        start: Callable[[], subprocess.Popen[bytes]], before: Callable[[], None] | None
    ) -> subprocess.Popen[bytes]:
        def first() -> None:
            if before is not None:
                before()
            out.enter()

        return spawn(start, first)

    return started


def _walled(settings: Settings, walls: Walls) -> tuple[Ruleset, Spawn]:
    """The kernel ruleset for ``walls`` and how to start an agent in it: in its own mount namespace
    where ``BATON_MOUNT_NS`` and the host allow."""
    try:
        if mountns.applies(settings.mount_ns):
            return mountns.walled(walls)
        built = ruleset(walls)
    except OSError as exc:
        raise AgentError(f"cannot wall the agent in: {exc}") from exc
    return built, built.spawn
