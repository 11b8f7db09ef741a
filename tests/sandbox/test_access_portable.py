"""What an agent edits through its tools is the key's work like any other: the real Claude Code CLI,
at access ``edit`` and walled in, writes a file with its Write tool; the file is checkpointed, comes
back after the worktree is wiped, and moves with the key to another worker (another BATON_HOME on the
same store)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from baton import RunRequest, RunResult, run
from baton.models import Access
from baton.settings import Settings, load_settings
from baton.testing.mock_anthropic import MockAnthropic
from baton.testing.tools import tool_marker
from tests.conftest import FAST

pytestmark = pytest.mark.slow


def worker(tmp_path: Path, name: str, store_url: str) -> Settings:
    return load_settings(overrides={"home": str(tmp_path / name), "store_url": store_url, **FAST}, environ={})


def test_a_file_the_agent_wrote_survives_a_wiped_worktree_and_moves_to_another_worker(
    tmp_path: Path, store_url: str, src_repo: Path, mock: MockAnthropic, claude_bin: str
) -> None:
    a, b = worker(tmp_path, "worker-a", store_url), worker(tmp_path, "worker-b", store_url)

    def turn(settings: Settings, prompt: str) -> RunResult:
        request = RunRequest(
            agent="claude", repo=str(src_repo), thread="t1", prompt=prompt, access=Access.EDIT
        )
        result = run(request, settings=dataclasses.replace(settings, claude_bin=claude_bin))
        assert result.ok, result.run.error
        return result

    first = turn(a, "look around")
    made = Path(first.session.worktree) / "made-by-claude.txt"
    wrote = turn(a, f"write it {tool_marker('Write', file_path=str(made), content='written by the agent')}")
    assert wrote.run.confined is True and wrote.run.access == Access.EDIT
    assert made.read_text() == "written by the agent", "the Write tool call landed in the worktree"

    shutil.rmtree(made.parent)  # the worktree is lost (a wiped volume)
    back = turn(a, "where were we")
    assert made.read_text() == "written by the agent", back.run.note
    assert back.session.agent_session_id == first.session.agent_session_id

    moved = turn(b, "carry on elsewhere")
    there = Path(moved.session.worktree) / made.name
    assert there.read_text() == "written by the agent"
    assert moved.session.agent_session_id == first.session.agent_session_id
