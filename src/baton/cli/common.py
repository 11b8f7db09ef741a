"""What every ``baton`` command shares: the consoles, option types, JSON output, exit codes, and the
settings + store a command works with.

Import-light on purpose: ``baton --help`` loads this module, so Rich, the settings and the store are
imported only when a command first uses them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from baton.models import Mode, OnConflict, SyncHow

if TYPE_CHECKING:
    from rich.console import Console

    from baton.settings import Settings
    from baton.store import Store

EXIT_CODES = {
    0: "succeeded",
    1: "the agent failed or timed out, or the disk is full",
    2: "bad input (nothing was written)",
    3: "busy: another run holds the key",
    4: "a git remote is unreachable (network or credentials)",
    5: "syncing with upstream conflicted: the agent did not run, the worktree is as it was",
    130: "cancelled (Ctrl-C or SIGTERM)",
}

AgentOpt = Annotated[str, typer.Option("--agent", "-a", help="claude, codex, gemini (or fake, for tests)")]
RepoOpt = Annotated[str, typer.Option("--repo", "-r", help="git URL, local path, or a stored slug")]
ThreadOpt = Annotated[str, typer.Option("--thread", "-t", help="unit of work, e.g. issue-42")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]

# the options `baton run` and `baton submit` share (one request, run here or queued for a worker)
PromptArg = Annotated[str | None, typer.Argument(help="the instruction")]
PromptFileOpt = Annotated[Path | None, typer.Option("--prompt-file", help="read the instruction from a file")]
BranchOpt = Annotated[str | None, typer.Option(help="branch for a new worktree (default baton/AGENT/THREAD)")]
BaseOpt = Annotated[str | None, typer.Option(help="start a new worktree from this ref (default branch)")]
ModeOpt = Annotated[Mode, typer.Option(help="auto picks fresh/resume/recover")]
ForkFromOpt = Annotated[str | None, typer.Option(help="with --mode fork: branch from this thread")]
SyncOpt = Annotated[
    SyncHow | None,
    typer.Option(help="bring upstream changes in first (default: setting sync)"),
]
OnConflictOpt = Annotated[
    OnConflict | None,
    typer.Option(help="stop: outcome conflict, worktree untouched (default); agent: markers + a note"),
]
BaseThreadOpt = Annotated[str | None, typer.Option(help="a new thread's branch starts from this thread's")]
HandoffOpt = Annotated[
    str | None, typer.Option(help="start this agent's conversation with a recap of AGENT's on this key")
]
ContextOpt = Annotated[str | None, typer.Option(help="task context for the first prompt")]
TimeoutOpt = Annotated[float | None, typer.Option(help="kill the agent after S seconds")]
RetriesOpt = Annotated[int, typer.Option(help="retry failed or timed-out runs N times")]

WideOpt = Annotated[bool, typer.Option("--wide", "-w", help="all columns (the default fits 80 columns)")]


@cache
def out() -> Console:
    """The console for results (stdout)."""
    from rich.console import Console

    return Console(soft_wrap=True)


@cache
def err() -> Console:
    """The console for progress, warnings and errors (stderr)."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def esc(value: object) -> str:
    """``value`` as text Rich prints literally: ``[claude]`` stays ``[claude]``, never markup."""
    from rich.markup import escape

    return escape(str(value))


@contextmanager
def cli_store() -> Iterator[tuple[Settings, Store]]:
    from baton.settings import load_settings
    from baton.store import open_store

    settings = load_settings()
    store = open_store(settings.resolved_store_url)
    try:
        yield settings, store
    finally:
        store.close()


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def group(help: str) -> typer.Typer:
    """A command group, with the settings every group shares (plain Click help: see ``app.py``)."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None)


def ago(ts: float | None) -> str:
    """A timestamp as a short age for tables: ``12s ago``, ``5m ago``, ``in 29d``."""
    import time

    if not ts:
        return "-"
    delta = time.time() - ts
    span = abs(delta)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if span >= size or unit == "s":
            text = f"{int(span // size)}{unit}"
            break
    return f"{text} ago" if delta >= 0 else f"in {text}"
