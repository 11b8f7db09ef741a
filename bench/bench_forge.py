"""Benchmarks 15a-15d, the ``forge`` group: the forge loop ("threads that listen": feedback on issues
and PRs) against the fake GitHub (:class:`baton.testing.fake_forge.FakeForge`: REST checked against
GitHub's OpenAPI description, payloads built from ``@octokit/webhooks-examples``).

The fake GitHub runs in a process of its own (a :mod:`multiprocessing` manager holding it: its request
handling, OpenAPI checks and payload building never share this interpreter's GIL with the clients
that time things here, as GitHub is elsewhere for a real service). ``baton serve`` runs in its own
process too, with ``config.toml``'s ``[forge.github]`` and ``[repo."acme/api"]`` pointing at the fake
(the fake agent; ``daily_turns`` raised from 20, which 15a's rounds would spend on its threads;
``BATON_FORGE_RECONCILE=0``: no scheduled reconcile during the measurements).

- **15a** webhook acknowledgement with feedback handling: rounds of 50 concurrent signed
  ``issue_comment.created`` deliveries (the fake's own payloads of real comments, made up front), each on
  its own connection, to the service with the forge configured; of each 4: 2 by a trusted user (write)
  on one of 10 bound threads (accepted: a turn of the fake agent starts, or the event waits and is
  coalesced into the thread's next one), 1 by a read-only user on a bound thread (quoted or dropped,
  audited), 1 on an issue that is not bound and has no mention (ignored). Interleaved round by round
  with 7d's cleanup-only deliveries (:mod:`bench_webhooks`: ping, PR opened, branch deleted) to 7d's
  own service, running beside it: the baseline. The first round of each is dropped. The row is the
  candidate's p99 against the 100 ms goal (ratio ≤ 1); the notes give both p50/p99 and their ratios.
  The background handling (dispatch, turns, status comments) goes on while later rounds are timed.
- **15b** from an accepted event to the agent's start, for an idle bound thread (one 15a left
  alone): the time from the
  202 of a trusted comment's delivery to the ``started_at`` of the run it caused (the run record is
  made right before the agent process is started), interleaved with the baseline, a plain
  ``POST /v1/runs`` of the same key (agent, repo, thread): its 202 to its run's ``started_at``. Between
  repetitions everything settles (the turn ended and published, no event waiting). Goal ≤ 1 s: the
  row is the candidate's median ÷ 1 s (≤ 1); the notes give the ratio to the baseline.
- **15c/15d** the reconcile of 1,000 bound threads with nothing new: 500 issues and 500 PRs (each on
  its own branch with its own head commit and one successful check run) in the fake, all last updated
  an hour ago (the fake's clock), bound in the store as the loop binds them, last looked at a minute
  ago; ``reconcile(loop)`` in this process with a real ``GitHubClient``. The first pass knows no ETag
  (each PR's checks come back 200 and are read as a possible CI failure, which ``dispatch`` re-reads
  and drops: nothing failed) — the baseline, what the ETags save; then the steady passes, which must
  find nothing and ask one request for the repository's updated issues plus one conditional check-runs
  request per PR (304). 15c: a steady pass's median time ÷ 30 s (≤ 1); 15d: its forge requests ÷ the
  1,000 threads (≤ 1; the count is in the candidate column, the first pass's in the baseline's).
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import io
import multiprocessing
import os
import pstats
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from multiprocessing.managers import BaseManager
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
from bench_webhooks import SECRET, cleanup_service, deliver, percentile, raw_request
from bench_webhooks import burst as cleanup_burst
from common import TIMES, Group, Plan, Repos, Row, Suite, baton_serve, fmt_seconds, interleave, log, median
from tests.support.github_openapi import install as install_github_openapi

from baton import load_settings, open_store
from baton.forge.background.reconcile import reconcile
from baton.forge.data.records import Binding
from baton.forge.data.tables import forge_store
from baton.forge.kinds.configured import load_forges
from baton.forge.kinds.github.client import GitHubClient
from baton.forge.turn.loop import ForgeLoop
from baton.forge.turn.threads import bind_thread
from baton.keys import parse_repo
from baton.models import JobStatus
from baton.service.auth import create_token
from baton.service.records import TokenScope
from baton.settings import Settings
from baton.store import Store
from baton.testing.fake import register_fake
from baton.testing.fake_forge import FakeForge

register_fake()
install_github_openapi()  # the fake checks its answers and deliveries against GitHub's descriptions
REPO = "acme/api"
BOT = "baton-bot"
GOAL_ACK_S = 0.100  # 15a: p99
GOAL_START_S = 1.0  # 15b: median
GOAL_RECONCILE_S = 30.0  # 15c
ROUNDS = Plan(full=10, quick=3)  # 15a, after one warm-up round
STARTS = Plan(full=15, quick=4)  # 15b
PASSES = Plan(full=5, quick=2)  # 15c, after the first pass
THREADS = Plan(full=1000, quick=200)  # 15c: the goal's 1,000 (a quick run: 200, its first pass is long)
BOUND = 10  # 15a's bound threads
CONCURRENT = 50


# -- the fake GitHub in a process of its own ----------------------------------------------------------


class ForgeHost:
    """A :class:`FakeForge` and the drive calls the benchmarks make, in the manager's process. ``age``
    seconds are taken off the fake's clock: what it makes was last updated that long ago."""

    def __init__(self, root: str, age: float = 0.0) -> None:
        self.fake = FakeForge(Path(root), secret=SECRET, clock=lambda: time.time() - age).start()

    def setup(self, users: dict[str, str]) -> dict[str, str]:
        """The repository and its users (login: role); the API, web and clone URLs and the bot's token."""
        self.fake.create_repo(REPO, {"README.md": "# api\n", "app.py": "print('hi')\n"})
        for login, role in users.items():
            self.fake.add_user(login)
            self.fake.set_permission(REPO, login, role)
        return {
            "api_url": self.fake.api_url,
            "web_url": self.fake.web_url,
            "clone_url": self.fake.clone_url(REPO),
            "token": self.fake.token(BOT),
        }

    def open_issues(self, login: str, n: int) -> list[int]:
        return [self.fake.open_issue(REPO, login, f"Issue {i}", f"Please fix thing {i}.") for i in range(n)]

    def comments(self, specs: list[tuple[int, str, str]]) -> list[tuple[str, str, bytes]]:
        """A comment per (number, login, body); the ``issue_comment`` deliveries they made (event, id,
        body), in order. Nothing is sent: the fake has no ``deliver_to``."""
        start = len(self.fake.deliveries)
        for number, login, body in specs:
            self.fake.comment(REPO, number, login, body)
        made = self.fake.deliveries[start:]
        return [(d.event, d.id, d.body) for d in made if d.event == "issue_comment"]

    def open_prs(self, login: str, n: int) -> list[tuple[int, str, str]]:
        """``n`` PRs, each from its own branch holding one commit of its own over main (one
        ``git fast-import``), each head with one successful check run; (number, branch, head sha)."""
        repo = self.fake.repo(REPO)
        lines = []
        for i in range(n):
            data = f"change {i}\n".encode()
            lines += [
                f"commit refs/heads/b{i}",
                f"committer {login} <{login}@example.com> {int(time.time())} +0000",
                "data 8",
                "change\n",
                "from refs/heads/main",
                f"M 100644 inline f{i}.txt",
                f"data {len(data)}",
                data.decode(),
            ]
        stream = "\n".join(lines) + "\n"
        git = ["git", "-C", str(repo.path)]
        subprocess.run([*git, "fast-import", "--quiet"], input=stream, text=True, check=True)
        # one packed-refs file: the fake reads a branch's head from the ref files, loose ones one by one
        subprocess.run([*git, "pack-refs", "--all"], check=True)
        heads = repo.branches()
        # the check runs before the PRs: a check run looks up the open PRs at its commit, one branch
        # read per PR (quadratic over 500 PRs, a cost of the fake's drive API and not of what is measured)
        for i in range(n):
            self.fake.add_check_run(REPO, heads[f"b{i}"], "test", "success")
        numbers = [self.fake.open_pr(REPO, login, f"b{i}", title=f"Change {i}") for i in range(n)]
        return [(number, f"b{i}", heads[f"b{i}"]) for i, number in enumerate(numbers)]

    def request_count(self) -> int:
        return len(self.fake.requests)

    def requests_since(self, start: int) -> list[tuple[str, str, int]]:
        return [(r.method, r.path, r.status) for r in self.fake.requests[start:]]

    def violations(self) -> list[str]:
        return [f"{v.kind} {v.what}: {'; '.join(v.errors)[:200]}" for v in self.fake.violations]

    def stop(self) -> None:
        self.fake.stop()


class _Manager(BaseManager):
    pass


_Manager.register("ForgeHost", ForgeHost)


@contextlib.contextmanager
def forge_process() -> Iterator[Any]:
    """A manager process in which :class:`ForgeHost` objects are made (``manager.ForgeHost(...)``)."""
    manager = _Manager(ctx=multiprocessing.get_context("spawn"))
    manager.start()
    try:
        yield manager
    finally:
        manager.shutdown()


# -- the service with a forge configured --------------------------------------------------------------


def configure(home: Path, urls: dict[str, str]) -> None:
    """``config.toml`` of a home whose acme/api lives on the fake, run by the fake agent."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f"""
[forge.github]
kind = "github"
api_url = "{urls["api_url"]}"
web_url = "{urls["web_url"]}"
token_env = "BATON_GIT_TOKEN"
user = "{BOT}"
mention = "@baton"

[repo."{REPO}"]
forge = "github"
agent = "fake"
access = "edit"
daily_turns = 10000
clone_url = "{urls["clone_url"]}"
"""
    )


def forge_env(urls: dict[str, str]) -> dict[str, str]:
    return {
        "BATON_WEBHOOK_SECRET": SECRET,
        "BATON_GIT_TOKEN": urls["token"],
        "BATON_FORGE_RECONCILE": "0",
    }


def make_loop(settings: Settings, store: Store, urls: dict[str, str]) -> ForgeLoop:
    """The loop as the service builds it, with a real GitHubClient against the fake; its submit does
    nothing (no turn is expected, and one that is would wait in the store)."""
    client = GitHubClient(urls["api_url"], urls["token"])
    return ForgeLoop(
        settings, store, load_forges(settings.home), lambda _job: None, clients={"github": client}
    )


def settled(store: Store, timeout: float = 120.0) -> None:
    """No job queued or running, no turn unpublished, no forge event waiting."""
    deadline = time.monotonic() + timeout
    while (
        store.list_jobs(status=JobStatus.QUEUED, limit=1)
        or store.list_jobs(status=JobStatus.RUNNING, limit=1)
        or forge_store(store).unpublished_turns(limit=1)
        or forge_store(store).pending_forge_threads(limit=1)
    ):
        if time.monotonic() > deadline:
            raise RuntimeError("the forge loop did not settle in time")
        time.sleep(0.02)


def comment_specs(bound: list[int], unbound: list[int], n: int, salt: int) -> list[tuple[int, str, str]]:
    """15a's mix of ``n`` comments (see the module doc)."""
    out = []
    for i in range(n):
        if i % 4 in (0, 2):
            out.append((bound[(i // 2) % len(bound)], "alice", f"Please also handle case {salt}-{i}."))
        elif i % 4 == 1:
            out.append((bound[i % len(bound)], "mallory", f"I think case {salt}-{i} matters too."))
        else:
            out.append((unbound[i % len(unbound)], "alice", f"A note on {salt}-{i}, nothing to do."))
    return out


async def feedback_burst(port: int, deliveries: list[tuple[str, str, bytes]]) -> list[float]:
    requests = [raw_request(port, event, body, delivery) for event, delivery, body in deliveries]
    return list(await asyncio.gather(*(deliver(port, data) for data in requests)))


def ack_rounds(
    port: int, base_port: int, base_url: str, feedback: list[list[tuple[str, str, bytes]]]
) -> dict[str, list[list[float]]]:
    """15a: a round of the candidate's deliveries and one of 7d's, alternating which goes first; the
    first round of each is a warm-up, dropped. Each round's seconds per delivery."""
    out: dict[str, list[list[float]]] = {"feedback": [], "cleanup": []}
    for rep, deliveries in enumerate(feedback):
        order = ["feedback", "cleanup"] if rep % 2 == 0 else ["cleanup", "feedback"]
        for name in order:
            if name == "feedback":
                times = asyncio.run(feedback_burst(port, deliveries))
            else:
                times = asyncio.run(cleanup_burst(base_port, base_url, CONCURRENT, rep))
            if rep > 0:
                out[name].append(times)
    return out


def ack_row(rounds: dict[str, list[list[float]]]) -> Row:
    cand = [t for b in rounds["feedback"] for t in b]
    base = [t for b in rounds["cleanup"] for t in b]
    p99, base_p99 = percentile(cand, 0.99), percentile(base, 0.99)
    return Row(
        f"15a webhook acknowledged with feedback handling, {CONCURRENT} concurrent `issue_comment` "
        "deliveries: p99 vs 7d's cleanup-only deliveries beside it; p99 in the overhead column",
        "overhead",
        p99,
        base_p99,
        GOAL_ACK_S,
        len(cand),
        overhead=p99,
        samples={"candidate": cand, "baseline": base},
        extra={
            "p50_ms": percentile(cand, 0.5) * 1000,
            "p99_ms": p99 * 1000,
            "max_ms": max(cand) * 1000,
            "baseline_p50_ms": percentile(base, 0.5) * 1000,
            "baseline_p99_ms": base_p99 * 1000,
            "baseline_max_ms": max(base) * 1000,
            "p50_ratio": percentile(cand, 0.5) / percentile(base, 0.5),
            "p99_ratio": p99 / base_p99,
            "rounds": len(rounds["feedback"]),
        },
    )


def newest_run_start(store: Store, binding: Binding, after: float, timeout: float = 60.0) -> float:
    """The ``started_at`` of the key's first run started after ``after`` (polled every 5 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = store.list_runs(binding.agent, binding.repo_slug, binding.thread, limit=3)
        found = [r.started_at for r in runs if r.started_at >= after]
        if found:
            return min(found)
        time.sleep(0.005)
    raise RuntimeError(f"no run of {binding.thread} started within {timeout} s")


def comment_request(port: int, host: Any, binding: Binding, rep: int) -> bytes:
    """15b's delivery: a trusted comment on the thread, made in the fake GitHub, signed."""
    [(event, delivery, body)] = host.comments([(binding.number, "alice", f"And now step {rep}, please.")])
    return raw_request(port, event, body, delivery)


def start_latency(
    port: int,
    host: Any,
    store: Store,
    binding: Binding,
    token: str,
    reps: int,
    asked: list[int],
    make_delivery: Callable[[int], bytes],
) -> dict[str, list[float]]:
    """15b (and 21a): a trusted comment's delivery (candidate; ``make_delivery(rep)`` makes it in the
    fake and gives the request) and a ``POST /v1/runs`` of the same key (baseline), interleaved; each
    from its 202 to its run's ``started_at``, everything settled before. ``asked`` gets the forge
    requests made between a delivery and its turn's start."""
    http = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )

    def comment(rep: int) -> float:
        settled(store)
        request = make_delivery(rep)
        before = host.request_count()
        sent = time.time()
        asyncio.run(deliver(port, request))
        acknowledged = time.time()
        started = newest_run_start(store, binding, sent)
        asked.append(host.request_count() - before)  # by the time the start was seen
        settled(store)
        return started - acknowledged

    def plain(rep: int) -> float:
        settled(store)
        body = {
            "agent": binding.agent,
            "repo": binding.repo_url,
            "thread": binding.thread,
            "prompt": f"Step {rep}.",
        }
        sent = time.time()
        response = http.post("/v1/runs", json=body)
        acknowledged = time.time()
        if response.status_code != 202:
            raise RuntimeError(f"POST /v1/runs answered {response.status_code}: {response.text[:300]}")
        started = newest_run_start(store, binding, sent)
        settled(store)
        return started - acknowledged

    try:
        return interleave({"forge": comment, "plain": plain}, reps, warmup=2)
    finally:
        http.close()


def start_row(samples: dict[str, list[float]]) -> Row:
    cand, base = median(samples["forge"]), median(samples["plain"])
    return Row(
        "15b a comment's 202 to the agent's start, idle bound thread, vs `POST /v1/runs` of the key: median",
        "overhead",
        cand,
        base,
        GOAL_START_S,
        len(samples["forge"]),
        overhead=cand,
        samples={"candidate": samples["forge"], "baseline": samples["plain"]},
        agent="fake",
        extra={
            "median_ms": cand * 1000,
            "p90_ms": percentile(samples["forge"], 0.9) * 1000,
            "plain_median_ms": base * 1000,
            "ratio_to_plain": cand / base if base else float("inf"),
        },
    )


def bench_feedback(suite: Suite, root: Path, source: Path, rounds: int, starts: int) -> None:
    """15a and 15b on one service with the forge configured (and 7d's service beside it for 15a); each
    row and its note go into ``suite`` as soon as it is measured (a failure of 15b keeps 15a's)."""
    settings = load_settings(overrides={"home": str(root / "home")}, environ={})
    with forge_process() as manager:
        host = manager.ForgeHost(str(root / "forge"))
        urls = host.setup({BOT: "write", "alice": "write", "mallory": "read"})
        configure(settings.home, urls)
        bound_numbers = host.open_issues("alice", BOUND + 1)  # the last one is 15b's, idle during 15a
        unbound = host.open_issues("alice", 5)
        store = open_store(settings.resolved_store_url)
        try:
            with mock.patch.dict(os.environ, {"BATON_GIT_TOKEN": urls["token"]}):
                loop = make_loop(settings, store, urls)
                bindings = [bind_thread(loop, "github", REPO, n, actor="bench") for n in bound_numbers]
            token = create_token(store, f"bench-{time.monotonic_ns()}", TokenScope.RUN)
            log(f"15a: making {(rounds + 1) * CONCURRENT} comments in the fake GitHub")
            feedback = [
                host.comments(comment_specs(bound_numbers[:BOUND], unbound, CONCURRENT, r))
                for r in range(rounds + 1)
            ]
            with (
                cleanup_service(root / "cleanup", source) as (base_port, base_url),
                baton_serve(settings.home, forge_env(urls)) as port,
            ):
                ack = ack_row(ack_rounds(port, base_port, base_url, feedback))
                settled(store, timeout=600)
                ack.extra["turns"] = len(store.list_jobs(limit=10_000))
                suite.rows.append(ack)
                suite.notes.append(ack_note(ack, host.violations()))
                asked: list[int] = []
                samples = start_latency(
                    port,
                    host,
                    store,
                    bindings[-1],
                    token,
                    starts,
                    asked,
                    lambda rep: comment_request(port, host, bindings[-1], rep),
                )
                start = start_row(samples)
                start.extra["forge_requests"] = median([float(a) for a in asked])
                suite.rows.append(start)
                suite.notes.append(start_note(start, host.violations()))
        finally:
            store.close()
            host.stop()


def ack_note(ack: Row, violations: list[str]) -> str:
    a = ack.extra
    return (
        f"15a: with feedback handling p50 {a['p50_ms']:.1f} ms, p99 {a['p99_ms']:.1f} ms, max "
        f"{a['max_ms']:.1f} ms; 7d's cleanup-only deliveries beside it, the same rounds: p50 "
        f"{a['baseline_p50_ms']:.1f} ms, p99 {a['baseline_p99_ms']:.1f} ms (ratios p50 "
        f"{a['p50_ratio']:.2f}{TIMES}, p99 {a['p99_ratio']:.2f}{TIMES}); {a['rounds']} rounds of "
        f"{CONCURRENT}; the background made {a['turns']} turns of the fake agent."
        + (f" The fake GitHub recorded {len(violations)} violations: {violations[:2]}" if violations else "")
    )


def start_note(start: Row, violations: list[str]) -> str:
    b = start.extra
    return (
        f"15b: a comment's 202 to the agent's start {b['median_ms']:.0f} ms (p90 {b['p90_ms']:.0f} ms), "
        f"a `POST /v1/runs` of the same key {b['plain_median_ms']:.0f} ms "
        f"({b['ratio_to_plain']:.2f}{TIMES}); between a delivery and its turn's start the service asked "
        "the fake GitHub "
        f"{b['forge_requests']:.0f} requests (median)."
        + (f" The fake GitHub recorded {len(violations)} violations: {violations[:2]}" if violations else "")
    )


# -- 15c/15d: the reconcile ----------------------------------------------------------------------------


class CountRow(Row):
    """A row whose numbers are counts: forge requests against threads (ratio: requests per thread)."""

    def cells(self) -> list[str]:
        met = "✅ pass" if self.met else "❌ miss"
        return [
            f"{self.name} (n={self.n})",
            self.agent or "—",
            f"{self.candidate:.0f} requests",
            f"{self.baseline:.0f} threads",
            f"{self.ratio:.3f} per thread",
            f"≤ {self.goal:g} per thread",
            met,
        ]


def bind_all(loop: ForgeLoop, issues: list[int], prs: list[tuple[int, str, str]], seen_at: float) -> None:
    """Bind the issues and PRs as :func:`baton.forge.turn.threads.bind_thread` does (without asking the
    forge 1,000 times what each is: the set-up's answers are known), last reconciled at ``seen_at``."""
    config = loop.repo("github", REPO)
    assert config is not None
    url = config.repo_url(loop.forge("github"))
    slug = parse_repo(url).slug
    now = time.time()
    for number in issues:
        binding = Binding(
            "github",
            REPO,
            number,
            "fake",
            slug,
            f"issue-{number}",
            url,
            access=config.access,
            seen_at=seen_at,
            created_at=now,
            updated_at=now,
        )
        forge_store(loop.store).bind(binding)
        forge_store(loop.store).save_binding(binding)
    for number, branch, sha in prs:
        binding = Binding(
            "github",
            REPO,
            number,
            "fake",
            slug,
            f"pr-{number}",
            url,
            pr=number,
            head_sha=sha,
            branch=branch,
            access=config.access,
            seen_at=seen_at,
            created_at=now,
            updated_at=now,
        )
        forge_store(loop.store).bind(binding)
        forge_store(loop.store).save_binding(binding)


def one_pass(loop: ForgeLoop, host: Any) -> tuple[float, list[tuple[str, str, int]], dict[str, Any]]:
    before = host.request_count()
    start = time.perf_counter()
    report = reconcile(loop)
    elapsed = time.perf_counter() - start
    if report.errors:
        raise RuntimeError(f"the reconcile failed: {report.errors[:3]}")
    return elapsed, host.requests_since(before), report.to_json()


def request_kinds(requests: list[tuple[str, str, int]]) -> str:
    """``GET /repos/acme/api/issues → 200 x1, ...``: a pass's requests by route shape and status."""
    shapes: Counter[str] = Counter()
    for method, path, status in requests:
        parts = path.split("/")
        shape = "/".join("{n}" if p.isdigit() else ("{sha}" if len(p) == 40 else p) for p in parts)
        shapes[f"{method} {shape} → {status}"] += 1  # "issues → 200": no "issues 200"
    return ", ".join(f"{k} {TIMES}{v}" for k, v in shapes.most_common())


def bench_reconcile(root: Path, threads: int, passes: int) -> tuple[Row, Row, dict[str, Any]]:
    """15c and 15d (see the module doc); the details for the notes."""
    settings = load_settings(overrides={"home": str(root / "home")}, environ={})
    with forge_process() as manager:
        host = manager.ForgeHost(str(root / "forge"), 3600.0)  # everything last updated an hour ago
        urls = host.setup({BOT: "write", "alice": "write"})
        configure(settings.home, urls)
        set_up = time.perf_counter()
        issues = host.open_issues("alice", threads // 2)
        prs = host.open_prs("alice", threads - threads // 2)
        store = open_store(settings.resolved_store_url)
        try:
            with mock.patch.dict(os.environ, {"BATON_GIT_TOKEN": urls["token"]}):
                loop = make_loop(settings, store, urls)
                bind_all(loop, issues, prs, time.time() - 60)
                log(f"15c: {threads} threads made and bound in {time.perf_counter() - set_up:.1f} s")
                first, first_requests, first_report = one_pass(loop, host)
                steady: list[float] = []
                counts: list[int] = []
                for _ in range(passes):
                    elapsed, requests, report = one_pass(loop, host)
                    if report["found"] or report["threads"] != threads:
                        raise RuntimeError(f"a pass with nothing new found something: {report}")
                    if any(status != 304 for _m, path, status in requests if "check-runs" in path):
                        raise RuntimeError(
                            f"a steady pass's checks were not all 304: {request_kinds(requests)}"
                        )
                    steady.append(elapsed)
                    counts.append(len(requests))
                profile = profiled_pass(loop)
                raw, raw_304 = raw_requests(urls, store)
            violations = host.violations()
        finally:
            store.close()
            host.stop()
    time_row = Row(
        f"15c reconcile of {threads:,} bound threads ({threads // 2} issues, {threads - threads // 2} PRs) "
        "with nothing new: a pass vs the first pass (no ETags yet)",
        "overhead",
        median(steady),
        first,
        GOAL_RECONCILE_S,
        passes,
        overhead=median(steady),
        samples={"candidate": steady, "baseline": [first]},
        extra={"first_report": first_report},
    )
    count_row = CountRow(
        f"15d forge requests of such a pass per bound thread ({len(first_requests)} in the first pass)",
        "ratio",
        float(max(counts)),
        float(threads),
        1.0,
        passes,
        samples={"candidate": [float(c) for c in counts]},
        extra={"first_requests": len(first_requests)},
    )
    details = {
        "steady_kinds": request_kinds(requests),
        "first_kinds": request_kinds(first_requests),
        "first_report": first_report,
        "profile": profile,
        "raw_s": raw,
        "raw_304": raw_304,
        "violations": violations,
    }
    return time_row, count_row, details


PROFILED = (
    ("updated_since", "the issues list"),
    ("checks_changed", "the conditional check-runs requests"),
    ("bound_threads", "listing the bindings"),
    ("get_binding", "re-reading each binding"),
    ("save_binding", "saving each binding's seen_at and ETag"),
)


def profiled_pass(loop: ForgeLoop) -> str:
    """One more pass under cProfile: where its time goes (cumulative seconds of the parts)."""
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    reconcile(loop)
    profiler.disable()
    wall = time.perf_counter() - start
    stats = pstats.Stats(profiler, stream=io.StringIO())
    cumulative: Counter[str] = Counter()
    for (_file, _line, name), entry in stats.stats.items():  # type: ignore[attr-defined]
        for wanted, _what in PROFILED:
            if name == wanted:
                cumulative[wanted] = max(cumulative[wanted], entry[3])
    recv = sum(
        e[2]
        for (_f, _l, name), e in stats.stats.items()  # type: ignore[attr-defined]
        if "recv" in name
    )
    parts = ", ".join(f"{what} {cumulative[name]:.1f} s" for name, what in PROFILED)
    return f"{wall:.1f} s under the profiler: {parts}; waiting on sockets (recv) {recv:.1f} s"


def raw_requests(urls: dict[str, str], store: Store) -> tuple[float, int]:
    """The steady pass's requests alone, by plain httpx on one connection: the issues list since a
    minute ago and each PR head's check-runs with its stored ETag. Seconds, and how many were 304."""
    bindings = forge_store(store).list_bindings(forge="github", limit=10_000)
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 180))
    headers = {"Authorization": f"Bearer {urls['token']}", "Accept": "application/vnd.github+json"}
    not_modified = 0
    with httpx.Client(base_url=urls["api_url"], headers=headers, timeout=30) as http:
        start = time.perf_counter()
        http.get(f"/repos/{REPO}/issues", params={"state": "all", "since": since, "per_page": 100})
        for b in bindings:
            if b.pr is not None and b.head_sha:
                answer = http.get(
                    f"/repos/{REPO}/commits/{b.head_sha}/check-runs",
                    params={"per_page": 100},
                    headers={"If-None-Match": b.etag or ""},
                )
                not_modified += answer.status_code == 304
        return time.perf_counter() - start, not_modified


# -- the group -----------------------------------------------------------------------------------------


def record_feedback(suite: Suite, source: Path) -> None:
    bench_feedback(suite, suite.scratch / "b15a", source, suite.pick(ROUNDS), suite.pick(STARTS))


def record_reconcile(suite: Suite) -> None:
    time_row, count_row, d = bench_reconcile(suite.scratch / "b15c", suite.pick(THREADS), suite.pick(PASSES))
    suite.rows += [time_row, count_row]
    first = time_row.baseline
    suite.notes.append(
        f"15c/15d: a pass with nothing new took {fmt_seconds(time_row.candidate)} "
        f"({time_row.candidate / first:.2f}{TIMES} the first pass's {fmt_seconds(first)}, which had no ETag "
        f"and read each PR's checks: {d['first_kinds']}; found {d['first_report']['found']}, "
        f"{d['first_report']['outcomes']}); a steady pass asks {d['steady_kinds']}. The same requests "
        f"sent alone by plain httpx: {d['raw_s']:.1f} s ({d['raw_304']} answered 304). One more pass, "
        f"profiled: {d['profile']}."
        + (
            f" The fake GitHub recorded {len(d['violations'])} violations: {d['violations'][:2]}"
            if d["violations"]
            else ""
        )
    )


def run_group(suite: Suite, repos: Repos) -> None:
    small = repos.small.path
    suite.step(
        "15a/15b forge: acknowledgement with feedback; event to agent start",
        lambda: record_feedback(suite, small),
    )
    suite.step("15c/15d forge: reconcile of 1,000 bound threads", lambda: record_reconcile(suite))


GROUP = Group(
    "forge",
    "15a-15d: webhook acknowledgement with feedback handling under 50 concurrent deliveries (p99 ≤ 100 ms, "
    "vs 7d's); a comment's 202 to the agent's start for an idle thread (≤ 1 s, vs POST /v1/runs); the "
    "reconcile of 1,000 bound threads with nothing new (≤ 30 s, ≤ 1 forge request a thread)",
    run_group,
)


if __name__ == "__main__":  # python bench/bench_forge.py [--quick] [ack|reconcile] SOURCE_REPO
    import sys

    from common import markdown_table

    args = [a for a in sys.argv[1:] if a != "--quick"]
    what = args[0] if args and args[0] in ("ack", "reconcile") else "all"
    source = Path(args[-1]) if args and args[-1] not in ("ack", "reconcile") else None
    with tempfile.TemporaryDirectory() as scratch:
        suite = Suite(Path(scratch), quick="--quick" in sys.argv, keep=False)
        if what in ("all", "ack"):
            if source is None:
                raise SystemExit("15a/15b need a source repository: bench_forge.py [ack] SOURCE_REPO")
            record_feedback(suite, source)
        if what in ("all", "reconcile"):
            record_reconcile(suite)
        print(markdown_table(suite.rows))
        print("\n".join(f"- {n}" for n in suite.notes))
