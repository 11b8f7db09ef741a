"""What every ``baton`` command shares: option types, exit codes, and the settings + store a command
works with (a run request's options are :mod:`baton.cli.options`); the consoles, tables and JSON output
come from :mod:`baton.cli.render` and are re-exported here.

Import-light on purpose: ``baton --help`` loads this module, so Rich, the settings and the store are
imported only when a command first uses them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from baton.cli.options import key_option
from baton.cli.render import ago, emit_json, err, esc, field_text, new_table, out, print_fields, print_table
from baton.settings import FORGE_CONFIG_ENV, load_settings, read_config

if TYPE_CHECKING:
    from baton.runner.request import RunRequest
    from baton.settings import Settings
    from baton.store import Store

__all__ = [
    "EXIT_CODES",
    "ago",
    "cli_store",
    "emit_json",
    "err",
    "esc",
    "field_text",
    "group",
    "new_table",
    "out",
    "print_fields",
    "print_table",
]

EXIT_CODES = {
    0: "succeeded",
    1: "the agent failed or timed out, or the disk is full",
    2: "bad input (nothing was written)",
    3: "busy: another run holds the key",
    4: "a git remote is unreachable (network or credentials)",
    5: "syncing with upstream conflicted, or the key's worktree cannot take back a branch another key"
    " wrote: the agent did not run, the worktree is as it was",
    6: "baton serve cannot listen: its port is in use or not allowed",
    7: "the thread waits on a person (needs_input): the agent asked a question (`baton answer` answers it),"
    " or it is at a spending cap (`baton budget` raises it)",
    75: "a usage quota is spent: the run met it (rate_limited), or its credential's breaker holds (nothing"
    " was started); the message says when it resets",
    130: "cancelled (Ctrl-C or SIGTERM)",
}

# a key's options, as the run request defines them (every command that names a key takes them)
AgentOpt = Annotated[str, key_option("agent")]
RepoOpt = Annotated[str, key_option("repo")]
ThreadOpt = Annotated[str, key_option("thread")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]

REPO_FILTER = "a repository: its URL, its local path or its slug (as tables show it)"
WideOpt = Annotated[
    bool, typer.Option("--wide", "-w", help="every column, one line a row, no cell wrapped (as in a pipe)")
]


def repository_egress(settings: Settings, request: RunRequest) -> None:
    """A run that asks for no ``egress`` of its own gets the one a ``[repo."…"]`` table gives its
    repository, as that repository's forge turns do (the forge's tables are read only when there are
    some: a cold ``baton run`` stays cold)."""
    if request.egress is not None:
        return
    if not (read_config(settings.home / "config.toml").data.get("repo") or os.environ.get(FORGE_CONFIG_ENV)):
        return
    # lazy: cold CLI
    from baton.forge.kinds.configured import repo_egress

    request.egress = repo_egress(settings.home, request.repo)


@contextmanager
def cli_store() -> Iterator[tuple[Settings, Store]]:
    # lazy: cold CLI
    from baton.store import store_for

    settings = load_settings()
    store = store_for(settings)
    try:
        yield settings, store
    finally:
        store.close()


def group(help: str) -> typer.Typer:
    """A command group, with the settings every group shares (plain Click help: see ``app.py``)."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None)
