"""Plans: tasks as turns of one conversation, resumable after interruption — on the fake agent for the
bookkeeping, and on the real Claude Code CLI for the guarantees."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from baton import open_store
from baton.errors import BadInput, BatonError, Busy
from baton.plans.file import parse_plan
from baton.plans.records import PlanRecord, TaskStatus
from baton.plans.runner import run_plan
from baton.plans.tables import plan_store
from baton.settings import Settings
from baton.store.leases import LeaseHolder
from baton.testing.mock_anthropic import MockAnthropic
from tests.conftest import BATON, wait_for

Cli = Callable[..., subprocess.CompletedProcess[str]]


def plan_text(
    repo: Path, agent: str = "fake", extra: str = "", prompts: tuple[str, ...] = ("one", "two", "three")
) -> str:
    tasks = "".join(
        f"  - id: t{i}\n    prompt: {p}\n{extra if i == 2 else ''}" for i, p in enumerate(prompts, 1)
    )
    return f"id: demo\nagent: {agent}\nrepo: {repo}\ncontext: shared-context-marker\ntasks:\n{tasks}"


def go(settings: Settings, text: str, **kw: object) -> PlanRecord:
    store = open_store(settings.resolved_store_url)
    try:
        return run_plan(parse_plan(text, "plan.yaml"), settings, store, **kw).record  # type: ignore[arg-type]
    finally:
        store.close()


def test_tasks_are_turns_of_one_conversation(settings: Settings, src_repo: Path) -> None:
    record = go(settings, plan_text(src_repo))
    assert record.status == "succeeded" and record.thread == "plan-demo"
    assert [t.status for t in record.tasks] == [TaskStatus.SUCCEEDED] * 3
    assert [t.result for t in record.tasks] == [f"fake reply: received {n} messages" for n in (2, 4, 6)]
    store = open_store(settings.resolved_store_url)
    runs = list(reversed(store.list_runs(thread="plan-demo")))
    store.close()
    assert [r.mode.value for r in runs] == ["fresh", "resume", "resume"]
    assert [r.prompt_kind.value for r in runs] == ["full", "delta", "delta"]
    assert {r.session_id_out for r in runs} == {record.session_id}
    again = go(settings, plan_text(src_repo))
    assert [t.run_id for t in again.tasks] == [t.run_id for t in record.tasks], (
        "finished tasks are not re-run"
    )


def test_failure_stops_or_continues(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_FAIL", "1")
    stopped = go(settings, plan_text(src_repo))
    assert [t.status for t in stopped.tasks] == [TaskStatus.FAILED, TaskStatus.PENDING, TaskStatus.PENDING]
    assert stopped.status == "failed" and stopped.tasks[0].error
    monkeypatch.delenv("FAKE_AGENT_FAIL")
    resumed = go(settings, plan_text(src_repo))
    assert resumed.status == "succeeded"


def test_on_failure_continue_and_retry(
    settings: Settings, src_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_FAIL_FIRST", "2")
    text = plan_text(src_repo).replace("    prompt: one\n", "    prompt: one\n    on_failure: continue\n")
    text = text.replace("    prompt: two\n", "    prompt: two\n    on_failure: retry\n    retries: 1\n")
    record = go(settings, text)
    # t1 fails (1st agent run) and the plan continues; t2 fails once (2nd run), its retry succeeds
    assert [t.status for t in record.tasks] == [TaskStatus.FAILED, TaskStatus.SUCCEEDED, TaskStatus.SUCCEEDED]
    assert record.status == "failed", "a failed task makes the plan fail even when it continued"


def test_interrupted_task_is_rerun_with_the_note(settings: Settings, src_repo: Path) -> None:
    first = go(settings, plan_text(src_repo))
    store = open_store(settings.resolved_store_url)
    # imitate a runner killed during t3: its run is still "running", the task too
    record = plan_store(store).get_plan("demo")
    assert record is not None
    record.tasks[2].status = TaskStatus.RUNNING
    plan_store(store).save_plan(record)
    store.update_run(str(first.tasks[2].run_id), outcome="running", ended_at=None)
    again = go(settings, plan_text(src_repo))
    rerun = store.get_run(str(again.tasks[2].run_id))
    store.close()
    assert again.tasks[2].run_id != first.tasks[2].run_id and again.status == "succeeded"
    assert rerun is not None and rerun.prompt_kind.value == "interrupted"
    assert [t.run_id for t in again.tasks[:2]] == [t.run_id for t in first.tasks[:2]]


def test_a_plan_with_a_relative_repo_is_one_key_from_any_directory(
    settings: Settings, src_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started from the plan's directory, interrupted, re-run from elsewhere: the same key (the slug a
    run from the plan's directory always gave), continued at the unfinished task."""
    from baton.agents import AGENTS
    from baton.keys import make_key
    from baton.plans.file import load_plan

    path = tmp_path / "plans" / "plan.yaml"
    path.parent.mkdir()
    path.write_text(plan_text(Path("../src-repo")))
    monkeypatch.chdir(path.parent)
    slug = make_key("fake", "../src-repo", "plan-demo", AGENTS).repo.slug  # read from the cwd, as before

    def killed_at_t2(record: PlanRecord, current: str | None) -> None:
        if current == "t2":
            raise RuntimeError("killed")  # t2 stays "running" in the store, as after a kill

    store = open_store(settings.resolved_store_url)
    try:
        with pytest.raises(RuntimeError, match="killed"):
            run_plan(load_plan(Path("plan.yaml")), settings, store, on_progress=killed_at_t2)
        first = plan_store(store).get_plan("demo")
        assert first is not None and first.repo == slug
        assert [t.status for t in first.tasks] == [
            TaskStatus.SUCCEEDED,
            TaskStatus.RUNNING,
            TaskStatus.PENDING,
        ]
        monkeypatch.chdir(tmp_path.parent)
        again = run_plan(load_plan(path), settings, store).record
    finally:
        store.close()
    assert again.status == "succeeded" and again.repo == slug
    assert again.tasks[0].run_id == first.tasks[0].run_id, "the finished task is not re-run"
    assert [t.result for t in again.tasks[1:]] == [f"fake reply: received {n} messages" for n in (4, 6)]


def test_a_task_refused_before_its_turn_leaves_the_plan_failed_not_running(settings: Settings) -> None:
    """A run that raises (here: a remote that cannot be reached, exit 4) ends the task and the plan
    ``failed`` with the reason, so ``plan show`` does not say "running" of a plan nothing runs."""
    text = plan_text(Path("x")).replace("repo: x", "repo: http://127.0.0.1:1/acme/api.git")
    with pytest.raises(BatonError) as raised:
        go(settings, text)
    assert raised.value.exit_code == 4
    store = open_store(settings.resolved_store_url)
    record = plan_store(store).get_plan("demo")
    store.close()
    assert record is not None and record.status == "failed"
    assert [t.status for t in record.tasks] == [TaskStatus.FAILED, TaskStatus.PENDING, TaskStatus.PENDING]
    assert record.tasks[0].error and "127.0.0.1:1" in record.tasks[0].error and record.tasks[0].ended_at


def test_changed_finished_prompt_is_reported(settings: Settings, src_repo: Path) -> None:
    first = go(settings, plan_text(src_repo))
    edited = plan_text(src_repo, prompts=("one", "TWO, changed", "three"))
    with pytest.raises(BadInput, match=r"t2 changed.*--from t2"):
        go(settings, edited)
    rerun = go(settings, edited, from_task="t2")
    assert rerun.tasks[0].run_id == first.tasks[0].run_id
    assert rerun.tasks[1].run_id != first.tasks[1].run_id and rerun.tasks[2].run_id != first.tasks[2].run_id
    assert rerun.tasks[1].result == "fake reply: received 8 messages", "re-run in the same conversation"
    with pytest.raises(BadInput, match="no such task"):
        go(settings, edited, from_task="nope")


def test_plan_id_belongs_to_one_key_and_one_runner(
    settings: Settings, src_repo: Path, tmp_path: Path
) -> None:
    from tests.conftest import make_repo

    go(settings, plan_text(src_repo))
    other = make_repo(tmp_path / "other")
    with pytest.raises(BadInput, match="already exists"):
        go(settings, plan_text(other))
    store = open_store(settings.resolved_store_url)
    lease = LeaseHolder(store, "plan:demo", 60)
    lease.acquire(0)
    try:
        with pytest.raises(Busy):
            go(settings, plan_text(src_repo))
    finally:
        lease.release()
        store.close()


@pytest.mark.slow  # many `baton` processes: over 3 s of CPU
def test_plan_cli_json_show_ls(cli: Cli, src_repo: Path, tmp_path: Path) -> None:
    run = cli
    path = tmp_path / "plan.yaml"
    path.write_text(plan_text(src_repo))
    result = run("plan", "run", str(path), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "succeeded" and [t["status"] for t in data["tasks"]] == ["succeeded"] * 3
    shown = json.loads(run("plan", "show", "demo", "--json").stdout)
    assert shown["session_id"] == data["session_id"]
    listed = json.loads(run("plan", "ls", "--json").stdout)
    assert [p["id"] for p in listed] == ["demo"]
    assert run("plan", "show", "nope").returncode == 2
    human = run("plan", "run", str(path))
    assert human.returncode == 0 and "3/3 tasks succeeded" in human.stdout


# -- the real Claude Code CLI ------------------------------------------------------------------------


@pytest.mark.slow
def test_real_claude_three_tasks_one_session(settings: Settings, src_repo: Path, mock: MockAnthropic) -> None:
    record = go(settings, plan_text(src_repo, agent="claude"))
    assert record.status == "succeeded"
    assert mock.message_counts() == [2, 4, 6]
    assert "shared-context-marker" in mock.requests[0].text()
    last = mock.requests[-1].text()
    assert "one" in last and "two" in last and "three" in last
    assert last.count("shared-context-marker") == 1, "the shared context is in the first prompt only"


def holds_user_prompt(transcript: Path, text: str = "beta-task") -> bool:
    """Whether a Claude transcript has a user entry with ``text`` (not just its queue line)."""
    for line in transcript.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line being written
        if isinstance(entry, dict) and entry.get("type") == "user" and text in line:
            return True
    return False


@pytest.mark.slow
def test_real_claude_sigkill_during_task_2_then_rerun(
    settings: Settings, baton_env: dict[str, str], src_repo: Path, tmp_path: Path, mock: MockAnthropic
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(plan_text(src_repo, agent="claude", prompts=("alpha-task", "beta-task", "gamma-task")))
    mock.delay = 0
    runner = subprocess.Popen(
        [*BATON, "plan", "run", str(path), "--json"],
        env={**os.environ, **baton_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: any("alpha-task" in r.text() for r in mock.requests), 60, what="task 1's request")
    mock.delay = 120  # task 2's request hangs
    wait_for(lambda: any("beta-task" in r.text() for r in mock.requests), 60, what="task 2's request")
    # mid-turn: the CLI has written task 2's prompt to its transcript as a user entry, as it would have
    # by then (its "enqueue" line, which also holds the prompt, is written before it)
    keys = settings.home / "keys" / "claude"  # the plan's key has its own agent home there
    wait_for(lambda: any(map(holds_user_prompt, keys.glob("**/home/projects/*/*.jsonl"))), 60)
    os.kill(runner.pid, signal.SIGKILL)
    runner.communicate(timeout=10)
    store = open_store(settings.resolved_store_url)
    killed = plan_store(store).get_plan("demo")
    assert killed is not None
    assert [t.status for t in killed.tasks] == [TaskStatus.SUCCEEDED, TaskStatus.RUNNING, TaskStatus.PENDING]
    first_run = killed.tasks[0].run_id
    mock.delay = 0
    record = go(settings, path.read_text())
    assert record.status == "succeeded"
    assert record.tasks[0].run_id == first_run, "task 1 is not re-run"
    counts = mock.message_counts()
    assert counts[0] == 2 and counts == sorted(counts) and len(set(counts)) == len(counts), counts
    texts = [r.text() for r in mock.requests]
    assert (
        sum("alpha-task" in t and len(r.messages) == 2 for t, r in zip(texts, mock.requests, strict=True))
        == 1
    )
    assert "alpha-task" in texts[-1] and "beta-task" in texts[-1] and "gamma-task" in texts[-1]
    runs = store.list_runs(thread="plan-demo")
    store.close()
    assert {r.session_id_out for r in runs if r.session_id_out} == {record.session_id}
    assert [r.outcome.value for r in reversed(runs)] == ["succeeded", "crashed", "succeeded", "succeeded"]


@pytest.mark.slow
def test_real_claude_failing_task_stop_and_continue(
    settings: Settings, src_repo: Path, mock: MockAnthropic
) -> None:
    def fail_task_2(record: PlanRecord, current: str | None) -> None:
        mock.fail_status = 400 if current == "t2" else None

    store = open_store(settings.resolved_store_url)
    stopped = run_plan(
        parse_plan(plan_text(src_repo, agent="claude"), "p"), settings, store, on_progress=fail_task_2
    )
    assert [t.status for t in stopped.record.tasks] == [
        TaskStatus.SUCCEEDED,
        TaskStatus.FAILED,
        TaskStatus.PENDING,
    ]
    assert not stopped.ok
    text = plan_text(src_repo, agent="claude", extra="    on_failure: continue\n").replace(
        "id: demo", "id: demo2"
    )
    going = run_plan(parse_plan(text, "p"), settings, store, on_progress=fail_task_2)
    store.close()
    assert [t.status for t in going.record.tasks] == [
        TaskStatus.SUCCEEDED,
        TaskStatus.FAILED,
        TaskStatus.SUCCEEDED,
    ]
    assert going.record.status == "failed"
