"""``baton doctor`` and ``baton agents``: is this machine set up, and which agents are there."""

from __future__ import annotations

import typer
from rich.table import Table

from baton.agents import AGENTS, describe_agent
from baton.cli.common import JsonOpt, emit_json, out
from baton.doctor import run_doctor
from baton.doctor import to_json as doctor_json
from baton.settings import load_settings


def agents_cmd(as_json: JsonOpt = False) -> None:
    """List the agents: installed or not, version, capabilities, home."""
    settings = load_settings()
    rows = [describe_agent(name, settings) for name in AGENTS]
    if as_json:
        emit_json(rows)
        return
    table = Table("agent", "installed", "version", "capabilities", "home")
    for row in rows:
        caps = ", ".join(k for k, v in row["capabilities"].items() if v is True)
        table.add_row(
            row["agent"], "yes" if row["installed"] else "no", row["version"] or "-", caps, row["home"]
        )
    out.print(table)


def doctor_cmd(as_json: JsonOpt = False) -> None:
    """Check that conversations will survive here; exit 1 when something is wrong."""
    settings = load_settings()
    checks = run_doctor(settings)
    report = doctor_json(checks, settings)
    if as_json:
        emit_json(report)
    else:
        marks = {"ok": "[green]ok[/green]  ", "warn": "[yellow]warn[/yellow]", "error": "[red]FAIL[/red]"}
        for check in checks:
            out.print(f"{marks[check.status]}  {check.name}: {check.detail}", highlight=False)
    raise typer.Exit(0 if report["ok"] else 1)
