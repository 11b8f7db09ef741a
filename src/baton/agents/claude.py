"""Claude Code adapter (also drives the fake agent, which honours the same flags).

Measured behaviour this relies on (AGENT_CLIS.md): ``--session-id`` pre-assigns a NEW id and fails on
an existing one, so only fresh runs use it; ``--resume <id>`` keeps the id and appends to the same
transcript, from any cwd; ``--fork-session`` with ``--resume`` makes a new id carrying the history;
``--continue`` is "latest in this directory" and only used when asked. The transcript is one file,
``$CLAUDE_CONFIG_DIR/projects/<mangled cwd>/<id>.jsonl``, found here by id rather than by re-deriving
the mangling. A missing conversation is reported as ``No conversation found with session ID``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from baton.agents.base import Capabilities, Launch, Turn
from baton.errors import AgentError
from baton.files import write_json
from baton.models import Mode, Outcome

NOT_FOUND = "No conversation found with session ID"
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def bundled_claude() -> str | None:
    """The CLI binary inside the ``claude-agent-sdk`` wheel, if that is installed."""
    spec = importlib.util.find_spec("claude_agent_sdk")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "_bundled" / "claude"
    return str(path) if path.is_file() else None


def fake_agent_bin() -> list[str]:
    """Run the fake agent with this interpreter, without site-packages: it needs only the stdlib."""
    return [sys.executable, "-S", str(Path(__file__).parent.parent / "testing" / "fake_agent.py")]


class ClaudeAgent:
    capabilities = Capabilities(
        preassigned_id=True,
        resume_by_id=True,
        continue_latest=True,
        fork=True,
        reports_cost=True,
        not_found=NOT_FOUND,
    )

    def __init__(self, name: str, home: Path, binary: str | list[str] | None) -> None:
        self.name = name
        self._home = home
        self._binary = binary

    @property
    def home(self) -> Path:
        return self._home

    @property
    def command(self) -> list[str]:
        if isinstance(self._binary, list):
            return list(self._binary)
        binary = self._binary or bundled_claude() or shutil.which("claude")
        if not binary:
            raise AgentError(
                "Claude Code was not found: pip install 'baton[claude]' (bundles the CLI), "
                "put `claude` on PATH, or set BATON_CLAUDE_BIN"
            )
        return [binary]

    def prepare_home(self, ttl_days: float) -> None:
        self._home.mkdir(parents=True, exist_ok=True)
        path = self._home / "settings.json"
        settings: dict[str, Any] = {}
        if path.is_file():
            try:
                loaded = json.loads(path.read_text() or "{}")
                settings = loaded if isinstance(loaded, dict) else {}
            except json.JSONDecodeError as exc:
                raise AgentError(f"{path} is not valid JSON ({exc}); fix or remove it") from exc
        want = max(1, math.ceil(ttl_days))
        current = settings.get("cleanupPeriodDays")
        if not isinstance(current, int) or current < want:
            settings["cleanupPeriodDays"] = want
            write_json(path, settings)

    def retention(self, ttl_days: float) -> tuple[bool, str]:
        try:
            value = json.loads((self._home / "settings.json").read_text()).get("cleanupPeriodDays")
        except (OSError, json.JSONDecodeError, AttributeError):
            value = None
        if not isinstance(value, int):
            return False, "cleanupPeriodDays is not set: Claude Code deletes transcripts after 30 days"
        ok = value >= ttl_days
        return ok, f"cleanupPeriodDays = {value} ({'≥' if ok else '<'} baton TTL {ttl_days:g} days)"

    def launch(self, mode: Mode, prompt: str, session_id: str | None) -> Launch:
        argv = [*self.command, "-p", prompt, "--output-format", "stream-json", "--verbose"]
        new_id: str | None = None
        if mode in (Mode.FRESH, Mode.RECOVER):
            new_id = str(uuid.uuid4())
            argv += ["--session-id", new_id]
        elif mode == Mode.RESUME:
            argv += ["--resume", _need(session_id, mode)]
        elif mode == Mode.FORK:
            new_id = str(uuid.uuid4())
            argv += ["--resume", _need(session_id, mode), "--fork-session", "--session-id", new_id]
        elif mode == Mode.CONTINUE:
            argv += ["--continue"]
        else:
            raise AgentError(f"mode {mode.value!r} cannot be launched directly")
        return Launch(argv=argv, env={"CLAUDE_CONFIG_DIR": str(self._home)}, new_session_id=new_id)

    def read_event(self, line: str, turn: Turn) -> dict[str, Any] | None:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            return None
        if not isinstance(event, dict):
            return None
        turn.events += 1
        if isinstance(event.get("session_id"), str):
            turn.session_id = event["session_id"]
        kind = event.get("type")
        if kind == "system" and event.get("subtype") == "init":
            turn.version = event.get("claude_code_version") or turn.version
        elif kind == "result":
            turn.is_error = bool(event.get("is_error"))
            if isinstance(event.get("result"), str):
                turn.result = event["result"]
            errors = event.get("errors")
            if isinstance(errors, list):
                turn.errors.extend(str(e) for e in errors)
            usage = event.get("usage")
            if isinstance(usage, dict):
                turn.usage = {k: usage[k] for k in USAGE_KEYS if isinstance(usage.get(k), int)}
            cost = event.get("total_cost_usd")
            if isinstance(cost, int | float):
                turn.cost_usd = float(cost)
        return event

    def classify(self, exit_code: int, turn: Turn, stderr: str) -> Outcome:
        if any(NOT_FOUND in e for e in turn.errors) or NOT_FOUND in stderr:
            return Outcome.SESSION_LOST
        if exit_code == 0 and not turn.is_error and turn.result is not None:
            return Outcome.SUCCEEDED
        return Outcome.FAILED

    def transcript_files(self, session_id: str) -> list[Path]:
        projects = self._home / "projects"
        if not projects.is_dir():
            return []
        return sorted(p for p in projects.glob(f"*/{session_id}.jsonl") if p.is_file() and p.stat().st_size)

    def leftover_files(self, session_id: str) -> list[Path]:
        """None: the transcript is all this CLI keeps of a session."""
        return []

    def after_hydrate(self, session_id: str, cwd: Path) -> None:
        """Nothing to do: ``--resume`` finds the transcript in any project folder."""

    def version(self) -> str | None:
        return cli_version(tuple(self.command))


@cache
def cli_version(command: tuple[str, ...]) -> str | None:
    """The first word ``COMMAND --version`` prints (``2.1.327 (Claude Code)`` → ``2.1.327``)."""
    try:
        out = subprocess.run(
            [*command, "--version"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = out.stdout.strip().split()
    if out.returncode != 0 or not words:
        return None
    return next((w for w in words if w[:1].isdigit()), words[0])


def _need(session_id: str | None, mode: Mode) -> str:
    if not session_id:
        raise AgentError(f"mode {mode.value!r} needs an existing session id")
    return session_id
