"""Whether and how one attempt's agent is walled in: ``BATON_CONFINE`` (``off``, ``auto``, ``required``)
against what the kernel can do (:func:`check_confine`, told before anything is written; ``auto`` says
once per process, in its log, that agents run unconfined), and the
:class:`~baton.sandbox.walls.Walls` of the key at the run's access level (:func:`walls_for`). The walls
follow the level, so it holds even where a CLI's own checks would let more through; their git parts
are baton's own knowledge (the cache clone, the session's branch, the worktree's admin directory), never
the agent-writable ``.git`` file or ``HEAD``, so an agent that rewrote them cannot widen its next walls.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from baton.agents import Agent
from baton.errors import Unconfined
from baton.models import Access, Confine
from baton.sandbox import mountns
from baton.sandbox.agentenv import cache_dirs
from baton.sandbox.walls import GitParts, Support, Walls, support, tcp_ports
from baton.settings import Settings
from baton.workspace.keyspace import CACHES

log = logging.getLogger(__name__)


@cache
def _support() -> Support:
    return support()


@cache
def _warn_once(reason: str) -> None:
    log.warning("agents run unconfined: %s (BATON_CONFINE=auto; set it to required to refuse)", reason)


def check_confine(settings: Settings) -> bool:
    """Whether agents will be walled in; :class:`Unconfined` (exit 2, HTTP 503) when ``required``
    cannot be met, so an agent that cannot be walled in is never started."""
    mode = Confine(settings.confine)
    if mode == Confine.OFF:
        return False
    found = _support()
    if found.ok:
        return True
    reason = found.reason or "Landlock is unavailable"
    if mode == Confine.REQUIRED:
        raise Unconfined(f"BATON_CONFINE=required, but agents cannot be confined on this machine: {reason}")
    _warn_once(reason)
    return False


@dataclass(frozen=True)
class Confinement:
    """How agents are walled in here, for ``baton doctor`` and ``/readyz``."""

    ok: bool  # False: BATON_CONFINE=required cannot be met, no agent will start
    walled: bool  # agents are walled in
    detail: str


def describe(settings: Settings) -> Confinement:
    """What BATON_CONFINE and the kernel make of confinement on this machine."""
    found, mode = _support(), Confine(settings.confine)
    if mode == Confine.OFF:
        return Confinement(True, False, "off (BATON_CONFINE=off): agents reach whatever baton's user can")
    if found.ok:
        gaps = f"; not enforced by this kernel: {'; '.join(found.missing)}" if found.missing else ""
        walled = f"every agent walled into its key (Landlock ABI {found.abi})"
        detail = f"{mode.value}: {walled}{gaps}; {_sockets(settings)}; {_processes(settings)}"
        return Confinement(True, True, detail)
    reason = found.reason or "Landlock is unavailable"
    if mode == Confine.REQUIRED:
        return Confinement(False, False, f"required, but impossible here: {reason}; no agent will start")
    return Confinement(True, False, f"auto, but agents run unconfined: {reason}")


def _sockets(settings: Settings) -> str:
    """What keeps a walled agent from pathname UNIX sockets here (Landlock checks their ``connect`` only
    from ABI 9, which baton does not use)."""
    if mountns.applies(settings.mount_ns):
        return "pathname UNIX sockets hidden (the agent's own mount namespace)"
    why = "BATON_MOUNT_NS=off" if settings.mount_ns == "off" else f"no mount namespace: {mountns.probe()}"
    return f"pathname UNIX sockets not walled ({why}; baton does not use Landlock ABI 9's check of them)"


def _processes(settings: Settings) -> str:
    """What a walled agent sees of the machine's processes here (docs/security.md has the table)."""
    if mountns.applies(settings.mount_ns):
        why = mountns.proc_probe()
        if why is None:
            return (
                "processes: only their own run's (a procfs with hidepid=ptraceable in their mount "
                "namespace; /proc/net is still the host network's)"
            )
        why = f"no fresh procfs: {why}"
    else:
        why = "BATON_MOUNT_NS=off" if settings.mount_ns == "off" else f"no mount namespace: {mountns.probe()}"
    if mountns.host_hides():
        return f"processes: only their own run's (the host's /proc has hidepid=ptraceable; {why})"
    return (
        f"processes: every process's command line visible ({why}; "
        "`mount -o remount,hidepid=ptraceable /proc` on the host hides them)"
    )


def walls_for(
    settings: Settings,
    agent: Agent,
    access: Access,
    worktree: Path,
    git: GitParts | None,
    env: dict[str, str],
    repo_url: str,
) -> Walls:
    """The walls of one agent start: the key's worktree at ``access``, its home and temp dir and its
    repository's shared package caches (from the environment baton built: ``HOME``, ``TMPDIR``, the
    cache variables pointing into ``BATON_HOME/caches``), the CLI's installation, the ports it may
    reach."""
    commands = [Path(c) for c in agent.command if Path(c).is_absolute()]
    commands += [Path(found) for name in ("git", "node") if (found := shutil.which(name, path=env["PATH"]))]
    return Walls(
        home=settings.home,
        worktree=worktree,
        agent_home=Path(env["HOME"]),
        tmp=Path(env["TMPDIR"]),
        caches=cache_dirs(env, settings.home / CACHES) if access != Access.READ else (),
        commands=tuple(commands),
        path=env["PATH"],
        hide=_store_file(settings),
        ports=tcp_ports(settings, env, [repo_url, *agent.endpoints()]),
        git=git,
        edit=access != Access.READ,
        commit=access == Access.FULL,
    )


def _store_file(settings: Settings) -> tuple[Path, ...]:
    """A SQLite store outside BATON_HOME is hidden too."""
    url = settings.resolved_store_url
    return (Path(url.split(":///", 1)[1]),) if url.startswith("sqlite:///") else ()
