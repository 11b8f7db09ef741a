"""Plan files: every malformed plan is refused with the field and line named, before anything runs; a
relative repo is read from the plan file's directory (from standard input: the current one)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from baton.errors import BadInput
from baton.keys import parse_repo
from baton.plans.file import load_plan, parse_plan
from tests.conftest import BATON, make_repo

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
    # found by tests/plans/test_properties_plan_file.py: a tag the constructor cannot apply raised
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
    # a task's own limits
    (
        "id: x\nagent: claude\nrepo: r\ntasks:\n  - id: a\n    prompt: p\n    memory: lots\n",
        "p.yaml:7: setting 'task 1 memory' must be a size",
    ),
    (
        "id: x\nagent: claude\nrepo: r\ntasks:\n  - id: a\n    prompt: p\n    pids: -5\n",
        "p.yaml:7: task 1 pids must be a whole number",
    ),
    (
        "id: x\nagent: claude\nrepo: r\ntasks:\n  - id: a\n    prompt: p\n    cpu: .nan\n",
        "p.yaml:7: task 1 cpu must be a number of cores",
    ),
]


def test_a_tasks_limits_reach_its_run() -> None:
    text = "id: x\nagent: claude\nrepo: r\ntasks:\n  - id: a\n    prompt: p\n"
    text += "    memory: 4G\n    pids: 512\n    cpu: 1.5\n"
    task = parse_plan(text, "p.yaml").tasks[0]
    assert (task.memory, task.pids, task.cpu) == ("4G", 512, 1.5)
    plain = parse_plan(GOOD, "p.yaml").tasks[0]
    assert (plain.memory, plain.pids, plain.cpu) == (None, None, None)


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


# -- a relative repo: the plan file's directory -----------------------------------------------------------


def plan_at(path: Path, repo: str, plan_id: str = "rel") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"id: {plan_id}\nagent: fake\nrepo: {repo}\ntasks:\n  - id: a\n    prompt: p\n")
    return path


def test_a_relative_repo_is_read_from_the_plan_files_directory_wherever_it_runs(
    tmp_path: Path, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans = tmp_path / "plans" / "deep"
    path = plan_at(plans / "p.yaml", "../../src-repo")
    real = str(src_repo.resolve())
    for cwd in (plans, tmp_path, Path("/")):
        monkeypatch.chdir(cwd)
        assert load_plan(Path(os.path.relpath(path, cwd))).repo == real, cwd
    # the key it gives is the one a run from the plan's own directory always gave (the same slug)
    monkeypatch.chdir(plans)
    before = parse_plan(path.read_text(), "p.yaml").repo  # no base: as written, read from the cwd
    assert before == "../../src-repo" and parse_repo(before).slug == parse_repo(real).slug
    # a symlinked directory: `..` is the OS's (the link target's parent), as from a cwd in it
    link = tmp_path / "link"
    link.symlink_to(plans, target_is_directory=True)
    assert load_plan(plan_at(link / "q.yaml", "../../src-repo")).repo == real


def test_urls_absolute_and_home_paths_stay_as_written(tmp_path: Path, src_repo: Path) -> None:
    for repo in ("https://github.com/acme/api", "git@github.com:acme/api.git", str(src_repo), "~/no/such"):
        assert load_plan(plan_at(tmp_path / "p.yaml", repo)).repo == repo
    # scp-like, but a repository of that name beside the plan: the local path wins, as from a cwd
    make_repo(tmp_path / "host.example:api")
    plan = load_plan(plan_at(tmp_path / "p.yaml", "host.example:api"))
    assert plan.repo == str(tmp_path.resolve() / "host.example:api")


def test_a_relative_repo_that_is_no_repository_names_the_path_it_tried(
    tmp_path: Path, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans = tmp_path.resolve() / "plans"
    plan_at(plans / "p.yaml", "src-repo")
    monkeypatch.chdir(tmp_path)  # from here (the old rule) src-repo is a repository: the error says so
    with pytest.raises(BadInput) as info:
        load_plan(Path("plans/p.yaml"))
    said = str(info.value)
    assert said.startswith(
        f"plans/p.yaml:3: repo 'src-repo' is read from the plan file's directory {plans}: "
    )
    assert f"repo '{plans / 'src-repo'}' does not exist" in said
    assert f"{src_repo.resolve()} (from the current directory) is a repository" in said
    (plans / "plain").mkdir()
    with pytest.raises(BadInput) as info:
        load_plan(plan_at(plans / "p.yaml", "plain"))
    said = str(info.value)
    assert f"repo '{plans / 'plain'}' is not a git repository" in said and "current directory" not in said


def test_cli_plan_from_another_directory_and_from_stdin(
    tmp_path: Path, src_repo: Path, baton_env: dict[str, str], home: Path
) -> None:
    env = {**os.environ, **baton_env}

    def plan_run(arg: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*BATON, "plan", "run", arg, "--json"],
            cwd=cwd,
            env=env,
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            text=True,
            timeout=120,
        )

    path = plan_at(tmp_path / "plans" / "p.yaml", "../src-repo", "from-file")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = plan_run("../plans/p.yaml", elsewhere)
    assert done.returncode == 0, done.stderr
    slug = parse_repo(str(src_repo)).slug
    assert json.loads(done.stdout)["repo"] == slug
    # from standard input a plan has no directory: its relative paths are the current directory's
    text = path.read_text().replace("from-file", "from-stdin").replace("../src-repo", "src-repo")
    done = plan_run("-", tmp_path, text)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["repo"] == slug and json.loads(done.stdout)["file"] == "<stdin>"
    refused = plan_run("-", elsewhere, text.replace("from-stdin", "nowhere"))
    assert refused.returncode == 2
    assert (
        f"<stdin>:3: repo 'src-repo' is read from the current directory {elsewhere.resolve()}"
        in refused.stderr
    )
    empty = plan_run("-", elsewhere)
    assert empty.returncode == 2 and "the plan from stdin is empty" in empty.stderr
