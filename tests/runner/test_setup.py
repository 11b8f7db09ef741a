"""A repository's environment setup before the agent's turn, through ``baton.run`` with the fake agent:
run on a key's first turn and when its inputs change, never twice for the same ones; its failure and
its timeout end the turn ``failed`` with its output's tail and no agent run; it runs in the agent's
walls without baton's environment; a devcontainer's and copilot-setup-steps' commands apply; the prompt
after a setup says what was prepared."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from baton import Outcome, RunRequest, RunResult, run
from baton.keys import key_of
from baton.models import Access
from baton.runner.setup import setup_results
from baton.sandbox.walls import support
from baton.settings import Settings
from baton.testing.fake import find_transcripts
from tests.conftest import git, make_repo
from tests.support.wheels import installed_wheels, tiny_wheel

COUNT = 'echo ran >> "$HOME/setup-count"\n'  # the key's home: out of the worktree's checkpoint
walled = pytest.mark.skipif(not support().ok, reason="Landlock is needed to wall the setup in")


def go(settings: Settings, repo: Path, prompt: str = "do it", **kw: object) -> RunResult:
    request = RunRequest(agent="fake", repo=str(repo), thread="t1", prompt=prompt, **kw)  # type: ignore[arg-type]
    return run(request, settings=settings)


def setup_count(settings: Settings) -> int:
    """How often the setup ran: in the keys' homes and in the prepared trees' own."""
    found = [p for p in settings.home.rglob("setup-count") if "worktrees" not in p.parts]
    return sum(len(p.read_text().splitlines()) for p in found)


def prompts(settings: Settings, result: RunResult) -> list[str]:
    files = find_transcripts(settings, str(result.session.agent_session_id))
    entries = [json.loads(line) for line in files[0].read_text().splitlines()]
    return [e["message"]["content"] for e in entries if e["type"] == "user"]


TINY_TEST = "import tinypkg\n\n\ndef test_answer() -> None:\n    assert tinypkg.answer() == 42\n"


# The venv without a pip of its own, the suite's pip installing into it from outside (a base Python may
# have none): about 6 s instead of 26 s on a busy machine (ensurepip is most of a venv's cost).
SITE = "$(.venv/bin/python -c \"import sysconfig; print(sysconfig.get_path('purelib'))\")"
PY_SETUP = (
    f"set -e\n{COUNT}{sys.base_prefix}/bin/python3 -m venv --without-pip .venv\n"
    f"{sys.executable} -m pip install -q --disable-pip-version-check --no-compile --no-index "
    f"--find-links wheels --target {SITE} tinypkg pytest\n"
)


def python_repo(path: Path) -> Path:
    """A project whose setup makes ``.venv`` and installs its package and pytest from wheels it ships."""
    repo = make_repo(
        path,
        {
            ".baton/setup.sh": PY_SETUP,
            "tests/test_tiny.py": TINY_TEST,
            "AGENTS.md": "# Working here\n\nRun the tests with `.venv/bin/python -m pytest -q tests`.\n",
            ".gitignore": ".venv/\n",
        },
    )
    tiny_wheel(repo / "wheels")
    installed_wheels(repo / "wheels", "pytest")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "wheels")
    return repo


def test_the_agent_runs_the_projects_tests_in_its_prepared_room(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = python_repo(tmp_path / "py")
    monkeypatch.setenv("FAKE_AGENT_RUN", ".venv/bin/python -m pytest -q tests > pytest.out 2>&1")
    first = go(settings, repo)
    assert first.run.outcome == Outcome.SUCCEEDED, first.run.error
    worktree = Path(first.session.worktree)
    assert "1 passed" in (worktree / "pytest.out").read_text()
    assert first.run.note and "environment: setup from .baton/setup.sh (setup.sh)" in first.run.note
    assert "the key's first setup" in first.run.note
    said = prompts(settings, first)[0]
    assert "baton prepared your working directory" in said
    assert "AGENTS.md names the test command `.venv/bin/python -m pytest -q tests`" in said
    second = go(settings, repo, "again")
    assert second.run.outcome == Outcome.SUCCEEDED and setup_count(settings) == 1
    assert "environment" not in (second.run.note or "")
    assert "prepared your working directory" not in prompts(settings, second)[1]


def test_a_changed_lock_file_on_the_key_runs_the_setup_again(settings: Settings, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {".baton/setup.sh": COUNT, "requirements.txt": "a==1\n"})
    assert go(settings, repo).run.outcome == Outcome.SUCCEEDED
    second = go(settings, repo)
    assert setup_count(settings) == 1 and "environment" not in (second.run.note or "")
    (Path(second.session.worktree) / "requirements.txt").write_text("a==2\n")  # as the agent would
    third = go(settings, repo)
    assert setup_count(settings) == 2
    assert third.run.note and "changed since the key's last setup: requirements.txt" in third.run.note
    go(settings, repo)
    assert setup_count(settings) == 2


def test_a_dependency_added_under_requirements_prepares_the_key_again(
    settings: Settings, tmp_path: Path
) -> None:
    """pip's requirements kept in ``requirements/`` (one file per purpose) are inputs: a line added to
    ``requirements/tests.txt`` runs the key's setup again, as a changed root ``requirements.txt`` does."""
    repo = make_repo(tmp_path / "r", {".baton/setup.sh": COUNT, "requirements/tests.txt": "pytest\n"})
    first = go(settings, repo)
    assert first.run.outcome == Outcome.SUCCEEDED and setup_count(settings) == 1
    (Path(first.session.worktree) / "requirements" / "tests.txt").write_text("pytest\nhypothesis\n")
    again = go(settings, repo)
    assert setup_count(settings) == 2 and "requirements/tests.txt" in (again.run.note or ""), again.run.note


def test_only_the_maintenance_runs_when_only_the_inputs_changed(settings: Settings, tmp_path: Path) -> None:
    maintain = 'echo kept >> "$HOME/maintain-count"\n'
    repo = make_repo(
        tmp_path / "r", {".baton/setup.sh": COUNT, ".baton/maintain.sh": maintain, "uv.lock": "1"}
    )
    first = go(settings, repo)
    (Path(first.session.worktree) / "uv.lock").write_text("2")
    again = go(settings, repo)
    assert again.run.note and "environment: maintenance from .baton/setup.sh (maintain.sh)" in again.run.note
    assert setup_count(settings) == 1
    assert len(list((settings.home / "keys").rglob("maintain-count"))) == 1


def test_a_thread_never_wedges_behind_a_maintenance_its_agent_broke(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent commits a bad line in a lock file: the next turn's maintenance fails, and the turn goes
    on in the last good environment, the agent told what failed at the top of its prompt (so it can fix
    it) and the run's note saying so; once it is fixed, the maintenance runs again and succeeds."""
    maintain = 'grep -q bad uv.lock && { echo "cannot resolve bad==9" >&2; exit 1; }\n'
    maintain += 'cat uv.lock >> "$HOME/maintained"\n'
    repo = make_repo(
        tmp_path / "r", {".baton/setup.sh": COUNT, ".baton/maintain.sh": maintain, "uv.lock": "1\n"}
    )
    first = go(settings, repo)
    assert first.run.outcome == Outcome.SUCCEEDED, first.run.error
    monkeypatch.setenv("FAKE_AGENT_RUN", "echo bad >> uv.lock && git add uv.lock && git commit -qm dep")
    assert go(settings, repo, "add a dependency", access=Access.FULL).run.outcome == Outcome.SUCCEEDED
    monkeypatch.delenv("FAKE_AGENT_RUN")
    broken = go(settings, repo, "go on")
    assert broken.run.outcome == Outcome.SUCCEEDED, broken.run.error  # the agent ran
    note = broken.run.note or ""
    assert "environment: maintenance" in note and "maintain.sh exited 1" in note, note
    assert "went on in the key's last good environment" in note
    said = prompts(settings, broken)[-1]
    assert said.startswith("Before this turn, baton ran the repository's maintenance"), said
    assert "FAILED" in said and "cannot resolve bad==9" in said and "go on" in said
    monkeypatch.setenv("FAKE_AGENT_RUN", "printf '2\\n' > uv.lock && git add uv.lock && git commit -qm fix")
    assert go(settings, repo, "fix it", access=Access.FULL).run.outcome == Outcome.SUCCEEDED
    monkeypatch.delenv("FAKE_AGENT_RUN")
    fixed = go(settings, repo, "and now")
    assert fixed.run.outcome == Outcome.SUCCEEDED and "did not succeed" not in (fixed.run.note or "")
    found = list((settings.home / "keys").rglob("maintained"))
    assert len(found) == 1 and found[0].read_text().split() == ["2"], "the fixed maintenance ran"


def test_a_failing_setup_ends_the_turn_failed_with_its_tail_and_no_agent(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = "".join(f"echo line {i}\n" for i in range(40))
    repo = make_repo(tmp_path / "r", {".baton/setup.sh": f"{COUNT}{lines}echo boom >&2\nexit 3\n"})
    monkeypatch.setenv("FAKE_AGENT_WRITE", "agent-ran.txt")
    first = go(settings, repo)
    assert first.run.outcome == Outcome.FAILED and first.run.exit_code is None
    error = first.run.error or ""
    assert "the repository's setup did not succeed (.baton/setup.sh: setup.sh exited 3)" in error
    assert error.endswith("line 39\nboom") and "line 14\n" not in error  # the tail, stderr in order
    assert not (Path(first.session.worktree) / "agent-ran.txt").exists()
    assert first.session.agent_session_id is None
    assert "boom" in Path(first.run.log_path).read_text()  # `baton runs logs` shows it
    second = go(settings, repo)
    assert second.run.outcome == Outcome.FAILED and setup_count(settings) == 2  # tried again


def test_a_thread_whose_first_setup_failed_takes_a_setup_fixed_on_the_default_branch(
    settings: Settings, tmp_path: Path
) -> None:
    """Its agent never ran, so nothing of its own is on its branch: the next turn brings the base's fix
    in (without ``sync`` set) and its setup succeeds, instead of failing again at the old commit."""
    repo = make_repo(tmp_path / "r", {".baton/setup.sh": "echo broken >&2\nexit 3\n"})
    first = go(settings, repo)
    assert first.run.outcome == Outcome.FAILED and "setup.sh exited 3" in (first.run.error or "")
    (repo / ".baton" / "setup.sh").write_text(COUNT)
    git(repo, "commit", "-qam", "fix the setup")
    again = go(settings, repo, "try again")
    assert again.run.outcome == Outcome.SUCCEEDED, again.run.error
    assert setup_count(settings) == 1 and again.session.agent_session_id is not None


def test_a_setup_past_setup_timeout_is_stopped(settings: Settings, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {".baton/setup.sh": "echo waiting\nsleep 60\n"})
    quick = dataclasses.replace(settings, setup_timeout=1.0)
    result = go(quick, repo)
    assert result.run.outcome == Outcome.FAILED
    assert "setup.sh was stopped at setup_timeout (1 s)" in (result.run.error or "")
    assert (result.run.duration_s or 0) < 30


@walled
def test_the_setup_is_walled_in_as_the_agent_is(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-the-model-credential")
    monkeypatch.setenv("BATON_WEBHOOK_SECRET", "the-webhook-secret")
    db = settings.home / "baton.db"
    other = tmp_path / "outside.txt"
    other.write_text("not the setup's\n")
    script = (
        "env > env.txt\n"
        f"cat {db} > /dev/null 2>&1 && echo READ-THE-STORE\n"
        f"cat {other} > /dev/null 2>&1 && echo READ-OUTSIDE\n"
        "echo ok > made-here.txt\n"
    )
    repo = make_repo(tmp_path / "r", {".baton/setup.sh": script})
    result = go(settings, repo)
    assert result.run.outcome == Outcome.SUCCEEDED and result.run.confined
    worktree = Path(result.session.worktree)
    assert (worktree / "made-here.txt").read_text() == "ok\n"
    said = (settings.home / "logs").glob("*-setup.jsonl")
    output = "".join(p.read_text() for p in said)
    assert "READ-THE-STORE" not in output and "READ-OUTSIDE" not in output
    env = (worktree / "env.txt").read_text()
    for secret in ("sk-the-model-credential", "the-webhook-secret", "GIT_ASKPASS", "BATON_HOME"):
        assert secret not in env


@walled
def test_a_setup_that_reads_the_store_fails_as_the_agent_would(settings: Settings, tmp_path: Path) -> None:
    db = settings.home / "baton.db"
    repo = make_repo(tmp_path / "r", {".baton/setup.sh": f"cat {db} > /dev/null\n"})
    result = go(settings, repo)
    assert result.run.outcome == Outcome.FAILED and db.is_file()
    # refused by Landlock, or not even there in the setup's own mount namespace (as for the agent)
    error = result.run.error or ""
    assert f"cat: {db}: Permission denied" in error or f"cat: {db}: No such file or directory" in error


def test_devcontainer_post_create_command_applies(settings: Settings, tmp_path: Path) -> None:
    devcontainer = (
        '{\n  // the team\'s dev container\n  "image": "python:3.12",\n'
        '  "containerEnv": {"GREETING": "hello"},\n'
        '  "postCreateCommand": "echo $GREETING from ${containerWorkspaceFolder} > made.txt",\n}\n'
    )
    repo = make_repo(tmp_path / "r", {".devcontainer/devcontainer.json": devcontainer})
    result = go(settings, repo)
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    worktree = Path(result.session.worktree)
    assert (worktree / "made.txt").read_text() == f"hello from {worktree}\n"
    assert "environment: setup from .devcontainer/devcontainer.json (postCreateCommand)" in (
        result.run.note or ""
    )


def test_copilot_setup_steps_run_steps_apply(settings: Settings, tmp_path: Path) -> None:
    workflow = (
        "jobs:\n  copilot-setup-steps:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v5\n"
        "      - name: Build\n        run: |\n          echo built > built.txt\n"
        "        env:\n          MODE: dev\n"
        "      - name: Mode\n        run: echo $MODE-$CI > mode.txt\n        env:\n          CI: true\n"
    )
    repo = make_repo(tmp_path / "r", {".github/workflows/copilot-setup-steps.yml": workflow})
    result = go(settings, repo)
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    worktree = Path(result.session.worktree)
    assert (worktree / "built.txt").read_text() == "built\n"
    assert (worktree / "mode.txt").read_text() == "-true\n"  # a step's env is its own
    note = result.run.note or ""
    assert "(Build, Mode); skipped: step 1 (uses: actions/checkout@v5" in note


def test_a_requests_setup_overrides_the_repositorys(settings: Settings, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {".baton/setup.sh": "echo repo > by.txt\n"})
    result = go(settings, repo, setup="echo config > by.txt")
    assert result.run.outcome == Outcome.SUCCEEDED
    assert (Path(result.session.worktree) / "by.txt").read_text() == "config\n"
    assert "environment: setup from config" in (result.run.note or "")
    assert "over the repository's .baton/setup.sh" in (result.run.note or "")


def test_no_setup_runs_at_read(settings: Settings, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {".baton/setup.sh": COUNT})
    result = go(settings, repo, access="read")
    assert result.run.outcome == Outcome.SUCCEEDED and setup_count(settings) == 0


def test_the_key_keeps_what_its_setups_made_apart_from_the_agents_work(
    settings: Settings, tmp_path: Path
) -> None:
    """What the shared preparation gave the worktree and what a later setup made there (paths the commit
    does not track) are named for the forge's commit to leave out; never the agent's own files."""
    repo = make_repo(tmp_path / "r", {".baton/setup.sh": "mkdir -p build && touch build/a\n"})
    first = go(settings, repo)
    key, worktree = key_of(first.session), Path(first.session.worktree)
    assert setup_results(settings, key, worktree) == ["build"]
    (worktree / "notes.md").write_text("the agent's\n")
    (worktree / ".baton" / "setup.sh").write_text(
        "mkdir -p build dist && touch build/a dist/b\n"
    )  # as the agent would
    second = go(settings, repo)
    assert second.run.note and "the setup changed since the key's last one" in second.run.note
    assert setup_results(settings, key, worktree) == ["build", "dist"]
    assert setup_results(settings, key, tmp_path) == []  # another worktree's stamp names nothing


def test_what_the_setup_made_stays_out_of_checkpoints_and_the_agents_own_commits(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repository shipped without a ``.gitignore``: the setup's ``.venv`` and ``build`` are listed in the
    cache clone's ``info/exclude``, so the key's checkpoint holds the agent's new file and none of them,
    and the agent's own ``git add -A`` commits its work alone."""
    setup = "mkdir -p .venv/bin build && echo py > .venv/bin/python && echo o > build/out.o\n"
    repo = make_repo(tmp_path / "r", {".baton/setup.sh": setup, "README.md": "# r\n"})
    monkeypatch.setenv("FAKE_AGENT_RUN", "echo work > work.py")
    first = go(settings, repo)
    assert first.run.outcome == Outcome.SUCCEEDED, first.run.error
    worktree = Path(first.session.worktree)
    assert (worktree / ".venv" / "bin" / "python").is_file()
    cache = next((settings.home / "repos").rglob("*.git"))
    checkpoints = git(cache, "for-each-ref", "--format=%(objectname)", "refs/baton/checkpoints")
    assert checkpoints, "the agent's new file made a checkpoint"
    held = git(cache, "ls-tree", "-r", "--name-only", checkpoints.split()[0]).split()
    assert "work.py" in held and not any(p.startswith((".venv", "build")) for p in held), held
    monkeypatch.setenv("FAKE_AGENT_RUN", "git add -A && git commit -qm mine")
    again = go(settings, repo, "commit it", access=Access.FULL)
    assert again.run.outcome == Outcome.SUCCEEDED, again.run.error
    committed = git(worktree, "show", "--name-only", "--format=", "HEAD").split()
    assert committed == ["work.py"], committed
