"""A BATON_HOME that a run makes is private under the usual umask (022): the home 0700, the SQLite
store (and its -wal and -shm) and the run's event log 0600 — whichever store the run uses, and never a
change to a home that exists."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from baton import Outcome, RunRequest, open_store, run
from baton.settings import Settings
from baton.testing.mock_anthropic import MockAnthropic

pytestmark = pytest.mark.usefixtures("umask_022")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def go(settings: Settings, repo: Path) -> None:
    result = run(RunRequest(agent="fake", repo=str(repo), thread="t1", prompt="do it"), settings=settings)
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error


def test_a_run_makes_its_new_home_0700_and_its_store_and_log_0600(settings: Settings, src_repo: Path) -> None:
    assert not settings.home.exists()
    go(settings, src_repo)
    home = settings.home
    store = open_store(settings.resolved_store_url)
    try:
        store.list_sessions()  # a connection open: SQLite's -wal and -shm are there
        files = [home / "baton.db", home / "baton.db-wal", home / "baton.db-shm"]
        logs = sorted((home / "logs").glob("*.jsonl"))
        assert logs and all(f.exists() for f in files)
        assert (mode(home), mode(home / "logs")) == (0o700, 0o700)
        assert {f.name: mode(f) for f in [*files, *logs]} == {f.name: 0o600 for f in [*files, *logs]}
    finally:
        store.close()


def test_a_run_on_postgresql_makes_its_new_home_0700_too(
    settings: Settings, src_repo: Path, pg_url: str
) -> None:
    """No SQLite file makes the home here: the run's first write does."""
    settings = settings.with_(store_url=pg_url)
    go(settings, src_repo)
    logs = list((settings.home / "logs").glob("*.jsonl"))
    assert not (settings.home / "baton.db").exists() and logs
    assert mode(settings.home) == 0o700 and {mode(p) for p in logs} == {0o600}


def test_a_home_that_exists_keeps_the_mode_its_operator_gave_it(settings: Settings, src_repo: Path) -> None:
    """Shared with a group on purpose: baton does not take it back (``baton doctor`` says it)."""
    settings.home.mkdir(mode=0o750)
    settings.home.chmod(0o750)
    go(settings, src_repo)
    assert mode(settings.home) == 0o750
    assert mode(settings.home / "baton.db") == 0o600  # what baton makes in it is still private


@pytest.mark.slow
def test_the_real_claude_cli_walled_in_works_in_a_private_home(
    settings: Settings, src_repo: Path, mock: MockAnthropic
) -> None:
    """The agent (baton's own user, behind its walls, in its own mount namespace where baton may make
    one) reaches its worktree and home through a 0700 BATON_HOME: a conversation, resumed."""
    results = [
        run(RunRequest(agent="claude", repo=str(src_repo), thread="t1", prompt=p), settings=settings)
        for p in ("one", "two")
    ]
    assert [r.run.outcome for r in results] == [Outcome.SUCCEEDED] * 2, [r.run.error for r in results]
    assert [r.run.mode for r in results] == ["fresh", "resume"] and all(r.run.confined for r in results)
    assert mock.message_counts() == [2, 4]
    assert mode(settings.home) == 0o700
