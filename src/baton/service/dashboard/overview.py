"""Route: the overview (``/``): the disk card, the counters (with the forge's bound threads, and a link to
each one that needs a human), the forge loop's outcomes per repository and agent, and the usage quotas
spent (each held credential and when it resets), where an admin may clear one whose quota was raised
(``POST /quotas/clear``, a form with the CSRF value, audited). The page never walks the home itself: on
a single machine the disk card shows the service's last disk measurement
(:class:`baton.service.diskcache.DiskCache`, what ``baton du`` prints), refreshed in the background, and
in a fleet the workers' reports (:func:`baton.housekeeping.fleetdisk.fleet_disk`, what ``baton du
--fleet`` prints). Bars are inline SVG drawn here, no chart library. What the card and the counters
show: docs/service.md (Dashboard).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from baton.forge.data.outcomes import outcomes
from baton.forge.data.records import BindingStatus
from baton.forge.data.tables import forge_store
from baton.housekeeping.disk import DiskReport
from baton.housekeeping.fleetdisk import FleetDisk, fleet_disk
from baton.housekeeping.quotas import clear_breaker, quota_views
from baton.models import Outcome, QuotaState, SessionStatus
from baton.service.dashboard.web import Viewer, form_of, page, signed_in, state, with_headers
from baton.service.metrics import resume_result
from baton.service.records import TokenScope
from baton.store.base import QuotaStore, Transactions, ViewStore

router = APIRouter(include_in_schema=False)
FIRST_WAIT = 0.5  # seconds the first page waits for the first measurement (then: "still running")
FRESH_WAIT = 120.0  # seconds ``?fresh=1`` waits for a new one
WAITING_SHOWN = 20  # threads that need a human, linked from the overview
KIND_NAMES = {
    "worktrees": "worktrees",
    "transcripts": "transcripts",
    "snapshots": "snapshots (in the store)",
    "caches": "cache clones",
    "package_caches": "package caches (a repository's threads share them)",
    "homes": "agent homes (besides transcripts)",
    "logs": "run logs",
    "store": "store database",
    "other": "other",
}


@dataclass(frozen=True)
class Bar:
    name: str
    label: str
    bytes: int
    width: float  # percent of the largest in its chart


def bars(values: dict[str, int], labels: dict[str, str] | None = None) -> list[Bar]:
    top = max(values.values(), default=0) or 1
    ordered = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))
    return [Bar(name, (labels or {}).get(name, name), n, round(100 * n / top, 2)) for name, n in ordered]


def disk_view(report: DiskReport) -> dict[str, Any]:
    agents = {
        name: row["worktree"] + row["transcript"] + row["snapshot"]
        for name, row in report.per("agent").items()
    }
    repos = {
        name: row["worktree"] + row["transcript"] + row["snapshot"]
        for name, row in report.per("repo").items()
    }
    return {
        "report": report,
        "agents": bars(agents),
        "repos": bars(repos),
        "kinds": bars(report.kinds(), KIND_NAMES),
        "largest": sorted(report.sessions, key=lambda s: (-s.total, s.key))[:10],
        "used_pct": round(100 * report.total / report.quota, 1) if report.quota else None,
        "rebuildable": sum(s.rebuildable for s in report.sessions),
        "unique": sum(s.unique for s in report.sessions),
    }


_views: list[tuple[DiskReport, dict[str, Any]]] = []  # the last report and its view


def cached_view(report: DiskReport) -> dict[str, Any]:
    """:func:`disk_view` of ``report``, computed once per measurement, not per page: over 100,000
    sessions the card's bars and largest sessions were 0.3 s of every answer (two pages asking at once
    may both compute it; either answer is the same)."""
    last = _views[-1] if _views else None
    if last is not None and last[0] is report:
        return last[1]
    view = disk_view(report)
    _views[:] = [(report, view)]
    return view


def fleet_view(fleet: FleetDisk) -> dict[str, Any]:
    """The card's fleet rows, and bars of the fleet's total by kind, agent and repo."""
    total = fleet.total
    return {
        "fleet": fleet,
        "kinds": bars({k: n for k, n in total.kinds.items() if n}, KIND_NAMES),
        "agents": bars(total.agents),
        "repos": bars(total.repos),
    }


def counters(store: ViewStore) -> dict[str, Any]:
    counts = store.overview_counts(time.time() - 86400)
    outcomes: Counter[str] = Counter()
    resumes: Counter[str] = Counter()
    kept_failing: Counter[str] = Counter()  # resumes that kept their conversation, yet did not succeed
    kept_limited = 0  # ... because the agent's usage quota was spent: a state, not a failure, named apart
    for mode, outcome, hydrated, n in counts["runs"]:
        outcomes[outcome] += n
        result = resume_result(mode, outcome, hydrated)
        if result is not None and outcome != Outcome.RUNNING:
            resumes[result] += n
            if result in ("resumed", "hydrated") and outcome == Outcome.RATE_LIMITED:
                kept_limited += n
            elif result in ("resumed", "hydrated") and outcome != Outcome.SUCCEEDED:
                kept_failing[outcome] += n
    tried = sum(resumes.values())
    kept = resumes["resumed"] + resumes["hydrated"]
    return {
        "sessions": {s.value: counts["sessions"].get(s.value, 0) for s in SessionStatus},
        "runs24": {o.value: outcomes.get(o.value, 0) for o in Outcome},
        "running": counts["running"],
        "queued": counts["queued"],
        "resumes": dict(resumes),
        "resume_tried": tried,
        "resume_kept": kept,
        "resume_rate": None if not tried else round(100 * kept / tried),
        "resume_failures": dict(sorted(kept_failing.items())),
        "resume_limited": kept_limited,
    }


def quota_card(store: QuotaStore, now: float | None = None) -> dict[str, Any]:
    """The usage-quota card: the credentials whose quota is spent (their runs wait) with their reset,
    and how many more are past their reset, waiting for a turn to close them."""
    now = time.time() if now is None else now
    views = quota_views(store, now)
    return {
        "now": now,
        "held": [v for v in views if v.held],
        "passed": sum(1 for v in views if v.record.state == QuotaState.EXHAUSTED and not v.held),
        "known": len(views),
    }


def forge_threads(store: Transactions) -> dict[str, Any] | None:
    """Bound threads by status, the first of those that need a human, and the loop's outcomes per
    repository and agent (:func:`baton.forge.data.outcomes.outcomes`); None: nothing is bound."""
    forge = forge_store(store)
    bound = {status: int(n) for status, n in forge.forge_counts()["bindings"]}
    if not bound:
        return None
    waiting = forge.list_bindings(status=BindingStatus.NEEDS_HUMAN, limit=WAITING_SHOWN)
    return {
        "counts": {s.value: bound.get(s.value, 0) for s in BindingStatus},
        "needs_human": waiting,
        "outcomes": outcomes(store, time.time()),
    }


@router.get("/", response_class=HTMLResponse)
def overview(
    request: Request,
    viewer: Annotated[Viewer, Depends(signed_in)],
    fresh: Annotated[bool, Query(description="measure the disk now")] = False,
    cleared: Annotated[str | None, Query(max_length=300)] = None,
) -> HTMLResponse:
    _settings, store = state(request)
    fleet = fleet_disk(store)
    # The first page (or the first /metrics scrape) starts the first measurement: one taken when the service
    # starts would be reused for a minute though the home changed since. The first page waits at most
    # FIRST_WAIT for it and otherwise says it is still running and since when; ?fresh=1 measures now.
    wait = FRESH_WAIT if fresh else (0.0 if fleet.workers else FIRST_WAIT)  # a fleet: its reports suffice
    report = request.app.state.disk.get(wait=wait, fresh=fresh)
    return page(
        request,
        "overview.html",
        viewer,
        fleet=fleet_view(fleet) if fleet.workers else None,
        disk=None if report is None else cached_view(report),
        measured_at=request.app.state.disk.measured_at,
        measuring_since=request.app.state.disk.started_at,
        counts=counters(store),
        forge=forge_threads(store),
        quotas=quota_card(store),
        cleared=cleared,
    )


@router.post("/quotas/clear")
async def clear_quota(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    """An admin closes a credential's breaker by hand (its quota was raised): audited with the token's
    name, as ``baton quota clear`` and ``POST /v1/quotas/clear`` are; back to the overview, which says
    so."""
    fields = await form_of(request, viewer, TokenScope.ADMIN)
    _settings, store = state(request)
    done = await run_in_threadpool(clear_breaker, store, fields.get("credential", ""), viewer.name)
    target = "/?" + urlencode({"cleared": done.after.record.label}) + "#quotas"
    return with_headers(RedirectResponse(target, status_code=303))
