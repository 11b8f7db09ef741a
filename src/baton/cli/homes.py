"""``baton homes``: keep ~/.claude, ~/.codex, ~/.gemini on a persistent volume (for plain CLI use)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from baton.cli.common import JsonOpt, emit_json, esc, group, out
from baton.housekeeping import homes
from baton.settings import load_settings

homes_app = group("Keep ~/.claude, ~/.codex, ~/.gemini on a persistent volume.")
HomesDir = Annotated[
    Path | None, typer.Option("--to", help="persistent directory (default $BATON_HOME/user-homes)")
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="show what would happen, change nothing")]


def _print_actions(actions: list[homes.Action], as_json: bool, dry_run: bool) -> None:
    if as_json:
        emit_json(homes.to_json(actions))
        return
    for a in actions:
        extra = f" (backup {a.backup})" if a.backup else ""
        out().print(esc(f"{a.name:13} {a.action:18} {a.source} -> {a.target}{extra}"), highlight=False)
    if dry_run:  # the lines above read as done: say they were not
        out().print("dry run: nothing was changed; without --dry-run these are done", highlight=False)


@homes_app.command("link")
def homes_link(to: HomesDir = None, dry_run: DryRun = False, as_json: JsonOpt = False) -> None:
    """Make the agent homes symlinks into a persistent directory, moving what is there (never deleting)."""
    actions = homes.link(to or load_settings().home / "user-homes", dry_run=dry_run)
    _print_actions(actions, as_json, dry_run)
    raise typer.Exit(1 if any(a.action == "blocked" for a in actions) else 0)


@homes_app.command("unlink")
def homes_unlink(to: HomesDir = None, dry_run: DryRun = False, as_json: JsonOpt = False) -> None:
    """Undo `homes link`: remove the symlinks and put the original directories back."""
    actions = homes.unlink(to or load_settings().home / "user-homes", dry_run=dry_run)
    _print_actions(actions, as_json, dry_run)
