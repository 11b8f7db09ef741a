"""The shell of the ``baton`` Typer app: its settings, its group class and its callback
(``--version``), without commands. :mod:`baton.cli.app` fills it with every command; ``baton run``
gets one with that command alone (:func:`run_app`): the other command modules are not imported and
Click builds one command instead of every one (about 28 ms of a cold ``baton run``), with
the same help, usage and errors for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup

from baton.cli.common import EXIT_CODES

if TYPE_CHECKING:
    from typer._click import Context, HelpFormatter  # Typer's own copy of Click

EPILOG = "Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()) + "."


class Group(TyperGroup):
    """A command group whose help lists each command with its first sentence whole: Click cuts it to
    the room left on an 80-column line (``Queue one instruction on one key for `baton worker`s
    and...``); here it wraps onto the next lines instead."""

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=WHOLE)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


WHOLE = 10_000  # characters: more than any first sentence


def make_app() -> typer.Typer:
    """The app without commands."""
    shell = typer.Typer(
        cls=Group,
        help="Durable conversations and durable workdirs for coding agents.",
        epilog=EPILOG,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        # Click's plain help: Typer's Rich help costs ~80 ms of imports on every `--help` and renders
        # boolean flags as `--json <bool>` (a Typer 0.29 bug); the plain help has neither problem.
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    shell.callback()(_main)
    return shell


def _version(value: bool) -> None:
    if value:
        # lazy: cold CLI
        from importlib.metadata import version

        typer.echo(f"baton {version('agent-baton')}")
        raise typer.Exit(0)


def _main(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Durable conversations and durable workdirs for coding agents."""


def run_app() -> typer.Typer:
    """The app with ``run`` alone, registered as :mod:`baton.cli.app` registers it."""
    # lazy: cold CLI
    from baton.cli.run import run_cmd

    shell = make_app()
    shell.command("run", epilog=EPILOG)(run_cmd)
    return shell
