"""Preparing a key's environment before its agent's turn: the repository's setup
(:func:`baton.environment.discover.discover`) runs when needed only. The key's stamp (``setup.json`` in
its space, out of the agent's reach) holds the preparation key of its last successful setup and the
worktree it ran in; the same key skips it. A key's first setup takes the shared preparation of its inputs
(:mod:`baton.runner.sharedsetup`: run once per repository and inputs, its results copied in); what its
branch changed beyond that, and every later change, runs in its own worktree
(:mod:`baton.runner.setuprun`): changed lock files alone run the maintenance when the plan has one. A
failure is the turn's end (:func:`record_failed`), said with the tail of its output; the next turn
tries again.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baton import environment
from baton.environment import results, setuplog
from baton.environment.discover import Unreadable, discover
from baton.environment.plan import SetupPlan
from baton.environment.testcmd import test_command
from baton.errors import BatonError
from baton.files import atomic_write_text
from baton.keys import Key
from baton.models import Access, Outcome, RunRecord
from baton.runner import setupundo
from baton.runner.attempt import record_unstarted
from baton.runner.setuprun import key_room, run_all
from baton.runner.sharedsetup import plan_stamp, share, swap
from baton.runner.state import Context, Prepared
from baton.settings import Settings
from baton.workspace import excluded, keyspace
from baton.workspace.gitcmd import WorktreeGit

STAMP = "setup.json"  # in the key's space, beside its home and temp dir


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
        image = prepared.container.identity if prepared.container is not None else None
        plan = discover(prepared.worktree, ctx.request.setup, image)
    except Unreadable as exc:
        return Setup("environment: the repository's setup cannot be used", error=f"environment: {exc}")
    if plan is None:
        return Setup()
    stamp = _stamp(ctx, prepared.worktree)
    if stamp.get("key") == plan.key:
        return Setup()
    log = setuplog.path_of(ctx.settings.home / "logs", ctx.run_id)
    said = f"environment: setup from {plan.summary()} ({plan.why}; {_why(plan, stamp)})"
    shared = share(ctx, prepared, plan, log) if not stamp else swap(ctx, prepared, plan, stamp)
    if shared.error is not None:
        outcome, error = shared.error
        return Setup(f"{said} did not succeed", error=error, outcome=outcome, log=log)
    if shared.stamp:
        _write_stamp(ctx, prepared.worktree, shared.stamp)
        if shared.stamp["key"] == plan.key:
            return Setup(f"{said}: {shared.note}", _block(plan, "setup", prepared.worktree), log=log)
        stamp = shared.stamp  # what the key's branch changed beyond its commit: run here, below
    return _own(ctx, prepared, plan, stamp, log, shared.note)


def _own(
    ctx: Context, prepared: Prepared, plan: SetupPlan, stamp: dict[str, Any], log: Path, before: str
) -> Setup:
    """The key's setup, or its maintenance when only the inputs changed, run in its own worktree;
    ``before``: what was shared with it first (its commit's preparation)."""
    maintain = bool(plan.maintenance) and stamp.get("text_key") == plan.text_key
    what, why = ("maintenance", _changed(plan, stamp)) if maintain else ("setup", _why(plan, stamp))
    started = time.monotonic()
    commands = plan.maintenance if maintain else plan.commands
    had = _untracked(ctx, prepared.worktree)
    wt = ctx.workdirs.worktree_git(ctx.key)
    was = setupundo.before(wt) if wt is not None else None
    failed = run_all(ctx, key_room(ctx, prepared), plan, commands, log)
    took = f"{time.monotonic() - started:.1f} s"
    said = (
        f"environment: {before + '; then ' if before else ''}{what} from {plan.summary(maintain)} "
        f"({plan.why}; {why})"
    )
    undone = _undo(wt, was)
    said += f" ({undone})" if undone else ""
    if failed is not None:
        outcome, error = failed
        if outcome == Outcome.FAILED and stamp.get("key"):  # a good environment to go on in
            return _went_on(plan, what, said, error, log)
        return Setup(f"{said} did not succeed", error=error, outcome=outcome, log=log)
    made = (_untracked(ctx, prepared.worktree) - had) | set(stamp.get("results") or [])
    _write_stamp(ctx, prepared.worktree, {**plan_stamp(plan), "results": sorted(made)})
    return Setup(f"{said} ran in {took}", _block(plan, what, prepared.worktree), log=log)


WENT_ON = "the turn went on in the key's last good environment"


def _went_on(plan: SetupPlan, what: str, said: str, error: str, log: Path) -> Setup:
    """A setup or maintenance that failed on a key whose last one succeeded: the turn goes on in the
    environment that one made, the agent told at the top of its prompt what failed and how (it may be
    what it broke: a dependency it added), so a thread never wedges behind its own setup. The stamp is
    kept, so its next turn runs it again."""
    found = environment.parse(error)
    how = found.what if found is not None else error
    tail = f" Its output's last lines:\n{found.tail}\n" if found is not None and found.tail else " "
    text = (
        f"Before this turn, baton ran the repository's {what} ({how}) and it FAILED, so your working "
        f"directory still has the environment its last successful setup made.{tail}If your changes "
        f"caused this (a dependency you added, a lock file or a setup script you edited), fix them: baton "
        f"runs the {what} again before your next turn."
    )
    note = f"{said} did not succeed ({how}): {WENT_ON}, the agent told"
    return Setup(note, text, log=log)


def _undo(wt: WorktreeGit | None, was: setupundo.Before | None) -> str | None:
    """What the setup changed of the worktree's commit, HEAD and tracked files, put back; said."""
    if wt is None or was is None:
        return None
    try:
        return setupundo.undo(wt, was)
    except BatonError as exc:
        return f"its changes to the worktree's git could not all be undone: {exc}"


def setup_results(settings: Settings, key: Key, worktree: Path) -> list[str]:
    """What the key's setups made in ``worktree`` that its commit did not track (``.venv``,
    ``node_modules``, build directories), from its stamp: the environment, never the agent's work, so
    a forge's commit leaves them out. None when the stamp is another worktree's."""
    found = _read_stamp(keyspace.key_dir(settings, key) / STAMP, worktree).get("results")
    return [str(p) for p in found] if isinstance(found, list) else []


def _untracked(ctx: Context, worktree: Path) -> set[str]:
    """The worktree's paths its HEAD does not track, each as high up as possible; none when unknown."""
    commit = ctx.workdirs.head_commit(ctx.key)
    if commit is None:
        return set()
    try:
        return set(results.find(worktree, results.tracked(ctx.workdirs.cache_path(ctx.key.repo), commit)))
    except (BatonError, OSError):
        return set()


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


def _stamp_path(ctx: Context) -> Path:
    return keyspace.key_dir(ctx.settings, ctx.key) / STAMP


def _identity(worktree: Path) -> list[int]:
    """The worktree's directory as the kernel knows it: a worktree made again is another one."""
    st = os.stat(worktree)
    return [st.st_dev, st.st_ino]


def _stamp(ctx: Context, worktree: Path) -> dict[str, Any]:
    """The key's last successful setup, if it was in this worktree ({} otherwise)."""
    return _read_stamp(_stamp_path(ctx), worktree)


def _read_stamp(path: Path, worktree: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        here = _identity(worktree)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("worktree") == here else {}


def _write_stamp(ctx: Context, worktree: Path, plan: dict[str, Any]) -> None:
    """The key's stamp: the plan that prepared ``worktree`` (:func:`~baton.runner.sharedsetup.plan_stamp`)."""
    data = {**plan, "worktree": _identity(worktree), "at": time.time()}
    atomic_write_text(_stamp_path(ctx), json.dumps(data), mode=0o600)
    made = [str(p) for p in plan.get("results") or []]
    with contextlib.suppress(BatonError, OSError):  # kept out of git next time (checkpoints, git add -A)
        excluded.exclude(ctx.settings.home, ctx.workdirs.cache_path(ctx.key.repo), ctx.key.repo.slug, made)
