"""7c: ``GET /v1/sessions`` (a page of 50, the newest) over 10,000 stored sessions, against
``/healthz`` on the same server as the floor. Goal: p50 ≤ 20 ms. ``baton serve`` runs as its
own process; every request is a fresh one on a kept-alive connection."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import httpx
from bench_cli import seed_sessions
from common import Row, serving

from baton.settings import load_settings

GOAL = 0.020
SESSIONS = 10_000


def _timed(http: httpx.Client, path: str) -> float:
    t0 = time.perf_counter()
    response = http.get(path)
    elapsed = time.perf_counter() - t0
    response.raise_for_status()
    return elapsed


def bench_sessions_api(root: Path, reps: int = 200) -> Row:
    home = root / "home"
    seed_sessions(home, SESSIONS)
    settings = load_settings(overrides={"home": str(home)}, environ={})
    with serving(settings) as http:
        for _ in range(10):  # warm-up: connections, statement cache
            _timed(http, "/v1/sessions?limit=50")
        pages, floor = [], []
        for i in range(reps):
            pages.append(_timed(http, f"/v1/sessions?limit=50&offset={(i * 50) % SESSIONS}"))
            floor.append(_timed(http, "/healthz"))
    page, base = statistics.median(pages), statistics.median(floor)
    return Row(
        f"7c `GET /v1/sessions` (page of 50) over {SESSIONS:,} sessions, p50",
        "overhead",
        page,
        base,
        GOAL,
        reps,
        overhead=page,
        samples={"candidate": pages, "baseline": floor},
    )
