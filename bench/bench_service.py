"""Benchmarks 7a-7e, the ``service`` group: 7a and 7b here (the others in bench_sessions_api.py,
bench_webhooks.py and bench_sweep.py), the service's runs API (``baton serve``) on the fake agent.

The service is ``baton serve`` in its own process on 127.0.0.1, as it is deployed, driven over real
HTTP with httpx from this one (a client in the server's interpreter would compete with the runs for
its GIL).

- 7a: a run submitted over HTTP and waited for through its event stream (``POST /v1/runs``, then
  ``GET /v1/runs/{id}/events`` until the ``outcome`` event) ÷ ``baton.run(..., store=)`` in-process,
  each resuming its own key's conversation, interleaved. Goal ≤ 1.05 times.
- 7b: 200 runs over 20 keys submitted at once (``BATON_CONCURRENCY`` 4): the wall time from the first
  submission to the last run's end, against 10 s (20 runs/s, the goal, as a ratio ≤ 1). Every run
  must succeed, and no two runs of a key may overlap (checked on the jobs' start and end times).
"""

from __future__ import annotations

import functools
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from bench_sessions_api import bench_sessions_api
from bench_sweep import bench_sweep
from bench_webhooks import bench_webhooks
from common import Group, Plan, Repos, Row, Suite, clock, interleave, median, serving

from baton import Mode, RunRequest, Store, load_settings, open_store, run
from baton.models import JobRecord, JobStatus
from baton.testing.fake import register_fake

register_fake()
PROMPT = "X"
GOAL_RATE = 20.0  # runs per second
RUN_REPS = Plan(full=60, quick=10)  # 7a


def outcome_event(http: httpx.Client, run_id: str) -> dict[str, object]:
    """Read the run's event stream until its ``outcome`` event; returns that event's data."""
    with http.stream("GET", f"/v1/runs/{run_id}/events") as response:
        final = False
        for line in response.iter_lines():
            if line == "event: outcome":
                final = True
            elif final and line.startswith("data:"):
                data: dict[str, object] = json.loads(line[5:])
                return data
    raise RuntimeError(f"the event stream of run {run_id} ended without an outcome")


def bench_service_run(root: Path, source: Path, reps: int) -> Row:
    settings = load_settings(overrides={"home": str(root / "baton-home")}, environ={})
    repo = str(source)
    with serving(settings) as http:
        store = open_store(settings.resolved_store_url)

        def over_http(_rep: int) -> float:
            body = {"agent": "fake", "repo": repo, "thread": "bench-http", "prompt": PROMPT}

            def submit_and_wait() -> dict[str, object]:
                run_id = http.post("/v1/runs", json=body).json()["run_id"]
                return outcome_event(http, run_id)

            final, elapsed = clock(submit_and_wait)
            if final.get("outcome") != "succeeded" or (final.get("mode") != Mode.RESUME.value and _rep >= 0):
                raise RuntimeError(f"the run over HTTP: {final.get('outcome')}, {final.get('error')}")
            return elapsed

        def in_process(_rep: int) -> float:
            request = RunRequest(agent="fake", repo=repo, thread="bench-direct", prompt=PROMPT)
            result, elapsed = clock(lambda: run(request, settings=settings, store=store))
            if not result.ok or (result.run.mode != Mode.RESUME and _rep >= 0):
                raise RuntimeError(f"baton.run: {result.run.outcome.value}, {result.run.error}")
            return elapsed

        try:
            over_http(-1)  # the first run of each key is fresh (-1: not checked), not what is measured
            in_process(-1)
            samples = interleave({"http": over_http, "direct": in_process}, reps, warmup=2)
        finally:
            store.close()
    return Row(
        "7a run submitted over HTTP + SSE ÷ baton.run(store=)",
        "ratio",
        median(samples["http"]),
        median(samples["direct"]),
        1.05,
        reps,
        samples={"candidate": samples["http"], "baseline": samples["direct"]},
        agent="fake",
    )


def bench_service_burst(root: Path, source: Path, runs: int = 200, keys: int = 20) -> Row:
    settings = load_settings(overrides={"home": str(root / "baton-home"), "concurrency": 4}, environ={})
    with serving(settings) as http:
        started = time.time()
        ids = [
            http.post(
                "/v1/runs",
                json={"agent": "fake", "repo": str(source), "thread": f"key-{i % keys}", "prompt": f"n{i}"},
            ).json()["run_id"]
            for i in range(runs)
        ]
        submitted = time.time() - started
        store = open_store(settings.resolved_store_url)
        try:
            ended = wait_all(store, ids)
        finally:
            store.close()
    wall = max(j.ended_at or 0 for j in ended) - started  # to the last run's end, not to when we looked
    check_burst(ended)
    budget = runs / GOAL_RATE
    return Row(
        f"7b {runs} runs over {keys} keys at once, concurrency 4: wall ÷ {budget:g} s ({GOAL_RATE:g} runs/s)",
        "ratio",
        wall,
        budget,
        1.0,
        1,
        extra={"runs_per_s": runs / wall, "submit_s": submitted, "runs": runs, "keys": keys},
        agent="fake",
    )


def wait_all(store: Store, ids: list[str], timeout: float = 600) -> list[JobRecord]:
    """The jobs, once none is queued or running; two small queries every 250 ms, so that watching
    takes next to no CPU from the service."""
    deadline = time.monotonic() + timeout
    while store.list_jobs(status=JobStatus.QUEUED, limit=1) or store.list_jobs(
        status=JobStatus.RUNNING, limit=1
    ):
        if time.monotonic() > deadline:
            raise RuntimeError("the runs did not all end in time")
        time.sleep(0.25)
    found = [store.get_job(i) for i in ids]
    return [j for j in found if j is not None]


def check_burst(ended: list[JobRecord]) -> None:
    """All succeeded; per key, in submission order, each run started after the previous one ended."""
    failed = [j for j in ended if j.outcome != "succeeded"]
    if failed:
        raise RuntimeError(f"{len(failed)} runs did not succeed, e.g. {failed[0].outcome}: {failed[0].error}")
    by_key: dict[str, list[JobRecord]] = {}
    for job in ended:
        by_key.setdefault(job.thread, []).append(job)
    for thread, mine in by_key.items():
        for earlier, later in itertools.pairwise(mine):  # in submission order
            if (later.started_at or 0) < (earlier.ended_at or 0):
                raise RuntimeError(f"two runs of {thread} overlapped: {earlier.id} and {later.id}")


def service_note(single: Row | None, burst: Row | None) -> str:
    parts = []
    if single is not None:
        extra = (single.candidate - single.baseline) * 1000
        parts.append(f"7a: the HTTP round trips, the queue and the event stream add {extra:+.1f} ms a run")
    if burst is not None:
        x = burst.extra
        parts.append(
            f"7b: {x['runs_per_s']:.1f} runs/s ({x['runs']} runs, {x['keys']} keys; submitting them all "
            f"took {x['submit_s']:.2f} s), no two runs of a key overlapped"
        )
    return "; ".join(parts) + "."


def run_group(suite: Suite, repos: Repos) -> None:
    small, scratch = repos.small.path, suite.scratch
    suite.step("7a/7b service: run over HTTP / 200 runs at once", lambda: record_runs(suite, small))
    for title, measure in (
        ("7c GET /v1/sessions over 10,000 sessions", lambda: bench_sessions_api(scratch / "b7c")),
        ("7d webhooks: 50 concurrent deliveries", lambda: bench_webhooks(scratch / "b7d", small)),
        ("7e sweeper over 1,000 sessions", lambda: bench_sweep(scratch / "b7e", small)),
    ):
        suite.step(title, functools.partial(record, suite, measure))


def record(suite: Suite, measure: Callable[[], Row]) -> None:
    suite.rows.append(measure())


def record_runs(suite: Suite, small: Path) -> None:
    single = bench_service_run(suite.scratch / "b7a", small, suite.pick(RUN_REPS))
    suite.rows.append(single)
    burst = bench_service_burst(suite.scratch / "b7b", small)
    suite.rows.append(burst)
    suite.notes.append(service_note(single, burst))


GROUP = Group(
    "service",
    "7a-7e: a run over HTTP vs baton.run; 200 runs over 20 keys at once; GET /v1/sessions "
    "over 10,000 sessions; webhook acknowledgement under 50 concurrent deliveries; the sweeper over 1,000 "
    "sessions",
    run_group,
)
