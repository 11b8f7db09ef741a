"""No run without an end: the setting run_timeout (wall time) and idle_timeout (no output), a run's
timeout winning over the setting; either ends the run ``timed_out`` with its conversation kept."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from baton import Outcome, PromptKind
from baton.runner.request import request_fields
from baton.settings import Settings, load_settings
from tests.runner.test_runner import go


def test_defaults_are_sane_and_documented(home: Path) -> None:
    settings = load_settings(environ={"BATON_HOME": str(home)})
    assert (settings.run_timeout, settings.idle_timeout) == (3600.0, 900.0)
    timeout = next(f for f in request_fields() if f.name == "timeout")
    assert "3600" in timeout.option.help and "900" in timeout.option.help


def test_the_idle_timeout_stops_a_silent_agent(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = go(settings, src_repo)
    monkeypatch.setenv("FAKE_AGENT_DELAY", "30")  # thinks for 30 s before it says anything
    started = time.monotonic()
    result = go(settings.with_(idle_timeout=1.0), src_repo, "silent")
    assert time.monotonic() - started < 20
    assert result.run.outcome == Outcome.TIMED_OUT
    assert result.run.error == (
        "stopped after 1 s without output (idle timeout); the conversation is kept and the next run is told "
        "this turn was interrupted"
    )
    monkeypatch.delenv("FAKE_AGENT_DELAY")
    after = go(settings, src_repo, "next")
    assert after.ok and after.run.prompt_kind == PromptKind.INTERRUPTED
    assert after.session.agent_session_id == first.session.agent_session_id


def test_the_run_timeout_setting_and_a_runs_own_timeout(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    go(settings, src_repo)
    monkeypatch.setenv("FAKE_AGENT_DELAY", "2")
    slow = go(settings.with_(run_timeout=0.5), src_repo, "slow")
    assert slow.run.outcome == Outcome.TIMED_OUT
    assert slow.run.error == (
        "stopped after the 0.5 s run timeout; the conversation is kept and the next run is told this turn "
        "was interrupted"
    )
    wins = go(settings.with_(run_timeout=0.5), src_repo, "given more", timeout=30)
    assert wins.ok, "a run's own timeout wins over the setting"
    unlimited = go(settings.with_(run_timeout=0, idle_timeout=0), src_repo, "no limits")
    assert unlimited.ok
