"""Preparing a key's environment before its agent's turn: the repository's setup
(:func:`baton.environment.discover.discover`) runs in the key's worktree, in the walls the agent gets at
``full`` (:func:`~baton.sandbox.enclosure.walls_for`: no store, no other key, nothing of
``BATON_HOME`` but the key's own parts), with an environment that is the agent's allow-list without the
agent CLI's own variables (no model credential, never baton's or the forge's), the plan's variables
over it, each command stopped at ``setup_timeout`` (all of them together). It runs when needed only: the
key's stamp (``setup.json`` in its space, out of the agent's reach) holds the preparation key of its last
successful setup and the worktree it ran in; the same key skips it, changed lock files alone run the
maintenance when the plan has one. A failure is the turn's end (:func:`record_failed`), said with the
tail of its output; the next turn tries again.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from baton.agents import get_agent
from baton.environment.discover import Unreadable, discover
from baton.environment.plan import DEVCONTAINER, DEVCONTAINER_ROOT, Command, SetupPlan, expand, setup_env
from baton.environment.testcmd import test_command
from baton.errors import AgentError
from baton.files import atomic_write_text
from baton.models import Access, Outcome, RunRecord
from baton.runner.attempt import record_unstarted
from baton.runner.process import ProcessResult, RunLog, run_process
from baton.runner.state import Context, Prepared
from baton.sandbox.enclosure import Enclosure, GitParts, Walls, agent_env, check_confine, walls_for
from baton.workspace import keyspace, nofollow

STAMP = "setup.json"  # in the key's space, beside its home and temp dir
TAIL_LINES = 25
TAIL_CHARS = 4000
# stderr joins stdout, in order, so the tail of a failure is what a person would have seen
JOINED = ("/bin/sh", "-c", 'exec "$@" 2>&1', "sh")


@dataclass(frozen=True)
class Setup:
    """What preparing the environment did this turn."""

    note: str | None = None  # on the run: which source applied and why, what ran and how it went
    text: str = ""  # the prompt's block: what was prepared (a setup ran this turn)
    error: str | None = None  # it failed: the turn ends with this, and no agent runs
    outcome: Outcome = Outcome.FAILED  # how a turn whose setup did not succeed ends
    log: Path | None = None  # the setup's output


def prepare_environment(ctx: Context, prepared: Prepared) -> Setup:
    """Run the key's setup if it needs one (see the module docstring); at access ``read`` never (the
    turn may not change its worktree)."""
    if ctx.access == Access.READ:
        return Setup()
    try:
        plan = discover(prepared.worktree, ctx.request.setup)
    except Unreadable as exc:
        return Setup("environment: the repository's setup cannot be used", error=f"environment: {exc}")
    if plan is None:
        return Setup()
    stamp = _stamp(ctx, prepared.worktree)
    if stamp.get("key") == plan.key:
        return Setup()
    maintain = bool(plan.maintenance) and stamp.get("text_key") == plan.text_key
    what, why = ("maintenance", _changed(plan, stamp)) if maintain else ("setup", _why(plan, stamp))
    started = time.monotonic()
    commands = plan.maintenance if maintain else plan.commands
    log = ctx.settings.home / "logs" / f"{ctx.run_id}-setup.jsonl"
    failed = _run_all(ctx, prepared, plan, commands, log)
    took = f"{time.monotonic() - started:.1f} s"
    said = f"environment: {what} from {plan.summary()} ({plan.why}; {why})"
    if failed is not None:
        outcome, error = failed
        return Setup(f"{said} did not succeed", error=error, outcome=outcome, log=log)
    _write_stamp(ctx, prepared.worktree, plan)
    return Setup(f"{said} ran in {took}", _block(plan, what, prepared.worktree), log=log)


def record_failed(ctx: Context, prepared: Prepared, setup: Setup) -> RunRecord:
    """The turn whose setup did not succeed, recorded (no agent ran), its log the setup's output."""
    assert setup.error is not None
    record = record_unstarted(ctx, prepared, setup.outcome, setup.error, setup.note)
    if setup.log is not None and setup.log.exists():
        os.replace(setup.log, record.log_path)  # `baton runs logs` shows what the setup said
    return record


def _why(plan: SetupPlan, stamp: dict[str, Any]) -> str:
    if not stamp:
        return "the key's first setup"
    if stamp.get("text_key") != plan.text_key:
        return "the setup changed since the key's last one"
    return _changed(plan, stamp)


def _changed(plan: SetupPlan, stamp: dict[str, Any]) -> str:
    before = dict(stamp.get("inputs") or [])
    now = dict(plan.inputs)
    changed = sorted(n for n in before.keys() | now.keys() if before.get(n) != now.get(n))
    return f"changed since the key's last setup: {', '.join(changed) or 'its inputs'}"


def _block(plan: SetupPlan, what: str, worktree: Path) -> str:
    """The prompt's short block: what was prepared, and how to run the tests."""
    ran = ", ".join(c.name for c in plan.commands if c.argv) or "nothing"
    text = (
        f"Before this turn, baton prepared your working directory: the repository's {what} "
        f"({plan.source}: {ran}) ran and succeeded, so its dependencies are installed here."
    )
    if plan.skipped:
        text += f" Not run: {'; '.join(plan.skipped)}."
    found = test_command(worktree)
    if found is not None:
        text += f" {found[0]} names the test command `{found[1]}`: run the tests before you push."
    else:
        text += " Run the project's tests before you push."
    return text


def _run_all(
    ctx: Context, prepared: Prepared, plan: SetupPlan, commands: tuple[Command, ...], log_path: Path
) -> tuple[Outcome, str] | None:
    """Every command in order; the first that does not succeed ends it: (outcome, the run's error)."""
    base = _base_env(ctx)
    walls = _walls(ctx, prepared, base) if check_confine(ctx.settings) else None
    workspace = str(prepared.worktree)
    env = setup_env(base, plan.env, workspace)
    deadline = time.monotonic() + ctx.settings.setup_timeout if ctx.settings.setup_timeout else None
    with RunLog(log_path) as log:
        for number, command in enumerate(commands, 1):
            log.note({"type": "baton.setup", "source": plan.source, "command": command.name})
            tail: deque[str] = deque(maxlen=TAIL_LINES)
            try:
                cwd = _cwd(prepared.worktree, command.cwd)
                left = None if deadline is None else max(0.1, deadline - time.monotonic())
                if plan.source in (DEVCONTAINER, DEVCONTAINER_ROOT):  # the spec's variables, in commands too
                    command = replace(command, argv=tuple(expand(a, env, workspace) for a in command.argv))
                result = _run_one(
                    ctx,
                    prepared,
                    command,
                    setup_env(env, command.env, workspace),
                    walls,
                    cwd,
                    log,
                    tail,
                    left,
                    number,
                )
            except (AgentError, OSError) as exc:
                return Outcome.FAILED, _failed(plan, command, f"could not start: {exc}", tail)
            failed = _ending(ctx, plan, command, result, tail)
            if failed is not None:
                return failed
    return None


def _run_one(
    ctx: Context,
    prepared: Prepared,
    command: Command,
    env: dict[str, str],
    walls: Walls | None,
    cwd: Path,
    log: RunLog,
    tail: deque[str],
    timeout: float | None,
    number: int,
) -> ProcessResult:
    watched = [prepared.worktree, Path(env["TMPDIR"]), Path(env["HOME"])]
    name = f"{ctx.run_id}-setup{number}"
    with Enclosure.open(ctx.settings, name, ctx.resolved.limits, walls, watched) as box:
        result = run_process(
            [*JOINED, *command.argv],
            env,
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
    said = f"; its output's last lines:\n{shown}" if shown else " (it printed nothing)"
    return (
        f"the repository's setup did not succeed ({plan.source}: {command.name} {how}); the agent did not "
        f"run and the key's next turn runs the setup again{said}"
    )


def _cwd(worktree: Path, relative: str) -> Path:
    """A command's directory: the worktree, or a plain relative path inside it that exists."""
    if not relative:
        return worktree
    path = worktree.joinpath(*nofollow.parts_of(relative))
    if not path.is_dir():
        raise OSError(f"its working directory {relative!r} is not a directory of the worktree")
    return path


def _base_env(ctx: Context) -> dict[str, str]:
    """The agent's allow-list without the agent CLI's own variables (its model credential): the
    system's basics, the operator's additions, git's identity, the key's home and temp dir, the
    repository's shared package caches."""
    sets = {**ctx.workdirs.git_env(ctx.key.agent), "GIT_EDITOR": "true", "BATON_RUN_ID": ctx.run_id}
    home, tmp = ctx.agent.home, keyspace.key_tmp(ctx.settings, ctx.key)
    tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
    caches = keyspace.shared_cache(ctx.settings, ctx.key, Access.FULL)
    return agent_env(os.environ, (), ctx.settings.agent_env_names, sets, home, tmp, caches)


def _walls(ctx: Context, prepared: Prepared, env: dict[str, str]) -> Walls:
    """The agent's walls at ``full``: built from baton's knowledge of the key, never the plan's env."""
    found = ctx.workdirs.worktree_git(ctx.key)
    git = GitParts(found.admin, found.common, f"refs/heads/{prepared.session.branch}") if found else None
    operators = get_agent(ctx.key.agent, ctx.settings)
    return walls_for(ctx.settings, operators, Access.FULL, prepared.worktree, git, env, ctx.key.repo.url)


def _stamp_path(ctx: Context) -> Path:
    return keyspace.key_dir(ctx.settings, ctx.key) / STAMP


def _identity(worktree: Path) -> list[int]:
    """The worktree's directory as the kernel knows it: a worktree made again is another one."""
    st = os.stat(worktree)
    return [st.st_dev, st.st_ino]


def _stamp(ctx: Context, worktree: Path) -> dict[str, Any]:
    """The key's last successful setup, if it was in this worktree ({} otherwise)."""
    try:
        data = json.loads(_stamp_path(ctx).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("worktree") == _identity(worktree) else {}


def _write_stamp(ctx: Context, worktree: Path, plan: SetupPlan) -> None:
    data = {
        "key": plan.key,
        "text_key": plan.text_key,
        "source": plan.source,
        "inputs": [list(i) for i in plan.inputs],
        "worktree": _identity(worktree),
        "at": time.time(),
    }
    atomic_write_text(_stamp_path(ctx), json.dumps(data), mode=0o600)
