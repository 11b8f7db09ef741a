"""``baton run`` killed with SIGKILL at random moments of its start-up loses nothing.

The command's start-up (its imports, the settings, the store, the lease, the worktree, the run record)
is where the fast path of ``baton.cli.fast`` changed the order of things; these tests kill it there,
at random delays between its start and a little after its agent's, and after each kill run the key
normally: that run must succeed at once (never a key left busy), resume the same conversation, and the
store must end with every attempt's real outcome (``succeeded``, or ``crashed`` for the killed ones),
never ``running``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from baton.keys import parse_repo
from baton.models import Outcome
from baton.settings import Settings
from baton.store import open_store

BATON = [sys.executable, "-m", "baton.cli"]
KILLS = 20


def start(args: list[str], env: dict[str, str], **kwargs: object) -> subprocess.Popen[str]:
    """``baton ARGS`` started, its output piped (``kwargs``: more of Popen's, such as ``cwd``); here in
    a session of its own, so that a kill reaches its whole group."""
    proc: subprocess.Popen[str] = subprocess.Popen(  # type: ignore[call-overload]
        [*BATON, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **{"start_new_session": True, **kwargs},
    )
    return proc


def normal(args: list[str], env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [*BATON, *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def seconds_to_agent(args: list[str], env: dict[str, str]) -> float:
    """How long a normal run of the key takes from its start to its agent's process."""
    t0 = time.monotonic()
    proc = start(args, env)
    try:
        while proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                try:
                    if any("fake_agent" in part for part in child.cmdline()):
                        return time.monotonic() - t0
                except psutil.Error:
                    continue
            time.sleep(0.002)
        pytest.fail(f"the agent was never seen running: {proc.communicate()}")
    finally:
        proc.communicate(timeout=120)


def runs_of(settings: Settings, repo: Path, thread: str) -> list[Outcome]:
    store = open_store(settings.resolved_store_url)
    try:
        return [r.outcome for r in store.list_runs("fake", parse_repo(str(repo)).slug, thread, limit=1000)]
    finally:
        store.close()


@pytest.mark.slow  # 40 `baton run` processes
def test_kill_9_during_start_up_then_a_normal_run_resumes(
    src_repo: Path, baton_env: dict[str, str], settings: Settings
) -> None:
    env = {**os.environ, **baton_env}
    thread = "kill-start"
    key = ["run", "-a", "fake", "-r", str(src_repo), "-t", thread]
    first = normal([*key, "first turn"], env)
    assert first["mode"] == "fresh"
    session = first["session_id"]
    # the calibration's agent thinks half a second, so it is seen running however busy the machine (a
    # quick one could come and go between two looks); its think time is after the window measured
    window = seconds_to_agent([*key, "calibration turn"], {**env, "FAKE_AGENT_DELAY": "0.5"})
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    killed = 0
    for i in range(KILLS):
        # up to a little after the agent started (its pid recorded, the heartbeat begun); a quick
        # agent's run ends soon after, so most kills must come before it
        delay = rng.uniform(0, 1.2 * window)
        proc = start([*key, f"killed turn {i}"], env)
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # baton; its agent (own group) dies with it (pdeathsig)
            killed += 1
        proc.communicate(timeout=120)
        after = normal([*key, f"turn {i} after the kill"], env)  # at once: --wait is 0
        assert after["outcome"] == "succeeded", (seed, delay, after)
        assert after["mode"] == "resume" and after["session_id"] == session, (seed, delay, after)
    # a run ends soon after its agent starts (a quick agent, a short tail): the kills that came later
    # found it done; a third of them at least must have come in time for the test to mean anything
    assert killed >= KILLS // 3, f"most runs ended before their kill (seed {seed}, window {window:.3f} s)"
    outcomes = runs_of(settings, src_repo, thread)
    assert Outcome.RUNNING not in outcomes, (seed, outcomes)
    assert set(outcomes) <= {Outcome.SUCCEEDED, Outcome.CRASHED}, (seed, outcomes)
    assert outcomes.count(Outcome.SUCCEEDED) >= 2 + KILLS, (seed, outcomes)  # first, calibration, follow-ups


@pytest.mark.slow
def test_kill_9_during_the_first_start_up_of_a_key(
    src_repo: Path, baton_env: dict[str, str], settings: Settings
) -> None:
    """A key's first run killed while it makes the worktree and the session: the next one succeeds."""
    env = {**os.environ, **baton_env}
    # the agent held half a second, as in the test above: a reply in 46 ms went unseen under load
    calibrate = ["run", "-a", "fake", "-r", str(src_repo), "-t", "calibrate", "hi"]
    window = seconds_to_agent(calibrate, {**env, "FAKE_AGENT_DELAY": "0.5"})
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    for i in range(6):
        key = ["run", "-a", "fake", "-r", str(src_repo), "-t", f"first-{i}"]
        delay = rng.uniform(0, window)
        proc = start([*key, "killed first turn"], env)
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=120)
        after = normal([*key, "the next turn"], env)
        assert after["outcome"] == "succeeded", (seed, delay, after)
        outcomes = runs_of(settings, src_repo, f"first-{i}")
        assert Outcome.RUNNING not in outcomes and set(outcomes) <= {Outcome.SUCCEEDED, Outcome.CRASHED}


def test_a_first_run_killed_between_its_worktree_and_its_claim_leaves_no_stranger(
    src_repo: Path, baton_env: dict[str, str], settings: Settings
) -> None:
    """The moment a random kill found once: ``git worktree add`` done, its admin dir still named by git
    (the thread's directory), not yet the key's. The next run adopts it as the key's own worktree
    before it looks for other holders of the branch, instead of refusing it as a stranger's."""
    from baton.keys import Key
    from baton.workspace.gitlinks import admin_dir
    from baton.workspace.workdirs import Workdirs

    env = {**os.environ, **baton_env}
    key = ["run", "-a", "fake", "-r", str(src_repo), "-t", "claimed"]
    assert normal([*key, "the first turn"], env)["outcome"] == "succeeded"
    workdirs = Workdirs(settings)
    found = Key("fake", parse_repo(str(src_repo)), "claimed")
    path, cache = workdirs.worktree_path(found), workdirs.cache_path(found.repo)
    unclaimed = cache / "worktrees" / "claimed"
    os.rename(admin_dir(cache, found), unclaimed)  # as git named it, before baton's claim
    (path / ".git").write_text(f"gitdir: {unclaimed}\n")
    after = normal([*key, "the next turn"], env)
    assert after["outcome"] == "succeeded", after
    assert admin_dir(cache, found).is_dir() and not unclaimed.exists()  # adopted: the key's name
