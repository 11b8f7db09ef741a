"""``make compat``: the compatibility matrix of the agent CLIs.

For each real CLI it installs the pinned release, the newest in its registry and two older ones (npm
for Codex, Gemini, Copilot and OpenCode, PyPI's claude-agent-sdk wheel for Claude Code, into
``.compat/`` or ``$BATON_COMPAT_DIR``), runs ``tests/agents/test_compat.py``'s scenarios (fresh, resume,
hydrate after a wiped home, fork, hand-off, a tool call that edits a file) once per column, and
writes:

- ``docs/compat.md``: version by scenario, ✔ or ✘ with the reason;
- ``src/baton/agents/tested.json``: the CLI versions whose column passed whole (``baton doctor`` warns
  on others), the pinned one first.

Running some agents (``--agents copilot``) rewrites only theirs: the other agents' sections of the
table and entries of ``tested.json`` stay as their last run left them (each section says when).

The columns: *pinned* (started and carried on under the pin); each *older* release (started under
it, carried on under the pin: an operator upgrading to this baton); *newest* (started under the pin,
carried on under the newest: the upgrade the next pin bump makes). CI (``make test``) runs only the
pinned column: the same tests without the ``BATON_COMPAT_*`` variables.

``python bench/compat.py [--agents claude,codex] [--newest X] …`` (``--help``).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import compat_events

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("fresh", "resume", "hydrate", "fork", "handoff", "tool")


@dataclass(frozen=True)
class Cli:
    agent: str
    package: str  # its registry's name
    pinned: str  # the package version baton pins (pyproject.toml, package-lock.json)
    newest: str
    older: tuple[str, ...]
    # package version → why its column fails, as measured by hand (the tests' own message is often
    # only the symptom); the table shows it under the agent's section while that column fails
    why: dict[str, str] = field(default_factory=dict)


# The releases measured (bump them with the pins: docs/release.md, "Agent CLI pins").
CLIS = (
    Cli("claude", "claude-agent-sdk", "0.2.184", "0.2.187", ("0.2.180", "0.2.170")),
    Cli("codex", "@openai/codex", "0.169.0", "0.169.0", ("0.166.0", "0.162.1")),
    Cli("gemini", "@google/gemini-cli", "0.61.0", "0.61.0", ("0.60.0", "0.56.0")),
    Cli(
        "copilot",
        "@github/copilot",
        "1.0.102",
        "1.0.102",
        ("1.0.92", "1.0.83"),
    ),
    # releases whose opencode-linux-x64 package the registry serves (docs/release.md): without it the
    # install fails; 1.18.33 is `latest` (2026-09-28), 1.18.30 from 2026-09-09, 1.18.18 from 2026-08-14
    Cli("opencode", "opencode-ai", "1.18.33", "1.18.33", ("1.18.30", "1.18.18")),
)


@dataclass
class Column:
    agent: str
    label: str  # pinned | older | newest
    start: str  # package version that starts each conversation
    carry: str  # package version that carries it on
    cli_version: str = ""  # what the column's tested CLI reports (`--version`)
    results: dict[str, str] = field(default_factory=dict)  # scenario → "" (passed) or the reason
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # failure event → its cell

    @property
    def tested(self) -> str:
        """The package version this column is about (the pinned column's: the pin)."""
        return self.carry if self.label == "newest" else self.start


def install(cli: Cli, version: str, into: Path) -> Path:
    """The CLI binary of ``version``, installed under ``into`` unless it already is."""
    target = into / f"{cli.agent}-{version}"
    if cli.agent == "claude":
        binary = target / "claude_agent_sdk" / "_bundled" / "claude"
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                   "--no-deps", "--target", str(target), f"{cli.package}=={version}"]  # fmt: skip
    else:
        # Copilot's and OpenCode's loaders: the adapter runs the native binary of the platform package
        # installed beside it, @github/copilot-linux-{arch} or opencode-linux-{arch}[-baseline]
        # (baton.agents.acp.platform_binary), this install's own
        binary = target / "node_modules" / ".bin" / cli.agent
        command = ["npm", "install", "--prefix", str(target), "--no-audit", "--no-fund", "--loglevel=error",
                   f"{cli.package}@{version}"]  # fmt: skip
    if not binary.exists():
        print(f"compat: installing {cli.package}@{version}", flush=True)
        subprocess.run(command, check=True)
    return binary


def version_of(agent: str, binary: Path) -> str:
    sys.path.insert(0, str(ROOT / "src"))
    from baton.agents.base import cli_version
    from baton.agents.copilot import CopilotAgent
    from baton.agents.gemini import gemini_version
    from baton.agents.opencode import native_binary

    if agent == "copilot":  # the native binary the runs use, unpacked into the cache they share
        copilot = CopilotAgent(agent, binary.parent.parent.parent / "home", str(binary))
        return copilot.probe_version(tuple(copilot.command)) or "?"
    if agent == "opencode":  # the platform package's binary the runs use (the adapter's own search)
        return cli_version(tuple(native_binary(str(binary)))) or "?"
    probe = gemini_version if agent == "gemini" else cli_version
    return probe((str(binary),)) or "?"


def run_column(column: Column, start: Path, carry: Path, reports: Path) -> None:
    report = reports / f"{column.agent}-{column.label}-{column.start}-{column.carry}.xml"
    events = reports / f"events-{column.agent}-{column.label}-{column.start}-{column.carry}"
    (events / f"{column.agent}.json").unlink(missing_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "BATON_COMPAT_EVENTS": str(events),
        f"BATON_COMPAT_FROM_{column.agent.upper()}": str(start),
        f"BATON_COMPAT_TO_{column.agent.upper()}": str(carry),
    }
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
               "tests/agents/test_compat.py", compat_events.TEST, "-k", f"[{column.agent}]",
               f"--junitxml={report}"]  # fmt: skip
    began = time.monotonic()
    subprocess.run(command, cwd=ROOT, env=env, check=False)
    column.results = read_report(report)
    column.events = compat_events.read_events(events / f"{column.agent}.json", report)
    passed = sum(not r for r in column.results.values())
    took = time.monotonic() - began
    print(f"compat: {column.agent} {column.label} {column.start} → {column.carry}: "
          f"{passed}/{len(SCENARIOS)} in {took:.0f} s", flush=True)  # fmt: skip


def read_report(path: Path) -> dict[str, str]:
    """scenario → "" when it passed, else the first line of why (a scenario missing is a failure)."""
    results = dict.fromkeys(SCENARIOS, "did not run")
    if not path.is_file():
        return results
    for case in ET.parse(path).getroot().iter("testcase"):
        scenario = case.get("name", "").removeprefix("test_").split("[")[0]
        if scenario not in results:
            continue
        problem = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
        if problem is None:
            results[scenario] = ""
        else:
            text = (problem.get("message") or problem.text or problem.tag).strip()
            results[scenario] = " ".join(text.split("\n", 1)[0].split())[:160]
    return results


HEADER = """\
# Agent CLI compatibility

Written by `make compat` (`bench/compat.py`); do not edit by hand. Each column starts a
conversation under one release and carries it on under another, through baton, against the
project's mock model servers: *older* → pinned is an operator upgrading to this baton; pinned →
*newest* is the next pin bump. A scenario passes when every turn succeeded and the carried-on
turn's request held the first turn's words (the history was whole). CI runs the pinned column
(`tests/agents/test_compat.py`). Pin bumps: docs/release.md.

The two agents driven over the Agent Client Protocol restore a conversation the way their release
advertises in its `initialize` answer: `session/resume` (restored without its history sent back) where
`agentCapabilities.sessionCapabilities.resume` is there, else `session/load` (the history replayed to
baton, which only counts it). Pinned releases: **OpenCode 1.18.33 resumes with `session/resume`**;
**Copilot CLI 1.0.102 loads with `session/load`** (it advertises `close` and `list` only). Checked on the
pinned releases by `tests/agents/test_acp_resume_real.py` (the older and newest columns' releases were
not asked); the cost of each: bench rows 27a-27c (bench/README.md).
"""


def write_table(columns: list[Column], path: Path) -> None:
    """The agents measured now as new sections; every other agent's section as it was (a run of
    some agents keeps the rest), in the order of ``CLIS``."""
    sections = kept_sections(path)
    today = time.strftime("%Y-%m-%d")
    for agent in dict.fromkeys(c.agent for c in columns):
        lines = [f"## {agent}", "", f"Measured {today}.", ""]
        lines.append("| column | started under → carried on under | " + " | ".join(SCENARIOS) + " |")
        lines.append("|---|---|" + "---|" * len(SCENARIOS))
        for c in (c for c in columns if c.agent == agent):
            cells = [
                "✔" if not c.results.get(s) else f"✘ {c.results[s].replace('|', '/')}" for s in SCENARIOS
            ]
            lines.append(
                f"| {c.label} ({c.cli_version}) | {c.start} → {c.carry} | " + " | ".join(cells) + " |"
            )
        why = next(cli.why for cli in CLIS if cli.agent == agent)
        failed = [
            (c, why[c.tested]) for c in columns if c.agent == agent and failed_column(c) and c.tested in why
        ]
        if failed:
            lines.append("")
        lines += [f"- Why *{c.label} {c.tested}* fails: {reason}." for c, reason in failed]
        rows = [
            compat_events.Row(c.label, c.cli_version, c.start, c.carry, c.events)
            for c in columns
            if c.agent == agent
        ]
        sections[agent] = "\n".join(lines) + "\n\n" + compat_events.section(agent, rows, today)
    write_sections(sections, path)


def write_sections(sections: dict[str, str], path: Path) -> None:
    """The table: the header, then each agent's section in the order of ``CLIS``."""
    order = [cli.agent for cli in CLIS]
    agents = sorted(sections, key=lambda a: order.index(a) if a in order else len(order))
    body = "".join(f"\n{sections[a].strip()}\n" for a in agents)
    path.write_text(f"{HEADER}\n{compat_events.ABOUT}\n{body}")


def kept_sections(path: Path) -> dict[str, str]:
    """agent → its section of the table already written (``## agent`` to the next), each with the
    date it was measured (a table from before the dates moved into the sections: its one date)."""
    text = path.read_text() if path.is_file() else ""
    top = re.search(r"^Measured (\S+)\.$", text.split("\n## ", 1)[0], re.MULTILINE)
    sections = {}
    for part in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        agent, _, body = part.partition("\n")
        if top and not re.search(r"^Measured ", body, re.MULTILINE):
            body = f"\nMeasured {top.group(1)}.\n" + body
        sections[agent.strip()] = f"## {agent.strip()}\n{body}"
    return sections


def failed_column(column: Column) -> bool:
    return not column.results or any(column.results.values())


def write_tested(columns: list[Column], path: Path) -> None:
    data = json.loads(path.read_text())
    for cli in CLIS:
        mine = [c for c in columns if c.agent == cli.agent]
        if not mine:
            continue
        passed = [c.cli_version for c in mine if not failed_column(c)]
        pinned = next(c.cli_version for c in mine if c.label == "pinned")
        entry = data["agents"].setdefault(cli.agent, {"package": cli.package})
        entry["pinned_package"] = cli.pinned
        entry["versions"] = list(dict.fromkeys([pinned, *passed]))
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", default=",".join(cli.agent for cli in CLIS))
    parser.add_argument("--dir", default=os.environ.get("BATON_COMPAT_DIR", str(ROOT / ".compat")))
    parser.add_argument("--table", default=str(ROOT / "docs" / "compat.md"))
    args = parser.parse_args()
    into = Path(args.dir)
    reports = into / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    columns: list[Column] = []
    for cli in CLIS:
        if cli.agent not in args.agents.split(","):
            continue
        pinned = install(cli, cli.pinned, into)
        plan = [("pinned", cli.pinned, cli.pinned, pinned)]
        plan += [("older", v, cli.pinned, install(cli, v, into)) for v in cli.older]
        if cli.newest != cli.pinned:
            plan.append(("newest", cli.pinned, cli.newest, install(cli, cli.newest, into)))
        for label, start, carry, tested in plan:
            column = Column(cli.agent, label, start, carry, version_of(cli.agent, tested))
            start_bin = tested if label == "older" else pinned
            carry_bin = tested if label == "newest" else pinned
            run_column(column, start_bin, carry_bin, reports)
            columns.append(column)
    write_table(columns, Path(args.table))
    write_tested(columns, ROOT / "src" / "baton" / "agents" / "tested.json")
    failed = [c for c in columns if failed_column(c)]
    for c in failed:
        print(f"compat: FAILED {c.agent} {c.label} {c.start} → {c.carry}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
