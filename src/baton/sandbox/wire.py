"""Spending read on the wire: the tokens a model API's reply says it counted, as baton's model gateway
(:mod:`baton.sandbox.gateway`) passes it on, whatever the agent CLI reports. One :class:`Meter` per
reply is fed its bytes as they stream; :meth:`Meter.usage` is the reply's usage once it ended. Four
formats, told apart by their objects: Anthropic Messages (``message_start``'s ``message.usage``, then
``message_delta``'s ``usage``, or a whole ``message``), OpenAI Responses (``response.completed``'s
``response.usage``, or a whole ``response``), OpenAI Chat Completions (the chunk carrying ``usage``)
and Gemini (``usageMetadata``). Counts are the vendor's own (Anthropic's ``input_tokens`` leave the
cache out, OpenAI's and Gemini's hold it); within a reply, a later object's counts replace an earlier
one's, as they are cumulative. The meter also reads the model the reply names (what was billed: an
alias in the request, or Gemini's model in its URL, is not), for the cost of :mod:`baton.caps.prices`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
BODY_LIMIT = 16 * 1024 * 1024  # a reply (or one SSE line) longer than this is passed on, not metered

# per format: our field -> the path of its count in the usage object
Paths = dict[str, tuple[str, ...]]
_ANTHROPIC: Paths = {
    "input_tokens": ("input_tokens",),
    "output_tokens": ("output_tokens",),
    "cache_read_tokens": ("cache_read_input_tokens",),
    "cache_write_tokens": ("cache_creation_input_tokens",),
}
_RESPONSES: Paths = {
    "input_tokens": ("input_tokens",),
    "output_tokens": ("output_tokens",),
    "cache_read_tokens": ("input_tokens_details", "cached_tokens"),
}
_CHAT: Paths = {
    "input_tokens": ("prompt_tokens",),
    "output_tokens": ("completion_tokens",),
    "cache_read_tokens": ("prompt_tokens_details", "cached_tokens"),
}
_GEMINI: Paths = {
    "input_tokens": ("promptTokenCount",),
    "output_tokens": ("candidatesTokenCount",),
    "thoughts_tokens": ("thoughtsTokenCount",),
    "cache_read_tokens": ("cachedContentTokenCount",),
}


class Meter:
    """One reply's usage, fed its body as it streams (``text/event-stream`` line by line, any other
    body whole at its end)."""

    def __init__(self, content_type: str) -> None:
        self.sse = "text/event-stream" in content_type.lower()
        self.pending = bytearray()
        self.found: dict[str, int] = {}
        self.overflow = False
        self.model: str | None = None  # the model the reply names, once it did
        self.inclusive = False  # its input count holds the tokens read from a cache (OpenAI, Gemini)

    def feed(self, chunk: bytes) -> None:
        if self.overflow:
            return
        self.pending += chunk
        if self.sse:
            *lines, rest = self.pending.split(b"\n")
            self.pending = bytearray(rest)
            for line in lines:
                self._line(bytes(line))
        if len(self.pending) > BODY_LIMIT:
            self.overflow, self.pending = True, bytearray()

    def usage(self) -> dict[str, int]:
        """The reply's counts (empty when it said none); call once its body has ended."""
        if self.sse:
            self._line(bytes(self.pending))
        elif self.pending:
            self._object(_json(bytes(self.pending)))
        self.pending = bytearray()
        return dict(self.found)

    def billed(self) -> dict[str, int]:
        """The reply's counts as a price list bills them (:mod:`baton.caps.prices`): input not read
        from a cache, output with a model's thoughts, cache reads and writes; after :meth:`usage`."""
        counts = {name: self.found[name] for name in FIELDS if name in self.found}
        if self.inclusive and "input_tokens" in counts:
            counts["input_tokens"] = max(0, counts["input_tokens"] - counts.get("cache_read_tokens", 0))
        if "thoughts_tokens" in self.found:
            counts["output_tokens"] = counts.get("output_tokens", 0) + self.found["thoughts_tokens"]
        return counts

    def _line(self, line: bytes) -> None:
        if line.startswith(b"data:"):
            self._object(_json(line[5:]))

    def _object(self, obj: Any) -> None:
        model = _model(obj)
        if model is not None:
            self.model = model
        for usage, paths in _usages(obj):
            self.inclusive = paths is not _ANTHROPIC
            for name, path in paths.items():
                value = _dig(usage, path)
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    self.found[name] = value


def _json(text: bytes) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _usages(obj: Any) -> Iterator[tuple[Any, Paths]]:
    """The usage objects ``obj`` carries, each with its format's paths."""
    if isinstance(obj, list):  # Gemini's streamGenerateContent without alt=sse: a JSON array
        for item in obj:
            yield from _usages(item)
        return
    if not isinstance(obj, dict):
        return
    kind = obj.get("type")
    if "usageMetadata" in obj:
        yield obj["usageMetadata"], _GEMINI
    elif kind == "message_start" and isinstance(obj.get("message"), dict):
        yield obj["message"].get("usage"), _ANTHROPIC
    elif kind in ("message_delta", "message"):
        yield obj.get("usage"), _ANTHROPIC
    elif isinstance(kind, str) and kind.startswith("response.") and isinstance(obj.get("response"), dict):
        yield obj["response"].get("usage"), _RESPONSES
    elif obj.get("object") == "response":
        yield obj.get("usage"), _RESPONSES
    elif str(obj.get("object", "")).startswith("chat.completion"):
        yield obj.get("usage"), _CHAT


_WHOLE = ("response", "chat.completion")  # a whole Responses reply, a Chat reply or chunk


def _model(obj: Any) -> str | None:
    """The model an object of a reply names: Anthropic's ``message_start``'s ``message.model`` or a
    whole message's ``model``, OpenAI Responses' ``response.model``, a Chat chunk's ``model``,
    Gemini's ``modelVersion``; None when it names none."""
    if isinstance(obj, list):
        return next((m for m in map(_model, obj) if m is not None), None)
    if not isinstance(obj, dict):
        return None
    found: Any = None
    if "modelVersion" in obj:
        found = obj["modelVersion"]
    elif isinstance(obj.get("message"), dict) and obj.get("type") == "message_start":
        found = obj["message"].get("model")
    elif isinstance(obj.get("response"), dict) and str(obj.get("type", "")).startswith("response."):
        found = obj["response"].get("model")
    elif obj.get("type") == "message" or str(obj.get("object", "")).startswith(
        ("response", "chat.completion")
    ):
        found = obj.get("model")
    return found if isinstance(found, str) and 0 < len(found) <= 200 else None


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def add(total: dict[str, int], reply: dict[str, int]) -> None:
    """Add one reply's counts to a run's ``total`` (which also counts the replies that said any)."""
    if not reply:
        return
    for name, value in reply.items():
        total[name] = total.get(name, 0) + value
    total["requests"] = total.get("requests", 0) + 1
