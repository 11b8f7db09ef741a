"""Spans in memory: the ``spans`` fixture traces into an InMemorySpanExporter (baton.tracing on for
the test, off after), and helpers to find spans by name and their parents."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from baton import tracing


@pytest.fixture(name="spans")
def spans_fixture() -> Iterator[InMemorySpanExporter]:
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
