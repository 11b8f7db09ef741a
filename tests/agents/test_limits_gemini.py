"""Gemini CLI's usage limits: a spent daily quota (exhausted) told apart from a per-minute one
(transient), from the lines the real CLI 0.61.0 printed against the mock's refusals
(:func:`baton.testing.mock_gemini.quota_exhausted`, :func:`~baton.testing.mock_gemini.rate_limit`),
then the real CLI itself, launched by baton's adapter, refused by the mock.

What was measured (see /tmp/facts_gemini.md, merged into docs/agent-clis.md): one ``result`` line of
``status: "error"`` and exit 173 (429 & 0xFF) in every case; a daily quota is sent once and its
``result`` names no delay (stderr's error dump still shows the API's ``Please retry in 43s.``); a
per-minute quota is retried by the CLI (10 requests over ~4 minutes by default) and its ``result``
says ``Suggested retry after 5s.``; a delay over 300 s makes the CLI call even that terminal.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from baton.agents import Turn, get_agent, limits
from baton.agents.gemini import GeminiAgent
from baton.agents.limits import Limit, LimitKind
from baton.models import Mode, Outcome
from baton.runner.process import RunLog, run_process
from baton.settings import Settings
from baton.testing import mock_gemini
from baton.testing._http import Refusal
from baton.testing.mock_gemini import MockGemini, MockRequest

ADVICE = (
    "\nPlease wait and try again later. To increase your limits, request a quota increase through AI "
    "Studio, or switch to another /auth method"
)
QUOTA_WORDS = (
    "You exceeded your current quota, please check your plan and billing details. For more information "
    "on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n* Quota exceeded for "
    "metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 2, model: "
    "gemini-2.5-pro"
)
SESSION = "5c1ed952-8790-4b24-87c8-64b5f56b7583"
ZERO = {"total_tokens": 0, "input_tokens": 0, "output_tokens": 0, "cached": 0, "input": 0}


def line(obj: dict[str, Any]) -> str:
    """An event as the CLI prints it: compact JSON on one line."""
    return json.dumps(obj, separators=(",", ":"))


def result_error(message: str, at: str) -> str:
    stats = {**ZERO, "duration_ms": 0, "tool_calls": 0, "models": {"gemini-3.1-pro-preview": ZERO}}
    error = {"type": "unknown", "message": message}
    return line({"type": "result", "timestamp": at, "status": "error", "error": error, "stats": stats})


INIT = line({"type": "init", "timestamp": "2026-11-25T12:04:46.224Z", "session_id": SESSION, "model": "pro"})
USER = line({"type": "message", "timestamp": "2026-11-25T12:04:46.227Z", "role": "user", "content": "say hi"})
# quota_exhausted(43) and quota_exhausted(None): the same result line, no delay in it
DAILY = result_error(
    "[API Error: You have exhausted your daily quota on this model.]" + ADVICE, "2026-11-25T12:04:46.289Z"
)
# rate_limit(5) after the CLI's 10 attempts; rate_limit(3600) at once (the same words)
MINUTE = result_error(
    f"[API Error: {QUOTA_WORDS}\nPlease retry in 5s.\nSuggested retry after 5s.]" + ADVICE,
    "2026-11-25T12:08:57.377Z",
)
HOUR = result_error(
    f"[API Error: {QUOTA_WORDS}\nPlease retry in 3600s.\nSuggested retry after 3600s.]" + ADVICE,
    "2026-11-25T12:10:36.181Z",
)
NOISE = [
    "Warning: 256-color support not detected. Using a terminal with at least 256-color support is "
    "recommended for a better visual experience.",
    "Ripgrep is not available. Falling back to GrepTool.",
]
REPORT = (
    "Error when talking to Gemini API Full report available at: "
    "/tmp/gemini-client-error-Turn.run-sendMessageStream-2026-11-25T12-04-46-257Z.json "
)
STACK = [
    "    at classifyGoogleError (file:///work/main/node_modules/@google/gemini-cli/bundle/chunk-JDPZ4CE3.js"
    ":307344:16)",
    "    at async main (file:///work/main/node_modules/@google/gemini-cli/bundle/gemini-3HFX2LNT.js"
    ":17627:5) {",
]


def cause(delay: int | None) -> list[str]:
    """The error dump's ``cause`` (the API's error), as Node prints it."""
    said = (
        "    message: 'You exceeded your current quota, please check your plan and billing details. For "
        "more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\\n' +",
        "      '* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_"
        "requests, limit: 50, model: gemini-2.5-pro" + ("\\n' +" if delay else "',"),
    )
    retry = [f"      'Please retry in {delay}s.',"] if delay else []
    objects = ", ".join(["[Object]"] * (3 if delay else 2))
    return ["  cause: {", "    code: 429,", *said, *retry, f"    details: [ {objects} ]", "  },"]


def daily_stderr(delay: int | None) -> str:
    """stderr of a spent daily quota (quota_exhausted(delay)), as measured."""
    head = REPORT + "TerminalQuotaError: You have exhausted your daily quota on this model."
    tail = ["  retryDelayMs: undefined,", "  reason: undefined,", "  status: 429", "}"]
    return "\n".join([*NOISE, head, *STACK, *cause(delay), *tail]) + "\n"


ATTEMPT = [
    "Attempt 3 failed: You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    "* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, "
    "limit: 2, model: gemini-2.5-pro",
    "Please retry in 5s.",
    "Suggested retry after 5s.. Retrying after 20833ms...",
]
RETRYABLE = (
    REPORT + "RetryableQuotaError: You exceeded your current quota, please check your plan and billing "
    "details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
)


@pytest.fixture
def adapter(tmp_path: Path) -> GeminiAgent:
    return GeminiAgent(tmp_path / "home")


def read(adapter: GeminiAgent, *lines: str) -> Turn:
    turn = Turn()
    for text in lines:
        adapter.read_event(text, turn)
    return turn


def epoch_of(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


# -- the measured lines -----------------------------------------------------------------------------


def pacific_midnight(now: float) -> float:
    return limits.next_midnight(now, "America/Los_Angeles")


def test_a_spent_daily_quota_resets_at_midnight_pacific_whatever_its_delay(adapter: GeminiAgent) -> None:
    turn = read(adapter, INIT, USER, DAILY)
    midnight = pacific_midnight(epoch_of("2026-11-25T12:04:46.289Z"))
    assert midnight == 1795680000.0  # 2026-11-26 00:00 in Los Angeles
    assert turn.limit == Limit(
        LimitKind.EXHAUSTED, midnight, "daily", "You have exhausted your daily quota on this model."
    )
    limit = adapter.usage_limit(173, turn, daily_stderr(43))  # its "retry in 43s" is a retry hint
    assert limit is not None and limit.kind == LimitKind.EXHAUSTED and limit.scope == "daily"
    assert limit.resets_at == midnight
    assert limit.detail == "You have exhausted your daily quota on this model."
    assert adapter.classify(173, turn, daily_stderr(43)) == Outcome.FAILED


def test_a_spent_daily_quota_without_a_delay_resets_at_midnight_pacific(adapter: GeminiAgent) -> None:
    turn = read(adapter, INIT, USER, DAILY)
    limit = adapter.usage_limit(173, turn, daily_stderr(None))
    assert limit is not None and (limit.kind, limit.resets_at, limit.scope) == (
        LimitKind.EXHAUSTED,
        pacific_midnight(epoch_of("2026-11-25T12:04:46.289Z")),
        "daily",
    )


def test_a_per_minute_quota_is_transient_and_resets_after_its_delay(adapter: GeminiAgent) -> None:
    turn = read(adapter, INIT, USER, MINUTE)
    stderr = "\n".join([*NOISE, *ATTEMPT, RETRYABLE, *ATTEMPT[1:3], *STACK])
    limit = adapter.usage_limit(173, turn, stderr)
    assert limit is not None and limit.kind == LimitKind.TRANSIENT
    assert limit.resets_at == epoch_of("2026-11-25T12:08:57.377Z") + 5  # from the result's timestamp
    assert limit.detail.startswith("You exceeded your current quota") and "Please wait" not in limit.detail
    assert adapter.classify(173, turn, stderr) == Outcome.FAILED


def test_a_delay_over_five_minutes_is_a_spent_quota_as_the_cli_says(adapter: GeminiAgent) -> None:
    limit = adapter.usage_limit(173, read(adapter, INIT, USER, HOUR), "")
    assert limit is not None and limit.kind == LimitKind.EXHAUSTED
    assert limit.resets_at == epoch_of("2026-11-25T12:10:36.181Z") + 3600


def test_stderr_alone_tells_the_limit_when_stdout_said_nothing(adapter: GeminiAgent) -> None:
    now = 1_800_000_000.0
    header = REPORT + "TerminalQuotaError: You have exhausted your daily quota on this model."
    assert limits.gemini_stderr(header, now) == Limit(
        LimitKind.EXHAUSTED,
        pacific_midnight(now),
        "daily",
        "You have exhausted your daily quota on this model.",
    )
    transient = limits.gemini_stderr(RETRYABLE, now)
    assert transient is not None and transient.kind == LimitKind.TRANSIENT
    assert [limits.gemini_stderr(text, now) is not None for text in ATTEMPT] == [True] * 4
    delayed = limits.gemini_stderr(ATTEMPT[3], now)
    assert delayed is not None and delayed.resets_at == now + 5  # the API's 5 s, not the CLI's 20833 ms
    assert limits.gemini_stderr("  retryDelayMs: 5000,", now) == Limit(
        LimitKind.TRANSIENT, now + 5, "", "retryDelayMs: 5000,"
    )
    for quiet in [*NOISE, *STACK, "  retryDelayMs: undefined,", "  status: 429", "}"]:
        assert limits.gemini_stderr(quiet, now) is None, quiet
    limit = adapter.usage_limit(173, Turn(is_error=True), daily_stderr(43))
    assert limit is not None and limit.kind == LimitKind.EXHAUSTED and limit.resets_at is not None


def test_a_turn_that_went_through_after_retries_met_no_limit(adapter: GeminiAgent) -> None:
    """rate_limit(2, times=2): two refusals, the third request answered, exit 0 (measured)."""
    reply = line(
        {"type": "message", "timestamp": "2026-11-25T12:07:56.389Z", "role": "assistant", "content": "hi"}
    )
    done = line({"type": "result", "timestamp": "2026-11-25T12:07:56.393Z", "status": "success", "stats": {}})
    turn = read(adapter, INIT, USER, reply, done)
    stderr = "\n".join([*NOISE, *ATTEMPT, *ATTEMPT])
    assert adapter.usage_limit(0, turn, stderr) is None
    assert adapter.classify(0, turn, stderr) == Outcome.SUCCEEDED


def test_a_refused_turn_is_never_a_lost_conversation(adapter: GeminiAgent) -> None:
    """``--resume latest`` warns "No previous sessions found" and starts a new session: refused, it is a
    limit (the model API answered), not a lost conversation."""
    warned = "Error resuming session: No previous sessions found for this project.\n" + daily_stderr(None)
    assert adapter.classify(173, read(adapter, INIT, USER, DAILY), warned) == Outcome.FAILED
    assert adapter.classify(42, Turn(), "Error resuming session: No previous sessions found") == (
        Outcome.SESSION_LOST
    )


GARBLED: list[Any] = [
    {},
    {"type": "result"},
    {"type": "result", "status": "error"},
    {"type": "result", "status": "error", "error": "quota"},
    {"type": "result", "status": "error", "error": ["x"]},
    {"type": "result", "status": "error", "error": {"message": 429}},
    {"type": "result", "status": "error", "error": {"message": None}},
    {"type": "result", "status": "error", "error": {"message": "disk full"}},
    {"type": "result", "status": "success", "error": {"message": "exhausted your daily quota"}},
    {"type": "message", "role": "assistant", "content": "You have exhausted your daily quota"},
    {"type": ["result"], "status": {}, "error": {"message": {}}},
]


@pytest.mark.parametrize("event", GARBLED)
def test_garbled_events_are_no_limit(event: Any) -> None:
    assert limits.gemini_event(event) is None


@pytest.mark.parametrize(
    ("stamp", "message"),
    [
        ("not a time", "Please retry in 5s."),
        (12, "Suggested retry after 5s."),
        ("0001-01-01T00:00:00", "Please retry in 5s."),
        ("2026-11-25T12:08:57.377Z", "Please retry in " + "9" * 400 + "s."),
        ("2026-11-25T12:08:57.377Z", "quota exceeded Please retry in 1.5.5s."),
        (None, "RESOURCE_EXHAUSTED retryDelayMs: 99999999999999999999999"),
    ],
)
def test_garbled_times_and_delays_never_raise(stamp: Any, message: str) -> None:
    event = {"type": "result", "status": "error", "timestamp": stamp, "error": {"message": message}}
    limit = limits.gemini_event(event)
    assert limit is not None
    assert limit.resets_at is None or 1e9 < limit.resets_at < 32503680000


@pytest.mark.parametrize(
    "text", ["", "\x00\xff", "Please retry in s.", "retryDelayMs: ", "é" * 10_000, 42, None]
)
def test_garbled_stderr_never_raises(adapter: GeminiAgent, text: Any) -> None:
    assert limits.gemini_stderr(text) is None
    if isinstance(text, str):
        assert adapter.usage_limit(1, Turn(is_error=True), text) is None


def test_the_mocks_refusals_are_shaped_for_the_clis_two_paths() -> None:
    """What Gemini CLI's classifyGoogleError reads: a quotaId with PerDay is terminal whatever the
    RetryInfo; PerMinute with a RetryInfo is retryable; no "limit: 0" (terminal before anything)."""
    daily = mock_gemini.quota_exhausted(43, times=2)
    error = daily.body["error"]
    assert (daily.status, daily.times, error["code"], error["status"]) == (429, 2, 429, "RESOURCE_EXHAUSTED")
    types = [d["@type"].rsplit(".", 1)[-1] for d in error["details"]]
    assert types == ["QuotaFailure", "Help", "RetryInfo"]
    assert "PerDay" in error["details"][0]["violations"][0]["quotaId"]
    assert error["details"][2]["retryDelay"] == "43s" and error["message"].endswith("Please retry in 43s.")
    bare = mock_gemini.quota_exhausted(None).body
    assert "RetryInfo" not in json.dumps(bare) and "retry in" not in bare["error"]["message"]
    minute = mock_gemini.rate_limit().body["error"]
    assert "PerMinute" in minute["details"][0]["violations"][0]["quotaId"]
    assert minute["details"][2]["retryDelay"] == "5s"
    assert all("limit: 0" not in r.body["error"]["message"] for r in (daily, mock_gemini.rate_limit()))


# -- the real CLI -----------------------------------------------------------------------------------


@dataclass
class Ran:
    exit_code: int
    turn: Turn
    stderr: str
    limit: Limit | None
    outcome: Outcome
    refused_at: list[float]  # when the mock refused each conversation request


class TimedMock(MockGemini):
    """The mock, noting when each request came (to check a reset to the second)."""

    times: dict[int, float]

    def record(self, request: MockRequest) -> int:
        self.__dict__.setdefault("times", {})[id(request)] = time.time()
        return super().record(request)

    def refused_at(self) -> list[float]:
        return [self.times[id(r)] for r in self.conversation()]


@pytest.fixture
def gemini(settings: Settings) -> GeminiAgent:
    agent = get_agent("gemini", settings)  # the CLI missing fails the test (it never skips)
    assert isinstance(agent, GeminiAgent)
    version = agent.version()
    assert version, "the real gemini CLI did not answer --version"
    print(f"real gemini CLI: {version}")
    agent.prepare_home(30)
    return agent


@pytest.fixture
def refusing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TimedMock]:
    (tmp_path / "user-home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))  # no ~/.gemini of this machine's
    monkeypatch.delenv("BATON_GEMINI_MODEL", raising=False)
    monkeypatch.delenv("GEMINI_MODEL", raising=False)
    with TimedMock() as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        yield server


def drive(agent: GeminiAgent, mock: TimedMock, refusal: Refusal | None, tmp: Path) -> Ran:
    """One fresh turn of the real CLI as the runner starts it, the mock giving ``refusal``."""
    mock.refusal = refusal
    launch = agent.launch(Mode.FRESH, "say hi", None)
    turn = Turn()
    (tmp / "work").mkdir(exist_ok=True)

    def on_line(text: str) -> None:
        agent.read_event(text, turn)

    with RunLog(tmp / "log.jsonl") as log:
        result = run_process(
            launch.argv,
            {**os.environ, **launch.env},
            tmp / "work",
            log,
            on_line,
            on_start=lambda pid: None,
            heartbeat=lambda: True,
            heartbeat_every=60,
            timeout=120,
            cancel=threading.Event(),
            kill_grace=1,
            stdin=launch.stdin,
        )
    limit = agent.usage_limit(result.exit_code, turn, result.stderr)
    outcome = agent.classify(result.exit_code, turn, result.stderr)
    return Ran(result.exit_code, turn, result.stderr, limit, outcome, mock.refused_at())


def max_attempts(agent: GeminiAgent, attempts: int) -> None:
    """The CLI's own ``general.maxAttempts`` (1 to 10, default 10: ~4 minutes of retries at 5 s)."""
    path = agent.gemini_dir / "settings.json"
    settings = json.loads(path.read_text())
    settings["general"]["maxAttempts"] = attempts
    path.write_text(json.dumps(settings))


@pytest.mark.slow
def test_real_cli_spent_daily_quota_resets_at_midnight_pacific(
    gemini: GeminiAgent, refusing: TimedMock, tmp_path: Path
) -> None:
    ran = drive(gemini, refusing, mock_gemini.quota_exhausted(43), tmp_path)
    assert ran.exit_code == 173, ran.stderr
    assert len(ran.refused_at) == 1, "a spent daily quota is not retried"
    assert ran.limit is not None and ran.limit.kind == LimitKind.EXHAUSTED and ran.limit.scope == "daily"
    assert ran.limit.resets_at is not None
    assert ran.limit.resets_at == pacific_midnight(ran.refused_at[0]), ran.limit  # not the API's 43 s
    assert ran.outcome == Outcome.FAILED  # which the runner makes rate_limited


@pytest.mark.slow
def test_real_cli_spent_daily_quota_without_a_delay(
    gemini: GeminiAgent, refusing: TimedMock, tmp_path: Path
) -> None:
    ran = drive(gemini, refusing, mock_gemini.quota_exhausted(None), tmp_path)
    assert ran.exit_code == 173 and len(ran.refused_at) == 1
    assert ran.limit == Limit(
        LimitKind.EXHAUSTED,
        pacific_midnight(ran.refused_at[0]),
        "daily",
        "You have exhausted your daily quota on this model.",
    )


@pytest.mark.slow
def test_real_cli_per_minute_quota_is_transient(
    gemini: GeminiAgent, refusing: TimedMock, tmp_path: Path
) -> None:
    max_attempts(gemini, 2)  # the default 10 take ~4 minutes; the lines are the same
    ran = drive(gemini, refusing, mock_gemini.rate_limit(5), tmp_path)
    assert ran.exit_code == 173 and len(ran.refused_at) == 2, ran.stderr
    assert ran.refused_at[1] - ran.refused_at[0] >= 5  # the CLI waited (5 s, its own minimum, + jitter)
    assert ran.limit is not None and ran.limit.kind == LimitKind.TRANSIENT
    assert ran.limit.resets_at is not None
    assert abs(ran.limit.resets_at - (ran.refused_at[-1] + 5)) < 1, ran.limit
    assert ran.outcome == Outcome.FAILED


@pytest.mark.slow
def test_real_cli_long_delay_is_a_spent_quota(
    gemini: GeminiAgent, refusing: TimedMock, tmp_path: Path
) -> None:
    ran = drive(gemini, refusing, mock_gemini.rate_limit(3600), tmp_path)
    assert ran.exit_code == 173 and len(ran.refused_at) == 1, "over 300 s the CLI does not retry"
    assert ran.limit is not None and ran.limit.kind == LimitKind.EXHAUSTED
    assert ran.limit.resets_at is not None
    assert abs(ran.limit.resets_at - (ran.refused_at[0] + 3600)) < 1, ran.limit


@pytest.mark.slow
def test_real_cli_retries_a_per_minute_quota_through(
    gemini: GeminiAgent, refusing: TimedMock, tmp_path: Path
) -> None:
    ran = drive(gemini, refusing, mock_gemini.rate_limit(1, times=1), tmp_path)
    assert ran.exit_code == 0 and len(ran.refused_at) == 2, ran.stderr
    assert ran.limit is None and ran.outcome == Outcome.SUCCEEDED
    assert ran.turn.result and "mock reply #2" in ran.turn.result
