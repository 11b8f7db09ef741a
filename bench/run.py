"""baton's benchmark suite: ``python bench/run.py [--quick] [--only GROUP,...]`` (see bench/README.md).

Runs every benchmark (or the groups named with ``--only``) in this one process, each side by side
with its baseline (interleaved), prints a Markdown table of medians, ratios and goals, and writes it
to bench/results/latest.md (raw samples in latest.json). Everything happens in a scratch directory
that is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _venv  # noqa: F401  (re-runs with .venv's interpreter when baton is missing)
import bench_acp
import bench_claude
import bench_cli
import bench_contain
import bench_cow
import bench_dashboard
import bench_diskwatch
import bench_egress
import bench_fake
import bench_forge
import bench_gateway
import bench_git
import bench_github_app
import bench_gitlab
import bench_hydrate
import bench_landlock
import bench_leases
import bench_mcp
import bench_portable
import bench_quota
import bench_scale
import bench_service
import bench_setup
import bench_sync
import bench_workers
from bench_agents import CODEX, GEMINI
from common import Repos, Suite, fmt_bytes, log, markdown_table, row_order
from repogen import RepoShape, generate_repo

from environment import agent_versions, file_creation_cost, versions

HERE = Path(__file__).resolve().parent

# The groups ``--only`` selects, in the order ``--help`` lists them; each module's GROUP says which
# benchmarks it holds and runs them.
GROUPS = {
    group.name: group
    for group in (
        bench_claude.GROUP,
        CODEX,
        GEMINI,
        bench_acp.GROUP,
        bench_hydrate.GROUP,
        bench_fake.GROUP,
        bench_git.GROUP,
        bench_cli.GROUP,
        bench_service.GROUP,
        bench_mcp.GROUP,
        bench_forge.GROUP,
        bench_github_app.GROUP,
        bench_gitlab.GROUP,
        bench_dashboard.GROUP,
        bench_leases.GROUP,
        bench_quota.GROUP,
        bench_portable.GROUP,
        bench_workers.GROUP,
        bench_sync.GROUP,
        bench_landlock.GROUP,
        bench_contain.GROUP,
        bench_egress.GROUP,
        bench_gateway.GROUP,
        bench_setup.GROUP,
        bench_diskwatch.GROUP,
        bench_cow.GROUP,
        bench_scale.GROUP,
    )
}
# The order they run in: those that need only the small repository first.
RUN_ORDER = (
    *("claude", "codex", "gemini", "acp", "hydrate", "cli", "service", "mcp", "forge", "gitlab", "app"),
    "dashboard",
    *("leases", "workers"),
    "quota",
    "landlock",
    "contain",
    "egress",
    "gateway",
    "setup",
    "diskwatch",
    "scale",
    *("fake", "portable", "git", "sync", "cow"),
)
assert sorted(RUN_ORDER) == sorted(GROUPS)


def parse_only(text: str | None) -> list[str]:
    """``--only claude,git`` → the groups in the order ``--help`` lists them; every group when not given."""
    if text is None:
        return list(GROUPS)
    wanted = {name.strip().lower() for name in text.split(",") if name.strip()}
    unknown = sorted(wanted - set(GROUPS))
    if unknown or not wanted:
        raise argparse.ArgumentTypeError(
            f"unknown group {', '.join(unknown) or '(none)'}: choose from {', '.join(GROUPS)}"
        )
    return [name for name in GROUPS if name in wanted]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions: a smoke test")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="where latest.md/.json go")
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the scratch dir ($TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory for inspection")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        type=parse_only,
        default=None,
        # argparse formats help with %: a group's "1 % of a core" must be written %%
        help="run only these groups: "
        + "; ".join(f"{k} ({v.about})" for k, v in GROUPS.items()).replace("%", "%%"),
    )
    return parser.parse_args(argv)


def run_groups(suite: Suite, groups: list[str]) -> None:
    """Generate the repositories, then run the selected groups in the suite's order."""
    selected = [GROUPS[name] for name in RUN_ORDER if name in groups]
    repos = generate_repos(suite, need_big=any(group.big for group in selected))
    for group in selected:
        group.run(suite, repos)


def generate_repos(suite: Suite, need_big: bool) -> Repos:
    """The small repository every group uses, and the large one when ``need_big``."""
    repos: dict[str, RepoShape] = {}

    def generate() -> None:
        repos["small"] = generate_repo(suite.scratch / "small.git", initial_files=40, commits=20, seed=7)
        if need_big:
            repos["big"] = generate_repo(suite.scratch / "big.git", initial_files=1_600, commits=1_000)

    suite.step("generate repositories", generate)
    if "small" not in repos or (need_big and "big" not in repos):
        raise RuntimeError("could not generate the test repositories")
    big = repos.get("big")
    if big is not None:
        if big.files < 2_000 or big.commits < 1_000:
            raise RuntimeError(f"the generated repository is too small: {big}")
        log(f"large repo: {big.files} files, {big.commits} commits, pack {fmt_bytes(big.pack_bytes)}")
    return Repos(repos["small"], big)


def report(
    suite: Suite, groups: list[str], mode: str, wall: float, agents: dict[str, str], probe: float | None
) -> str:
    """The Markdown written to latest.md and printed: the table, the versions, the notes."""
    only = "" if groups == list(GROUPS) else f", only {','.join(groups)}"
    lines = [
        f"# baton benchmarks ({mode} run{only}, {time.strftime('%Y-%m-%d %H:%M:%S')}, "
        f"wall time {wall:.0f} s)",
        "",
        markdown_table(suite.rows),
        "",
        "Versions:",
        "",
        *versions(agents, suite.scratch, probe),
    ]
    if suite.notes or suite.failures:
        notes = [f"- {n}" for n in suite.notes]
        lines += ["", "Notes:", "", *notes, *[f"- FAILED {f}" for f in suite.failures]]
    return "\n".join(lines) + "\n"


def write_results(out: Path, text: str, data: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.md").write_text(text)
    (out / "latest.json").write_text(json.dumps(data, indent=2) + "\n")


def compile_baton() -> None:
    """Write baton's bytecode before anything is timed. An editable install (the project's set-up)
    compiles nothing, and with ``PYTHONDONTWRITEBYTECODE`` set (as some shells and CI images do) every
    ``baton`` process would compile its modules anew: ~0.1 s more on every CLI row, which an
    installed baton (pip compiles it) never pays."""
    import compileall

    import baton

    compileall.compile_dir(str(Path(baton.__file__).parent), quiet=1, workers=0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    compile_baton()
    mode = "quick" if args.quick else "full"
    groups: list[str] = args.only or list(GROUPS)
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="baton-bench-", dir=args.workdir))
    log(f"scratch directory {scratch} ({mode} run: {', '.join(groups)})")
    suite = Suite(scratch, quick=args.quick, keep=args.keep)
    probe: float | None = None
    agents = agent_versions(groups, scratch)
    try:
        probe = file_creation_cost(scratch / "probe")
        run_groups(suite, groups)
    finally:
        suite.clean_up()

    wall = time.perf_counter() - started
    suite.rows.sort(key=row_order)
    text = report(suite, groups, mode, wall, agents, probe)
    data = {
        "mode": mode,
        "groups": groups,
        "wall_s": wall,
        "rows": [r.to_json() for r in suite.rows],
        "notes": suite.notes,
        "failures": suite.failures,
        "versions": agents,
    }
    write_results(args.out, text, data)
    print(text)
    log(f"wrote {args.out / 'latest.md'} ({wall:.0f} s)")
    if suite.failures:
        return 2
    return 1 if args.strict and not all(r.met for r in suite.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
