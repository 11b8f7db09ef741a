"""The fake agent as a baton adapter: the Claude adapter driving :mod:`baton.testing.fake_agent`, a
small stdlib-only program that honours Claude Code's flags (and reads its prompt from stdin, as
Claude does). Not one of the real agents: tests (and benchmarks, and the demo) register it with
:func:`register_fake`, which also exports ``BATON_AGENTS_EXTRA`` so the ``baton`` processes they
start know it too. ``settings.extra["fake_bin"]`` replaces the program (a path)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from baton.agents import EXTRA_ENV, get_agent, register_agent
from baton.agents.claude import ClaudeAgent
from baton.settings import Settings
from baton.workspace.keyspace import key_spaces

NAME = "fake"
FACTORY = "baton.testing.fake:from_settings"


def fake_agent_bin() -> list[str]:
    """Run the fake agent with this interpreter, without site-packages: it needs only the stdlib. Its
    module is imported here once, so that its compiled form is in ``__pycache__`` before an agent
    walled in (which may not write there) starts it."""
    import baton.testing.fake_agent  # noqa: F401

    return [sys.executable, "-S", str(Path(__file__).parent / "fake_agent_run.py")]


class FakeAgent(ClaudeAgent):
    """The Claude adapter driving the fake agent, which also reads its fault switches (``FAKE_AGENT_*``)
    from the environment."""

    env_patterns = (*ClaudeAgent.env_patterns, "FAKE_AGENT_*")
    credentials, other_credentials, credential_files = (), (), ()  # it needs none


def from_settings(name: str, settings: Settings) -> ClaudeAgent:
    binary = settings.extra.get("fake_bin")
    return FakeAgent(name, settings.home / "homes" / name, binary or fake_agent_bin())


def register_fake() -> None:
    """Register ``fake`` here and, through the environment, in every process started from here."""
    register_agent(NAME, FACTORY)
    entries = [e for e in os.environ.get(EXTRA_ENV, "").split(",") if e.strip()]
    if f"{NAME}={FACTORY}" not in entries:
        os.environ[EXTRA_ENV] = ",".join([*entries, f"{NAME}={FACTORY}"])


def find_transcripts(settings: Settings, session_id: str, agent: str = NAME) -> list[Path]:
    """The transcript files of ``session_id`` in every key home of ``agent`` (tests that know a
    conversation's id but not its key; a fork's home also holds a copy of its source's)."""
    adapter = get_agent(agent, settings)
    return [
        path
        for space in key_spaces(settings, agent)
        for path in adapter.with_home(space.home).transcript_files(session_id)
    ]
