"""Agent adapters, chosen by name. ``fake`` is the in-tree stand-in for tests: the Claude adapter
driving :mod:`baton.testing.fake_agent`, a small program that honours Claude Code's flags."""

from __future__ import annotations

from baton.agents.base import Agent, Capabilities, Launch, Turn
from baton.agents.claude import ClaudeAgent, fake_agent_bin
from baton.settings import Settings

AGENTS = ["claude", "fake"]


def get_agent(name: str, settings: Settings) -> Agent:
    home = settings.home / "homes" / name
    if name == "claude":
        return ClaudeAgent(name, home, settings.claude_bin or None)
    if name == "fake":
        return ClaudeAgent(name, home, settings.extra.get("fake_bin") or fake_agent_bin())
    raise KeyError(name)


__all__ = ["AGENTS", "Agent", "Capabilities", "ClaudeAgent", "Launch", "Turn", "get_agent"]
