"""``baton doctor`` and ``baton agents``: is this machine set up, and which agents are there."""

from __future__ import annotations

import typer

from baton.cli.common import JsonOpt, WideOpt, emit_json, esc, out


def agents_cmd(as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """List the agents: installed or not, version, capabilities, home."""
    from baton.agents import AGENTS, describe_agent
    from baton.cli.common import new_table, print_table
    from baton.settings import load_settings

    settings = load_settings()
    rows = [describe_agent(name, settings) for name in AGENTS]
    if as_json:
        emit_json(rows)
        return
    table = new_table("agent", "version", "home", *(["capabilities"] if wide else []))
    for row in rows:
        version = row["version"] or ("not installed" if row["problem"] else "-")
        cells = [row["agent"], version, row["home"]]
        if wide:
            cells.append(", ".join(k for k, v in row["capabilities"].items() if v is True))
        table.add_row(*map(esc, cells))
    print_table(table, wide)


def doctor_cmd(as_json: JsonOpt = False) -> None:
    """Check that conversations will survive here; exit 1 when something is wrong."""
    from baton.fleet.checks import fleet_checks
    from baton.housekeeping.doctor import run_doctor
    from baton.housekeeping.doctor import to_json as doctor_json
    from baton.settings import load_settings

    settings = load_settings()
    checks = run_doctor(settings, fleet=fleet_checks(settings))
    report = doctor_json(checks, settings)
    if as_json:
        emit_json(report)
    else:
        marks = {"ok": "[green]ok[/green]  ", "warn": "[yellow]warn[/yellow]", "error": "[red]FAIL[/red]"}
        for check in checks:
            out().print(f"{marks[check.status]}  {esc(check.name)}: {esc(check.detail)}", highlight=False)
    raise typer.Exit(0 if report["ok"] else 1)
