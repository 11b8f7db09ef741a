"""docs/compat.md's failure events: the resume-fidelity matrix, the second table per agent.

``tests/agents/test_compat_failures.py`` (:data:`TEST`) lives one conversation per agent through each
failure event (:data:`EVENTS`) and records each event's cell; :func:`read_events` reads them back and
:func:`section` writes an agent's table, under its scenarios' (which :func:`with_section` keeps).
``make compat`` (bench/compat.py) and ``make compat-failures`` (bench/compat_failures.py) both write
it through this module, which imports neither of them.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
