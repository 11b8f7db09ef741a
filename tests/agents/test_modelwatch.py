"""A model API that cannot be reached is an outcome within seconds: each agent's retry signals
(:mod:`baton.agents.signals`, lines measured on the real CLIs), the watch that ends a turn once baton
cannot connect either (:mod:`baton.runner.modelwatch`), and runs of the fake agent (which reports
retries as Claude Code does) through the whole runner. The real CLIs: tests/agents/test_agents_real.py."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from baton import Mode, Outcome, PromptKind, RunRequest, run
from baton.agents import get_agent, signals
from baton.agents.events import LogRenderer
from baton.agents.signals import Signal, SignalKind
from baton.models import RunRecord
from baton.runner.modelwatch import ModelWatch, reach
from baton.runner.process import RunLog
from baton.settings import Settings
from tests.runner.test_runner import go

CLAUDE_RETRY = {
    "type": "system",
    "subtype": "api_retry",
    "attempt": 3,
    "error_status": None,
    "error": "unknown",
}
CODEX_WAITING = {
    "type": "error",
    "message": "Reconnecting... waiting for network (Connection failed: error sending request)",
}
CODEX_COUNTED = {
    "type": "error",
    "message": "Reconnecting... 2/5 (stream disconnected before completion: Connection refused (os error 111))",  # noqa: E501
}
GEMINI_RETRY = (
    "Attempt 2 failed. Retrying with backoff... Error: exception TypeError: fetch failed sending request"
)


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def open_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# -- the classifiers --------------------------------------------------------------------------------


def test_claudes_retries_without_a_status_are_no_connection() -> None:
    assert signals.claude(CLAUDE_RETRY) == Signal(SignalKind.UNREACHABLE, "connection failed", 3)
    overloaded = {**CLAUDE_RETRY, "error_status": 529, "error": "overloaded_error"}
    assert signals.claude(overloaded) == Signal(SignalKind.RETRYING, "HTTP 529 (overloaded_error)", 3)
    assert signals.claude({"type": "system", "subtype": "init"}) is None
    assert signals.claude({**CLAUDE_RETRY, "attempt": "x"}) == Signal(
        SignalKind.UNREACHABLE, "connection failed"
    )


def test_codex_reconnecting_events() -> None:
    assert signals.codex(CODEX_WAITING) == Signal(
        SignalKind.UNREACHABLE, "Connection failed: error sending request", None
    )
    counted = signals.codex(CODEX_COUNTED)
    assert counted is not None and counted.kind == SignalKind.UNREACHABLE and counted.retry == 2
    server = signals.codex(
        {"type": "error", "message": "Reconnecting... 1/5 (unexpected status 500 Internal)"}
    )
    assert server == Signal(SignalKind.RETRYING, "unexpected status 500 Internal", 1)
    fallback = {
        "type": "item.completed",
        "item": {
            "type": "error",
            "message": "Falling back from WebSockets to HTTPS transport. Connection refused",
        },
    }
    assert signals.codex(fallback) is not None
    assert signals.codex({"type": "error", "message": "Codex is ignoring 2 unrecognized settings"}) is None
    assert signals.codex({"type": "turn.started"}) is None


def test_gemini_retries_on_stderr() -> None:
    assert signals.gemini_stderr(GEMINI_RETRY) == Signal(
        SignalKind.UNREACHABLE, "exception TypeError: fetch failed sending request", 2
    )
    server = signals.gemini_stderr("Attempt 1 failed with status 503. Retrying with backoff...")
    assert server == Signal(SignalKind.RETRYING, "with status 503", 1)
    assert signals.gemini_stderr("    at async retryWithBackoff (file:///x.js:1:2)") is None
    assert signals.gemini_stderr("Ripgrep is not available. Falling back to GrepTool.") is None
    # a per-minute quota it retries (measured on 0.61.0): its words first, the delay on lines of their own
    quota = "Attempt 3 failed: You exceeded your current quota, please check your plan and billing details."
    assert signals.gemini_stderr(quota) == Signal(SignalKind.RETRYING, quota.split(": ", 1)[1], 3)
    assert signals.gemini_stderr("Suggested retry after 5s.. Retrying after 5267ms...") is None


def test_each_adapter_names_its_model_url(settings: Settings) -> None:
    claude, codex, gemini = (get_agent(n, settings) for n in ("claude", "codex", "gemini"))
    assert claude.model_url({}) == "https://api.anthropic.com"
    assert claude.model_url({"ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}) == "http://127.0.0.1:9"
    assert claude.model_url({"CLAUDE_CODE_USE_BEDROCK": "1"}) is None
    assert gemini.model_url({"GOOGLE_GEMINI_BASE_URL": "http://h:1"}) == "http://h:1"
    assert gemini.model_url({"GOOGLE_GENAI_USE_VERTEXAI": "true"}) is None
    assert codex.model_url({}) == "https://api.openai.com/v1"
    assert codex.model_url({"OPENAI_BASE_URL": "http://127.0.0.1:7/v1"}) == "http://127.0.0.1:7/v1"


def test_opencodes_silence_after_its_prompt_is_no_connection_until_the_model_speaks(tmp_path: Path) -> None:
    """OpenCode retries an unreachable provider without a word (~75 s): from its session on, the watch
    counts no connection (its own command list included) until the model's first word; its address is
    the provider its config's model is from."""
    from baton.agents.base import Turn
    from baton.agents.opencode import CONFIG, UNREACHABLE, OpenCodeAgent

    agent = OpenCodeAgent("opencode", tmp_path)
    assert agent.model_url({}) is None  # no config: a provider it finds itself, address unknown
    failed = {"type": "acp.error", "step": "session/prompt", "error": {"message": f"{UNREACHABLE}: x"}}
    turn = Turn()
    agent.on_event(failed, turn)  # what it ends with (~75 s) where baton cannot probe: it says why
    assert "OpenCode reads no OPENAI_BASE_URL; `baton doctor` says what it needs" in turn.errors[-1]
    provider = {"mock": {"options": {"baseURL": "http://127.0.0.1:9/v1"}}, "other": {"options": {}}}
    (tmp_path / CONFIG).parent.mkdir(parents=True)
    (tmp_path / CONFIG).write_text(json.dumps({"provider": provider, "model": "mock/m"}))
    assert agent.model_url({}) == "http://127.0.0.1:9/v1"
    turn = Turn()
    agent.on_event(failed, turn)
    assert turn.errors[-1].endswith("(the model API at http://127.0.0.1:9/v1)")
    waiting = Signal(SignalKind.UNREACHABLE, "no answer yet (OpenCode says nothing while it retries)")
    assert agent.signal({"type": "acp.session", "session_id": "ses_1"}) == waiting
    commands = {"type": "acp.update", "update": {"sessionUpdate": "available_commands_update"}}
    assert agent.signal(commands) == waiting
    for said in ("agent_message_chunk", "agent_thought_chunk", "tool_call"):
        assert agent.signal({"type": "acp.update", "update": {"sessionUpdate": said}}) is None
    assert agent.signal({"type": "acp.result", "stop_reason": "end_turn"}) is None


# -- baton's own connection attempt -----------------------------------------------------------------


def test_reach_says_why_not(closed_port: int, open_port: int) -> None:
    assert reach(f"http://127.0.0.1:{open_port}/v1", {}) is None
    assert reach(f"http://127.0.0.1:{closed_port}", {}) == "connection refused"
    assert "does not resolve" in str(reach("http://no-such-host.invalid", {}))
    proxied = {"HTTPS_PROXY": f"http://127.0.0.1:{closed_port}"}
    assert (
        reach("https://api.example.com", proxied)
        == f"connection refused (through the proxy 127.0.0.1:{closed_port})"
    )
    bypass = {**proxied, "NO_PROXY": "example.com"}
    assert "does not resolve" in str(reach("https://api.example.invalid", {**bypass, "NO_PROXY": "invalid"}))


# -- the watch --------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watch_for(
    settings: Settings, tmp_path: Path, url: str, grace: float = 20.0
) -> tuple[ModelWatch, Clock, list[Any]]:
    clock, published = Clock(), list[Any]()
    log = RunLog(tmp_path / "log.jsonl")
    watch = ModelWatch(get_agent("claude", settings), url, grace, {}, log, published.append, clock)
    return watch, clock, published


def settle(watch: ModelWatch) -> str | None:
    """``stop()`` until its probe has answered."""
    for _ in range(100):
        verdict = watch.stop()
        if verdict is not None or watch._probe is None:
            return verdict
        time.sleep(0.05)
    raise AssertionError("the probe never answered")


def test_the_watch_stops_after_the_grace_when_baton_cannot_connect_either(
    settings: Settings, tmp_path: Path, closed_port: int
) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    watch, clock, published = watch_for(settings, tmp_path, url)
    watch.event({"type": "system", "subtype": "init"})
    watch.event(CLAUDE_RETRY)
    assert published[-1]["text"] == f"waiting for the model at {url}: connection failed, retry 3"
    clock.now += 19.9
    assert watch.stop() is None, "within the grace"
    clock.now += 0.2
    verdict = settle(watch)
    assert verdict is not None and verdict.startswith(
        f"the model API at {url} could not be reached: connection refused"
    )
    watch.log.close()
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [e["type"] for e in logged] == ["baton.model"]


def test_any_other_event_or_an_answering_server_ends_the_streak(
    settings: Settings, tmp_path: Path, closed_port: int
) -> None:
    watch, clock, _ = watch_for(settings, tmp_path, f"http://127.0.0.1:{closed_port}")
    watch.event(CLAUDE_RETRY)
    clock.now += 15
    watch.event({"type": "assistant", "message": {"content": []}})  # the model answered
    clock.now += 10
    assert watch.stop() is None
    watch.event(CLAUDE_RETRY)
    clock.now += 15
    watch.event({**CLAUDE_RETRY, "error_status": 500})  # a server that answers can be reached
    clock.now += 10
    assert watch.stop() is None
    watch.log.close()


def test_the_watch_leaves_an_agent_baton_can_connect_for(
    settings: Settings, tmp_path: Path, open_port: int
) -> None:
    """The agent's trouble is its own (its proxy, its walls): no verdict, another grace begins."""
    watch, clock, _ = watch_for(settings, tmp_path, f"http://127.0.0.1:{open_port}")
    watch.event(CLAUDE_RETRY)
    clock.now += 21
    assert settle(watch) is None
    clock.now += 5
    assert watch.stop() is None, "the next probe waits for another grace"
    watch.log.close()


def test_a_grace_of_zero_or_an_unknown_address_never_stops(settings: Settings, tmp_path: Path) -> None:
    for url, grace in (("http://127.0.0.1:1", 0.0), (None, 20.0)):
        clock, log = Clock(), RunLog(tmp_path / "log.jsonl")
        watch = ModelWatch(get_agent("claude", settings), url, grace, {}, log, None, clock)
        watch.event(CLAUDE_RETRY)
        clock.now += 3600
        assert watch.stop() is None
        log.close()


# -- through the runner (the fake agent reports retries as Claude does) -----------------------------


def test_a_run_whose_model_cannot_be_reached_fails_within_the_grace(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
    monkeypatch.setenv("FAKE_AGENT_RETRIES", "100")  # 30 s of retries, then it would answer
    seen: list[dict[str, Any]] = []
    started = time.monotonic()
    result = go(settings.with_(unreachable_grace=1.0), src_repo, on_event=lambda _r, e: seen.append(e))
    assert time.monotonic() - started < 10
    assert result.run.outcome == Outcome.FAILED
    assert result.run.error and result.run.error.startswith(f"the model API at {url} could not be reached")
    assert any(e.get("type") == "baton.model" and e["url"] == url for e in seen), (
        "live subscribers see retries"
    )
    shown = [e.text for e in LogRenderer("fake").feed(Path(result.run.log_path).read_text().splitlines())]
    assert f"waiting for the model at {url}: connection failed, retry 1" in shown
    assert shown[-1].startswith(f"failed: the model API at {url} could not be reached: connection refused")
    monkeypatch.setenv("FAKE_AGENT_RETRIES", "0")
    after = go(settings, src_repo, "again")
    # the same conversation, told that the instruction it holds unanswered was not answered
    assert after.ok and after.run.prompt_kind == PromptKind.INTERRUPTED
    assert after.session.agent_session_id == result.session.agent_session_id


def test_retries_that_end_in_an_answer_are_not_stopped(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch, open_port: int
) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{open_port}")
    monkeypatch.setenv("FAKE_AGENT_RETRIES", "5")  # 1.5 s of retries, then the answer
    result = go(settings.with_(unreachable_grace=0.5), src_repo)
    assert result.ok, result.run.error


def test_a_timeout_names_the_last_error_and_what_happens_next(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("FAKE_AGENT_RETRIES", "100")
    result = go(settings.with_(unreachable_grace=0.0), src_repo, timeout=1.5)
    assert result.run.outcome == Outcome.TIMED_OUT
    assert result.run.error == (
        "stopped after the 1.5 s run timeout (the agent last reported: connection failed); "
        "the conversation is kept and the next run is told this turn was interrupted"
    )


def test_a_cancel_says_what_happens_next(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_DELAY", "30")
    request = RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="stop me")

    def cancel_when_started(_record: RunRecord) -> None:
        request.cancel.set()

    request.on_start = cancel_when_started
    result = run(request, settings)
    assert result.run.outcome == Outcome.CANCELLED
    assert (
        result.run.error
        == "cancelled; the conversation is kept and the next run is told this turn was interrupted"
    )


def test_baton_runs_status_line_shows_the_retries_and_passes_every_event_on() -> None:
    from baton.cli.run import _model_line

    shown: list[str] = []
    passed: list[dict[str, Any]] = []
    on_event = _model_line(shown.append, lambda _r, e: passed.append(e))
    record = RunRecord("r", "claude", "local/api", "issue-42", 1, Mode.FRESH, PromptKind.FULL, "hi")
    note = {
        "type": "baton.model",
        "text": "waiting for the model at http://127.0.0.1:1: connection failed, retry 3",
    }
    on_event(record, {"type": "assistant"})
    on_event(record, note)
    assert shown == [
        "claude on issue-42: waiting for the model at http://127.0.0.1:1: connection failed, retry 3"
    ]
    assert passed == [{"type": "assistant"}, note]
