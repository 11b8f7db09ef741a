"""Each REAL agent CLI (Claude Code, Codex, Gemini, Copilot, OpenCode) in a prepared room: a repository
whose ``.baton/setup.sh`` makes ``.venv`` from wheels it ships (a package of its own and pytest); the
mock model asks for a shell call of ``.venv/bin/python -m pytest`` through the CLI's own shell tool, at
access ``full``, and the tool result the CLI sends back says the project's test passed — in the key's
worktree, in its walls. One turn per CLI. A second thread of the same repository gets the same
preparation without running the setup again (Claude Code, the fastest to start)."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton import Outcome, RunRequest, RunResult, run
from baton.models import Access
from baton.settings import Settings
from baton.testing import MockModel
from tests.runner.test_setup import python_repo, setup_count
from tests.sandbox.test_access_real import agent as agent  # the fixtures: each real CLI, its mock
from tests.sandbox.test_access_real import model as model
from tests.sandbox.test_access_real import shell_marker, tool_results

pytestmark = pytest.mark.slow

TESTS = ".venv/bin/python -m pytest -q tests"


def run_the_tests(settings: Settings, repo: Path, agent: str, thread: str) -> RunResult:
    """One turn at ``full`` whose model asks for the project's tests through the CLI's shell tool."""
    prompt = f"run the tests {shell_marker(agent, TESTS)}"
    request = RunRequest(agent=agent, repo=str(repo), thread=thread, prompt=prompt, access=Access.FULL)
    result = run(request, settings=settings)
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    assert result.run.confined
    return result


def test_the_agent_runs_the_projects_tests_in_its_prepared_room(
    agent: str, settings: Settings, tmp_path: Path, model: MockModel
) -> None:
    repo = python_repo(tmp_path / "py")
    result = run_the_tests(settings, repo, agent, "tests")
    assert "environment: setup from .baton/setup.sh" in (result.run.note or "")
    results = tool_results(agent, model)
    assert len(results) == 1 and "1 passed" in results[0], results
    assert "baton prepared your working directory" in model.texts()[0]
    assert setup_count(settings) == 1


@pytest.mark.parametrize("agent", ["claude"])
def test_a_second_thread_runs_its_tests_on_the_same_preparation(
    agent: str, settings: Settings, tmp_path: Path, model: MockModel
) -> None:
    repo = python_repo(tmp_path / "py")
    first = run_the_tests(settings, repo, agent, "one")
    second = run_the_tests(settings, repo, agent, "two")
    assert second.session.worktree != first.session.worktree
    assert "was ready (a hit)" in (second.run.note or ""), second.run.note
    assert "preparations 1, hits 1" in (second.run.note or "")
    results = tool_results(agent, model)
    assert len(results) == 1 and "1 passed" in results[0], results
    assert setup_count(settings) == 1
