"""Tables: on a terminal they fit its width (--wide for every column, one line a row), through a pipe
every cell is whole, one line a row; logs rendered for people; `baton --help` lists whole sentences.
The terminal is a pseudo-terminal of a ``baton`` process; the pipe, for Rich, is any stream that is not
a terminal: ``baton``'s ``main`` in this process printing into a buffer (``cli_here``)."""

from __future__ import annotations

import io
import json
import os
import re
import select
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from baton.cli import render
from baton.store import Store
from tests.conftest import BATON, make_repo

Cli = Callable[..., subprocess.CompletedProcess[str]]
NARROW = {"COLUMNS": "80"}
LONG_THREAD = "a-thread-with-a-name-long-enough-that-no-80-column-table-could-keep-it-whole"


def assert_readable(text: str) -> None:
    assert "…" not in text, text  # no cell cut short
    assert all(len(line) <= 80 for line in text.splitlines()), text


def on_a_terminal(baton_env: dict[str, str], *args: str, columns: int = 80) -> str:
    """What ``baton ARGS`` prints with its stdout on a terminal (a pseudo-terminal) of ``columns``,
    without its escape codes."""
    import pty

    master, slave = pty.openpty()
    env = {**os.environ, **baton_env, "COLUMNS": str(columns), "TERM": "dumb"}
    process = subprocess.Popen([*BATON, *args], env=env, stdout=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 1)[0]:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the command ended and closed its side
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=30) == 0
    finally:
        os.close(master)
        process.kill()
    text = b"".join(chunks).decode().replace("\r\n", "\n")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_tables_fit_a_terminal(cli: Cli, cli_here: Cli, baton_env: dict[str, str], src_repo: Path) -> None:
    thread = "issue-4242"
    ran = json.loads(cli("run", "-a", "fake", "-r", str(src_repo), "-t", thread, "--json", "hi").stdout)
    sessions = on_a_terminal(baton_env, "sessions", "ls")
    assert_readable(sessions)
    assert thread in sessions and "succeeded" in sessions and str(ran["repo"]) in sessions
    runs = on_a_terminal(baton_env, "runs", "ls")
    assert_readable(runs)
    assert thread in runs and "fresh" in runs and "succeeded" in runs
    agents = on_a_terminal(baton_env, "agents")  # its homes are longer paths than 80 columns hold
    assert_readable(agents)
    assert all(name in agents for name in ("claude", "codex", "gemini"))
    wide = on_a_terminal(baton_env, "agents", "--wide")
    home = str(json.loads(cli_here("agents", "--json").stdout)[0]["home"])
    assert any(home in line for line in wide.splitlines()), wide  # one line a row, however long


def lines_with(text: str, cell: str) -> list[str]:
    """The lines of ``text`` that hold ``cell`` whole (a cell broken across lines is in none)."""
    return [line for line in text.splitlines() if cell in line]


def test_piped_tables_keep_every_cell_whole(cli: Cli, cli_here: Cli, tmp_path: Path, store: Store) -> None:
    """In a pipe (80 columns as far as Rich knows) a table prints one line a row with every cell whole,
    as ``gh`` and ``kubectl`` do: ``grep`` finds a path, a long thread or a worker's name on one line."""
    from tests.conftest import make_repo
    from tests.housekeeping.test_fleetdisk import report

    repo = make_repo(tmp_path / "a-repository-whose-directory-name-is-long-enough-to-crowd-a-table")
    ran = json.loads(cli("run", "-a", "fake", "-r", str(repo), "-t", LONG_THREAD, "--json", "hi").stdout)
    token = "the-nightly-dependency-upgrade-bot-of-the-platform-team"
    assert cli_here("tokens", "create", "--name", token, "--scope", "read").returncode == 0
    worker = "9db77ef2:acc-read-worker-with-a-name-longer-than-its-column@host-one"
    report(store, worker, 12_000_000, time.time())
    agents = json.loads(cli_here("agents", "--json").stdout)
    cases = [
        (("sessions", "ls"), [LONG_THREAD, str(ran["repo"])]),
        (("runs", "ls"), [LONG_THREAD]),
        (("runs", "show", str(ran["run_id"])), [LONG_THREAD]),
        (("agents",), [str(a["home"]) for a in agents]),
        (("tokens", "ls"), [token]),
        (("audit",), [token, '{"scope":"read"}']),
        (("du", "--fleet"), [worker, "worktrees  transcripts  caches"]),
        (("du",), [str(ran["repo"])]),
    ]
    for args, cells in cases:
        shown = cli_here(*args, env=NARROW)
        assert shown.returncode == 0, (args, shown.stderr)
        table = shown.stdout.split("attempts\n")[-1]  # `runs show`: the table after the run's fields
        for cell in cells:
            assert lines_with(table, cell), (args, cell, shown.stdout)
        assert "…" not in shown.stdout, shown.stdout
    lines = cli_here("runs", "ls", env=NARROW).stdout.splitlines()
    assert len(lines) == 2 and LONG_THREAD in lines[1], lines  # the header and the one run, one line


def test_every_table_command_takes_wide(cli: Cli, cli_here: Cli, src_repo: Path, tmp_path: Path) -> None:
    """``--wide`` (``-w``) is accepted by every command that prints a table, and prints one line a row."""
    from tests.plans.test_plans import plan_text

    ran = json.loads(cli("run", "-a", "fake", "-r", str(src_repo), "-t", "w", "--json", "hi").stdout)
    path = tmp_path / "plan.yaml"
    path.write_text(plan_text(src_repo))
    assert cli_here("tokens", "create", "--name", "ci", "--scope", "read").returncode == 0
    commands = [
        ("sessions", "ls"),
        ("sessions", "show", "-a", "fake", "-r", str(src_repo), "-t", "w"),
        ("runs", "ls"),
        ("runs", "show", str(ran["run_id"])),
        ("agents",),
        ("du",),
        ("du", "--fleet"),
        ("audit",),
        ("tokens", "ls"),
        ("plan", "run", str(path)),
        ("plan", "show", "demo"),
        ("plan", "ls"),
    ]
    for args in commands:
        for flag in ("--wide", "-w"):  # `plan run` runs its turns: a process
            shown = (cli if args[:2] == ("plan", "run") else cli_here)(*args, flag, env=NARROW)
            assert shown.returncode == 0, (args, flag, shown.stderr)
    header = "agent  repo  thread  try  mode  prompt  outcome"  # the wide columns, one line
    text = cli_here("sessions", "show", "-a", "fake", "-r", str(src_repo), "-t", "w", "--wide").stdout
    assert re.search(r"^run +" + header.replace("  ", " +"), text, re.M), text
    text = cli_here("runs", "show", str(ran["run_id"]), "--wide").stdout
    assert re.search(r"^attempt +" + header.replace("  ", " +"), text, re.M), text
    plan_session = str(json.loads(cli_here("plan", "show", "demo", "--json").stdout)["session_id"])
    assert plan_session in cli_here("plan", "ls", "--wide").stdout
    assert (
        plan_session not in cli_here("plan", "ls").stdout
        and plan_session[:8] in cli_here("plan", "ls").stdout
    )


def test_wide_shows_every_column(cli: Cli, cli_here: Cli, src_repo: Path) -> None:
    ran = json.loads(cli("run", "-a", "fake", "-r", str(src_repo), "-t", "w", "--json", "hi").stdout)
    sessions = cli_here("sessions", "ls", "--wide", env={"COLUMNS": "400"}).stdout
    assert str(ran["session_id"]) in sessions and "expires" in sessions and str(ran["worktree"]) in sessions
    runs = cli_here("runs", "ls", "--wide", env={"COLUMNS": "400"}).stdout
    assert "prompt" in runs and str(ran["repo"]) in runs
    agents = cli_here("agents", "--wide", env={"COLUMNS": "400"}).stdout
    assert "capabilities" in agents and "fork" in agents


def test_logs_are_rendered_and_raw_on_request(cli: Cli, cli_here: Cli, src_repo: Path) -> None:
    ran = json.loads(cli("run", "-a", "fake", "-r", str(src_repo), "-t", "l", "--json", "hi").stdout)
    logs = cli_here("runs", "logs", str(ran["run_id"]))
    assert logs.returncode == 0
    assert "fake reply: received 2 messages" in logs.stdout
    assert '"type"' not in logs.stdout and f"session {ran['session_id']}" in logs.stdout
    raw = cli_here("runs", "logs", "--raw", str(ran["run_id"])).stdout.splitlines()
    assert json.loads(raw[0])["type"] == "system" and json.loads(raw[-1])["type"] == "result"


def test_wide_is_one_line_a_row_in_an_80_column_pipe(cli: Cli, cli_here: Cli, src_repo: Path) -> None:
    """``--wide`` in a pipe (80 columns) never wraps a cell inside a word: each run is one line."""
    ran = json.loads(
        cli("run", "-a", "fake", "-r", str(src_repo), "-t", "pipe-thread", "--json", "hi").stdout
    )
    for args in (("runs", "ls", "--wide"), ("sessions", "ls", "--wide")):
        lines = cli_here(*args, env=NARROW).stdout.splitlines()
        assert len(lines) == 2, lines  # the header and the one row
        assert str(ran["repo"]) in lines[1] and "pipe-thread" in lines[1], lines


BOX = set("│┃─━┏┓┗┛┡┩└┘┌┐╇╈┼")


def test_every_table_has_one_style(cli: Cli, cli_here: Cli, src_repo: Path, tmp_path: Path) -> None:
    """``plan show`` draws its table as ``runs ls`` and ``sessions ls`` do (no box), through the
    one helper every command uses."""
    from tests.plans.test_plans import plan_text

    path = tmp_path / "plan.yaml"
    path.write_text(plan_text(src_repo))
    assert cli("plan", "run", str(path), "--json").returncode == 0
    for args in (("plan", "show", "demo"), ("runs", "ls"), ("sessions", "ls"), ("plan", "ls")):
        shown = cli_here(*args, env=NARROW).stdout
        assert not BOX & set(shown), shown
    assert "plan demo" in cli_here("plan", "show", "demo").stdout  # its title, above the table
    cli_src = Path(__file__).resolve().parents[2] / "src" / "baton" / "cli"
    drawn = [p.name for p in cli_src.glob("*.py") if "Table(" in p.read_text() and p.name != "render.py"]
    assert drawn == [], f"tables drawn outside render.new_table: {drawn}"


def test_show_prints_values_for_people_not_python_reprs(cli: Cli, cli_here: Cli, src_repo: Path) -> None:
    ran = json.loads(cli("run", "-a", "fake", "-r", str(src_repo), "-t", "s", "--json", "hi").stdout)
    shown = cli_here("runs", "show", str(ran["run_id"])).stdout
    assert "error: -\n" in shown and "confined: " in shown, shown
    assert "input_tokens=" in shown and "{" not in shown and "None" not in shown, shown
    session = cli_here("sessions", "show", "-a", "fake", "-r", str(src_repo), "-t", "s").stdout
    assert "base: -\n" in session and "None" not in session, session


def test_lists_filter_by_a_repository_path_as_show_accepts_it(
    cli: Cli, cli_here: Cli, src_repo: Path, tmp_path: Path
) -> None:
    """``--repo`` takes what ``sessions show -r`` takes: a path (or URL) as well as the slug."""
    from tests.conftest import make_repo

    other = make_repo(tmp_path / "other")
    for repo, thread in ((src_repo, "mine"), (other, "theirs")):
        assert cli("run", "-a", "fake", "-r", str(repo), "-t", thread, "hi").returncode == 0
    for args in (("sessions", "ls"), ("runs", "ls")):
        by_path = cli_here(*args, "--repo", str(src_repo)).stdout
        assert "mine" in by_path and "theirs" not in by_path, by_path
        slug = json.loads(cli_here(*args, "--json").stdout)[0]["repo"]
        by_slug = cli_here(*args, "--repo", slug).stdout
        assert ("mine" in by_slug) != ("theirs" in by_slug), by_slug


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as Rich and :func:`render.natural` ask."""

    def isatty(self) -> bool:
        return True


def printed(monkeypatch: pytest.MonkeyPatch, stream: io.StringIO, rows: list[list[str]], wide: bool) -> str:
    """What :func:`render.print_table` prints of a ``baton du --fleet``-like table on ``stream``, 80
    columns wide."""
    from rich.console import Console

    console = Console(file=stream, width=80, color_system=None, soft_wrap=True)
    monkeypatch.setattr(render, "out", lambda: console)
    table = render.new_table(*HEADER)
    for row in rows:
        table.add_row(*row)
    render.print_table(table, wide)
    return stream.getvalue()


HEADER = ["worker", "reported", "used", "worktrees", "transcripts", "caches", "free"]
SIZES = ["12.3 GB", "1.2 GB", "300.1 MB", "4.5 GB", "100.2 GB"]


def test_a_terminal_wraps_cells_between_words(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich alone narrows the widest columns and folds words (``transcrip``/``ts``, ``12.3 G``/``B``)
    where every word could stay whole: here each column is at least its longest word."""
    name = "9db77ef2:acc-read"
    shown = printed(monkeypatch, Terminal(), [[name, "5m ago STALE", *SIZES]] * 3, wide=False)
    lines = shown.splitlines()
    assert all(len(line) <= 80 for line in lines), shown
    assert lines[0].split() == HEADER, shown
    assert all(name in line for line in lines[1::2]), shown  # each row: its worker's name whole
    words = {word for cell in [*HEADER, name, "5m ago STALE", *SIZES] for word in cell.split()}
    assert set(shown.split()) == words, shown  # 12.3 GB wrapped at its space, if at all


def test_a_terminal_too_narrow_for_a_word_folds_only_the_longest(monkeypatch: pytest.MonkeyPatch) -> None:
    name = "9db77ef2:acc-read-worker-with-a-long-name@host"
    shown = printed(monkeypatch, Terminal(), [[name, "5m ago", *SIZES]], wide=False)
    assert name not in shown and all(len(line) <= 80 for line in shown.splitlines()), shown
    assert shown.splitlines()[0].split() == [
        "worker",
        "reported",
        "used",
        "worktrees",
        "transcripts",
        "caches",
        "free",
    ]


@pytest.mark.parametrize(("stream", "wide"), [(io.StringIO(), False), (Terminal(), True)])
def test_a_pipe_or_wide_prints_one_line_a_row(
    monkeypatch: pytest.MonkeyPatch, stream: io.StringIO, wide: bool
) -> None:
    name = "9db77ef2:acc-read-worker-with-a-long-name@host-one-of-the-fleet"
    shown = printed(monkeypatch, stream, [[name, "5m ago STALE", *SIZES], ["total", "", *SIZES]], wide)
    lines = shown.splitlines()
    assert len(lines) == 3 and lines[1].startswith(name) and "5m ago STALE" in lines[1], shown
    assert len(lines[1]) > 80, shown


def test_help_lists_each_command_with_its_first_sentence_whole(cli: Cli, cli_here: Cli) -> None:
    """``baton --help`` and every group's help: each command's first sentence, never cut to ``...``."""
    import typer.main
    from typer.core import TyperGroup

    from baton.cli.app import app

    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    groups: dict[tuple[str, ...], TyperGroup] = {(): root}
    groups.update({(name,): c for name, c in root.commands.items() if isinstance(c, TyperGroup)})
    assert len(groups) > 5  # the app and its groups: sessions, runs, plan, homes, tokens
    for path, group in groups.items():
        shown = cli_here(*path, "--help", env=NARROW)
        assert shown.returncode == 0, shown.stderr
        listed = " ".join(shown.stdout.split("Commands:")[1].split())
        assert "..." not in listed, shown.stdout
        for name, command in group.commands.items():
            words = " ".join((command.help or "").split("\n\n")[0].split())
            first = re.match(r".*?\.(?= [^a-z]|$)", words)  # as Click ends a sentence
            assert first and f"{name} {first.group()}" in listed, (path, name, shown.stdout)
    submit = "Queue one instruction on one key for `baton worker`s and print its run id"
    assert submit in " ".join(cli_here("--help").stdout.split())


def test_runs_show_leaves_out_an_actor_no_one_is(cli: Cli, cli_here: Cli, src_repo: Path) -> None:
    """A ``baton run`` has no actor: ``runs show`` prints no empty ``actor:`` line; ``--json`` keeps the
    field as the API answers it."""
    ran = json.loads(cli("run", "-a", "fake", "-r", str(src_repo), "-t", "a", "--json", "hi").stdout)
    shown = cli_here("runs", "show", str(ran["run_id"])).stdout
    assert "thread: a\n" in shown and not re.search(r"^actor:", shown, re.M), shown
    assert json.loads(cli_here("runs", "show", str(ran["run_id"]), "--json").stdout)["actor"] == ""


def test_runs_show_prints_an_actor_there_is(capsys: pytest.CaptureFixture[str]) -> None:
    from baton.cli.runs import print_run

    print_run({"run_id": "r1", "agent": "fake", "actor": "ci-bot", "error": None})
    assert "actor: ci-bot\n" in capsys.readouterr().out


def test_logs_show_the_setup_that_ran_before_the_agent(cli: Cli, cli_here: Cli, tmp_path: Path) -> None:
    """A turn whose repository's setup ran and succeeded: ``runs logs`` shows the setup's command and
    what it printed before the agent's log."""
    repo = make_repo(tmp_path / "r", {".baton/setup.sh": "echo hello from the setup\n"})
    ran = json.loads(cli("run", "-a", "fake", "-r", str(repo), "-t", "s", "--json", "hi").stdout)
    logs = cli_here("runs", "logs", str(ran["run_id"])).stdout
    assert "── the repository's setup" in logs and "setup: setup.sh (.baton/setup.sh)" in logs, logs
    assert logs.index("hello from the setup") < logs.index("fake reply: received 2 messages"), logs
