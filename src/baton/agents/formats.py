"""Whether a transcript is in a format baton (and the CLI it drives) can read: the guard against an upgrade
of an agent CLI that would silently lose half of a conversation. The CLIs change their transcript formats
between releases, and one that meets entries it does not understand skips them (Claude tolerates garbage
lines, Gemini drops records it cannot replay): a conversation written by another release would resume
with part of its history, exit 0, and nobody told. So before a resume baton reads the transcript the way
the pinned CLIs write it (measured on Claude Code 2.1.3xx, Codex 0.16x, Gemini 0.5x-0.6x; docs/compat.md)
with one rule (:func:`judge`); a transcript it calls unreadable is recovered with a recap instead, saying
why (:mod:`baton.runner.decide`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

Problem = str | None
Entry = dict[str, Any]
MESSAGE_KEYS = ("message", "content", "parts", "role")  # what carries a turn, in any of the three


def entries(data: bytes) -> Iterator[tuple[int, Entry]]:
    """The JSON objects of a JSONL transcript with their line numbers; other lines (a torn last line,
    garbage, which the CLIs tolerate) are skipped."""
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            yield number, value


def judge(data: bytes, turn: Callable[[Entry], bool | None]) -> Problem:
    """The shared rule. ``turn(entry)``: True for a turn baton can read, False for a turn-shaped entry
    it cannot, None for anything else (metadata). A transcript is unreadable when

    - it holds JSON entries but not one conversation turn baton recognises (the whole format changed:
      keys renamed, entries wrapped in an envelope), or
    - a turn-shaped entry is malformed: a user or model entry without the message it should carry, or
      an entry of an unknown type carrying a message (a renamed type: the CLI would skip it).

    Entries of types baton does not know that carry no message (new metadata a release adds) are fine:
    they lose nothing."""
    seen = readable = 0
    for number, entry in entries(data):
        seen += 1
        verdict = turn(entry)
        if verdict is False:
            kind = str(entry.get("type", next(iter(entry), "?")))[:40]
            return f"line {number} (an entry of type {kind!r}) is a turn in a format baton cannot read"
        readable += bool(verdict)
    if seen and not readable:
        return f"none of its {seen} entries is a conversation turn in a format baton can read"
    return None


def _carries_message(entry: Entry) -> bool:
    payload = entry.get("payload")
    inner = payload if isinstance(payload, dict) else {}
    return any(k in entry or k in inner for k in MESSAGE_KEYS)


# -- Claude Code: {"type": "user"|"assistant", "uuid", "message": {"role", "content"}, ...} --------------
CLAUDE_TURNS = ("user", "assistant")
CLAUDE_META = (
    "system", "summary", "attachment", "file-history-snapshot", "queue-operation", "last-prompt",
    "cost-state", "mode", "custom-title", "tag", "progress", "api-request", "api-request-body",
    "api-response", "pr-link", "agent-name", "worktree-state",
)  # fmt: skip


def claude_turn(entry: Entry) -> bool | None:
    kind = entry.get("type")
    if kind in CLAUDE_TURNS:
        message = entry.get("message")
        return (
            isinstance(message, dict)
            and message.get("role") in CLAUDE_TURNS
            and "content" in message
            and isinstance(entry.get("uuid"), str)
        )
    if isinstance(kind, str) and (kind in CLAUDE_META or kind.startswith("api-")):
        return None
    return False if _carries_message(entry) else None


def claude_problem(data: bytes) -> Problem:
    return judge(data, claude_turn)


# -- Codex: {"type": "session_meta"|"response_item"|"event_msg"|"turn_context"|..., "payload": {...}} ------
CODEX_TYPES = ("session_meta", "response_item", "event_msg", "turn_context", "compacted")


def codex_turn(entry: Entry) -> bool | None:
    kind, payload = entry.get("type"), entry.get("payload")
    if kind in CODEX_TYPES:
        if not isinstance(payload, dict):
            return False
        if kind == "response_item" and payload.get("type") == "message":
            return payload.get("role") in ("user", "assistant", "developer", "system") and isinstance(
                payload.get("content"), list
            )
        return None
    return False if _carries_message(entry) else None


def codex_problem(data: bytes) -> Problem:
    first = next(entries(data), None)
    if first is not None and first[1].get("type") != "session_meta":
        return "its first entry is not the session_meta header Codex writes"
    return judge(data, codex_turn)


# -- Gemini: a header {"sessionId", ...}, records {"id", "type": "user"|"gemini"|..., "content"}, {"$set"} --
GEMINI_TURNS = ("user", "gemini")
GEMINI_META = ("info", "error", "warning")


def gemini_turn(entry: Entry) -> bool | None:
    if "$set" in entry or "sessionId" in entry:  # an update, or the header
        return None
    kind = entry.get("type")
    if kind in GEMINI_TURNS:
        return "content" in entry and isinstance(entry.get("id"), str)
    if kind in GEMINI_META:
        return None
    return False if _carries_message(entry) else None


def gemini_problem(data: bytes) -> Problem:
    """A chat file whose turns all sit in ``$set`` updates (Gemini rewrites the whole history into one
    after a resume) counts its updates' messages too."""
    for _number, entry in entries(data):
        update = entry.get("$set")
        messages = update.get("messages") if isinstance(update, dict) else None
        if isinstance(messages, list) and any(
            isinstance(m, dict) and gemini_turn(m) for m in messages if isinstance(m, dict)
        ):
            return _gemini_records_only(data)
    return judge(data, gemini_turn)


def _gemini_records_only(data: bytes) -> Problem:
    """With turns in ``$set``: only a malformed turn-shaped record is a problem."""
    for number, entry in entries(data):
        if gemini_turn(entry) is False:
            return f"line {number} is a turn in a format baton cannot read"
    return None
