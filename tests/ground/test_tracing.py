"""Tracing (baton.tracing), opt-in: a run's phases as one trace with the right parents and the GenAI
usage on the agent's span, the agent given that span as TRACEPARENT, a real ``baton run`` exporting its
trace over OTLP/HTTP, nothing of OpenTelemetry imported while it is off, and the install command when
the extra is missing. Across the queue: tests/fleet/test_celery_tracing.py and
tests/forge/test_forge_tracing.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from baton import RunRequest, run, tracing
from baton.errors import BadInput
from baton.settings import Settings
from tests.tracing_fixtures import Receiver, by_name, only, parent_of, spans_fixture  # noqa: F401 (the spans fixture)

PHASES = ["run.lease", "run.branch_lease", "run.prepare", "run.attempt"]


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


def test_the_agent_is_given_its_span_as_traceparent(
    settings: Settings, src_repo: Path, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    said = 'printf \'%s %s\' "$TRACEPARENT" "$COPILOT_TRACEPARENT" > traceparent.txt'
    monkeypatch.setenv("FAKE_AGENT_RUN", said)
    result = run(RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="go"), settings=settings)
    agent = only(by_name(spans), "run.agent").context
    given, copilots = (Path(result.session.worktree) / "traceparent.txt").read_text().split(" ")
    assert given == copilots and tracing.TRACEPARENT.fullmatch(given), given
    assert given.startswith(f"00-{agent.trace_id:032x}-{agent.span_id:016x}-")  # sampled: 01, or 03


def test_off_the_agent_gets_no_traceparent(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACEPARENT", "00-" + "1" * 32 + "-" + "2" * 16 + "-01")  # baton's own: not passed on
    monkeypatch.setenv("FAKE_AGENT_RUN", "printf '%s' \"${TRACEPARENT-unset}\" > traceparent.txt")
    result = run(RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="go"), settings=settings)
    assert (Path(result.session.worktree) / "traceparent.txt").read_text() == "unset"


WATCH = (
    "import sys, atexit\n"
    "atexit.register(lambda: print('otel:', 'opentelemetry' in sys.modules, file=sys.stderr))\n"
    "from baton.cli import main\n"
    "main(sys.argv[1:])\n"
)


def baton_run(src_repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``baton run`` of the fake agent as its own process, saying at exit whether OpenTelemetry was loaded."""
    argv = [sys.executable, "-c", WATCH, "run", "-a", "fake", "-r", str(src_repo), "-t", "t1", "go"]
    return subprocess.run(
        argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def test_off_a_run_never_imports_opentelemetry(src_repo: Path, baton_env: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}  # only BATON_OTEL turns it on
    done = baton_run(src_repo, {**env, **baton_env})
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "otel: False", done.stderr


def test_on_a_run_exports_its_trace_over_otlp_http(src_repo: Path, baton_env: dict[str, str]) -> None:
    with Receiver.serving() as receiver:
        env = {**baton_env, "BATON_OTEL": "on", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        done = baton_run(src_repo, env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "otel: True", done.stderr
    spans = receiver.spans()
    names = {span.name for _, span in spans}
    assert {"run", "run.lease", "run.prepare", "run.attempt", "run.agent", "run.checkpoint"} <= names, names
    assert len({span.trace_id for _, span in spans}) == 1  # the exit flushed the batch: one trace, whole
    services = {a.value.string_value for r, _ in spans for a in r.attributes if a.key == "service.name"}
    assert services == {"baton"}


def test_on_without_the_extra_says_how_to_install_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # as if the otel extra were missing
    with pytest.raises(BadInput, match=r"pip install 'agent-baton\[otel\]'"):
        tracing.configure(settings.with_(otel="on"))
    assert not tracing.on()
    tracing.configure(settings)  # off: nothing to import, nothing said
    assert not tracing.on()


def test_off_spans_cost_nothing_and_carry_nothing() -> None:
    assert not tracing.on()
    with tracing.span("x", {"a": 1}) as inside:
        assert inside is None
        assert tracing.traceparent() is None and tracing.agent_env() == {}
        assert tracing.carry({"prompt": "p"}) == {"prompt": "p"}
    stored = {"prompt": "p", tracing.CARRIED: "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    assert tracing.carried(stored) == ({"prompt": "p"}, stored[tracing.CARRIED])  # a worker with it off
    assert tracing.carried({"prompt": "p", tracing.CARRIED: "00-evil"}) == ({"prompt": "p"}, None)
