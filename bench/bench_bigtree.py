"""What a large worktree costs a turn: a fake-agent turn on a 20,000-file worktree beside one
on a 1,600-file worktree, the checkpoint (``Workdirs.checkpoint``) of each alone, and the checkpoint's
``git status`` under the git settings that might make it cheaper. Standalone, not a suite group:

    .venv/bin/python bench/bench_bigtree.py [--files 20000] [--reps 15] [--workdir DIR]

Findings on 2026-11-26 (git 2.39.5, ext4, a loaded 2-core machine): the turn's extra cost is all in
the checkpoint's ``git status``, and there it is the index refresh (an ``lstat`` per tracked file,
~1.5 us each); the untracked part is already cached (``core.untrackedCache``). No git setting moves it:
``index.version=4``, ``index.threads``, ``core.checkStat=minimal`` within noise, ``--no-optional-locks``
~2 ms; ``core.preloadIndex=false`` doubles it. git's own file-system monitor (``core.fsmonitor=true``)
is what would, but ``git fsmonitor--daemon`` is "not supported on this platform" on Linux in git 2.39.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from functools import partial
from pathlib import Path

from common import clock, median, ms, rmtree, sh
from repogen import generate_repo

from baton import RunRequest, load_settings, open_store, run
from baton.keys import make_key
from baton.testing.fake import register_fake
from baton.workspace.gitcmd import WorktreeGit
from baton.workspace.workdirs import Workdirs

STATUS = ["status", "--porcelain", "-z", "--untracked-files=all", "--no-renames", "--ignore-submodules=all"]
CACHE = ["-c", "core.untrackedCache=true", "-c", "status.showUntrackedFiles=all"]
VARIANTS = {  # the checkpoint's own command first
    "as baton runs it (untracked cache)": [*CACHE, *STATUS],
    "--no-optional-locks": ["--no-optional-locks", *CACHE, *STATUS],
    "index.version=4": ["-c", "index.version=4", *CACHE, *STATUS],
    "index.threads=true": ["-c", "index.threads=true", *CACHE, *STATUS],
    "core.checkStat=minimal": ["-c", "core.checkStat=minimal", *CACHE, *STATUS],
    "core.preloadIndex=false": ["-c", "core.preloadIndex=false", *CACHE, *STATUS],
    "tracked files only (-uno)": [*STATUS[:3], "--untracked-files=no", *STATUS[4:]],
}


def turns(home: Path, repo: Path, reps: int) -> tuple[float, float, WorktreeGit]:
    """Median seconds of a resumed fake turn on ``repo`` and of the checkpoint of its clean worktree."""
    settings = load_settings(overrides={"home": str(home)}, environ={})
    store = open_store(settings.resolved_store_url)
    try:

        def one() -> None:
            request = RunRequest(agent="fake", repo=str(repo), thread="big", prompt="X")
            run(request, settings=settings, store=store)

        for _ in range(3):
            one()
        turn = median([clock(one)[1] for _ in range(reps)])
    finally:
        store.close()
    workdirs = Workdirs(settings)
    key = make_key("fake", str(repo), "big", ["fake"])
    worktree = workdirs.worktree_git(key)
    assert worktree is not None
    checkpoint = median([clock(lambda: workdirs.checkpoint(key, worktree.path))[1] for _ in range(reps)])
    return turn, checkpoint, worktree


def statuses(worktree: WorktreeGit, reps: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(reps):  # interleaved: a load that comes and goes falls on every variant alike
        for name, argv in VARIANTS.items():
            times[name].append(clock(partial(worktree.call, argv))[1])
    return {name: median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    register_fake()
    root = Path(tempfile.mkdtemp(prefix="baton-bigtree-", dir=args.workdir))
    try:
        small = generate_repo(root / "small.git", initial_files=1_600, commits=20).path
        big = generate_repo(root / "big.git", initial_files=args.files, commits=20).path
        files = int(sh(["git", "ls-tree", "-r", "--name-only", "main"], cwd=big).count("\n"))
        small_turn, small_checkpoint, _ = turns(root / "home-small", small, args.reps)
        big_turn, big_checkpoint, worktree = turns(root / "home-big", big, args.reps)
        print(f"| {files:,}-file worktree vs 1,600 files | median of {args.reps} |")
        print("|---|---:|")
        extra = (big_turn - small_turn) * 1000
        print(f"| fake turn | {ms(big_turn)} vs {ms(small_turn)} ({extra:+.1f} ms) |")
        print(f"| checkpoint of the clean worktree | {ms(big_checkpoint)} vs {ms(small_checkpoint)} |")
        for name, seconds in statuses(worktree, args.reps).items():
            print(f"| `git status`: {name} | {ms(seconds)} |")
        fsmonitor = subprocess.run(["git", "fsmonitor--daemon", "status"], capture_output=True, text=True)
        print(f"\n`git fsmonitor--daemon status`: {(fsmonitor.stderr or fsmonitor.stdout).strip()}")
    finally:
        rmtree(root)


if __name__ == "__main__":
    main()
