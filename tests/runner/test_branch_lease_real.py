"""Two keys on one branch of one machine with the REAL Claude Code CLI on the mock Anthropic API, through
``baton run`` processes: the issue's reproduction (``baton run -t t1 --branch feat && baton run -t t2
--branch feat --wait 60``), then each key again, then both started together (the second waits on the
branch's lease, then runs), on SQLite. Each turn's Bash tool call commits in its own
worktree; each key resumes its own conversation (the mock's replies count the history it received),
sees the other's commits, and ``feat`` is pushed from the cache clone fast-forward after every turn.
The same with the fake agent, and a run killed mid-turn: test_branch_lease.py (both stores there)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from baton.keys import make_key
from baton.models import Outcome
from baton.settings import Settings
from baton.store import open_store
from baton.testing.mock_anthropic import MockAnthropic
from baton.testing.tools import tool_marker
from baton.workspace.workdirs import Workdirs
from tests.conftest import BATON, git, wait_for

pytestmark = pytest.mark.slow
Cli = Callable[..., subprocess.CompletedProcess[str]]


def commit(thread: str, turn: int) -> str:
    """The prompt whose Bash call commits a line of the key's own in its worktree."""
    command = (
        f'echo "{thread} {turn}" >> {thread}.txt && git add {thread}.txt '
        f'&& git commit -qm "{thread}: turn {turn}"'
    )
    return f"Record turn {turn}. {tool_marker('Bash', command=command)}"


def args(repo: Path, thread: str, turn: int, *extra: str) -> list[str]:
    return [
        "run", "-a", "claude", "-r", str(repo), "-t", thread, "--branch", "feat", "--access", "full",
        "--json", *extra, commit(thread, turn),
    ]  # fmt: skip


def result(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.stdout, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == 0 and found["outcome"] == "succeeded", (found, done.stderr[-2000:])
    return found


def subjects(worktree: str) -> list[str]:
    return git(Path(worktree), "log", "--format=%s").splitlines()


def asked(mock: MockAnthropic, thread: str, turn: int) -> str:
    """All the text of the first request of the key's ``turn``: what its conversation carried."""
    own = f'echo "{thread} {turn}"'
    return next(r.text() for r in mock.requests if own in r.latest_user_text())


def own_history(mock: MockAnthropic, thread: str, turn: int) -> None:
    """The turn's request carried its key's earlier turn, never the other key's conversation."""
    sent = asked(mock, thread, turn)
    other = "t2" if thread == "t1" else "t1"
    assert f'echo "{thread} {turn - 1}"' in sent and f'echo "{other} ' not in sent, sent[-3000:]


@pytest.fixture
def env(store_url: str, claude_bin: str) -> dict[str, str]:
    return {"BATON_STORE_URL": store_url}


# the branch's lease on each store is baton's, whatever the agent: test_branch_lease.py's
# test_two_keys_on_one_branch_take_turns_on_one_machine and ..._started_together_the_second_waits_then_runs
# run both orders on SQLite and PostgreSQL; here the real CLI's side, on the default store
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_two_claude_keys_share_one_branch_in_turns_and_started_together(
    cli: Cli,
    env: dict[str, str],
    baton_env: dict[str, str],
    src_repo: Path,
    mock: MockAnthropic,
    settings: Settings,
    tmp_path: Path,
) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "--quiet", "--bare", str(origin))
    cache = Workdirs(settings).cache_path(make_key("claude", str(src_repo), "t1", ["claude"]).repo)

    def push() -> None:
        git(cache, "push", "--quiet", str(origin), "refs/heads/feat:refs/heads/feat")  # no force: FF only

    a1 = result(cli(*args(src_repo, "t1", 1), env=env))
    push()
    b1 = result(cli(*args(src_repo, "t2", 1, "--wait", "60"), env=env))  # the reproduction: it failed here
    assert b1["mode"] == "fresh" and b1["session_id"] != a1["session_id"]
    assert subjects(b1["worktree"]) == ["t2: turn 1", "t1: turn 1", "initial"]
    push()
    a2 = result(cli(*args(src_repo, "t1", 2), env=env))  # the other order
    assert (a2["mode"], a2["session_id"], a2["worktree"]) == ("resume", a1["session_id"], a1["worktree"])
    assert subjects(a2["worktree"])[:3] == ["t1: turn 2", "t2: turn 1", "t1: turn 1"]
    own_history(mock, "t1", 2)
    assert "Branch feat gained 1 commit since your last turn" in asked(mock, "t1", 2)  # told
    push()

    # both started together: t1 first, its model slow; t2 waits on the branch's lease, then runs
    mock.delay = 3
    first = subprocess.Popen(
        [*BATON, *args(src_repo, "t1", 3)],
        env={**os.environ, **baton_env, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = open_store(env["BATON_STORE_URL"])
    waiting: subprocess.Popen[str] | None = None
    try:
        slug = make_key("claude", str(src_repo), "t1", ["claude"]).repo.slug
        wait_for(
            lambda: bool(store.list_runs("claude", slug, "t1", outcome=Outcome.RUNNING)),
            120,
            0.05,
            "t1's third turn to start its agent",
        )
        waiting = subprocess.Popen(
            [*BATON, *args(src_repo, "t2", 2, "--wait", "120")],
            env={**os.environ, **baton_env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        out, err = first.communicate(timeout=240)
        mock.released.set()  # t1's turn is over: t2's own turn needs no slow model
        out2, err2 = waiting.communicate(timeout=240)
    finally:
        for proc in (first, waiting):
            if proc is not None and proc.poll() is None:
                proc.kill()
        store.close()
    a3 = result(subprocess.CompletedProcess(first.args, first.returncode, out, err))
    assert waiting is not None
    b2 = result(subprocess.CompletedProcess(waiting.args, waiting.returncode, out2, err2))
    for later, earlier in ((a3, a1), (b2, b1)):
        assert (later["mode"], later["session_id"]) == ("resume", earlier["session_id"])
    own_history(mock, "t2", 2)
    store = open_store(env["BATON_STORE_URL"])
    try:
        one, two = (store.get_run(r["attempt_id"]) for r in (a3, b2))
    finally:
        store.close()
    assert one is not None and two is not None and one.ended_at is not None
    assert two.started_at >= one.ended_at  # t2 waited for t1's turn to end
    assert subjects(b2["worktree"])[:3] == ["t2: turn 2", "t1: turn 3", "t1: turn 2"]
    push()
    assert git(origin, "log", "--format=%s", "feat").splitlines() == subjects(b2["worktree"])
