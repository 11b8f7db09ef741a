"""The CLI's fast path (``baton.cli.fast``) and its lite store reader (``baton.cli.fast.lite``): the same
answers as the Typer command over the SQL store, to the byte, and the imports it promises to skip."""

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
from baton.cli.fast.lite import open_lite
from baton.models import Outcome, SessionRecord, SessionStatus
from baton.settings import Settings
from baton.store import Store
from baton.store.migrations import MIGRATIONS

BUSY = 10.0  # seconds the lite store waits for a lock (the setting store_lock_timeout)

# The Typer app itself, without main()'s fast path: what the fast path must equal.
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
    lite = open_lite(url, BUSY)
    assert lite is not None
    lite.close()
    assert open_lite("postgresql://u@h/db", BUSY) is None
    assert open_lite(url + "?timeout=5", BUSY) is None
    assert open_lite(f"sqlite:///{tmp_path / 'missing.db'}", BUSY) is None
    assert not (tmp_path / "missing.db").exists()  # never created
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    assert open_lite(f"sqlite:///{garbage}", BUSY) is None
    older = tmp_path / "older.db"
    with sqlite3.connect(url.removeprefix("sqlite:///")) as source, sqlite3.connect(older) as conn:
        source.backup(conn)  # a copy with what the WAL holds
        conn.execute("DELETE FROM schema_migrations WHERE version = ?", (MIGRATIONS[-1][0],))
    assert open_lite(f"sqlite:///{older}", BUSY) is None  # the full store migrates it first


def test_lite_lists_sessions_as_the_sql_store_does(store: Store, home: Path, settings: Settings) -> None:
    seed(store, home)
    lite = open_lite(settings.resolved_store_url, BUSY)
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


# What the modules of the run path (``baton run``'s app, command and runner) may import of what is not
# the standard library: nothing heavy (SQLAlchemy loads when a store is opened, pydantic when Typer parses).
RUN_PATH_PACKAGES = {"annotated_doc", "baton", "platformdirs", "shellingham", "tenacity", "typer"}
# Modules they add to a bare interpreter, counted rather than timed (a loaded CI machine times
# anything): 278 and 97 of baton's on 2026-11-26, with some room for growth. A new module on
# this path costs every `baton run`; defer it into the function that needs it, or raise this on purpose.
# Raised to 106 on 2026-11-27, on purpose: every run reads its egress policy (baton.allowlist,
# baton.sandbox.egress) and asks whether its key has a setup (baton.environment); the rest of both
# (the proxy, the namespace, the setup's runner) loads only for a run that uses it.
# Raised to 107 on 2026-11-29, on purpose: every agent start reads what its PATH's toolchains need
# (baton.sandbox.toolchains: a version manager's root opened in the walls).
# Raised to 108 on 2026-11-29 (later), on purpose: the entry point's Ctrl-C flag (baton.cli.interrupts,
# no imports of its own), which a run reads so an interrupt an import swallowed still cancels it.
RUN_PATH_MODULES, RUN_PATH_BATON_MODULES = 300, 108
SERVICE_PACKAGES = {"fastapi", "starlette", "httpx", "celery", "kombu", "uvicorn", "redis", "jinja2"}


def test_importing_the_run_path_imports_nothing_heavy_and_few_modules() -> None:
    """``import`` of the run path's modules, in a fresh interpreter: no third-party package beyond
    :data:`RUN_PATH_PACKAGES` (SQLAlchemy loads when a store is opened, ``baton.store.open_store``), and
    at most :data:`RUN_PATH_MODULES` modules."""
    code = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        "import baton.cli.shell, baton.cli.run, baton.runner.run\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    done = run([sys.executable, "-c", code], {})
    added = json.loads(done.stdout)
    packages = {name.split(".")[0] for name in added if not name.startswith("_")} - sys.stdlib_module_names
    assert packages <= RUN_PATH_PACKAGES, packages - RUN_PATH_PACKAGES
    assert len(added) <= RUN_PATH_MODULES, len(added)
    assert sum(name.startswith("baton") for name in added) <= RUN_PATH_BATON_MODULES


def test_baton_run_builds_its_command_alone_and_loads_no_service(
    baton_env: dict[str, str], src_repo: Path
) -> None:
    """A whole ``baton run`` (the fake agent, the SQLite store): the other command modules are not
    imported (:func:`baton.cli.shell.run_app`), nor anything of the service, the workers or Redis."""
    code = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
        "from baton.cli import main\n"
        f"main(['run', '--agent', 'fake', '--repo', {str(src_repo)!r}, '--thread', 't1', 'hi'])\n"
    )
    env = {**baton_env, "BATON_AGENTS_EXTRA": "fake=baton.testing.fake:from_settings"}
    done = run([sys.executable, "-c", code], env)
    assert done.returncode == 0 and "succeeded" in done.stdout, done.stderr
    loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert "baton.runner.run" in loaded and "sqlalchemy" in loaded  # it ran, on the SQL store
    assert not loaded & {"baton.cli.app", "baton.cli.serve", "baton.cli.sessions", "baton.service"}
    assert not {name.split(".")[0] for name in loaded} & SERVICE_PACKAGES
