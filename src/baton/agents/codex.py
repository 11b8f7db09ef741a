"""Codex CLI adapter (``codex exec --json``), built on the measured behaviour of Codex CLI 0.169.0
(docs/agent-clis.md, "Codex CLI" and "Access levels"). Sessions are Codex *threads*, whose UUID Codex
chooses and reports in ``thread.started``; the prompt goes on stdin (``-``); a fork is a copy of the
source's rollout under a new id (:mod:`baton.agents.codex_threads`, which also finds rollouts and repairs
Codex's indexes); the home's ``config.toml`` gets the keys that keep headless runs quiet and offline
(:data:`MANAGED`, merged by :mod:`baton.agents.codex_config`); the native binary is run, not npm's wrapper
(:func:`native_codex`). Codex's traps — a resume that silently starts a new thread, a changed model
provider, usage cumulative per thread — are guarded where they are met (:meth:`CodexAgent.launch`,
:meth:`CodexAgent.classify`, ``Capabilities.cumulative_usage``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import tomlkit

from baton.agents import codex_config, limits, signals
from baton.agents.base import (
    AgentBase,
    Auth,
    Capabilities,
    Launch,
    McpServer,
    ModelApi,
    ModelKey,
    Turn,
    find_binary,
    need_uuid,
)
from baton.agents.codex_config import merge_toml as merge_toml  # re-exported for callers
from baton.agents.codex_config import read_toml as read_toml
from baton.agents.codex_threads import fork_rollout
from baton.agents.codex_threads import is_thread_id as is_thread_id  # re-exported for callers
from baton.agents.codex_threads import repair_index as repair_index
from baton.agents.codex_threads import rollout_files as rollout_files
from baton.agents.formats import codex_problem
from baton.agents.limits import Limit, LimitKind
from baton.agents.signals import Signal
from baton.errors import AgentError
from baton.install import npm_hint
from baton.models import Access, Mode, Outcome
from baton.settings import Settings

NOT_FOUND = "no rollout found for thread id"
UNREADABLE = "failed to read session metadata"  # empty, non-UTF-8 or header-less rollout
# A thread made under one model provider cannot be resumed under another (the operator changed
# config.toml's model_provider): "Cannot change this thread's model provider from `openai` to `mock`
# on resume." (0.169.0), for ever. Lost like a missing rollout: the runner recovers with a recap.
PROVIDER_CHANGED = re.compile(
    r"Cannot change this thread's model provider from `?([^`\s]+)`? to `?([^`\s]+)`?"
)
# A thread whose model provider the configuration no longer defines at all (its table removed or
# renamed; baton's ``openai-base-url`` once OPENAI_BASE_URL is unset or config.toml names a provider of
# its own), measured on 0.169.0: exit 1, nothing on stdout, on stderr `Error: thread/resume: thread/resume
# failed: This chat uses model provider “openai-base-url”, which is no longer configured. Restore this
# provider's configuration to continue. (code -32600), data: {"type":"modelProviderNotConfigured",
# "modelProvider":"openai-base-url"}` (its quotes typographic). Known by its code or its sentence
# (any quotes), never by a fresh turn's "Model provider `x` not found"; lost too: the runner recovers.
NOT_CONFIGURED_CODE = re.compile(r'"type"\s*:\s*"modelProviderNotConfigured"')
NOT_CONFIGURED = re.compile(
    r"uses model provider [“”\"'`]?([^“”\"'`\s]+?)[“”\"'`]?,? which is no longer configured"
)
NOT_CONFIGURED_NAME = re.compile(r'"modelProvider"\s*:\s*"([^"\\]+)"')
INSTALL = npm_hint("@openai/codex@0.169.0")  # `make setup` in a checkout, npm for a pip install
EXEC = ["exec", "--json", "--skip-git-repo-check"]
STDIN = "-"  # the prompt argument that makes Codex read the prompt from stdin
MAX_PROMPT_CHARS = 1_048_576  # "Input exceeds the maximum length of 1048576 characters" (0.169.0)
LOCAL_PROVIDERS = ("oss", "ollama", "lmstudio")  # Codex's built-in providers that need no key
DEFAULT_API = "https://api.openai.com/v1"
BASE_URL_PROVIDER = "openai-base-url"  # the provider baton makes of OPENAI_BASE_URL
# The model each turn runs (-c model=...), over config.toml's: Codex 0.169's default under a provider of
# OPENAI_BASE_URL offers the model no tool at all (not even tool_search, behind which it defers MCP
# tools such as ask_human), so an environment-only setup names one here.
MODEL_ENV = "BATON_CODEX_MODEL"
# Lines Codex prints on stderr that are never the error (see baton.agents.clean_error). It warns when
# its home is under a temporary directory, before every error of such a run (measured on 0.169.0).
NOISE = (r"WARNING: proceeding, even though we could not create PATH aliases\b.*",)

# Keys baton sets in config.toml on every run: no update check, no plugin sync (it reaches
# github.com), no analytics, feedback or telemetry export.
MANAGED: dict[str, Any] = {
    "check_for_update_on_startup": False,
    "features": {"plugins": False},
    "analytics": {"enabled": False},
    "feedback": {"enabled": False},
    "otel": {"exporter": "none"},
}


class CodexAgent(AgentBase):
    name = "codex"
    capabilities = Capabilities(
        preassigned_id=False,
        resume_by_id=True,
        continue_latest=True,
        fork=True,
        reports_cost=False,
        not_found=NOT_FOUND,
        resume_keeps_id=True,
        cumulative_usage=True,
        max_prompt_chars=MAX_PROMPT_CHARS,
    )
    credentials: tuple[str, ...] = ("CODEX_API_KEY", "OPENAI_API_KEY")
    auth_hint = "an OpenAI API key"
    auth_failures = ("401 Unauthorized", "Missing environment variable", "no Codex credentials were found")
    # What each access level lets the CLI do (measured on 0.169.0: docs/agent-clis.md, "Access levels").
    # exec never asks for approval, so the sandbox mode is the whole mapping. workspace-write keeps a
    # worktree's resolved gitdir read-only (no commits), and a permission profile that allows them needs
    # the worktree's absolute gitdir and keeps the network off: so full is danger-full-access (Codex's
    # own sandbox off), and baton's walls are the wall.
    access_flags: ClassVar[dict[Access, tuple[str, ...]]] = {
        Access.READ: ("--sandbox", "read-only"),
        Access.EDIT: ("--sandbox", "workspace-write"),
        Access.FULL: ("--sandbox", "danger-full-access"),
    }
    # The environment the CLI reads (fnmatch patterns); :meth:`env_names` adds the variables the home's
    # model providers name (``env_key``, ``env_http_headers``).
    env_patterns: tuple[str, ...] = ("OPENAI_*", "CODEX_*")
    config_files: tuple[str, ...] = ("config.toml", "auth.json", "AGENTS.md")
    instruction_files: tuple[str, ...] = ("AGENTS.override.md", "AGENTS.md", ".codex/")
    other_credentials = ("CODEX_ACCESS_TOKEN",)
    credential_files = ("auth.json",)  # a `codex login` made with CODEX_HOME set to the base home

    def __init__(self, home: Path, binary_setting: str = "") -> None:
        super().__init__(home)
        self._binary_setting = binary_setting

    @property
    def command(self) -> list[str]:
        return self._resolve()[0]

    def _resolve(self) -> tuple[list[str], dict[str, str]]:
        found = find_binary(self._binary_setting, "codex", "BATON_CODEX_BIN", INSTALL)
        native, env = native_codex(found[0])
        return [native, *found[1:]], env

    # -- home ---------------------------------------------------------------------------------------

    def prepare_home(self, ttl_days: float) -> None:
        """Create CODEX_HOME and force :data:`MANAGED` into its config.toml, keeping every other key (a
        user's or the mock's ``model_provider``; tomlkit keeps their comments and layout). ``ttl_days`` is
        unused: Codex has no rollout retention to align (see :meth:`retention`)."""
        self._home.mkdir(parents=True, exist_ok=True)
        merge_toml(self._home / "config.toml", MANAGED)

    def retention(self, ttl_days: float) -> tuple[bool, str]:
        """Always kept: Codex 0.169 has no retention setting and no sweep of ``sessions/``."""
        return True, "Codex keeps rollouts until they are deleted (no retention setting to align)"

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
        """The argv, exec-level flags first (they are not accepted after ``resume``), ``-`` as the prompt
        so Codex reads it from stdin and no prompt is ever parsed as a flag or a subcommand:

        - fresh / recover: ``codex exec --json --skip-git-repo-check -``
        - resume:          ``codex exec --json --skip-git-repo-check resume <id> -``
        - continue:        ``codex exec --json --skip-git-repo-check resume --last -``
        - fork:            ``codex exec --json --skip-git-repo-check resume <new id> -``

        ``--skip-git-repo-check`` always, as a worktree may sit outside any trusted directory. A resume
        id must be a UUID: ``resume <x>`` with a non-UUID ``x`` matching no thread *name* silently starts
        a NEW thread (exit 0), so baton refuses it, and recovers instead. For FORK, ``session_id`` is the
        source thread: its rollout is copied under a new id first (:func:`fork_rollout`; only after the
        prompt and the id were accepted, so a refused launch writes nothing), and the new id is
        :attr:`Launch.new_session_id`, so the runner records the fork's id before Codex starts."""
        command, env = self._resolve()
        stdin = self.prompt_stdin(prompt)
        # Codex's sandbox (bubblewrap) cannot start inside baton's Landlock walls (a Landlocked process may
        # not mount: every sandboxed command fails), so a walled launch runs danger-full-access and the
        # walls, which follow the access level, keep read from writing and edit from committing.
        flags = self.access_flags[Access.FULL if walled else access]
        provider = self.base_url_provider(os.environ)  # checked before the fork's copy is written
        argv, new_id = [*command, *EXEC, *flags, *(provider_flags(provider) if provider else [])], None
        argv += model_flags(os.environ) + mcp_flags(servers)
        if mode in (Mode.FRESH, Mode.RECOVER):
            argv += [STDIN]
        elif mode == Mode.RESUME:
            thread = need_uuid(session_id, mode, "Codex thread id")
            repair_index(self._home, thread)
            argv += ["resume", thread, STDIN]
        elif mode == Mode.CONTINUE:
            argv += ["resume", "--last", STDIN]
        elif mode == Mode.FORK:
            new_id, _ = fork_rollout(self._home, need_uuid(session_id, mode, "Codex thread id"))
            argv += ["resume", new_id, STDIN]
        else:
            raise AgentError(f"mode {mode.value!r} cannot be launched directly")
        # RUST_BACKTRACE off: with it on, an error's last stderr lines (which baton reports) are frames.
        env = {**env, "CODEX_HOME": str(self._home), "RUST_BACKTRACE": "0"}
        return Launch(argv=argv, env=env, new_session_id=new_id, stdin=stdin)

    def auth(self) -> Auth:
        """Codex's credentials follow the home's ``model_provider``: a provider table of config.toml
        with an ``env_key`` (and no ``requires_openai_auth``) needs that variable, one without it needs
        none, as do the built-in local providers; ``openai`` (the default) takes the class's."""
        path = self._home / "config.toml"
        config = codex_config.config(path)
        name = config.get("model_provider", "openai")
        tables = config.get("model_providers")
        provider = tables.get(name) if isinstance(tables, dict) else None
        if isinstance(provider, dict) and not provider.get("requires_openai_auth"):
            key = provider.get("env_key")
            if isinstance(key, str) and codex_config.ENV_NAME.fullmatch(key) and not key.startswith("BATON_"):
                return Auth((key,), hint=f"the env_key of model provider {name!r} in {path}")
            return Auth(())
        return Auth(()) if name in LOCAL_PROVIDERS else super().auth()

    def env_names(self) -> tuple[str, ...]:
        """:attr:`env_patterns` and the variables the home's ``config.toml`` model providers read: a
        provider's ``env_key`` (its API key) and the values of its ``env_http_headers``."""
        return (*self.env_patterns, *codex_config.provider_env_names(self._home / "config.toml"))

    def endpoints(self) -> tuple[str, ...]:
        """The ``base_url`` of each model provider in the home's ``config.toml``, and its
        ``openai_base_url`` (the built-in ``openai`` provider's; Codex reads no base URL from the
        environment): a walled-in Codex may connect to their ports."""
        path = self._home / "config.toml"
        urls = [p.get("base_url") for p in codex_config.providers(path)] + [
            codex_config.config(path).get("openai_base_url")
        ]
        return tuple(url for url in urls if isinstance(url, str))

    def base_url_provider(self, env: Mapping[str, str]) -> dict[str, str] | None:
        """The model provider ``OPENAI_BASE_URL`` stands for, as ``ANTHROPIC_BASE_URL`` does for Claude
        (Codex reads no base URL from its environment): an HTTP Responses API provider, its key from
        ``OPENAI_API_KEY`` (else ``CODEX_API_KEY``). None without the variable, or when the home's
        config.toml names a ``model_provider`` of its own (the operator's choice wins). A thread made
        with it cannot be resumed without it (Codex binds a thread to its provider): baton recovers."""
        url = env.get("OPENAI_BASE_URL", "").strip()
        if (
            not url
            or codex_config.config(self._home / "config.toml").get("model_provider", "openai") != "openai"
        ):
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
            raise AgentError(f"OPENAI_BASE_URL is not an http(s) URL: {url!r}")
        if parts.username or parts.password:
            raise AgentError("OPENAI_BASE_URL holds credentials: put the key in OPENAI_API_KEY instead")
        key = next((name for name in ("OPENAI_API_KEY", "CODEX_API_KEY") if env.get(name)), "OPENAI_API_KEY")
        return {"name": "OPENAI_BASE_URL", "base_url": url, "env_key": key, "wire_api": "responses"}

    def gateway_key(self, env: Mapping[str, str]) -> ModelKey | None:
        """The model provider's key, where it is an ``env_key``: of the provider baton makes of
        ``OPENAI_BASE_URL``, or of the home's own ``model_provider`` table; its ``base_url`` set in argv
        (:meth:`behind_gateway`). None for the built-in ``openai`` provider (a ChatGPT login, or
        ``auth.json``'s key) and the local ones: they keep their credential."""
        with contextlib.suppress(AgentError):
            if (provider := self.base_url_provider(env)) is not None:
                return _provider_key(BASE_URL_PROVIDER, provider["env_key"])
        config = codex_config.config(self._home / "config.toml")
        name = config.get("model_provider", "openai")
        tables = config.get("model_providers")
        table = tables.get(name) if isinstance(tables, dict) else None
        if not isinstance(table, dict) or table.get("requires_openai_auth") or not isinstance(name, str):
            return None
        key = table.get("env_key")
        return (
            _provider_key(name, key)
            if isinstance(key, str) and isinstance(table.get("base_url"), str)
            else None
        )

    def behind_gateway(self, launch: Launch, setting: str, url: str) -> Launch:
        """``launch`` with ``setting`` (its model provider's ``base_url``: :meth:`gateway_key`) the
        gateway's ``url``: a ``-c`` override after the others, before ``resume`` or the prompt's ``-``."""
        if not setting:
            return launch
        argv = list(launch.argv)
        at = argv.index("resume") if "resume" in argv else len(argv) - 1
        argv[at:at] = ["-c", f"{setting}={tomlkit.string(url).as_string()}"]
        return dataclasses.replace(launch, argv=argv)

    def model_url(self, env: Mapping[str, str]) -> str | None:
        """``OPENAI_BASE_URL`` (:meth:`base_url_provider`), else the ``base_url`` of the home's model
        provider, else ``openai_base_url``, else OpenAI's API; None for a built-in local provider."""
        with contextlib.suppress(AgentError):
            if (provider := self.base_url_provider(env)) is not None:
                return provider["base_url"]
        config = codex_config.config(self._home / "config.toml")
        name = config.get("model_provider", "openai")
        tables = config.get("model_providers")
        table = tables.get(name) if isinstance(tables, dict) else None
        if isinstance(table, dict):
            url = table.get("base_url")
            return url if isinstance(url, str) else None
        if name != "openai":
            return None  # oss, ollama, lmstudio: their own defaults
        url = config.get("openai_base_url")
        return url if isinstance(url, str) else DEFAULT_API

    def signal(self, event: dict[str, Any]) -> Signal | None:
        return signals.codex(event)

    def limit_event(self, event: dict[str, Any]) -> Limit | None:
        return limits.codex_event(event)

    def usage_limit(self, exit_code: int, turn: Turn, stderr: str) -> Limit | None:
        """The base's, with an exhausted quota's reset made exact: Codex's words give it to the minute
        in its local time, while the thread's rollout records the refusal's ``x-codex-*`` headers
        (``rate_limits``) with the spent window's ``resets_at`` to the second. The words stand when
        the rollout has no spent window (a refusal without those headers) or cannot be read."""
        said = super().usage_limit(exit_code, turn, stderr)
        if said is None or said.kind != LimitKind.EXHAUSTED or not turn.session_id:
            return said
        files = rollout_files(self._home, turn.session_id)
        window = limits.codex_rate_limits(last_rate_limits(files[-1])) if files else None
        if window is None or window.resets_at is None:
            return said
        return Limit(said.kind, window.resets_at, window.scope or said.scope, said.detail or window.detail)

    def on_event(self, event: dict[str, Any], turn: Turn) -> None:
        """Fold one ``codex exec --json`` event into ``turn`` (see :data:`_EVENT_HANDLERS`)."""
        handler = _EVENT_HANDLERS.get(str(event.get("type")))
        if handler is not None:
            handler(event, turn)
        if event.get("type") == "thread.started" and turn.model is None:
            # its events never name the model: BATON_CODEX_MODEL or the home's config.toml does (the
            # key's copy, as it ran)
            model = chosen_model(os.environ) or codex_config.config(self._home / "config.toml").get("model")
            turn.model = model if isinstance(model, str) else None

    def classify(self, exit_code: int, turn: Turn, stderr: str) -> Outcome:
        """A missing or unreadable rollout, and a thread made under a model provider the configuration
        no longer names or defines (:func:`provider_refusal`), are lost conversations (the runner
        recovers with a recap; for the provider, baton's sentence first, which the recovery gets as its
        note); no credentials (``401 Unauthorized``, ``Missing environment variable``) FAILED with
        baton's message."""
        said = "\n".join([*turn.errors, stderr])
        # A turn the model API refused over a limit had found its thread: never lost, whatever it said.
        found = turn.limit is not None
        if not found and (NOT_FOUND in said or UNREADABLE in said):
            return Outcome.SESSION_LOST
        if not found and (refused := provider_refusal(said)) is not None:
            why, cli_said = refused
            turn.errors[:] = [why, *[e for e in turn.errors if e != cli_said], cli_said]
            return Outcome.SESSION_LOST
        if exit_code == 0 and not turn.is_error and turn.result is not None and turn.events:
            return Outcome.SUCCEEDED
        self.not_logged_in(exit_code, turn, stderr)
        return Outcome.FAILED

    # -- transcripts --------------------------------------------------------------------------------

    def transcript_files(self, session_id: str) -> list[Path]:
        """The thread's rollout file(s) under ``sessions/``; empty files are not a transcript, and an id
        that is no UUID has none (so baton recovers rather than resume it: see :meth:`launch`)."""
        return rollout_files(self._home, session_id)

    def transcript_problem(self, transcript: bytes) -> str | None:
        return codex_problem(transcript)

    def after_hydrate(self, session_id: str, cwd: Path) -> None:
        """Make the hydrated rollout the one Codex's indexes point at (see :func:`repair_index`)."""
        repair_index(self._home, session_id, projection=True)


def provider_refusal(said: str) -> tuple[str, str] | None:
    """Codex's refusal to resume a thread over its model provider, in ``said`` (the turn's errors and
    stderr): baton's sentence saying why, and the line Codex said it in; None for anything else. Two
    refusals, both for ever (measured on 0.169.0): the configuration names another provider
    (:data:`PROVIDER_CHANGED`), or defines the thread's no more (``modelProviderNotConfigured``,
    :data:`NOT_CONFIGURED`)."""
    lines = said.splitlines()
    if (changed := PROVIDER_CHANGED.search(said)) is not None:
        cli_said = next(line.strip() for line in lines if changed[0] in line)
        return (
            f"the conversation was made with model provider {_provider(changed[1])} and Codex cannot "
            f"resume it with {_provider(changed[2])}, the one its configuration names now",
            cli_said,
        )
    for line in lines:
        sentence = NOT_CONFIGURED.search(line)
        if sentence is None and NOT_CONFIGURED_CODE.search(line) is None:
            continue
        named = NOT_CONFIGURED_NAME.search(line) or sentence
        made = f"model provider {_provider(named[1])}, which" if named is not None else "a model provider"
        return (
            f"the conversation was made with {made} Codex's configuration no longer defines, so Codex "
            "cannot resume it",
            line.strip(),
        )
    return None


def _provider(name: str) -> str:
    """A model provider's name as baton says it: the one baton makes of ``OPENAI_BASE_URL`` says so."""
    if name == BASE_URL_PROVIDER:
        return f"{name!r} (the one baton makes of OPENAI_BASE_URL)"
    return repr(name)


# -- events -----------------------------------------------------------------------------------------
# One small handler per ``codex exec --json`` event type; types not listed are ignored.


def _on_thread_started(event: dict[str, Any], turn: Turn) -> None:
    if isinstance(event.get("thread_id"), str):
        turn.session_id = event["thread_id"]
    # Not done until ``turn.completed``: a process that stops before it did not succeed.
    turn.is_error = True


def _on_turn_started(event: dict[str, Any], turn: Turn) -> None:
    turn.is_error = True


def _on_item_completed(event: dict[str, Any], turn: Turn) -> None:
    item = event.get("item")
    if not isinstance(item, dict):
        return
    if item.get("type") == "agent_message" and isinstance(item.get("text"), str):
        turn.result = item["text"]  # the last message of the turn is its result
    elif item.get("type") == "error":
        turn.errors.append(str(item.get("message") or item))


def _on_turn_completed(event: dict[str, Any], turn: Turn) -> None:
    turn.is_error = False
    usage = event.get("usage")
    if isinstance(usage, dict):
        # Cumulative for the thread (restored from the rollout on resume); the runner turns it into this
        # run's delta. A fork's copied rollout carries its source's counters, so a fork's first turn
        # reports the source's total plus its own.
        turn.usage = {k: v for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)}


def _on_turn_failed(event: dict[str, Any], turn: Turn) -> None:
    turn.is_error = True
    error = event.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    turn.errors.append(str(message or "turn failed"))


def _on_error(event: dict[str, Any], turn: Turn) -> None:
    turn.is_error = True
    turn.errors.append(str(event.get("message") or "error"))


_EVENT_HANDLERS: dict[str, Callable[[dict[str, Any], Turn], None]] = {
    "thread.started": _on_thread_started,
    "turn.started": _on_turn_started,
    "item.completed": _on_item_completed,
    "turn.completed": _on_turn_completed,
    "turn.failed": _on_turn_failed,
    "error": _on_error,
}


ROLLOUT_TAIL = 1 << 20  # the bytes of a rollout's end searched for its last rate_limits


def last_rate_limits(path: Path) -> Any:
    """The ``rate_limits`` of the last turn's last ``token_count`` event, in a rollout's last MiB. Codex
    0.169 writes one after every reply with the reply's ``x-codex-*`` headers, a usage-limit refusal's
    included, but none after other refusals (``insufficient_quota``, a garbled 429): the search stops
    at the turn's ``task_started``, so an earlier turn's numbers are never taken for this one's. None
    when there is none or the file cannot be read; lines that are no JSON object are skipped."""
    try:
        with path.open("rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - ROLLOUT_TAIL))
            data = file.read()
    except OSError:
        return None
    end = len(data)
    while end > 0:  # from the end, only the lines that name either event are parsed
        found = max(data.rfind(b'"token_count"', 0, end), data.rfind(b'"task_started"', 0, end))
        if found < 0:
            return None
        begin = data.rfind(b"\n", 0, found) + 1
        stop = data.find(b"\n", found)
        line = data[begin : stop if stop >= 0 else len(data)]
        kind = _event_msg_type(line)
        if kind == "task_started":
            return None
        if kind == "token_count":
            return json.loads(line)["payload"].get("rate_limits")
        end = begin
    return None


def _event_msg_type(line: bytes) -> str | None:
    """The ``payload.type`` of a rollout line; None for a line that is no JSON object with one."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    payload = entry.get("payload") if isinstance(entry, dict) else None
    kind = payload.get("type") if isinstance(payload, dict) else None
    return kind if isinstance(kind, str) else None


def _provider_key(name: str, env_key: str) -> ModelKey | None:
    """The gateway's stand-in for model provider ``name``'s key ``env_key`` (a Bearer token); None for
    a name a ``-c`` path cannot hold bare."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name) or not codex_config.ENV_NAME.fullmatch(env_key):
        return None
    return ModelKey(
        "", ((env_key, "authorization"),), f"model_providers.{name}.base_url", api=ModelApi.OPENAI
    )


def provider_flags(provider: dict[str, str]) -> list[str]:
    """``-c`` overrides that make ``provider`` (:meth:`CodexAgent.base_url_provider`) Codex's model
    provider for this turn only, as TOML values (config.toml is left as the operator wrote it)."""
    table = tomlkit.inline_table()
    table.update(provider)
    return [
        "-c",
        f"model_provider={tomlkit.string(BASE_URL_PROVIDER).as_string()}",
        "-c",
        f"model_providers.{BASE_URL_PROVIDER}={table.as_string()}",
    ]


def chosen_model(env: Mapping[str, str]) -> str | None:
    """``BATON_CODEX_MODEL``; None when unset or blank. AgentError for a value no model is named."""
    model = env.get(MODEL_ENV, "").strip()
    if not model:
        return None
    if len(model) > 200 or not all(c.isprintable() and not c.isspace() for c in model):
        raise AgentError(f"{MODEL_ENV} is not a model's name: {model[:60]!r}")
    return model


def model_flags(env: Mapping[str, str]) -> list[str]:
    """``-c model="..."`` for this turn when ``BATON_CODEX_MODEL`` names one (config.toml untouched)."""
    model = chosen_model(env)
    return [] if model is None else ["-c", f"model={tomlkit.string(model).as_string()}"]


def mcp_flags(servers: tuple[McpServer, ...]) -> list[str]:
    """``-c mcp_servers.<name>={command, args}`` per server, for this turn only (config.toml untouched)."""
    # tool search off: Codex would otherwise defer every MCP tool behind it, and a model that has to
    # search for a tool it does not know it has never asks
    flags: list[str] = []
    for server in servers:
        table = tomlkit.inline_table()
        table.update({"command": server.command, "args": list(server.args)})
        flags += ["-c", f"mcp_servers.{server.name}={table.as_string()}"]
    return flags


def from_settings(name: str, settings: Settings) -> CodexAgent:
    """The registry's factory (see :mod:`baton.agents`)."""
    return CodexAgent(settings.home / "homes" / name, settings.codex_bin)


# The npm package's platform packages, by (sys.platform, machine): what ``bin/codex.js`` looks for.
_TARGETS = {
    ("linux", "x86_64"): ("codex-linux-x64", "x86_64-unknown-linux-musl"),
    ("linux", "aarch64"): ("codex-linux-arm64", "aarch64-unknown-linux-musl"),
    ("linux", "arm64"): ("codex-linux-arm64", "aarch64-unknown-linux-musl"),
    ("darwin", "x86_64"): ("codex-darwin-x64", "x86_64-apple-darwin"),
    ("darwin", "arm64"): ("codex-darwin-arm64", "aarch64-apple-darwin"),
}


def native_codex(path: str) -> tuple[str, dict[str, str]]:
    """The native binary behind npm's ``bin/codex.js`` wrapper, with the environment the wrapper
    would give it; ``path`` unchanged (and no environment) for anything else.

    On Node < 22 the wrapper *spawns* the binary instead of exec'ing it, so killing the wrapper
    (which is what dies with a SIGKILLed runner, through ``PR_SET_PDEATHSIG``) leaves Codex running:
    it keeps the thread's writer lock, so the next resume fails with "already has an active
    writer", and it may still append its reply to the rollout. Running the binary directly makes
    the agent process the one that dies with its runner (measured: the lock is then released)."""
    real = Path(path).resolve()
    if real.name != "codex.js" or real.parent.name != "bin":
        return path, {}
    root = real.parent.parent
    target = _TARGETS.get((sys.platform, platform.machine()))
    if target is None:
        return path, {}
    package, triple = target
    for vendor in (root / "node_modules" / "@openai" / package / "vendor", root.parent / package / "vendor"):
        binary = vendor / triple / "bin" / "codex"
        if binary.is_file() and os.access(binary, os.X_OK):
            return str(binary), {"CODEX_MANAGED_BY_NPM": "1", "CODEX_MANAGED_PACKAGE_ROOT": str(root)}
    return path, {}
