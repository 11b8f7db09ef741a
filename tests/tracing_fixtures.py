"""Spans in memory: the ``spans`` fixture traces into an InMemorySpanExporter (baton.tracing on for
the test, off after), and helpers to find spans by name and their parents; spans exported by other
processes: :class:`Receiver`, a collector's OTLP/HTTP endpoint on 127.0.0.1."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span
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


class Receiver:
    """A collector's OTLP/HTTP endpoint: each POST of protobuf spans to ``/v1/traces`` kept, decoded."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.received: list[ExportTraceServiceRequest] = []

    def spans(self) -> list[tuple[Resource, Span]]:
        """Every span received, with the resource (the process) that sent it."""
        return [
            (resource.resource, span)
            for request in list(self.received)
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]

    @classmethod
    @contextlib.contextmanager
    def serving(cls) -> Iterator[Receiver]:
        receiver: Receiver | None = None

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v1/traces" and self.headers["Content-Type"] == "application/x-protobuf":
                    assert receiver is not None
                    receiver.received.append(ExportTraceServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        receiver = cls(f"http://127.0.0.1:{server.server_address[1]}")
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield receiver
        finally:
            server.shutdown()
            server.server_close()
