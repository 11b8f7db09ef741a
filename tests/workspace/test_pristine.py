"""Copy-on-write worktrees on a real XFS loop volume (root): reflinked from a pristine checkout, git's
index trusted as it is, edits isolated, a killed build never trusted; elsewhere, worktrees as before."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.agents import AGENTS
from baton.housekeeping.disk import usage
from baton.housekeeping.doctor import run_doctor
from baton.keys import Key, make_key
from baton.models import Outcome
from baton.settings import AutoOff, Settings, load_settings
from baton.store import open_store
from baton.workspace.cow import pristine, reflink, spares
from baton.workspace.du import disk_usage
from baton.workspace.workdirs import Workdirs, branch_for
from tests.conftest import BATON, FAST, git, make_repo
from tests.runner.test_runner import go
from tests.xfs import per_test_dir, xfs_volume

FILES = {
    f"pkg/mod{i}/file{j}.py": f"# module {i} file {j}\n" + "x = 1\n" * (200 * j)
    for i in range(8)
    for j in range(6)
}


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with xfs_volume(tmp_path_factory.mktemp("cow")) as mount:
        yield mount


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "origin", {**FILES, "README.md": "# demo\n", "run.sh": "#!/bin/sh\n"})
    os.chmod(repo / "run.sh", 0o755)
    os.symlink("README.md", repo / "link.md")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "exec and link")
    return repo


@pytest.fixture
def home(volume: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    yield from per_test_dir(volume, request)


def key_of(origin: Path, thread: str) -> Key:
    return make_key("fake", str(origin), thread, AGENTS)


def shared_bytes(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        return sum(length for _, length, flags in reflink.extents(fd) if flags & reflink.EXTENT_SHARED)
    finally:
        os.close(fd)


def debug_stat(worktree: Path, name: str) -> dict[str, str]:
    """What git's index holds for ``name``: ``ls-files --debug``'s ctime, mtime, dev, ino, uid, gid, size."""
    lines = git(worktree, "ls-files", "--debug", "--", name).splitlines()[1:]
    found: dict[str, str] = {}
    for line in lines:
        parts = line.replace(":", " ").split()
        for label, value in zip(parts[::2], parts[1::2], strict=False):
            found[label] = value
    return found


def test_the_probe_tells_xfs_from_ext4(volume: Path, tmp_path: Path) -> None:
    (volume / "a").mkdir(exist_ok=True)
    (volume / "b").mkdir(exist_ok=True)
    assert reflink.supported(volume / "a", volume / "b")
    assert not reflink.supported(tmp_path, tmp_path), f"{tmp_path} is expected on ext4 or tmpfs here"
    assert not reflink.supported(tmp_path, volume / "a")  # two file systems never share extents


def test_worktrees_are_reflinked_from_one_pristine_checkout(home: Path, origin: Path) -> None:
    workdirs = Workdirs(Settings(home=home))
    made = [workdirs.prepare_worktree(key_of(origin, f"t{i}"), f"baton/fake/t{i}", None) for i in range(3)]
    cache = workdirs.cache_path(key_of(origin, "t0").repo)
    commit = git(origin, "rev-parse", "HEAD")
    assert os.listdir(cache / pristine.DIRNAME) == [commit]
    big = "pkg/mod3/file5.py"
    for m in made:
        assert m.built and m.new_branch and m.start == commit
        path = m.path
        assert git(path, "status", "--porcelain", "--untracked-files=all") == ""
        assert (path / big).read_bytes() == (origin / big).read_bytes()
        assert shared_bytes(path / big) == os.stat(path / big).st_blocks * 512  # every block shared
        assert os.access(path / "run.sh", os.X_OK) and os.readlink(path / "link.md") == "README.md"
        assert not pristine.stages(path)
        # git trusts the index as it is: it holds this copy's inode and ctime, not the pristine's
        st = os.lstat(path / big)
        entry = debug_stat(path, big)
        assert entry["ino"] == str(st.st_ino) and entry["ctime"].startswith(str(int(st.st_ctime)))
    assert len({os.stat(m.path / big).st_ino for m in made}) == 3


def test_git_trusts_the_carried_stat_data_and_never_re_reads_a_file(home: Path, origin: Path) -> None:
    workdirs = Workdirs(Settings(home=home))
    workdirs.prepare_worktree(key_of(origin, "first"), "baton/fake/first", None)
    spares.settle()  # the pristine checkout, made from the first worktree in the background
    kept = (
        workdirs.cache_path(key_of(origin, "first").repo)
        / pristine.DIRNAME
        / git(origin, "rev-parse", "HEAD")
    )
    assert (kept / "index").read_bytes()[:8] == b"DIRC\0\0\0\x04"  # version 4: paths prefix-compressed
    spares.settle()
    shutil.rmtree(kept / spares.SPARE)  # the second worktree is copied from the pristine files now
    # a pristine file's bytes changed behind git's back, its size and mtime (what the entry holds) kept:
    # only a git that re-reads the copy's file can notice
    name = "pkg/mod2/file3.py"
    st = os.stat(kept / "tree" / name)
    (kept / "tree" / name).write_bytes((kept / "tree" / name).read_bytes().replace(b"x = 1", b"y = 2"))
    os.utime(kept / "tree" / name, ns=(st.st_atime_ns, st.st_mtime_ns))
    time.sleep(max(0.0, int(st.st_mtime) + 1.05 - time.time()))  # else git re-reads it as racily clean
    path = workdirs.prepare_worktree(key_of(origin, "second"), "baton/fake/second", None).path
    assert b"y = 2" in (path / name).read_bytes()
    assert git(path, "status", "--porcelain", "--untracked-files=all") == ""
    index = Path(git(path, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    assert index.read_bytes()[:8] == b"DIRC\0\0\0\x04"


def pristine_of(workdirs: Workdirs, origin: Path) -> Path:
    """The pristine checkout of ``origin``'s HEAD in ``workdirs``' cache clone."""
    cache = workdirs.cache_path(key_of(origin, "any").repo)
    return cache / pristine.DIRNAME / git(origin, "rev-parse", "HEAD")


def test_a_new_worktree_takes_the_spare_copy_made_beside_the_last_one(home: Path, origin: Path) -> None:
    """The first worktree of a commit leaves a spare copy made in the background; the next one takes
    it whole (the same inodes, its index ready: git re-reads nothing) and starts the next spare; an
    edit in a worktree made from a spare reaches neither the pristine files nor the new spare."""
    workdirs = Workdirs(Settings(home=home))
    workdirs.prepare_worktree(key_of(origin, "first"), "baton/fake/first", None)
    kept = (
        workdirs.cache_path(key_of(origin, "first").repo)
        / pristine.DIRNAME
        / git(origin, "rev-parse", "HEAD")
    )
    spares.settle()
    name = "pkg/mod2/file3.py"
    spare_ino = os.stat(kept / spares.SPARE / "tree" / name).st_ino
    assert spare_ino != os.stat(kept / "tree" / name).st_ino
    path = workdirs.prepare_worktree(key_of(origin, "second"), "baton/fake/second", None).path
    assert os.stat(path / name).st_ino == spare_ino  # moved in, not copied
    assert git(path, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(path, "rev-parse", "--abbrev-ref", "HEAD") == "baton/fake/second"
    assert (path / ".git").is_file() and not pristine.stages(path)
    index = Path(git(path, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    assert index.read_bytes()[:8] == b"DIRC\0\0\0\x04"
    debug = git(path, "ls-files", "--debug", name)
    assert f"ino: {spare_ino}" in debug  # the spare's own stat data, carried with it
    spares.settle()
    refilled = kept / spares.SPARE / "tree" / name
    assert refilled.is_file() and os.stat(refilled).st_ino not in (
        spare_ino,
        os.stat(kept / "tree" / name).st_ino,
    )
    original = (kept / "tree" / name).read_bytes()
    (path / name).write_bytes(b"the agent's edit\n")
    assert (kept / "tree" / name).read_bytes() == original == refilled.read_bytes()
    assert not [n for n in os.listdir(kept) if n.startswith(spares.BUILD)]


def test_a_spare_build_killed_midway_is_cleared_and_never_taken(home: Path, origin: Path) -> None:
    workdirs = Workdirs(Settings(home=home))
    workdirs.prepare_worktree(key_of(origin, "first"), "baton/fake/first", None)
    kept = (
        workdirs.cache_path(key_of(origin, "first").repo)
        / pristine.DIRNAME
        / git(origin, "rev-parse", "HEAD")
    )
    spares.settle()
    # as a kill leaves it: the spare gone (taken), a half-made build beside it
    shutil.rmtree(kept / spares.SPARE)
    half = kept / f"{spares.BUILD}killed"
    (half / "tree" / "pkg").mkdir(parents=True)
    (half / "tree" / "pkg" / "half.py").write_text("half\n")
    path = workdirs.prepare_worktree(key_of(origin, "second"), "baton/fake/second", None).path
    assert not (path / "pkg" / "half.py").exists() and git(path, "status", "--porcelain") == ""
    spares.settle()
    assert not half.exists() and (kept / spares.SPARE / "index").is_file()


def test_a_pristine_made_from_an_agents_worktree_holds_the_commit_not_the_agents_changes(
    home: Path, origin: Path, tmp_path: Path
) -> None:
    """The first worktree of a commit is checked out, and the pristine checkout made from it: an
    agent that changed it first (a file edited with its size and mtime kept, one deleted, one made a
    link to a file outside, a directory made a link) gets none of that into the pristine copy, which
    every later key's worktree is made from."""
    workdirs = Workdirs(Settings(home=home))
    key = key_of(origin, "first")
    cache = workdirs.cache_path(key.repo)
    commit = git(origin, "rev-parse", "HEAD")
    path = workdirs.prepare_worktree(key, "baton/fake/first", None).path
    spares.settle()
    shutil.rmtree(cache / pristine.DIRNAME)  # made again below, from the changed worktree
    edited, gone, linked = "pkg/mod1/file1.py", "pkg/mod2/file2.py", "README.md"
    st = os.stat(path / edited)
    (path / edited).write_bytes((path / edited).read_bytes().replace(b"x = 1", b"y = 2"))
    os.utime(path / edited, ns=(st.st_atime_ns, st.st_mtime_ns))
    (path / gone).unlink()
    outside = tmp_path / "secret.txt"
    outside.write_text("not the agent's to share\n")
    (path / linked).unlink()
    (path / linked).symlink_to(outside)
    shutil.rmtree(path / "pkg" / "mod3")
    (path / "pkg" / "mod3").symlink_to(tmp_path)
    assert pristine.adopt(cache, commit, path, dict(os.environ))
    spares.settle()
    made = cache / pristine.DIRNAME / commit
    for name in (edited, gone, linked, "pkg/mod3/file5.py"):
        assert (made / "tree" / name).read_bytes() == git_bytes(origin, f"{commit}:{name}"), name
        assert not (made / "tree" / name).is_symlink()
    second = workdirs.prepare_worktree(key_of(origin, "second"), "baton/fake/second", None).path
    assert git(second, "status", "--porcelain", "--untracked-files=all") == ""
    assert (second / edited).read_bytes() == git_bytes(origin, f"{commit}:{edited}")
    assert b"y = 2" in (path / edited).read_bytes()  # the agent's worktree is left as it was


def git_bytes(cwd: Path, spec: str) -> bytes:
    return subprocess.run(["git", "-C", str(cwd), "show", spec], capture_output=True, check=True).stdout


def test_an_edit_never_reaches_the_pristine_copy_or_another_key(home: Path, origin: Path) -> None:
    workdirs = Workdirs(Settings(home=home))
    a, b = (workdirs.prepare_worktree(key_of(origin, t), f"baton/fake/{t}", None).path for t in ("a", "b"))
    cache = workdirs.cache_path(key_of(origin, "a").repo)
    kept = cache / pristine.DIRNAME / git(origin, "rev-parse", "HEAD") / "tree"
    name = "pkg/mod1/file4.py"
    before = (kept / name).read_bytes()
    with open(a / name, "r+b") as f:  # in place, as an editor that does not rename would
        f.seek(10)
        f.write(b"EDITED BY THE AGENT")
    (a / "pkg/mod2/file1.py").unlink()
    with open(a / "README.md", "ab") as f:
        f.write(b"more\n")
    assert (kept / name).read_bytes() == before
    assert (b / name).read_bytes() == before
    assert (kept / "pkg/mod2/file1.py").exists() and (b / "pkg/mod2/file1.py").exists()
    assert (kept / "README.md").read_text() == (b / "README.md").read_text() == "# demo\n"
    assert git(b, "status", "--porcelain") == ""
    assert {line.strip() for line in git(a, "status", "--porcelain").splitlines()} == {
        f"M {name}",
        "D pkg/mod2/file1.py",
        "M README.md",
    }
    # and the key's checkpoint holds exactly its edits
    commit = workdirs.checkpoint(key_of(origin, "a"))
    assert commit is not None
    assert git(a, "show", f"{commit}:{name}").encode() == (a / name).read_bytes().rstrip(b"\n")


def test_a_near_commit_reuses_a_pristine_checkout(home: Path, origin: Path) -> None:
    workdirs = Workdirs(Settings(home=home))
    first = git(origin, "rev-parse", "HEAD")
    workdirs.prepare_worktree(key_of(origin, "near0"), "baton/fake/near0", None)
    (origin / "README.md").write_text("# one file changed\n")
    git(origin, "rm", "-q", "pkg/mod0/file0.py")
    git(origin, "commit", "-q", "-am", "two of 51 files: near")
    workdirs.ensure_cache(key_of(origin, "near0").repo, "fake")
    path = workdirs.prepare_worktree(key_of(origin, "near1"), "baton/fake/near1", None).path
    cache = workdirs.cache_path(key_of(origin, "near0").repo)
    spares.settle()  # a spare or pristine build under way lists a .tmp-* directory until it ends
    assert os.listdir(cache / pristine.DIRNAME) == [first], "the near pristine checkout was copied"
    assert (path / "README.md").read_text() == "# one file changed\n"
    assert not (path / "pkg/mod0/file0.py").exists()
    assert git(path, "rev-parse", "HEAD") == git(origin, "rev-parse", "HEAD")
    assert git(path, "status", "--porcelain", "--untracked-files=all") == ""
    assert shared_bytes(path / "pkg/mod3/file5.py") > 0


def test_a_far_commit_gets_its_own_pristine_checkout_and_old_ones_are_evicted(
    home: Path, origin: Path
) -> None:
    workdirs = Workdirs(Settings(home=home))
    commits = []
    for i in range(pristine.KEEP + 1):
        commits.append(git(origin, "rev-parse", "HEAD"))
        workdirs.prepare_worktree(key_of(origin, f"n{i}"), f"baton/fake/n{i}", None)
        spares.settle()  # its pristine checkout, made from it in the background (a run's agent's turn)
        for name in list(FILES)[:10]:  # a fifth of the files: not near
            (origin / name).write_text(f"# version {i}\n")
        git(origin, "commit", "-q", "-am", f"change {i}")
        workdirs.ensure_cache(key_of(origin, "n0").repo, "fake")
    kept = set(os.listdir(workdirs.cache_path(key_of(origin, "n0").repo) / pristine.DIRNAME))
    assert kept == set(commits[1:]), "the oldest pristine checkout is evicted, the newest KEEP are kept"
    # a worktree whose pristine checkout was evicted keeps its files (the extents are shared, not owned)
    first = workdirs.worktree_path(key_of(origin, "n0"))
    name = next(iter(FILES))
    assert (first / name).read_text() == FILES[name] and git(first, "status", "--porcelain") == ""


KILLER = """
import os, signal, sys
from pathlib import Path
from baton.agents import AGENTS
from baton.housekeeping.disk import usage
from baton.housekeeping.doctor import run_doctor
from baton.models import Outcome
from baton.settings import load_settings
from baton.store import open_store
from baton.workspace.du import disk_usage
from baton.keys import make_key
from baton.settings import Settings
from baton.workspace.cow import pristine
from baton.workspace.workdirs import Workdirs

home, origin, where = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
fill, run_git = pristine._fill, pristine.run_git
workdirs = Workdirs(Settings(home=home))

def half_copy(source, target, oid_size):
    pristine.clonetree._copy = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # mid-copy
    pristine.clonetree.os.mkdir(target / "pkg-half")  # something in, then the kill
    return fill(source, target, oid_size)

def half_adopt(args, **kwargs):
    if "update-index" in args:  # the copy made, not yet verified
        os.kill(os.getpid(), signal.SIGKILL)
    return run_git(args, **kwargs)

if where == "copy":  # a pristine checkout to copy, without its spare: the copy is made on the spot
    workdirs.prepare_worktree(make_key("fake", origin, "warm", AGENTS), "baton/fake/warm", None)
    pristine.spares.settle()
    pristine.shutil.rmtree(next(p for p in home.glob("repos/*/*/baton-pristine/*")) / "spare")
    pristine._fill = half_copy
else:  # the first worktree, checked out; its pristine checkout made from it in the background
    pristine.run_git = half_adopt
workdirs.prepare_worktree(make_key("fake", origin, "k", AGENTS), "baton/fake/k", None)
"""


@pytest.mark.parametrize("where", ["copy", "adopt"])
def test_a_build_killed_midway_leaves_nothing_a_run_trusts(home: Path, origin: Path, where: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", KILLER, str(home), str(origin), where], env=env, check=False)
    assert done.returncode == -9
    key = key_of(origin, "k")
    workdirs = Workdirs(Settings(home=home))
    path = workdirs.worktree_path(key)
    cache = workdirs.cache_path(key.repo)
    if where == "copy":
        assert not path.exists(), "a killed build never leaves a directory at the key's path"
        assert pristine.stages(path), "the kill happened midway (something half-made was left behind)"
        assert workdirs.worktree_git(key) is None
    else:  # the key's worktree was done; the pristine checkout made from it was not
        assert git(path, "status", "--porcelain", "--untracked-files=all") == ""
        assert list((cache / pristine.DIRNAME).glob(".tmp-*")), "the kill happened midway"
        assert not pristine.nearest(cache, git(origin, "rev-parse", "HEAD"))
        key = key_of(origin, "k2")
        path = workdirs.worktree_path(key)
    made = workdirs.prepare_worktree(key, branch_for(key), None)
    spares.settle()
    assert made.built
    assert git(path, "status", "--porcelain", "--untracked-files=all") == ""
    assert sorted(p.name for p in (path / "pkg").iterdir()) == [f"mod{i}" for i in range(8)]
    assert not pristine.stages(path)
    assert not list((cache / pristine.DIRNAME).glob(".tmp-*"))
    assert pristine.nearest(cache, git(origin, "rev-parse", "HEAD"))
    assert git(cache, "worktree", "list", "--porcelain").count("worktree ") == 3  # the cache, k or warm, this


def test_reflink_off_and_ext4_make_plain_worktrees(home: Path, origin: Path, tmp_path: Path) -> None:
    cases: tuple[tuple[Path, AutoOff], ...] = ((home, "off"), (tmp_path / "ext4-home", "auto"))
    for where, reflinks in cases:
        workdirs = Workdirs(Settings(home=where, reflink=reflinks))
        key = key_of(origin, "plain")
        path = workdirs.prepare_worktree(key, "baton/fake/plain", None).path
        assert git(path, "status", "--porcelain") == ""
        assert not (workdirs.cache_path(key.repo) / pristine.DIRNAME).exists()
        assert shared_bytes(path / "pkg/mod3/file5.py") == 0


def test_du_tells_shared_from_exclusive_bytes(home: Path, origin: Path) -> None:
    settings = load_settings(overrides={"home": str(home), **FAST}, environ={})
    results = [go(settings, origin, "hi", thread=f"d{i}") for i in range(3)]
    assert all(r.run.outcome == Outcome.SUCCEEDED for r in results)
    edited = Path(results[0].session.worktree) / "pkg/mod4/file5.py"
    edited.write_bytes(b"rewritten by the agent\n" * 2000)  # new blocks: its own
    store = open_store(settings.resolved_store_url)
    try:
        report = usage(store, settings)
    finally:
        store.close()
    together = report.worktrees()
    assert together["shared"] > together["allocated"] // 2, together
    assert together["physical"] < together["allocated"] * 2 // 3, "three copies are not three checkouts"
    by_thread = {s.thread: s for s in report.sessions}
    own = os.stat(edited).st_blocks * 512
    assert by_thread["d0"].exclusive >= own > by_thread["d1"].exclusive
    assert by_thread["d1"].shared > 0 and by_thread["d1"].worktree == disk_usage(
        Path(results[1].session.worktree)
    )
    assert report.total < disk_usage(home), "the home's total counts each shared extent once; du does not"
    data = report.to_json()
    assert data["worktrees"] == together and data["sessions"][0]["exclusive"] >= 0
    env = {**os.environ, "BATON_HOME": str(home), "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "200"}
    shown = subprocess.run([*BATON, "du"], env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "shared by reflinks" in shown.stdout and "on disk" in shown.stdout


def test_doctor_says_whether_worktrees_are_reflinked(home: Path, tmp_path: Path) -> None:
    def said(settings: Settings) -> str:
        [found] = [c for c in run_doctor(settings) if c.name == "copy-on-write worktrees"]
        assert found.status == "ok", found  # plain worktrees are fine: never a warning
        return found.detail

    assert "clones files: keys of one commit share its blocks" in said(Settings(home=home))
    plain = tmp_path / "ext4-home"
    plain.mkdir()
    assert "does not clone files: every worktree is a full checkout" in said(Settings(home=plain))
    assert "BATON_REFLINK=off" in said(Settings(home=home, reflink="off"))
