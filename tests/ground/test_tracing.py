"""Tracing (baton.tracing), opt-in: a run's phases as one trace with the right parents, the agent
given its span as TRACEPARENT, a job's run continuing its submitter's trace across the queue, a real
OTLP/HTTP export, and nothing of OpenTelemetry imported while it is off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from baton import RunRequest, run, tracing
from baton.settings import Settings

PHASES = ["run.lease", "run.branch_lease", "run.prepare", "run.attempt"]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.install(None)
        provider.shutdown()


def by_name(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for one in exporter.get_finished_spans():
        found.setdefault(one.name, []).append(one)
    return found


def only(found: dict[str, list[ReadableSpan]], name: str) -> ReadableSpan:
    assert len(found.get(name, [])) == 1, (name, sorted(found))
    return found[name][0]


def parent_of(found: dict[str, list[ReadableSpan]], name: str) -> str:
    child = only(found, name)
    assert child.parent is not None, name
    names = [n for n, ss in found.items() for s in ss if s.context.span_id == child.parent.span_id]
    return names[0] if names else "?"


def test_a_run_is_one_trace_of_its_phases(
    settings: Settings, src_repo: Path, spans: InMemorySpanExporter
) -> None:
    result = run(RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="go"), settings=settings)
    found = by_name(spans)
    assert len({s.context.trace_id for ss in found.values() for s in ss}) == 1, sorted(found)
    assert only(found, "run").parent is None
    for name in PHASES:
        assert parent_of(found, name) == "run", name
    for name in ("run.decide",):
        assert parent_of(found, name) in ("run", "run.attempt"), name
    for name in ("run.agent", "run.snapshot", "run.checkpoint"):
        assert parent_of(found, name) == "run.attempt", name
    for name in ("run.launch", "run.stream"):
        assert parent_of(found, name) == "run.agent", name
    agent = only(found, "run.agent").attributes or {}
    assert agent["gen_ai.usage.input_tokens"] == result.run.usage["input_tokens"] > 0
    assert agent["gen_ai.usage.output_tokens"] == result.run.usage["output_tokens"] > 0
    assert agent["gen_ai.request.model"] == "claude-fake"
    assert agent["gen_ai.provider.name"] == "fake" and agent["gen_ai.operation.name"] == "invoke_agent"
