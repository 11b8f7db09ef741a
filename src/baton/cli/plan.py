"""``baton plan``: run a plan file (live progress, one line per task), show one plan, list plans."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from baton.cli.common import JsonOpt, cli_store, emit_json, err, esc, group, new_table, out
from baton.models import Access, TaskStatus

if TYPE_CHECKING:
    from rich.table import Table

    from baton.models import PlanRecord
    from baton.store.base import Store

plan_app = group("Run ordered tasks as turns of one conversation.")
MARKS = {
    TaskStatus.PENDING: "[dim]·[/dim]",
    TaskStatus.RUNNING: "[yellow]▶[/yellow]",
    TaskStatus.SUCCEEDED: "[green]✓[/green]",
    TaskStatus.FAILED: "[red]✗[/red]",
    TaskStatus.SKIPPED: "[dim]-[/dim]",
}


def plan_table(store: Store, record: PlanRecord, current: str | None = None) -> Table:
    """The plan's tasks, one row each; run ids in the short form every command accepts."""
    from baton.runner.runids import short_ids

    shown = short_ids(store, [t.run_id for t in record.tasks if t.run_id])
    title = esc(f"plan {record.id} ({record.agent}, {record.repo}) — {record.status}")
    table = new_table("", "task", "status", "run", "result", title=title)
    for task in record.tasks:
        style = "bold reverse" if task.id == current else ""
        text = (task.result or task.error or "").replace("\n", " ")
        run = shown.get(task.run_id or "", "")
        table.add_row(
            MARKS[task.status], esc(task.id), task.status.value, esc(run), esc(text[:80]), style=style
        )
    return table


@plan_app.command("run")
def plan_run(
    file: Annotated[str, typer.Argument(help="the plan file (YAML; -: standard input)")],
    from_task: Annotated[str | None, typer.Option("--from", help="re-run from this task on")] = None,
    access: Annotated[
        Access | None,
        typer.Option(help="read, edit or full, for tasks without an access: of their own (default: setting)"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a plan's unfinished tasks in one conversation; re-run it to continue after an interruption.
    A relative repo: is read from the plan file's directory (from standard input: the current one)."""
    from rich.live import Live

    from baton.cli.inputs import STDIN, read_input
    from baton.plans.file import STDIN as FROM_STDIN
    from baton.plans.file import load_plan, parse_plan
    from baton.plans.runner import run_plan

    if file == STDIN:  # the plan's relative paths: the current directory's, as it has no file
        plan = parse_plan(read_input(file, "plan", "baton plan run"), FROM_STDIN, base=Path.cwd())
    else:
        plan = load_plan(Path(file))
    with cli_store() as (settings, store):
        if access is not None:
            settings = settings.with_(access=access.value)
        if as_json or not out().is_terminal:
            result = run_plan(plan, settings, store, from_task=from_task)
        else:
            with Live(console=out(), auto_refresh=False) as live:

                def show(record: PlanRecord, current: str | None) -> None:
                    live.update(plan_table(store, record, current), refresh=True)

                result = run_plan(plan, settings, store, from_task=from_task, on_progress=show)
        record = result.record
        if as_json:
            emit_json(record.to_json())
        elif not out().is_terminal:
            out().print(plan_table(store, record))
    if not as_json:
        done = sum(t.status == TaskStatus.SUCCEEDED for t in record.tasks)
        summary = f"{done}/{len(record.tasks)} tasks succeeded; session {record.session_id}"
        (out() if result.ok else err()).print(
            esc(f"plan {record.id} {record.status}: {summary}"), highlight=False
        )
    raise typer.Exit(0 if result.ok else 1)


@plan_app.command("show")
def plan_show(plan_id: str, as_json: JsonOpt = False) -> None:
    """Show a plan's progress, task by task."""
    from baton.errors import NotFound

    with cli_store() as (_settings, store):
        record = store.get_plan(plan_id)
        if record is None:
            raise NotFound(f"no plan {plan_id!r}")
        if as_json:
            emit_json(record.to_json())
        else:
            out().print(plan_table(store, record))


@plan_app.command("ls")
def plan_ls(as_json: JsonOpt = False) -> None:
    """List plans, most recently updated first."""
    with cli_store() as (_settings, store):
        records = store.list_plans()
    if as_json:
        emit_json([r.to_json() for r in records])
        return
    table = new_table("plan", "agent", "repo", "status", "tasks done", "session")
    for r in records:
        done = sum(t.status == TaskStatus.SUCCEEDED for t in r.tasks)
        cells = [r.id, r.agent, r.repo, r.status, f"{done}/{len(r.tasks)}", (r.session_id or "-")[:8]]
        table.add_row(*map(esc, cells))
    out().print(table)
