"""Codex CLI's usage limits (:func:`baton.agents.limits.codex_event`, :meth:`CodexAgent.usage_limit`).

The unit tests read the exact lines Codex 0.169.0 printed against the mock's refusals
(:func:`baton.testing.mock_openai.usage_limit` and :func:`~baton.testing.mock_openai.rate_limit`); the
real-CLI tests (marked ``slow``, as in tests/agents/test_agents_real.py) run the real ``codex`` as baton's
adapter launches it, read its stdout with ``read_event`` and ask ``usage_limit``: an exhausted quota
with its reset to the second, a transient 429, a retried one that passes.
"""

from __future__ import annotations

import calendar
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

from baton.agents import get_agent
from baton.agents.base import Turn
from baton.agents.codex import CodexAgent, last_rate_limits, merge_toml
from baton.agents.limits import Limit, LimitKind, codex_event, codex_rate_limits, codex_reset
from baton.models import Mode, Outcome
from baton.runner.process import RunLog, run_process
from baton.settings import Settings
from baton.testing import mock_openai
from baton.testing.mock_openai import MockOpenAI

# -- what Codex 0.169.0 printed (measured 2026-11-25; the machine's zone UTC unless said) -------------

PLUS = (
    "You\u2019ve hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit "
    "https://chatgpt.com/settings/usage to purchase more credits or try again at 2:04 PM."
)
PLUS_OTHER_DAY = PLUS.replace("2:04 PM", "Nov 27th, 2026 12:15 PM")
PRO_OTHER_DAY = (
    "You\u2019ve hit your usage limit. Visit https://chatgpt.com/settings/usage to purchase more credits "
    "or try again at Nov 28th, 2026 12:05 PM."
)
NO_PLAN = "You\u2019ve hit your usage limit. Try again at 1:35 PM."
TEAM = (
    "You\u2019ve hit your usage limit. To get more access now, send a request to your admin or try again "
    "at 1:35 PM."
)
# No resets_at in the body (nor with only resets_in_seconds, which 0.169 does not read): no time said.
LATER = PLUS.replace("try again at 2:04 PM.", "try again later.")
NEW_YORK = PLUS.replace("2:04 PM", "9:05 AM")  # TZ=America/New_York, reset 14:05:34 UTC
QUOTA = "Quota exceeded. Check your plan and billing details."  # 429 insufficient_quota
NOT_INCLUDED = "To use Codex with your ChatGPT plan, upgrade to Plus: https://chatgpt.com/explore/plus."
RETRY_LIMIT = "exceeded retry limit, last status: 429 Too Many Requests"  # also a garbled 429 body
RECONNECTING = f"Reconnecting... 1/5 ({RETRY_LIMIT})"  # a retry after the 429's retry-after


def error(message: Any) -> dict[str, Any]:
    return {"type": "error", "message": message}


def failed(message: Any) -> dict[str, Any]:
    return {"type": "turn.failed", "error": {"message": message}}


def rollout_rate_limits(primary: Any, secondary: Any) -> dict[str, Any]:
    """A rollout's ``rate_limits`` as Codex 0.169.0 wrote it from the mock's ``x-codex-*`` headers."""
    return {
        "limit_id": "codex",
        "limit_name": None,
        "primary": primary,
        "secondary": secondary,
        "credits": None,
        "individual_limit": None,
        "spend_control_reached": None,
        "plan_type": None,
        "rate_limit_reached_type": None,
    }


SPENT_FIVE_HOUR = rollout_rate_limits(
    {"used_percent": 100.0, "window_minutes": 300, "resets_at": 1795615479},
    {"used_percent": 60.0, "window_minutes": 10080, "resets_at": 1795701879},
)
SPENT_WEEK = rollout_rate_limits(
    {"used_percent": 40.0, "window_minutes": 300, "resets_at": 1795611932},
    {"used_percent": 100.0, "window_minutes": 10080, "resets_at": 1795867532},
)
NO_HEADERS = rollout_rate_limits(None, None)
HEALTHY = rollout_rate_limits(
    {"used_percent": 12.5, "window_minutes": 300, "resets_at": 1795611935},
    {"used_percent": 30.0, "window_minutes": 10080, "resets_at": 1795867535},
)


@pytest.fixture
def zone() -> Iterator[Any]:
    """Set this process's local zone (``TZ``) for a test, as the Codex it starts inherits it."""
    before = os.environ.get("TZ")

    def use(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    yield use
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def local(year: int, month: int, day: int, hour: int, minute: int) -> float:
    return datetime(year, month, day, hour, minute).timestamp()


# -- the stream's words -------------------------------------------------------------------------------


@pytest.mark.parametrize("event", [error(PLUS), failed(PLUS)])
def test_a_spent_plan_limit_is_exhausted_with_its_reset_at_the_end_of_the_minute_said(
    event: dict[str, Any], zone: Any
) -> None:
    zone("UTC")
    limit = codex_event(event)
    assert limit is not None and limit.kind == LimitKind.EXHAUSTED
    today = datetime.now()
    assert limit.resets_at == local(today.year, today.month, today.day, 14, 4) + 60
    assert limit.detail == PLUS


def test_the_reset_is_read_in_the_local_time_codex_printed_it_in(zone: Any) -> None:
    zone("America/New_York")
    now = calendar.timegm((2026, 11, 25, 12, 5, 34))  # 7:05:34 AM in New York
    # 9:05 AM EST is 14:05 UTC; the end of that minute
    assert codex_reset(NEW_YORK, now) == calendar.timegm((2026, 11, 25, 14, 6, 0))


@pytest.mark.parametrize(
    ("message", "fields"),
    [
        (PLUS_OTHER_DAY, (2026, 11, 27, 12, 15)),
        (PRO_OTHER_DAY, (2026, 11, 28, 12, 5)),
        (PLUS.replace("2:04 PM", "Jan 1st, 2027 12:30 AM"), (2027, 1, 1, 0, 30)),
        (PLUS.replace("2:04 PM", "Dec 22nd, 2026 12:00 PM"), (2026, 12, 22, 12, 0)),
    ],
)
def test_a_reset_on_another_day_carries_its_date(message: str, fields: tuple[int, ...], zone: Any) -> None:
    zone("UTC")
    limit = codex_event(error(message))
    assert limit is not None and limit.kind == LimitKind.EXHAUSTED
    assert limit.resets_at == local(*fields) + 60


@pytest.mark.parametrize("message", [NO_PLAN, TEAM])
def test_every_plan_s_words_are_a_spent_limit(message: str, zone: Any) -> None:
    zone("UTC")
    limit = codex_event(failed(message))
    assert limit is not None and limit.kind == LimitKind.EXHAUSTED
    today = datetime.now()
    assert limit.resets_at == local(today.year, today.month, today.day, 13, 35) + 60


@pytest.mark.parametrize("message", [LATER, QUOTA])
def test_a_spent_limit_without_a_time_has_no_reset(message: str) -> None:
    """No ``resets_at`` in the body, or only ``resets_in_seconds`` (which Codex 0.169 ignores), or an
    API key out of quota: exhausted, reset unknown (the caller's documented default applies)."""
    assert codex_event(error(message)) == Limit(LimitKind.EXHAUSTED, None, "", message)


def test_a_429_codex_gave_up_on_is_transient_and_its_retries_are_no_limit() -> None:
    assert codex_event(error(RETRY_LIMIT)) == Limit(LimitKind.TRANSIENT, None, "", RETRY_LIMIT)
    assert codex_event(failed(RETRY_LIMIT)) == Limit(LimitKind.TRANSIENT, None, "", RETRY_LIMIT)
    assert codex_event(error(RECONNECTING)) is None


@pytest.mark.parametrize(
    "event",
    [
        error(NOT_INCLUDED),  # usage_not_included never resets: a failure
        error("unexpected status 500 Internal Server Error: mock failure"),
        {"type": "item.completed", "item": {"type": "agent_message", "text": PLUS}},  # the model's words
        {"type": "turn.completed", "usage": {"input_tokens": 400}},
        {"type": "thread.started", "thread_id": "01a21297-fa85-7040-8955-d05754068290"},
    ],
)
def test_other_events_are_no_limit(event: dict[str, Any]) -> None:
    assert codex_event(event) is None


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"type": None},
        {"type": "error"},
        error(None),
        error(42),
        error(["You've hit your usage limit"]),
        {"type": "turn.failed"},
        {"type": "turn.failed", "error": None},
        {"type": "turn.failed", "error": "You've hit your usage limit. Try again at 99:99 PM."},
        {"type": "turn.failed", "error": {"message": {"nested": True}}},
        {"type": "turn.failed", "error": [1, 2]},
        error("You've hit your usage limit. Try again at 13:30 PM."),
        error("You've hit your usage limit. Try again at 0:30 AM."),
        error("You've hit your usage limit. Try again at Feb 30th, 2027 1:00 PM."),
        error("You've hit your usage limit. Try again at Foo 3rd, 2027 1:00 PM."),
        error("You've hit your usage limit. Try again at Jan 3rd, 99999 1:00 PM."),
        error("You've hit your usage limit. Try again at Jan 3rd, 1970 1:00 PM."),
        error("You've hit your usage limit. Try again at Jan 99th, 2027 1:00 PM."),
        error("x" * 100_000 + " last status: 429"),
    ],
)
def test_garbled_or_missing_fields_never_raise(event: dict[str, Any]) -> None:
    limit = codex_event(event)
    assert limit is None or limit.resets_at is None or limit.resets_at > 1e9
    if limit is not None:
        assert len(limit.detail) <= 300


def test_garbled_times_give_no_reset_but_still_a_spent_limit() -> None:
    for when in ("13:30 PM", "0:30 AM", "Feb 30th, 2027 1:00 PM", "Jan 3rd, 1970 1:00 PM"):
        limit = codex_event(error(f"You've hit your usage limit. Try again at {when}."))
        assert limit is not None and limit.kind == LimitKind.EXHAUSTED and limit.resets_at is None, when


# -- the rollout's rate_limits --------------------------------------------------------------------------


def test_the_spent_window_of_the_rollout_gives_the_reset_to_the_second() -> None:
    assert codex_rate_limits(SPENT_FIVE_HOUR) == Limit(
        LimitKind.EXHAUSTED, 1795615479.0, "five_hour", "rate_limits: the five_hour window at 100%"
    )
    week = codex_rate_limits(SPENT_WEEK)
    assert week is not None and (week.resets_at, week.scope) == (1795867532.0, "seven_day")


def test_both_windows_spent_wait_for_the_later_reset() -> None:
    both = rollout_rate_limits(
        {"used_percent": 100.0, "window_minutes": 300, "resets_at": 1795615479},
        {"used_percent": 100.0, "window_minutes": 10080, "resets_at": 1795701879},
    )
    limit = codex_rate_limits(both)
    assert limit is not None and (limit.resets_at, limit.scope) == (1795701879.0, "seven_day")


@pytest.mark.parametrize(
    "rate_limits",
    [
        NO_HEADERS,
        HEALTHY,
        None,
        [],
        "100",
        {"primary": "spent"},
        {"primary": {"used_percent": "100"}},
        {"primary": {"used_percent": True}},
        {"primary": {"used_percent": float("nan")}},
        {"primary": [100]},
    ],
)
def test_no_spent_window_is_no_limit(rate_limits: Any) -> None:
    assert codex_rate_limits(rate_limits) is None


@pytest.mark.parametrize(
    "window",
    [
        {"used_percent": 100},
        {"used_percent": 100.0, "resets_at": "soon", "window_minutes": "300"},
        {"used_percent": float("inf"), "resets_at": -5, "window_minutes": True},
        {"used_percent": 250, "resets_at": None, "window_minutes": None},
    ],
)
def test_a_spent_window_with_garbled_fields_has_no_reset(window: dict[str, Any]) -> None:
    limit = codex_rate_limits({"primary": window})
    assert limit is not None and limit.kind == LimitKind.EXHAUSTED and limit.resets_at is None
    assert limit.scope == ""


def write_rollout(home: Path, thread: str, rate_limits: Any, junk: bool = False) -> Path:
    """A rollout as Codex 0.169.0 wrote it for a refused turn (the lines that matter)."""
    folder = home / "sessions" / "2026" / "11" / "25"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"rollout-2026-11-25T12-04-39-{thread}.jsonl"
    lines = [
        {"timestamp": "2026-11-25T12:04:39.700Z", "type": "session_meta", "payload": {"id": thread}},
        {"timestamp": "2026-11-25T12:04:39.701Z", "type": "event_msg", "payload": {"type": "task_started"}},
        {
            "timestamp": "2026-11-25T12:04:39.828Z",
            "ordinal": 9,
            "type": "event_msg",
            "payload": {"type": "token_count", "info": None, "rate_limits": rate_limits},
        },
        {
            "timestamp": "2026-11-25T12:04:39.831Z",
            "ordinal": 10,
            "type": "event_msg",
            "payload": {"type": "task_complete", "error": {"codex_error_info": "usage_limit_exceeded"}},
        },
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\n"
    if junk:
        text += '{"type": "token_count"\n[1, "token_count"]\n\xff"token_count"\n'
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    return path


THREAD = "01a21297-fa85-7040-8955-d05754068290"


def test_last_rate_limits_skips_what_is_no_json(tmp_path: Path) -> None:
    path = write_rollout(tmp_path, THREAD, SPENT_FIVE_HOUR, junk=True)
    assert last_rate_limits(path) == SPENT_FIVE_HOUR
    assert last_rate_limits(tmp_path / "missing.jsonl") is None
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert last_rate_limits(tmp_path / "empty.jsonl") is None
    assert last_rate_limits(tmp_path) is None  # a directory


def test_last_rate_limits_are_the_last_turn_s_only(tmp_path: Path) -> None:
    """A later turn refused without a ``token_count`` (``insufficient_quota``) has no rate limits, even
    when an earlier turn of the thread recorded a spent window."""
    path = write_rollout(tmp_path, THREAD, SPENT_FIVE_HOUR)
    later = {"type": "event_msg", "payload": {"type": "task_started"}}
    done = {"type": "event_msg", "payload": {"type": "task_complete", "error": {"message": QUOTA}}}
    with path.open("a") as file:
        file.write(json.dumps(later) + "\n" + json.dumps(done) + "\n")
    assert last_rate_limits(path) is None
    agent = CodexAgent(tmp_path)
    assert agent.usage_limit(1, refused_turn(agent, QUOTA), "") == Limit(LimitKind.EXHAUSTED, None, "", QUOTA)


def refused_turn(agent: CodexAgent, message: str, thread: str = THREAD) -> Turn:
    """A turn read from the stdout lines Codex printed for a refused turn."""
    turn = Turn()
    for line in (
        {"type": "thread.started", "thread_id": thread},
        {"type": "turn.started"},
        error(message),
        failed(message),
    ):
        agent.read_event(json.dumps(line), turn)
    return turn


def test_usage_limit_takes_the_reset_from_the_rollout_and_the_words_from_the_stream(
    tmp_path: Path, zone: Any
) -> None:
    zone("UTC")
    agent = CodexAgent(tmp_path)
    write_rollout(tmp_path, THREAD, SPENT_FIVE_HOUR)
    turn = refused_turn(agent, PLUS)
    assert agent.classify(1, turn, "") == Outcome.FAILED
    assert agent.usage_limit(1, turn, "") == Limit(LimitKind.EXHAUSTED, 1795615479.0, "five_hour", PLUS)


@pytest.mark.parametrize("rate_limits", [NO_HEADERS, HEALTHY, "garbled", None])
def test_usage_limit_keeps_the_words_without_a_spent_window(
    tmp_path: Path, rate_limits: Any, zone: Any
) -> None:
    zone("UTC")
    agent = CodexAgent(tmp_path)
    write_rollout(tmp_path, THREAD, rate_limits)
    turn = refused_turn(agent, PLUS)
    assert agent.usage_limit(1, turn, "") == turn.limit
    assert turn.limit is not None and turn.limit.resets_at is not None


def test_usage_limit_without_a_rollout_or_a_thread_keeps_the_words(tmp_path: Path) -> None:
    agent = CodexAgent(tmp_path)
    assert agent.usage_limit(1, refused_turn(agent, LATER), "") == Limit(LimitKind.EXHAUSTED, None, "", LATER)
    turn = Turn()
    agent.read_event(json.dumps(failed(LATER)), turn)
    assert agent.usage_limit(1, turn, "") == Limit(LimitKind.EXHAUSTED, None, "", LATER)
    hostile = refused_turn(agent, LATER, thread="../../etc")
    assert agent.usage_limit(1, hostile, "") == Limit(LimitKind.EXHAUSTED, None, "", LATER)


def test_a_transient_limit_is_not_refined_and_a_limited_turn_is_never_session_lost(tmp_path: Path) -> None:
    agent = CodexAgent(tmp_path)
    write_rollout(tmp_path, THREAD, SPENT_FIVE_HOUR)
    turn = refused_turn(agent, RETRY_LIMIT)
    assert agent.usage_limit(1, turn, "") == Limit(LimitKind.TRANSIENT, None, "", RETRY_LIMIT)
    said = "Error: thread/resume: thread/resume failed: no rollout found for thread id x"
    assert agent.classify(1, turn, said) == Outcome.FAILED


def test_a_turn_whose_retries_passed_has_no_limit(tmp_path: Path) -> None:
    agent = CodexAgent(tmp_path)
    turn = Turn()
    for line in (
        {"type": "thread.started", "thread_id": THREAD},
        error(RECONNECTING),
        error(RECONNECTING.replace("1/5", "2/5")),
        {"type": "item.completed", "item": {"id": "item_0", "type": "agent_message", "text": "hi"}},
        {"type": "turn.completed", "usage": {"input_tokens": 400, "output_tokens": 12}},
    ):
        agent.read_event(json.dumps(line), turn)
    assert agent.classify(0, turn, "") == Outcome.SUCCEEDED
    assert agent.usage_limit(0, turn, "") is None


# -- the real Codex CLI against the mock --------------------------------------------------------------


@dataclass
class Ran:
    turn: Turn
    exit_code: int
    stderr: str
    lines: list[str]
    requests: int
    seconds: float


@pytest.fixture
def codex(settings: Settings, openai: MockOpenAI) -> CodexAgent:
    """The real Codex CLI's adapter, its home pointed at the mock; fails (never skips) without the CLI."""
    agent = get_agent("codex", settings)
    assert isinstance(agent, CodexAgent)
    try:
        version = agent.version()
    except Exception as exc:  # any reason it cannot run fails the test
        pytest.fail(f"the real Codex CLI is missing or broken (make setup installs it): {exc}")
    assert version and version.startswith("0.169"), f"measured on Codex 0.169, this is {version}"
    print(f"real codex CLI: {version}")
    agent.prepare_home(30)
    return agent


def run_turn(agent: CodexAgent, mock: MockOpenAI, tmp: Path, timeout: float = 120) -> Ran:
    """One fresh turn of the real CLI as the runner starts it (argv, environment, prompt on stdin)."""
    launch = agent.launch(Mode.FRESH, "hello", None)
    turn, lines = Turn(), []

    def on_line(line: str) -> None:
        lines.append(line)
        agent.read_event(line, turn)

    started = time.monotonic()
    with RunLog(tmp / "log.jsonl") as log:
        result = run_process(
            launch.argv,
            {**os.environ, **launch.env},
            tmp,
            log,
            on_line,
            on_start=lambda pid: None,
            heartbeat=lambda: True,
            heartbeat_every=60,
            timeout=timeout,
            cancel=threading.Event(),
            kill_grace=1,
            stdin=launch.stdin,
        )
    seconds = time.monotonic() - started
    assert not result.timed_out, (lines, result.stderr)
    return Ran(turn, result.exit_code, result.stderr, lines, len(mock.conversation()), seconds)


def with_codex_retries(agent: CodexAgent) -> None:
    """The provider's stream retries as Codex's default (5) instead of the mock's 0."""
    merge_toml(agent.home / "config.toml", {"model_providers": {"mock": {"stream_max_retries": 5}}})


def assert_refused(ran: Ran, kind: LimitKind) -> Limit:
    assert ran.exit_code == 1, ran
    assert json.loads(ran.lines[-1])["type"] == "turn.failed", ran.lines
    agent_limit = ran.turn.limit
    assert agent_limit is not None and agent_limit.kind == kind, ran.lines
    return agent_limit


@pytest.mark.slow
def test_real_codex_spent_five_hour_limit_is_exhausted_until_its_reset_to_the_second(
    codex: CodexAgent, openai: MockOpenAI, tmp_path: Path
) -> None:
    resets_at = int(time.time()) + 7200 + 17
    openai.refusal = mock_openai.usage_limit(resets_at)
    ran = run_turn(codex, openai, tmp_path)
    assert_refused(ran, LimitKind.EXHAUSTED)
    assert ran.requests == 1  # no retry
    assert codex.classify(ran.exit_code, ran.turn, ran.stderr) == Outcome.FAILED
    limit = codex.usage_limit(ran.exit_code, ran.turn, ran.stderr)
    assert limit is not None and limit.kind == LimitKind.EXHAUSTED
    assert (limit.resets_at, limit.scope) == (resets_at, "five_hour")
    assert "hit your usage limit" in limit.detail


@pytest.mark.slow
def test_real_codex_spent_weekly_limit_days_away_is_exhausted_until_its_reset(
    codex: CodexAgent, openai: MockOpenAI, tmp_path: Path
) -> None:
    resets_at = int(time.time()) + 3 * 86400 + 29
    openai.refusal = mock_openai.usage_limit(resets_at, plan_type="pro", window_minutes=10080)
    ran = run_turn(codex, openai, tmp_path)
    words = assert_refused(ran, LimitKind.EXHAUSTED)
    assert words.resets_at == (resets_at // 60) * 60 + 60  # "try again at Nov 28th, 2026 12:05 PM."
    limit = codex.usage_limit(ran.exit_code, ran.turn, ran.stderr)
    assert limit is not None and (limit.kind, limit.resets_at, limit.scope) == (
        LimitKind.EXHAUSTED,
        resets_at,
        "seven_day",
    )


@pytest.mark.slow
def test_real_codex_spent_limit_without_headers_is_read_from_its_words_in_its_local_time(
    codex: CodexAgent, openai: MockOpenAI, tmp_path: Path, zone: Any
) -> None:
    """Without ``x-codex-*`` headers the rollout has no window: the reset is the words' minute, which
    Codex prints in its local time (here New York's), ended."""
    zone("America/New_York")
    resets_at = int(time.time()) + 5400
    refusal = mock_openai.usage_limit(resets_at)
    refusal.headers = {}
    openai.refusal = refusal
    ran = run_turn(codex, openai, tmp_path)
    assert_refused(ran, LimitKind.EXHAUSTED)
    limit = codex.usage_limit(ran.exit_code, ran.turn, ran.stderr)
    assert limit is not None and limit.kind == LimitKind.EXHAUSTED
    assert limit.resets_at == (resets_at // 60) * 60 + 60
    assert limit.scope == ""


@pytest.mark.slow
def test_real_codex_spent_limit_with_reset_in_seconds_only_has_no_reset(
    codex: CodexAgent, openai: MockOpenAI, tmp_path: Path
) -> None:
    """Codex 0.169 reads ``resets_at`` only: ``resets_in_seconds`` alone gives ``try again later``."""
    refusal = mock_openai.usage_limit(int(time.time()) + 5400)
    del refusal.body["error"]["resets_at"]
    refusal.headers = {}
    openai.refusal = refusal
    ran = run_turn(codex, openai, tmp_path)
    assert_refused(ran, LimitKind.EXHAUSTED)
    limit = codex.usage_limit(ran.exit_code, ran.turn, ran.stderr)
    assert limit is not None and (limit.kind, limit.resets_at) == (LimitKind.EXHAUSTED, None)
    assert "try again later" in limit.detail


@pytest.mark.slow
def test_real_codex_transient_429_is_transient(codex: CodexAgent, openai: MockOpenAI, tmp_path: Path) -> None:
    openai.refusal = mock_openai.rate_limit(30)
    ran = run_turn(codex, openai, tmp_path)
    assert_refused(ran, LimitKind.TRANSIENT)
    assert ran.requests == 1  # the mock's provider retries nothing
    assert codex.classify(ran.exit_code, ran.turn, ran.stderr) == Outcome.FAILED
    limit = codex.usage_limit(ran.exit_code, ran.turn, ran.stderr)
    assert limit == Limit(LimitKind.TRANSIENT, None, "", RETRY_LIMIT)


@pytest.mark.slow
def test_real_codex_retries_a_transient_429_after_its_retry_after_then_gives_up(
    codex: CodexAgent, openai: MockOpenAI, tmp_path: Path
) -> None:
    """With its default stream retries Codex waits out ``retry-after`` five times (6 requests)."""
    with_codex_retries(codex)
    openai.refusal = mock_openai.rate_limit(1)
    ran = run_turn(codex, openai, tmp_path)
    assert_refused(ran, LimitKind.TRANSIENT)
    assert ran.requests == 6 and ran.seconds >= 5, ran
    assert sum("Reconnecting..." in line for line in ran.lines) == 5
    assert codex.usage_limit(ran.exit_code, ran.turn, ran.stderr) == Limit(
        LimitKind.TRANSIENT, None, "", RETRY_LIMIT
    )


@pytest.mark.slow
def test_real_codex_transient_429_that_passes_on_a_retry_is_no_limit(
    codex: CodexAgent, openai: MockOpenAI, tmp_path: Path
) -> None:
    with_codex_retries(codex)
    openai.refusal = mock_openai.rate_limit(1, times=2)
    ran = run_turn(codex, openai, tmp_path)
    assert ran.exit_code == 0 and ran.requests == 3, ran
    assert codex.classify(ran.exit_code, ran.turn, ran.stderr) == Outcome.SUCCEEDED
    assert ran.turn.limit is None and codex.usage_limit(ran.exit_code, ran.turn, ran.stderr) is None


@pytest.mark.slow
def test_real_codex_records_the_usage_headers_of_a_good_turn_and_it_is_no_limit(
    codex: CodexAgent, openai: MockOpenAI, tmp_path: Path
) -> None:
    now = int(time.time())
    openai.reply_headers = mock_openai.rate_limit_headers((12.5, 300, now + 3600), (30.0, 10080, now + 86400))
    ran = run_turn(codex, openai, tmp_path)
    assert codex.classify(ran.exit_code, ran.turn, ran.stderr) == Outcome.SUCCEEDED
    assert codex.usage_limit(ran.exit_code, ran.turn, ran.stderr) is None
    assert ran.turn.session_id is not None
    files = codex.transcript_files(ran.turn.session_id)
    recorded = last_rate_limits(files[-1])
    assert recorded["primary"] == {"used_percent": 12.5, "window_minutes": 300, "resets_at": now + 3600}
    assert recorded["secondary"] == {"used_percent": 30.0, "window_minutes": 10080, "resets_at": now + 86400}
    assert codex_rate_limits(recorded) is None
