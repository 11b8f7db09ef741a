"""Conversations that outgrow their model's context window: what a turn's conversation held, recorded on
its run (:func:`held`, ``usage.context``), and the one decision made of it (:func:`rollover`). Over
``context_threshold`` of the window, the next turn starts a new native conversation with a recap (Mode
``recover``, lineage ``rollover``), or, where the CLI compacts headlessly (Claude Code's ``/compact``:
``Capabilities.compacts``), compacts it in place first (lineage ``compacted``; still over after that: a
rollover). A conversation the model refused (``context_full``) rolls over (``too_long``) and the run
runs the instruction again, once (:func:`baton.runner.run._attempts`). Windows: the ``context_window``
setting, else the table of known models (:mod:`baton.agents.window`).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from baton.agents import Capabilities, Turn
from baton.agents.window import known_window, measured
from baton.keys import Key
from baton.models import Outcome, RunRecord
from baton.settings import Settings

ROLLOVER = "rollover"  # lineage: the last turn held more than the threshold of the window
TOO_LONG = "too_long"  # lineage: the model refused the conversation as longer than its window
COMPACTED = "compacted"  # a run's lineage: it compacted its conversation in place first (the id kept)
COMPACT_FAILED = "compact_failed"  # ...tried to, and the CLI could not: it resumed the conversation as it was
LOOK_BACK = 10  # the key's latest runs searched for its conversation's last measure


def window_of(settings: Settings, key: Key, model: str | None) -> int | None:
    """The window of ``key``'s model: the ``context_window`` setting for the key's repository (a slug
    pattern), else for its agent, else its bare ``N``; else the table's for ``model``; None: unknown."""
    windows = settings.context_windows
    for name, tokens in windows.items():
        if "/" in name and fnmatch.fnmatchcase(key.repo.slug, name):
            return tokens
    return windows.get(key.agent) or windows.get("") or known_window(model, key.agent)


def held(settings: Settings, key: Key, turn: Turn, usage: dict[str, Any]) -> dict[str, Any] | None:
    """What the turn's conversation held, for its run's ``usage.context``: ``tokens`` (the last model
    request's prompt and answer where the agent's events say it, else its usage:
    :func:`baton.agents.window.measured`), the ``window`` of its ``model``; None without usage."""
    tokens = measured(turn.context_tokens, usage)
    if tokens is None:
        return None
    return {"tokens": tokens, "window": window_of(settings, key, turn.model), "model": turn.model}


@dataclass(frozen=True)
class Rollover:
    """Why the key's next turn starts a new conversation: its lineage and the run's note."""

    lineage: str
    note: str
    held: str = ""  # over the threshold: "the conversation held N of M tokens (…)"
    compacted: bool = False  # ...at a turn that compacted it first: compacting again would not do

    def compacts(self, capabilities: Capabilities) -> bool:
        """Whether the CLI compacts the conversation in place instead (Claude Code's ``/compact``):
        over the threshold, where it can, unless the turn over it had compacted it already."""
        return self.lineage == ROLLOVER and capabilities.compacts and not self.compacted


def rollover(settings: Settings, recent: list[RunRecord], key: Key, session_id: str) -> Rollover | None:
    """Whether the turn about to resume conversation ``session_id`` rolls it over instead: its last
    measured turn held more than the threshold of the window, or was refused as too long (and the run
    ended before it rolled over, or its rollover was refused too). None: resume it. ``recent``: the
    key's latest runs, the newest first (``LOOK_BACK`` of them)."""
    for run in recent:
        if session_id not in (run.session_id_out, run.session_id_in):
            continue
        if run.outcome == Outcome.CONTEXT_FULL:
            said = f" ({run.error})" if run.error else ""
            return Rollover(TOO_LONG, f"rolled over: the model refused the conversation as too long{said}")
        found = _over(settings, key, run)
        if found is not None or isinstance(run.usage.get("context"), dict):
            return found  # the conversation's latest measure decides
    return None


def _over(settings: Settings, key: Key, run: RunRecord) -> Rollover | None:
    context = run.usage.get("context")
    if not isinstance(context, dict) or settings.context_threshold <= 0:
        return None
    tokens, model = context.get("tokens"), context.get("model")
    window = window_of(settings, key, model if isinstance(model, str) else None)
    if not isinstance(tokens, int) or isinstance(tokens, bool) or not window:
        return None
    if tokens < settings.context_threshold * window:
        return None
    held = f"the conversation held {tokens} of {window} tokens ({tokens / window:.0%} ≥ "
    held += f"{settings.context_threshold:.0%})"
    compacted = run.lineage in (COMPACTED, COMPACT_FAILED)
    after = " after it was compacted" if run.lineage == COMPACTED else ""
    return Rollover(ROLLOVER, f"rolled over: {held}{after}", held, compacted)
