"""``baton doctor`` and ``baton agents``: is this machine set up, and which agents are there."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from baton.agents import AGENTS, describe_agent
from baton.cli.common import JsonOpt, WideOpt, emit_json, esc, new_table, out, print_table
from baton.settings import load_settings


def agents_cmd(as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """List the agents: installed or not, version, capabilities, home."""
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


FIX_HELP = "first make BATON_HOME 0700, its store and logs 0600, where they are wider"
FixOpt = Annotated[bool, typer.Option("--fix", help=FIX_HELP)]
SHOWN = 5  # lines of what --fix changed; --json lists every one
REPO_HELP = (
    "instead: the setup this repository's threads would get (URL or path, as `run -r` takes it), "
    "found on its default branch and not run; exit 1 when it cannot be used"
)
RepoCheckOpt = Annotated[str | None, typer.Option("--repo", "-r", help=REPO_HELP)]


def doctor_cmd(as_json: JsonOpt = False, fix: FixOpt = False, repo: RepoCheckOpt = None) -> None:
    """Check that conversations will survive here; exit 1 when something is wrong (or --fix failed).
    With -r REPO: the setup that repository's threads would get, instead."""
    # -r REPO's checks: baton.cli.doctorrepo
    if repo is not None:
        _doctor_repo(repo, as_json)
    # lazy: cold CLI
    from baton.fleet.checks import fleet_checks
    from baton.housekeeping.doctor import fix as fix_home
    from baton.housekeeping.doctor import run_doctor
    from baton.housekeeping.doctor import to_json as doctor_json

    settings = load_settings()
    fixed = fix_home(settings) if fix else []
    checks = run_doctor(settings, fleet=fleet_checks(settings))
    report = doctor_json(checks, settings)
    failed = [t for t in fixed if t.error]
    if fix:
        report["fixed"] = [asdict(t) for t in fixed]
        report["ok"] = report["ok"] and not failed
    if as_json:
        emit_json(report)
    else:
        done = [t for t in fixed if not t.error]
        lines = [f"[green]fixed[/green] {esc(t.path)}: {t.was} → {t.now}" for t in done[:SHOWN]]
        if len(done) > SHOWN:
            lines.append(f"[green]fixed[/green] {len(done) - SHOWN} more (--json lists them)")
        lines += [f"[red]FAIL[/red]  {esc(t.path)} is still {t.was}: {esc(t.error or '')}" for t in failed]
        marks = {"ok": "[green]ok[/green]  ", "warn": "[yellow]warn[/yellow]", "error": "[red]FAIL[/red]"}
        lines += [f"{marks[check.status]}  {esc(check.name)}: {esc(check.detail)}" for check in checks]
        for line in lines:
            out().print(line, highlight=False)
    raise typer.Exit(0 if report["ok"] else 1)


def _doctor_repo(spec: str, as_json: bool) -> None:
    """``doctor -r``: the report, then exit 0 (a usable setup, or none) or 1 (one that cannot be used)."""
    # lazy: cold CLI
    from baton.cli.doctorrepo import repo_report, report_lines

    report = repo_report(load_settings(), spec)
    if as_json:
        emit_json(report)
    else:
        for line in report_lines(report):
            out().print(esc(line), highlight=False)
    raise typer.Exit(0 if report["ok"] else 1)
