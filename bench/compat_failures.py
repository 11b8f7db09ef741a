"""The resume-fidelity matrix: docs/compat.md's second table per agent, "failure events".

``tests/agents/test_compat_failures.py`` lives one conversation per agent through each failure event
(the runner killed mid-turn, the agent home wiped, the key moved to another machine, the provider
changed, two resumes racing, a usage limit, the transcript truncated or corrupted, and the CLI upgraded
in the columns that have one); ``make compat-failures`` (this file's :func:`main`) runs only those
events, for the pinned column unless ``--columns all``, and rewrites only their table: a column it did
not run is "not measured". The table's reading and writing is bench/compat_events.py's (``make
compat``, bench/compat.py, writes both tables through it); the releases are bench/compat.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import compat  # the releases, their installs and versions; docs/compat.md's sections
from compat_events import EVENTS, TEST, Row, read_events, section, with_section

ROOT = Path(__file__).resolve().parent.parent


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
