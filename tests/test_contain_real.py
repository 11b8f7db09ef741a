"""Nothing of a run outlives it, with each REAL agent CLI (Claude Code, Codex, Gemini) at ``full``: its
mock model asks for a shell command that detaches processes every way there is (``setsid``, a double
fork, ``nohup`` + ``disown``, a cleared environment, 20 background jobs); when ``baton.run`` returns
none is left, the run's record says how many were ended, and the next turn's prompt tells the agent.
Then a memory hog asked for the same way ends its turn ``limited`` and the conversation resumes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from baton import Outcome, RunRequest, RunResult, run
from baton.models import Access
from baton.settings import Settings
from baton.testing import MockModel
from tests import test_access_real
from tests.test_access_real import shell_marker, tool_results
from tests.test_contain import alive, detach, tag

pytestmark = pytest.mark.slow
agent, model = test_access_real.agent, test_access_real.model  # the fixtures: each real CLI, its mock


def last_request(model: MockModel) -> str:
    """The latest conversation request the mock received, as text."""
    return json.dumps(model.conversation()[-1].__dict__, default=str)  # type: ignore[attr-defined]


def turn(agent: str, settings: Settings, repo: Path, prompt: str, **how: object) -> RunResult:
    request = RunRequest(
        agent=agent,
        repo=str(repo),
        thread="contain",
        prompt=prompt,
        access=Access.FULL,
        **how,  # type: ignore[arg-type]
    )
    return run(request, settings=settings)


def test_a_real_agents_detached_processes_end_with_its_turn(
    agent: str, settings: Settings, src_repo: Path, model: MockModel
) -> None:
    sleeping = tag()
    first = turn(agent, settings, src_repo, f"start the servers {shell_marker(agent, detach(sleeping))}")
    assert first.run.outcome == Outcome.SUCCEEDED, first.run.error
    results = tool_results(agent, model)
    assert len(results) == 1 and "started" in results[0], results  # the tool really ran
    assert alive(sleeping) == [], "a process the agent started outlived its turn"
    # the CLI's shell tool may end its command's process group itself (Codex does): at least the three
    # that left it in sessions of their own were baton's to end
    assert first.run.reaped is not None and first.run.reaped >= 3, (first.run.reaped, first.run.left_running)
    assert first.run.left_running and f"sleep {sleeping}" in first.run.left_running

    second = turn(agent, settings, src_repo, "go on")
    assert second.run.outcome == Outcome.SUCCEEDED and second.run.mode.value == "resume"
    sent = last_request(model)
    assert "Processes you left running in your previous turn were stopped" in sent
    assert f"sleep {sleeping}" in sent

    # (the next turn is told the interrupted instruction again, so its mock asks for the hog again: then
    # under the default limit it runs and ends at once)
    hog = f"{sys.executable} -c 'a = bytearray(700 * 2**20)'"
    third = turn(agent, settings, src_repo, f"load it {shell_marker(agent, hog)}", memory="300M", timeout=90)
    assert third.run.outcome == Outcome.LIMITED, (third.run.outcome, third.run.error)
    assert third.run.error and "memory limit of 300.0 MiB" in third.run.error
    fourth = turn(agent, settings, src_repo, "what happened?")
    assert fourth.run.outcome == Outcome.SUCCEEDED and fourth.run.mode.value == "resume"
    assert "memory limit of 300.0 MiB" in last_request(model)
