"""The real Claude Code CLI in a prepared room: a repository whose ``.baton/setup.sh`` makes ``.venv``
from wheels it ships; the mock model asks for a Bash call of ``.venv/bin/python -m pytest``, and the
tool result Claude sends back says the project's test passed — in the key's worktree, in its walls."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from baton import Outcome, RunRequest, run
from baton.agents import get_agent
from baton.models import Access
from baton.settings import Settings
from baton.testing import MockModel
from baton.testing.mock_anthropic import MockAnthropic
from baton.testing.tools import tool_marker
from tests.runner.test_setup import python_repo

pytestmark = pytest.mark.slow


@pytest.fixture
def model(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MockModel]:
    (tmp_path / "user-home").mkdir()  # an empty HOME: the CLI's shell skips this machine's rc files
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    with MockAnthropic() as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        server.configure_home(settings.home / "homes" / "claude")
        yield server


def tool_results(model: MockModel) -> list[str]:
    last: Any = model.conversation()[-1]  # type: ignore[attr-defined]
    blocks = [b for b in last.messages[-1]["content"] if isinstance(b, dict)]
    found = []
    for block in blocks:
        if block.get("type") == "tool_result":
            content = block.get("content")
            parts = content if isinstance(content, list) else [{"text": content}]
            found.append("\n".join(str(p.get("text", "")) for p in parts if isinstance(p, dict)))
    return found


def test_claude_runs_the_projects_tests_in_its_prepared_room(
    settings: Settings, tmp_path: Path, model: MockModel
) -> None:
    version = get_agent("claude", settings).version()
    assert version, "the real claude CLI did not answer --version"
    print(f"real claude CLI: {version}")
    repo = python_repo(tmp_path / "py")
    prompt = "run the tests " + tool_marker("Bash", command=".venv/bin/python -m pytest -q tests")
    request = RunRequest(agent="claude", repo=str(repo), thread="tests", prompt=prompt, access=Access.FULL)
    result = run(request, settings=settings)
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    assert result.run.confined
    assert "environment: setup from .baton/setup.sh" in (result.run.note or "")
    results = tool_results(model)
    assert len(results) == 1 and "1 passed" in results[0], results
    first = model.conversation()[0]  # type: ignore[attr-defined]
    assert "baton prepared your working directory" in str(first.messages)
