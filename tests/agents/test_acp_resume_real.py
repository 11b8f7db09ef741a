"""How the REAL ACP agents' conversations are restored (:func:`baton.agents.acpbridge.restore`), against
their mocks: ``session/resume`` where the pinned release advertises it in ``initialize``
(``agentCapabilities.sessionCapabilities.resume``: OpenCode 1.18.33), else ``session/load`` (Copilot CLI
1.0.102 advertises ``close`` and ``list`` only), and either way the resumed turn's request carries the
whole history (the mock's counts grow by 2 a turn, the first prompt's words are in the last request)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from baton import Mode, RunRequest, RunResult, run
from baton.settings import Settings
from baton.testing import MockModel
from tests.conftest import FIRST

pytestmark = pytest.mark.slow

# what each pinned release advertises, measured: the restore baton takes for it
PINNED = {"copilot": "session/load", "opencode": "session/resume"}


@pytest.fixture(params=sorted(PINNED))
def agent(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def go(settings: Settings, agent: str, repo: Path, prompt: str) -> RunResult:
    result = run(RunRequest(agent=agent, repo=str(repo), thread="t", prompt=prompt), settings=settings)
    assert result.ok, (result.run.mode, result.run.error)
    return result


def session_event(result: RunResult) -> dict[str, Any]:
    """The bridge's ``acp.session`` event of the turn (its restore, and the agent's ``initialize``)."""
    log = [json.loads(line) for line in Path(result.run.log_path).read_text().splitlines()]
    return next(e for e in log if e.get("type") == "acp.session")


def test_a_conversation_is_restored_as_the_cli_advertises_with_its_whole_history(
    agent: str, settings: Settings, src_repo: Path, model: MockModel
) -> None:
    first = go(settings, agent, src_repo, "outline the parser")
    turns = [go(settings, agent, src_repo, prompt) for prompt in ("write it", "test it")]
    assert all(t.run.mode == Mode.RESUME for t in turns)
    assert {t.session.agent_session_id for t in turns} == {first.session.agent_session_id}
    events = [session_event(t) for t in turns]
    capabilities = events[0]["agent"]["agentCapabilities"].get("sessionCapabilities", {})
    print(f"{agent} {events[0]['agent'].get('agentInfo')}: sessionCapabilities {sorted(capabilities)}")
    assert ("resume" in capabilities) is (PINNED[agent] == "session/resume"), capabilities
    assert [e["restored"] for e in events] == [PINNED[agent]] * 2
    if PINNED[agent] == "session/load":  # a load replays the history, more of it every turn
        assert 0 < events[0]["replayed"] < events[1]["replayed"], events
    assert model.history_counts() == [FIRST[agent] + 2 * i for i in range(3)]
    assert "outline the parser" in model.texts()[-1] and "write it" in model.texts()[-1]
    assert f"received {FIRST[agent] + 4}" in str(turns[-1].run.result)
