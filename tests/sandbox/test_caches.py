"""Shared package caches per repository (issue 33, point 5): the environment a run's agent gets names
its repository's cache dir for every package manager (:data:`baton.sandbox.agentenv.CACHES`), the
threads of one repo share it, another repo's keys get another one, and the walls grant the run's
repo's caches read-write and nothing of another repo's. Built through the runner's own steps
(``attempt._agent_env``, ``confine.walls_for`` and ``walls.ruleset``), with real processes under the
real walls; and npm, against its real registry (part of this machine's contract: unreachable means
failed, not skipped): the second thread of a repo installs from the first one's download,
``--offline``.

Like tests/sandbox/test_walls.py these fail, never skip, where the kernel lacks Landlock (unless
``BATON_TEST_NO_LANDLOCK=1``)."""

from __future__ import annotations

import shutil
import stat
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from baton.keys import Key, make_key
from baton.models import Access
from baton.runner import attempt
from baton.sandbox import confine
from baton.sandbox.agentenv import CACHES, COPY_OUT, PNPM_RC
from baton.sandbox.walls import Walls
from baton.settings import Settings
from baton.testing.fake import register_fake
from baton.workspace import keyspace
from tests.sandbox.test_landlock import require_landlock

FIXTURE = Path(__file__).parents[1] / "fixtures" / "npm-tiny"  # chalk 4.1.2 and its 5 dependencies, locked
REPO_1, REPO_2 = "https://git.example/acme", "https://git.example/acme/api"  # one slug a prefix of the other


@pytest.fixture(autouse=True)
def fake() -> None:
    register_fake()


def key(repo: str, thread: str) -> Key:
    return make_key("fake", repo, thread, ["fake"])


def ctx(settings: Settings, k: Key, access: Access = Access.EDIT) -> Any:
    """What ``attempt._agent_env`` and ``attempt._walls`` read of a run's context."""
    workdirs = SimpleNamespace(git_env=lambda agent: {}, worktree_git=lambda key: None)
    agent = keyspace.agent_for(k, settings)
    return SimpleNamespace(key=k, settings=settings, agent=agent, workdirs=workdirs, access=access)


def env_of(settings: Settings, k: Key, access: Access = Access.EDIT) -> dict[str, str]:
    return attempt._agent_env(ctx(settings, k, access), SimpleNamespace(env={}), SimpleNamespace(id="r1"), {})  # type: ignore[arg-type]


def walls_of(settings: Settings, k: Key, env: dict[str, str], access: Access = Access.EDIT) -> Walls:
    worktree = settings.home / "worktrees" / k.agent / k.repo.slug / k.thread
    worktree.mkdir(parents=True, exist_ok=True)
    return confine.walls_for(
        settings, attempt._operators(ctx(settings, k)), access, worktree, None, env, k.repo.url
    )


def caches_of(env: dict[str, str]) -> dict[str, str]:
    return {name: env[name] for name in CACHES}


# -- the environment --------------------------------------------------------------------------------------


def test_a_repos_threads_share_its_caches_and_no_other_repos(settings: Settings) -> None:
    one, two, other = (env_of(settings, k) for k in (key(REPO_1, "t1"), key(REPO_1, "t2"), key(REPO_2, "t1")))
    root = settings.home / "caches" / "git.example" / "acme" / "@shared"
    assert caches_of(one) == caches_of(two) == {name: str(root / sub) for name, sub in CACHES.items()}
    others = {Path(p) for p in caches_of(other).values()}
    assert all(root not in p.parents and p not in root.parents for p in others)  # neither holds the other
    assert {p.parent for p in others} == {
        settings.home / "caches" / "git.example" / "acme" / "api" / "@shared"
    }
    # made private before anything runs, and every missing parent below BATON_HOME too
    for path in (root, root.parent, root.parent.parent, settings.home / "caches"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    # installs copy out of the cache; npm's debug logs stay the key's
    assert {name: one[name] for name in COPY_OUT} == COPY_OUT
    assert one["npm_config_logs_dir"].startswith(one["HOME"] + "/")
    assert one["npm_config_logs_dir"] != two["npm_config_logs_dir"]
    # pnpm 11 and later read pnpm_config_*, pnpm 10 and earlier its global rc in the home (never npm's
    # variables: npm warns of each it does not know, on every command)
    assert not [n for n in one if n.startswith("npm_config_") and ("store" in n or "import" in n)]
    rc = (Path(one["HOME"]) / PNPM_RC).read_text()
    assert rc == f"store-dir={one['pnpm_config_store_dir']}\npackage-import-method=clone-or-copy\n"


def test_the_pnpm_rc_is_never_written_through_a_link_in_the_home(settings: Settings, tmp_path: Path) -> None:
    k = key(REPO_1, "t1")
    env_of(settings, k)  # the home made
    home = keyspace.key_home(settings, k)
    outside = tmp_path / "operator-config"
    (outside / "pnpm").mkdir(parents=True)
    shutil.rmtree(home / ".config")
    (home / ".config").symlink_to(outside)  # as an agent could plant
    env_of(settings, k)
    assert not (outside / "pnpm" / "rc").exists()


def test_no_shared_caches_at_read_or_when_turned_off(settings: Settings) -> None:
    for env in (
        env_of(settings, key(REPO_1, "t1"), Access.READ),
        env_of(settings.with_(shared_caches="off"), key(REPO_1, "t2")),
    ):
        assert not set(CACHES) & set(env) and not set(COPY_OUT) & set(env)
    assert not (settings.home / "caches").exists()


def test_an_operators_own_cache_variable_wins_and_is_not_granted(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = tmp_path / "operator-pip"
    monkeypatch.setenv("PIP_CACHE_DIR", str(mine))
    k = key(REPO_1, "t1")
    env = env_of(settings.with_(agent_env="PIP_CACHE_DIR"), k)
    assert env["PIP_CACHE_DIR"] == str(mine) and env["UV_CACHE_DIR"].endswith("/@shared/uv")
    spec = walls_of(settings, k, env)
    assert mine not in spec.caches and len(spec.caches) == len(CACHES) - 1


def test_the_walls_name_the_runs_repo_caches_only(settings: Settings) -> None:
    k = key(REPO_1, "t1")
    env = env_of(settings, k)
    assert set(walls_of(settings, k, env).caches) == {Path(p) for p in caches_of(env).values()}
    assert walls_of(settings, k, env, Access.READ).caches == ()  # even with the variables set


def test_the_caches_on_disk_are_found_and_removed_one_repo_at_a_time(settings: Settings) -> None:
    one, two = env_of(settings, key(REPO_1, "t1")), env_of(settings, key(REPO_2, "t1"))
    found = keyspace.repo_caches(settings)
    assert found == {
        "git.example/acme": Path(one["GOMODCACHE"]).parent,
        "git.example/acme/api": Path(two["GOMODCACHE"]).parent,
    }
    module = Path(one["GOMODCACHE"]) / "example.com" / "m@v1.0.0"  # as Go leaves it: read-only
    module.mkdir(parents=True)
    (module / "go.mod").write_text("module example.com/m\n")
    for path in (module / "go.mod", module, module.parent):
        path.chmod(0o500 if path.is_dir() else 0o400)
    assert keyspace.remove_repo_caches(settings, "git.example/acme")
    assert not Path(one["GOMODCACHE"]).parent.exists() and Path(two["PIP_CACHE_DIR"]).parent.is_dir()
    assert keyspace.repo_caches(settings) == {"git.example/acme/api": Path(two["GOMODCACHE"]).parent}
    assert not keyspace.remove_repo_caches(settings, "git.example/acme")


# -- the walls ----------------------------------------------------------------------------------------


def confined(
    spec: Walls, env: dict[str, str], argv: list[str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """``argv`` walled in by ``spec`` (the runner's own ruleset), with ``env``, in ``cwd``."""
    from baton.sandbox.walls import ruleset

    proc = ruleset(spec).spawn(
        lambda: subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    )
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def test_a_walled_thread_writes_its_repos_cache_and_cannot_reach_another_repos(settings: Settings) -> None:
    require_landlock()
    mine, theirs = key(REPO_1, "t1"), key(REPO_2, "t1")
    other_env = env_of(settings, theirs)
    planted = Path(other_env["PIP_CACHE_DIR"]) / "planted.txt"
    planted.parent.mkdir(parents=True)
    planted.write_text("repo 2's cache\n")
    env = env_of(settings, mine)
    spec = walls_of(settings, mine, env)
    script = (
        'set -u; echo mine > "$PIP_CACHE_DIR/own.txt" && mkdir -p "$GOMODCACHE/cache/download" '
        "&& echo OWN-OK; "
        f"cat {planted} && echo READ-THEIRS; echo x > {planted.parent}/evil.txt && echo WROTE-THEIRS; "
        f"ls {settings.home / 'caches'} && echo LISTED; "
        f"ls {planted.parent.parent} && echo LISTED-THEIRS; true"
    )
    done = confined(spec, env, ["sh", "-c", script], spec.worktree)
    assert "OWN-OK" in done.stdout, done.stderr
    assert (Path(env["PIP_CACHE_DIR"]) / "own.txt").read_text() == "mine\n"
    for word in ("READ-THEIRS", "WROTE-THEIRS", "LISTED", "LISTED-THEIRS"):
        assert word not in done.stdout, (word, done.stdout, done.stderr)
    assert done.stderr.count("Permission denied") == 4, done.stderr
    assert not (planted.parent / "evil.txt").exists()
    # a second thread of the same repo reads what the first wrote
    second = key(REPO_1, "t2")
    env2 = env_of(settings, second)
    done = confined(
        walls_of(settings, second, env2),
        env2,
        ["sh", "-c", 'cat "$PIP_CACHE_DIR/own.txt"'],
        spec.worktree.parent / "t2",
    )
    assert done.returncode == 0 and done.stdout == "mine\n", done.stderr


def test_at_read_the_repos_cache_is_out_of_reach(settings: Settings) -> None:
    require_landlock()
    k = key(REPO_1, "t1")
    shared = Path(env_of(settings, key(REPO_1, "t2"))["PIP_CACHE_DIR"])
    shared.mkdir(parents=True)
    (shared / "pkg.txt").write_text("a package\n")
    env = env_of(settings, k, Access.READ)
    spec = walls_of(settings, k, env, Access.READ)
    done = confined(
        spec, env, ["sh", "-c", f"cat {shared}/pkg.txt || echo x > {shared}/evil.txt"], spec.worktree
    )
    assert done.returncode != 0 and done.stderr.count("Permission denied") == 2, done.stderr


# -- measured: npm ------------------------------------------------------------------------------------------


def npm_ci(settings: Settings, k: Key, *flags: str) -> tuple[subprocess.CompletedProcess[str], float, Path]:
    """``npm ci`` of the fixture in the key's worktree, with the env and walls baton gives its agent."""
    env = env_of(settings, k)
    spec = walls_of(settings, k, env)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(FIXTURE / name, spec.worktree / name)
    npm = shutil.which("npm", path=env["PATH"])
    assert npm, "npm is part of this machine's contract"
    argv = [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", *flags]
    started = time.monotonic()
    done = confined(spec, env, argv, spec.worktree)
    return done, time.monotonic() - started, spec.worktree


def contents(root: Path) -> set[str]:
    """The content-addressed files of an npm cache (one per tarball or packument)."""
    return {
        p.relative_to(root).as_posix() for p in (root / "_cacache" / "content-v2").rglob("*") if p.is_file()
    }


def test_the_second_thread_of_a_repo_installs_from_the_first_ones_download(settings: Settings) -> None:
    require_landlock()
    cache = settings.home / "caches" / "git.example" / "acme" / "@shared" / "npm"
    first, first_s, tree1 = npm_ci(settings, key(REPO_1, "t1"))
    assert first.returncode == 0, first.stderr  # the registry is reachable here: if not, this fails
    assert "Unknown env config" not in first.stderr, first.stderr  # npm is told only its own settings
    assert (tree1 / "node_modules" / "chalk" / "package.json").is_file()
    downloaded = contents(cache)
    assert len(downloaded) >= 6, downloaded  # chalk and its five dependencies' tarballs
    second, second_s, tree2 = npm_ci(settings, key(REPO_1, "t2"), "--offline")
    assert second.returncode == 0, second.stderr
    assert (tree2 / "node_modules" / "color-name" / "package.json").is_file()
    assert contents(cache) == downloaded  # nothing more came in
    # and as an agent would run it, online: still nothing downloaded again
    third, third_s, _ = npm_ci(settings, key(REPO_1, "t3"))
    assert third.returncode == 0 and contents(cache) == downloaded, third.stderr
    # control: another repo's thread has none of it, so --offline cannot install there
    other, _, _ = npm_ci(settings, key(REPO_2, "t1"), "--offline")
    assert other.returncode != 0 and "ENOTCACHED" in other.stderr, other.stderr
    print(
        f"\nnpm ci, thread 1 (download): {first_s:.2f} s; "
        f"thread 2 (--offline, shared cache): {second_s:.2f} s; "
        f"thread 3 (online, shared cache): {third_s:.2f} s"
    )


def test_a_run_makes_its_repos_caches_and_a_read_run_none(settings: Settings, src_repo: Path) -> None:
    """Through ``baton.run``: a walled run of the fake agent at ``edit`` has its repo's caches made
    before its walls were built; at ``read`` none are."""
    from baton import RunRequest, run
    from baton.keys import parse_repo

    caches = keyspace.cache_dir(settings, parse_repo(str(src_repo)).slug)
    request = RunRequest(agent="fake", repo=str(src_repo), thread="r", prompt="hi", access=Access.READ)
    assert run(request, settings=settings).run.confined and not caches.exists()
    edit = RunRequest(agent="fake", repo=str(src_repo), thread="e", prompt="hi", access=Access.EDIT)
    result = run(edit, settings=settings)
    assert result.run.confined and result.run.outcome.value == "succeeded"
    assert sorted(p.name for p in caches.iterdir()) == sorted(set(CACHES.values()))


def test_du_counts_a_repos_package_caches_and_a_sweep_removes_them_with_its_last_session(
    settings: Settings, src_repo: Path
) -> None:
    from baton import RunRequest, run
    from baton.housekeeping.disk import usage
    from baton.housekeeping.sweep import sweep
    from baton.store import open_store

    register_fake()
    kept = run(RunRequest(agent="fake", repo=str(src_repo), thread="t", prompt="hi"), settings=settings)
    assert kept.ok
    live = keyspace.cache_dir(settings, kept.session.repo)
    assert live.is_dir(), "the run's repository got its shared caches"
    path = keyspace.cache_dir(settings, "local/gone")
    path.mkdir(parents=True)
    (path / "npm").mkdir()
    (path / "npm" / "blob").write_bytes(b"x" * 65536)
    store = open_store(settings.resolved_store_url)
    try:
        report = usage(store, settings)
        assert report.package_caches["local/gone"] >= 65536
        assert report.kinds()["package_caches"] >= 65536
        dry = sweep(store, settings, dry_run=True)
        assert dry.package_caches == ["local/gone"] and path.exists()
        done = sweep(store, settings)
        assert done.package_caches == ["local/gone"] and not path.exists()
        assert live.is_dir(), "a repository with a session keeps its caches"
        assert done.freed["package_caches"] >= 65536
    finally:
        store.close()
