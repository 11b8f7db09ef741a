"""A model's context window, per agent: how many tokens a model holds (:func:`known_window`, from a table
of model name patterns, :data:`WINDOWS`), how much of it a turn's conversation held (each adapter
records it in :attr:`baton.agents.base.Turn.context_tokens` where its events say it per model request;
:func:`measured` otherwise), and the words with which a model API refuses a conversation longer than its
window, as each CLI relays them (:func:`too_long`). The runner decides what to do about it
(:mod:`baton.runner.window`: a rollover into a new conversation with a recap, or a compaction in place
where the CLI can). What each CLI reports,
measured against the mock models: docs/agent-clis.md, "Conversations that outgrow the window".
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

# Known context windows (tokens), by model name pattern (fnmatch, lower case), the first match wins.
# Vendors' published numbers; a setting (``context_window``) overrides them for a model not listed or a
# provider that holds less.
WINDOWS: tuple[tuple[str, int], ...] = (
    ("claude-*", 200_000),
    ("gpt-5*", 400_000),
    ("gpt-4.1*", 1_047_576),
    ("o3*", 200_000),
    ("o4*", 200_000),
    ("gemini-1.5-pro*", 2_097_152),
    ("gemini-*", 1_048_576),  # 2.0, 2.5, 3.x: 1,048,576 input tokens
    ("codex-*", 400_000),
)

# An agent's model when its events name none (or only an alias, as Gemini CLI's ``pro``): what its CLI
# runs by default.
AGENT_DEFAULTS: dict[str, int] = {"claude": 200_000, "codex": 400_000, "gemini": 1_048_576}


def known_window(model: str | None, agent: str) -> int | None:
    """The window of ``model`` from :data:`WINDOWS`, else the agent's default model's; None when
    neither is known (then only the ``context_window`` setting gives one)."""
    name = (model or "").strip().lower()
    for pattern, tokens in WINDOWS:
        if name and fnmatch.fnmatchcase(name, pattern):
            return tokens
    return AGENT_DEFAULTS.get(agent)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def request_tokens(usage: dict[str, Any]) -> int:
    """The tokens one model request's usage says the conversation held: its prompt (fresh, cache
    writes and cache reads: Anthropic counts them apart) and the answer, which the next request carries."""
    names = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
    return sum(_count(usage.get(name)) for name in names)


def measured(context_tokens: int | None, usage: dict[str, Any]) -> int | None:
    """The context a turn's conversation held: what its events said per request (``context_tokens``),
    else its own usage (a CLI that reports usage per turn or per thread, as a delta: the sum of the turn's
    requests, exact for a turn of one request and more than the context for one of several tool calls,
    so a rollover comes early rather than late); None when it reported no usage."""
    if context_tokens:
        return context_tokens
    # OpenAI's input_tokens include the cached ones (cached_input_tokens is a part, not added);
    # Gemini's usage as baton records it excludes them (cache_read_input_tokens is added)
    total = _count(usage.get("input_tokens")) + _count(usage.get("output_tokens"))
    total += _count(usage.get("cache_read_input_tokens")) + _count(usage.get("cache_creation_input_tokens"))
    return total or None


# How each vendor's API refuses a prompt longer than the window, and how its CLI relays it:
# Anthropic (HTTP 400 invalid_request_error): "prompt is too long: N tokens > M maximum", which Claude Code
# shows as "Prompt is too long" (its result's terminal_reason: prompt_too_long); OpenAI (HTTP 400,
# code context_length_exceeded), which Codex shows as "Codex ran out of room in the model's context
# window"; Gemini (HTTP 400 INVALID_ARGUMENT): "The input token count (N) exceeds the maximum number of
# tokens allowed (M)", relayed whole by Gemini CLI.
_TOO_LONG = re.compile(
    r"prompt is too long"
    r"|context_length_exceeded"
    r"|ran out of room in the model'?s context window"
    r"|exceeds the context window"
    r"|input token count \(\d+\) exceeds the maximum number of tokens allowed",
    re.IGNORECASE,
)
_NUMBERS = (
    re.compile(r"prompt is too long:\s*(\d+)\s*tokens\s*>\s*(\d+)", re.IGNORECASE),
    re.compile(r"input token count \((\d+)\) exceeds the maximum number of tokens allowed \((\d+)\)", re.I),
)


def too_long(text: str) -> str | None:
    """The line of ``text`` (an agent's errors, result and stderr) in which the model refused the
    conversation as longer than its window, one line; None when it says no such thing."""
    for line in text.splitlines():
        if _TOO_LONG.search(line):
            flat = " ".join(line.split())
            return flat if len(flat) <= 300 else flat[:299] + "…"
    return None


def refused_sizes(text: str) -> tuple[int, int] | None:
    """The prompt's tokens and the window, when the refusal says them (Anthropic's, Gemini's)."""
    for pattern in _NUMBERS:
        if found := pattern.search(text):
            return int(found[1]), int(found[2])
    return None
