"""Benchmarks 3 and 4: worktrees from baton's warm cache against plain git, in time and in disk.

3. A new worktree for a new thread, the cache already cloned:
   ``Workdirs(settings).ensure_worktree(key, branch, None)`` (what ``baton.run`` does for a new key:
   fetch the cache under the repo lock, prune, resolve the base, ``git worktree add``, look for a
   checkpoint) against ``git clone --no-local <repo> <dir>`` (a fresh clone per task, the status quo)
   and against a raw ``git -C <cache> worktree add -b <branch> <dir> <base>`` on the same cache (the
   floor). Nothing is deleted until the whole suite ends: on ext4 without a journal (as on the
   machine this was written on) the inode allocator skips inodes freed in the last minutes, and
   creating files right after deleting thousands is several times slower — a cost of the clean-up,
   not of what is being measured.
3c. The same operation for a repository on a remote, against the status quo it replaces: the large
   repository served over smart HTTP on 127.0.0.1 (``baton.testing.git_http.GitHttpServer``, token
   auth that git answers through ``GIT_ASKPASS``). Candidate: ``ensure_worktree`` for a key whose repo
   is that URL — baton's partial cache (``--filter=blob:none``) cloned and one worktree made before
   timing, so the fetch over HTTP finds nothing new and the checkout's blobs are already local.
   Baseline: ``git clone --filter=blob:none <url> <dir>``, a fresh partial clone per task, which
   fetches the history's commits and trees, then the checkout's blobs, in a second request.
4. Disk held by 20 worktrees made by baton from one cache (the cache plus the worktrees, as
   ``du -s`` counts them, directories included and hard links once: ``baton.workspace.du.disk_usage``)
   against 20 ``git clone --no-local`` clones. Disk is deterministic, so it is measured once.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path

from common import (
    TIMES,
    Group,
    Plan,
    Repos,
    Row,
    Suite,
    clean_environ,
    clock,
    fmt_bytes,
    interleave,
    median,
    ms,
    patched_environ,
)

from baton import load_settings
from baton.keys import make_key
from baton.testing.git_http import GitHttpServer
from baton.workspace.workdirs import Workdirs, branch_for, disk_usage

WORKTREE_REPS = Plan(full=11, quick=3)  # 3a, 3b
REMOTE_REPS = Plan(full=11, quick=3)  # 3c
DISK_WORKTREES = Plan(full=20, quick=5)  # 4
ASKPASS = """#!/bin/sh
# the baseline's credential helper: git asks for a user name, then the password (the token)
case "$1" in
  Username*) echo bench ;;
  *) printf '%s\\n' "$BENCH_GIT_TOKEN" ;;
esac
"""


def bench_worktrees(root: Path, source: Path, reps: int) -> list[Row]:
    home = root / "baton-home"
    settings = load_settings(overrides={"home": str(home)}, environ={})
    workdirs = Workdirs(settings)
    repo = str(source)
    warm = make_key("fake", repo, "warm", ["fake"])
    cache = workdirs.ensure_cache(warm.repo, "fake")  # the warm cache: cloned once, before timing
    base = workdirs.default_base(cache)
    env = clean_environ()
    scratch = root / "scratch"
    scratch.mkdir()

    baton_worktree = new_worktree(workdirs, repo)

    def clone(rep: int) -> float:
        dest = scratch / f"clone-{rep}"
        _, elapsed = clock(lambda: git(["clone", "--no-local", repo, str(dest)], env))
        return elapsed

    def raw_worktree(rep: int) -> float:
        dest = scratch / f"raw-{rep}"
        branch = f"raw/{rep}"
        argv = ["-C", str(cache), "worktree", "add", "-b", branch, str(dest), base]
        _, elapsed = clock(lambda: git(argv, env))
        return elapsed

    samples = interleave({"baton": baton_worktree, "clone": clone, "raw": raw_worktree}, reps)
    cand = median(samples["baton"])
    return [
        Row(
            f"3{tag} new worktree (warm cache) ÷ {what}",
            "ratio",
            cand,
            median(samples[name]),
            goal,
            reps,
            samples={"candidate": samples["baton"], "baseline": samples[name]},
        )
        for tag, what, name, goal in (
            ("a", "`git clone --no-local`", "clone", 0.1),
            ("b", "raw `git worktree add`", "raw", 1.2),
        )
    ]


def bench_remote_worktree(root: Path, source: Path, reps: int) -> Row:
    """Row 3c: ``ensure_worktree`` of a remote repo from a warm cache ÷ ``git clone --filter=blob:none``,
    both over authenticated HTTP from the same server."""
    served = root / "served"
    name = "big.git"
    # A local clone (hard-linked objects) of the generated repo, so the served copy's config can allow
    # partial clones without touching the repository the other benchmarks use.
    git(["clone", "--bare", "--quiet", "--local", str(source), str(served / name)], clean_environ())
    git(["-C", str(served / name), "config", "uploadpack.allowFilter", "true"], clean_environ())
    token = secrets.token_hex(16)
    askpass = root / "askpass.sh"
    askpass.write_text(ASKPASS)
    askpass.chmod(0o700)
    home = root / "baton-home"
    settings = load_settings(overrides={"home": str(home)}, environ={})
    workdirs = Workdirs(settings)
    scratch = root / "scratch"
    scratch.mkdir()
    with GitHttpServer(root=served, token=token) as server, patched_environ({"BATON_GIT_TOKEN": token}):
        url = server.url(name)
        env = {
            **clean_environ(),
            "GIT_ASKPASS": str(askpass),
            "GIT_TERMINAL_PROMPT": "0",
            "BENCH_GIT_TOKEN": token,
        }
        # the warm cache: the partial clone, and a first worktree that fetches the checkout's blobs
        warm = make_key("fake", url, "warm", ["fake"])
        workdirs.ensure_worktree(warm, branch_for(warm), None)

        baton_worktree = new_worktree(workdirs, url)

        def clone(rep: int) -> float:
            dest = scratch / f"clone-{rep}"
            _, elapsed = clock(lambda: git(["clone", "--quiet", "--filter=blob:none", url, str(dest)], env))
            if not (dest / ".git").is_dir():
                raise RuntimeError(f"git clone made no repository at {dest}")
            return elapsed

        before = server.auth_attempts
        samples = interleave({"baton": baton_worktree, "clone": clone}, reps)
        authorised, rejected, errors = server.auth_attempts - before, server.rejected, server.backend_errors
    if errors:
        raise RuntimeError(f"git http-backend failed: {errors[-1][-500:]}")
    if authorised == 0:
        raise RuntimeError("no request to the git server carried the token")
    return Row(
        "3c new worktree (warm cache of a remote) ÷ `git clone --filter=blob:none` over HTTP",
        "ratio",
        median(samples["baton"]),
        median(samples["clone"]),
        0.1,
        reps,
        samples={"candidate": samples["baton"], "baseline": samples["clone"]},
        extra={"authorised_requests": authorised, "rejected_requests": rejected},
    )


def bench_disk(root: Path, source: Path, count: int) -> Row:
    home = root / "baton-home"
    settings = load_settings(overrides={"home": str(home)}, environ={})
    workdirs = Workdirs(settings)
    repo = str(source)
    keys = [make_key("fake", repo, f"disk-{i}", ["fake"]) for i in range(count)]
    for key in keys:
        workdirs.ensure_worktree(key, branch_for(key), None)
    cache = workdirs.cache_path(keys[0].repo)
    worktrees = home / "worktrees"
    cache_bytes, worktree_bytes = disk_usage(cache), disk_usage(worktrees)

    clones = root / "disk-clones"
    env = clean_environ()
    for i in range(count):
        git(["clone", "--quiet", "--no-local", repo, str(clones / f"clone-{i}")], env)
    clone_bytes = disk_usage(clones)
    clone_git = sum(disk_usage(clones / f"clone-{i}" / ".git") for i in range(count))
    return Row(
        f"4 disk of {count} worktrees (cache + worktrees) ÷ {count} clones",
        "bytes",
        cache_bytes + worktree_bytes,
        clone_bytes,
        0.3,
        count,
        extra={
            "cache_bytes": cache_bytes,
            "worktrees_bytes": worktree_bytes,
            "clones_bytes": clone_bytes,
            "per_worktree_bytes": worktree_bytes / count,
            "per_clone_git_bytes": clone_git / count,
            "per_clone_checkout_bytes": (clone_bytes - clone_git) / count,
        },
    )


def new_worktree(workdirs: Workdirs, repo: str) -> Callable[[int], float]:
    """The candidate: baton builds a new key's worktree from its warm cache; returns the seconds."""

    def build(rep: int) -> float:
        key = make_key("fake", repo, f"wt-{rep}", ["fake"])
        (path, built), elapsed = clock(lambda: workdirs.ensure_worktree(key, branch_for(key), None))
        if not built or not (path / ".git").is_file():
            raise RuntimeError(f"ensure_worktree did not build {path}")
        return elapsed

    return build


def git(args: list[str], env: dict[str, str]) -> None:
    out = subprocess.run(["git", *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args[:3])} failed: {out.stderr.strip()[-500:]}")


def run_group(suite: Suite, repos: Repos) -> None:
    big, scratch = repos.big.path, suite.scratch
    suite.step(
        "3 new worktree vs clone vs worktree add",
        lambda: suite.rows.extend(bench_worktrees(scratch / "b3", big, suite.pick(WORKTREE_REPS))),
    )
    suite.step("3c new worktree of a remote vs partial clone over HTTP", lambda: remote(suite, big))
    # Nothing after benchmark 3 is timed, so its checkouts can go while benchmark 4 (which only
    # counts bytes) runs: deleting is slow on some filesystems (see the module docstring).
    suite.clean_later([scratch / "b3", scratch / "b3c"])
    count = suite.pick(DISK_WORKTREES)
    suite.step(f"4 disk of {count} worktrees vs clones", lambda: disk(suite, big, count))


def remote(suite: Suite, big: Path) -> None:
    row = bench_remote_worktree(suite.scratch / "b3c", big, suite.pick(REMOTE_REPS))
    suite.rows.append(row)
    local = next((r for r in suite.rows if r.name.startswith("3a")), None)
    suite.notes.append(remote_note(row, local))


def disk(suite: Suite, big: Path, count: int) -> None:
    row = bench_disk(suite.scratch / "b4", big, count)
    suite.rows.append(row)
    suite.notes.append(disk_note(row, count))


def remote_note(row: Row, local: Row | None) -> str:
    context = (
        f"; 3a's candidate (a local path: no HTTP fetch) is {local.candidate / row.baseline:.3f}"
        f"{TIMES} this clone"
        if local
        else ""
    )
    return (
        f"3c: `git clone --filter=blob:none` over HTTP from 127.0.0.1 (no network latency, "
        f"{row.extra['authorised_requests']} authorised requests in all) takes {ms(row.baseline)} "
        f"against {ms(local.baseline) if local else '?'} for 3a's `git clone --no-local`{context}."
    )


def disk_note(row: Row, n: int) -> str:
    x, goal = row.extra, row.goal
    # cache + n*w <= goal * n * (cache + w)  <=>  cache >= w * n * (1 - goal) / (goal * n - 1)
    need = n * (1 - goal) / (goal * n - 1) if goal * n > 1 else float("inf")
    return (
        f"4: cache {fmt_bytes(x['cache_bytes'])} (its pack is hard-linked to the source repository, "
        f"a local path, but counted in full) + {fmt_bytes(x['per_worktree_bytes'])} per worktree, "
        f"against {fmt_bytes(x['per_clone_git_bytes'])} of `.git` + "
        f"{fmt_bytes(x['per_clone_checkout_bytes'])} of checkout per clone. A worktree saves only the "
        f"object store, so the ratio tends to checkout ÷ (history + checkout) as worktrees are "
        f"added; ≤ {goal:g}{TIMES} with {n} worktrees needs a cache of at least {need:.1f}{TIMES} "
        f"a worktree's size (here {fmt_bytes(need * x['per_worktree_bytes'])})."
    )


GROUP = Group("git", "3a-3c, 4: worktrees vs clones, time and disk", run_group, big=True)
