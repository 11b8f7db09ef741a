"""Agent event streams as readable entries: what ``baton runs logs`` (and the dashboard) show. A run's log
(``logs/<run-id>.jsonl``) keeps each CLI's JSON lines raw; this module turns one event into zero or more
:class:`Entry` values of a few kinds, the same for every agent — ``text`` (the assistant speaking),
``tool`` (a call, with a one-line summary of its input), ``output`` (what a tool returned), ``error``,
``info`` (session started, model) and ``done`` (the turn's end, with its cost or usage) — one reader per
agent's stream (:func:`claude_entries`, :func:`codex_entries`, :func:`gemini_entries`,
:func:`acp_entries`), one for baton's own ``baton.*`` events (:func:`baton_entries`), and
:class:`LogRenderer`, which joins streamed text deltas into whole entries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

Event = dict[str, Any]
SUMMARY = 200  # characters of a tool's input or output shown on one line
OUTPUT_LINES = 12  # lines of a tool's output shown


@dataclass(frozen=True)
class Entry:
    kind: str  # text | tool | output | error | info | done
    text: str
    delta: bool = False  # a chunk of a longer text (Gemini streams assistant text in pieces)


def clip(value: Any, limit: int = SUMMARY) -> str:
    """One line of at most ``limit`` characters (JSON for structures)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def excerpt(value: Any, lines: int = OUTPUT_LINES, limit: int = SUMMARY) -> str:
    """A tool's output as it reads: its first ``lines`` lines (each clipped to ``limit`` characters,
    trailing blank ones dropped), then how many more there were."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    rows = text.rstrip().splitlines()
    shown = [r.rstrip() if len(r.rstrip()) <= limit else r.rstrip()[: limit - 1] + "…" for r in rows[:lines]]
    more = len(rows) - lines
    return "\n".join(shown) + (f"\n… ({more} more lines)" if more > 0 else "")


def _tool_input(value: Any) -> str:
    """The telling part of a tool's input: the command, the path, or the whole input."""
    if isinstance(value, dict):
        for name in ("command", "cmd", "file_path", "path", "pattern", "query", "url"):
            if isinstance(value.get(name), str | list):
                return clip(value[name])
    return clip(value) if value not in (None, {}, "") else ""


def _block_text(content: Any) -> str:
    """A tool result's content: a string, or a list of ``{"type":"text","text":...}`` blocks."""
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return "" if content is None else str(content)


# -- Claude ------------------------------------------------------------------------------------------


def claude_entries(event: Event) -> list[Entry]:
    """Claude ``--output-format stream-json`` (and the fake agent): ``system``/``init``; ``assistant``
    and ``user`` events whose ``message.content`` holds ``text``, ``tool_use``, ``tool_result`` blocks;
    ``result``."""
    kind = event.get("type")
    if kind == "system" and event.get("subtype") == "init":
        return [Entry("info", f"session {event.get('session_id')} · model {event.get('model', '?')}")]
    if kind in ("assistant", "user"):
        message = event.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            return [Entry("text", content)] if kind == "assistant" else []
        return [e for block in content or [] if isinstance(block, dict) for e in _claude_block(block)]
    if kind == "result":
        return _claude_result(event)
    return []


def _claude_block(block: Event) -> list[Entry]:
    kind = block.get("type")
    if kind == "text" and block.get("text"):
        return [Entry("text", str(block["text"]))]
    if kind == "tool_use":
        return [Entry("tool", f"{block.get('name', 'tool')} {_tool_input(block.get('input'))}".rstrip())]
    if kind == "tool_result":
        text = excerpt(_block_text(block.get("content")))
        return [Entry("error" if block.get("is_error") else "output", text)]
    return []


def _claude_result(event: Event) -> list[Entry]:
    entries = [Entry("error", clip(e)) for e in event.get("errors") or []]
    if event.get("is_error") and not entries:
        entries.append(Entry("error", clip(event.get("result") or event.get("subtype") or "error")))
    cost = event.get("total_cost_usd")
    spent = f", ${cost:.4f}" if isinstance(cost, int | float) else ""
    status = "failed" if event.get("is_error") else "done"
    turns = event.get("num_turns", "?")
    return [*entries, Entry("done", f"{status} ({turns} turn{'' if turns == 1 else 's'}{spent})")]


# -- Codex ------------------------------------------------------------------------------------------


def codex_entries(event: Event) -> list[Entry]:
    """Codex ``exec --json``: ``thread.started``; ``item.started``/``item.completed`` with an ``item`` of
    type ``agent_message``, ``reasoning``, ``command_execution``, ``file_change``, ``mcp_tool_call``,
    ``web_search``, ``todo_list`` or ``error``; ``turn.completed``/``turn.failed``; ``error``."""
    kind = event.get("type")
    if kind == "thread.started":
        return [Entry("info", f"thread {event.get('thread_id')}")]
    if kind == "item.started" and isinstance(event.get("item"), dict):
        item = event["item"]
        if item.get("type") == "command_execution":
            return [Entry("tool", f"shell {clip(item.get('command', ''))}")]
        return []
    if kind == "item.completed" and isinstance(event.get("item"), dict):
        return _codex_item(event["item"])
    if kind == "turn.completed":
        usage = event.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        return [Entry("done", f"done ({usage.get('output_tokens', '?')} output tokens)")]
    if kind == "turn.failed":
        error = event.get("error")
        return [Entry("error", clip(error.get("message") if isinstance(error, dict) else error))]
    if kind == "error":
        return [Entry("error", clip(event.get("message") or "error"))]
    return []


def _codex_item(item: Event) -> list[Entry]:
    kind = item.get("type")
    if kind == "agent_message":
        return [Entry("text", str(item.get("text", "")))]
    if kind == "command_execution":
        code = item.get("exit_code")
        output = excerpt(item.get("aggregated_output") or f"exit {code}")
        return [Entry("output" if code in (0, None) else "error", output)]
    if kind == "file_change":
        changes = item.get("changes") or []
        named = ", ".join(
            f"{c.get('kind', '?')} {c.get('path', '?')}" for c in changes if isinstance(c, dict)
        )
        return [Entry("tool", f"edit {clip(named)}")]
    if kind == "mcp_tool_call":
        return [Entry("tool", f"{item.get('server', '?')}.{item.get('tool', '?')} {item.get('status', '')}")]
    if kind == "web_search":
        return [Entry("tool", f"web search {clip(item.get('query', ''))}")]
    if kind == "error":
        return [Entry("error", clip(item.get("message") or item))]
    return []  # reasoning, todo lists: not the conversation


# -- Gemini -----------------------------------------------------------------------------------------


def gemini_entries(event: Event) -> list[Entry]:
    """Gemini ``--output-format stream-json``: ``init``; ``message`` (assistant text arrives in ``delta``
    chunks, joined by :class:`LogRenderer`); ``tool_use``; ``tool_result``; ``error`` (warning or
    error); ``result``."""
    kind = event.get("type")
    if kind == "init":
        return [Entry("info", f"session {event.get('session_id')} · model {event.get('model', '?')}")]
    if kind == "message" and event.get("role") == "assistant" and isinstance(event.get("content"), str):
        return [Entry("text", event["content"], delta=bool(event.get("delta")))]
    if kind == "tool_use":
        return [Entry("tool", f"{event.get('tool_name', 'tool')} {_tool_input(event.get('parameters'))}")]
    if kind == "tool_result":
        error = event.get("error")
        if event.get("status") == "error" or error:
            message = error.get("message") if isinstance(error, dict) else error
            return [Entry("error", clip(message or event.get("output") or "tool failed"))]
        return [Entry("output", excerpt(event.get("output") or ""))]
    if kind == "error":
        return [Entry("error" if event.get("severity") == "error" else "info", clip(event.get("message")))]
    if kind == "result":
        stats = event.get("stats")
        stats = stats if isinstance(stats, dict) else {}
        status = "done" if event.get("status") == "success" else f"failed ({event.get('status')})"
        return [Entry("done", f"{status} ({stats.get('total_tokens', '?')} tokens)")]
    return []


# -- ACP agents (the bridge's events: baton.agents.acpbridge) --------------------------------------


def acp_entries(event: Event) -> list[Entry]:
    """The ACP bridge's events (:mod:`baton.agents.acpbridge`): ``acp.session``, ``acp.update`` (text
    chunks, tool calls, failed tool calls), ``acp.permission``, ``acp.result``, ``acp.error``."""
    kind = event.get("type")
    if kind == "acp.session":
        replayed = event.get("replayed")
        how = " · resumed" if event.get("restored") == "session/resume" else ""
        how = how or (f" · loaded ({replayed} replayed)" if replayed else "")
        return [Entry("info", f"session {event.get('session_id')}{how}")]
    if kind == "acp.update" and isinstance(event.get("update"), dict):
        return _acp_update(event["update"])
    if kind == "acp.permission":
        verdict = "allowed" if event.get("allowed") else "refused"
        return [
            Entry(
                "info", clip(f"{verdict} at {event.get('access')}: {event.get('kind')} {event.get('tool')}")
            )
        ]
    if kind == "acp.result":
        stop = event.get("stop_reason")
        return [Entry("done", "done") if stop == "end_turn" else Entry("error", f"stopped: {stop}")]
    if kind == "acp.error":
        error = event.get("error")
        said = error.get("message") if isinstance(error, dict) else error
        return [Entry("error", clip(f"{event.get('step')}: {said}"))]
    return []


def _acp_update(update: Event) -> list[Entry]:
    kind, content = update.get("sessionUpdate"), update.get("content")
    if kind == "agent_message_chunk" and isinstance(content, dict) and isinstance(content.get("text"), str):
        return [Entry("text", content["text"], delta=True)]
    if kind == "tool_call":
        return [Entry("tool", clip(f"{update.get('kind', 'tool')} {update.get('title', '')}".strip()))]
    if kind == "tool_call_update" and update.get("status") == "failed":
        return [Entry("error", clip(f"{update.get('title') or 'tool'} failed"))]
    return []


def baton_entries(event: Event, agents: Callable[[Event], list[Entry]]) -> list[Entry]:
    """baton's own events in a run's log (``baton.model``: what the agent said of its model API as
    it retried, ``baton.ended``: how the turn ended when it did not succeed); the agent's through
    ``agents``. Its stderr lines (``baton.stderr``) are not shown: the run's error quotes them."""
    kind = event.get("type")
    if kind == "baton.model":
        return [Entry("error", clip(event.get("text") or event.get("detail") or "model API error"))]
    if kind == "baton.ended":
        outcome = event.get("outcome")
        if outcome in (None, "succeeded"):
            return []
        error = event.get("error")
        return [Entry("error", clip(f"{outcome}: {error}" if error else str(outcome), 1000))]
    if isinstance(kind, str) and kind.startswith("baton."):
        return []
    if isinstance(kind, str) and kind.startswith("acp."):  # any agent driven through the ACP bridge
        return acp_entries(event)
    return agents(event)


PARSERS: dict[str, Callable[[Event], list[Entry]]] = {
    "claude": claude_entries,
    "fake": claude_entries,  # the fake agent speaks Claude's format
    "codex": codex_entries,
    "gemini": gemini_entries,
}


class LogRenderer:
    """Feed it a log's lines; it yields whole entries (Gemini's text deltas joined into one)."""

    def __init__(self, agent: str) -> None:
        self._parse = PARSERS.get(agent, claude_entries)
        self._pending: list[str] = []  # text deltas not yet handed out

    def feed(self, lines: Iterable[str]) -> Iterator[Entry]:
        for line in lines:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                yield from self.flush()
                yield Entry("info", clip(line))  # not JSON: the agent's own words, shown as is
                continue
            for entry in baton_entries(event, self._parse) if isinstance(event, dict) else []:
                if entry.delta:
                    self._pending.append(entry.text)
                    continue
                yield from self.flush()
                yield entry

    def flush(self) -> Iterator[Entry]:
        """The joined text of pending deltas, if any (call at the end of a log)."""
        if self._pending:
            text, self._pending = "".join(self._pending), []
            yield Entry("text", text)
