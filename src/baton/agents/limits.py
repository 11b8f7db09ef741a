"""Usage limits, per agent: what a turn's events (first) and its words (second) say about a limit.

Two kinds, told apart because they call for different waits:

- **exhausted** — a quota is spent (Claude Max's five-hour or weekly window, a ChatGPT plan's Codex
  limit, Gemini's daily quota): nothing goes through until its reset, so the turn ends
  ``rate_limited`` and the credential's breaker holds every other run of it until ``resets_at``;
- **transient** — a per-minute rate limit (an API key's requests or tokens a minute): the turn failed
  and is retried soon, with backoff, as any failure.

Each adapter records what its events say in :attr:`baton.agents.base.Turn.limit` as they stream
(:func:`claude_event`, :func:`codex_event`, :func:`gemini_event`), and its ``usage_limit`` reads the
turn's words when no event said it (:func:`from_words`). Measured against the real CLIs driven by mock
models that refuse the way the vendors' APIs do (docs/agent-clis.md, "Usage limits").

Claude Code 2.1.327: under a subscription login a spent window streams ``{"type":"rate_limit_event",
"rate_limit_info":{"status":"rejected","resetsAt":<epoch s>,"rateLimitType":"five_hour",…}}`` and
the text ``You've hit your 5-hour limit · resets 11:03pm (UTC)``; under an API key a 429 streams only
an ``assistant`` line with ``"error":"rate_limit"`` and a ``result`` with ``is_error`` and
``api_error_status: 429`` (exit 1, one request, no retry). Older releases said ``Claude AI usage limit
reached|<epoch>``, sometimes inside a zero-token ``subtype: success`` result.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class LimitKind(StrEnum):
    """Which wait a limit calls for."""

    EXHAUSTED = "exhausted"  # a quota is spent: wait for its reset
    TRANSIENT = "transient"  # a per-minute rate limit: retry soon, with backoff


@dataclass(frozen=True)
class Limit:
    kind: LimitKind
    resets_at: float | None = None  # epoch seconds, as the agent said it (None: not said)
    scope: str = ""  # the agent's name for the window: five_hour, seven_day, daily… ("" unknown)
    detail: str = ""  # the agent's words, one line


def one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def epoch(value: Any, now: float | None = None) -> float | None:
    """A reset time given as epoch seconds (or milliseconds) as a float; None when it is no number or
    not a plausible time (before 2001, past year 3000)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if number > 1e11:  # milliseconds
        number /= 1000
    if not 1e9 <= number <= 32503680000:
        return None
    return number


def merge(old: Limit | None, new: Limit | None) -> Limit | None:
    """The limit of a turn that reported ``old`` and then ``new``: an exhausted quota over a transient
    limit; of two alike the first (a CLI's structured event comes before its words), with what it left
    unsaid (its reset, its scope) taken from the second."""
    if new is None:
        return old
    if old is None or (new.kind == LimitKind.EXHAUSTED and old.kind == LimitKind.TRANSIENT):
        return new
    if new.kind != old.kind:
        return old
    return Limit(old.kind, old.resets_at or new.resets_at, old.scope or new.scope, old.detail or new.detail)


# -- words ------------------------------------------------------------------------------------------

_EPOCH_SAID = re.compile(r"usage limit reached\|(\d{10,13})", re.IGNORECASE)
_HIT = re.compile(r"(?:you've|you have) (?:hit|reached) your ([\w -]{0,40}?)\s*limit", re.IGNORECASE)
_RESETS = re.compile(
    r"resets?\s+(?:at\s+|on\s+)?(?:(?P<month>[A-Z][a-z]{2,8})\.?\s+(?P<day>\d{1,2}),?\s+(?:at\s+)?)?"
    r"(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?\s*(?P<half>am|pm)?\s*(?:\((?P<zone>[^)]{1,64})\))?",
    re.IGNORECASE,
)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}


def from_words(text: str, now: float | None = None) -> Limit | None:
    """An exhausted quota in an agent's words: ``Claude AI usage limit reached|<epoch>``, ``You've hit
    your 5-hour limit · resets 11:03pm (UTC)``; None when the words say no such thing."""
    if not text:
        return None
    if found := _EPOCH_SAID.search(text):
        return Limit(LimitKind.EXHAUSTED, epoch(found[1]), "", one_line(text))
    if found := _HIT.search(text):
        scope = _scope(found[1])
        return Limit(LimitKind.EXHAUSTED, reset_said(text, now), scope, one_line(text))
    return None


def _scope(words: str) -> str:
    words = words.strip().lower()
    if "5-hour" in words or "five" in words or "session" in words:
        return "five_hour"
    if "week" in words or "opus" in words:
        return "seven_day"
    return "_".join(words.split()) or ""


def _clock(found: re.Match[str]) -> tuple[int, int] | None:
    """The hour (0-23) and minute of a ``resets`` match; None when they are no time of day."""
    hour, minute = int(found["hour"]), int(found["minute"] or 0)
    if found["half"]:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if found["half"].lower() == "pm" else 0)
    return (hour, minute) if hour <= 23 and minute <= 59 else None


def reset_said(text: str, now: float | None = None) -> float | None:
    """The time in ``resets 11:03pm (UTC)`` or ``resets Nov 28, 3pm (Europe/Paris)``: the next such
    moment after ``now`` in the zone named (UTC when none or unknown); None when there is none."""
    found = _RESETS.search(text)
    clock = _clock(found) if found is not None else None
    if found is None or clock is None:
        return None
    hour, minute = clock
    try:
        zone = ZoneInfo((found["zone"] or "UTC").strip())
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    current = datetime.fromtimestamp(now if now is not None else time.time(), zone)
    try:
        at = current.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if found["month"]:
            month = _MONTHS.get(found["month"][:3].lower())
            if month is None:
                return None
            at = at.replace(month=month, day=int(found["day"]))
            if at < current - timedelta(days=1):
                at = at.replace(year=at.year + 1)
        elif at <= current:
            at += timedelta(days=1)
    except ValueError:
        return None
    return at.timestamp()


# -- Claude Code ------------------------------------------------------------------------------------


def claude_event(event: dict[str, Any]) -> Limit | None:
    """Claude Code's stream: a rejected ``rate_limit_event``; an ``assistant`` line or ``result`` that
    is a 429 (transient unless its words name a spent quota); a usage-limit text in a result, also one
    reported as a zero-token success."""
    kind = event.get("type")
    if kind == "rate_limit_event":
        info = event.get("rate_limit_info")
        if not isinstance(info, dict) or info.get("status") != "rejected":
            return None
        scope = info.get("rateLimitType")
        detail = f"rate_limit_event rejected ({scope})" if isinstance(scope, str) else "rate_limit_event"
        return Limit(
            LimitKind.EXHAUSTED, epoch(info.get("resetsAt")), scope if isinstance(scope, str) else "", detail
        )
    if kind == "assistant" and event.get("error") == "rate_limit":
        return from_words(_assistant_text(event)) or Limit(
            LimitKind.TRANSIENT, None, "", one_line(_assistant_text(event)) or "rate limited (HTTP 429)"
        )
    if kind == "result":
        text = event.get("result") if isinstance(event.get("result"), str) else ""
        said = from_words(str(text))
        if event.get("api_error_status") == 429:
            return said or Limit(LimitKind.TRANSIENT, None, "", one_line(str(text)) or "HTTP 429")
        if said is not None and (event.get("is_error") or _no_output(event)):
            return said
    return None


def _assistant_text(event: dict[str, Any]) -> str:
    message = event.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return ""
    return " ".join(str(b.get("text")) for b in content if isinstance(b, dict) and b.get("type") == "text")


def _no_output(event: dict[str, Any]) -> bool:
    """A result the model produced nothing for (no output tokens): its text is the CLI's, not the model's."""
    usage = event.get("usage")
    return isinstance(usage, dict) and not usage.get("output_tokens")


# -- Codex CLI --------------------------------------------------------------------------------------


def codex_event(event: dict[str, Any]) -> Limit | None:
    """Codex's ``exec --json`` stream (0.169.0). A refused turn ends with an ``error`` event and a
    ``turn.failed`` whose ``error.message`` holds the same words, exit 1; nothing in the stream is
    structured (the reset to the second is in the rollout: :func:`codex_rate_limits`).

    - a spent plan limit (HTTP 429 ``usage_limit_reached``), one request, no retry: ``You've hit your
      usage limit. … try again at 2:04 PM.`` (its apostrophe typographic; ``at Nov 27th, 2026 12:15
      PM`` on another day, ``later`` without a reset): EXHAUSTED, reset from the words
      (:func:`codex_reset`);
    - an API key out of quota (429 ``insufficient_quota``): ``Quota exceeded. Check your plan and
      billing details.``: EXHAUSTED, no reset said;
    - any other 429 (``rate_limit_exceeded``, a garbled body): ``exceeded retry limit, last status: 429
      Too Many Requests`` once Codex's own retries are spent: TRANSIENT. The retries themselves
      (``Reconnecting... 1/5 (exceeded retry limit, last status: 429 …)``) are none: the next may pass.

    ``usage_not_included`` (``To use Codex with your ChatGPT plan, upgrade to Plus…``) is no limit: it
    never resets, so the turn fails as any other."""
    message = _codex_message(event)
    if message is None or message.startswith("Reconnecting"):
        return None
    if _CODEX_SPENT.search(message):
        return Limit(LimitKind.EXHAUSTED, codex_reset(message), "", one_line(message))
    if _CODEX_429.search(message):
        return Limit(LimitKind.TRANSIENT, None, "", one_line(message))
    return None


_CODEX_SPENT = re.compile(
    r"\byou(?:'|\u2019)ve hit your usage limit|\bquota exceeded\. check your plan"
    r"|\bworkspace is out of credits|\bhit your spend cap",
    re.IGNORECASE,
)
_CODEX_429 = re.compile(r"\blast status: 429\b")
_CODEX_AT = re.compile(
    r"try again at (?:(?P<month>[A-Za-z]{3}) (?P<day>\d{1,2})(?:st|nd|rd|th)?, (?P<year>\d{4}) )?"
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2}) ?(?P<half>[AP]M)\b",
    re.IGNORECASE,
)


def _codex_message(event: dict[str, Any]) -> str | None:
    """The words of an ``error`` event or of a ``turn.failed`` event's ``error``; None for others."""
    kind = event.get("type")
    if kind == "error":
        message = event.get("message")
    elif kind == "turn.failed":
        error = event.get("error")
        message = error.get("message") if isinstance(error, dict) else error
    else:
        return None
    return message if isinstance(message, str) else None


def codex_reset(message: str, now: float | None = None) -> float | None:
    """The reset in ``try again at 2:04 PM`` (today) or ``try again at Nov 27th, 2026 12:15 PM``. Codex
    prints it in its own local time (the TZ baton passes on to it, so this process's) and to the
    minute, seconds cut: the end of that minute is returned, never before the reset and at most a
    minute after it. None without a time (``try again later``) or with an impossible one."""
    found = _CODEX_AT.search(message)
    if found is None:
        return None
    hour, minute = int(found["hour"]), int(found["minute"])
    if not 1 <= hour <= 12 or minute > 59:
        return None
    hour = hour % 12 + (12 if found["half"].upper() == "PM" else 0)
    try:
        if found["month"]:
            month = _MONTHS.get(found["month"].lower())
            if month is None:
                return None
            at = datetime(int(found["year"]), month, int(found["day"]), hour, minute)
        else:
            today = datetime.fromtimestamp(now if now is not None else time.time())
            at = today.replace(hour=hour, minute=minute, second=0, microsecond=0)
        return epoch(at.timestamp() + 60)  # naive: local time, as Codex printed it
    except (ValueError, OverflowError, OSError):
        return None


_CODEX_WINDOWS = {300: "five_hour", 10080: "seven_day"}


def codex_rate_limits(rate_limits: Any) -> Limit | None:
    """The spent window in a rollout's ``rate_limits`` (a ``token_count`` event Codex writes from the
    ``x-codex-primary-*``/``x-codex-secondary-*`` headers of every reply, refusals too): ``primary`` or
    ``secondary`` at ``used_percent`` ≥ 100, its ``resets_at`` (epoch seconds, exact) and its
    ``window_minutes`` as the scope (300: five_hour, 10080: seven_day); the later reset when both are
    spent. None when none is (no headers: both windows are null)."""
    if not isinstance(rate_limits, dict):
        return None
    windows = (rate_limits.get("primary"), rate_limits.get("secondary"))
    spent: list[dict[str, Any]] = [w for w in windows if isinstance(w, dict) and _spent(w)]
    if not spent:
        return None
    window = max(spent, key=lambda w: epoch(w.get("resets_at")) or 0.0)
    minutes = window.get("window_minutes")
    scope = _CODEX_WINDOWS.get(minutes, "") if isinstance(minutes, int) else ""
    detail = f"rate_limits: the {scope or 'usage'} window at {window['used_percent']:g}%"
    return Limit(LimitKind.EXHAUSTED, epoch(window.get("resets_at")), scope, detail)


def _spent(window: dict[str, Any]) -> bool:
    used = window.get("used_percent")
    return isinstance(used, int | float) and not isinstance(used, bool) and used >= 100


# -- Gemini CLI -------------------------------------------------------------------------------------


def gemini_event(event: dict[str, Any]) -> Limit | None:
    """Gemini CLI's stream-json events: (measured by its section of docs/agent-clis.md)."""
    return None


def gemini_stderr(line: str) -> Limit | None:
    """Gemini CLI's stderr lines: (measured by its section of docs/agent-clis.md)."""
    return None
