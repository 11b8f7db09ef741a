"""A store that stops answering while the agent works keeps the turn (:mod:`baton.runner.patience`):
a private PostgreSQL (``tests.restartable``) is stopped while the fake agent runs and started again
after the agent ended; the run's ending waits for it and the record says ``succeeded``, with the
transcript's snapshot stored and the key free afterwards. Past ``store_wait`` the run fails with the
store's words, its work stays in the worktree, and the key's next run carries on from it."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest

from baton.errors import StoreError
from baton.models import Outcome
from baton.runner.request import RunRequest, RunResult
from baton.runner.run import run
from baton.settings import Settings
from baton.store import open_store
from tests.conftest import wait_for
from tests.restartable import RestartablePostgres, private_pg_fixture  # noqa: F401 (fixtures)

SERVICE_FIXTURES = {"private_pg": "postgres"}
pytestmark = pytest.mark.slow


def request(src_repo: Path, prompt: str) -> RunRequest:
    return RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt=prompt)


def in_thread(req: RunRequest, settings: Settings) -> tuple[threading.Thread, dict[str, object]]:
    out: dict[str, object] = {}

    def go() -> None:
        try:
            out["result"] = run(req, settings)
        except BaseException as exc:  # the test reads it
            out["error"] = exc

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, out


def agent_started(settings: Settings) -> bool:
    """The second run's agent is up (the first run ended)."""
    store = open_store(settings.resolved_store_url)
    try:
        runs = store.list_runs("fake", limit=5)
        return len(runs) == 2 and runs[0].ended_at is None and runs[0].agent_pid is not None
    finally:
        store.close()


def test_a_store_down_when_the_turn_ends_keeps_the_turn(
    settings: Settings, src_repo: Path, private_pg: RestartablePostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = dataclasses.replace(settings, store_url=private_pg.url, store_wait=120.0)
    assert run(request(src_repo, "first"), settings).ok  # the session and its first snapshot
    monkeypatch.setenv("FAKE_AGENT_DELAY", "2")
    monkeypatch.setenv("FAKE_AGENT_WRITE", "notes.md")
    thread, out = in_thread(request(src_repo, "second"), settings)
    wait_for(lambda: agent_started(settings), timeout=60, what="the agent's start")
    private_pg.stop()
    time.sleep(6)  # the agent ends meanwhile (2 s); its ending waits for the store
    assert thread.is_alive(), out
    private_pg.start()
    thread.join(timeout=120)
    assert not thread.is_alive() and "error" not in out, out.get("error")
    result = out["result"]
    assert isinstance(result, RunResult) and result.ok, result
    store = open_store(settings.resolved_store_url)
    try:
        [last, _first] = store.list_runs("fake", limit=5)
        assert last.outcome == Outcome.SUCCEEDED and last.ended_at is not None
        assert store.get_snapshot("fake", last.repo, "t1") is not None
    finally:
        store.close()
    monkeypatch.delenv("FAKE_AGENT_DELAY")
    assert run(request(src_repo, "third"), settings).ok  # the key is free, the conversation goes on


def test_past_store_wait_the_run_fails_and_the_next_run_carries_on(
    settings: Settings, src_repo: Path, private_pg: RestartablePostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = dataclasses.replace(settings, store_url=private_pg.url, store_wait=2.0)
    assert run(request(src_repo, "first"), settings).ok
    monkeypatch.setenv("FAKE_AGENT_DELAY", "1")
    monkeypatch.setenv("FAKE_AGENT_WRITE", "notes.md")
    thread, out = in_thread(request(src_repo, "second"), settings)
    wait_for(lambda: agent_started(settings), timeout=60, what="the agent's start")
    private_pg.stop()
    thread.join(timeout=120)
    assert isinstance(out.get("error"), StoreError), out
    assert "cannot reach the store" in str(out["error"])
    private_pg.start()
    monkeypatch.delenv("FAKE_AGENT_DELAY")
    # its lease could not be given back while the store was down: it expires (another process on this
    # host would take it at once, its holder's pid being gone; this one is the same process)
    third = run(dataclasses.replace(request(src_repo, "third"), wait=30.0), settings)
    assert third.ok
    notes = (Path(third.session.worktree) / "notes.md").read_text()
    assert "turn 2: second" in notes  # the failed run's work is still there
    assert "turn 3: Your previous turn in this conversation was interrupted" in notes  # and is told
