"""``baton plan``: run a plan file (live progress, one line per task), show one plan, list plans."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table

from baton.cli.common import JsonOpt, cli_store, emit_json, err, out
from baton.errors import NotFound
from baton.models import PlanRecord, TaskStatus
from baton.plan_file import load_plan
from baton.plans import run_plan

plan_app = typer.Typer(help="Run ordered tasks as turns of one conversation.", no_args_is_help=True)
MARKS = {
    TaskStatus.PENDING: "[dim]·[/dim]",
    TaskStatus.RUNNING: "[yellow]▶[/yellow]",
    TaskStatus.SUCCEEDED: "[green]✓[/green]",
    TaskStatus.FAILED: "[red]✗[/red]",
    TaskStatus.SKIPPED: "[dim]-[/dim]",
}


def plan_table(record: PlanRecord, current: str | None = None) -> Table:
    table = Table(
        title=f"plan {record.id} ({record.agent}, {record.repo}) — {record.status}", title_justify="left"
    )
    for column in ("", "task", "status", "run", "result"):
        table.add_column(column, overflow="fold")
    for task in record.tasks:
        style = "bold reverse" if task.id == current else ""
        text = (task.result or task.error or "").replace("\n", " ")
        table.add_row(
            MARKS[task.status], task.id, task.status.value, (task.run_id or "")[-8:], text[:80], style=style
        )
    return table


@plan_app.command("run")
def plan_run(
    file: Annotated[Path, typer.Argument(help="the plan file (YAML)")],
    from_task: Annotated[str | None, typer.Option("--from", help="re-run from this task on")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a plan's unfinished tasks in one conversation; re-run it to continue after an interruption."""
    plan = load_plan(file)
    with cli_store() as (settings, store):
        if as_json or not out.is_terminal:
            result = run_plan(plan, settings, store, from_task=from_task)
        else:
            with Live(console=out, auto_refresh=False) as live:

                def show(record: PlanRecord, current: str | None) -> None:
                    live.update(plan_table(record, current), refresh=True)

                result = run_plan(plan, settings, store, from_task=from_task, on_progress=show)
    record = result.record
    if as_json:
        emit_json(record.to_json())
    else:
        if not out.is_terminal:
            out.print(plan_table(record))
        done = sum(t.status == TaskStatus.SUCCEEDED for t in record.tasks)
        summary = f"{done}/{len(record.tasks)} tasks succeeded; session {record.session_id}"
        (out if result.ok else err).print(f"plan {record.id} {record.status}: {summary}", highlight=False)
    raise typer.Exit(0 if result.ok else 1)


@plan_app.command("show")
def plan_show(plan_id: str, as_json: JsonOpt = False) -> None:
    """Show a plan's progress, task by task."""
    with cli_store() as (_settings, store):
        record = store.get_plan(plan_id)
    if record is None:
        raise NotFound(f"no plan {plan_id!r}")
    if as_json:
        emit_json(record.to_json())
    else:
        out.print(plan_table(record))


@plan_app.command("ls")
def plan_ls(as_json: JsonOpt = False) -> None:
    """List plans, most recently updated first."""
    with cli_store() as (_settings, store):
        records = store.list_plans()
    if as_json:
        emit_json([r.to_json() for r in records])
        return
    table = Table("plan", "agent", "repo", "status", "tasks done", "session")
    for r in records:
        done = sum(t.status == TaskStatus.SUCCEEDED for t in r.tasks)
        table.add_row(r.id, r.agent, r.repo, r.status, f"{done}/{len(r.tasks)}", (r.session_id or "-")[:8])
    out.print(table)
