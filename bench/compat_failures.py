"""The resume-fidelity matrix: docs/compat.md's second table per agent, "failure events".

``tests/agents/test_compat_failures.py`` lives one conversation per agent through each failure event
(the runner killed mid-turn, the agent home wiped, the key moved to another machine, the provider
changed, two resumes racing, a usage limit, the transcript truncated or corrupted, and the CLI upgraded
in the columns that have one) and records each event's cell in its JUnit properties; this reads them
and writes the table under each agent's section, after the scenarios' (which it keeps).

``make compat`` writes both tables for every column (bench/compat.py calls :func:`read_events` and
:func:`section`); ``make compat-failures`` (this file's :func:`main`) runs only the failure events, for
the pinned column unless ``--columns all``, and rewrites only this table: a column it did not run is
"not measured".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/agents/test_compat_failures.py"
# event (as the test names it) → its column heading
EVENTS = {
    "upgrade": "CLI upgraded",
    "sigkill": "runner SIGKILLed mid-turn",
    "home_wiped": "agent home wiped",
    "moved": "key moved to another machine",
    "provider": "provider changed",
    "race": "two resumes racing",
    "usage_limit": "usage limit mid-turn",
    "truncated": "transcript truncated",
    "corrupted": "transcript corrupted",
}
HEADING = "### Failure events"
ABOUT = """\
Each agent's second table, *failure events*, is the resume-fidelity matrix
(`tests/agents/test_compat_failures.py`, in CI for the pinned column): one conversation per agent
lives through every event in turn, and each cell judges the turn after its event. The events: the
`baton run` process killed -9 while the model holds the turn, then the next turn; the key's agent home
removed; the next turn on a second `BATON_HOME` sharing the store; the next turn against another mock
server (the provider's address changed); two `baton run --wait 0` of the key at once; the model
refusing the turn with its vendor's spent-quota reply, then the next turn after the reset; the
conversation's log (its JSONL file, OpenCode's database) cut in the middle of its last line (the
database: in half), and, separately, its middle third overwritten with garbage; *CLI upgraded*: the
next turn under the column's other release (the pinned column has none). ✔: the turn resumed the same
conversation (session id in = out), its request held every earlier turn's words, and the mode baton
chose is shown (`resume`, or `hydrate+resume` from the store's snapshot); ↻ recap: baton recovered
into a new conversation with a recap on purpose and said why on the run's note (the promised degraded
path); ✘: neither, with the measured reason and what baton did instead. In every column, no run that
left the key's conversation did so without a note and a recap (asserted). `make compat` writes both
tables; `make compat-failures` only this one (the pinned column unless `COLUMNS=all`)."""
# (agent, event) → why the cell fails and what baton does instead, as found by reading the run: the
# table prints it under the measured reason while the pinned column's cell fails
WHY = {
    ("codex", "corrupted"): (
        "baton judges a local transcript by its size and its first line (`runner/decide.py`, `_damage`); "
        "garbage of the same length in the middle passes, so baton resumes the damaged rollout instead "
        "of hydrating the store's intact snapshot, and Codex resumes it with exit 0 but without the turns "
        "before the garbage: the history is cut silently (nothing on the run's note)"
    ),
    ("copilot", "corrupted"): (
        "the damaged events.jsonl keeps its size and first line, so baton resumes it (`_damage`) "
        "instead of hydrating the store's intact snapshot; Copilot refuses to load the journal and the "
        "turn ends `failed` with its words; baton neither hydrates nor recovers with a recap (only an "
        'agent\'s "not found" recovers), so the next turn meets the same file (not measured here) until '
        "`baton sessions reset --scope conversation`"
    ),
    ("opencode", "truncated"): (
        "a database cut short keeps its SQLite header, which is all baton checks (`_damage`), so baton "
        "does not hydrate the store's intact snapshot; OpenCode exits at start (`database disk image is "
        "malformed`) and the turn ends `failed`; baton neither hydrates nor recovers, so the next turn "
        "meets the same file (not measured here) until `baton sessions reset --scope conversation`"
    ),
    ("opencode", "corrupted"): (
        "as when truncated: the header is intact, baton resumes the damaged database, OpenCode exits "
        "(`database disk image is malformed`), the turn ends `failed`, no hydrate and no recap"
    ),
}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")


@dataclass
class Row:
    """One column's failure events."""

    label: str  # pinned | older | newest
    cli_version: str
    start: str
    carry: str
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # event → the test's cell


def read_events(cells_file: Path, report: Path) -> dict[str, dict[str, Any]]:
    """event → its cell (``status``, ``mode``, ``reason``…) as the test wrote it into ``cells_file``
    (``$BATON_COMPAT_EVENTS/<agent>.json``); an event it lacks (the test did not run, or failed before
    it) is ``{"status": "not run", "reason": …}``, with the test's failure from its JUnit ``report``."""
    cells: dict[str, dict[str, Any]] = json.loads(cells_file.read_text()) if cells_file.is_file() else {}
    problem = "the test did not run"
    if report.is_file():
        for case in ET.parse(report).getroot().iter("testcase"):
            failed = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
            if case.get("name", "").startswith("test_failure_events") and failed is not None:
                problem = " ".join((failed.get("message") or failed.tag).split())[:200]
    return {e: cells.get(e, {"status": "not run", "reason": problem}) for e in EVENTS}


def cell_text(cell: dict[str, Any], note: int | None) -> str:
    status, mode = cell.get("status", ""), cell.get("mode", "")
    mark = f" [{note}]" if note is not None else ""
    if status == "ok":
        return f"✔ {mode}"
    if status == "recap":
        return f"↻ recap{mark}"
    if status == "n/a":
        return "— (same release)"
    if status == "not run":
        return f"✘ not run{mark}"
    return f"✘ {mode}{mark}".replace("✘  ", "✘ ")


def section(agent: str, rows: Sequence[Row], today: str, measured_all: bool = True) -> str:
    """The failure-events table of one agent, with a numbered reason under it for each ✘ and ↻ (and
    for a ✘ what :data:`WHY` says of it)."""
    lines = [HEADING, "", f"Measured {today}.", ""]
    lines.append("| column | " + " | ".join(EVENTS.values()) + " |")
    lines.append("|---|" + "---|" * len(EVENTS))
    reasons: list[str] = []
    for row in rows:
        cells = []
        for event in EVENTS:
            cell = row.events.get(event, {"status": "not run"})
            note = None
            if cell.get("status") not in ("ok", "n/a"):
                said = WHY.get((agent, event)) if cell.get("status") == "fail" else None
                more = f". Why: {said}." if said else ""
                reasons.append(f"{row.label}, {EVENTS[event].lower()}: {why(cell)}{more}")
                note = len(reasons)
            cells.append(cell_text(cell, note))
        lines.append(
            f"| {row.label} ({row.cli_version}) {row.start} → {row.carry} | " + " | ".join(cells) + " |"
        )
    if not measured_all:
        lines.append("| the other columns | " + " | ".join(["not measured"] * len(EVENTS)) + " |")
    if reasons:
        lines.append("")
    lines += [f"{n}. {text}" for n, text in enumerate(reasons, 1)]
    return "\n".join(lines)


def why(cell: dict[str, Any]) -> str:
    text = str(cell.get("reason") or cell.get("note") or "no reason recorded").replace("|", "/")
    text = " ".join(ANSI.sub("", text).split())
    text = text if len(text) <= 300 else text[:299] + "…"
    sessions = ""
    if cell.get("session_in") or cell.get("session_out"):
        sessions = f" (session {cell.get('session_in')} → {cell.get('session_out')})"
    return f"{text}{sessions}"


def with_section(agent_section: str, failures: str) -> str:
    """An agent's section of docs/compat.md with its failure-events table replaced (or added)."""
    kept = agent_section.split(f"\n{HEADING}\n", 1)[0].rstrip()
    return f"{kept}\n\n{failures}\n"


# -- make compat-failures -----------------------------------------------------------------------------------


def run_events(agent: str, label: str, start: Path | None, carry: Path | None, reports: Path) -> Row:
    """The failure events of one column (``start``/``carry`` None: the pinned CLI as settings find it)."""
    # an install's directory, <agent>-<version> (bench/compat.py's install: its binary is 3 levels in)
    ends = [path.parents[2].name if path else "pinned" for path in (start, carry)]
    tag = "-".join([agent, label, *ends])
    report = reports / f"failures-{tag}.xml"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT)}
    if start:
        env[f"BATON_COMPAT_FROM_{agent.upper()}"] = str(start)
    if carry:
        env[f"BATON_COMPAT_TO_{agent.upper()}"] = str(carry)
    cells = reports / f"failures-{tag}"
    env["BATON_COMPAT_EVENTS"] = str(cells)
    report.unlink(missing_ok=True)
    (cells / f"{agent}.json").unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", TEST,
               "-k", f"[{agent}]", f"--junitxml={report}"]  # fmt: skip
    began = time.monotonic()
    subprocess.run(command, cwd=ROOT, env=env, check=False)
    read = cells / f"{agent}.json"
    version = json.loads(read.read_text()).get("cli", {}).get("version") if read.is_file() else None
    row = Row(label, str(version or "?"), "", "", read_events(read, report))
    ok = sum(c.get("status") in ("ok", "n/a", "recap") for c in row.events.values())
    print(
        f"compat-failures: {agent} {label}: {ok}/{len(EVENTS)} in {time.monotonic() - began:.0f} s",
        flush=True,
    )
    return row


def main(argv: Sequence[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import compat  # the releases, their installs and versions

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", default=",".join(cli.agent for cli in compat.CLIS))
    parser.add_argument("--columns", choices=("pinned", "all"), default="pinned")
    parser.add_argument("--dir", default=os.environ.get("BATON_COMPAT_DIR", str(ROOT / ".compat")))
    parser.add_argument("--table", default=str(ROOT / "docs" / "compat.md"))
    args = parser.parse_args(argv)
    into, table = Path(args.dir), Path(args.table)
    (into / "reports").mkdir(parents=True, exist_ok=True)
    sections = compat.kept_sections(table)
    today, failed = time.strftime("%Y-%m-%d"), False
    for cli in compat.CLIS:
        if cli.agent not in args.agents.split(","):
            continue
        plan: list[tuple[str, str, str, Path | None, Path | None, Path | None]]
        plan = [("pinned", cli.pinned, cli.pinned, None, None, None)]  # the project's own install
        if args.columns == "all":
            pinned = compat.install(cli, cli.pinned, into)
            plan += [
                ("older", v, cli.pinned, b, pinned, b)
                for v in cli.older
                for b in [compat.install(cli, v, into)]
            ]
            if cli.newest != cli.pinned:
                newest = compat.install(cli, cli.newest, into)
                plan.append(("newest", cli.pinned, cli.newest, pinned, newest, newest))
        rows = []
        for label, start, carry, start_bin, carry_bin, tested in plan:
            row = run_events(cli.agent, label, start_bin, carry_bin, into / "reports")
            row.start, row.carry = start, carry
            row.cli_version = compat.version_of(cli.agent, tested) if tested else row.cli_version
            failed |= any(c.get("status") not in ("ok", "n/a", "recap") for c in row.events.values())
            rows.append(row)
        old = sections.get(cli.agent, f"## {cli.agent}\n")
        sections[cli.agent] = with_section(old, section(cli.agent, rows, today, args.columns == "all"))
    compat.write_sections(sections, table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
