"""``baton sessions``: list, show, reset, export and import sessions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from baton.cli.common import (
    REPO_FILTER,
    AgentOpt,
    JsonOpt,
    RepoOpt,
    ThreadOpt,
    WideOpt,
    ago,
    cli_store,
    emit_json,
    err,
    esc,
    group,
    new_table,
    out,
    print_fields,
    print_table,
)
from baton.cli.listing import list_sessions_page, page_limit
from baton.cli.render import say
from baton.cli.runs import AllOpt, LimitOpt, runs_table
from baton.errors import BadInput
from baton.files import atomic_write_text
from baton.settings import format_size

sessions_app = group("List, show, reset, export and import sessions.")
# The values of ``baton.sessions.manage.Scope``, spelled here so building the CLI does not import the
# session layer (and SQLAlchemy with it); a test keeps the two equal.
ScopeName = Literal["conversation", "worktree", "all"]


@sessions_app.command("ls")
def sessions_ls(
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="only this agent's sessions")] = None,
    repo: Annotated[str | None, typer.Option("--repo", "-r", help=REPO_FILTER)] = None,
    limit: LimitOpt = None,
    every: AllOpt = False,
    as_json: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """List sessions, most recently used first: the first 30 unless --limit N or --all (a line on
    stderr says how many more there are)."""
    # lazy: cold CLI
    from baton.keys import repo_slug

    shown = page_limit(limit, every)
    with cli_store() as (_settings, store):
        list_sessions_page(store, agent, repo and repo_slug(store, repo), shown, as_json, wide)


@sessions_app.command("show")
def sessions_show(
    agent: AgentOpt, repo: RepoOpt, thread: ThreadOpt, as_json: JsonOpt = False, wide: WideOpt = False
) -> None:
    """Show one session, its lineage (forks, hand-offs, stacking), its forge thread when it is bound
    to an issue or PR, and its recent runs."""
    # lazy: cold CLI
    from baton.asking.pending import waiting
    from baton.forge.turn.threads import forge_settings, key_state
    from baton.sessions.lineage import lineage
    from baton.sessions.manage import get_session, resolve_key

    with cli_store() as (settings, store):
        key = resolve_key(store, agent, repo, thread)
        session = get_session(store, key)
        runs = store.list_runs(key.agent, key.repo.slug, key.thread, limit=20)
        family = lineage(store, session)
        forge = key_state(
            store, key.agent, key.repo.slug, key.thread, forge_settings(settings.home), last=FORGE_EVENTS
        )
        asked = waiting(store, key.agent, key.repo.slug, key.thread)
        question = asked.to_json() if asked else None
        recorded = store.get_instructions(key.agent, key.repo.slug, key.thread)
        instructions = recorded.summary() if recorded else None
        if as_json:
            runs_json = [r.to_json() for r in runs]
            emit_json(
                {
                    **session.to_json(),
                    "lineage": family,
                    "forge": forge,
                    "question": question,
                    "instructions": instructions,
                    "runs": runs_json,
                }
            )
            return
        print_fields({k: v for k, v in session.to_json().items() if k not in ("origin", "pending_sync")})
        if asked is not None:
            say(f"waiting for an answer (baton answer) to: {asked.question.shown()}")
        _print_lineage(family)
        if instructions is not None:
            _print_instructions(instructions, session.agent_session_id)
        if forge is not None:
            _print_forge(forge)
        runs_table(store, runs, wide)


FORGE_EVENTS = 10  # the newest feedback events ``sessions show`` prints


def _print_forge(state: dict[str, Any]) -> None:
    """The forge conversation the key is bound to: status (and why it needs a human), issue and PR,
    budget, and the newest feedback events (who sent them, what became of them). No comment text."""
    b, links, budget = state["binding"], state["links"], state["budget"]
    console = out()
    console.print(f"[bold]forge[/bold]: {esc(b['conversation'])} ({esc(b['status'])})", highlight=False)
    lines = []
    if b.get("note"):
        lines.append(f"note: {b['note']}")
    if links.get("issue"):
        lines.append(f"issue #{b['number']}: {links['issue']}")
    if b.get("pr"):
        lines.append(f"PR #{b['pr']}: {links.get('pr') or '(forge not configured here)'}")
    day = f" of {budget['per_day']}" if budget["per_day"] is not None else ""
    lines.append(f"turns today: {budget['turns_today']}{day}")
    for failure in budget["failures"]:
        limit = f" of {budget['per_failure']}" if budget["per_failure"] is not None else ""
        checks = ", ".join(failure["checks"]) or failure["signature"][:12]
        lines.append(f"CI failure ({checks}): {failure['spent']} turn(s){limit}")
    for line in lines:
        console.print(f"  {esc(line)}", highlight=False)
    if not state["events"]:
        return
    shown, total = len(state["events"]), state["events_total"]
    title = f"feedback events (the last {shown} of {total})" if total > shown else "feedback events"
    table = new_table("at", "kind", "by", "status", "run", "why", title=title)
    for e in state["events"]:
        row = (ago(e["at"]), e["kind"], e["actor"] or "-", e["status"], e["run_id"] or "-", e["reason"] or "")
        table.add_row(*map(esc, row))
    print_table(table, False)


def _print_lineage(family: dict[str, Any]) -> None:
    """Which conversation came from which, one line each."""
    lines = [f"from: {_link(link)}" for link in family["from"]]
    lines += [f"to: {_link(link)}" for link in family["to"]]
    if family["stacked_on"]:
        lines.append(f"stacked on thread: {family['stacked_on']}")
    if family["stacked_below"]:
        lines.append(f"stacked below it: {', '.join(family['stacked_below'])}")
    lines += [_conversation(c) for c in family["conversations"]]
    lines += [
        f"quarantined {q['session_id']} ({ago(q['quarantined_at'])}): its resume failed at once "
        f"{q['strikes']} times in a row (last, run {q['run_id']}: {q['why']}); never resumed again"
        for q in family["quarantined"]
    ]
    if not lines:
        return
    out().print("[bold]lineage[/bold]:", highlight=False)
    for line in lines:
        out().print(f"  {esc(line)}", highlight=False)


def _conversation(c: dict[str, Any]) -> str:
    """One conversation of the key: how and when it began, after which and why, what it held."""
    line = f"conversation {c['session_id']}: began {c['began']} ({ago(c['at'])})"
    if c.get("after"):
        line += f" after {c['after']}" + (f" ({c['why']})" if c.get("why") else "")
    held = c.get("held")
    if held:
        line += f", held {held['tokens']}" + (
            f" of {held['window']} tokens" if held.get("window") else " tokens"
        )
    if c.get("compacted"):
        times = "once" if c["compacted"] == 1 else f"{c['compacted']} times"
        line += f", compacted in place {times}"
    return line


def _print_instructions(recorded: dict[str, Any], session_id: str | None) -> None:
    """The agent's instruction files as the conversation last saw them: one line each, no text."""
    whose = "" if recorded["session_id"] == session_id else f", for conversation {recorded['session_id']}"
    files = recorded["files"]
    out().print(f"[bold]instructions[/bold] (recorded {esc(str(recorded['recorded_at']))}{esc(whose)}):")
    if not files:
        out().print("  (no instruction files in the worktree)", highlight=False)
    for path, entry in files.items():
        digest = f" sha256 {entry['sha256'][:12]}" if entry.get("sha256") else ""
        line = f"{path}: {entry.get('kind')}, {format_size(entry.get('size'))}{digest}"
        out().print(f"  {esc(line)}", highlight=False)


def _link(link: dict[str, Any]) -> str:
    ident = f" (conversation {link['session_id']})" if link.get("session_id") else ""
    return f"{link['kind']} {link['agent']}/{link['thread']}{ident}"


@sessions_app.command("reset")
def sessions_reset(
    agent: AgentOpt,
    repo: RepoOpt,
    thread: ThreadOpt,
    scope: Annotated[ScopeName, typer.Option(help="what to remove")] = "conversation",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Reset a key: its conversation, its worktree, or all of it. What it removes is archived first (the
    worktree under a git ref, the conversation as an export file); it asks first, and is audited."""
    # lazy: cold CLI
    from baton.sessions.manage import Scope, get_session, reset_session, resolve_key

    with cli_store() as (settings, store):
        key = resolve_key(store, agent, repo, thread)
        get_session(store, key)  # an unknown key fails before the question
        _confirm_reset(str(key), scope, yes)
        result = reset_session(store, settings, key, Scope(scope))
    if as_json:
        emit_json(result.to_json())
    else:
        out().print(esc(result.describe()), highlight=False)


_RESET_REMOVES = {
    "conversation": "its conversation (transcript and snapshot)",
    "worktree": "its worktree, branch and checkpoint",
    "all": "its conversation, worktree, branch, runs and logs",
}


def _confirm_reset(key: str, scope: str, yes: bool) -> None:
    """Ask on a terminal; without one, a script must say --yes (a reset is never implied)."""
    if yes:
        return
    what = _RESET_REMOVES[scope]
    if not sys.stdin.isatty():
        raise BadInput(f"a reset of {key} removes {what}: pass --yes to confirm (stdin is not a terminal)")
    if not typer.confirm(f"Reset {key}: remove {what}? It is archived first.", default=False, err=True):
        err().print("Nothing was reset.")
        raise typer.Exit(1)


@sessions_app.command("export")
def sessions_export(
    agent: AgentOpt,
    repo: RepoOpt,
    thread: ThreadOpt,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file (default stdout)")] = None,
) -> None:
    """Export a session (record, runs, transcript snapshot) as one JSON document."""
    # lazy: cold CLI
    from baton.sessions.manage import export_session, resolve_key

    with cli_store() as (_settings, store):
        document = export_session(store, resolve_key(store, agent, repo, thread))
    text = json.dumps(document)
    if output is None:
        sys.stdout.write(text + "\n")
    else:
        atomic_write_text(output, text)
        err().print(f"exported to {esc(output)}", highlight=False)


@sessions_app.command("import")
def sessions_import(
    file: Annotated[Path, typer.Argument(help="an export made by `baton sessions export`; - for stdin")],
    replace: Annotated[bool, typer.Option(help="overwrite an existing session of the same key")] = False,
) -> None:
    """Import an exported session; the next run resumes its conversation here."""
    # lazy: cold CLI
    from baton.sessions.manage import import_session

    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
        document = json.loads(text)
    except OSError as exc:
        raise BadInput(f"cannot read {file}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise BadInput(f"{file} is not JSON: {exc}") from exc
    with cli_store() as (settings, store):
        session = import_session(store, settings, document, replace=replace)
    out().print(
        esc(f"imported {session.agent}:{session.repo}:{session.thread} (session {session.agent_session_id})"),
        highlight=False,
    )
