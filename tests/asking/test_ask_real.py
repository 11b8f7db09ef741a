"""A thread can ask, and wait: every REAL agent CLI calls baton's ``ask_human`` (the ``baton`` MCP server,
configured through the CLI's own MCP configuration) through its mock model, the turn ends
``needs_input`` with the question, and a person's answer resumes the SAME conversation (the mock counts
its history) with the question and the answer as the next turn's prompt."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from baton import Outcome, RunRequest, open_store, run
from baton.asking.questions import Question, answer_prompt
from baton.models import Access
from baton.settings import Settings
from baton.testing import MockModel
from baton.testing.mock_openai import MODEL, MockOpenAI
from tests.conftest import FIRST, MOCKS, make_repo

pytestmark = pytest.mark.slow

QUESTION = "Which colour: the spec says red, the test says blue?"
ASK = "[[tool:ask_human " + json.dumps({"question": QUESTION, "options": ["red", "blue"]}) + "]]"


@pytest.fixture(params=sorted(MOCKS))
def agent(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_agent_asks_the_turn_waits_and_the_answer_resumes_the_same_conversation(
    agent: str, settings: Settings, model: MockModel, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "src")
    asked = run(RunRequest(agent=agent, repo=str(repo), thread="issue-1", prompt=f"Decide. {ASK}"), settings)
    assert asked.run.outcome == Outcome.NEEDS_INPUT, asked.to_json()
    record = asked.attempts[-1]
    assert len(asked.attempts) == 1  # never retried
    question = Question.from_json(record.question)
    assert question == Question(QUESTION, ("red", "blue"))
    store = open_store(settings.resolved_store_url)
    session = store.get_session(agent, record.repo, "issue-1")
    stored = store.get_run(record.id)
    store.close()
    assert session is not None and session.last_outcome == Outcome.NEEDS_INPUT
    assert stored is not None and stored.question == record.question
    prompt = answer_prompt(question, "blue, the test is right", "alice")
    answered = run(RunRequest(agent=agent, repo=str(repo), thread="issue-1", prompt=prompt), settings)
    assert answered.run.outcome == Outcome.SUCCEEDED, answered.to_json()
    assert answered.attempts[-1].session_id_in == record.session_id_out  # the same native session
    counts = model.history_counts()
    assert counts[0] == FIRST[agent] and counts[-1] > counts[0], counts  # the history came with it
    assert "blue, the test is right" in model.texts()[-1]


def test_the_agent_may_ask_at_read_access(
    agent: str, settings: Settings, model: MockModel, tmp_path: Path
) -> None:
    """Asking writes nothing a person did not allow: the tool is given at every access level."""
    repo = make_repo(tmp_path / "src")
    request = RunRequest(
        agent=agent, repo=str(repo), thread="issue-2", prompt=f"Look. {ASK}", access=Access.READ
    )
    asked = run(request, settings)
    assert asked.run.outcome == Outcome.NEEDS_INPUT, asked.to_json()
    assert asked.run.question is not None and asked.run.question["options"] == ["red", "blue"]


def test_codex_set_up_from_the_environment_alone_asks(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Codex as docs/agents.md's offline block sets it up: the mock's ``--print-env`` exports, eval'd, and
    no config.toml. Under Codex's default model its request offered no tool (only "Deferred tool
    namespaces: mcp__baton", no tool_search), so it never asked; the exports name the model."""
    with MockOpenAI() as mock:
        [line] = [x for x in mock.shell_lines() if x.startswith("export ")]
        for word in shlex.split(line.removeprefix("export ")):
            name, _, value = word.partition("=")
            monkeypatch.setenv(name, value)
        repo = make_repo(tmp_path / "src")
        asked = run(
            RunRequest(agent="codex", repo=str(repo), thread="env", prompt=f"Decide. {ASK}"), settings
        )
        assert asked.run.outcome == Outcome.NEEDS_INPUT, asked.to_json()
        question = Question.from_json(asked.run.question)
        assert question is not None and question.text == QUESTION
        assert mock.conversation()[-1].body["model"] == MODEL
        assert (
            not (settings.home / "homes" / "codex" / "config.toml").exists()
            or "model =" not in (settings.home / "homes" / "codex" / "config.toml").read_text()
        )
