"""Claude Code adapter (it also drives the fake agent, which honours the same flags): ``claude -p
--output-format stream-json --verbose`` with the prompt on stdin, ``--session-id`` for a fresh run's
pre-assigned id, ``--resume <id>`` (with ``--fork-session`` to fork), ``--continue`` only when asked;
each access level as a permission mode and tool lists (:attr:`ClaudeAgent.access_flags`); the home
relocated by ``CLAUDE_CONFIG_DIR`` with ``cleanupPeriodDays`` at least baton's TTL; and the transcript
read for an instruction the model never answered (:meth:`ClaudeAgent.unanswered_prompt`). What it
relies on was measured on the CLI: docs/agent-clis.md, "Claude Code" and "Access levels".
"""

from __future__ import annotations

import importlib.util
import json
import math
import uuid
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from baton.agents import limits, signals, window
from baton.agents.base import (
    AgentBase,
    Capabilities,
    Launch,
    McpServer,
    ModelApi,
    ModelKey,
    Turn,
    find_binary,
    guard_prompt,
    need_session,
)
from baton.agents.formats import claude_problem
from baton.agents.limits import Limit
from baton.agents.signals import Signal
from baton.errors import AgentError
from baton.files import write_json
from baton.models import Access, Mode, Outcome
from baton.settings import Settings

NOT_FOUND = "No conversation found with session ID"
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
INSTALL = "pip install claude-agent-sdk (it bundles the CLI)"
SLASH = ("/",)  # a slash command, even on stdin
COMPACT = b"/compact"  # Claude Code's slash command that compacts the conversation (stdin of -p)


def bundled_claude() -> str | None:
    """The CLI binary inside the ``claude-agent-sdk`` wheel, if that is installed."""
    package = _sdk_package()
    if package is None:
        _sdk_package.cache_clear()  # looked for again next time: it may be installed by then
        return None
    path = package / "_bundled" / "claude"
    return str(path) if path.is_file() else None


@cache
def _sdk_package() -> Path | None:
    """Where ``claude_agent_sdk`` is installed: a search of ``sys.path``, which a run would otherwise
    make each of the five times it needs the command."""
    spec = importlib.util.find_spec("claude_agent_sdk")
    return Path(spec.origin).parent if spec is not None and spec.origin is not None else None


DEFAULT_API = "https://api.anthropic.com"
CLOUDS = ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX")  # the model is a cloud's, at its own host


class ClaudeAgent(AgentBase):
    capabilities = Capabilities(
        preassigned_id=True,
        resume_by_id=True,
        continue_latest=True,
        fork=True,
        reports_cost=True,
        not_found=NOT_FOUND,
        prompt_before_answer=True,  # a turn that fails before the answer leaves it unanswered
        compacts=True,  # `-p` takes `/compact` (measured: docs/agent-clis.md)
    )
    credentials: tuple[str, ...] = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN")
    # an API key (or a gateway's bearer token) can be stood in for; a subscription's OAuth token cannot
    model_key = ModelKey(
        "ANTHROPIC_BASE_URL",
        (("ANTHROPIC_API_KEY", "x-api-key"), ("ANTHROPIC_AUTH_TOKEN", "authorization")),
        api=ModelApi.ANTHROPIC,
    )
    auth_hint = "an API key, or a long-lived token from `claude setup-token`"
    auth_failures = ("Not logged in", "Invalid API key", "Please run /login", "OAuth token has expired")
    # Also documented: a gateway's bearer token, Bedrock and Vertex (their own cloud credentials), and
    # a `claude login` made with CLAUDE_CONFIG_DIR set to the base home (its OAuth credentials file).
    other_credentials: tuple[str, ...] = (
        "ANTHROPIC_AUTH_TOKEN",
        "CLAUDE_CODE_USE_BEDROCK",
        "CLAUDE_CODE_USE_VERTEX",
    )
    credential_files: tuple[str, ...] = (".credentials.json",)
    # What each access level lets the CLI do (measured on 2.1.327 in -p mode as root: docs/agent-clis.md,
    # "Access levels"). A repository's .claude/settings.json can set defaultMode, so every level names its
    # mode; bypassPermissions (--dangerously-skip-permissions) is refused as root, so it is not used. Each
    # flag is written --flag=value: the variadic tool lists then cannot swallow a following argument, and
    # the fake agent's parser skips them.
    access_flags: ClassVar[dict[Access, tuple[str, ...]]] = {
        Access.READ: ("--permission-mode=dontAsk", "--disallowedTools=Write,Edit,NotebookEdit"),
        Access.EDIT: ("--permission-mode=acceptEdits",),
        Access.FULL: ("--permission-mode=acceptEdits", "--allowedTools=Bash"),
    }
    # The environment the CLI reads (fnmatch patterns): credentials, base URL, model and its own
    # switches. Bedrock's and Vertex's variables are not here: add them with BATON_AGENT_ENV.
    env_patterns: tuple[str, ...] = (
        "ANTHROPIC_*",
        "CLAUDE_CODE_*",
        "DISABLE_*",
        "API_TIMEOUT_MS",
        "BASH_DEFAULT_TIMEOUT_MS",
        "BASH_MAX_TIMEOUT_MS",
        "BASH_MAX_OUTPUT_LENGTH",
        "MAX_THINKING_TOKENS",
        "MCP_TIMEOUT",
        "MCP_TOOL_TIMEOUT",
    )
    config_files: tuple[str, ...] = ("settings.json", ".credentials.json", "CLAUDE.md")
    # its memory files and project configuration (nested CLAUDE.md files are read only when it works in
    # their directory: not here); .mcp.json: the project's MCP servers
    instruction_files: tuple[str, ...] = (
        *("CLAUDE.md", "CLAUDE.local.md", ".claude/CLAUDE.md", ".claude/settings.json"),
        *(".claude/settings.local.json", ".claude/agents/", ".claude/commands/", ".claude/skills/"),
        ".mcp.json",
    )

    def __init__(self, name: str, home: Path, binary: str | list[str] | None) -> None:
        super().__init__(home)
        self.name = name
        self._binary = binary

    @property
    def command(self) -> list[str]:
        if isinstance(self._binary, list):
            return list(self._binary)
        return find_binary(self._binary or "", "claude", "BATON_CLAUDE_BIN", INSTALL, bundled_claude())

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

    def launch(
        self,
        mode: Mode,
        prompt: str,
        session_id: str | None,
        access: Access = Access.EDIT,
        walled: bool = False,
        servers: tuple[McpServer, ...] = (),
    ) -> Launch:
        # `-p` is a flag: with no positional prompt the CLI reads the prompt from stdin.
        argv = [*self.command, "-p", "--output-format", "stream-json", "--verbose"]
        argv += self.access_flags[access]
        argv += mcp_flags(servers)
        new_id: str | None = None
        if mode in (Mode.FRESH, Mode.RECOVER):
            new_id = str(uuid.uuid4())
            argv += ["--session-id", new_id]
        elif mode == Mode.RESUME:
            argv += ["--resume", need_session(session_id, mode)]
        elif mode == Mode.FORK:
            new_id = str(uuid.uuid4())
            argv += ["--resume", need_session(session_id, mode), "--fork-session", "--session-id", new_id]
        elif mode == Mode.CONTINUE:
            argv += ["--continue"]
        else:
            raise AgentError(f"mode {mode.value!r} cannot be launched directly")
        stdin = self.prompt_stdin(guard_prompt(prompt, SLASH))
        env = {"CLAUDE_CONFIG_DIR": str(self._home)}
        return Launch(argv=argv, env=env, new_session_id=new_id, stdin=stdin)

    def compact_launch(self, session_id: str, access: Access, walled: bool = False) -> Launch:
        """``claude -p --resume <id>`` with ``/compact`` on stdin: Claude Code's own summary replaces the
        history in the same transcript, the id kept (a ``compact_boundary`` event says how much it held
        before and after). The slash command is baton's own, never a prompt's: no guard rewrites it."""
        argv = [*self.command, "-p", "--output-format", "stream-json", "--verbose"]
        argv += [*self.access_flags[access], "--resume", need_session(session_id, Mode.RESUME)]
        return Launch(argv=argv, env={"CLAUDE_CONFIG_DIR": str(self._home)}, stdin=COMPACT)

    def on_event(self, event: dict[str, Any], turn: Turn) -> None:
        if isinstance(event.get("session_id"), str):
            turn.session_id = event["session_id"]
        kind = event.get("type")
        if kind == "system" and event.get("subtype") == "init":
            turn.version = event.get("claude_code_version") or turn.version
            turn.model = event["model"] if isinstance(event.get("model"), str) else turn.model
        elif kind == "assistant":
            _on_request(event, turn)
        elif kind == "system" and event.get("subtype") in ("compact_boundary", "status"):
            _on_compact(event, turn)
        elif kind == "result":
            _on_result(event, turn)

    def signal(self, event: dict[str, Any]) -> Signal | None:
        return signals.claude(event)

    def limit_event(self, event: dict[str, Any]) -> Limit | None:
        return limits.claude_event(event)

    def model_url(self, env: Mapping[str, str]) -> str | None:
        """``ANTHROPIC_BASE_URL``, else Anthropic's API; None on Bedrock or Vertex (their own hosts)."""
        if any(env.get(name, "") not in ("", "0", "false") for name in CLOUDS):
            return None
        return env.get("ANTHROPIC_BASE_URL") or DEFAULT_API

    def classify(self, exit_code: int, turn: Turn, stderr: str) -> Outcome:
        """A missing conversation is lost; without credentials (``Not logged in · Please run /login``,
        exit 1) the turn FAILED with baton's message naming the variables (:meth:`not_logged_in`)."""
        if any(NOT_FOUND in e for e in turn.errors) or NOT_FOUND in stderr:
            return Outcome.SESSION_LOST
        if exit_code == 0 and not turn.is_error and turn.result is not None:
            return Outcome.SUCCEEDED
        self.not_logged_in(exit_code, turn, stderr)
        return Outcome.FAILED

    def transcript_files(self, session_id: str) -> list[Path]:
        # projects/<mangled cwd>/<id>.jsonl: found by id rather than by re-deriving the mangling
        projects = self._home / "projects"
        if not projects.is_dir():
            return []
        return sorted(p for p in projects.glob(f"*/{session_id}.jsonl") if p.is_file() and p.stat().st_size)

    def transcript_problem(self, transcript: bytes) -> str | None:
        return claude_problem(transcript)

    def after_hydrate(self, session_id: str, cwd: Path) -> None:
        """Nothing to do: ``--resume`` finds the transcript in any project folder."""

    def unanswered_prompt(self, transcript: bytes) -> str | None:
        """The text of the transcript's last instruction when no model answer follows it (a turn that
        failed before the model answered); None when it was answered. Read from the end.

        Claude writes an instruction to the transcript before the model is asked, and its next
        ``--resume`` sends it again with the new instruction: the runner says so in the next prompt
        (:mod:`baton.runner.decide`)."""
        for line in _lines_from_end(transcript):
            found = _turn(line)
            if found is not None:
                return found or None
        return None


def _on_result(event: dict[str, Any], turn: Turn) -> None:
    """The turn's ``result``: how it ended, its answer, errors, usage and cost."""
    if event.get("terminal_reason") == "prompt_too_long":  # the API refused the conversation's size
        said = event.get("result") or "Prompt is too long"
        turn.errors.append(f"{said} (terminal_reason prompt_too_long)")
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


def _on_compact(event: dict[str, Any], turn: Turn) -> None:
    """Claude Code compacting the conversation (``/compact``, or on its own): ``status`` says
    ``compact_result`` (``success``, or ``failed`` with a ``compact_error``), ``compact_boundary`` what
    the conversation held after it (``compact_metadata.post_tokens``)."""
    if event.get("subtype") == "compact_boundary":
        turn.compacted = True
        meta = event.get("compact_metadata")
        after = meta.get("post_tokens") if isinstance(meta, dict) else None
        if isinstance(after, int) and not isinstance(after, bool) and after > 0:
            turn.context_tokens = after
    elif event.get("compact_result") == "failed":
        turn.errors.append(f"compaction failed: {event.get('compact_error') or 'no reason given'}")


def _on_request(event: dict[str, Any], turn: Turn) -> None:
    """An ``assistant`` event: one model request's answer, whose usage says how much context the
    conversation held then (the last request's is the turn's). A synthetic message (an API error Claude
    Code shows as an answer) says nothing of it."""
    message = event.get("message")
    if not isinstance(message, dict) or message.get("model") == "<synthetic>" or event.get("error"):
        return
    usage = message.get("usage")
    if isinstance(usage, dict) and (held := window.request_tokens(usage)):
        turn.context_tokens = held
    if isinstance(message.get("model"), str):
        turn.model = message["model"]


def mcp_flags(servers: tuple[McpServer, ...]) -> list[str]:
    """``--mcp-config`` with the turn's servers, and their tools allowed (``mcp__<server>``: every tool
    of it) at every access level: ``-p`` refuses a tool it was not told it may use."""
    if not servers:
        return []
    # alwaysLoad: never deferred behind tool search (the model would have to search for a tool it
    # does not know it has), and the turn starts once the server is connected
    config = {
        "mcpServers": {
            s.name: {"type": "stdio", "command": s.command, "args": list(s.args), "alwaysLoad": True}
            for s in servers
        }
    }
    allowed = ",".join(f"mcp__{s.name}" for s in servers)
    return [f"--mcp-config={json.dumps(config)}", f"--allowedTools={allowed}"]


def _lines_from_end(data: bytes) -> Iterator[bytes]:
    """The lines of ``data``, the last first, each cut only when it is reached: the last turn is
    usually in the last few lines of megabytes."""
    end = len(data)
    while end > 0:
        start = data.rfind(b"\n", 0, end - 1) + 1
        yield data[start:end]
        end = start


def _turn(line: bytes) -> str | None:
    """For one transcript line: an instruction's text, ``""`` for a model's answer, None for the rest
    (tool results, metadata, synthetic API-error messages)."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    message = entry.get("message") if isinstance(entry, dict) else None
    if not isinstance(message, dict) or entry.get("isMeta"):
        return None
    if entry.get("type") == "assistant":
        real = message.get("model") != "<synthetic>" and not entry.get("isApiErrorMessage")
        return "" if real else None
    if entry.get("type") != "user":
        return None
    content = message.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    ):
        return None
    return "".join(b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str))


def from_settings(name: str, settings: Settings) -> ClaudeAgent:
    """The registry's factory (see :mod:`baton.agents`)."""
    return ClaudeAgent(name, settings.home / "homes" / name, settings.claude_bin or None)
