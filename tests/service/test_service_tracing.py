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


def test_a_callers_traceparent_makes_the_run_part_of_its_trace_and_a_bad_one_is_ignored(
    service: Service, src_repo: Path, spans: InMemorySpanExporter
) -> None:
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    callers = {
        "t1": f"00-{trace_id}-{span_id}-01",
        "t2": "00-" + "Z" * 32 + "-" + "0" * 16 + "-01 --help",  # not one: a trace of baton's own
        "t3": "x" * 4000,
    }
    with service.client("run") as http:
        for thread, header in callers.items():
            body = {"agent": "fake", "repo": str(src_repo), "thread": thread, "prompt": "go"}
            answer = http.post("/v1/runs", json=body, headers={"traceparent": header})
            assert answer.status_code == 202, answer.text
    wait_for(lambda: len(by_name(spans).get("api.submit", [])) == 3, 10, what="three submissions")
    submitted = sorted(by_name(spans)["api.submit"], key=lambda s: s.start_time or 0)
    first = submitted[0]
    assert first.parent is not None and first.parent.span_id == int(span_id, 16)
    assert first.context.trace_id == int(trace_id, 16)
    assert all(s.parent is None and s.context.trace_id != int(trace_id, 16) for s in submitted[1:])
