"""One trace per event, through the forge loop (baton.tracing on, spans in memory): an issue comment's
webhook, acknowledged by a real service, handled, dispatched, its job queued and run in-process by the
fake agent, and the turn published — every span of it in the trace the acknowledgement began."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from baton.testing.fake import register_fake
from baton.testing.fake_forge import FakeForge
from tests.forge_fixtures import (  # noqa: F401 (fixtures)
    REPO,
    fake_fixture,
    forge_kind_fixture,
    forge_service_fixture,
    settled,
)
from tests.service_fixtures import Service
from tests.tracing_fixtures import spans_fixture  # noqa: F401 (the spans fixture)

CHAIN = [
    "webhook.ack",
    "webhook.handle",
    "forge.dispatch",
    "job.queued",
    "job",
    "run",
    "run.agent",
    "run.publish",
]


@pytest.fixture
def agent() -> str:
    register_fake()
    return "fake"


@pytest.fixture
def model() -> Iterator[None]:
    yield None  # the fake agent needs no model


def test_a_comment_is_one_trace_from_its_webhook_to_the_published_turn(
    spans: InMemorySpanExporter, fake: FakeForge, forge_service: Service
) -> None:
    issue = fake.open_issue(REPO, "alice", "Task", "")
    fake.comment(REPO, issue, "alice", "@baton please write the notes")
    settled(forge_service, fake, 1)
    finished = spans.get_finished_spans()
    [job] = [s for s in finished if s.name == "job"]
    trace = [s for s in finished if s.context.trace_id == job.context.trace_id]
    names = {s.name for s in trace}
    assert set(CHAIN) <= names, sorted(names)
    ids = {s.context.span_id: s for s in trace}

    def parent(name: str) -> str:
        [one] = [s for s in trace if s.name == name]
        return ids[one.parent.span_id].name if one.parent and one.parent.span_id in ids else "-"

    assert next(s for s in trace if s.name == "webhook.ack").parent is None  # the trace's root
    assert parent("webhook.handle") == "webhook.ack"  # another thread: handed over
    assert parent("job.queued") == parent("job")  # both under whoever submitted the job
    assert parent("run") == "job" and parent("run.publish") == "job"
    [stored] = forge_service.store.list_jobs(limit=10)
    assert job.attributes is not None and job.attributes["baton.job"] == stored.id
    assert "traceparent" in stored.request  # how the trace crossed the queue
    assert _chained(trace, ids, "run.agent") == ["run.agent", "run.attempt", "run", "job"]


def _chained(trace: list[ReadableSpan], ids: dict[int, ReadableSpan], name: str) -> list[str]:
    [one] = [s for s in trace if s.name == name]
    chain = [one.name]
    while one.parent is not None and one.parent.span_id in ids and chain[-1] != "job":
        one = ids[one.parent.span_id]
        chain.append(one.name)
    return chain
