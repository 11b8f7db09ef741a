"""The agent seam: what baton needs from one coding-agent CLI.

An adapter turns a mode and a prompt into an argv and an environment, reads the CLI's event stream
line by line into a :class:`Turn`, classifies how the turn ended, and knows where the CLI keeps a
session's transcript files inside its (relocated) home, so they can be snapshotted and hydrated.
Adapters never start processes, touch git or the store: the runner does.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from baton.errors import AgentError
from baton.models import Mode, Outcome


@dataclass(frozen=True)
class Capabilities:
    """What an agent CLI can do; asking for anything else is a clear error."""

    preassigned_id: bool  # a fresh run can be given its session id up front
    resume_by_id: bool
    continue_latest: bool  # "the latest conversation in this directory"
    fork: bool
    reports_cost: bool
    not_found: str  # how the CLI says a conversation is gone
    resume_keeps_id: bool = True  # a resume that reports another id started a NEW conversation
    cumulative_usage: bool = False  # usage is reported per thread, not per turn (baton records deltas)

    def supports(self, mode: Mode) -> bool:
        return {
            Mode.CONTINUE: self.continue_latest,
            Mode.FORK: self.fork,
            Mode.RESUME: self.resume_by_id,
        }.get(mode, True)


@dataclass
class Turn:
    """What one agent process reported, accumulated from its event stream."""

    session_id: str | None = None
    result: str | None = None
    is_error: bool = False
    errors: list[str] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    cost_usd: float | None = None
    version: str | None = None
    events: int = 0


def find_binary(setting: str, name: str, env_name: str, install: str) -> list[str]:
    """The CLI to run: the setting (``BATON_*_BIN``), else ``name`` on PATH, else next to this Python
    (the project's set-up links the pinned npm CLIs into the virtualenv's ``bin``)."""
    if setting:
        return [setting]
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        raise AgentError(f"{name} was not found: {install}, put `{name}` on PATH, or set {env_name}")
    return [found]


@dataclass(frozen=True)
class Launch:
    """How to start one turn: the argv (never a secret in it) and the environment to add."""

    argv: list[str]
    env: dict[str, str]
    new_session_id: str | None = None  # pre-assigned id of a fresh or forked conversation
    stdin: bytes | None = None  # written to the agent's stdin, then closed (None: /dev/null)


class Agent(Protocol):
    name: str
    capabilities: Capabilities

    @property
    def command(self) -> list[str]:
        """The CLI's argv prefix; raises AgentError naming how to install it when it is missing."""
        ...

    @property
    def home(self) -> Path:
        """The agent's relocated home inside BATON_HOME."""
        ...

    def prepare_home(self, ttl_days: float) -> None:
        """Create the home and align the CLI's own retention with baton's TTL."""
        ...

    def launch(self, mode: Mode, prompt: str, session_id: str | None) -> Launch:
        """``session_id``: the conversation to resume/fork (None for fresh/recover/continue)."""
        ...

    def read_event(self, line: str, turn: Turn) -> dict[str, Any] | None:
        """Parse one stdout line into ``turn``; returns the event object, or None if not JSON."""
        ...

    def classify(self, exit_code: int, turn: Turn, stderr: str) -> Outcome:
        """SUCCEEDED, FAILED or SESSION_LOST for a process that exited on its own."""
        ...

    def transcript_files(self, session_id: str) -> list[Path]:
        """The files (inside :attr:`home`) that hold the conversation; empty when it is gone."""
        ...

    def leftover_files(self, session_id: str) -> list[Path]:
        """Other files the CLI keeps for the session that are no transcript (removed by a reset)."""
        ...

    def after_hydrate(self, session_id: str, cwd: Path) -> None:
        """Make hydrated transcript files resumable from ``cwd`` (e.g. a directory index)."""
        ...

    def retention(self, ttl_days: float) -> tuple[bool, str]:
        """Whether the CLI's own transcript retention keeps conversations at least ``ttl_days``."""
        ...

    def version(self) -> str | None: ...
