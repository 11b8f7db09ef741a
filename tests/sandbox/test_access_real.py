"""Access levels proven with each REAL agent CLI (Claude Code, Codex, Gemini) through ``baton.run``,
against its mock model server, whose ``[[tool:NAME ARGS]]`` markers make the CLI call a tool of the
test's choosing (baton/testing/tools.py).

One conversation per CLI, three turns in one worktree (a git worktree of baton's cache clone, whose
gitdir is outside the worktree):

1. ``read``: the CLI's file-writing tool call is refused, the worktree is unchanged, the turn still
   succeeds;
2. ``edit`` (resumed): the same call lands the file; a ``git commit`` is refused;
3. ``full`` (resumed): a shell command writes a file and commits it: the worktree's ``git log`` has
   the agent's commit.

The refusal texts asserted here are the measured ones of docs/agent-clis.md ("Access levels").
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from baton import Outcome, RunRequest, RunResult, run
from baton.agents import get_agent
from baton.models import Access
from baton.settings import Settings
from baton.testing import MockModel
from baton.testing.tools import tool_marker
from tests.conftest import MOCKS, git

pytestmark = pytest.mark.slow

PATCH = "*** Begin Patch\n*** Add File: made.txt\n+made by the agent\n*** End Patch\n"
COMMIT = "git add -A && git commit -q -m agent-commit"
SHELL = f"echo built > built.txt && {COMMIT} && echo committed"


def shell_marker(agent: str, command: str) -> str:
    if agent == "claude":
        return tool_marker("Bash", command=command)
    if agent == "codex":  # no login shell (its default): only what the test asks runs
        return "[[tool:exec_command " + json.dumps({"cmd": command, "login": False}) + "]]"
    if agent == "copilot":
        return tool_marker("bash", command=command, description="run it")
    if agent == "opencode":
        return tool_marker("bash", command=command)
    return tool_marker("run_shell_command", command=command)


def write_marker(agent: str) -> str:
    if agent == "claude":
        return tool_marker("Write", file_path="made.txt", content="made by the agent\n")
    if agent in ("codex", "copilot"):  # both offer the freeform apply_patch
        return tool_marker("apply_patch", input=PATCH)
    if agent == "opencode":  # its apply_patch (for GPT models) takes the same patch as JSON
        return tool_marker("apply_patch", patchText=PATCH)
    return tool_marker("write_file", file_path="made.txt", content="made by the agent\n")


@dataclass(frozen=True)
class Refusals:
    """How each CLI refuses (substrings of the tool results it sends back to the model)."""

    read_write: str  # the write tool call at `read`
    edit_commit: str  # the commit at `edit`


REFUSALS = {
    "claude": Refusals("No such tool available: Write", "require approval: git add -A, git commit"),
    # walled in, Codex runs its own sandbox off (it cannot run inside Landlock): the walls refuse
    "codex": Refusals("Failed to write file", "index.lock': Permission denied"),
    "gemini": Refusals('Tool "write_file" not found', "Tool execution denied by policy."),
    "copilot": Refusals("following rules: `write`", "following rules: `shell`"),
    # its permission config at read and edit: the tools are not even offered
    "opencode": Refusals("unavailable tool 'apply_patch'", "unavailable tool 'bash'"),
}


# the agents whose model is the OpenAI mock (the Responses API)
OPENAI_WIRE = ("codex", "copilot", "opencode")


def text(value: Any) -> str:
    """The strings inside a tool result (a string, or JSON objects and lists of them), joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    return "\n".join(text(v) for v in value) if isinstance(value, list) else ""


def tool_results(agent: str, model: MockModel) -> list[str]:
    """What the CLI sent back for the tool calls of the latest turn, as text (from the last request)."""
    last: Any = model.conversation()[-1]  # type: ignore[attr-defined]
    if agent == "claude":
        blocks = [b for b in last.messages[-1]["content"] if isinstance(b, dict)]
        return [text(b.get("content")) for b in blocks if b.get("type") == "tool_result"]
    if agent in OPENAI_WIRE:  # the outputs after the turn's user message
        items = last.input[max(i for i, item in enumerate(last.input) if item.get("role") == "user") :]
        return [text(i.get("output")) for i in items if str(i.get("type")).endswith("_call_output")]
    parts = last.contents[-1]["parts"]  # the user content holding the turn's function responses
    return [text(p["functionResponse"]["response"]) for p in parts if "functionResponse" in p]


@pytest.fixture(params=sorted(MOCKS))
def agent(request: pytest.FixtureRequest, settings: Settings) -> str:
    name = str(request.param)
    version = get_agent(name, settings).version()  # the CLI missing fails the test (it never skips)
    assert version, f"the real {name} CLI did not answer --version"
    print(f"real {name} CLI: {version}")
    return name


@pytest.fixture
def model(
    agent: str, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[MockModel]:
    # An empty HOME, as the runner's environment allow-list gives agents: the shells the CLIs start
    # then skip this machine's ~/.bashrc, whose `pyenv rehash` can wait a minute for a lock.
    (tmp_path / "user-home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    monkeypatch.delenv("BATON_GEMINI_MODEL", raising=False)
    monkeypatch.delenv("GEMINI_MODEL", raising=False)
    module, name = MOCKS[agent]
    with getattr(importlib.import_module(module), name)() as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        server.configure_home(settings.home / "homes" / agent)
        yield server


def test_read_edit_full_in_one_conversation(
    agent: str, settings: Settings, src_repo: Path, model: MockModel
) -> None:
    def turn(access: Access, prompt: str) -> RunResult:
        request = RunRequest(agent=agent, repo=str(src_repo), thread="access", prompt=prompt, access=access)
        result = run(request, settings=settings)
        assert result.run.outcome == Outcome.SUCCEEDED, (access, result.run.error)
        assert result.run.access == access
        assert result.run.result and "mock reply" in result.run.result
        return result

    refusals = REFUSALS[agent]
    first = turn(Access.READ, f"write it {write_marker(agent)}")
    worktree = Path(first.session.worktree)
    on_disk: Callable[[], set[str]] = lambda: {  # noqa: E731
        line.strip() for line in git(worktree, "status", "--porcelain", "--untracked-files=all").splitlines()
    }
    head = git(worktree, "rev-parse", "HEAD")
    assert (worktree / ".git").is_file(), "a git worktree: its gitdir is elsewhere"
    results = tool_results(agent, model)
    assert len(results) == 1 and refusals.read_write in results[0], results
    assert on_disk() == set() and not (worktree / "made.txt").exists()

    second = turn(Access.EDIT, f"write it {write_marker(agent)} then {shell_marker(agent, COMMIT)}")
    assert second.run.mode.value == "resume" and second.session.worktree == str(worktree)
    results = tool_results(agent, model)
    assert len(results) == 2 and refusals.edit_commit in results[1], results
    assert (worktree / "made.txt").read_text() == "made by the agent\n"
    assert on_disk() == {"?? made.txt"} and git(worktree, "rev-parse", "HEAD") == head

    turn(Access.FULL, f"build and commit {shell_marker(agent, SHELL)}")
    results = tool_results(agent, model)
    assert len(results) == 1 and "committed" in results[0], results
    assert (worktree / "built.txt").read_text() == "built\n"
    assert on_disk() == set(), "everything committed"
    assert git(worktree, "log", "--format=%s", f"{head}..HEAD") == "agent-commit"
    assert set(git(worktree, "show", "--name-only", "--format=", "HEAD").split()) == {"built.txt", "made.txt"}
