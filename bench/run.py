"""baton's benchmark suite: ``python bench/run.py [--quick] [--only GROUP,...]`` (see bench/README.md).

Runs every benchmark (or the groups named with ``--only``) in this one process, each side by side
with its baseline (interleaved), prints a Markdown table of medians, ratios and goals, and writes it
to bench/results/latest.md (raw samples in latest.json). Everything happens in a scratch directory
that is deleted at the end.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _venv  # noqa: F401  (re-runs with .venv's interpreter when baton is missing)
from bench_agents import bench_agent
from bench_claude import bench_claude, claude_command
from bench_cli import bench_cli
from bench_dashboard import bench_dashboard, dashboard_note
from bench_fake import bench_fake
from bench_git import bench_disk, bench_remote_worktree, bench_worktrees
from bench_hydrate import bench_hydrate
from bench_leases import bench_leases, leases_note
from bench_portable import bench_portable, portable_note
from bench_service import bench_service_burst, bench_service_run, service_note
from bench_sessions_api import bench_sessions_api
from bench_sweep import bench_sweep
from bench_sync import bench_sync, sync_note
from bench_webhooks import bench_webhooks
from bench_workers import bench_workers, workers_note
from common import TIMES, Row, clock, markdown_table, median, rmtree, sh
from repogen import RepoShape, generate_repo

from baton.agents import get_agent
from baton.keys import make_key
from baton.settings import load_settings
from baton.workspace.workdirs import Workdirs, branch_for

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Plan:
    claude_reps: int
    codex_reps: int
    gemini_reps: int
    hydrate_reps: int
    hydrate_min_bytes: int
    fake_reps: int
    fake_big_reps: int
    worktree_reps: int
    remote_reps: int
    disk_worktrees: int
    cli_reps: int
    dashboard_reps: int
    lease_reps: int
    portable_reps: int
    sync_reps: int


FULL = Plan(
    claude_reps=21,
    codex_reps=21,
    gemini_reps=15,
    hydrate_reps=11,
    hydrate_min_bytes=3 * 2**20,
    fake_reps=60,
    fake_big_reps=21,
    worktree_reps=11,
    remote_reps=11,
    disk_worktrees=20,
    cli_reps=21,
    dashboard_reps=30,
    lease_reps=1000,
    portable_reps=11,
    sync_reps=21,
)
QUICK = Plan(
    claude_reps=3,
    codex_reps=3,
    gemini_reps=3,
    hydrate_reps=3,
    hydrate_min_bytes=2**20,
    fake_reps=10,
    fake_big_reps=5,
    worktree_reps=3,
    remote_reps=3,
    disk_worktrees=5,
    cli_reps=5,
    dashboard_reps=5,
    lease_reps=200,
    portable_reps=3,
    sync_reps=5,
)

# The groups ``--only`` selects, in the order they run, with the benchmarks each holds.
GROUPS = {
    "claude": "1a, 1b: a resumed Claude Code turn",
    "codex": "1c, 1d: a resumed Codex turn",
    "gemini": "1e, 1f: a resumed Gemini turn",
    "hydrate": "5a-5c: hydrate-then-resume vs local resume, per agent",
    "fake": "2, 2b: runner overhead with the fake agent",
    "git": "3a-3c, 4: worktrees vs clones, time and disk",
    "cli": "6a, 6b: `baton --help` and `baton sessions ls` vs `python -c pass`",
    "service": "7a-7e: a run over HTTP vs baton.run; 200 runs over 20 keys at once; GET /v1/sessions "
    "over 10,000 sessions; webhook acknowledgement under 50 concurrent deliveries; the sweeper over 1,000 "
    "sessions",
    "dashboard": "8a, 8b: the dashboard's sessions table over 10,000 sessions (HTML over HTTP, in Chromium) "
    "vs GET /v1/sessions",
    "leases": "9a-9c: lease grant latency p50/p99 on SQLite, PostgreSQL and Redis",
    "portable": "10a-10c: a turn on worker B after worker A (transcript hydrated, worktree from the store's "
    "checkpoint) vs a turn on A again",
    "workers": "11: 200 runs over 20 keys across 2 Celery workers (Redis broker) vs the in-process pool",
    "sync": "12a-12f: a turn with --sync rebase and nothing upstream vs a plain turn (small repo as a local "
    "path and over HTTP, large repo as a local path); with one incoming commit (information)",
}


def parse_only(text: str | None) -> list[str]:
    """``--only claude,git`` → the groups in run order; every group when not given."""
    if text is None:
        return list(GROUPS)
    wanted = {name.strip().lower() for name in text.split(",") if name.strip()}
    unknown = sorted(wanted - set(GROUPS))
    if unknown or not wanted:
        raise argparse.ArgumentTypeError(
            f"unknown group {', '.join(unknown) or '(none)'}: choose from {', '.join(GROUPS)}"
        )
    return [name for name in GROUPS if name in wanted]


def row_order(row: Row) -> tuple[int, str]:
    """Rows sort by their number and letter: 1a, 1b, ..., 2, 2b, 3a, ..., 5c."""
    match = re.match(r"(\d+)([a-z]?)", row.name)
    return (int(match.group(1)), match.group(2)) if match else (99, row.name)


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
    """Median seconds for a fresh interpreter to import what ``baton run`` needs: the CLI's app and
    the runner (with SQLAlchemy) (explains 1b)."""
    code = "import baton.cli.app, baton.runner.run"
    return median([clock(lambda: sh([sys.executable, "-c", code]))[1] for _ in range(reps)])


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


def agent_versions(groups: list[str], scratch: Path) -> dict[str, str]:
    """The version of every agent CLI the selected groups run (found the way baton finds them)."""
    settings = load_settings(overrides={"home": str(scratch)}, environ={})
    wanted = [a for a in ("claude", "codex", "gemini") if a in groups or "hydrate" in groups]
    found: dict[str, str] = {}
    for agent in wanted:
        try:  # reported under the table; the benchmark itself fails with the details
            if agent == "claude":
                found[agent] = sh([*claude_command(settings), "--version"]).strip()
            else:
                found[agent] = get_agent(agent, settings).version() or "unknown version"
        except Exception as exc:
            found[agent] = f"not found ({exc})"
    return found


def versions(agents: dict[str, str], scratch: Path, probe: float | None) -> list[str]:
    fs = sh(["stat", "-f", "-c", "%T", str(scratch.parent)]).strip()
    names = {"claude": "Claude Code", "codex": "Codex CLI", "gemini": "Gemini CLI"}
    return [
        *[f"- {names[agent]}: {version}" for agent, version in agents.items()],
        f"- {sh(['git', '--version']).strip()}",
        f"- Python {platform.python_version()} ({sys.executable}); baton {baton_version()} "
        f"at commit {project_commit()}",
        f"- {platform.system()} {platform.release()}, {os.cpu_count()} CPUs, "
        f"scratch directory on {fs} ({scratch.parent})"
        + (f"; creating 2,000 files of 4 KiB there takes {ms(probe)}" if probe is not None else ""),
    ]


def baton_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from baton.install import DIST

    try:
        return version(DIST)
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


def rmtrees(paths: list[Path]) -> None:
    for path in paths:
        rmtree(path)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def mib(value: float) -> str:
    return f"{value / 2**20:.1f} MiB"


# -- the notes under the table: each explains a row with numbers measured in the same run -----------


def claude_notes(api: Row, cli: Row) -> list[str]:
    notes = []
    if not cli.met:
        cost = import_cost()
        notes.append(
            f"1b misses because every `baton` CLI call starts a Python interpreter and imports "
            f"the CLI and the runner: `python -c 'import baton.cli.app, baton.runner.run'` alone takes "
            f"{ms(cost)} here, against a {ms(cli.baseline)} baseline turn. The Python API (1a) "
            f"does the same work in-process."
        )
    notes.append(
        f"1a: the mock model answers at once, so the baseline ({ms(api.baseline)}) is almost all "
        f"Claude Code start-up; a real model's turn takes seconds, so the same absolute overhead "
        f"(1a: {(api.candidate - api.baseline) * 1000:+.0f} ms) is a much smaller ratio there."
    )
    return notes


def agent_note(agent: str, tags: tuple[str, str], api: Row, stored: Row) -> str:
    return (
        f"1{tags[0]}/1{tags[1]} ({agent}): {ms(api.baseline)} baseline turn; baton adds "
        f"{(api.candidate - api.baseline) * 1000:+.0f} ms with a store opened per call, "
        f"{(stored.candidate - stored.baseline) * 1000:+.0f} ms with one store passed as `store=` "
        f"(differences of medians); ≤ {api.goal:g}{TIMES} leaves baton "
        f"{(api.goal - 1) * api.baseline * 1000:.0f} ms per run."
    )


def hydrate_note(tag: str, agent: str, row: Row) -> str:
    x = row.extra
    after, without = x["process_s"]["hydrate"], x["process_s"]["local"]
    return (
        f"5{tag} ({agent}): the conversation was grown by {x['growth_turns']} turns of ~96 KB "
        f"prompts to {mib(x['transcript_bytes_start'])} of transcript, "
        f"{mib(x['transcript_bytes_end'])} after the measured turns. Hydrating adds "
        f"{(row.candidate - row.baseline) * 1000:+.0f} ms (difference of medians); "
        f"`hydrate()` alone takes {ms(x['hydrate_alone_s'])} (median of 5, measured after), "
        f"and the agent process itself (the run records' launch-to-exit time) takes "
        f"{ms(after)} after a hydration against {ms(without)} without "
        f"({(after - without) * 1000:+.0f} ms)."
    )


def fake_note(tag: str, row: Row, checkpoint: float) -> str:
    stored = row.extra["overhead_with_reused_store"]
    return (
        f"{tag}: `Workdirs.checkpoint` of this clean worktree alone takes {ms(checkpoint)} (median of 5, "
        f"measured after the benchmark); with one store opened up front and passed as "
        f"`run(..., store=)` (a third variant, interleaved with the two) the overhead is "
        f"{stored * 1000:+.1f} ms."
    )


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
        f"4: cache {mib(x['cache_bytes'])} (its pack is hard-linked to the source repository, "
        f"a local path, but counted in full) + {mib(x['per_worktree_bytes'])} per worktree, "
        f"against {mib(x['per_clone_git_bytes'])} of `.git` + "
        f"{mib(x['per_clone_checkout_bytes'])} of checkout per clone. A worktree saves only the "
        f"object store, so the ratio tends to checkout ÷ (history + checkout) as worktrees are "
        f"added; ≤ {goal:g}{TIMES} with {n} worktrees needs a cache of at least {need:.1f}{TIMES} "
        f"a worktree's size (here {mib(need * x['per_worktree_bytes'])})."
    )


# -- one run of the suite -------------------------------------------------------------------------


@dataclass
class Suite:
    """One run: where it works, what it runs, and the rows, notes and failures found so far.

    Each benchmark is one method, run through :meth:`step`, so one that fails is reported under the
    table and the others still run.
    """

    scratch: Path
    plan: Plan
    groups: list[str]
    keep: bool
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    cleaner: threading.Thread | None = None

    def step(self, name: str, work: Callable[[], None]) -> None:
        log(f"{name} ...")
        t0 = time.perf_counter()
        try:
            work()
        except Exception as exc:  # one failed benchmark must not hide the others' results
            self.failed(name, exc)
        log(f"{name} done in {time.perf_counter() - t0:.1f} s")

    def failed(self, name: str, exc: Exception) -> None:
        traceback.print_exc()
        message = " ".join(str(exc).split())  # one line, for the Markdown list
        self.failures.append(f"{name}: {type(exc).__name__}: {message[:400]}")

    def run(self) -> None:
        """Generate the repositories, then run the selected groups in the suite's order."""
        small, big = self.generate_repos()
        plan, groups = self.plan, self.groups
        if "claude" in groups:
            self.step("1a/1b claude resume: baton.run / baton CLI / claude -p", lambda: self.claude(small))
        for agent, tags, reps in (
            ("codex", ("c", "d"), plan.codex_reps),
            ("gemini", ("e", "f"), plan.gemini_reps),
        ):
            if agent in groups:
                direct = "codex exec resume" if agent == "codex" else "gemini --resume"
                self.step(
                    f"1{tags[0]}/1{tags[1]} {agent} resume: baton.run / baton.run(store=) / {direct}",
                    functools.partial(self.agent, small, agent, tags, reps),
                )
        if "hydrate" in groups:
            self.step(
                "5 hydrate-then-resume vs local resume (claude, codex, gemini)", lambda: self.hydrate(small)
            )
        self.simple_groups("cli")
        if "service" in groups:
            self.step("7a/7b service: run over HTTP / 200 runs at once", lambda: self.service(small))
            self.step("7c GET /v1/sessions over 10,000 sessions", self.sessions_api)
            self.step("7d webhooks: 50 concurrent deliveries", lambda: self.webhooks(small))
            self.step("7e sweeper over 1,000 sessions", lambda: self.sweep(small))
        self.simple_groups("dashboard", "leases")
        if "workers" in groups:
            self.step("11 Celery workers: 200 runs over 20 keys", lambda: self.workers(small))
        if big is not None:
            self.big_groups(small, big)

    def big_groups(self, small: RepoShape, big: RepoShape) -> None:
        """The groups that need the large repository."""
        if "fake" in self.groups:
            self.step("2 runner overhead, small repo", lambda: self.fake("2", small, self.plan.fake_reps))
            self.step("2b runner overhead, large repo", lambda: self.fake("2b", big, self.plan.fake_big_reps))
        if "portable" in self.groups:
            self.step("10a-10c a turn on worker B after A vs on A again", lambda: self.portable(big))
        if "git" in self.groups:
            self.git(big)
        if "sync" in self.groups:
            self.sync(small, big)

    def simple_groups(self, *names: str) -> None:
        """Run those of ``names`` that were selected: groups of one step that need no repository."""
        steps = {
            "cli": ("6 CLI start-up: baton --help / baton sessions ls", self.cli),
            "dashboard": ("8a/8b dashboard /sessions over 10,000 sessions", self.dashboard),
            "leases": ("9a-9c lease grants: SQLite / PostgreSQL / Redis", self.leases),
        }
        for name in names:
            if name in self.groups:
                self.step(*steps[name])

    def generate_repos(self) -> tuple[RepoShape, RepoShape | None]:
        """The small repository every group uses, and the large one only ``fake``, ``git``, ``portable`` and
        ``sync`` need."""
        repos: dict[str, RepoShape] = {}
        need_big = any(name in self.groups for name in ("fake", "git", "portable", "sync"))

        def generate() -> None:
            repos["small"] = generate_repo(self.scratch / "small.git", initial_files=40, commits=20, seed=7)
            if need_big:
                repos["big"] = generate_repo(self.scratch / "big.git", initial_files=1_600, commits=1_000)

        self.step("generate repositories", generate)
        if "small" not in repos or (need_big and "big" not in repos):
            raise RuntimeError("could not generate the test repositories")
        big = repos.get("big")
        if big is not None:
            if big.files < 2_000 or big.commits < 1_000:
                raise RuntimeError(f"the generated repository is too small: {big}")
            log(f"large repo: {big.files} files, {big.commits} commits, pack {mib(big.pack_bytes)}")
        return repos["small"], big

    def claude(self, small: RepoShape) -> None:
        found = bench_claude(self.scratch / "b1", small.path, self.plan.claude_reps)
        self.rows.extend(found)
        self.notes.extend(claude_notes(found[0], found[1]))

    def agent(self, small: RepoShape, agent: str, tags: tuple[str, str], reps: int) -> None:
        found = bench_agent(self.scratch / f"b1-{agent}", small.path, agent, reps, tags)
        self.rows.extend(found)
        api, stored = found
        self.notes.append(agent_note(agent, tags, api, stored))

    def hydrate(self, small: RepoShape) -> None:
        for tag, agent in (("a", "claude"), ("b", "codex"), ("c", "gemini")):
            log(f"  5{tag} {agent} ...")
            try:
                row = bench_hydrate(
                    self.scratch / f"b5-{agent}",
                    small.path,
                    agent,
                    self.plan.hydrate_reps,
                    tag,
                    self.plan.hydrate_min_bytes,
                )
            except Exception as exc:  # the other agents' rows still count
                self.failed(f"5{tag} hydrate {agent}", exc)
                continue
            self.rows.append(row)
            self.notes.append(hydrate_note(tag, agent, row))

    def fake(self, tag: str, shape: RepoShape, reps: int) -> None:
        label = f"{tag} runner overhead, fake agent, {shape.files}-file worktree"
        row = bench_fake(self.scratch / f"b{tag}", shape.path, reps, label)
        self.rows.append(row)
        self.notes.append(fake_note(tag, row, checkpoint_cost(self.scratch / f"b{tag}", shape.path)))

    def service(self, small: RepoShape) -> None:
        single = bench_service_run(self.scratch / "b7a", small.path, self.plan.fake_reps)
        self.rows.append(single)
        burst = bench_service_burst(self.scratch / "b7b", small.path)
        self.rows.append(burst)
        self.notes.append(service_note(single, burst))

    def sessions_api(self) -> None:
        self.rows.append(bench_sessions_api(self.scratch / "b7c"))

    def webhooks(self, small: RepoShape) -> None:
        self.rows.append(bench_webhooks(self.scratch / "b7d", small.path))

    def sweep(self, small: RepoShape) -> None:
        self.rows.append(bench_sweep(self.scratch / "b7e", small.path))

    def dashboard(self) -> None:
        found = bench_dashboard(self.scratch / "b8", self.plan.dashboard_reps)
        self.rows.extend(found)
        self.notes.append(dashboard_note(*found))

    def leases(self) -> None:
        found = bench_leases(self.scratch / "b9", self.plan.lease_reps)
        self.rows.extend(found)
        self.notes.append(leases_note(found))

    def portable(self, big: RepoShape) -> None:
        found = bench_portable(
            self.scratch / "b10", big.path, self.plan.portable_reps, self.plan.hydrate_min_bytes
        )
        self.rows.extend(found)
        self.notes.append(portable_note(found))

    def sync(self, small: RepoShape, big: RepoShape) -> None:
        """12a-12f, one step each so a failed one leaves the others' rows; one note for them all."""
        found: list[Row] = []
        for title, tag, shape, over_http, incoming, agent in (
            ("12a synced turn vs plain turn, small repo as a local path", "a", small, False, False, "fake"),
            ("12b synced turn vs plain turn, small repo over HTTP", "b", small, True, False, "fake"),
            ("12c synced turn vs plain turn, large repo as a local path", "c", big, False, False, "fake"),
            ("12d synced turn, an incoming commit, vs plain turn, over HTTP", "d", small, True, True, "fake"),
            (
                "12e synced turn, an incoming commit, vs plain turn, local path",
                "e",
                small,
                False,
                True,
                "fake",
            ),
            (
                "12f synced turn vs plain turn, small repo over HTTP, Claude Code",
                "f",
                small,
                True,
                False,
                "claude",
            ),
        ):
            work = functools.partial(self.sync_one, found, tag, shape, over_http, incoming, agent)
            self.step(title, work)
        self.rows.extend(found)
        if found:
            self.notes.append(sync_note(sorted(found, key=row_order)))

    def sync_one(
        self, found: list[Row], tag: str, shape: RepoShape, over_http: bool, incoming: bool, agent: str
    ) -> None:
        root = self.scratch / f"b12{tag}"
        found.append(bench_sync(root, shape.path, self.plan.sync_reps, tag, over_http, incoming, agent))

    def workers(self, small: RepoShape) -> None:
        row = bench_workers(self.scratch / "b11", small.path)
        self.rows.append(row)
        self.notes.append(workers_note(row))

    def cli(self) -> None:
        self.rows.extend(bench_cli(self.scratch / "b6", self.plan.cli_reps))

    def git(self, big: RepoShape) -> None:
        plan, scratch = self.plan, self.scratch
        self.step(
            "3 new worktree vs clone vs worktree add",
            lambda: self.rows.extend(bench_worktrees(scratch / "b3", big.path, plan.worktree_reps)),
        )
        self.step("3c new worktree of a remote vs partial clone over HTTP", lambda: self.remote(big))
        if not self.keep:
            # Nothing after benchmark 3 is timed, so its checkouts can go while benchmark 4 (which
            # only counts bytes) runs: deleting is slow on some filesystems (see bench_git.py).
            done = [scratch / "b3", scratch / "b3c"]
            self.cleaner = threading.Thread(target=rmtrees, args=(done,), daemon=True)
            self.cleaner.start()
        self.step(f"4 disk of {plan.disk_worktrees} worktrees vs clones", lambda: self.disk(big))

    def remote(self, big: RepoShape) -> None:
        row = bench_remote_worktree(self.scratch / "b3c", big.path, self.plan.remote_reps)
        self.rows.append(row)
        local = next((r for r in self.rows if r.name.startswith("3a")), None)
        self.notes.append(remote_note(row, local))

    def disk(self, big: RepoShape) -> None:
        row = bench_disk(self.scratch / "b4", big.path, self.plan.disk_worktrees)
        self.rows.append(row)
        self.notes.append(disk_note(row, self.plan.disk_worktrees))

    def clean_up(self) -> None:
        if self.keep:
            log(f"kept {self.scratch}")
            return
        if self.cleaner is not None:
            self.cleaner.join()
        log(f"deleting {self.scratch} ...")
        _, took = clock(lambda: rmtree(self.scratch))
        log(f"deleted in {took:.1f} s")


# -- the command ------------------------------------------------------------------------------------


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
        help="run only these groups: " + "; ".join(f"{k} ({v})" for k, v in GROUPS.items()),
    )
    return parser.parse_args(argv)


def report(suite: Suite, mode: str, wall: float, agents: dict[str, str], probe: float | None) -> str:
    """The Markdown written to latest.md and printed: the table, the versions, the notes."""
    only = "" if suite.groups == list(GROUPS) else f", only {','.join(suite.groups)}"
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "quick" if args.quick else "full"
    groups: list[str] = args.only or list(GROUPS)
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="baton-bench-", dir=args.workdir))
    log(f"scratch directory {scratch} ({mode} run: {', '.join(groups)})")
    suite = Suite(scratch, QUICK if args.quick else FULL, groups, keep=args.keep)
    probe: float | None = None
    agents = agent_versions(groups, scratch)
    try:
        probe = file_creation_cost(scratch / "probe")
        suite.run()
    finally:
        suite.clean_up()

    wall = time.perf_counter() - started
    suite.rows.sort(key=row_order)
    text = report(suite, mode, wall, agents, probe)
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
