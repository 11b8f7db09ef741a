"""A run submitted over HTTP is one trace (baton.tracing on, spans in memory): ``api.submit`` its root,
the job's wait in the in-process queue and the job under it, the run under the job."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import wait_for
from tests.service_fixtures import Service, service_fixture  # noqa: F401 (the `service` fixture)
from tests.tracing_fixtures import by_name, only, parent_of, spans_fixture  # noqa: F401 (the spans fixture)


def test_a_run_over_http_is_one_trace_from_its_submission(
    service: Service, src_repo: Path, spans: InMemorySpanExporter
) -> None:
    with service.client("run") as http:
        body = {"agent": "fake", "repo": str(src_repo), "thread": "t1", "prompt": "go"}
        run_id = http.post("/v1/runs", json=body).json()["run_id"]
        wait_for(lambda: http.get(f"/v1/runs/{run_id}").json()["status"] == "done", 60)
    wait_for(lambda: "job" in by_name(spans), 10, what="the job's span to end")
    found = by_name(spans)
    assert only(found, "api.submit").parent is None
    assert parent_of(found, "job.queued") == parent_of(found, "job") == "api.submit"
    assert parent_of(found, "run") == "job" and parent_of(found, "run.attempt") == "run"
    assert len({s.context.trace_id for ss in found.values() for s in ss}) == 1
    assert (only(found, "job").attributes or {})["baton.outcome"] == "succeeded"
