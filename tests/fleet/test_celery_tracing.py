"""A job's trace crosses the broker (baton.tracing on): submitted here inside a span, run by a REAL
``baton worker`` process with ``BATON_OTEL=on``, whose spans — exported over OTLP/HTTP to a receiver in
this test — continue the submitter's trace: ``job.queued`` and ``job`` under the submitting span, the
run's phases under ``job``."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from baton import tracing
from baton.fleet import jobs
from baton.fleet.celery import CeleryExecutor
from baton.models import JobStatus
from baton.settings import Settings
from baton.store import Store
from tests.celery_fixtures import (  # noqa: F401 (fixtures)
    Workers,
    broker_fixture,
    client_fixture,
    redis_broker_fixture,
    shared_store_fixture,
    shared_store_url_fixture,
    workers_fixture,
)
from tests.conftest import wait_for
from tests.tracing_fixtures import Receiver, spans_fixture  # noqa: F401 (the spans fixture)


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_worker_continues_the_trace_of_the_job_it_takes(
    client: Settings, shared_store: Store, workers: Workers, src_repo: Path, spans: InMemorySpanExporter
) -> None:
    with Receiver.serving() as receiver:
        env = {
            "BATON_OTEL": "on",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        workers.start("traced", env=env)
        executor = CeleryExecutor(client, shared_store)
        with tracing.span("test.submit"):
            body = {"agent": "fake", "repo": str(src_repo), "thread": "t1", "prompt": "go"}
            job = jobs.submit(shared_store, client, body, "test")
            executor.submit(job.id)
        executor.stop()
        wait_for(lambda: (j := shared_store.get_job(job.id)) is not None and j.status == JobStatus.DONE, 90)
        wait_for(
            lambda: {"job", "run.agent"} <= {s.name for _, s in receiver.spans()},
            30,
            what="the worker's spans",
        )
        exported = receiver.spans()
    [submitted] = spans.get_finished_spans()
    theirs = {s.name: s for _, s in exported}
    assert {s.trace_id for _, s in exported} == {submitted.context.trace_id.to_bytes(16, "big")}
    for name in ("job.queued", "job"):
        assert theirs[name].parent_span_id == submitted.context.span_id.to_bytes(8, "big"), name
    assert theirs["run"].parent_span_id == theirs["job"].span_id
    assert theirs["run.agent"].end_time_unix_nano > theirs["run.agent"].start_time_unix_nano
    stored = shared_store.get_job(job.id)
    assert stored is not None and stored.outcome == "succeeded", stored
