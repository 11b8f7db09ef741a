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
    """The stronger of two limits seen in one turn: exhausted over transient; a known reset kept."""
    if new is None:
        return old
    if old is None:
        return new
    if old.kind == LimitKind.EXHAUSTED and new.kind == LimitKind.TRANSIENT:
        return old
    if new.kind == old.kind and new.resets_at is None and old.resets_at is not None:
        return Limit(new.kind, old.resets_at, new.scope or old.scope, new.detail or old.detail)
    return new


# -- words ------------------------------------------------------------------------------------------

_EPOCH_SAID = re.compile(r"usage limit reached\|(\d{10,13})", re.IGNORECASE)
_HIT = re.compile(r"(?:you've|you have) (?:hit|reached) your ([\w -]{0,40}?)\s*limit", re.IGNORECASE)
_RESETS = re.compile(
    r"resets?\s+(?:at\s+|on\s+)?(?:(?P<month>[A-Z][a-z]{2,8})\.?\s+(?P<day>\d{1,2}),?\s+(?:at\s+)?)?"
    r"(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?\s*(?P<half>am|pm)?\s*(?:\((?P<zone>[^)]{1,64})\))?",
    re.IGNORECASE,
)
_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}


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


def reset_said(text: str, now: float | None = None) -> float | None:
    """The time in ``resets 11:03pm (UTC)`` or ``resets Nov 28, 3pm (Europe/Paris)``: the next such
    moment after ``now`` in the zone named (UTC when none or unknown); None when there is none."""
    found = _RESETS.search(text)
    if found is None:
        return None
    hour, minute = int(found["hour"]), int(found["minute"] or 0)
    if found["half"]:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if found["half"].lower() == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
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
    """Codex's stream: (measured by its section of docs/agent-clis.md)."""
    return None


# -- Gemini CLI -------------------------------------------------------------------------------------


def gemini_event(event: dict[str, Any]) -> Limit | None:
    """Gemini CLI's stream-json events: (measured by its section of docs/agent-clis.md)."""
    return None


def gemini_stderr(line: str) -> Limit | None:
    """Gemini CLI's stderr lines: (measured by its section of docs/agent-clis.md)."""
    return None
