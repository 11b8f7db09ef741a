"""What a turn's event stream says about the model API, as it streams: one classifier per agent. An agent
CLI whose model API does not answer does not exit: it retries, for minutes (Claude Code) or for ever
(Codex), and Gemini CLI prints its retries on stderr only (measured: docs/agent-clis.md, "A model API
that cannot be reached"). Each adapter reads those lines into a :class:`Signal` of the same few kinds for
every agent (:meth:`baton.agents.base.Agent.signal`), so the runner (:mod:`baton.runner.modelwatch`) can
show them live and end a turn whose model cannot be reached within seconds instead of minutes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class SignalKind(StrEnum):
    """What a line says about the model API."""

    UNREACHABLE = "unreachable"  # no connection to the model API (refused, no such host, timed out)
    RETRYING = "retrying"  # the model API answered with an error the CLI retries (5xx, overloaded)


@dataclass(frozen=True)
class Signal:
    kind: SignalKind
    detail: str  # the CLI's words for it, one line
    retry: int | None = None  # the CLI's retry counter, when it gives one


# Words that mean no connection was made, in the three CLIs' errors (Rust's reqwest/hyper, Node's
# fetch/undici, Bun's fetch) and the system's errno texts.
_NO_CONNECTION = re.compile(
    r"connection refused|connection failed|connection reset|error sending request|fetch failed"
    r"|econnrefused|econnreset|enotfound|eai_again|etimedout|ehostunreach|enetunreach"
    r"|dns error|failed to lookup|name or service not known|no route to host|network is unreachable"
    r"|timed out|unable to connect|connect error|tcp connect",
    re.IGNORECASE,
)


def no_connection(text: str) -> bool:
    """Whether an error text says no connection to the server was made."""
    return _NO_CONNECTION.search(text) is not None


def one_line(text: str, limit: int = 200) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def from_text(text: str, retry: int | None = None) -> Signal:
    """An error the CLI retries: UNREACHABLE when its words say no connection was made."""
    kind = SignalKind.UNREACHABLE if no_connection(text) else SignalKind.RETRYING
    return Signal(kind, one_line(text), retry)


# -- per agent --------------------------------------------------------------------------------------


def claude(event: dict[str, Any]) -> Signal | None:
    """Claude Code's ``system``/``api_retry``: no ``error_status`` means no answer at all."""
    if event.get("type") != "system" or event.get("subtype") != "api_retry":
        return None
    retry = event.get("attempt")
    retry = retry if isinstance(retry, int) and not isinstance(retry, bool) else None
    status, error = event.get("error_status"), event.get("error")
    said = one_line(str(error)) if error not in (None, "", "unknown") else ""
    if status is None:
        return Signal(
            SignalKind.UNREACHABLE, f"connection failed ({said})" if said else "connection failed", retry
        )
    return Signal(
        SignalKind.RETRYING, f"HTTP {one_line(str(status), 20)}" + (f" ({said})" if said else ""), retry
    )


_CODEX_RETRY = re.compile(r"Reconnecting\.\.\.\s*(?:(\d+)/\d+)?")


def codex(event: dict[str, Any]) -> Signal | None:
    """Codex's ``error`` events ``Reconnecting... [n/5] (why)`` and its ``error`` item about falling
    back from WebSockets to HTTPS."""
    kind, message = event.get("type"), None
    if kind == "error":
        message = event.get("message")
    elif (
        kind == "item.completed"
        and isinstance(item := event.get("item"), dict)
        and item.get("type") == "error"
    ):
        message = item.get("message")
    if not isinstance(message, str):
        return None
    if (found := _CODEX_RETRY.match(message)) is not None:
        why = message[found.end() :].strip()  # "waiting for network (Connection failed: …)"
        if "(" in why and why.endswith(")"):
            why = why[why.index("(") + 1 : -1]
        return from_text(why or message, _int(found[1]))
    if message.startswith("Falling back from WebSockets"):
        return from_text(message)
    return None


_GEMINI_RETRY = re.compile(r"Attempt (\d+) failed\b(.*?)\. (?:Retrying|Max attempts reached)(.*)")
_GEMINI_QUOTA_RETRY = re.compile(r"Attempt (\d+) failed: (.+)")


def gemini_stderr(line: str) -> Signal | None:
    """Gemini CLI's ``Attempt N failed[ with status S]. Retrying with backoff... Error: …`` on stderr;
    and the first line of a quota error it retries, ``Attempt N failed: You exceeded your current quota,
    …`` (its delay follows on lines of their own)."""
    found = _GEMINI_RETRY.match(line.strip())
    if found is None:
        quota = _GEMINI_QUOTA_RETRY.match(line.strip())
        return Signal(SignalKind.RETRYING, one_line(quota[2]), int(quota[1])) if quota else None
    said = found[3].split("Error:", 1)[-1].strip(" .") if "Error:" in found[3] else ""
    how = found[2].strip(" :")
    return from_text(" ".join(filter(None, [how, said])) or "failed", _int(found[1]))


def _int(text: str | None) -> int | None:
    return int(text) if text else None
