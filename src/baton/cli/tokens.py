"""``baton tokens create|ls|revoke`` (API tokens for ``baton serve``) and ``baton audit``.

A token's secret is printed once, at creation; the store keeps only its hash. Creating and revoking
are audited with the local user as the actor (the API audits the calling token's name instead).
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

import typer

from baton.cli.common import (
    JsonOpt,
    WideOpt,
    ago,
    cli_store,
    emit_json,
    err,
    esc,
    group,
    new_table,
    out,
    print_table,
)
from baton.cli.render import natural
from baton.models import iso

tokens_app = group("Create, list and revoke API tokens for `baton serve`.")
# The values of ``baton.service.records.TokenScope``, spelled here so building the CLI stays import-light.
ScopeName = Literal["read", "run", "admin"]


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option("--name", "-n", help="a unique name; the audit log shows it")],
    scope: Annotated[ScopeName, typer.Option(help="read: GETs; run: + submit/cancel; admin: + the rest")],
    max_usd: Annotated[float | None, typer.Option(help="USD the runs it submits may spend together")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="input+output tokens they may use together")] = None,
    max_minutes: Annotated[float | None, typer.Option(help="wall-clock minutes they may run")] = None,
    max_turns: Annotated[int | None, typer.Option(help="turns they may have together")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a token and print its secret (shown once: store it now). --max-usd (--max-tokens,
    --max-minutes, --max-turns): past it, each run it submits parks (`baton budget --token` raises it)."""
    # lazy: cold CLI
    from baton.caps.model import Caps, Measure, check_cap
    from baton.service.auth import issue_token
    from baton.service.records import TokenScope

    given = {Measure.USD: max_usd, Measure.TOKENS: max_tokens, Measure.MINUTES: max_minutes}
    given[Measure.TURNS] = max_turns
    caps = Caps(**{m.value: check_cap(m, v, f"--max-{m.value}") for m, v in given.items()})  # before a write
    with cli_store() as (_settings, store):
        secret = issue_token(store, name, TokenScope(scope), caps=caps)
    if as_json:
        emit_json({"name": name, "scope": scope, "token": secret})
        return
    out().print(secret, markup=False, highlight=False)
    err().print(esc(f"token {name!r} ({scope}) created; it is shown only this once"), highlight=False)


@tokens_app.command("ls")
def tokens_ls(as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """List tokens: name, scope, created, revoked (never the secrets)."""
    # lazy: cold CLI
    from baton.service.tables import token_store  # (SQLAlchemy: only once a store is opened)

    with cli_store() as (_settings, store):
        rows = token_store(store).list_tokens()
    if as_json:
        emit_json([t.to_json() for t in rows])
        return
    table = new_table("name", "scope", "created", "revoked")
    for t in rows:
        table.add_row(*map(esc, (t.name, t.scope.value, ago(t.created_at), ago(t.revoked_at))))
    print_table(table, wide)


@tokens_app.command("revoke")
def tokens_revoke(name: Annotated[str, typer.Argument(help="the token's name")]) -> None:
    """Revoke a token: every request with it is refused (401) from now on. Exit 2 for an unknown name."""
    # lazy: cold CLI
    from baton.service.auth import revoke_token

    with cli_store() as (_settings, store):
        token = revoke_token(store, name)
    out().print(esc(f"token {name!r} revoked ({ago(token.revoked_at)})"), highlight=False)


def audit_cmd(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="newest entries to show")] = 50,
    as_json: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """Show the audit log, newest first: resets, tokens, sweeps, webhook cleanups, with their actors."""

    with cli_store() as (_settings, store):
        rows = store.list_audit(limit)
    if as_json:
        emit_json([{**r, "at": iso(r["at"])} for r in rows])
        return
    whole = natural(wide)  # a terminal without --wide: the detail's first 60 characters
    table = new_table("when", "actor", "action", "key", "detail")
    for r in rows:
        detail = json.dumps(r["detail"], separators=(",", ":"))
        detail = detail if whole or len(detail) <= 60 else detail[:59] + "…"
        table.add_row(*map(esc, (ago(r["at"]), r["actor"], r["action"], r["key"], detail)))
    print_table(table, wide)
