"""``baton plan``: run a plan file (live progress, one line per task), show one plan, list plans."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from baton.cli.common import (
    JsonOpt,
    WideOpt,
    cli_store,
    emit_json,
    err,
    esc,
    group,
    new_table,
    out,
    print_table,
)
from baton.cli.render import natural, wrap_between_words
from baton.errors import NotFound, exit_code_of
from baton.models import Access
from baton.plans.records import TaskStatus

if TYPE_CHECKING:
    from rich.table import Table

    from baton.plans.records import PlanRecord
    from baton.store.base import Store

plan_app = group("Run ordered tasks as turns of one conversation.")
MARKS = {
    TaskStatus.PENDING: "[dim]·[/dim]",
    TaskStatus.RUNNING: "[yellow]▶[/yellow]",
    TaskStatus.SUCCEEDED: "[green]✓[/green]",
    TaskStatus.FAILED: "[red]✗[/red]",
    TaskStatus.WAITING: "[yellow]?[/yellow]",
    TaskStatus.SKIPPED: "[dim]-[/dim]",
}


def plan_table(store: Store, record: PlanRecord, current: str | None = None, whole: bool = True) -> Table:
    """The plan's tasks, one row each; run ids in the short form every command accepts. A task's
    result (or error) on one line, whole or (not ``whole``: for a terminal) its first 80 characters."""
    # lazy: cold CLI
    from baton.runner.runids import short_ids

    shown = short_ids(store, [t.run_id for t in record.tasks if t.run_id])
    title = esc(f"plan {record.id} ({record.agent}, {record.repo}) — {record.status}")
    table = new_table("", "task", "status", "run", "result", title=title)
    for task in record.tasks:
        style = "bold reverse" if task.id == current else ""
        text = (task.result or task.error or "").replace("\n", " ")
        text = text if whole or len(text) <= 80 else text[:79] + "…"
        run = shown.get(task.run_id or "", "")
        table.add_row(MARKS[task.status], esc(task.id), task.status.value, esc(run), esc(text), style=style)
    return table


@plan_app.command("run")
def plan_run(
    file: Annotated[str, typer.Argument(help="the plan file (YAML; -: standard input)")],
    from_task: Annotated[str | None, typer.Option("--from", help="re-run from this task on")] = None,
    access: Annotated[
        Access | None,
        typer.Option(help="read, edit or full, for tasks without an access: of their own (default: setting)"),
    ] = None,
    wait_quota: Annotated[
        bool,
        typer.Option(
            "--wait-quota",
            help="a spent usage quota: wait for its reset and go on, instead of stopping (exit 75)",
        ),
    ] = False,
    as_json: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """Run a plan's unfinished tasks in one conversation; re-run it to continue after an interruption.
    A relative repo: is read from the plan file's directory (from standard input: the current one). A
    task that meets a spent usage quota stops the plan with exit 75 (re-run it after the reset), unless
    --wait-quota, or the plan's on_limit: names a fallback agent."""
    # lazy: cold CLI
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
        live_view = not as_json and out().is_terminal
        waits = (
            (lambda why: err().print(esc(f"plan {plan.id}: {why}"), highlight=False)) if wait_quota else None
        )
        if not live_view:
            result = run_plan(plan, settings, store, from_task=from_task, wait_quota=waits)
        else:  # --wide: the live table goes when the plan ends, for the table at natural width
            with Live(console=out(), auto_refresh=False, transient=wide) as live:

                def show(record: PlanRecord, current: str | None) -> None:
                    table = plan_table(store, record, current, whole=False)
                    live.update(wrap_between_words(table), refresh=True)

                result = run_plan(
                    plan, settings, store, from_task=from_task, on_progress=show, wait_quota=waits
                )
        record = result.record
        if as_json:
            emit_json(record.to_json())
        elif not live_view or wide:
            print_table(plan_table(store, record, whole=natural(wide)), wide)
    if not as_json:
        done = sum(t.status == TaskStatus.SUCCEEDED for t in record.tasks)
        summary = f"{done}/{len(record.tasks)} tasks succeeded; session {record.session_id}"
        (out() if result.ok else err()).print(
            esc(f"plan {record.id} {record.status}: {summary}"), highlight=False
        )
    failed = [t.outcome for t in record.tasks if t.status in (TaskStatus.FAILED, TaskStatus.WAITING)]
    # 75: a spent quota; 7: a task waits on a person (a spending cap: `baton budget` raises it)
    raise typer.Exit(0 if result.ok else (exit_code_of(*failed) if failed else 1))


@plan_app.command("show")
def plan_show(plan_id: str, as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """Show a plan's progress, task by task."""
    # lazy: cold CLI
    from baton.plans.tables import plan_store  # (SQLAlchemy: only once a store is opened)

    with cli_store() as (_settings, store):
        record = plan_store(store).get_plan(plan_id)
        if record is None:
            raise NotFound(f"no plan {plan_id!r}")
        if as_json:
            emit_json(record.to_json())
        else:
            print_table(plan_table(store, record, whole=natural(wide)), wide)


@plan_app.command("ls")
def plan_ls(as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """List plans, most recently updated first; `--wide` shows sessions' whole ids."""
    # lazy: cold CLI
    from baton.plans.tables import plan_store

    with cli_store() as (_settings, store):
        records = plan_store(store).list_plans()
    if as_json:
        emit_json([r.to_json() for r in records])
        return
    table = new_table("plan", "agent", "repo", "status", "tasks done", "session")
    for r in records:
        done = sum(t.status == TaskStatus.SUCCEEDED for t in r.tasks)
        session = r.session_id or "-"
        cells = [r.id, r.agent, r.repo, r.status, f"{done}/{len(r.tasks)}", session if wide else session[:8]]
        table.add_row(*map(esc, cells))
    print_table(table, wide)
