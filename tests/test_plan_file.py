"""Plan files: every malformed plan is refused with the field and line named, before anything runs."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from baton.errors import BadInput
from baton.plans.file import parse_plan

Cli = Callable[..., subprocess.CompletedProcess[str]]

GOOD = """\
id: billing
agent: claude
repo: https://github.com/acme/api
context: shared context
tasks:
  - id: models
    prompt: Add the model.
  - id: api
    prompt: Add the API.
    on_failure: retry
    retries: 3
    timeout: 90
  - id: docs
    prompt: Write docs.
    on_failure: continue
"""


def test_good_plan() -> None:
    plan = parse_plan(GOOD, "p.yaml")
    assert plan.id == "billing" and plan.thread == "plan-billing" and plan.context == "shared context"
    assert [t.id for t in plan.tasks] == ["models", "api", "docs"]
    assert (plan.tasks[0].on_failure, plan.tasks[0].retries, plan.tasks[0].timeout) == ("stop", 0, None)
    assert (plan.tasks[1].on_failure, plan.tasks[1].retries, plan.tasks[1].timeout) == ("retry", 3, 90.0)
    assert plan.tasks[2].on_failure == "continue"
    assert plan.tasks[0].prompt_sha != plan.tasks[1].prompt_sha


BAD = [
    ("", "p.yaml: the plan is empty"),
    ("- a\n- b\n", "p.yaml:1: the plan must be a mapping"),
    ("id: x\nagent: claude\nrepo: r\n", "p.yaml:1: missing required key 'tasks'"),
    ("agent: claude\nrepo: r\ntasks: [{id: a, prompt: p}]\n", "missing required key 'id'"),
    ("id: x\nagent: claude\nrepo: r\ntasks: []\n", "p.yaml:4: tasks must be a non-empty list"),
    (
        "id: x\nagent: claude\nrepo: r\ntasks:\n  - prompt: p\n",
        "p.yaml:5: task 1 is missing required key 'id'",
    ),
    (
        "id: x\nagent: claude\nrepo: r\ntasks:\n  - id: a\n",
        "p.yaml:5: task 1 is missing required key 'prompt'",
    ),
    (
        "id: x\nagent: claude\nrepo: r\ntasks:\n  - id: a\n    prompt: p\n  - id: a\n    prompt: q\n",
        "p.yaml:7: duplicate task id 'a' (first used by task 1)",
    ),
    (
        "id: x\nagent: claude\nrepo: r\ncolour: red\ntasks: [{id: a, prompt: p}]\n",
        "p.yaml:4: unknown key 'colour'",
    ),
    (
        "id: x\nagent: claude\nrepo: r\ntasks:\n  - id: a\n    prompt: p\n    nmae: z\n",
        "p.yaml:7: unknown key 'nmae' in task 1",
    ),
    (
        "id: [x]\nagent: claude\nrepo: r\ntasks: [{id: a, prompt: p}]\n",
        "p.yaml:1: id must be a string, not a list",
    ),
    ("id: ../x\nagent: claude\nrepo: r\ntasks: [{id: a, prompt: p}]\n", "p.yaml:1: id '../x' must be"),
    ("id: x\nagent: claude\nrepo: r\ntasks: {a: b}\n", "p.yaml:4: tasks must be a non-empty list"),
    (
        "id: x\nagent: claude\nrepo: r\ntasks:\n  - id: a\n    prompt: {x: 1}\n",
        "p.yaml:6: task 1 prompt must be a string",
    ),
    (
        "id: x\nagent: claude\nrepo: r\ntasks:\n  - id: a\n    prompt: p\n    timeout: soon\n",
        "p.yaml:7: task 1 timeout must be a positive number",
    ),
    (
        "id: x\nagent: claude\nrepo: r\ntasks:\n  - id: a\n    prompt: p\n    timeout: -1\n",
        "timeout must be a positive number",
    ),
    (
        "id: x\nagent: claude\nrepo: r\ntasks:\n  - id: a\n    prompt: p\n    on_failure: panic\n",
        "p.yaml:7: task 1 on_failure must be one of",
    ),
    (
        "id: x\nagent: claude\nrepo: r\ntasks:\n  - id: a\n    prompt: p\n    retries: 2\n",
        "p.yaml:7: task 1 retries needs on_failure: retry",
    ),
    (
        "id: x\nagent: claude\nrepo: r\ntasks:\n  - id: a\n    prompt: p\n"
        "    on_failure: retry\n    retries: yes\n",
        "retries must be a whole number",
    ),
    (
        "id: x\nagent: claude\nagent: codex\nrepo: r\ntasks: [{id: a, prompt: p}]\n",
        "p.yaml:3: key 'agent' appears twice",
    ),
    ("id: x\n  agent: : :\n", "p.yaml:2: not valid YAML"),
    ("id: x\nagent: claude\nrepo: r\ntasks:\n  - just a string\n", "p.yaml:5: task 1 must be a mapping"),
    # found by tests/test_properties_plan_file.py: a tag the constructor cannot apply raised
    # ValueError, KeyError or AttributeError; NaN and infinity passed as timeouts; an id ending in
    # '.lock' made a thread that validate_thread refuses; deep nesting raised RecursionError
    (
        "id: x\nagent: claude\nrepo: r\ntasks:\n  - id: a\n    prompt: !!float abc\n",
        "p.yaml:6: task 1 prompt: tag:yaml.org,2002:float cannot be read from 'abc'",
    ),
    ("id: x\nagent: claude\nrepo: r\ntasks:\n  - id: a\n    prompt: !!bool x\n", "p.yaml:6: task 1 prompt"),
    ("id: !!timestamp x\nagent: claude\nrepo: r\ntasks: [{id: a, prompt: p}]\n", "p.yaml:1: id"),
    ("id: x\nagent: !custom c\nrepo: r\ntasks: [{id: a, prompt: p}]\n", "p.yaml:2: agent: !custom"),
    (
        "id: x\nagent: claude\nrepo: r\ntasks:\n  - id: a\n    prompt: p\n    timeout: .nan\n",
        "p.yaml:7: task 1 timeout must be a positive number of seconds, not '.nan'",
    ),
    (
        "id: x\nagent: claude\nrepo: r\ntasks:\n  - id: a\n    prompt: p\n    timeout: .inf\n",
        "p.yaml:7: task 1 timeout must be a positive number of seconds, not '.inf'",
    ),
    ("id: x.lock\nagent: claude\nrepo: r\ntasks: [{id: a, prompt: p}]\n", "p.yaml:1: id 'x.lock' must be"),
    ("id: x\nagent: claude\nrepo: r\ntasks: [{id: a.lock, prompt: p}]\n", "p.yaml:4: task 1 id 'a.lock'"),
    ("[" * 5000, "p.yaml: the YAML is nested too deeply"),
    ("id: x\nagent: \x1f\n", "p.yaml:2: not valid YAML: character U+001F is not allowed"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_malformed_plans_name_the_field_and_line(text: str, message: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_plan(text, "p.yaml")
    assert message in str(info.value)


def test_cli_malformed_plan_exit_2_nothing_run(cli: Cli, tmp_path: Path, home: Path, src_repo: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"id: x\nagent: fake\nrepo: {src_repo}\ntasks:\n  - id: a\n    prompt: p\n  - id: a\n    prompt: q\n"
    )
    result = cli("plan", "run", str(plan))
    assert result.returncode == 2
    assert "plan.yaml:7: duplicate task id 'a'" in result.stderr
    assert not home.exists()
    missing = cli("plan", "run", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "cannot read plan file" in missing.stderr
