"""Pruning before eviction: under disk pressure an idle key's ignored, untracked artefacts
(``node_modules``, ``.venv``, ``__pycache__``, an ignored ``dist/``) go first, least recently used key
first; a tracked ``build/`` file, an un-ignored untracked ``target/`` and a key under lease stay; a
``node_modules`` symlink is removed as a link; ``du`` shows the split; ``sweep --dry-run`` lists and
removes nothing. All on real worktrees made by real runs of the fake agent."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from baton.errors import BadInput
from baton.housekeeping.disk import relieve, usage
from baton.housekeeping.prune import prune_idle, rules
from baton.keys import key_of
from baton.settings import Settings, load_settings
from baton.store import Store
from baton.store.leases import LeaseHolder
from baton.workspace import gitlinks
from baton.workspace.readonly import readonly_git
from baton.workspace.workdirs import Workdirs, disk_usage
from tests.conftest import commit_file, git
from tests.runner.test_runner import go
from tests.service.test_dashboard import browser
from tests.service_fixtures import Service, service_fixture  # noqa: F401 (the `service` fixture)

BIG = 8 * 2**20  # node_modules' real blocks: enough to be most of the home, small enough to be quick
GONE = ("node_modules", ".venv", "src/__pycache__", "dist", "pkg/node_modules")
KEPT = ("build/tracked.txt", "build/out.o", "target/release.bin", "notes/todo.txt", "src/app.py")


@pytest.fixture
def repo(src_repo: Path) -> Path:
    """The source repository with a .gitignore and a file force-added under its ignored ``build/``."""
    commit_file(src_repo, ".gitignore", "node_modules\n.venv/\n__pycache__/\nbuild/\ndist/\n", "ignore")
    (src_repo / "build").mkdir()
    (src_repo / "build" / "tracked.txt").write_text("tracked under an ignored dir\n")
    git(src_repo, "add", "-f", "build/tracked.txt")
    git(src_repo, "commit", "-q", "-m", "a tracked build file")
    return src_repo


def fill(worktree: Path, outside: Path) -> None:
    """Artefacts, and what looks like one but is not: see the module's docstring."""
    (worktree / "node_modules" / "left-pad").mkdir(parents=True)
    with open(worktree / "node_modules" / "left-pad" / "big.bin", "wb") as f:
        f.write(os.urandom(BIG))
    for rel in (".venv/lib/site.py", "src/__pycache__/app.cpython-311.pyc", "dist/app.whl", "build/out.o"):
        (worktree / rel).parent.mkdir(parents=True, exist_ok=True)
        (worktree / rel).write_text("rebuildable\n")
    for rel in ("target/release.bin", "notes/todo.txt"):  # untracked, not ignored: the agent's work
        (worktree / rel).parent.mkdir(parents=True, exist_ok=True)
        (worktree / rel).write_text("unique\n")
    outside.mkdir(exist_ok=True)
    (outside / "precious.txt").write_text("not baton's\n")
    (worktree / "pkg").mkdir()
    (worktree / "pkg" / "node_modules").symlink_to(outside, target_is_directory=True)


@pytest.fixture
def world(settings: Settings, repo: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """Two keys, t1 used before t2, both filled; the directory t1's symlink points at."""
    old = Path(go(settings, repo, "older", thread="t1").session.worktree)
    new = Path(go(settings, repo, "newer", thread="t2").session.worktree)
    outside = tmp_path / "outside"
    fill(old, outside)
    fill(new, outside)
    return old, new, outside


def pressed(settings: Settings) -> Settings:
    """Over the quota by a little: pruning one key frees enough."""
    return settings.with_(disk_quota=str(disk_usage(settings.home) - 2**20), min_free="0")


def test_pressure_prunes_the_lru_idle_key_and_keeps_the_rest(
    settings: Settings, store: Store, world: tuple[Path, Path, Path]
) -> None:
    old, new, outside = world
    relief = relieve(store, pressed(settings), "test")
    assert relief.evictions == [], "pruning freed enough: no worktree evicted"
    [pruning] = relief.pruned.prunings
    assert pruning.key.endswith(":t1") and pruning.reason.startswith("disk pressure")
    assert sorted(a["path"] for a in pruning.artefacts) == sorted(GONE)
    assert pruning.bytes >= BIG
    for rel in GONE:
        assert not os.path.lexists(old / rel), rel
        assert os.path.lexists(new / rel), f"t2 is more recent: {rel} kept"
    for rel in KEPT:
        assert (old / rel).is_file(), f"{rel} is tracked or not ignored: kept"
    assert (outside / "precious.txt").read_text() == "not baton's\n", "the link's target untouched"
    assert old.is_dir() and (old / ".git").is_file(), "the worktree itself stays"
    audit = next(a for a in store.list_audit(limit=5) if a["action"] == "prune")
    assert audit["actor"] == "test" and audit["detail"]["bytes"] == pruning.bytes


def test_a_key_under_lease_is_untouched(
    settings: Settings, store: Store, world: tuple[Path, Path, Path]
) -> None:
    old, new, _ = world
    session = store.get_session("fake", key_of_path(store, "t1"), "t1")
    assert session is not None
    busy = LeaseHolder(store, key_of(session).id, 60)
    busy.acquire(0)
    try:
        report = prune_idle(store, settings, 1, "test")
    finally:
        busy.release()
    assert [p.key.rpartition(":")[2] for p in report.prunings] == ["t2"]
    assert report.skipped == {str(key_of(session)): "busy: a run holds the key"}
    assert all(os.path.lexists(old / rel) for rel in GONE), "the running key keeps everything"
    assert not os.path.lexists(new / "node_modules")


def key_of_path(store: Store, thread: str) -> str:
    return next(s.repo for s in store.list_sessions() if s.thread == thread)


def test_du_shows_rebuildable_and_unique(
    settings: Settings, store: Store, world: tuple[Path, Path, Path]
) -> None:
    old, _, _ = world
    report = usage(store, settings)
    one = next(s for s in report.sessions if s.thread == "t1")
    by_path = {a["path"]: a for a in one.artefacts}
    assert sorted(by_path) == sorted(GONE)
    assert by_path["node_modules"]["bytes"] == disk_usage(old / "node_modules") >= BIG
    assert by_path["pkg/node_modules"]["kind"] == "node_modules"
    assert by_path["pkg/node_modules"]["bytes"] == os.lstat(old / "pkg/node_modules").st_blocks * 512
    assert one.rebuildable == sum(a["bytes"] for a in one.artefacts)
    assert one.unique == one.worktree - one.shared - one.rebuildable > 0
    data = report.to_json()
    assert data["rebuildable"] == sum(s.rebuildable for s in report.sessions) >= 2 * BIG
    assert data["unique"] == sum(s.unique for s in report.sessions)
    assert all(os.path.lexists(old / rel) for rel in GONE), "measuring removes nothing"


def test_sweep_dry_run_lists_and_removes_nothing(
    settings: Settings, world: tuple[Path, Path, Path], cli_here: Callable[..., CompletedProcess[str]]
) -> None:
    old, new, _ = world
    done = cli_here("sweep", "--dry-run", "--prune", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [p["key"].rpartition(":")[2] for p in data["prunings"]] == ["t1", "t2"], (
        "least recently used first"
    )
    first = data["prunings"][0]
    assert first["dry_run"] and first["reason"] == "asked: sweep --prune"
    assert {a["kind"] for a in first["artefacts"]} == {"node_modules", ".venv", "__pycache__", "dist"}
    assert data["freed"]["artefacts"] == sum(p["bytes"] for p in data["prunings"]) >= 2 * BIG
    assert all(os.path.lexists(w / rel) for w in (old, new) for rel in GONE), "a dry run removes nothing"
    text = cli_here("sweep", "--dry-run", "--prune")
    assert text.returncode == 0 and "would prune" in text.stdout and "pkg/node_modules" in text.stdout
    real = json.loads(cli_here("sweep", "--prune", "--json").stdout)
    assert real["prunings"][0]["artefacts"] == first["artefacts"], "the dry run said what the real one did"
    assert not any(os.path.lexists(w / rel) for w in (old, new) for rel in GONE)
    assert all((w / rel).is_file() for w in (old, new) for rel in KEPT)
    du = cli_here("du")
    assert du.returncode == 0 and "rebuildable" in du.stdout


def test_without_pressure_or_prune_nothing_is_pruned(
    settings: Settings, store: Store, world: tuple[Path, Path, Path]
) -> None:
    old, _, _ = world
    relief = relieve(store, settings.with_(disk_quota="1T", min_free="0"), "test")
    assert relief.pruned.prunings == [] and relief.evictions == []
    assert (old / "node_modules").is_dir()


def test_per_repo_tables_and_the_setting(
    settings: Settings, store: Store, world: tuple[Path, Path, Path]
) -> None:
    old, _, _ = world
    slug = key_of_path(store, "t1")
    config = settings.home / "config.toml"
    config.write_text(f'prune_kinds = "default,notes"\n[prune."{slug}"]\nkeep = [".venv"]\nkinds = ["out"]\n')
    loaded = load_settings(environ={"BATON_HOME": str(settings.home)})
    kinds = rules(loaded).of(slug)
    assert {"notes", "out", "node_modules"} <= kinds and ".venv" not in kinds
    assert rules(loaded).of("elsewhere") == loaded.prune_kind_names
    report = prune_idle(store, loaded.with_(disk_quota="1T", min_free="0"), 0, "test", everything=True)
    paths = {a["path"] for p in report.prunings for a in p.artefacts}
    assert ".venv" not in paths and "node_modules" in paths
    assert (old / ".venv").is_dir() and (old / "notes/todo.txt").is_file(), "notes/ is not ignored: kept"
    off = load_settings(environ={"BATON_HOME": str(settings.home), "BATON_PRUNE_KINDS": "none"})
    assert off.prune_kind_names == frozenset()
    with pytest.raises(BadInput, match="prune_kinds"):
        load_settings(environ={"BATON_HOME": str(settings.home), "BATON_PRUNE_KINDS": "default,../etc"})
    config.write_text(f'[prune."{slug}"]\nkinds = "node_modules"\n')
    with pytest.raises(BadInput, match=r'\[prune\."[^"]+"\]\.kinds'):
        rules(load_settings(environ={"BATON_HOME": str(settings.home)}))
    config.write_text(f'[prune."{slug}"]\nkindz = []\n')
    with pytest.raises(BadInput, match="unknown key 'kindz'"):
        rules(load_settings(environ={"BATON_HOME": str(settings.home)}))


def test_disk_and_sweep_over_http_show_the_split(service: Service, repo: Path, tmp_path: Path) -> None:
    worktree = Path(go(service.settings, repo, "one").session.worktree)
    fill(worktree, tmp_path / "outside")
    with service.client("read") as http:
        disk = http.get("/v1/disk").json()
        assert disk["rebuildable"] >= BIG and disk["sessions"][0]["unique"] > 0
        assert {a["kind"] for a in disk["sessions"][0]["artefacts"]} >= {"node_modules", ".venv"}
    with service.client("admin") as http:
        dry = http.post("/v1/sweep", params={"dry_run": "true", "prune": "true"}).json()
        assert dry["prunings"][0]["bytes"] >= BIG and (worktree / "node_modules").is_dir()
    row = disk["sessions"][0]
    with browser(service, "read") as http:
        page = http.get("/", params={"fresh": 1}).text
        one = http.get(
            "/session", params={"agent": "fake", "repo": row["repo"], "thread": row["thread"]}
        ).text
    assert f'data-metric="rebuildable" data-bytes="{disk["rebuildable"]}"' in page
    assert f'data-rebuildable="{row["rebuildable"]}"' in page and f'data-unique="{row["unique"]}"' in page
    assert f'data-fact="rebuildable" data-bytes="{row["rebuildable"]}"' in one
    assert f'data-fact="unique" data-bytes="{row["unique"]}"' in one and "node_modules" in one


def test_a_measurement_does_not_use_a_tampered_admin_dir(
    settings: Settings, store: Store, world: tuple[Path, Path, Path]
) -> None:
    """The agent may write its admin dir; a FIFO there would block git (a run's repair removes it, a
    measurement writes nothing): no split for that key, the others measured."""
    session = next(s for s in store.list_sessions() if s.thread == "t1")
    key = key_of(session)
    admin = gitlinks.find(Workdirs(settings).cache_path(key.repo), key)
    assert admin is not None and readonly_git(settings, key) is not None
    os.mkfifo(admin / "trap")
    assert readonly_git(settings, key) is None
    by_thread = {s.thread: s for s in usage(store, settings).sessions}
    assert by_thread["t1"].rebuildable == 0 and by_thread["t2"].rebuildable >= BIG
