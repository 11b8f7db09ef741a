"""The compatibility scenarios: a conversation started under one release of an agent CLI and carried
on under another, for each real CLI against its mock model server.

``BATON_COMPAT_FROM_<AGENT>`` names the binary that starts each conversation, ``BATON_COMPAT_TO_<AGENT>``
the one that carries it on (each defaults to the pinned CLI, so the suite runs the pinned column).
``make compat`` (bench/compat.py) runs them for the pinned version, the newest in the registry and two
older releases, and writes the table in docs/compat.md.

A turn carried on proves it got the history by the marker of the first turn in the model's request
(counts of messages differ across releases, which send different numbers of system messages).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from baton import Mode, Outcome, RunRequest, RunResult, run
from baton.agents import get_agent
from baton.errors import BadInput
from baton.settings import Settings
from baton.testing import MockModel
from tests.conftest import MOCKS, once, shared_conversation
from tests.sandbox.test_access_real import write_marker

pytestmark = [pytest.mark.slow, pytest.mark.compat]
SCENARIOS = ("fresh", "resume", "hydrate", "fork", "handoff", "tool")


@pytest.fixture(params=sorted(MOCKS))
def agent(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def binary(agent: str, end: str) -> str:
    """The binary of one end of the upgrade (``""``: the pinned CLI, as settings resolve it)."""
    path = os.environ.get(f"BATON_COMPAT_{end}_{agent.upper()}", "")
    if path and not Path(path).is_file():
        raise AssertionError(f"BATON_COMPAT_{end}_{agent.upper()}={path} is not a file")
    return path


def under(settings: Settings, agent: str, end: str) -> Settings:
    return settings.with_(**{f"{agent}_bin": binary(agent, end)})


def turn(
    settings: Settings,
    agent: str,
    repo: Path,
    prompt: str,
    thread: str = "t",
    mode: Mode = Mode.AUTO,
    fork_from: str | None = None,
    handoff_from: str | None = None,
) -> RunResult:
    request = RunRequest(
        agent=agent,
        repo=str(repo),
        thread=thread,
        prompt=prompt,
        mode=mode,
        fork_from=fork_from,
        handoff_from=handoff_from,
    )
    result = run(request, settings=settings)
    assert result.run.outcome == Outcome.SUCCEEDED, (result.run.mode, result.run.error, result.run.note)
    return result


def carried(model: MockModel, marker: str) -> None:
    """The latest request to the model held the first turn's marker: the history was carried on."""
    assert marker in model.texts()[-1], f"{marker} missing from the request: the history was lost"


@dataclass(frozen=True)
class CarriedOn:
    """A conversation's first turn under FROM, which writes a file through the CLI's own tool, and the
    next under TO (:func:`carried_on`); the text of the model's last request, and the file written."""

    first: RunResult
    second: RunResult
    last_text: str
    made: str | None  # made.txt in the worktree after the first turn (None: not written)


@pytest.fixture
def carried_on(
    agent: str, conversations: dict[object, object], tmp_path_factory: pytest.TempPathFactory
) -> CarriedOn:
    """Two turns of one conversation, driven once per agent and read by :func:`test_fresh`,
    :func:`test_resume` and :func:`test_tool` (each only reads what they did)."""

    def drive() -> CarriedOn:
        with shared_conversation(agent, "compat", tmp_path_factory) as (settings, repo, server):
            prompt = f"FRESH-MARK RESUME-MARK TOOL-MARK remember this, write it {write_marker(agent)}"
            first = turn(under(settings, agent, "FROM"), agent, repo, prompt)
            made = Path(first.session.worktree) / "made.txt"
            written = made.read_text() if made.is_file() else None
            second = turn(under(settings, agent, "TO"), agent, repo, "what did I say, what did you write?")
            return CarriedOn(first, second, server.texts()[-1], written)

    return once(conversations, tmp_path_factory, f"compat-carried-on-{agent}", drive)


def test_fresh(carried_on: CarriedOn) -> None:
    first, after = carried_on.first, carried_on.second
    assert first.run.mode == Mode.FRESH and first.session.agent_session_id
    assert first.run.cli_version, "the run records the CLI's version"
    assert after.run.mode == Mode.RESUME, after.run.note


def test_resume(carried_on: CarriedOn) -> None:
    first, second = carried_on.first, carried_on.second
    assert second.run.mode == Mode.RESUME, second.run.note
    assert second.session.agent_session_id == first.session.agent_session_id
    assert "RESUME-MARK" in carried_on.last_text, "RESUME-MARK missing from the request: the history was lost"


def test_tool(carried_on: CarriedOn) -> None:
    """The first turn's tool call edited the worktree, and the resumed turn carried that turn on."""
    assert carried_on.made == "made by the agent\n", "the tool call edited the file"
    assert carried_on.second.run.mode == Mode.RESUME, carried_on.second.run.note
    assert "TOOL-MARK" in carried_on.last_text, "TOOL-MARK missing from the request: the history was lost"


def test_hydrate(agent: str, settings: Settings, src_repo: Path, model: MockModel) -> None:
    first = turn(under(settings, agent, "FROM"), agent, src_repo, "HYDRATE-MARK remember this")
    shutil.rmtree(settings.home / "homes" / agent)  # a redeploy on a disk that is not persistent
    shutil.rmtree(settings.home / "keys" / agent)
    model.configure_home(settings.home / "homes" / agent)
    second = turn(under(settings, agent, "TO"), agent, src_repo, "what did I say?")
    assert second.run.mode == Mode.RESUME and "hydrated" in str(second.run.note), second.run.note
    assert second.session.agent_session_id == first.session.agent_session_id
    carried(model, "HYDRATE-MARK")


def test_fork(agent: str, settings: Settings, src_repo: Path, model: MockModel) -> None:
    first = turn(under(settings, agent, "FROM"), agent, src_repo, "FORK-MARK the plan", thread="dev")
    if not get_agent(agent, settings).capabilities.fork:  # refused before anything is written
        request = RunRequest(
            agent=agent, repo=str(src_repo), thread="review", prompt="r", mode=Mode.FORK, fork_from="dev"
        )
        with pytest.raises(BadInput, match=f"agent '{agent}' cannot run in mode 'fork'"):
            run(request, settings=under(settings, agent, "TO"))
        assert not list((settings.home / "worktrees").rglob("review")), "nothing written"
        return
    review = turn(
        under(settings, agent, "TO"),
        agent,
        src_repo,
        "review it",
        thread="review",
        mode=Mode.FORK,
        fork_from="dev",
    )
    assert review.run.mode == Mode.FORK
    assert review.session.agent_session_id not in (None, first.session.agent_session_id)
    carried(model, "FORK-MARK")


def test_handoff(agent: str, settings: Settings, src_repo: Path, model: MockModel) -> None:
    turn(settings, "fake", src_repo, "HANDOFF-MARK the fake agent's work")
    handed = turn(under(settings, agent, "FROM"), agent, src_repo, "take over", handoff_from="fake")
    carried(model, "HANDOFF-MARK")
    after = turn(under(settings, agent, "TO"), agent, src_repo, "go on")
    assert after.run.mode == Mode.RESUME and after.session.agent_session_id == handed.session.agent_session_id
    carried(model, "HANDOFF-MARK")
