"""``baton sessions``: list, show, reset, export and import sessions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from baton.cli.common import AgentOpt, JsonOpt, RepoOpt, ThreadOpt, cli_store, emit_json, err, out
from baton.cli.runs import runs_table
from baton.errors import BadInput
from baton.models import iso
from baton.sessions import Scope, export_session, get_session, import_session, reset_session, resolve_key

sessions_app = typer.Typer(help="List, show, reset, export and import sessions.", no_args_is_help=True)


@sessions_app.command("ls")
def sessions_ls(
    agent: Annotated[str | None, typer.Option("--agent", "-a")] = None,
    repo: Annotated[str | None, typer.Option("--repo", "-r", help="slug")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List sessions, most recently used first."""
    with cli_store() as (_settings, store):
        rows = store.list_sessions(agent=agent, repo=repo)
    if as_json:
        emit_json([s.to_json() for s in rows])
        return
    table = Table(
        "agent", "repo", "thread", "session", "status", "attempts", "last outcome", "last used", "expires"
    )
    for s in rows:
        table.add_row(
            s.agent,
            s.repo,
            s.thread,
            (s.agent_session_id or "-")[:8],
            s.status.value,
            str(s.attempts),
            s.last_outcome.value if s.last_outcome else "-",
            iso(s.last_used_at),
            iso(s.expires_at),
        )
    out.print(table)


@sessions_app.command("show")
def sessions_show(agent: AgentOpt, repo: RepoOpt, thread: ThreadOpt, as_json: JsonOpt = False) -> None:
    """Show one session and its recent runs."""
    with cli_store() as (_settings, store):
        key = resolve_key(store, agent, repo, thread)
        session = get_session(store, key)
        runs = store.list_runs(key.agent, key.repo.slug, key.thread, limit=20)
    if as_json:
        emit_json({**session.to_json(), "runs": [r.to_json() for r in runs]})
        return
    for name, value in session.to_json().items():
        out.print(f"[bold]{name}[/bold]: {value}", highlight=False)
    runs_table(runs)


@sessions_app.command("reset")
def sessions_reset(
    agent: AgentOpt,
    repo: RepoOpt,
    thread: ThreadOpt,
    scope: Annotated[Scope, typer.Option(help="what to remove")] = Scope.CONVERSATION,
    as_json: JsonOpt = False,
) -> None:
    """Reset a key: its conversation, its worktree, or all of it (audited)."""
    with cli_store() as (settings, store):
        removed = reset_session(store, settings, resolve_key(store, agent, repo, thread), scope)
    if as_json:
        emit_json(removed)
    else:
        out.print(f"reset {removed['key']} ({scope.value}): {removed}", highlight=False)


@sessions_app.command("export")
def sessions_export(
    agent: AgentOpt,
    repo: RepoOpt,
    thread: ThreadOpt,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file (default stdout)")] = None,
) -> None:
    """Export a session (record, runs, transcript snapshot) as one JSON document."""
    with cli_store() as (_settings, store):
        document = export_session(store, resolve_key(store, agent, repo, thread))
    text = json.dumps(document)
    if output is None:
        sys.stdout.write(text + "\n")
    else:
        tmp = output.with_name(output.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(output)
        err.print(f"exported to {output}")


@sessions_app.command("import")
def sessions_import(
    file: Annotated[Path, typer.Argument(help="an export made by `baton sessions export`; - for stdin")],
    replace: Annotated[bool, typer.Option(help="overwrite an existing session of the same key")] = False,
) -> None:
    """Import an exported session; the next run resumes its conversation here."""
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
        document = json.loads(text)
    except OSError as exc:
        raise BadInput(f"cannot read {file}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise BadInput(f"{file} is not JSON: {exc}") from exc
    with cli_store() as (settings, store):
        session = import_session(store, settings, document, replace=replace)
    out.print(
        f"imported {session.agent}:{session.repo}:{session.thread} (session {session.agent_session_id})",
        highlight=False,
    )
