"""What a run of the suite ran on, for the "Versions:" list under the table: the agent CLIs, git,
Python, baton and its commit, the kernel, and how fast the scratch filesystem creates files."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from bench_claude import claude_command
from common import clock, median, ms, sh

from baton.agents import get_agent
from baton.settings import load_settings

HERE = Path(__file__).resolve().parent


def file_creation_cost(parent: Path, files: int = 2_000, reps: int = 3) -> float:
    """Median seconds to create ``files`` files of 4 KiB in 40 directories: how fast this machine's
    filesystem is at what a checkout does (benchmarks 3 and 4 are dominated by it)."""
    data = b"x" * 4096

    def create(target: Path) -> None:
        for i in range(files):
            folder = target / str(i % 40)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"f{i}.txt").write_bytes(data)

    # deleted only with the whole scratch directory: see bench_git.py on creating after deleting
    return median([clock(lambda: create(parent / f"probe-{rep}"))[1] for rep in range(reps)])  # noqa: B023


def agent_versions(groups: list[str], scratch: Path) -> dict[str, str]:
    """The version of every agent CLI the selected groups run (found the way baton finds them)."""
    settings = load_settings(overrides={"home": str(scratch)}, environ={})
    wanted = [a for a in ("claude", "codex", "gemini") if a in groups or "hydrate" in groups]
    wanted += ["opencode"] if "acp" in groups else []
    found: dict[str, str] = {}
    for agent in wanted:
        try:  # reported under the table; the benchmark itself fails with the details
            if agent == "claude":
                found[agent] = sh([*claude_command(settings), "--version"]).strip()
            else:
                found[agent] = get_agent(agent, settings).version() or "unknown version"
        except Exception as exc:
            found[agent] = f"not found ({exc})"
    return found


def versions(agents: dict[str, str], scratch: Path, probe: float | None) -> list[str]:
    fs = sh(["stat", "-f", "-c", "%T", str(scratch.parent)]).strip()
    names = {"claude": "Claude Code", "codex": "Codex CLI", "gemini": "Gemini CLI", "opencode": "OpenCode"}
    return [
        *[f"- {names[agent]}: {version}" for agent, version in agents.items()],
        f"- {sh(['git', '--version']).strip()}",
        f"- Python {platform.python_version()} ({sys.executable}); baton {baton_version()} "
        f"at commit {project_commit()}",
        f"- {platform.system()} {platform.release()}, {os.cpu_count()} CPUs, "
        f"scratch directory on {fs} ({scratch.parent})"
        + (f"; creating 2,000 files of 4 KiB there takes {ms(probe)}" if probe is not None else ""),
    ]


def baton_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from baton.install import DIST

    try:
        return version(DIST)
    except PackageNotFoundError:
        return "unknown"


def project_commit() -> str:
    """The commit the benchmarked code is at, marked when src/ has uncommitted changes."""
    root = HERE.parent
    try:
        head = sh(["git", "-C", str(root), "rev-parse", "--short", "HEAD"]).strip()
        dirty = sh(["git", "-C", str(root), "status", "--porcelain", "--", "src"]).strip()
    except RuntimeError:
        return "unknown"
    return f"{head} + uncommitted changes in src/" if dirty else head
