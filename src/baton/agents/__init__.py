"""Agent adapters, chosen by name. ``fake`` is the in-tree stand-in for tests: the Claude adapter
driving :mod:`baton.testing.fake_agent`, a small program that honours Claude Code's flags.

Adapters are imported when asked for, so a missing optional piece of one never breaks the others."""

from __future__ import annotations

from baton.agents.base import Agent, Capabilities, Launch, Turn
from baton.agents.claude import ClaudeAgent, fake_agent_bin
from baton.settings import Settings

AGENTS = ["claude", "codex", "gemini", "fake"]


def get_agent(name: str, settings: Settings) -> Agent:
    home = settings.home / "homes" / name
    if name == "claude":
        return ClaudeAgent(name, home, settings.claude_bin or None)
    if name == "codex":
        from baton.agents.codex import CodexAgent

        return CodexAgent(home, settings.codex_bin)
    if name == "gemini":
        from baton.agents.gemini import GeminiAgent

        return GeminiAgent(home, settings.gemini_bin)
    if name == "fake":
        return ClaudeAgent(name, home, settings.extra.get("fake_bin") or fake_agent_bin())
    raise KeyError(name)


__all__ = ["AGENTS", "Agent", "Capabilities", "ClaudeAgent", "Launch", "Turn", "get_agent"]
