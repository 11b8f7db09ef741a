"""Tables that read at 80 columns (--wide for every column) and logs rendered for people."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Cli = Callable[..., subprocess.CompletedProcess[str]]
NARROW = {"COLUMNS": "80"}


def assert_readable(text: str) -> None:
    assert "…" not in text, text  # no cell cut short
    assert all(len(line) <= 80 for line in text.splitlines()), text


def test_tables_fit_80_columns(cli: Cli, src_repo: Path) -> None:
    thread = "issue-4242"
    ran = json.loads(cli("run", "-a", "fake", "-r", str(src_repo), "-t", thread, "--json", "hi").stdout)
    sessions = cli("sessions", "ls", env=NARROW).stdout
    assert_readable(sessions)
    assert thread in sessions and "succeeded" in sessions and str(ran["repo"]) in sessions
    runs = cli("runs", "ls", env=NARROW).stdout
    assert_readable(runs)
    assert thread in runs and "fresh" in runs and "succeeded" in runs
    agents = cli("agents", env=NARROW).stdout
    assert_readable(agents)
    assert all(name in agents for name in ("claude", "codex", "gemini"))


@pytest.mark.slow  # many `baton` processes: over 3 s of CPU
def test_wide_shows_every_column(cli: Cli, src_repo: Path) -> None:
    ran = json.loads(cli("run", "-a", "fake", "-r", str(src_repo), "-t", "w", "--json", "hi").stdout)
    sessions = cli("sessions", "ls", "--wide", env={"COLUMNS": "400"}).stdout
    assert str(ran["session_id"]) in sessions and "expires" in sessions and str(ran["worktree"]) in sessions
    runs = cli("runs", "ls", "--wide", env={"COLUMNS": "400"}).stdout
    assert "prompt" in runs and str(ran["repo"]) in runs
    agents = cli("agents", "--wide", env={"COLUMNS": "400"}).stdout
    assert "capabilities" in agents and "fork" in agents


def test_logs_are_rendered_and_raw_on_request(cli: Cli, src_repo: Path) -> None:
    ran = json.loads(cli("run", "-a", "fake", "-r", str(src_repo), "-t", "l", "--json", "hi").stdout)
    logs = cli("runs", "logs", str(ran["run_id"]))
    assert logs.returncode == 0
    assert "fake reply: received 2 messages" in logs.stdout
    assert '"type"' not in logs.stdout and f"session {ran['session_id']}" in logs.stdout
    raw = cli("runs", "logs", "--raw", str(ran["run_id"])).stdout.splitlines()
    assert json.loads(raw[0])["type"] == "system" and json.loads(raw[-1])["type"] == "result"


def test_wide_is_one_line_a_row_in_an_80_column_pipe(cli: Cli, src_repo: Path) -> None:
    """``--wide`` in a pipe (80 columns) never wraps a cell inside a word: each run is one line."""
    ran = json.loads(
        cli("run", "-a", "fake", "-r", str(src_repo), "-t", "pipe-thread", "--json", "hi").stdout
    )
    for args in (("runs", "ls", "--wide"), ("sessions", "ls", "--wide")):
        lines = cli(*args, env=NARROW).stdout.splitlines()
        assert len(lines) == 2, lines  # the header and the one row
        assert str(ran["repo"]) in lines[1] and "pipe-thread" in lines[1], lines


BOX = set("│┃─━┏┓┗┛┡┩└┘┌┐╇╈┼")


def test_every_table_has_one_style(cli: Cli, src_repo: Path, tmp_path: Path) -> None:
    """``plan show`` draws its table as ``runs ls`` and ``sessions ls`` do (no box), through the
    one helper every command uses."""
    from tests.test_plans import plan_text

    path = tmp_path / "plan.yaml"
    path.write_text(plan_text(src_repo))
    assert cli("plan", "run", str(path), "--json").returncode == 0
    for args in (("plan", "show", "demo"), ("runs", "ls"), ("sessions", "ls"), ("plan", "ls")):
        shown = cli(*args, env=NARROW).stdout
        assert not BOX & set(shown), shown
    assert "plan demo" in cli("plan", "show", "demo").stdout  # its title, above the table
    cli_src = Path(__file__).resolve().parents[1] / "src" / "baton" / "cli"
    drawn = [p.name for p in cli_src.glob("*.py") if "Table(" in p.read_text() and p.name != "render.py"]
    assert drawn == [], f"tables drawn outside render.new_table: {drawn}"


def test_show_prints_values_for_people_not_python_reprs(cli: Cli, src_repo: Path) -> None:
    ran = json.loads(cli("run", "-a", "fake", "-r", str(src_repo), "-t", "s", "--json", "hi").stdout)
    shown = cli("runs", "show", str(ran["run_id"])).stdout
    assert "error: -\n" in shown and "confined: " in shown, shown
    assert "input_tokens=" in shown and "{" not in shown and "None" not in shown, shown
    session = cli("sessions", "show", "-a", "fake", "-r", str(src_repo), "-t", "s").stdout
    assert "base: -\n" in session and "None" not in session, session


def test_lists_filter_by_a_repository_path_as_show_accepts_it(
    cli: Cli, src_repo: Path, tmp_path: Path
) -> None:
    """``--repo`` takes what ``sessions show -r`` takes: a path (or URL) as well as the slug."""
    from tests.conftest import make_repo

    other = make_repo(tmp_path / "other")
    for repo, thread in ((src_repo, "mine"), (other, "theirs")):
        assert cli("run", "-a", "fake", "-r", str(repo), "-t", thread, "hi").returncode == 0
    for args in (("sessions", "ls"), ("runs", "ls")):
        by_path = cli(*args, "--repo", str(src_repo)).stdout
        assert "mine" in by_path and "theirs" not in by_path, by_path
        slug = json.loads(cli(*args, "--json").stdout)[0]["repo"]
        by_slug = cli(*args, "--repo", slug).stdout
        assert ("mine" in by_slug) != ("theirs" in by_slug), by_slug
