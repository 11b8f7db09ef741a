"""Agent adapters, chosen by name from a registry (name → ``"module:factory"``, imported when asked for, so
a missing optional piece of one adapter never breaks the others); ``factory(name, settings)`` returns an
:class:`Agent`. Extra agents (the tests' ``fake``, a user's own adapter) are registered with
:func:`register_agent`, or for every process started from this environment with
``BATON_AGENTS_EXTRA="name=module:factory[,…]"``, read when this package is imported. :func:`clean_error`
drops the stderr lines an adapter module's ``NOISE`` declares never the error, in one place for the
runner, the CLI and the dashboard. The agents' event streams as readable entries: :mod:`events`.

May import: the ground floor only (errors, models, settings, files, install).
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import asdict
from typing import Any

from baton.agents.base import Agent, AgentBase, Capabilities, Launch, Turn
from baton.agents.versions import is_tested
from baton.errors import AgentError, BadInput
from baton.settings import Settings

BUILTIN = {
    "claude": "baton.agents.claude:from_settings",
    "codex": "baton.agents.codex:from_settings",
    "gemini": "baton.agents.gemini:from_settings",
    "copilot": "baton.agents.copilot:from_settings",
    "opencode": "baton.agents.opencode:from_settings",
}
EXTRA_ENV = "BATON_AGENTS_EXTRA"
VERSION_CACHE = "cli-versions.json"  # under BATON_HOME/cache (see baton.agents.versions)
_FACTORIES: dict[str, str] = dict(BUILTIN)
AGENTS: list[str] = list(BUILTIN)  # every registered name, in order; extended in place by register_agent


def register_agent(name: str, factory: str) -> None:
    """Make ``name`` an agent built by ``factory`` (``"package.module:function"``) in this process."""
    module, sep, attr = factory.partition(":")
    if not name or not sep or not module or not attr:
        raise BadInput(f"agent {name!r}: the factory must be 'module:function', not {factory!r}")
    _FACTORIES[name] = factory
    if name not in AGENTS:
        AGENTS.append(name)


def unregister_agent(name: str) -> None:
    """Forget an agent :func:`register_agent` made (a test's own, after it); a built-in one stays."""
    if name in BUILTIN:
        return
    _FACTORIES.pop(name, None)
    if name in AGENTS:
        AGENTS.remove(name)


def register_from_env(value: str | None = None) -> None:
    """Register the agents that ``BATON_AGENTS_EXTRA`` (or ``value``) names."""
    text = os.environ.get(EXTRA_ENV, "") if value is None else value
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, _, factory = entry.partition("=")
        register_agent(name.strip(), factory.strip())


def listed(names: list[str] | None = None) -> str:
    """The registered agents (or ``names``) as help texts name them: ``claude, codex, gemini, copilot or
    opencode``. Every help text that lists the agents says this, so none is ever a stale hand-written
    list; the API's ``enum`` is :data:`AGENTS` itself."""
    names = list(AGENTS if names is None else names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def get_agent(name: str, settings: Settings) -> Agent:
    """The adapter for ``name``; KeyError for a name nobody registered."""
    module, _, attr = _FACTORIES[name].partition(":")
    factory = getattr(importlib.import_module(module), attr)
    agent: Agent = factory(name, settings)
    if isinstance(agent, AgentBase) and agent.version_cache is None:
        agent.version_cache = settings.home / "cache" / VERSION_CACHE
    return agent


def describe_agent(name: str, settings: Settings) -> dict[str, Any]:
    """What `baton agents` shows: installed or not, version, capabilities, home, credentials."""
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
        "tested": version is not None and is_tested(name, version),  # see baton.agents.versions
        "command": command,
        "problem": problem,
        "capabilities": asdict(agent.capabilities),
        "home": str(agent.home),
        "credentials": list(agent.credentials),
    }


def clean_error(agent: str, text: str) -> str:
    """``text`` without the lines the agent's CLI prints that are never the error (its adapter
    module's ``NOISE``, such as Codex's ``WARNING: proceeding, even though we could not create PATH
    aliases…``), so such a line never hides the real cause. Parts of one line joined by ``"; "`` (how
    the runner joins an agent's last stderr lines) count as lines. ``text`` unchanged when it is all
    noise (better noise than nothing)."""
    noise = noise_of(agent)
    if not noise:
        return text
    lines = []
    for line in text.splitlines():
        parts = [p for p in line.split("; ") if not any(n.fullmatch(p.strip()) for n in noise)]
        if parts:
            lines.append("; ".join(parts))
    return "\n".join(lines) if any(line.strip() for line in lines) else text


def noise_of(agent: str) -> tuple[re.Pattern[str], ...]:
    """The ``NOISE`` patterns of the module that builds ``agent`` (none for an unknown agent)."""
    module = _FACTORIES.get(agent, "").partition(":")[0]
    if not module:
        return ()
    return tuple(re.compile(p) for p in getattr(importlib.import_module(module), "NOISE", ()))


register_from_env()

__all__ = [
    "AGENTS",
    "BUILTIN",
    "Agent",
    "Capabilities",
    "Launch",
    "Turn",
    "clean_error",
    "describe_agent",
    "get_agent",
    "listed",
    "register_agent",
]
