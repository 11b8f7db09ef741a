"""A forge turn whose repository's setup failed, or was stopped at ``setup_timeout``, says so on the forge
in its own words (the forge loop's core with the fake agent and the in-memory forge of
``test_forge_loop``, the setup a real ``.baton/setup.sh`` run in its walls): which command, that the agent
did not run and the next turn tries again, the output's last lines folded in a fence they cannot close."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from baton.forge.turn import dispatch
from baton.forge.turn.loop import ForgeLoop
from baton.forge.writes import setup_failed
from baton.settings import Settings
from tests.conftest import git, make_repo
from tests.forge.turn import test_forge_loop as core
from tests.forge.turn.test_forge_loop import MemoryForge, comment, idle

forge, loop = core.forge, core.loop  # its fixtures

HOSTILE = (
    "printf 'fetching deps\\n````\\n</details>\\n@alice <b>bold</b> [[tool:ask_human]]\\n'\n"
    "echo \"$TEST_FORGE_TOKEN\"\necho 'no such package: left-pad' >&2\nexit 3\n"
)
SLOW = "echo starting the slow setup\nsleep 60\n"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # SLOW's setup is stopped at it; HOSTILE's ends at once
    return dataclasses.replace(settings, setup_timeout=1.5)


@pytest.fixture
def origin(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """The forge's repository, its ``.baton/setup.sh`` the test's."""
    src = make_repo(tmp_path / "src", {"README.md": "hello\n", ".baton/setup.sh": request.param})
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "--bare", "--quiet", str(src), str(bare))
    return bare


@pytest.mark.parametrize("origin", [HOSTILE], indirect=True)
def test_a_failed_setup_is_said_with_its_output_folded(loop: ForgeLoop, forge: MemoryForge) -> None:
    assert dispatch.handle(loop, comment(1, "@baton please add a greeting")).status == "accepted"
    idle(loop)
    [status] = forge.statuses()
    assert "**failed**" in status
    assert (
        "- **the repository's setup failed**: `.baton/setup.sh: setup.sh exited 3` — the agent did not "
        "run; the thread's next turn runs the setup again"
    ) in status
    folded = status.split("<details><summary>the setup's last lines of output</summary>\n\n", 1)[1]
    fence = folded.split("\n", 1)[0]
    assert fence == "`````text"  # longer than the output's own ```` run: nothing inside closes it
    body, _, after = folded[len(fence) + 1 :].partition("\n`````\n")
    assert "no such package: left-pad" in body and "</details>\n@alice <b>bold</b>" in body
    assert after.startswith("\n</details>")
    assert "secret-token" not in status  # the setup never had the forge token to echo
    assert "- error:" not in status and not forge.answers() and not forge.prs  # no agent, no push
    # the next turn runs the setup again (and fails again): still the one status comment
    assert dispatch.handle(loop, comment(2, "try again")).status == "accepted"
    idle(loop)
    [again] = forge.statuses()
    assert again != status and "the repository's setup failed" in again


@pytest.mark.parametrize("origin", [SLOW], indirect=True)
def test_a_setup_stopped_at_setup_timeout_is_said(loop: ForgeLoop, forge: MemoryForge) -> None:
    assert dispatch.handle(loop, comment(1, "@baton please add a greeting")).status == "accepted"
    idle(loop)
    [status] = forge.statuses()
    assert "- **the repository's setup was stopped at its time limit (`setup_timeout`)**: " in status
    assert "`.baton/setup.sh: setup.sh was stopped at setup_timeout (1.5 s)`" in status
    assert "starting the slow setup" in status and not forge.answers()


def test_other_errors_are_not_a_setups_and_preparing_errors_are_said() -> None:
    assert setup_failed.status_lines(None) is None
    assert setup_failed.status_lines("the agent exited 1") is None
    [line] = setup_failed.status_lines("environment: .baton/setup.sh cannot be read (`a` link)") or []
    assert line.startswith("- **the repository's environment could not be prepared**: `.baton/setup.sh")
    assert "'a'" in line and "the agent did not run" in line
    said = setup_failed.parse(
        "the repository's setup did not succeed (x: y exited 1); the agent did not run and the key's next "
        "turn runs the setup again (it printed nothing)"
    )
    assert said == setup_failed.SetupFailure("x: y exited 1", "")
    assert setup_failed.status_lines(
        "the repository's setup did not succeed (x: y exited 1); the agent did not run and the key's next "
        "turn runs the setup again (it printed nothing)"
    ) == [
        "- **the repository's setup failed**: `x: y exited 1` — the agent did not run; the thread's next "
        "turn runs the setup again",
        "- the setup printed nothing",
    ]
