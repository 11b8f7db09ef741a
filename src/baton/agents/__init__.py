"""Agent adapters, chosen by name. ``fake`` is the in-tree stand-in for tests: the Claude adapter
driving :mod:`baton.testing.fake_agent`, a small program that honours Claude Code's flags.

Adapters are imported when asked for, so a missing optional piece of one never breaks the others."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from baton.agents.base import Agent, Capabilities, Launch, Turn
from baton.agents.claude import ClaudeAgent, fake_agent_bin
from baton.errors import AgentError
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


def describe_agent(name: str, settings: Settings) -> dict[str, Any]:
    """What `baton agents` shows: installed or not, version, capabilities, home."""
    agent = get_agent(name, settings)
    problem: str | None = None
    try:
        command: list[str] | None = agent.command
        version = agent.version()
    except AgentError as exc:
        command, version, problem = None, None, str(exc)
    else:
        problem = None if version else "did not report a version"
    return {
        "agent": name,
        "installed": version is not None,
        "version": version,
        "command": command,
        "problem": problem,
        "capabilities": asdict(agent.capabilities),
        "home": str(agent.home),
    }


__all__ = ["AGENTS", "Agent", "Capabilities", "ClaudeAgent", "Launch", "Turn", "describe_agent", "get_agent"]
