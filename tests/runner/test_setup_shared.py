"""One preparation per repository and commit, shared by its threads, through ``baton.run`` with the fake
agent: the setup runs once in a prepared tree and each key's worktree gets its results, relocated, so
its ``.venv``'s ``pytest`` runs and its editable install imports the key's own code; concurrent first
turns wait for one preparation; a lock file changed on one key's branch runs that key's maintenance
only; a sweep removes a prepared tree no thread used for ``prepared_idle_days``, and disk pressure
removes it first; ``baton du`` counts preparations and hits."""

from __future__ import annotations

import dataclasses
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from baton import Outcome, RunRequest, RunResult, run
from baton.environment import prepared as trees
from baton.housekeeping.disk import relieve, usage
from baton.housekeeping.prepared import usage as prepared_usage
from baton.housekeeping.sweep import sweep
from baton.settings import Settings
from baton.store import open_store
from tests.conftest import git, make_repo
from tests.support.wheels import installed_wheels

COUNT = 'echo ran >> "$HOME/setup-count"\n'
MAINTAIN = 'echo kept >> "$HOME/maintain-count"\n'

# A PEP 660 build backend of a few lines, in the repository (offline: no setuptools wheel needed): an
# editable wheel is a ``.pth`` naming ``src/`` by its absolute path, as flit's and hatchling's are.
BACKEND = """import base64, hashlib, os, zipfile
NAME, VERSION = "tinyproj", "0.1"
INFO = f"{NAME}-{VERSION}.dist-info"
def _line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"
def get_requires_for_build_editable(config_settings=None):
    return []
def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    files = {
        f"{NAME}.pth": (os.path.abspath("src") + "\\n").encode(),
        f"{INFO}/METADATA": f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n".encode(),
        f"{INFO}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
        record = [_line(p, d) for p, d in files.items()] + [f"{INFO}/RECORD,,"]
        wheel.writestr(f"{INFO}/RECORD", "\\n".join(record))
    return name
"""
PYPROJECT = (
    '[build-system]\nrequires = []\nbuild-backend = "tinybackend"\nbackend-path = ["_backend"]\n\n'
    '[project]\nname = "tinyproj"\nversion = "0.1"\n'
)
OWN_CODE = (
    "import os\n\nimport tinyproj\n\n\ndef test_own_code() -> None:\n"
    "    assert tinyproj.__file__.startswith(os.getcwd() + '/src/')\n"
    "    assert tinyproj.WHO == os.path.basename(os.getcwd())\n"
)
# the agent makes its key's code its own (WHO = its thread), then runs the tests and imports it
AGENT = (
    'printf \'WHO = "%s"\\n\' "$(basename "$PWD")" > src/tinyproj/__init__.py && '
    ".venv/bin/pytest -q tests > pytest.out 2>&1; "
    '.venv/bin/python -c "import tinyproj; print(tinyproj.WHO, tinyproj.__file__)" > who.out 2>&1'
)


def go(settings: Settings, repo: Path, thread: str, prompt: str = "do it") -> RunResult:
    return run(RunRequest(agent="fake", repo=str(repo), thread=thread, prompt=prompt), settings=settings)


def counted(settings: Settings, name: str) -> int:
    """Lines appended to ``name`` in the keys' homes and the prepared trees' own (not in worktrees)."""
    found = [p for p in settings.home.rglob(name) if "worktrees" not in p.parts]
    return sum(len(p.read_text().splitlines()) for p in found)


def python_project(path: Path, setup_extra: str = "") -> Path:
    """A project whose setup makes ``.venv``, installs pytest from wheels it ships and itself editable."""
    setup = (
        f"set -e\n{COUNT}{setup_extra}{sys.base_prefix}/bin/python3 -m venv .venv\n"
        ".venv/bin/pip install -q --no-index --find-links wheels pytest\n"
        ".venv/bin/pip install -q --no-index --no-build-isolation -e .\n"
    )
    repo = make_repo(
        path,
        {
            ".baton/setup.sh": setup,
            "pyproject.toml": PYPROJECT,
            "_backend/tinybackend.py": BACKEND,
            "src/tinyproj/__init__.py": 'WHO = "base"\n',
            "tests/test_own.py": OWN_CODE,
            ".gitignore": ".venv/\n*.out\n__pycache__/\n",
        },
    )
    installed_wheels(repo / "wheels", "pytest")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "wheels")
    return repo


def test_two_threads_share_one_preparation_and_each_runs_its_own_code(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = python_project(tmp_path / "py")
    monkeypatch.setenv("FAKE_AGENT_RUN", AGENT)
    first, second = go(settings, repo, "t1"), go(settings, repo, "t2")
    for result in (first, second):
        assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    assert counted(settings, "setup-count") == 1  # the setup ran once, for both threads
    assert "the preparation of" in (first.run.note or "") and " ran in " in (first.run.note or "")
    assert "was ready (a hit)" in (second.run.note or "")
    assert "preparations 1, hits 1" in (second.run.note or "")
    for result, thread in ((first, "t1"), (second, "t2")):
        worktree = Path(result.session.worktree)
        assert "1 passed" in (worktree / "pytest.out").read_text(), (worktree / "pytest.out").read_text()
        assert (worktree / "who.out").read_text().split() == [thread, f"{worktree}/src/tinyproj/__init__.py"]
        script = (worktree / ".venv/bin/pytest").read_text()  # pip's shebang (or exec line, on a long path)
        assert f"{worktree}/.venv/bin/python" in script and "/prepared/" not in script
        assert (worktree / ".venv").is_dir() and not (worktree / ".venv").is_symlink()
    [tree] = trees.trees(settings.home)
    assert str(tree.tree) not in (Path(second.session.worktree) / ".venv/bin/pip").read_text()
    store = open_store(settings.resolved_store_url)
    try:
        report = usage(store, settings).to_json(sessions=False)
    finally:
        store.close()
    [(_slug, row)] = report["prepared"].items()
    assert row["trees"] == 1 and row["preparations"] == 1 and row["hits"] == 1 and row["bytes"] > 0


def test_concurrent_first_turns_wait_for_one_preparation(settings: Settings, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {".baton/setup.sh": f"{COUNT}sleep 2\necho made > built.txt\n"})
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda thread: go(settings, repo, thread), ["t1", "t2"]))
    for result in results:
        assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
        assert (Path(result.session.worktree) / "built.txt").read_text() == "made\n"
    assert counted(settings, "setup-count") == 1
    notes = sorted(r.run.note or "" for r in results)
    assert sum("was ready (a hit)" in n for n in notes) == 1


def test_a_lock_file_changed_on_one_branch_runs_its_maintenance_only(
    settings: Settings, tmp_path: Path
) -> None:
    files = {".baton/setup.sh": COUNT, ".baton/maintain.sh": MAINTAIN, "uv.lock": "1"}
    repo = make_repo(tmp_path / "r", files)
    one, two = go(settings, repo, "t1"), go(settings, repo, "t2")
    assert counted(settings, "setup-count") == 1
    (Path(one.session.worktree) / "uv.lock").write_text("2")  # as t1's agent would, on its branch
    again_one, again_two = go(settings, repo, "t1"), go(settings, repo, "t2")
    assert again_one.run.note and "environment: maintenance" in again_one.run.note
    assert "changed since the key's last setup: uv.lock" in again_one.run.note
    assert "environment" not in (again_two.run.note or "")
    assert counted(settings, "setup-count") == 1 and counted(settings, "maintain-count") == 1
    [maintained] = [p for p in settings.home.rglob("maintain-count")]
    assert "t1" in str(maintained) and two.session.thread == "t2"  # in t1's own home


def test_a_commit_that_changes_no_input_is_a_hit_and_one_that_changes_an_input_is_prepared(
    settings: Settings, tmp_path: Path
) -> None:
    files = {".baton/setup.sh": f"{COUNT}git rev-parse HEAD > at.txt\n", "requirements/tests.txt": "a\n"}
    repo = make_repo(tmp_path / "r", files)
    first = go(settings, repo, "t1")
    (repo / "README.md").write_text("# only words\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "readme")
    second = go(settings, repo, "t2")
    assert counted(settings, "setup-count") == 1 and len(trees.trees(settings.home)) == 1
    note = second.run.note or ""
    assert (
        "was ready (a hit)" in note and f"the same inputs at {git(repo, 'rev-parse', 'HEAD~1')[:12]}" in note
    )
    assert (Path(second.session.worktree) / "README.md").read_text() == "# only words\n"  # its own commit
    (repo / "requirements/tests.txt").write_text("a\nb\n")
    git(repo, "commit", "-q", "-am", "a test dependency")
    third = go(settings, repo, "t3")
    assert counted(settings, "setup-count") == 2 and len(trees.trees(settings.home)) == 2
    at = [(Path(r.session.worktree) / "at.txt").read_text().strip() for r in (first, second, third)]
    assert at == [git(repo, "rev-parse", "HEAD~2")] * 2 + [git(repo, "rev-parse", "HEAD")]  # git works there


def test_a_branch_off_the_default_one_takes_a_ready_preparation_but_never_makes_one_for_others(
    settings: Settings, tmp_path: Path
) -> None:
    """A commit no one merged may have changed what its setup runs beyond its inputs (a script it
    calls): it is given the default branch's preparation of the same inputs, but one made for it is its
    commit's alone, never given to a thread of the default branch."""
    repo = make_repo(
        tmp_path / "r", {".baton/setup.sh": f"{COUNT}sh ./helper.sh\n", "helper.sh": "echo base > by.txt\n"}
    )
    go(settings, repo, "t1")
    git(repo, "checkout", "-q", "-b", "topic")
    (repo / "helper.sh").write_text("echo topic > by.txt\n")
    git(repo, "commit", "-q", "-am", "the helper changed, no input")
    git(repo, "checkout", "-q", "main")  # the default branch stays main
    on_topic = run(
        RunRequest(agent="fake", repo=str(repo), thread="t2", prompt="go", base="topic"), settings=settings
    )
    assert on_topic.run.outcome == Outcome.SUCCEEDED, on_topic.run.error
    assert "was ready (a hit)" in (on_topic.run.note or "") and counted(settings, "setup-count") == 1
    git(repo, "checkout", "-q", "topic")
    (repo / "uv.lock").write_text("new\n")
    git(repo, "add", "uv.lock")
    git(repo, "commit", "-q", "-m", "an input too")
    git(repo, "checkout", "-q", "main")
    own = run(
        RunRequest(agent="fake", repo=str(repo), thread="t3", prompt="go", base="topic"), settings=settings
    )
    assert own.run.outcome == Outcome.SUCCEEDED, own.run.error
    assert (Path(own.session.worktree) / "by.txt").read_text() == "topic\n" and counted(
        settings, "setup-count"
    ) == 2
    git(repo, "merge", "-q", "--ff-only", "topic")  # the same inputs, now on the default branch
    merged = go(settings, repo, "t4")
    assert " ran in " in (merged.run.note or "") and counted(settings, "setup-count") == 3


def test_the_sweep_removes_an_unused_prepared_tree(settings: Settings, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {".baton/setup.sh": f"{COUNT}echo made > built.txt\n"})
    first = go(settings, repo, "t1")
    [tree] = trees.trees(settings.home)
    admin = tree.admin(settings.home / "repos" / f"{tree.slug}.git")
    assert tree.tree.is_dir() and admin.is_dir()
    store = open_store(settings.resolved_store_url)
    try:
        kept = sweep(store, settings, now=time.time() + 86400)  # used a day ago: kept (7 days)
        assert kept.prepared == [] and tree.root.is_dir()
        report = sweep(store, settings, now=time.time() + 8 * 86400)
    finally:
        store.close()
    assert report.prepared == [str(tree.root)] and report.freed["prepared"] > 0
    assert not tree.root.exists() and not admin.exists()
    assert (Path(first.session.worktree) / "built.txt").is_file()  # the thread keeps its copy
    go(settings, repo, "t2")  # prepared again for a new thread
    assert counted(settings, "setup-count") == 1  # the first tree's home went with it
    assert len(trees.trees(settings.home)) == 1


def test_disk_pressure_removes_prepared_trees_first(settings: Settings, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {".baton/setup.sh": "head -c 200000 /dev/zero > big.bin\n"})
    first = go(settings, repo, "t1")
    [tree] = trees.trees(settings.home)
    pressed = dataclasses.replace(settings, min_free="100T")  # always under: everything idle may go
    store = open_store(settings.resolved_store_url)
    try:
        with tree.locked(settings.home, None):  # a turn copying from it: never removed
            assert relieve(store, pressed, "test", dry_run=True).prepared.trees == []
        relief = relieve(store, pressed, "test", dry_run=True)
    finally:
        store.close()
    assert relief.prepared.trees == [str(tree.root)] and relief.prepared.freed >= 200000
    assert tree.root.is_dir() and Path(first.session.worktree, "big.bin").is_file()  # a dry run


def test_a_failed_preparation_leaves_bytes_but_no_tree(settings: Settings, tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r", {".baton/setup.sh": 'head -c 50000 /dev/zero > "$HOME/download"\nexit 3\n'}
    )
    failed = go(settings, repo, "t1")
    assert failed.run.outcome == Outcome.FAILED
    [(_slug, row)] = prepared_usage(settings).items()
    assert row["trees"] == 0 and row["bytes"] >= 50000  # its home kept what it downloaded, for the next try


def test_a_user_install_of_the_preparation_reaches_every_thread(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pip install --user`` in the setup writes the prepared tree's home; each thread's agent home gets
    it, relocated (the editable install's path names the thread's own worktree)."""
    python = f"{sys.base_prefix}/bin/python3"
    setup = (
        f"{COUNT}{python} -m pip install -q --user --no-index --no-build-isolation -e .\n"
        'mkdir -p "$HOME/.local/bin" && printf "#!/bin/sh\\necho tool ran\\n" > "$HOME/.local/bin/tinytool"\n'
        'chmod +x "$HOME/.local/bin/tinytool"\n'
    )
    repo = make_repo(
        tmp_path / "r",
        {
            ".baton/setup.sh": setup,
            "pyproject.toml": PYPROJECT,
            "_backend/tinybackend.py": BACKEND,
            "src/tinyproj/__init__.py": 'WHO = "base"\n',
            ".gitignore": "*.out\n",
        },
    )
    agent = (
        f'{python} -c "import tinyproj; print(tinyproj.__file__)" > who.out 2>&1; tinytool > tool.out 2>&1'
    )
    monkeypatch.setenv("FAKE_AGENT_RUN", agent)
    first, second = go(settings, repo, "t1"), go(settings, repo, "t2")
    assert counted(settings, "setup-count") == 1 and "was ready (a hit)" in (second.run.note or "")
    assert "into the agent's home: 2 result(s) copied (.local/lib, .local/bin); 2 file(s)" in (
        second.run.note or ""
    )
    for result in (first, second):
        worktree = Path(result.session.worktree)
        assert (worktree / "who.out").read_text().strip() == f"{worktree}/src/tinyproj/__init__.py"
        assert (worktree / "tool.out").read_text() == "tool ran\n"  # ~/.local/bin is on its PATH


def test_changed_inputs_whose_preparation_is_ready_replace_the_environment_and_drop_what_went(
    settings: Settings, tmp_path: Path
) -> None:
    """t1's agent drops ``b`` from its requirements as main did, whose preparation t2 made: t1's next
    turn takes that preparation (a hit) instead of its maintenance, which only installs, so ``b`` is
    gone from its environment too."""
    install = 'mkdir -p deps && for d in $(cat requirements.txt); do touch "deps/$d"; done\n'
    files = {".baton/setup.sh": f"{COUNT}{install}", ".baton/maintain.sh": f"{MAINTAIN}{install}"}
    repo = make_repo(tmp_path / "r", {**files, "requirements.txt": "a\nb\n"})
    one = go(settings, repo, "t1")
    first = Path(one.session.worktree)
    assert sorted(p.name for p in (first / "deps").iterdir()) == ["a", "b"]
    (repo / "requirements.txt").write_text("a\n")
    git(repo, "commit", "-q", "-am", "b is not needed")
    go(settings, repo, "t2")  # prepares main's new inputs
    (first / "requirements.txt").write_text("a\n")  # as t1's agent would, on its branch
    again = go(settings, repo, "t1")
    assert again.run.outcome == Outcome.SUCCEEDED, again.run.error
    note = again.run.note or ""
    assert (
        "was ready (a hit): the worktree's environment replaced by it (1 old result(s) removed: deps)" in note
    )
    assert sorted(p.name for p in (first / "deps").iterdir()) == ["a"]  # b is gone
    assert counted(settings, "maintain-count") == 0 and counted(settings, "setup-count") == 2
    (first / "requirements.txt").write_text("a\nc\n")  # inputs no one prepared: its maintenance, as before
    last = go(settings, repo, "t1")
    assert "environment: maintenance" in (last.run.note or "") and counted(settings, "maintain-count") == 1
    assert sorted(p.name for p in (first / "deps").iterdir()) == ["a", "c"]
