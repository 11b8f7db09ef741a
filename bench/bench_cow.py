"""Benchmarks 14a-14c: copy-on-write worktrees on a real repository, Django 5.1.4's source.

The repository: the sdist of Django 5.1.4 from PyPI (``pip download --no-binary :all: --no-deps
django==5.1.4``, kept in ``~/.cache/baton-bench``), unpacked and committed once as a git repository:
6,809 files in 3,233 directories, a 71 MB checkout. The XFS volume: a 4 GiB sparse image, ``mkfs.xfs``
(reflink on, its default), loop-mounted under the scratch directory — so this group runs as root and
fails saying so otherwise.

14a. Disk of 10 keys on XFS ÷ (history + one checkout): baton's home on the XFS volume, its cache
   clone and 10 keys' worktrees (reflinked from one pristine checkout), as the volume's used blocks
   grew (``statvfs`` before and after, after ``sync``), against what the bare clone plus one checkout
   grew it by (their inodes included, as the candidate's are). Goal ≤ 1.3 times.
14b. Disk of 20 keys on the scratch file system (ext4, no reflinks: plain worktrees) ÷ (history + 20
   checkouts), as ``du`` counts both. Goal ≤ 1.05 times (worktrees must stay as cheap as before).
14c. A new key's worktree on XFS, warm cache — ``Workdirs.ensure_worktree`` (what a run does: fetch
   under the repo lock, prune, the pristine checkout's spare copy taken, the index carried over) — ÷ a
   raw ``git worktree add -b`` on the same cache and volume, interleaved. Goal ≤ 0.8 times. The spare
   copy is the one the previous key's worktree started in the background (made while that key's agent
   took its turn: waited for here, untimed, before every variant); a third variant, with the spare
   removed first (the copy made on the critical path, as when new keys come faster than their agents'
   turns), is in the row's samples and ``no_spare_ratio``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from common import TIMES, Group, Plan, Repos, Row, Suite, clean_environ, clock, fmt_bytes, interleave, median

from baton import load_settings
from baton.keys import make_key
from baton.workspace.cow import spares
from baton.workspace.cow.pristine import DIRNAME
from baton.workspace.cow.spares import SPARE
from baton.workspace.du import disk_usage, measure
from baton.workspace.workdirs import Workdirs, branch_for

VERSION = "5.1.4"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "baton-bench"
NEW_KEY_REPS = Plan(full=9, quick=3)  # 14c
DISK_KEYS_XFS, DISK_KEYS_EXT4 = 10, Plan(full=20, quick=5)


def django_repo(root: Path) -> Path:
    """Django's source as a git repository with one commit (made once per run, from the cached sdist)."""
    sdist = CACHE / f"Django-{VERSION}.tar.gz"
    if not sdist.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps"]
        subprocess.run([*pip, f"django=={VERSION}", "-d", str(CACHE)], check=True)
    with tarfile.open(sdist) as tar:
        tar.extractall(root, filter="data")
    repo = root / f"django-{VERSION}"
    (root / f"Django-{VERSION}").rename(repo)
    env = {
        **clean_environ(),
        "GIT_AUTHOR_DATE": "2024-12-04T00:00:00Z",
        "GIT_COMMITTER_DATE": "2024-12-04T00:00:00Z",
    }
    steps = (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", f"Django {VERSION}"])
    # one pack, as a repository a remote serves; no automatic gc (6,809 loose objects pass gc.auto's
    # 6,700: it packed them in the background beside the repack, and the cache clone copied both packs)
    config = ["-c", "user.name=bench", "-c", "user.email=bench@bench", "-c", "gc.auto=0"]
    for args in (*steps, ["repack", "-a", "-d", "-q"]):
        git(["-C", str(repo), *config, *args], env)
    return repo


@contextmanager
def xfs_volume(root: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        raise RuntimeError("benchmarks 14a and 14c loop-mount an XFS volume: run the suite as root")
    image, mount = root / "xfs.img", root / "xfs"
    mount.mkdir(parents=True)
    with image.open("wb") as f:
        f.truncate(4 * 2**30)
    subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)
        image.unlink(missing_ok=True)


def used_bytes(path: Path) -> int:
    os.sync()
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def history_and_checkout(root: Path, repo: Path) -> tuple[int, int]:
    """The bare clone's bytes and one checkout's (its files, without ``.git``), as ``du`` counts them."""
    bare, checkout = root / "history.git", root / "checkout"
    env = clean_environ()
    git(["clone", "--bare", "--quiet", "--no-local", str(repo), str(bare)], env)
    git(["-C", str(bare), "worktree", "add", "--quiet", "--detach", str(checkout), "HEAD"], env)
    return disk_usage(bare) - disk_usage(bare / "worktrees"), disk_usage(checkout) - disk_usage(
        checkout / ".git"
    )


def volume_growth(volume: Path, work: Callable[[], object]) -> int:
    """How many bytes the volume's used blocks grew by during ``work`` (inode chunks and directories
    included, which ``du`` does not count: on XFS a file's inode is 512 bytes)."""
    before = used_bytes(volume)
    work()
    return used_bytes(volume) - before


def bench_disk_xfs(volume: Path, repo: Path) -> Row:
    history, checkout = history_and_checkout(volume / "du-baseline", repo)
    baseline = volume_growth(volume, lambda: history_and_checkout(volume / "baseline", repo))
    home = volume / "home-14a"
    workdirs = Workdirs(load_settings(overrides={"home": str(home)}, environ={}))

    def keys() -> None:
        for i in range(DISK_KEYS_XFS):
            key = make_key("fake", str(repo), f"disk-{i}", ["fake"])
            workdirs.ensure_worktree(key, branch_for(key), None)
        spares.settle()  # the spare copy the last key left counts too

    grew = volume_growth(volume, keys)
    found = measure(home, extents=True)
    return Row(
        f"14a disk of {DISK_KEYS_XFS} keys on XFS ÷ (history + one checkout), Django's 6,809 files",
        "bytes",
        grew,
        baseline,
        1.3,
        DISK_KEYS_XFS,
        extra={
            "history_bytes": history,
            "checkout_bytes": checkout,
            "baseline_volume_bytes": baseline,
            "volume_grew_bytes": grew,
            "du_bytes": found.allocated,
            "baton_physical_bytes": found.physical,
            "baton_shared_bytes": found.shared,
        },
    )


def bench_disk_ext4(root: Path, repo: Path, count: int) -> Row:
    history, checkout = history_and_checkout(root / "baseline", repo)
    home = root / "home-14b"
    workdirs = Workdirs(load_settings(overrides={"home": str(home)}, environ={}))
    for i in range(count):
        key = make_key("fake", str(repo), f"disk-{i}", ["fake"])
        workdirs.ensure_worktree(key, branch_for(key), None)
    baton = disk_usage(home / "repos") + disk_usage(home / "worktrees")
    return Row(
        f"14b disk of {count} keys on {fs_type(root)} ÷ (history + {count} checkouts)",
        "bytes",
        baton,
        history + count * checkout,
        1.05,
        count,
        extra={"history_bytes": history, "checkout_bytes": checkout},
    )


def bench_new_key(volume: Path, repo: Path, reps: int) -> Row:
    home = volume / "home-14c"
    workdirs = Workdirs(load_settings(overrides={"home": str(home)}, environ={}))
    warm = make_key("fake", str(repo), "warm", ["fake"])
    workdirs.ensure_worktree(warm, branch_for(warm), None)  # the cache and the pristine checkout
    cache = workdirs.cache_path(warm.repo)
    head = git_out(["-C", str(cache), "rev-parse", "main"])
    raw_dir = volume / "raw"
    env = clean_environ()

    def baton(rep: int, variant: str = "spare") -> float:
        """A new key's worktree: with the spare copy ready (made while the last key's agent took its
        turn: waited for here, untimed), or with none (removed first: copied now)."""
        spares.settle()
        if variant == "copy":
            shutil.rmtree(workdirs.cache_path(warm.repo) / DIRNAME / head / SPARE, ignore_errors=True)
        key = make_key("fake", str(repo), f"new-{variant}-{rep}", ["fake"])
        (path, built), took = clock(lambda: workdirs.ensure_worktree(key, branch_for(key), None))
        if not built or not (path / "pyproject.toml").is_file():
            raise RuntimeError(f"ensure_worktree did not build {path}")
        return took

    def raw(rep: int) -> float:
        spares.settle()  # no copy of baton's running beside it
        argv = [
            "-C",
            str(cache),
            "worktree",
            "add",
            "--quiet",
            "-b",
            f"raw/{rep}",
            str(raw_dir / str(rep)),
            "main",
        ]
        return clock(lambda: git(argv, env))[1]

    copy = functools.partial(baton, variant="copy")
    samples = interleave({"baton": baton, "copy": copy, "raw": raw}, reps)
    spares.settle()
    return Row(
        "14c new key on XFS (reflinked, warm cache, its spare copy ready) ÷ raw `git worktree add`",
        "ratio",
        median(samples["baton"]),
        median(samples["raw"]),
        0.8,
        reps,
        samples={"candidate": samples["baton"], "baseline": samples["raw"], "no_spare": samples["copy"]},
        extra={"no_spare_ratio": median(samples["copy"]) / median(samples["raw"])},
    )


def fs_type(path: Path) -> str:
    out = subprocess.run(
        ["findmnt", "-no", "FSTYPE", "-T", str(path)], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or "?"


def git_out(args: list[str]) -> str:
    out = subprocess.run(["git", *args], env=clean_environ(), capture_output=True, text=True, check=True)
    return out.stdout.strip()


def git(args: list[str], env: dict[str, str]) -> None:
    out = subprocess.run(["git", *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args[:3])} failed: {out.stderr.strip()[-500:]}")


def run_group(suite: Suite, repos: Repos) -> None:
    root = suite.scratch / "b14"
    root.mkdir()
    repo = django_repo(root)

    def on_xfs() -> None:
        with xfs_volume(root / "vol") as volume:
            suite.rows.append(bench_disk_xfs(volume, repo))
            suite.rows.append(bench_new_key(volume, repo, suite.pick(NEW_KEY_REPS)))
            a = suite.rows[-2].extra
            du_base = a["history_bytes"] + a["checkout_bytes"]
            suite.notes.append(
                f"14a: history {fmt_bytes(a['history_bytes'])} + one checkout "
                f"{fmt_bytes(a['checkout_bytes'])} as `du` counts them, "
                f"{fmt_bytes(a['baseline_volume_bytes'])} of the volume (its inodes included); the volume "
                f"grew {fmt_bytes(a['volume_grew_bytes'])} for the cache, one pristine checkout, its spare "
                "copy and "
                f"{DISK_KEYS_XFS} worktrees, which `du` counts as {fmt_bytes(a['du_bytes'])} and `baton du` "
                f"as {fmt_bytes(a['baton_physical_bytes'])} on disk ({fmt_bytes(a['baton_shared_bytes'])} "
                f"shared): {a['baton_physical_bytes'] / du_base:.3f}{TIMES} the `du` baseline. "
                "The rest of the volume's growth is inodes (512 bytes a file or directory on XFS, "
                "4.9 MiB per worktree of Django), which no layout of separate worktrees avoids."
            )
            c = suite.rows[-1]
            suite.notes.append(
                f"14c: with no spare copy ready (the copy made on the critical path) a new key takes "
                f"{median(c.samples['no_spare']) * 1000:.0f} ms, "
                f"{c.extra['no_spare_ratio']:.3f}{TIMES} the raw `git worktree add`."
            )

    suite.step("14a, 14c copy-on-write worktrees on XFS", on_xfs)
    count = suite.pick(DISK_KEYS_EXT4)
    suite.step(
        f"14b disk of {count} keys on the scratch volume",
        lambda: suite.rows.append(bench_disk_ext4(root, repo, count)),
    )


GROUP = Group(
    "cow", "14a-14c: copy-on-write worktrees (Django's source): disk on XFS and ext4, a new key", run_group
)
