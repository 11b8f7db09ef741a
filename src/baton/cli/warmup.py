"""What the warm server (:mod:`baton.cli.warmserver`) runs before it serves, so that a served run does
not pay for anything a process pays only once.

- :func:`warm_caches`, in the server: the caches that hold for every run on this machine and
  installation.
- :func:`rehearse`, in the server and again in each spare child while it waits for its connection:
  the code a run goes through before and after its agent, on made-up input, with nothing written. The
  server's pass fills the first-call caches (compiled patterns, lookups) that every child then shares;
  the spare's pass takes, while nobody waits, the page faults of a freshly forked process touching that
  code for the first time. Measured in a fork of the server: ``load_settings`` 1.4 ms cold, 0.1 ms
  rehearsed; the request's checks 1.4 ms and 0.16 ms.

Nothing here writes outside a scratch directory of its own, removed after: no store, no key's space
(the agents' launches are given a scratch home), no Landlock domain (a ruleset's rules are computed,
never applied). Whatever fails only leaves that part to the first run.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from baton.settings import Settings

SESSION = "00000000-0000-4000-8000-000000000000"
EVENTS = (  # the shapes of the events a turn streams (Claude Code's; the others read theirs alike)
    {"type": "system", "subtype": "init", "session_id": SESSION, "claude_code_version": "0"},
    {"type": "assistant", "session_id": SESSION, "message": {"content": [{"type": "text", "text": "."}]}},
    {"type": "result", "session_id": SESSION, "is_error": False, "result": ".", "usage": {"input_tokens": 1}},
)


def warm_caches() -> None:
    """Fill, once for every child, the caches that hold the same for every run on this machine and
    installation: the kernel's Landlock support, where the Claude Agent SDK is, the compiled
    allow-lists of the agents' environment (without operator additions), the packaged prompt
    templates."""
    from baton.agents import claude
    from baton.agents.claude import ClaudeAgent
    from baton.agents.codex import CodexAgent
    from baton.agents.gemini import GeminiAgent
    from baton.models import PromptKind
    from baton.runner import prompts
    from baton.sandbox import agentenv, confine

    with contextlib.suppress(Exception):
        confine._support()
        claude.bundled_claude()
        for agent in (ClaudeAgent, CodexAgent, GeminiAgent):
            agentenv.allowed({}, (*agentenv.BASE_NAMES, *agent.env_patterns))
        for kind in PromptKind:
            prompts.load_template(kind, Path("/nonexistent"))


def rehearse(home: str) -> None:
    """The run path on made-up input (see the module); never raises."""
    from baton.cli import fast
    from baton.settings import load_settings

    with contextlib.suppress(Exception), tempfile.TemporaryDirectory(prefix="baton-warm-up-") as scratch:
        settings = load_settings(overrides={"home": home})
        fast.parse(["-a", "claude", "-r", "r", "-t", "t", "--json"], fast.RUN_OPTIONS)
        for agent in ("claude", "codex", "gemini"):
            with contextlib.suppress(Exception):  # a launch may write its key's home: a scratch one
                _rehearse_agent(agent, settings.with_(home=Path(scratch)))


def _rehearse_agent(name: str, settings: Settings) -> None:
    from baton.agents.base import Turn
    from baton.models import Access, Mode
    from baton.runner.request import RunRequest
    from baton.runner.resolve import check_request
    from baton.sandbox import agentenv, confine, walls

    request = RunRequest(agent=name, repo="https://example.invalid/warm/up.git", thread="warm-up", prompt=".")
    resolved = check_request(request, settings, credentials=False)
    agent = resolved.agent
    launch = agent.launch(Mode.RESUME, ".", SESSION, Access.EDIT, True)
    turn = Turn()
    for event in EVENTS:
        agent.read_event(json.dumps(event), turn)
    agent.classify(0, turn, "")
    nowhere = Path("/nonexistent/baton-warm-up")
    env = agentenv.agent_env({}, agent.env_names(), (), launch.env, nowhere / "home", nowhere / "tmp")
    spec = confine.walls_for(settings, agent, Access.EDIT, nowhere / "worktree", None, env, request.repo)
    walls.rules(spec)  # computed only: no directory made, no domain entered
