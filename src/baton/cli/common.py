"""What every ``baton`` command shares: the consoles, option types, JSON output, exit codes, and the
settings + store a command works with (a run request's options are :mod:`baton.cli.options`).

Import-light on purpose: ``baton --help`` loads this module, so Rich, the settings and the store are
imported only when a command first uses them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any

import typer

from baton.cli.options import key_option

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from baton.settings import Settings
    from baton.store import Store

EXIT_CODES = {
    0: "succeeded",
    1: "the agent failed or timed out, or the disk is full",
    2: "bad input (nothing was written)",
    3: "busy: another run holds the key",
    4: "a git remote is unreachable (network or credentials)",
    5: "syncing with upstream conflicted: the agent did not run, the worktree is as it was",
    6: "baton serve cannot listen: its port is in use or not allowed",
    130: "cancelled (Ctrl-C or SIGTERM)",
}

# a key's options, as the run request defines them (every command that names a key takes them)
AgentOpt = Annotated[str, key_option("agent")]
RepoOpt = Annotated[str, key_option("repo")]
ThreadOpt = Annotated[str, key_option("thread")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]

REPO_FILTER = "a repository: its URL, its local path or its slug (as tables show it)"
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


def new_table(*columns: str, title: str | None = None) -> Table:
    """Every table the CLI prints, in one style: no box, two spaces between columns, a bold header
    (and a title above, left); a cell too long for its column wraps in it instead of being cut to
    ``…``. Print it with :func:`print_table`."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold", title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def print_table(table: Table, wide: bool = False) -> None:
    """Print a table at the terminal's width (80 columns in a pipe); with ``wide``, one line per row,
    as long as the row needs, so no cell is wrapped inside a word (``| less -S`` to scroll it)."""
    console = out()
    if not wide:
        console.print(table)
        return
    from rich.measure import Measurement

    natural = Measurement.get(console, console.options.update(max_width=1_000_000), table).maximum
    width = console.width
    console.width = max(natural, width)
    try:
        console.print(table)
    finally:
        console.width = width


def print_fields(data: dict[str, Any]) -> None:
    """A record as ``name: value`` lines for people (``--json`` gives it for scripts)."""
    for name, value in data.items():
        out().print(f"[bold]{esc(name)}[/bold]: {esc(field_text(value))}", highlight=False)


def field_text(value: Any) -> str:
    """A value as a person reads it, never a Python repr: ``-`` for none, ``yes``/``no``, a float to
    6 significant digits, ``a=1, b=2`` for a mapping (nested values as JSON), ``a, b`` for a list."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_flat(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(map(_flat, value)) or "-"
    return str(value)


def _flat(value: Any) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)


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
