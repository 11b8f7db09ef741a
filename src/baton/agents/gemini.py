"""Gemini CLI adapter (``gemini -o stream-json``, the prompt on stdin), built on the measured behaviour of
0.61.0 (docs/agent-clis.md, "Gemini CLI", "Access levels" and "Usage limits"): the argv of each mode and
the environment that relocates, trusts and keeps it one process (:meth:`GeminiAgent.launch`), the model
(:meth:`GeminiAgent.model`), each access level as an approval mode and a read-only shell policy
(:data:`READ_ONLY_SHELL`), the home's ``settings.json`` with its data-losing session retention off
(:data:`MANAGED`), and a quota's limit read from its ``result`` and its stderr
(:meth:`GeminiAgent.usage_limit`). Its sessions are keyed by the exact working directory;
:mod:`baton.agents.gemini_files` finds their chat files and re-homes them after hydration.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from baton.agents import limits, signals
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
    version_word,
)
from baton.agents.formats import gemini_problem
from baton.agents.gemini_files import IGNORED_PREFIXES, chat_files, map_project, newest
from baton.agents.gemini_files import read_chat as read_chat  # re-exported for tests
from baton.agents.limits import Limit, LimitKind
from baton.agents.signals import Signal
from baton.errors import AgentError
from baton.files import atomic_write_text, merge, write_json
from baton.install import npm_hint
from baton.models import Access, Mode, Outcome
from baton.settings import Settings

NOT_FOUND = "Invalid session identifier"  # `--resume <id>`: no such session in this directory
NO_SESSIONS = "No previous sessions found"  # `--resume …` in a directory with no session at all
IMPORT_FAILED = "Error importing session from file"  # `--session-file` of an unreadable file
INSTALL = npm_hint("@google/gemini-cli@0.61.0")  # `make setup` in a checkout, npm for a pip install
DEFAULT_MODEL = "pro"
MODEL_ENV = "BATON_GEMINI_MODEL"
MAX_STDIN = 8 * 1024 * 1024  # readStdin's MAX_STDIN_SIZE: Gemini cuts stdin beyond it
# Measured on 0.61.0 against the mock: a prompt of 262,000 characters works; from about 270,000 the
# request reaches the model but Gemini prints no reply and no `result` in `-o stream-json` (nor in
# `-o text`) and exits 0 (`-o json` still answers; cause not found). Refused up front instead.
MAX_PROMPT_BYTES = 256_000
AUTH_EXIT = 41  # FATAL_AUTHENTICATION_ERROR
# Lines Gemini prints on stderr that are never the error (see baton.agents.clean_error), measured on
# 0.61.0 with stderr not a terminal, as under baton.
NOISE = (
    r"Warning: 256-color support not detected\..*",
    r"YOLO mode is enabled\. All tool calls will be automatically approved\.",
    r"Ripgrep is not available\. Falling back to GrepTool\.",
)
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "total_tokens", "tool_calls")

# Keys baton forces into <home>/.gemini/settings.json on every run; a user's other keys are kept.
MANAGED: dict[str, Any] = {
    "general": {
        "enableAutoUpdate": False,
        "enableAutoUpdateNotification": False,
        # Off, and baton's sweeper expires conversations instead. Gemini's cleanup runs at every start
        # and deletes every chat file sharing the 8-character short id of any file it finds invalid.
        # A resume in a new minute writes a near-empty file (header only) with the resumed session's
        # id, which the next start of ANOTHER session in that directory (a recover run, a user's own
        # `gemini`) finds invalid — and it then deletes the real conversation too. Measured on 0.61.0.
        "sessionRetention": {"enabled": False},
    },
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
}


# The read-only shell commands ``read`` and ``edit`` may run (the Gemini policy engine's TOML): each
# command of a chain must match a prefix; git's diff family writes a file with --output=FILE.
READ_ONLY_SHELL = """\
# Written by baton: the shell commands Gemini CLI may run at the read and edit access levels.
[[rule]]
toolName = "run_shell_command"
commandPrefix = ["ls", "cat", "head", "tail", "wc", "grep", "pwd", "git status", "git log", "git show",
  "git diff", "git blame", "git ls-files"]
decision = "allow"
priority = 100

[[rule]]
toolName = "run_shell_command"
argsPattern = "--output"
decision = "deny"
priority = 200
"""
# In <home>/.gemini, not in the policies/ Gemini loads by itself, so it applies only where baton names it
# (written at every launch: a missing policy file is silently ignored, and then there is no shell).
POLICY_FILE = "baton-read-only-shell.toml"


BATON_SERVERS = ("baton",)  # the MCP servers baton gives a turn (baton.asking), by name

DEFAULT_API = "https://generativelanguage.googleapis.com"


class GeminiAgent(AgentBase):
    name = "gemini"
    capabilities = Capabilities(
        preassigned_id=True,
        resume_by_id=True,
        continue_latest=True,
        fork=True,
        reports_cost=False,
        not_found=NOT_FOUND,
        resume_keeps_id=True,
        max_prompt_bytes=min(MAX_PROMPT_BYTES, MAX_STDIN - len("Instruction: ")),
    )
    credentials: tuple[str, ...] = ("GEMINI_API_KEY",)
    model_key = ModelKey(
        "GOOGLE_GEMINI_BASE_URL", (("GEMINI_API_KEY", "x-goog-api-key"),), api=ModelApi.GEMINI
    )
    auth_hint = "a Gemini API key from Google AI Studio"
    auth_failures = ("must specify the GEMINI_API_KEY", "API key not valid", "Please set an Auth method")
    auth_exit_codes = (AUTH_EXIT,)
    # Also documented: Vertex AI's key or service account, and a "Login with Google" in the base home.
    other_credentials = ("GOOGLE_API_KEY", "GOOGLE_APPLICATION_CREDENTIALS")
    credential_files = (".gemini/oauth_creds.json",)
    # What each access level lets the CLI do (measured on 0.61.0: docs/agent-clis.md, "Access levels"):
    # headless Gemini does not offer the model a tool that would need an approval; default offers the
    # reading tools, auto_edit adds write_file and replace (inside the workspace), yolo adds the shell.
    # Every level names its mode, so a repository's settings cannot choose one. read_only_shell: the
    # levels that also load the READ_ONLY_SHELL policy (``--policy=<home>/.gemini/POLICY_FILE``).
    access_flags: ClassVar[dict[Access, tuple[str, ...]]] = {
        Access.READ: ("--approval-mode=default",),
        Access.EDIT: ("--approval-mode=auto_edit",),
        Access.FULL: ("--approval-mode=yolo",),
    }
    read_only_shell: ClassVar[frozenset[Access]] = frozenset({Access.READ, Access.EDIT})
    # The environment the CLI reads (fnmatch patterns): credentials, base URL, Vertex's project and
    # its own switches.
    env_patterns: tuple[str, ...] = ("GEMINI_*", "GOOGLE_*", "NO_BROWSER")
    config_files: tuple[str, ...] = (
        ".gemini/settings.json",
        ".gemini/oauth_creds.json",
        ".gemini/google_accounts.json",
        ".gemini/GEMINI.md",
    )
    instruction_files: tuple[str, ...] = ("GEMINI.md", "AGENTS.md", ".gemini/")

    def __init__(self, home: Path, binary_setting: str = "") -> None:
        super().__init__(home)
        self._binary_setting = binary_setting

    @property
    def gemini_dir(self) -> Path:
        """Where GEMINI_CLI_HOME puts everything."""
        return self._home / ".gemini"

    @property
    def command(self) -> list[str]:
        return find_binary(self._binary_setting, "gemini", "BATON_GEMINI_BIN", INSTALL)

    # -- home ---------------------------------------------------------------------------------------

    def prepare_home(self, ttl_days: float) -> None:
        """Create the home and force :data:`MANAGED` into settings.json, keeping the user's keys; the
        auth type is set to an API key only when the user chose none. ``ttl_days`` is unused: Gemini's
        retention is off (see :data:`MANAGED`) and baton's sweeper applies the TTL."""
        self.gemini_dir.mkdir(parents=True, exist_ok=True)
        path = self.gemini_dir / "settings.json"
        settings = self._settings()
        merged = merge(settings, MANAGED)
        security = merged.setdefault("security", {})
        auth = security.setdefault("auth", {}) if isinstance(security, dict) else None
        if not isinstance(auth, dict):
            raise AgentError(f"{path}: security.auth must be a JSON object")
        auth.setdefault("selectedType", "gemini-api-key")  # the user's own choice (OAuth, Vertex) wins
        if merged != settings or not path.is_file():
            write_json(path, merged)

    def _settings(self) -> dict[str, Any]:
        path = self.gemini_dir / "settings.json"
        try:
            loaded = json.loads(path.read_text() or "{}")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AgentError(f"{path} is not valid JSON ({exc}); fix or remove it") from exc
        if not isinstance(loaded, dict):
            raise AgentError(f"{path} must hold a JSON object")
        return loaded

    def retention(self, ttl_days: float) -> tuple[bool, str]:
        try:
            retention = self._settings().get("general", {}).get("sessionRetention", {})
        except (AgentError, AttributeError):
            retention = None
        if isinstance(retention, dict) and retention.get("enabled") is False:
            return True, "session retention off (baton's sweeper expires conversations)"
        return False, (
            "general.sessionRetention is on: Gemini deletes resumed sessions (a known bug) and chats "
            "older than 30 days; the next baton run of gemini turns it off"
        )

    # -- one turn -----------------------------------------------------------------------------------

    def launch(
        self,
        mode: Mode,
        prompt: str,
        session_id: str | None,
        access: Access = Access.EDIT,
        walled: bool = False,
        servers: tuple[McpServer, ...] = (),
    ) -> Launch:
        """The argv, the prompt on stdin (baton writes it whole when the process starts: Gemini gives up
        on a pipe that stays empty for 500 ms), a prompt Gemini would run or drop from its history sent
        as ``Instruction: <prompt>``:

        - fresh / recover: ``gemini -o stream-json -m MODEL --session-id <new uuid>``
        - resume:          ``… --resume <full id>`` (the 8-character short id is rejected)
        - continue:        ``… --resume latest``
        - fork:            ``… --session-file <the source's chat file>``: a NEW session, whose id (which
          cannot be pre-assigned with ``--session-file``) the ``init`` event reports

        ``GEMINI_CLI_HOME`` relocates everything into ``<home>/.gemini``; ``GEMINI_CLI_TRUST_WORKSPACE``
        trusts the worktree baton made (an untrusted folder exits 55); ``GEMINI_CLI_NO_RELAUNCH`` keeps
        Gemini one process: by default it re-spawns itself as a child node process, which would outlive
        a runner killed with SIGKILL (only the direct child gets ``PR_SET_PDEATHSIG``) and keep writing
        the transcript the next run resumes. ``servers`` are written into the home's settings.json
        (:meth:`give_servers`)."""
        stdin = self.prompt_stdin(guard_prompt(prompt, IGNORED_PREFIXES))
        self.give_servers(servers)
        argv = [*self.command, "-o", "stream-json", *self.access_argv(access)]
        model = self.model()
        if model:
            argv += ["-m", model]
        new_id: str | None = None
        if mode in (Mode.FRESH, Mode.RECOVER):
            new_id = str(uuid.uuid4())
            argv += ["--session-id", new_id]
        elif mode == Mode.RESUME:
            argv += ["--resume", need_session(session_id, mode)]
        elif mode == Mode.CONTINUE:
            argv += ["--resume", "latest"]
        elif mode == Mode.FORK:
            files = self.transcript_files(need_session(session_id, mode))
            if not files:
                raise AgentError(f"the conversation {session_id} to fork has no chat file in {self._home}")
            argv += ["--session-file", str(newest(files))]
        else:
            raise AgentError(f"mode {mode.value!r} cannot be launched directly")
        env = {
            "GEMINI_CLI_HOME": str(self._home),
            "GEMINI_CLI_TRUST_WORKSPACE": "true",
            "GEMINI_CLI_NO_RELAUNCH": "true",
        }
        return Launch(argv=argv, env=env, new_session_id=new_id, stdin=stdin)

    def give_servers(self, servers: tuple[McpServer, ...]) -> None:
        """The turn's MCP servers in settings.json's ``mcpServers`` (``trust``: their calls need no
        confirmation, which a headless turn cannot give); a server named like baton's that this turn
        does not have is removed, the user's others kept; written only when it changed."""
        settings = self._settings()
        found = settings.get("mcpServers")
        current = dict(found) if isinstance(found, dict) else {}
        wanted = {s.name: {"command": s.command, "args": list(s.args), "trust": True} for s in servers}
        merged = {name: spec for name, spec in current.items() if name not in BATON_SERVERS} | wanted
        if merged != current:
            write_json(self.gemini_dir / "settings.json", {**settings, "mcpServers": merged})

    def access_argv(self, access: Access) -> list[str]:
        """The flags of ``access``, with the read-only shell policy (written, if it is not there as
        it should be) for the levels that load it."""
        flags = list(self.access_flags[access])
        if access not in self.read_only_shell:
            return flags
        path = self.gemini_dir / POLICY_FILE
        try:
            current = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            current = None
        if current != READ_ONLY_SHELL:
            atomic_write_text(path, READ_ONLY_SHELL, mode=0o644)
        return [*flags, f"--policy={path}"]

    def model(self) -> str | None:
        """The ``-m`` value, or None to let the CLI route (``auto``). In order: ``BATON_GEMINI_MODEL``;
        the CLI's own choices (``GEMINI_MODEL``, then ``model.name`` in the home's settings.json); else
        :data:`DEFAULT_MODEL` (the CLI's ``pro`` alias, which it resolves to its current pro model).
        ``-m`` skips the routing call the ``auto`` model makes every turn."""
        chosen = os.environ.get(MODEL_ENV, "").strip() or os.environ.get("GEMINI_MODEL", "").strip()
        if not chosen:
            with contextlib.suppress(AgentError, AttributeError):
                name = self._settings().get("model", {}).get("name")
                chosen = name.strip() if isinstance(name, str) else ""
        chosen = chosen or DEFAULT_MODEL
        return None if chosen == "auto" else chosen

    def on_event(self, event: dict[str, Any], turn: Turn) -> None:
        """Fold one ``--output-format stream-json`` event into ``turn`` (see :data:`_EVENT_HANDLERS`)."""
        handler = _EVENT_HANDLERS.get(str(event.get("type")))
        if handler is not None:
            handler(event, turn)

    def stderr_signal(self, line: str) -> Signal | None:
        return signals.gemini_stderr(line)

    def limit_event(self, event: dict[str, Any]) -> Limit | None:
        return limits.gemini_event(event)

    def usage_limit(self, exit_code: int, turn: Turn, stderr: str) -> Limit | None:
        """The limit the ``result`` event named, completed by stderr: a spent daily quota's ``result``
        carries no delay, while the error dump on stderr still shows the API's ``Please retry in 43s.``
        (and when stdout was lost, stderr's ``TerminalQuotaError``/``RetryableQuotaError`` says it all).
        A turn that went through had no limit, whatever its retries met on the way."""
        if exit_code == 0 and not turn.is_error:
            return turn.limit
        now = time.time()
        said = [limits.gemini_stderr(line, now) for line in stderr.splitlines()[-STDERR_LINES:]]
        found = strongest([turn.limit, *said])
        return found or super().usage_limit(exit_code, turn, stderr)

    def model_url(self, env: Mapping[str, str]) -> str | None:
        """``GOOGLE_GEMINI_BASE_URL``, else Google's API; None on Vertex AI (a regional host)."""
        if env.get("GOOGLE_GENAI_USE_VERTEXAI", "").lower() in ("1", "true"):
            return None
        return env.get("GOOGLE_GEMINI_BASE_URL") or DEFAULT_API

    def classify(self, exit_code: int, turn: Turn, stderr: str) -> Outcome:
        """A limit is a failure, never a lost conversation; an unknown id or an unreadable session file
        is lost; no credentials (exit 41, ``API key not valid``) FAILED with baton's message."""
        said = "\n".join([*turn.errors, stderr])
        succeeded = exit_code == 0 and not turn.is_error and turn.result is not None
        if not succeeded and self.usage_limit(exit_code, turn, stderr) is not None:
            # the model API answered (refused): whatever the words, the conversation was not lost
            self.not_logged_in(exit_code, turn, stderr)
            return Outcome.FAILED
        if NOT_FOUND in said or IMPORT_FAILED in said:
            return Outcome.SESSION_LOST
        # `--resume latest` in a directory without sessions warns and starts a NEW one (exit 0): a
        # continue that began a conversation, like Claude's; `--resume <id>` there exits 42.
        if NO_SESSIONS in said and not succeeded:
            return Outcome.SESSION_LOST
        if succeeded:
            return Outcome.SUCCEEDED
        self.not_logged_in(exit_code, turn, stderr)
        return Outcome.FAILED

    # -- transcripts --------------------------------------------------------------------------------

    def transcript_files(self, session_id: str) -> list[Path]:
        """The chat files of ``session_id`` that Gemini can resume (see :func:`chat_files`)."""
        return chat_files(self.gemini_dir, session_id)

    def leftover_files(self, session_id: str) -> list[Path]:
        """The near-empty chat files a resume in a new minute leaves beside the real one."""
        kept = set(self.transcript_files(session_id))
        return [p for p in chat_files(self.gemini_dir, session_id, resumable_only=False) if p not in kept]

    def transcript_problem(self, transcript: bytes) -> str | None:
        return gemini_problem(transcript)

    def after_hydrate(self, session_id: str, cwd: Path) -> None:
        """Map ``cwd`` to the project folder holding the hydrated chat files (see :func:`map_project`)."""
        files = self.transcript_files(session_id)
        if files:
            map_project(self.gemini_dir, files, cwd)

    def probe_version(self, command: tuple[str, ...]) -> str | None:
        return gemini_version(command)


# -- events -----------------------------------------------------------------------------------------
# One small handler per stream-json event type; types not listed are ignored.


def _on_init(event: dict[str, Any], turn: Turn) -> None:
    if isinstance(event.get("session_id"), str):
        turn.session_id = event["session_id"]
    if isinstance(event.get("model"), str):
        turn.model = event["model"]  # often an alias ("pro"): the result's stats name the model itself
    turn.is_error = True  # not done until a successful `result`


def _on_message(event: dict[str, Any], turn: Turn) -> None:
    if event.get("role") == "assistant" and isinstance(event.get("content"), str):
        turn.result = (turn.result or "") + event["content"]


def _on_tool(event: dict[str, Any], turn: Turn) -> None:
    if turn.result:
        turn.result = turn.result.rstrip("\n") + "\n\n"  # text before and after a tool call


def _on_error(event: dict[str, Any], turn: Turn) -> None:
    if event.get("severity") == "error":  # warnings are not the turn's errors
        turn.errors.append(str(event.get("message") or "error"))


def _on_result(event: dict[str, Any], turn: Turn) -> None:
    turn.is_error = event.get("status") != "success"
    error = event.get("error")
    if isinstance(error, dict):
        turn.errors.append(str(error.get("message") or error.get("type") or "error"))
    elif turn.is_error:
        turn.errors.append(f"gemini ended the turn with status {event.get('status')!r}")
    if turn.result is not None:
        turn.result = turn.result.rstrip("\n")
    elif not turn.is_error:
        turn.result = ""
    stats = event.get("stats")
    if isinstance(stats, dict):
        turn.usage = usage_from_stats(stats)
        models = stats.get("models")
        if isinstance(models, dict) and len(models) == 1:
            turn.model = str(next(iter(models)))


_EVENT_HANDLERS: dict[str, Callable[[dict[str, Any], Turn], None]] = {
    "init": _on_init,
    "message": _on_message,
    "tool_use": _on_tool,
    "tool_result": _on_tool,
    "error": _on_error,
    "result": _on_result,
}


def from_settings(name: str, settings: Settings) -> GeminiAgent:
    """The registry's factory (see :mod:`baton.agents`)."""
    return GeminiAgent(settings.home / "homes" / name, settings.gemini_bin)


# -- helpers ----------------------------------------------------------------------------------------

STDERR_LINES = 2000  # a quota's 10 retries print ~50 lines: the tail read for a limit is bounded


def strongest(found: list[Limit | None]) -> Limit | None:
    """The limit of a turn from what its lines said: exhausted over transient, the first named of the
    stronger kind, with the reset of the last line that gave one when that line gave none (Gemini
    prints the error's name and its delay on separate lines of one dump)."""
    seen = [limit for limit in found if limit is not None]
    if not seen:
        return None
    spent = [limit for limit in seen if limit.kind == LimitKind.EXHAUSTED]
    chosen = (spent or seen)[0]
    if chosen.resets_at is not None:
        return chosen
    resets = [limit.resets_at for limit in seen if limit.resets_at is not None]
    return Limit(chosen.kind, resets[-1], chosen.scope, chosen.detail) if resets else chosen


def usage_from_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """Per-turn token counts from a ``result`` event, named as baton records Claude's: ``input_tokens``
    excludes cached prompt tokens, which are ``cache_read_input_tokens``."""

    def num(name: str) -> int | None:
        value = stats.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    prompt, cached = num("input_tokens"), num("cached")
    fresh = num("input")
    if fresh is None and prompt is not None:
        fresh = prompt - (cached or 0)
    usage = {
        "input_tokens": fresh,
        "output_tokens": num("output_tokens"),
        "cache_read_input_tokens": cached,
        "total_tokens": num("total_tokens"),
        "tool_calls": num("tool_calls"),
    }
    return {k: v for k, v in usage.items() if v is not None}


@cache
def gemini_version(command: tuple[str, ...]) -> str | None:
    """``gemini --version`` (``0.61.0``). Run with a throwaway GEMINI_CLI_HOME: even ``--version``
    creates ``.gemini/`` and a stray ``projects.json.<uuid>.tmp`` there."""
    scratch = tempfile.mkdtemp(prefix="baton-gemini-version-")
    env = {**os.environ, "GEMINI_CLI_HOME": scratch, "GEMINI_CLI_NO_RELAUNCH": "true"}
    try:
        out = subprocess.run(
            [*command, "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return version_word(out)
