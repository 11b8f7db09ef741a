"""A spending cap reached mid-plan parks the plan: the task that would start past it waits (its agent
never started, the plan ``waiting``, exit 7), and a raise (``baton budget``) resumes it: the plan runs
again from the parked task, whose instruction its agent gets once, and goes on to the end."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from baton.agents import AGENTS
from baton.errors import BadInput
from baton.keys import make_key
from baton.plans.file import parse_plan
from baton.plans.records import PlanStatus, TaskStatus
from baton.settings import Settings
from tests.plans.test_plans import plan_text

Cli = Callable[..., subprocess.CompletedProcess[str]]
WRITE = {"FAKE_AGENT_WRITE": "turns.txt"}  # the fake agent notes each turn's prompt in its worktree


def test_a_cap_reached_mid_plan_parks_it_and_a_raise_resumes_it(
    cli: Cli, settings: Settings, src_repo: Path, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    text = plan_text(src_repo, prompts=("first-task", "second-task", "third-task"))
    plan.write_text(text.replace("tasks:\n", "max_turns: 1\ntasks:\n", 1))
    parked = cli("plan", "run", str(plan), "--json", env=WRITE)
    assert parked.returncode == 7, parked.stderr
    record = json.loads(parked.stdout)
    assert record["status"] == PlanStatus.WAITING
    assert [t["status"] for t in record["tasks"]] == [TaskStatus.SUCCEEDED, TaskStatus.WAITING, "pending"]
    slug = make_key("fake", str(src_repo), "plan-demo", AGENTS).repo.slug
    notes = settings.home / "worktrees" / "fake" / slug / "plan-demo" / "turns.txt"
    assert len(notes.read_text().splitlines()) == 1, "the second task's agent never started"
    key = ["-a", "fake", "-r", str(src_repo), "-t", "plan-demo"]
    raised = cli("budget", *key, "--turns", "+2", env=WRITE)
    assert raised.returncode == 0, raised.stderr
    assert "its plan runs again from the parked task" in raised.stderr
    ran = notes.read_text().splitlines()
    assert len(ran) == 3 and "second-task" in ran[1] and "third-task" in ran[2], ran
    shown = json.loads(cli("plan", "show", "demo", "--json").stdout)
    assert shown["status"] == PlanStatus.SUCCEEDED
    assert [t["status"] for t in shown["tasks"]] == [TaskStatus.SUCCEEDED] * 3


@pytest.mark.parametrize("bad", ["-1", ".nan", ".inf", "1e309", "'5'", "[1]", "true"])
def test_a_plans_hostile_cap_is_refused_naming_its_line(src_repo: Path, bad: str) -> None:
    text = plan_text(src_repo).replace("tasks:\n", f"max_usd: {bad}\ntasks:\n", 1)
    with pytest.raises(BadInput, match=r"plan.yaml:\d+: max_usd"):
        parse_plan(text, "plan.yaml")
