"""Route: ``/metrics`` in the Prometheus text format (no token: scrapers run inside the network). Correct
across processes: nothing is counted in this process's memory. At every scrape a custom collector
(:class:`StoreCollector`) asks the store for GROUP BY counts, so every service process, a restarted one,
and the runs of ``baton run`` on the command line all agree; the disk gauges come from the background
measurement (:class:`baton.service.diskcache.DiskCache`, shared with the dashboard) and the workers'
reports. No label carries a session id or a thread: their number is unbounded; the forge loop's outcomes
(:func:`outcome_metrics`) carry the repository and the agent, as many as the operator configured (a
thread is bound only on a configured repository). Every metric and what it counts: docs/service.md
(Metrics).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from baton.forge.data.outcomes import RepoOutcomes, Spread, outcomes
from baton.forge.data.records import BindingStatus, DeliveryStatus
from baton.forge.data.tables import delivery_store, forge_store
from baton.housekeeping.disk import DiskReport
from baton.housekeeping.fleetdisk import FleetDisk, WorkerDisk, fleet_disk
from baton.models import JobStatus, Mode, Outcome, QuotaRecord, QuotaState, SessionStatus
from baton.service.diskcache import DiskCache
from baton.sessions.tables import strike_store
from baton.store.base import QuotaStore, Transactions, ViewStore, WorkerStore

BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
DISK_FIRST_WAIT = 2.0  # the first scrape waits this long for the first measurement
router = APIRouter(tags=["metrics"])


def resume_result(mode: str, outcome: str, hydrated: bool) -> str | None:
    """How a run continued its conversation, or None for a run that did not try to."""
    if outcome == Outcome.SESSION_LOST:
        return "lost"
    if mode == Mode.RECOVER:
        return "recovered"
    if mode == Mode.RESUME:
        return "hydrated" if hydrated else "resumed"
    return None


def run_metrics(rows: list[tuple[Any, ...]]) -> Iterator[Metric]:
    runs = CounterMetricFamily("baton_runs", "Ended runs (attempts)", labels=["agent", "mode", "outcome"])
    resumes = CounterMetricFamily(
        "baton_resumes", "How runs continued their conversation", labels=["agent", "result"]
    )
    # rows are split by "hydrated" too: sum them per label set, each label set once
    by_run: dict[tuple[str, str, str], int] = defaultdict(int)
    resumed: dict[tuple[str, str], int] = defaultdict(int)
    for agent, mode, outcome, hydrated, n, *_durations in rows:
        by_run[agent, mode, outcome] += n
        if (result := resume_result(mode, outcome, bool(hydrated))) is not None:
            resumed[agent, result] += n
    for labels, n in sorted(by_run.items()):
        runs.add_metric(list(labels), n)
    for pair, n in sorted(resumed.items()):
        resumes.add_metric(list(pair), n)
    yield runs
    yield resumes


def duration_metric(rows: list[tuple[Any, ...]]) -> Metric:
    """The histogram per agent, summed over the runs rows (grouped finer, by mode and outcome)."""
    histogram = HistogramMetricFamily(
        "baton_run_duration_seconds", "Durations of ended runs", labels=["agent"]
    )
    per_agent: dict[str, list[float]] = {}
    for agent, _mode, _outcome, _hydrated, _n, *numbers in rows:
        sums = per_agent.setdefault(agent, [0.0] * len(numbers))
        for i, number in enumerate(numbers):
            sums[i] += number or 0
    for agent, (count, total, *below) in sorted(per_agent.items()):
        buckets = [(str(b), int(n)) for b, n in zip(BUCKETS, below, strict=True)]
        histogram.add_metric([agent], [*buckets, ("+Inf", int(count))], sum_value=total)
    return histogram


def session_metric(rows: list[tuple[Any, ...]]) -> Metric:
    """Every status of every agent that has sessions, zeros included (a dashboard's lines stay put)."""
    gauge = GaugeMetricFamily("baton_sessions", "Sessions by status", labels=["agent", "status"])
    counts = {(agent, status): n for agent, status, n in rows}
    for agent in sorted({agent for agent, _status in counts}):
        for status in SessionStatus:
            gauge.add_metric([agent, status.value], counts.get((agent, status.value), 0))
    return gauge


def waiting_metrics(rows: list[tuple[Any, ...]], now: float) -> Iterator[Metric]:
    """Threads whose agent asked a person (``needs_input``), and how long the oldest has waited."""
    waiting = GaugeMetricFamily(
        "baton_threads_waiting_for_input", "Threads whose agent asked a person, waiting", labels=["agent"]
    )
    oldest = GaugeMetricFamily(
        "baton_threads_waiting_for_input_oldest_seconds",
        "How long the longest-waiting thread has waited for an answer",
        labels=["agent"],
    )
    for agent, n, since in sorted(rows):
        waiting.add_metric([agent], n)
        oldest.add_metric([agent], max(0.0, now - float(since or now)))
    yield waiting
    yield oldest


def delivery_metrics(rows: list[tuple[Any, ...]]) -> Iterator[Metric]:
    done = CounterMetricFamily(
        "baton_webhook_deliveries", "Finished webhook deliveries", labels=["forge", "event", "result"]
    )
    pending = 0
    for forge, event, status, n in rows:
        if status == DeliveryStatus.PENDING:
            pending += n
        else:
            done.add_metric([forge, event, status], n)
    yield done
    yield GaugeMetricFamily("baton_webhook_deliveries_pending", "Deliveries whose work runs", value=pending)


def by_kind(report: DiskReport | None) -> dict[str, int]:
    """The disk gauges: the home's total, the volume's free space, and bytes by kind (views: the
    homes hold the transcripts, the store holds the snapshots)."""
    if report is None:
        return {}
    return {
        "total": report.total,
        "free": report.free,
        "worktree": sum(s.worktree for s in report.sessions),
        "transcript": sum(s.transcript for s in report.sessions),
        "snapshot": sum(s.snapshot for s in report.sessions),
        "cache": sum(report.caches.values()),
        "home": sum(report.homes.values()),
        "store": report.store,
    }


def forge_metrics(counts: dict[str, list[tuple[Any, ...]]], turns: dict[str, Any]) -> Iterator[Metric]:
    """The forge loop's events, threads, turns and refusals (every thread status, zeros included)."""
    events = CounterMetricFamily(
        "baton_forge_events", "Stored forge feedback events by kind and status", labels=["kind", "status"]
    )
    for kind, status, n in counts["events"]:
        events.add_metric([kind, status], n)
    yield events
    threads = GaugeMetricFamily("baton_forge_threads", "Bound threads by status", labels=["status"])
    bound = {status: n for status, n in counts["bindings"]}
    for status in BindingStatus:
        threads.add_metric([status.value], bound.get(status.value, 0))
    yield threads
    yield GaugeMetricFamily(
        "baton_forge_needs_human",
        "Bound threads waiting for a person (a budget spent, a failure back unchanged)",
        value=bound.get(BindingStatus.NEEDS_HUMAN.value, 0),
    )
    done = CounterMetricFamily(
        "baton_forge_turns", "Feedback turns by kind and outcome", labels=["kind", "outcome"]
    )
    for kind, outcome, n in turns["turns"]:
        done.add_metric([kind, outcome], n)
    yield done
    yield CounterMetricFamily(
        "baton_forge_refused", "Forge triggers the trust policy refused", value=turns["refused"]
    )


OUTCOME_LABELS = ["forge", "repo", "agent"]
OUTCOME_COUNTS: tuple[tuple[str, str, Callable[[RepoOutcomes], int]], ...] = (  # name, help, count
    ("baton_forge_threads_started", "Threads bound to an issue or PR", lambda o: o.threads),
    ("baton_forge_prs_opened", "Pull requests baton opened for an issue's thread", lambda o: o.prs_opened),
    ("baton_forge_prs_merged", "Pull requests baton opened that were merged", lambda o: o.prs_merged),
    (
        "baton_forge_prs_closed_unmerged",
        "Pull requests baton opened that were closed without a merge",
        lambda o: o.prs_closed,
    ),
    ("baton_forge_feedback_accepted", "Feedback events accepted (not dropped)", lambda o: o.accepted),
    (
        "baton_forge_feedback_answered",
        "Accepted feedback events whose turn pushed, posted an answer or asked a question",
        lambda o: o.answered,
    ),
)
OUTCOME_SPREADS: tuple[tuple[str, str, Callable[[RepoOutcomes], Spread]], ...] = (
    ("baton_forge_rounds_to_green", "Feedback turns until a merged PR's last push", lambda o: o.rounds),
    (
        "baton_forge_first_push_seconds",
        "From a thread's binding (the mention) to its first push",
        lambda o: o.first_push,
    ),
    ("baton_forge_ci_fix_seconds", "From a CI failure to the push that fixed it", lambda o: o.ci_fix),
    ("baton_forge_waiting_seconds", "How long each thread in needs_human has waited", lambda o: o.waiting),
)


def outcome_metrics(rows: list[RepoOutcomes]) -> Iterator[Metric]:
    """The forge loop's outcomes per forge, repository and agent (:mod:`baton.forge.data.outcomes`): counts,
    and distributions as summaries (median and 90th percentile, sum, count)."""
    for name, text, count in OUTCOME_COUNTS:
        counter = CounterMetricFamily(name, text, labels=OUTCOME_LABELS)
        for row in rows:
            counter.add_metric([row.forge, row.repo, row.agent], count(row))
        yield counter
    for name, text, spread in OUTCOME_SPREADS:
        yield _summary(name, text, [((r.forge, r.repo, r.agent), spread(r)) for r in rows])
    longest = GaugeMetricFamily(
        "baton_forge_waiting_longest_seconds",
        "The longest wait of a thread in needs_human now (0: none waits)",
        labels=OUTCOME_LABELS,
    )
    for row in rows:
        longest.add_metric([row.forge, row.repo, row.agent], row.waiting.max or 0.0)
    yield longest


def _summary(name: str, text: str, spreads: list[tuple[tuple[str, str, str], Spread]]) -> Metric:
    """A summary of precomputed spreads: quantiles only where there is a value."""
    summary = Metric(name, text, "summary")
    for (forge, repo, agent), spread in spreads:
        labels = {"forge": forge, "repo": repo, "agent": agent}
        for quantile, value in (("0.5", spread.median), ("0.9", spread.p90)):
            if value is not None:
                summary.add_sample(name, {**labels, "quantile": quantile}, value)
        summary.add_sample(f"{name}_sum", labels, spread.total)
        summary.add_sample(f"{name}_count", labels, spread.count)
    return summary


def quota_metrics(records: list[QuotaRecord], now: float) -> Iterator[Metric]:
    """Whether each credential's breaker holds now, and when the exhausted ones reset."""
    held = GaugeMetricFamily(
        "baton_quota_held",
        "1 while a credential's usage quota is spent and its runs wait, else 0",
        labels=["agent", "credential_label"],
    )
    resets = GaugeMetricFamily(
        "baton_quota_resets_at_seconds",
        "When a spent usage quota resets (Unix time)",
        labels=["agent", "credential_label"],
    )
    for record in records:
        labels = [record.agent, record.label]
        held.add_metric(labels, 1 if record.held(now) else 0)
        if record.state == QuotaState.EXHAUSTED and record.resets_at is not None:
            resets.add_metric(labels, record.resets_at)
    yield held
    yield resets


class MetricsStore(ViewStore, WorkerStore, QuotaStore, Transactions, Protocol):
    """What a scrape reads: the counts, the workers' disk reports, the forge loop's counts and the
    usage-quota breakers."""


class StoreCollector(Collector):
    """Everything from the store (and the disk cache) at collect time. A scrape costs three aggregate
    queries (:meth:`baton.store.base.Store.metrics_counts`: one scan of the runs, one of the sessions,
    the jobs'), the forge's deliveries' one (:meth:`~baton.forge.data.tables.DeliveryStore.delivery_counts`),
    the forge loop's four (:meth:`~baton.forge.data.tables.ForgeStore.forge_counts`,
    :meth:`~baton.forge.data.tables.ForgeStore.forge_turn_counts`; ``baton_forge_refused_total`` counts the
    audit log's ``forge.refused`` rows, a scan of the audit table, which has no index on its action),
    the forge outcomes' four (:func:`baton.forge.data.outcomes.outcomes`: a row per bound thread, per turn
    and per CI failure), the quota breakers' one (one store read of ``quotas``) and the quarantined
    conversations' one (``session_strikes``). Counters are counts of stored rows: a reset that deletes
    a key's runs lowers them, which Prometheus treats as a counter reset."""

    def __init__(self, store: MetricsStore, disk: DiskCache) -> None:
        self.store, self.disk = store, disk

    def collect(self) -> Iterable[Metric]:
        counts = self.store.metrics_counts(BUCKETS)
        yield from run_metrics(counts["runs"])
        yield duration_metric(counts["runs"])
        yield session_metric(counts["sessions"])
        yield from waiting_metrics(counts["waiting"], time.time())
        yield from delivery_metrics(delivery_store(self.store).delivery_counts())
        queued = sum(n for status, n in counts["jobs"] if status == JobStatus.QUEUED)
        yield GaugeMetricFamily("baton_queue_depth", "Submitted runs waiting to start", value=queued)
        forge = forge_store(self.store)
        yield from forge_metrics(forge.forge_counts(), forge.forge_turn_counts())
        yield from outcome_metrics(outcomes(self.store, time.time()))
        yield from quota_metrics(self.store.list_quotas(), time.time())
        yield quarantine_metric(strike_store(self.store).quarantined_by_agent())
        yield from disk_metrics(by_kind(self.disk.get(wait=DISK_FIRST_WAIT)), fleet_disk(self.store))


def quarantine_metric(by_agent: dict[str, int]) -> Metric:
    """Conversations never resumed again: their resume failed at once twice in a row."""
    gauge = GaugeMetricFamily(
        "baton_sessions_quarantined",
        "Conversations quarantined: their resume failed at once twice in a row",
        labels=["agent"],
    )
    for agent, n in sorted(by_agent.items()):
        gauge.add_metric([agent], n)
    return gauge


def disk_metrics(local: dict[str, int], fleet: FleetDisk) -> Iterator[Metric]:
    """This service's own home (worker ``""``) and each worker's fresh report, by kind."""
    disk = GaugeMetricFamily("baton_disk_bytes", "Disk use by worker and kind", labels=["worker", "kind"])
    at = GaugeMetricFamily(
        "baton_disk_report_timestamp_seconds", "When each worker last reported its disk", labels=["worker"]
    )
    for kind, n in sorted(local.items()):
        disk.add_metric(["", kind], n)
    for worker in fleet.workers:
        if worker.reported_at is not None:
            at.add_metric([worker.name], worker.reported_at)
        if not worker.stale:
            for kind, n in sorted(worker_kinds(worker).items()):
                disk.add_metric([worker.name, kind], n)
    yield disk
    yield at


def worker_kinds(worker: WorkerDisk) -> dict[str, int]:
    """A worker's report under the kinds of :func:`by_kind` (``home`` holds the transcripts)."""
    kinds = worker.kinds
    return {
        "total": worker.used,
        "free": worker.free or 0,
        "worktree": kinds["worktrees"],
        "transcript": kinds["transcripts"],
        "cache": kinds["caches"],
        "home": kinds["homes"] + kinds["transcripts"],
        "log": kinds["logs"],
        "store": kinds["store"],
        "other": kinds["other"],
    }


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format), counted from the store",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(request.app.state.store, request.app.state.disk))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
