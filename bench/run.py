"""baton's benchmark suite: ``python bench/run.py [--quick]`` (see bench/README.md).

Runs every benchmark in this one process, each side by side with its baseline (interleaved), prints
a Markdown table of medians, ratios and goals, and writes it to bench/results/latest.md (raw samples
in latest.json). Everything happens in a scratch directory that is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import _venv  # noqa: F401  (re-runs with .venv's interpreter when baton is missing)
from bench_claude import bench_claude, claude_command
from bench_fake import bench_fake
from bench_git import bench_disk, bench_worktrees
from common import TIMES, Row, clock, markdown_table, median, rmtree, sh
from repogen import RepoShape, generate_repo

from baton.keys import make_key
from baton.settings import load_settings
from baton.workdirs import Workdirs, branch_for

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Plan:
    claude_reps: int
    fake_reps: int
    fake_big_reps: int
    worktree_reps: int
    disk_worktrees: int


FULL = Plan(claude_reps=21, fake_reps=60, fake_big_reps=21, worktree_reps=11, disk_worktrees=20)
QUICK = Plan(claude_reps=3, fake_reps=10, fake_big_reps=5, worktree_reps=3, disk_worktrees=5)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def checkpoint_cost(root: Path, source: Path, reps: int = 5) -> float:
    """Median seconds of ``Workdirs.checkpoint`` on benchmark 2's clean worktree of ``source``."""
    settings = load_settings(overrides={"home": str(root / "baton-home")}, environ={})
    workdirs = Workdirs(settings)
    key = make_key("fake", str(source), "bench-fake", ["fake"])
    path, _ = workdirs.ensure_worktree(key, branch_for(key), None)
    return median([clock(lambda: workdirs.checkpoint(key, path))[1] for _ in range(reps)])


def import_cost(reps: int = 5) -> float:
    """Median seconds for a fresh interpreter to ``import baton.cli`` (explains 1b)."""
    return median([clock(lambda: sh([sys.executable, "-c", "import baton.cli"]))[1] for _ in range(reps)])


def file_creation_cost(parent: Path, files: int = 2_000, reps: int = 3) -> float:
    """Median seconds to create ``files`` files of 4 KiB in 40 directories: how fast this machine's
    filesystem is at what a checkout does (benchmarks 3 and 4 are dominated by it)."""
    data = b"x" * 4096

    def create(target: Path) -> None:
        for i in range(files):
            folder = target / str(i % 40)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"f{i}.txt").write_bytes(data)

    # deleted only with the whole scratch directory: see bench_git.py on creating after deleting
    return median([clock(lambda: create(parent / f"probe-{rep}"))[1] for rep in range(reps)])  # noqa: B023


def versions(claude: str, scratch: Path, probe: float | None) -> list[str]:
    fs = sh(["stat", "-f", "-c", "%T", str(scratch.parent)]).strip()
    return [
        f"- Claude Code: {claude.strip()}",
        f"- {sh(['git', '--version']).strip()}",
        f"- Python {platform.python_version()} ({sys.executable}); baton {baton_version()} "
        f"at commit {project_commit()}",
        f"- {platform.system()} {platform.release()}, {os.cpu_count()} CPUs, "
        f"scratch directory on {fs} ({scratch.parent})"
        + (f"; creating 2,000 files of 4 KiB there takes {ms(probe)}" if probe is not None else ""),
    ]


def baton_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("baton")
    except PackageNotFoundError:
        return "unknown"


def project_commit() -> str:
    """The commit the benchmarked code is at, marked when src/ has uncommitted changes."""
    root = HERE.parent
    try:
        head = sh(["git", "-C", str(root), "rev-parse", "--short", "HEAD"]).strip()
        dirty = sh(["git", "-C", str(root), "status", "--porcelain", "--", "src"]).strip()
    except RuntimeError:
        return "unknown"
    return f"{head} + uncommitted changes in src/" if dirty else head


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def mib(value: float) -> str:
    return f"{value / 2**20:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions: a smoke test")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="where latest.md/.json go")
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the scratch dir ($TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory for inspection")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="baton-bench-", dir=args.workdir))
    log(f"scratch directory {scratch} ({'quick' if args.quick else 'full'} run)")
    rows: list[Row] = []
    notes: list[str] = []
    failures: list[str] = []
    probe: float | None = None
    cleaner: threading.Thread | None = None
    try:
        scratch_settings = load_settings(overrides={"home": str(scratch)}, environ={})
        claude = sh([*claude_command(scratch_settings), "--version"])
    except Exception as exc:  # reported under the table; benchmark 1 will fail with the details
        claude = f"not found ({exc})"

    def step(name: str, work: Callable[[], None]) -> None:
        log(f"{name} ...")
        t0 = time.perf_counter()
        try:
            work()
        except Exception as exc:  # one failed benchmark must not hide the others' results
            traceback.print_exc()
            message = " ".join(str(exc).split())  # one line, for the Markdown list
            failures.append(f"{name}: {type(exc).__name__}: {message[:400]}")
        log(f"{name} done in {time.perf_counter() - t0:.1f} s")

    try:
        probe = file_creation_cost(scratch / "probe")
        repos: dict[str, RepoShape] = {}

        def repos_step() -> None:
            repos["small"] = generate_repo(scratch / "small.git", initial_files=40, commits=20, seed=7)
            repos["big"] = generate_repo(scratch / "big.git", initial_files=1_600, commits=1_000)

        step("generate repositories", repos_step)
        if len(repos) != 2:
            raise RuntimeError("could not generate the test repositories")
        small, big = repos["small"], repos["big"]
        if big.files < 2_000 or big.commits < 1_000:
            raise RuntimeError(f"the generated repository is too small: {big}")
        log(f"large repo: {big.files} files, {big.commits} commits, pack {mib(big.pack_bytes)}")

        def claude_step() -> None:
            found = bench_claude(scratch / "b1", small.path, plan.claude_reps)
            rows.extend(found)
            cli = found[1]
            if not cli.met:
                cost = import_cost()
                notes.append(
                    f"1b misses because every `baton` CLI call starts a Python interpreter and imports "
                    f"the CLI and its dependencies: `python -c 'import baton.cli'` alone takes "
                    f"{ms(cost)} here, against a {ms(cli.baseline)} baseline turn. The Python API (1a) "
                    f"does the same work in-process."
                )
            api = found[0]
            notes.append(
                f"1: the mock model answers at once, so the baseline ({ms(api.baseline)}) is almost all "
                f"Claude Code start-up; a real model's turn takes seconds, so the same absolute overhead "
                f"(1a: {(api.candidate - api.baseline) * 1000:+.0f} ms) is a much smaller ratio there."
            )

        def fake_step(tag: str, shape: RepoShape, reps: int) -> None:
            row = bench_fake(scratch / f"b{tag}", shape.path, reps,
                             f"{tag} runner overhead, fake agent, {shape.files}-file worktree")
            rows.append(row)
            cost = checkpoint_cost(scratch / f"b{tag}", shape.path)
            stored = row.extra["overhead_with_reused_store"]
            notes.append(
                f"{tag}: `Workdirs.checkpoint` of this clean worktree alone takes {ms(cost)} (median of 5, "
                f"measured after the benchmark); with one store opened up front and passed as "
                f"`run(..., store=)` (a third variant, interleaved with the two) the overhead is "
                f"{stored * 1000:+.1f} ms."
            )

        def worktree_step() -> None:
            rows.extend(bench_worktrees(scratch / "b3", big.path, plan.worktree_reps))

        def disk_step() -> None:
            row = bench_disk(scratch / "b4", big.path, plan.disk_worktrees)
            rows.append(row)
            x = row.extra
            n, goal = plan.disk_worktrees, row.goal
            # cache + n*w <= goal * n * (cache + w)  <=>  cache >= w * n * (1 - goal) / (goal * n - 1)
            need = n * (1 - goal) / (goal * n - 1) if goal * n > 1 else float("inf")
            notes.append(
                f"4: cache {mib(x['cache_bytes'])} (its pack is hard-linked to the source repository, "
                f"a local path, but counted in full) + {mib(x['per_worktree_bytes'])} per worktree, "
                f"against {mib(x['per_clone_git_bytes'])} of `.git` + "
                f"{mib(x['per_clone_checkout_bytes'])} of checkout per clone. A worktree saves only the "
                f"object store, so the ratio tends to checkout ÷ (history + checkout) as worktrees are "
                f"added; ≤ {goal:g}{TIMES} with {n} worktrees needs a cache of at least {need:.1f}{TIMES} "
                f"a worktree's size (here {mib(need * x['per_worktree_bytes'])})."
            )

        step("1 claude resume: baton.run / baton CLI / claude -p", claude_step)
        step("2 runner overhead, small repo", lambda: fake_step("2", small, plan.fake_reps))
        step("2b runner overhead, large repo", lambda: fake_step("2b", big, plan.fake_big_reps))
        step("3 new worktree vs clone vs worktree add", worktree_step)
        if not args.keep:
            # Nothing after benchmark 3 is timed, so its ~40 checkouts can go while benchmark 4 (which
            # only counts bytes) runs: deleting is slow on some filesystems (see bench_git.py).
            cleaner = threading.Thread(target=rmtree, args=(scratch / "b3",), daemon=True)
            cleaner.start()
        step(f"4 disk of {plan.disk_worktrees} worktrees vs clones", disk_step)
    finally:
        if args.keep:
            log(f"kept {scratch}")
        else:
            if cleaner is not None:
                cleaner.join()
            log(f"deleting {scratch} ...")
            _, took = clock(lambda: rmtree(scratch))
            log(f"deleted in {took:.1f} s")

    wall = time.perf_counter() - started
    order = {name: i for i, name in enumerate(["1a", "1b", "2 ", "2b", "3a", "3b", "4 "])}
    rows.sort(key=lambda r: order.get(r.name[:2], 99))
    mode = "quick" if args.quick else "full"
    lines = [
        f"# baton benchmarks ({mode} run, {time.strftime('%Y-%m-%d %H:%M:%S')}, wall time {wall:.0f} s)",
        "",
        markdown_table(rows),
        "",
        "Versions:",
        "",
        *versions(claude, scratch, probe),
    ]
    if notes or failures:
        lines += ["", "Notes:", "", *[f"- {n}" for n in notes], *[f"- FAILED {f}" for f in failures]]
    report = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.md").write_text(report)
    rows_json = [r.to_json() for r in rows]
    data = {"mode": mode, "wall_s": wall, "rows": rows_json, "notes": notes, "failures": failures}
    (args.out / "latest.json").write_text(json.dumps(data, indent=2) + "\n")
    print(report)
    log(f"wrote {args.out / 'latest.md'} ({wall:.0f} s)")
    if failures:
        return 2
    return 1 if args.strict and not all(r.met for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
