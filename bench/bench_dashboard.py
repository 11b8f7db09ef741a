"""8a, 8b: the dashboard's sessions table over 10,000 stored sessions (goal: its first page loads in under a
second), side by side with the JSON API's page of the same sessions.

``baton serve`` runs as its own process on a home of 10,000 session records (benchmark 7c's,
:func:`bench_cli.seed_sessions`). Three variants, interleaved:

- 8a candidate: ``GET /sessions`` (the first page of 50, newest first), server-rendered HTML, signed
  in by the session cookie (from ``POST /login``), over a kept-alive httpx connection;
- 8b candidate: the same page in Chromium (Debian's ``/usr/bin/chromium`` through Playwright, the
  flags of ``tests/browser_fixtures.py``), navigation start to the end of the load event by the
  page's Navigation Timing entry (its stylesheet and script included, from the browser's cache after
  the warm-up, as a person revisiting the page gets them);
- baseline: ``GET /v1/sessions?limit=50`` (the JSON API, a bearer token) on the same server.

Before timing, ``GET /?fresh=1`` (untimed, its duration in the notes) waits for the service's disk
measurement: the sessions page shows each session's size from it, and a page that finds it stale
starts one in a background thread (seconds over 10,000 sessions), which would compete with the timed
requests for the server's GIL.

The rows are ``overhead`` rows like 7c: the "overhead" is the page's absolute median, judged against
one second; the baseline column is the API's median, and the notes give the ratios.
``python bench/bench_dashboard.py [REPS]`` runs just this group.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from bench_cli import seed_sessions
from common import TIMES, Group, Plan, Repos, Row, Suite, baton_serve, interleave, median, rmtree
from playwright.sync_api import Page
from tests.support.browser import chromium

from baton.service.auth import create_token
from baton.service.dashboard.web import COOKIE
from baton.service.records import TokenScope
from baton.settings import load_settings
from baton.store import open_store

REPS = Plan(full=30, quick=5)
GOAL = 1.0  # seconds: the first page loads in under a second
SESSIONS = 10_000
PAGE_ROWS = 50
# Seconds from navigation start to the end of the load event, and to the HTML's last byte.
LOAD_TIME = """() => { const n = performance.getEntriesByType('navigation')[0];
    return n && n.loadEventEnd > 0 ? [(n.loadEventEnd - n.startTime) / 1000,
                                      (n.responseEnd - n.startTime) / 1000] : null }"""


def read_token(home: Path) -> str:
    settings = load_settings(overrides={"home": str(home)}, environ={})
    store = open_store(settings.resolved_store_url)
    try:
        return create_token(store, f"bench-dashboard-{time.monotonic_ns()}", TokenScope.READ)
    finally:
        store.close()


def sign_in(http: httpx.Client, token: str) -> str:
    """``POST /login`` as the form does; the session cookie's value."""
    response = http.post("/login", data={"token": token, "next": "/sessions"})
    cookie = response.cookies.get(COOKIE)
    if response.status_code != 303 or not cookie:
        raise RuntimeError(f"sign-in failed: {response.status_code} {response.text[:200]}")
    return cookie


@contextmanager
def chromium_page(base_url: str, cookie: str) -> Iterator[Page]:
    """A page of a fresh headless Chromium holding the session cookie."""
    with chromium() as browser:
        context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 800})
        context.add_cookies([{"name": COOKIE, "value": cookie, "url": base_url}])
        yield context.new_page()


def measure_disk(http: httpx.Client, cookie: str) -> float:
    """``GET /?fresh=1``: the overview after a new disk measurement; the seconds it took."""
    t0 = time.perf_counter()
    response = http.get("/?fresh=1", headers={"Cookie": f"{COOKIE}={cookie}"})
    elapsed = time.perf_counter() - t0
    if response.status_code != 200 or "data-measured-at" not in response.text:
        raise RuntimeError(f"the overview answered {response.status_code} without a disk measurement")
    return elapsed


class Variants:
    """The three timed requests, each checked (untimed) for a full first page."""

    def __init__(self, http: httpx.Client, page: Page, token: str, cookie: str) -> None:
        self.http, self.page = http, page
        self.api_auth = {"Authorization": f"Bearer {token}"}
        self.cookie = {"Cookie": f"{COOKIE}={cookie}"}
        self.wall: list[float] = []  # 8b from Python: goto() to its return, Playwright's IPC included
        self.html_in: list[float] = []  # 8b: navigation start to the HTML's last byte

    def html(self, _rep: int) -> float:
        t0 = time.perf_counter()
        response = self.http.get("/sessions", headers=self.cookie)
        elapsed = time.perf_counter() - t0
        rows = response.text.count("session-link")
        if response.status_code != 200 or rows < PAGE_ROWS:
            raise RuntimeError(f"/sessions answered {response.status_code} with {rows} session links")
        return elapsed

    def browser(self, _rep: int) -> float:
        t0 = time.perf_counter()
        response = self.page.goto("/sessions", wait_until="load")
        self.wall.append(time.perf_counter() - t0)
        if response is None or response.status != 200 or self.page.url.rstrip("/").endswith("/login"):
            raise RuntimeError(f"Chromium did not get the sessions page: {self.page.url}")
        rows = self.page.locator("table#sessions-table tbody tr").count()
        if rows != PAGE_ROWS:
            raise RuntimeError(f"Chromium shows {rows} rows, not {PAGE_ROWS}")
        self.page.wait_for_function(LOAD_TIME)  # loadEventEnd is set once the load handlers ran
        took: list[float] = self.page.evaluate(LOAD_TIME)
        self.html_in.append(took[1])
        return took[0]

    def api(self, _rep: int) -> float:
        t0 = time.perf_counter()
        response = self.http.get(f"/v1/sessions?limit={PAGE_ROWS}", headers=self.api_auth)
        elapsed = time.perf_counter() - t0
        response.raise_for_status()
        if len(response.json()["sessions"]) != PAGE_ROWS:
            raise RuntimeError("the API's page is not full")
        return elapsed


def bench_dashboard(root: Path, reps: int = 30) -> list[Row]:
    home = root / "home"
    seed_sessions(home, SESSIONS)
    token = read_token(home)
    # TCP_NODELAY as browsers set it (see common.serving)
    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    with (
        baton_serve(home) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, transport=transport) as http,
    ):
        cookie = sign_in(http, token)
        measured = measure_disk(http, cookie)
        with chromium_page(f"http://127.0.0.1:{port}", cookie) as page:
            timed = Variants(http, page, token, cookie)
            samples = interleave({"html": timed.html, "browser": timed.browser, "api": timed.api}, reps, 3)
    base = median(samples["api"])
    rows: list[Row] = []
    for tag, variant, what in (("8a", "html", "HTML over HTTP"), ("8b", "browser", "in Chromium, to load")):
        page_time = median(samples[variant])
        rows.append(
            Row(
                f"{tag} dashboard `/sessions` first page over {SESSIONS:,} sessions, {what}, p50",
                "overhead",
                page_time,
                base,
                GOAL,
                reps,
                overhead=page_time,
                samples={"candidate": samples[variant], "baseline": samples["api"]},
                extra={
                    "disk_measurement_s": measured,
                    **(
                        {"browser_goto_wall_s": timed.wall[3:], "browser_html_s": timed.html_in[3:]}
                        if variant == "browser"
                        else {}
                    ),
                },
            )
        )
    return rows


def dashboard_note(html: Row, browser: Row) -> str:
    wall, html_in = (median(browser.extra[k]) for k in ("browser_goto_wall_s", "browser_html_s"))
    return (
        f"8a/8b: the first page of the sessions table over {SESSIONS:,} sessions takes "
        f"{html.candidate * 1000:.1f} ms as HTML over HTTP ({html.ratio:.2f}{TIMES} the JSON API's page "
        f"of {PAGE_ROWS}, {html.baseline * 1000:.1f} ms) and {browser.candidate * 1000:.0f} ms in "
        f"Chromium from navigation start to the end of the load event ({browser.ratio:.1f}{TIMES}; the "
        f"HTML is in after {html_in * 1000:.0f} ms, the rest is parsing, the cached stylesheet and script, "
        f"layout; {wall * 1000:.0f} ms for Playwright's `goto` seen from Python). Before timing, the "
        f"overview's disk measurement of the {SESSIONS:,} sessions (`/?fresh=1`) took "
        f"{html.extra['disk_measurement_s']:.1f} s."
    )


def run_group(suite: Suite, repos: Repos) -> None:
    suite.step("8a/8b dashboard /sessions over 10,000 sessions", lambda: record(suite))


def record(suite: Suite) -> None:
    found = bench_dashboard(suite.scratch / "b8", suite.pick(REPS))
    suite.rows.extend(found)
    suite.notes.append(dashboard_note(*found))


GROUP = Group(
    "dashboard",
    "8a, 8b: the dashboard's sessions table over 10,000 sessions (HTML over HTTP, in Chromium) "
    "vs GET /v1/sessions",
    run_group,
)


if __name__ == "__main__":
    scratch = Path(tempfile.mkdtemp(prefix="baton-bench-dashboard-"))
    try:
        found = bench_dashboard(scratch, int(sys.argv[1]) if len(sys.argv) > 1 else 30)
        for row in found:
            print(" | ".join(row.cells()))
        print(dashboard_note(*found))
    finally:
        rmtree(scratch)
