"""``baton runs``: list runs, show one, read or follow its log.

Ids are shown in their short form (``baton.runner.runids``) and every command takes a full id, a prefix or
a short form.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from baton.agents import clean_error
from baton.cli.common import (
    REPO_FILTER,
    JsonOpt,
    WideOpt,
    ago,
    cli_store,
    emit_json,
    group,
    out,
    print_fields,
)
from baton.cli.listing import DEFAULT_LIMIT, emit_json_list, page_limit, say_more
from baton.cli.render import print_rows

if TYPE_CHECKING:
    from collections.abc import Iterable

    from baton.models import RunRecord
    from baton.store.base import Store

runs_app = group("List runs, show one, read or follow its log.")
LimitOpt = Annotated[
    int | None,
    typer.Option("--limit", "-L", help=f"show N rows (default {DEFAULT_LIMIT})", show_default=False),
]
AllOpt = Annotated[bool, typer.Option("--all", help="show every row (JSON is written as it is read)")]
RunId = Annotated[str, typer.Argument(help="a run id, a prefix of it, or the short id tables show")]


def runs_table(store: Store, runs: Iterable[RunRecord], wide: bool = False, attempts: bool = False) -> int:
    """Print attempts as a table: the columns that fit 80 by default, every column with ``wide``
    (one line a run, as in a pipe). The id column is the run's short id, with ``#N`` for a retry
    (``attempts``: the attempt's own id, for a run's list of its attempts). How many were printed.
    Only the cells are kept, not the records (``runs ls --all``), and the table is printed as
    :func:`~baton.cli.render.print_rows` prints one: Rich's layout of 100,000 rows took minutes."""
    # lazy: cold CLI
    from baton.runner.runids import short_ids

    ids: list[tuple[str, str]] = []  # (the id whose short form is shown, its #N suffix)
    rows: list[list[str]] = []
    for r in runs:
        secs = "-" if r.duration_s is None else f"{r.duration_s:.1f}"
        ids.append((r.id, "") if attempts else (r.run_id, f"#{r.attempt}" if r.attempt > 1 else ""))
        cells = [r.agent, r.thread, r.mode.value, r.outcome.value, ago(r.started_at), secs]
        if wide:
            cells[1:2] = [r.repo, r.thread, str(r.attempt)]
            cells.insert(5, r.prompt_kind.value)
        rows.append(cells)
    shown = short_ids(store, [i for i, _ in ids])
    for cells, (ident, suffix) in zip(rows, ids, strict=True):
        cells.insert(0, shown[ident] + suffix)
    columns = ["attempt" if attempts else "run", "agent", "thread", "mode", "outcome", "started", "secs"]
    if wide:
        columns[2:3] = ["repo", "thread", "try"]
        columns.insert(6, "prompt")
    print_rows(columns, rows, wide)
    return len(rows)


@runs_app.command("ls")
def runs_ls(
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="only this agent's runs")] = None,
    repo: Annotated[str | None, typer.Option("--repo", "-r", help=REPO_FILTER)] = None,
    thread: Annotated[str | None, typer.Option("--thread", "-t", help="only this thread's")] = None,
    limit: LimitOpt = None,
    every: AllOpt = False,
    as_json: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """List runs (each attempt), newest first: the last 30 unless --limit N or --all (a line on stderr
    says how many more there are)."""
    # lazy: cold CLI
    from baton.keys import repo_slug

    shown = page_limit(limit, every)
    with cli_store() as (_settings, store):
        slug = repo and repo_slug(store, repo)
        if shown is None:
            runs: Iterable[RunRecord] = store.iter_runs(agent, slug, thread)
        else:
            runs = store.list_runs(agent, slug, thread, limit=shown)
        count = emit_json_list(r.to_json() for r in runs) if as_json else runs_table(store, runs, wide)
        if shown is not None and count == shown:
            say_more(count, store.count_runs(agent, slug, thread), "runs", "newest first")


@runs_app.command("show")
def runs_show(run_id: RunId, as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """Show one run and its attempts (the id may be the run's or an attempt's, whole or short)."""
    # lazy: cold CLI
    from baton.runner.runids import resolve

    with cli_store() as (_settings, store):
        ref = resolve(store, run_id)
        data = ref.to_json(store)
        first = (
            ref.attempts[0].prompt if ref.attempts else (ref.job.request.get("prompt") if ref.job else None)
        )
        data["prompt"] = first  # the run's instruction, as its caller gave it
        if as_json:
            emit_json({**data, "attempts": [a.to_json() for a in ref.attempts]})
            return
        print_run(data)
        if ref.attempts:
            out().print("[bold]attempts[/bold]", highlight=False)
            runs_table(store, ref.attempts, wide=wide, attempts=True)


# the run's fields `runs show` prints, in this order (the attempts follow as a table)
SHOWN = (
    "status", "outcome", "agent", "repo", "thread", "prompt", "actor", "mode", "session_id", "branch",
    "worktree", "access", "confined", "cli_version", "submitted_at", "started_at", "ended_at", "duration_s",
    "cost_usd", "usage", "reaped", "left_running", "note", "sync", "warnings", "error", "result",
)  # fmt: skip


def print_run(data: dict[str, Any]) -> None:
    """A run as ``name: value`` lines (``print_fields``: ``-`` for none, never a repr); its error
    without the agent CLI's known noise lines (``--json`` keeps the stored text). No ``actor`` line
    for a run no one submitted (``baton run``: ``--json`` has ``"actor": ""``, as the API answers)."""
    shown = {"run": data["run_id"], **{name: data.get(name) for name in SHOWN}}
    if data.get("outcome") == "rate_limited":  # a state, not a failure: when it may go on
        shown = _with_reset(shown, data)
    if not shown["actor"]:
        del shown["actor"]
    if shown["error"]:
        shown["error"] = clean_error(data["agent"], shown["error"])
    print_fields(shown)


def _with_reset(shown: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """``shown`` with the quota's reset and kind right after the outcome of a ``rate_limited`` run."""
    resets = data.get("resets_at")
    if resets:
        # lazy: cold CLI
        from baton.runner.quota import when

        at = datetime.fromisoformat(resets).timestamp()
        resets = when(at, time.time()) if at > time.time() else f"{resets} (passed)"
    at_outcome = list(shown).index("outcome") + 1
    items = list(shown.items())
    items[at_outcome:at_outcome] = [("resets_at", resets), ("limit_kind", data.get("limit_kind"))]
    return dict(items)


@runs_app.command("logs")
def runs_logs(
    run_id: RunId,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the run ends")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="the agent's own JSON lines, unrendered")] = False,
) -> None:
    """Print a run's event log (assistant text, tool calls, results, errors), every attempt in turn
    (or only the attempt named by its id), optionally following it until the run ends."""
    # lazy: cold CLI
    from baton.cli.logs import print_run_log
    from baton.runner.runids import resolve

    with cli_store() as (_settings, store):
        print_run_log(store, resolve(store, run_id), follow=follow, raw=raw)
