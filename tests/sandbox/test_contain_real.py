"""Nothing of a run outlives it, with each REAL agent CLI (Claude Code, Codex, Gemini) at ``full``: its
mock model asks for a shell command that detaches processes every way there is (``setsid``, a double
fork, ``nohup`` + ``disown``, a cleared environment, 20 background jobs); when ``baton.run`` returns
none is left, the run's record says how many were ended, and the next turn's prompt tells the agent.
Then a memory hog asked for the same way ends its turn ``limited`` and the conversation resumes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from baton import Outcome, RunRequest, RunResult, run
from baton.models import Access
from baton.settings import Settings
from baton.testing import MockModel
from tests.conftest import BATON, FAMILIES, FAST, wait_for
from tests.sandbox import test_access_real
from tests.sandbox.test_access_real import shell_marker, tool_results
from tests.sandbox.test_contain import alive, detach, killed_midway, tag

pytestmark = pytest.mark.slow
agent, model = test_access_real.agent, test_access_real.model  # the fixtures: each real CLI, its mock


def last_request(model: MockModel) -> str:
    """The latest conversation request the mock received, as text."""
    return json.dumps(model.conversation()[-1].__dict__, default=str)  # type: ignore[attr-defined]


def turn(
    agent: str, settings: Settings, repo: Path, prompt: str, thread: str = "contain", **how: object
) -> RunResult:
    request = RunRequest(
        agent=agent,
        repo=str(repo),
        thread=thread,
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


# what ends a run's processes on a timeout is what ends them on a cancel (the supervision loop's same
# kill_group, then the same reaping: baton.runner.process._supervise), so the CLI's side of a stop is
# each family's cancel below; the timeout's own side (its outcome, with the fake agent, run groups or
# the subreaper alone) is test_contain.py's test_a_timed_out_run_ends_its_detached_processes. One real
# CLI times out here, the cheapest to start.
@pytest.mark.parametrize("agent", ["claude"])
def test_a_real_agents_detached_processes_end_on_its_timeout(
    agent: str, settings: Settings, src_repo: Path, model: MockModel
) -> None:
    """The detaching command, then ``sleep 60`` in the same tool call: the turn is stopped by its
    timeout, and nothing of what the agent started is left once the run is over."""
    sleeping = tag()
    serve = f"serve {shell_marker(agent, detach(sleeping) + '; sleep 60')}"
    # long enough for the CLI to start and call its tool
    timed = turn(agent, settings, src_repo, serve, thread="timeout", timeout=8)
    assert timed.run.outcome == Outcome.TIMED_OUT, (timed.run.outcome, timed.run.error)
    assert alive(sleeping) == [] and timed.run.reaped is not None and timed.run.reaped >= 3


# what ends a run's processes on a cancel or a killed runner is baton's, whatever the CLI: one per
# family (OpenCode's own memory-limit path and its server's port are the test above's, and walls')
@pytest.mark.parametrize("agent", FAMILIES)
def test_a_real_agents_detached_processes_end_on_cancel_and_a_killed_runner(
    agent: str, settings: Settings, src_repo: Path, model: MockModel
) -> None:
    """The same detaching command, then ``sleep 60`` in the same tool call: the turn is cancelled, then
    its runner (``baton run``, a process of its own) is SIGKILLed; each time nothing of what the agent
    started is left once the run (or the key's next run) is over."""
    # a thread each: a turn after an interrupted one is told its instruction again, markers included
    sleeping = tag()
    request = RunRequest(
        agent=agent,
        repo=str(src_repo),
        thread="cancel",
        prompt=f"serve {shell_marker(agent, detach(sleeping) + '; sleep 60')}",
        access=Access.FULL,
    )

    def cancel_when_started() -> None:
        wait_for(lambda: len(alive(sleeping)) >= 25)
        request.cancel.set()

    threading.Thread(target=cancel_when_started, daemon=True).start()
    cancelled = run(request, settings=settings)
    assert cancelled.run.outcome == Outcome.CANCELLED, (cancelled.run.outcome, cancelled.run.error)
    assert alive(sleeping) == [] and cancelled.run.reaped is not None and cancelled.run.reaped >= 3

    sleeping = tag()
    env = {**os.environ, "BATON_HOME": str(settings.home), "BATON_WARM": "off"}
    env.update({f"BATON_{k.upper()}": str(v) for k, v in FAST.items()})
    # the key's next turn is told this instruction again, and runs it: then without the minute's sleep
    command = shell_marker(agent, detach(sleeping) + "; test -e .slept || (touch .slept; sleep 60)")
    args = [
        *BATON,
        "run",
        "-a",
        agent,
        "-r",
        str(src_repo),
        "-t",
        "killed",
        "--access",
        "full",
        f"serve {command}",
    ]
    killed_midway(args, env, sleeping)
    next_turn = subprocess.run(
        [*args[:-1], "go on"], env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )
    assert next_turn.returncode == 0, next_turn.stderr[-2000:]
    assert alive(sleeping) == [], "the key's next run ends what the killed runner's agent left"
