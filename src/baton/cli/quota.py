"""``baton quota``: each credential's usage-quota breaker, and ``baton quota clear`` to close one.

A breaker trips when a run of its credential meets a spent quota; while it holds, no run of that
credential starts (they exit 75 and say when it resets). ``clear`` closes one by hand, for a person who
knows the quota was raised; it is audited with the local user as the actor. The logic is
:mod:`baton.housekeeping.quotas`.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from baton.cli.common import JsonOpt, WideOpt, cli_store, emit_json, esc, new_table, out, print_table

quota_app = typer.Typer(
    help="Each credential's usage-quota breaker: spent or not, when it resets; clear one by hand.",
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
)
Credential = Annotated[
    str,
    typer.Argument(help="the credential's label as `baton quota` shows it, or its hash; a prefix will do"),
]


@quota_app.callback()
def quota_main(ctx: typer.Context, as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """List every credential's breaker (as `baton quota ls`), or clear one."""
    if ctx.invoked_subcommand is None:
        quota_ls(as_json, wide)


@quota_app.command("ls")
def quota_ls(as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """List every credential's breaker: label, agent, state, when it resets, refusals in a row, detail."""
    # lazy: cold CLI
    from baton.housekeeping.quotas import quota_views

    now = time.time()
    with cli_store() as (_settings, store):
        views = quota_views(store, now)
    if as_json:
        emit_json([v.to_json() for v in views])
        return
    if not views:
        out().print("no credential has met a usage limit", highlight=False)
        return
    table = new_table("credential", "agent", "state", "resets", "refusals", "detail")
    for v in views:
        r = v.record
        cells = [r.label, r.agent, v.state, v.resets(now), str(r.refusals), r.detail or "-"]
        table.add_row(*map(esc, cells))
    print_table(table, wide)


@quota_app.command("clear")
def quota_clear(credential: Credential, as_json: JsonOpt = False) -> None:
    """Close a credential's breaker by hand (its quota was raised): its runs start again at once.
    Audited. Exit 2 when nothing or several match."""
    # lazy: cold CLI
    from baton.housekeeping.quotas import clear_breaker
    from baton.sessions.manage import local_actor

    with cli_store() as (_settings, store):
        cleared = clear_breaker(store, credential, local_actor())
    if as_json:
        emit_json(cleared.to_json())
        return
    label = cleared.after.record.label
    if cleared.closed:
        said = f"breaker of {label} cleared (it was {cleared.before.state}): its runs start again"
    else:
        said = f"breaker of {label} was not tripped: nothing to clear (audited all the same)"
    out().print(esc(said), highlight=False)
