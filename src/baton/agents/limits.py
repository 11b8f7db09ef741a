"""Usage limits, per agent: what a turn's events (first) and its words (second) say about a limit. Two
kinds, told apart because they call for different waits (:class:`LimitKind`): **exhausted**, a spent
quota (the turn ends ``rate_limited`` and the credential's breaker holds every other run of it until
``resets_at``), and **transient**, a per-minute rate limit (the turn failed and is retried with backoff).
Each adapter records what its events say in :attr:`baton.agents.base.Turn.limit` as they stream
(:func:`claude_event`, :func:`codex_event`, :func:`gemini_event`), and its ``usage_limit`` reads the
turn's words when no event said it (:func:`from_words`). What each CLI says, measured against mock models
that refuse as the vendors' APIs do: docs/agent-clis.md, "Usage limits".
"""

from __future__ import annotations

import json
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


# An OpenAI-compatible provider's 429, as an agent that calls it directly relays it (Copilot CLI 1.0's own
# provider: "Error: Failed to get response from the AI model; retried 5 times … Last error: 429 You
# exceeded your current quota, …"): the spent quota (billing: no reset said) and a per-minute limit.
# The ChatGPT backend's spent plan (429 usage_limit_reached, "The usage limit has been reached") is
# relayed by its words alone, its resets_at dropped: spent too, baton's own wait.
_SPENT_QUOTA = re.compile(
    r"insufficient_quota|exceeded your current quota|usage_limit_reached|\busage limit has been reached",
    re.IGNORECASE,
)
_RATE_LIMITED = re.compile(r"\b429\b.{0,40}rate limit|rate_limit_exceeded", re.IGNORECASE)


def from_api_words(text: str) -> Limit | None:
    """A provider's refusal relayed in an agent's words: an exhausted quota or plan limit (no reset
    said: baton's own wait), a transient rate limit; None when the words say neither."""
    if _SPENT_QUOTA.search(text):
        return Limit(LimitKind.EXHAUSTED, None, "quota", one_line(text))
    if _RATE_LIMITED.search(text):
        return Limit(LimitKind.TRANSIENT, None, "", one_line(text))
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


def next_midnight(now: float, zone: str) -> float:
    """The next midnight after ``now`` in ``zone`` (where a vendor's daily quota resets)."""
    current = datetime.fromtimestamp(now, ZoneInfo(zone))
    midnight = (current + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.timestamp()


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
    """Gemini CLI's stream-json events: a ``result`` with ``status: "error"`` whose ``error.message``
    is a refused quota. Measured on 0.61.0 (exit 173, i.e. 429 & 0xFF, one ``result`` line, no event
    while it retries):

    - a spent daily quota (TerminalQuotaError, one request): ``[API Error: You have exhausted your
      daily quota on this model.]`` — no reset in it (the CLI drops the API's RetryInfo there);
    - a per-minute quota (RetryableQuotaError, after 10 requests over ~4 minutes): ``[API Error: You
      exceeded your current quota, … Please retry in 5s.\\nSuggested retry after 5s.]``; the same words
      with a delay over 300 s are a TerminalQuotaError, sent once.

    Both end with the CLI's advice ``Please wait and try again later. …``. A delay is counted from
    the event's ``timestamp`` (the CLI's clock when it gave up)."""
    if not isinstance(event, dict) or event.get("type") != "result" or event.get("status") == "success":
        return None
    error = event.get("error")
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str):
        return None
    return _gemini_limit(message, _gemini_time(event.get("timestamp")))


def gemini_stderr(line: str, now: float | None = None) -> Limit | None:
    """One of Gemini CLI's stderr lines about a refused quota, measured on 0.61.0: the error it ends
    with (``Error when talking to Gemini API Full report available at: … TerminalQuotaError: You have
    exhausted your daily quota on this model.``, or ``… RetryableQuotaError: You exceeded your current
    quota, …``), each retry (``Attempt 3 failed: You exceeded your current quota, …``), and the lines
    of the error dump that carry the API's delay (``Please retry in 43s.``, ``Suggested retry after
    5s.. Retrying after 20833ms...``, ``retryDelayMs: 5000,``). A line with only a delay is a transient
    limit resetting ``now`` plus the delay: the adapter joins it to the error the other lines name."""
    if not isinstance(line, str):
        return None
    return _gemini_limit(line, time.time() if now is None else now)


# The CLI's own rule (googleQuotaErrors.ts, MAX_RETRYABLE_DELAY_SECONDS): a longer delay is terminal.
_GEMINI_RETRYABLE_S = 300
_LATEST = 32503680000  # year 3000: a later reset is no time (as :func:`epoch` says)
_GEMINI_QUOTA = re.compile(
    r"exceeded your current quota|exhausted your daily quota|quota exceeded|RESOURCE_EXHAUSTED"
    r"|TerminalQuotaError|RetryableQuotaError|Please wait and try again later|Possible quota limitations",
    re.IGNORECASE,
)
_GEMINI_SPENT = re.compile(r"TerminalQuotaError|exhausted your daily quota|limit:\s*0(?!\d|\.\d)", re.I)
_GEMINI_DAILY = re.compile(r"daily quota|per ?day", re.IGNORECASE)
_GEMINI_CAPACITY = re.compile(r"exhausted your capacity|capacity exceeded|MODEL_CAPACITY_EXHAUSTED", re.I)
_GEMINI_DELAY = re.compile(
    r"(?:Please retry in|Suggested retry after)\s+(\d+(?:\.\d+)?)\s*(ms|s)\b|retryDelayMs:\s*(\d+)", re.I
)
_GEMINI_ADVICE = re.compile(r"\s*(?:Please wait and try again later|Possible quota limitations)[\s\S]*$")


def _gemini_limit(text: str, now: float) -> Limit | None:
    """What a Gemini CLI error text says: EXHAUSTED for a spent quota (a TerminalQuotaError, a daily
    quota, a quota of 0, a delay over 300 s), TRANSIENT for a per-minute one or the model's capacity
    (a server's, not the credential's); None when it names no quota nor a delay."""
    delay = _gemini_delay(text)
    if _GEMINI_QUOTA.search(text) is None and delay is None:
        return None
    resets_at = now + delay if delay is not None and 1e9 <= now + delay <= _LATEST else None
    daily = _GEMINI_DAILY.search(text) is not None
    if daily:  # its RetryInfo (43 s) is a retry hint: a day's quota resets at midnight Pacific time
        resets_at = max(resets_at or 0.0, next_midnight(now, "America/Los_Angeles"))
    spent = _GEMINI_SPENT.search(text) is not None or daily or (delay or 0) > _GEMINI_RETRYABLE_S
    kind = LimitKind.EXHAUSTED if spent and not _GEMINI_CAPACITY.search(text) else LimitKind.TRANSIENT
    return Limit(kind, resets_at, "daily" if daily else "", _gemini_detail(text))


def _gemini_delay(text: str) -> float | None:
    """The longest delay the API asked for in ``text``, in seconds (None: none said)."""
    delays = []
    for found in _GEMINI_DELAY.finditer(text):
        if found[3] is not None:
            delays.append(float(found[3]) / 1000)
        else:
            delays.append(float(found[1]) / (1000 if found[2].lower() == "ms" else 1))
    return max(delays) if delays else None  # an endless one (1e999s) is no reset: see _LATEST


def _gemini_detail(text: str) -> str:
    """The error's words on one line, without the CLI's advice to switch /auth methods (which does not
    apply under baton), the ``[API Error: …]`` wrapping, nor what stderr says before the error's name
    (the path of a report file)."""
    said = _GEMINI_ADVICE.sub("", text).strip()
    said = said.split("QuotaError: ", 1)[-1]
    if said.startswith("[API Error: ") and said.endswith("]"):
        said = said[len("[API Error: ") : -1]
    return one_line(said)


def _gemini_time(value: Any) -> float:
    """An event's ISO ``timestamp`` as epoch seconds; now when it has none that can be read."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except (ValueError, OverflowError, OSError):
            pass
    return time.time()


# -- the model API's own refusal, as baton's model gateway reads it ----------------------------------


def from_api_reply(
    status: int, headers: dict[str, str], body: bytes, now: float | None = None
) -> Limit | None:
    """A model API's HTTP 429, whatever agent sent the request: Anthropic's ``rate_limit_error`` (a
    spent subscription window when ``anthropic-ratelimit-unified-status`` is ``rejected``, its reset
    and window in the headers), OpenAI's ``insufficient_quota`` or ``usage_limit_reached`` (spent, the
    latter with its ``resets_at``) and ``rate_limit_exceeded``, Gemini's ``RESOURCE_EXHAUSTED`` (read as
    Gemini CLI's words are); None for any other reply. ``headers``: names in lower case."""
    if status != 429:
        return None
    error = _json_body(body).get("error")
    error = error if isinstance(error, dict) else {}
    message = one_line(str(error.get("message") or "")) or "HTTP 429"
    if headers.get("anthropic-ratelimit-unified-status") == "rejected":
        scope = headers.get("anthropic-ratelimit-unified-representative-claim", "")
        reset = epoch(headers.get("anthropic-ratelimit-unified-reset"))
        detail = f"HTTP 429 rejected ({scope or 'unified'}): {message}"
        return Limit(LimitKind.EXHAUSTED, reset, scope, detail)
    kinds = {error.get("type"), error.get("code")}
    if kinds & {"usage_limit_reached", "insufficient_quota"}:
        return Limit(LimitKind.EXHAUSTED, epoch(error.get("resets_at")), "quota", message)
    if error.get("status") == "RESOURCE_EXHAUSTED":
        quotas = [
            str(v.get("quotaId", ""))
            for d in error.get("details") or []
            if isinstance(d, dict)
            for v in d.get("violations") or []
            if isinstance(v, dict)
        ]
        text = " ".join([str(error.get("message") or ""), *quotas])
        return _gemini_limit(text, time.time() if now is None else now)
    return Limit(LimitKind.TRANSIENT, None, "", message)


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        found = json.loads(body)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
