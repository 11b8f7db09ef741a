"""Running a setup's commands in a :class:`Room`: the tree it prepares (the key's worktree, or a prepared
tree every thread of the repository is given: :mod:`baton.runner.sharedsetup`), its environment (the
agent's allow-list without the agent CLI's own variables: no model credential, never baton's or the
forge's; the plan's variables over it), its walls (the agent's at ``full``:
:func:`~baton.sandbox.enclosure.walls_for`) and its way out (:func:`baton.runner.wayout.setup_policy`),
each command in its own enclosure, all of them together stopped at ``setup_timeout``; the first that
does not succeed ends it, said with its output's tail.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from baton.agents import get_agent
from baton.allowlist import Policy
from baton.environment import DEVCONTAINER, DEVCONTAINER_ROOT, FAILED, NEXT, NOTHING, TAIL
from baton.environment.plan import Command, SetupPlan, expand, setup_env
from baton.errors import AgentError
from baton.models import Access, Outcome
from baton.runner import wayout
from baton.runner.process import ProcessResult, RunLog, run_process
from baton.runner.state import Context, Prepared
from baton.sandbox.enclosure import Enclosure, GitParts, Walls, agent_env, check_confine, walls_for
from baton.workspace import keyspace, nofollow

if TYPE_CHECKING:
    from baton.sandbox.enclosure import Container

TAIL_LINES = 25
TAIL_CHARS = 4000
# stderr joins stdout, in order, so the tail of a failure is what a person would have seen
JOINED = ("/bin/sh", "-c", 'exec "$@" 2>&1', "sh")


@dataclass(frozen=True)
class Room:
    """Where a setup runs: the tree it prepares, its environment (``HOME``, ``TMPDIR``, ...), its walls
    (in a container: what is mounted), its container (None: the host)."""

    worktree: Path
    env: dict[str, str]
    walls: Walls | None
    container: Container | None = None
    trusted: bool = False  # what runs is the default branch's: ``setup_egress`` (else the agent's egress)


def key_room(ctx: Context, prepared: Prepared) -> Room:
    """The key's own worktree, with a home and temp dir of the setup's own (never the agent's home: no
    credential, no transcript), in the agent's walls at ``full`` but for its branch, which it may not
    commit to; never trusted (the agent could have written what runs: its egress)."""
    home = setup_home(ctx)
    base = base_env(ctx, home / "home", home / "tmp", prepared.services)
    inside = prepared.container
    walls = _walls(ctx, prepared, base) if check_confine(ctx.settings) or inside else None
    return Room(prepared.worktree, base, walls, inside)


def setup_home(ctx: Context) -> Path:
    """The key's setups' own space (``setup/home``, ``setup/tmp`` beside the agent's home), made."""
    space = keyspace.key_dir(ctx.settings, ctx.key) / "setup"
    (space / "home").mkdir(mode=0o700, parents=True, exist_ok=True)
    return space


def shared_room(
    ctx: Context,
    tree: Path,
    home: Path,
    tmp: Path,
    git: GitParts,
    services: dict[str, str],
    inside: Container | None = None,
    trusted: bool = False,
) -> Room:
    """A prepared tree, with its own home and temp dir, in the walls the agent would get there at
    ``full`` (its git detached: no branch of the key's is writable); ``services``: the variables of
    the services of the key whose turn prepares it; ``inside``: in that container; ``trusted``: its
    commit is on the repository's default branch."""
    base = base_env(ctx, home, tmp, services)
    walls = None
    if check_confine(ctx.settings) or inside is not None:
        operators = get_agent(ctx.key.agent, ctx.settings)
        walls = walls_for(ctx.settings, operators, Access.FULL, tree, git, base, ctx.key.repo.url)
    return Room(tree, base, walls, inside, trusted)


def run_all(
    ctx: Context, room: Room, plan: SetupPlan, commands: tuple[Command, ...], log_path: Path
) -> tuple[Outcome, str] | None:
    """Every command in order; the first that does not succeed ends it: (outcome, the run's error)."""
    workspace = str(room.worktree)
    env = setup_env(room.env, plan.env, workspace)
    policy = wayout.setup_policy(ctx, room.trusted)
    deadline = time.monotonic() + ctx.settings.setup_timeout if ctx.settings.setup_timeout else None
    with RunLog(log_path) as log:
        for number, command in enumerate(commands, 1):
            log.note({"type": "baton.setup", "source": plan.source, "command": command.name})
            tail: deque[str] = deque(maxlen=TAIL_LINES)
            try:
                cwd = _cwd(room.worktree, command.cwd)
                left = None if deadline is None else max(0.1, deadline - time.monotonic())
                if plan.source in (DEVCONTAINER, DEVCONTAINER_ROOT):  # the spec's variables, in commands too
                    command = replace(command, argv=tuple(expand(a, env, workspace) for a in command.argv))
                own = setup_env(env, command.env, workspace)
                result = _run_one(ctx, room, command, own, cwd, log, tail, left, number, policy)
            except (AgentError, OSError) as exc:
                return Outcome.FAILED, _failed(plan, command, f"could not start: {exc}", tail)
            failed = _ending(ctx, plan, command, result, tail)
            if failed is not None:
                return failed
    return None


def _run_one(
    ctx: Context,
    room: Room,
    command: Command,
    env: dict[str, str],
    cwd: Path,
    log: RunLog,
    tail: deque[str],
    timeout: float | None,
    number: int,
    policy: Policy,
) -> ProcessResult:
    watched = [room.worktree, Path(env["TMPDIR"]), Path(env["HOME"])]
    name = f"{ctx.run_id}-setup{number}"
    out = wayout.open_way(ctx, ctx.run_id, policy, env, room.walls is not None, log.note, models=False)
    env = {**env, **out.env} if out is not None else env
    limits, inside = ctx.resolved.limits, room.container
    with Enclosure.open(ctx.settings, name, limits, room.walls, watched, out, inside) as box:
        argv, started_env = box.command([*JOINED, *command.argv], env, cwd, timeout)
        result = run_process(
            argv,
            started_env,
            cwd,
            log,
            tail.append,
            on_start=lambda _pid: None,
            heartbeat=lambda: not ctx.lost.is_set(),
            heartbeat_every=ctx.settings.heartbeat,
            timeout=timeout,
            cancel=ctx.request.cancel,
            kill_grace=ctx.settings.kill_grace,
            spawn=box.spawn,
            stop_when=box.stop,
            contain=box.contain,
        )
        box.final(result.reaped)
    return result


def _ending(
    ctx: Context, plan: SetupPlan, command: Command, result: ProcessResult, tail: deque[str]
) -> tuple[Outcome, str] | None:
    if result.cancelled:
        return Outcome.CANCELLED, _failed(plan, command, "was cancelled", tail)
    if result.timed_out:
        why = f"was stopped at setup_timeout ({ctx.settings.setup_timeout:g} s)"
        return Outcome.FAILED, _failed(plan, command, why, tail)
    if result.stopped or result.reaped.limit:
        return Outcome.FAILED, _failed(
            plan, command, f"was stopped: {result.stopped or result.reaped.limit}", tail
        )
    if result.exit_code != 0:
        return Outcome.FAILED, _failed(plan, command, f"exited {result.exit_code}", tail)
    return None


def _failed(plan: SetupPlan, command: Command, how: str, tail: deque[str]) -> str:
    lines = [line[:300] for line in tail]
    shown = "\n".join(lines)[-TAIL_CHARS:]
    said = f"{TAIL}{shown}" if shown else NOTHING
    return f"{FAILED}{plan.source}: {command.name} {how}{NEXT}{said}"


def _cwd(worktree: Path, relative: str) -> Path:
    """A command's directory: the worktree, or a plain relative path inside it that exists."""
    if not relative:
        return worktree
    path = worktree.joinpath(*nofollow.parts_of(relative))
    if not path.is_dir():
        raise OSError(f"its working directory {relative!r} is not a directory of the worktree")
    return path


def base_env(ctx: Context, home: Path, tmp: Path, services: dict[str, str]) -> dict[str, str]:
    """The agent's allow-list without the agent CLI's own variables (its model credential): the
    system's basics, the operator's additions, the key's services' variables, git's identity,
    ``home`` and ``tmp``, the repository's shared package caches."""
    git = ctx.workdirs.git_env(ctx.key.agent)
    sets = {**services, **git, "GIT_EDITOR": "true", "BATON_RUN_ID": ctx.run_id}
    tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
    caches = keyspace.shared_cache(ctx.settings, ctx.key, Access.FULL)
    return agent_env(os.environ, (), ctx.settings.agent_env_names, sets, home, tmp, caches)


def _walls(ctx: Context, prepared: Prepared, env: dict[str, str]) -> Walls:
    """The agent's walls at ``full`` but for its branch (no commit of the setup's lands on it): built
    from baton's knowledge of the key, never the plan's env."""
    found = ctx.workdirs.worktree_git(ctx.key)
    git = GitParts(found.admin, found.common, None) if found else None
    operators = get_agent(ctx.key.agent, ctx.settings)
    return walls_for(ctx.settings, operators, Access.FULL, prepared.worktree, git, env, ctx.key.repo.url)
