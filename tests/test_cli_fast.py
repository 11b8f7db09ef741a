"""The CLI's fast paths (``baton.cli.fast``) and the lite store reader (``baton.store.lite``): the same
answers as the Typer commands over the SQL store, to the byte, and the imports they promise to skip."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import string
import subprocess
import sys
import time
from pathlib import Path

import pytest

from baton.cli.fast import LS_OPTIONS, parse
from baton.models import Outcome, SessionRecord, SessionStatus
from baton.settings import Settings
from baton.store import Store
from baton.store.lite import open_lite
from baton.store.migrations import MIGRATIONS

# The Typer app itself, without main()'s fast paths: what the fast path must equal.
TYPER = [
    sys.executable,
    "-c",
    "import sys, typer.main; from baton.cli.app import app; "
    "typer.main.get_command(app).main(sys.argv[1:], prog_name='baton')",
]
FAST = [sys.executable, "-m", "baton.cli"]


def seed(store: Store, home: Path, count: int = 40) -> None:
    now = time.time()
    for i in range(count):
        store.save_session(
            SessionRecord(
                agent=("claude", "codex", "gemini")[i % 3],
                repo=f"github.com/acme/service-{i % 4}",
                thread=f"issue-{i}",
                repo_url=f"https://github.com/acme/service-{i % 4}",
                branch=f"baton/x/issue-{i}",
                worktree=str(home / "worktrees" / f"[w]{i}"),  # markup-like text stays literal
                agent_session_id=f"00000000-0000-4000-8000-{i:012d}" if i % 5 else None,
                status=SessionStatus.ACTIVE if i % 7 else SessionStatus.ARCHIVED,
                last_outcome=Outcome.SUCCEEDED if i % 2 else None,
                attempts=1 + i % 4,
                # whole hours apart, so an age printed a second later is the same text
                created_at=now - 3600 * (i + 1) - 1800,
                last_used_at=now - 3600 * (i + 1) - 1800 + (i % 3),
                expires_at=now + 30 * 86400,
            )
        )


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--wide"],
        ["-w", "--json"],
        ["--json"],
        ["-a", "codex"],
        ["--agent=gemini", "--wide"],
        ["-r", "github.com/acme/service-2"],
        ["--repo", "https://github.com/acme/service-1", "-a", "claude"],
        ["-r", "no such repo"],
        ["-a", "claude", "-a", "codex"],  # the last wins, as in Click
        ["--limit", "5"],
        ["-L", "3", "--json"],
        ["--all"],
        ["--all", "--json", "-a", "codex"],
        ["--limit=40"],
    ],
)
def test_sessions_ls_fast_equals_typer(
    store: Store, home: Path, baton_env: dict[str, str], args: list[str]
) -> None:
    seed(store, home)
    env = {**baton_env, "COLUMNS": "80"}
    fast, typer = run([*FAST, "sessions", "ls", *args], env), run([*TYPER, "sessions", "ls", *args], env)
    assert fast.returncode == typer.returncode == 0, fast.stderr + typer.stderr
    assert fast.stdout == typer.stdout
    assert fast.stderr == typer.stderr  # the note of how many more there are, or nothing
    assert fast.stdout.count("\n") >= 2 or "no such repo" in args


def test_sessions_ls_fast_path_skips_typer_and_sqlalchemy(
    store: Store, home: Path, baton_env: dict[str, str]
) -> None:
    seed(store, home, 3)
    code = (
        "import sys, atexit\n"
        "atexit.register(lambda: print(sorted({m.split('.')[0] for m in sys.modules}), file=sys.stderr))\n"
        "from baton.cli import main\n"
        "main(['sessions', 'ls'])\n"
    )
    done = run([sys.executable, "-c", code], baton_env)
    assert done.returncode == 0, done.stderr
    loaded = done.stderr.strip().splitlines()[-1]
    for heavy in ("sqlalchemy", "typer", "pydantic", "click"):
        assert f"'{heavy}'" not in loaded, loaded
    assert "issue-0" in done.stdout


@pytest.mark.parametrize(
    "args", [["--help"], ["--bogus"], ["-a"], ["extra"], ["-wa", "x"], ["--json=1"], ["--limit"], ["--all=1"]]
)
def test_what_the_fast_path_does_not_know_goes_to_typer(args: list[str]) -> None:
    assert parse(args, LS_OPTIONS) is None


def test_parse_takes_values_and_flags() -> None:
    assert parse(["-a", "x", "--repo=r", "--json", "-w"], LS_OPTIONS) == {
        "agent": "x",
        "repo": "r",
        "json": True,
        "wide": True,
    }
    assert parse(["-a", "-w"], LS_OPTIONS) is None  # a value that looks like an option: Click decides


def test_unknown_option_still_gets_typers_message(cli: object, baton_env: dict[str, str]) -> None:
    done = run([*FAST, "sessions", "ls", "--bogus"], baton_env)
    assert done.returncode == 2 and "--bogus" in done.stderr


def test_sessions_ls_on_a_new_home_falls_back_and_creates_the_store(
    home: Path, baton_env: dict[str, str]
) -> None:
    done = run([*FAST, "sessions", "ls", "--json"], baton_env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    assert (home / "baton.db").is_file()  # the full store made and migrated it


def test_open_lite_declines_what_the_full_store_must_handle(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    url = settings.resolved_store_url
    lite = open_lite(url)
    assert lite is not None
    lite.close()
    assert open_lite("postgresql://u@h/db") is None
    assert open_lite(url + "?timeout=5") is None
    assert open_lite(f"sqlite:///{tmp_path / 'missing.db'}") is None
    assert not (tmp_path / "missing.db").exists()  # never created
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    assert open_lite(f"sqlite:///{garbage}") is None
    older = tmp_path / "older.db"
    with sqlite3.connect(url.removeprefix("sqlite:///")) as source, sqlite3.connect(older) as conn:
        source.backup(conn)  # a copy with what the WAL holds
        conn.execute("DELETE FROM schema_migrations WHERE version = ?", (MIGRATIONS[-1][0],))
    assert open_lite(f"sqlite:///{older}") is None  # the full store migrates it first


def test_lite_lists_sessions_as_the_sql_store_does(store: Store, home: Path, settings: Settings) -> None:
    seed(store, home)
    lite = open_lite(settings.resolved_store_url)
    assert lite is not None
    with lite:
        for query in (
            {},
            {"agent": "codex"},
            {"repo": "github.com/acme/service-3"},
            {"status": SessionStatus.ARCHIVED},
            {"limit": 5, "offset": 3},
            {"agent": "claude", "repo": "github.com/acme/service-0", "limit": 2},
        ):
            assert lite.list_sessions(**query) == store.list_sessions(**query), query
        for agent, repo in ((None, None), ("codex", None), (None, "github.com/acme/service-3")):
            pages = list(lite.iter_sessions(agent, repo, batch=4))
            assert (
                pages == list(store.iter_sessions(agent, repo, batch=7)) == store.list_sessions(agent, repo)
            )
            assert lite.count_sessions(agent, repo) == store.count_sessions(agent, repo) == len(pages) > 0


def test_print_rows_matches_rich_to_the_byte(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The plain layout is Rich's for tables that fit; random tables, some that do not fit (Rich)."""
    from baton.cli import render

    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + " -_/.[]()"
    for width in (80, 120):
        monkeypatch.setenv("COLUMNS", str(width))
        render.out.cache_clear()
        for _ in range(30):
            columns = [rng.choice(["agent", "repo", "a", "last used"]) for _ in range(rng.randint(1, 6))]
            rows = [
                ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))) for _ in columns]
                for _ in range(rng.randint(0, 8))
            ]
            wide = rng.random() < 0.3
            render.print_rows(columns, rows, wide)
            ours = capsys.readouterr().out
            table = render.new_table(*columns)
            for row in rows:
                table.add_row(*map(render.esc, row))
            render.print_table(table, wide)
            assert ours == capsys.readouterr().out, (columns, rows, wide)
    render.out.cache_clear()


# -- baton run ---------------------------------------------------------------------------------------


def fields_of(request: object) -> dict[str, object]:
    from baton.runner.request import request_fields

    return {f.name: getattr(request, f.name) for f in request_fields()}


@pytest.mark.parametrize(
    "args",
    [
        ["-a", "fake", "-r", "/src", "-t", "issue-1", "do it"],
        ["do it", "--agent", "fake", "--repo=/src", "--thread", "t"],
        ["-a", "fake", "--json", "-r", "https://x.test/a/b", "-t", "t", "a prompt\nwith lines"],
    ],
)
def test_run_fast_path_builds_the_request_typer_builds(
    monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    import typer.main

    from baton.cli import fast, running
    from baton.cli import run as run_module
    from baton.cli.app import app

    seen: list[tuple[object, bool]] = []

    def execute(request: object, as_json: bool, start_warm: bool = False) -> int:
        seen.append((request, as_json))
        return 0

    monkeypatch.setattr(running, "execute", execute)  # the fast path's
    monkeypatch.setattr(run_module, "execute", execute)  # the Typer command's
    assert fast.try_fast(["run", *args]) == 0
    typer.main.get_command(app).main(["run", *args], prog_name="baton", standalone_mode=False)
    assert len(seen) == 2
    (ours, our_json), (theirs, their_json) = seen
    assert fields_of(ours) == fields_of(theirs) and our_json == their_json == ("--json" in args)


@pytest.mark.parametrize("how", [["--prompt-file", "FILE"], ["--prompt-file=FILE"], ["--prompt-file", "-"]])
def test_run_fast_path_reads_the_prompt_file_as_typer_does(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, how: list[str]
) -> None:
    import typer.main

    from baton.cli import fast, running
    from baton.cli import run as run_module
    from baton.cli.app import app
    from tests.test_cli_inputs import Piped

    (tmp_path / "p.txt").write_text("from the file é\n")
    args = ["-a", "fake", "-r", "/src", "-t", "t", *(a.replace("FILE", str(tmp_path / "p.txt")) for a in how)]
    piped = Piped("from stdin ✓\n".encode())
    monkeypatch.setattr(sys, "stdin", piped)
    seen: list[object] = []

    def execute(request: object, as_json: bool, start_warm: bool = False) -> int:
        seen.append(request)
        return 0

    monkeypatch.setattr(running, "execute", execute)
    monkeypatch.setattr(run_module, "execute", execute)
    try:
        assert fast.try_fast(["run", *args]) == 0  # taken by the fast path, not left to Typer
        typer.main.get_command(app).main(["run", *args], prog_name="baton", standalone_mode=False)
    finally:
        piped.close()
    ours, theirs = map(fields_of, seen)
    assert ours == theirs and ours["prompt"] == ("from stdin ✓\n" if "-" in how else "from the file é\n")


@pytest.mark.parametrize(
    "args",
    [
        ["-a", "fake", "-r", "/src", "-t", "t"],  # no prompt
        ["-a", "fake", "-r", "/src", "-t", "t", "one", "two"],
        ["-a", "fake", "-r", "/src", "-t", "t", "--mode", "fresh", "p"],  # an option it does not know
        ["-a", "fake", "-r", "/src", "-t", "t", "--", "-p"],
        ["-a", "fake", "-r", "/src", "-t", "t", "--prompt-file", "-", "p"],  # both: Typer's error
        ["-a", "fake", "-r", "/src", "-t", "t", "--prompt-file"],  # no value
        ["-a", "fake", "-r", "/src", "-t", "-", "p"],  # "-" only for the prompt file
        ["-a", "fake", "-r", "/src", "p"],  # no thread
        ["--help"],
    ],
)
def test_run_fast_path_leaves_the_rest_to_typer(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    from baton.cli import fast, running

    monkeypatch.setattr(running, "execute", lambda request, as_json: pytest.fail("the fast path ran"))
    assert fast.try_fast(["run", *args]) is None


def test_run_fast_path_skips_typer_and_pydantic(src_repo: Path, baton_env: dict[str, str]) -> None:
    code = (
        "import sys, atexit\n"
        "atexit.register(lambda: print(sorted({m.split('.')[0] for m in sys.modules}), file=sys.stderr))\n"
        "from baton.cli import main\n"
        f"main(['run', '-a', 'fake', '-r', {str(src_repo)!r}, '-t', 'lazy', 'hi'])\n"
    )
    done = run([sys.executable, "-c", code], baton_env)
    assert done.returncode == 0, done.stderr
    assert "succeeded" in done.stdout and "mode=fresh" in done.stdout
    loaded = done.stderr.strip().splitlines()[-1]
    for heavy in ("typer", "pydantic", "click"):
        assert f"'{heavy}'" not in loaded, loaded


def test_run_opens_the_sql_store_before_its_agent_and_never_loads_rich(
    src_repo: Path, baton_env: dict[str, str]
) -> None:
    """``baton run`` on a SQLite store, printing to pipes, with no warm server: its store is the SQL
    store, so SQLAlchemy is imported before its agent starts, on a new home and on a resumed key alike;
    Rich never is (plain lines to a pipe). A warm server's child finds SQLAlchemy and the SQLite dialect
    loaded already: the server imports them (:data:`~baton.cli.warmserver.PRELOAD`)."""
    watched = ("sqlalchemy", "sqlalchemy.dialects.sqlite", "rich")
    code = (
        "import subprocess, sys\n"
        "seen = []\n"
        "real = subprocess.Popen.__init__\n"
        "def spy(self, args, *a, **k):\n"
        "    if 'fake_agent' in ' '.join(map(str, args)):\n"
        f"        seen.append([m for m in {watched!r} if m in sys.modules])\n"
        "    real(self, args, *a, **k)\n"
        "subprocess.Popen.__init__ = spy\n"
        "from baton.cli import main\n"
        "try:\n"
        f"    main(['run', '-a', 'fake', '-r', {str(src_repo)!r}, '-t', 'order', 'hi'])\n"
        "finally:\n"
        f"    print(seen, [m for m in {watched!r} if m in sys.modules], file=sys.stderr)\n"
    )
    store = ["sqlalchemy", "sqlalchemy.dialects.sqlite"]
    for turn in ("fresh", "resume"):  # the fresh turn makes the home's store
        done = run([sys.executable, "-c", code], baton_env)
        assert done.returncode == 0 and f"mode={turn}" in done.stdout, done.stdout + done.stderr
        assert done.stderr.strip().splitlines()[-1] == f"{[store]} {store}", (turn, done.stderr)
    preload = (
        "import importlib, sys\n"
        "from baton.cli.warmserver import PRELOAD\n"
        "for name in PRELOAD:\n"
        "    importlib.import_module(name)\n"
        f"print([m for m in {tuple(store)!r} if m in sys.modules])\n"
    )
    done = run([sys.executable, "-c", preload], {})
    assert done.stdout.strip() == str(store), done.stderr


def test_help_imports_no_store(baton_env: dict[str, str]) -> None:
    """``baton --help`` builds the whole Typer app: no command module may import the store at the top."""
    code = (
        "import sys, atexit\n"
        "atexit.register(lambda: print(sorted({m.split('.')[0] for m in sys.modules}), file=sys.stderr))\n"
        "from baton.cli import main\n"
        "main(['--help'])\n"
    )
    done = run([sys.executable, "-c", code], baton_env)
    assert done.returncode == 0 and "Usage" in done.stdout, done.stderr
    assert "'sqlalchemy'" not in done.stderr.strip().splitlines()[-1]


def test_importing_the_run_path_does_not_import_sqlalchemy() -> None:
    """SQLAlchemy loads when a store is opened (``baton.store.open_store``), not with the modules."""
    code = "import sys, baton.runner.run, baton.cli.app; print('sqlalchemy' in sys.modules)"
    done = run([sys.executable, "-c", code], {})
    assert done.stdout.strip() == "False", done.stderr
