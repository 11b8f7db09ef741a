"""``baton sessions ls`` and ``baton runs ls`` paged (``baton.cli.listing``): 30 rows by default, most
recent first, with a note on stderr of how many more there are; ``--limit N``; ``--all``; ``--json``
written one record at a time and still one valid document; and ``baton du --json`` streamed the same
way. Each command runs as its own process, as a person or a script runs it."""

from __future__ import annotations

import io
import json
import subprocess
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from baton.cli.listing import DEFAULT_LIMIT, emit_json_list, emit_json_with, more_note
from baton.models import Mode, Outcome, PromptKind, RunRecord, SessionRecord
from baton.store import Store

Cli = Callable[..., subprocess.CompletedProcess[str]]
SESSIONS = 37
RUNS = 34


def seed(store: Store, home: Path) -> None:
    """Sessions an hour apart (issue-0 the most recent), and runs a minute apart (run-00 the newest)."""
    now = time.time()
    for i in range(SESSIONS):
        store.save_session(
            SessionRecord(
                agent=("claude", "codex")[i % 2],
                repo="github.com/acme/api",
                thread=f"issue-{i}",
                repo_url="https://github.com/acme/api",
                branch=f"baton/x/issue-{i}",
                worktree=str(home / "worktrees" / str(i)),
                created_at=now - 3600 * (i + 1),
                last_used_at=now - 3600 * (i + 1),
                expires_at=now + 86400,
            )
        )
    for i in range(RUNS):
        run = RunRecord(f"run-{i:02d}", "claude", "github.com/acme/api", f"issue-{i % 5}", 1, Mode.RESUME,
                        PromptKind.DELTA, "go")  # fmt: skip
        run.started_at, run.ended_at, run.outcome = now - 60 * (i + 1), now - 60 * i, Outcome.SUCCEEDED
        store.add_run(run)


def threads(stdout: str) -> list[str]:
    """The thread column of a sessions table (rows after the header)."""
    return [line.split()[2] for line in stdout.splitlines()[1:] if line.strip()]


def test_sessions_ls_shows_a_page_and_says_how_many_more(store: Store, home: Path, cli: Cli) -> None:
    seed(store, home)
    done = cli("sessions", "ls", env={"COLUMNS": "120"})
    assert done.returncode == 0, done.stderr
    assert threads(done.stdout) == [f"issue-{i}" for i in range(DEFAULT_LIMIT)]  # most recent first
    note = f"Showing 30 of {SESSIONS} sessions, most recently used first"
    assert note in done.stderr and "--limit N" in done.stderr and "--all" in done.stderr
    assert f"({SESSIONS - 30} more)" in done.stderr and "issue-" not in done.stderr

    five = cli("sessions", "ls", "--limit", "5", "-a", "codex", env={"COLUMNS": "120"})
    assert threads(five.stdout) == [f"issue-{i}" for i in range(1, 10, 2)]
    assert "Showing 5 of 18 sessions" in five.stderr

    every = cli("sessions", "ls", "--all", env={"COLUMNS": "120"})
    assert threads(every.stdout) == [f"issue-{i}" for i in range(SESSIONS)] and every.stderr == ""
    exact = cli("sessions", "ls", "--limit", str(SESSIONS))
    assert len(threads(exact.stdout)) == SESSIONS and exact.stderr == ""  # nothing more: no note


def test_sessions_ls_json_is_one_document_paged_or_whole(store: Store, home: Path, cli: Cli) -> None:
    seed(store, home)
    page = cli("sessions", "ls", "--json")
    assert [s["thread"] for s in json.loads(page.stdout)] == [f"issue-{i}" for i in range(30)]
    assert "Showing 30 of 37" in page.stderr  # stdout stays the JSON a script reads
    whole = cli("sessions", "ls", "--all", "--json")
    records = json.loads(whole.stdout)
    assert [s["thread"] for s in records] == [f"issue-{i}" for i in range(SESSIONS)] and whole.stderr == ""
    assert records == [s.to_json() for s in store.list_sessions()]
    assert whole.stdout == json.dumps(records, indent=2) + "\n"  # the text json.dumps would write
    assert json.loads(cli("sessions", "ls", "--all", "--json", "-a", "nobody").stdout) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit", "0"], "--limit must be at least 1"),
        (["--limit", "-3"], "--limit must be at least 1"),
        (["--limit", "3", "--all"], "--limit and --all"),
        (["--limit", "many"], "many"),
    ],
)
def test_a_bad_limit_is_refused(store: Store, home: Path, cli: Cli, args: list[str], message: str) -> None:
    seed(store, home)
    for command in (["sessions", "ls"], ["runs", "ls"]):
        done = cli(*command, *args)
        assert done.returncode != 0 and message in done.stderr, (command, done.stderr)
        assert done.stdout == ""


def test_runs_ls_pages_newest_first(store: Store, home: Path, cli: Cli) -> None:
    seed(store, home)
    page = cli("runs", "ls", "--json")
    assert [r["run_id"] for r in json.loads(page.stdout)] == [f"run-{i:02d}" for i in range(30)]
    assert f"Showing 30 of {RUNS} runs, newest first" in page.stderr
    table = cli("runs", "ls", "--limit", "4", "--wide", env={"COLUMNS": "200"})
    assert table.returncode == 0 and len(table.stdout.strip().splitlines()) == 1 + 4
    assert "Showing 4 of 34 runs" in table.stderr
    every = cli("runs", "ls", "--all", "--json", "-t", "issue-2")
    ids = [r["run_id"] for r in json.loads(every.stdout)]
    assert ids == [f"run-{i:02d}" for i in range(2, RUNS, 5)] and every.stderr == ""
    assert len(cli("runs", "ls", "--all").stdout.strip().splitlines()) == 1 + RUNS


def test_du_json_is_streamed_as_one_document(store: Store, home: Path, cli: Cli) -> None:
    seed(store, home)
    done = cli("du", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert list(data)[-1] == "sessions" and len(data["sessions"]) == SESSIONS
    assert {s["thread"] for s in data["sessions"]} == {f"issue-{i}" for i in range(SESSIONS)}
    assert data["agents"]["codex"]["sessions"] == 18 and data["total"] > 0
    assert done.stdout == json.dumps(data, indent=2) + "\n"


def test_streamed_json_is_json_dumps_text() -> None:
    cases: list[tuple[dict[str, object], list[object]]] = [
        ({}, []),
        ({"a": 1}, []),
        ({}, [1]),
        ({"a": {"b": [1, 2]}, "c": "x\ny"}, [{"k": [1, {"v": None}]}, "s\n", 2.5]),
    ]
    for head, items in cases:
        with redirect_stdout(io.StringIO()) as text:
            assert emit_json_list(iter(items)) == len(items)
        assert text.getvalue() == json.dumps(items, indent=2) + "\n"
        with redirect_stdout(io.StringIO()) as text:
            emit_json_with(head, "rows", iter(items))
        assert text.getvalue() == json.dumps({**head, "rows": items}, indent=2) + "\n"


def test_more_note_only_when_rows_were_left_out() -> None:
    assert more_note(30, 30, "sessions", "x") is None
    assert more_note(30, 100_000, "sessions", "newest first") == (
        "Showing 30 of 100,000 sessions, newest first: --limit N shows more, --all every one (99,970 more)."
    )
