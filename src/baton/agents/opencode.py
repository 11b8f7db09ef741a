"""OpenCode (``opencode-ai``) through the ACP adapter (:mod:`baton.agents.acp`): ``opencode acp``, its
state under the four ``XDG_*_HOME`` variables in the key's home (every conversation in one SQLite
database, which is what a snapshot keeps, rebound to the key's worktree after hydration:
:mod:`baton.agents.opencode_db`), its offline switches (:data:`OFFLINE`), its access level as a
permission config that never asks (:data:`PERMISSION`), its own HTTP server on loopback behind a password
made for each turn (:attr:`OpenCodeAgent.server_secret_env`) and, walled, on a port the walls grant
(:meth:`OpenCodeAgent.launch`), and its credentials from the operator's OpenCode config or a provider's
variable (:meth:`OpenCodeAgent.credential`, :meth:`OpenCodeAgent.env_names`). Measured on 1.18.33:
docs/agent-clis.md, "OpenCode"; the server's guarantees: docs/security.md.
"""

from __future__ import annotations

import dataclasses
import json
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from baton.agents.acp import AcpAgent, platform_binary
from baton.agents.base import Launch, McpServer, ModelApi, ModelKey, Turn, find_binary
from baton.agents.opencode_db import rebind
from baton.agents.signals import Signal, SignalKind
from baton.models import Access, Mode
from baton.settings import Settings

INSTALL = "npm install -g opencode-ai (or `make setup` in a baton checkout)"
# No update check, no sharing, no model catalogue fetch, no LSP downloads, no project opencode.json (a
# repository's config is the repository's, not the operator's); the plugin install: prepare_home.
OFFLINE = {
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_PROJECT_CONFIG": "1",
    "OPENCODE_DISABLE_CLAUDE_CODE": "1",
}
# Every permission decided up front: a request baton refuses fails OpenCode's whole prompt ("The user
# rejected permission to use this specific tool call"), and so does a rule that denies one of its
# questions (its doom-loop check: the same tool three times in a row); a tool the rules deny is not even
# offered. Reading outside the worktree (external_directory) is allowed: the walls decide what is there;
# a loop is bounded by the run's timeout.
_NEVER_ASK = {"*": "allow", "external_directory": "allow", "doom_loop": "allow"}
PERMISSION = {
    Access.READ: {**_NEVER_ASK, "edit": "deny", "bash": "deny", "webfetch": "deny"},
    Access.EDIT: {**_NEVER_ASK, "edit": "allow", "bash": "deny", "webfetch": "deny"},
    Access.FULL: {**_NEVER_ASK, "edit": "allow", "bash": "allow", "webfetch": "allow"},
}
# The variables of the providers OpenCode finds by itself (its credentials when its config names none).
PROVIDER_ENV = {
    "anthropic": ("ANTHROPIC_API_KEY",),
    "openai": ("OPENAI_API_KEY",),
    "google": ("GEMINI_API_KEY", "GOOGLE_GENERATIVE_AI_API_KEY"),
    "openrouter": ("OPENROUTER_API_KEY",),
}
ENV_REF = re.compile(r"\{env:([A-Za-z_][A-Za-z0-9_]*)\}")  # its config's own references to variables
FILE_REF = re.compile(r"\{file:([^}]+)\}")  # and to files (a key kept apart from the config)
CONFIG = "config/opencode/opencode.json"  # in a home: the operator's, copied into each key's
LOGINS = "data/opencode/auth.json"  # `opencode auth login`'s keys, by provider
DATABASE = ("opencode.db", "opencode.db-wal", "opencode.db-shm")
LOOPBACK = "127.0.0.1"
UNREACHABLE = "Cannot connect to API"  # its words for a provider it could not reach
# the session updates that come from the model (ACP's): any other (available_commands_update…) is OpenCode's
MODEL_UPDATES = {"agent_message_chunk", "agent_thought_chunk", "tool_call", "tool_call_update", "plan"}
# baton's name, not one OpenCode reads: where its own server listens, a port the walls grant
# (baton.sandbox.walls.OWN_URL), never a model API's (no relay of baton's takes it in the agent's namespace)
SERVER_URL = "OPENCODE_ACP_SERVER_OWN_URL"
# baton's name, read by its config content ({env:…}) behind the model gateway: the run's token
GATEWAY_KEY = "OPENCODE_GATEWAY_API_KEY"
# the header each provider package sends its key in (its built-in providers' packages by their names):
# the gateway stands in for these; another package's key (Google's, Bedrock's…) stays with OpenCode
GATEWAY_HEADER = {
    "@ai-sdk/openai": "authorization",
    "@ai-sdk/openai-compatible": "authorization",
    "@ai-sdk/anthropic": "x-api-key",
}
BUILT_IN = {"openai": "@ai-sdk/openai", "anthropic": "@ai-sdk/anthropic"}


class OpenCodeAgent(AcpAgent):
    # its server on loopback whatever the operator's config says (``server.mdns`` alone would make it
    # listen on every interface), behind HTTP basic auth with OPENCODE_SERVER_PASSWORD, which its ACP
    # side sends too: the bridge sets it to a fresh random value for each turn, in no argv, log or file
    # (without it any local user read its config, a provider's apiKey, and the worktree's files)
    acp_args = ("acp", "--hostname", LOOPBACK, "--mdns=false")
    bound_to_cwd = True
    reports_version = True  # initialize: {"agentInfo": {"name": "OpenCode", "version": "1.18.33"}}
    server_secret_env = "OPENCODE_SERVER_PASSWORD"
    auth_hint = "a model provider in the OpenCode config (homes/opencode/config/opencode/opencode.json)"
    config_files = (CONFIG, LOGINS)
    instruction_files = ("AGENTS.md", "CLAUDE.md", "opencode.json", "opencode.jsonc", ".opencode/")
    # a provider's key in the environment (OpenCode finds those providers itself), or its config or
    # `opencode auth login`'s file: a local model's provider needs no key at all
    credentials = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY")
    credential_files = config_files

    def __init__(self, name: str, home: Path, binary: str = "") -> None:
        super().__init__(name, home)
        self.binary = binary

    def locate(self) -> list[str]:
        return native_binary(self.binary)

    def env_names(self) -> tuple[str, ...]:
        """Its switches, and the credentials of the providers its config uses (their standard variables
        and its ``{env:NAME}`` references), never every provider's key the operator holds (another
        agent's, for all OpenCode knows); every provider's when the config names none."""
        config = self._config()
        if not config:
            return ("OPENCODE_*", *(name for names in PROVIDER_ENV.values() for name in names))
        used = set(_dict(config.get("provider")))
        used |= {str(config.get(k, "")).partition("/")[0] for k in ("model", "small_model")}
        names = [name for provider in sorted(used) for name in PROVIDER_ENV.get(provider, ())]
        names += ENV_REF.findall(json.dumps(config))
        return ("OPENCODE_*", *dict.fromkeys(names))

    def _config(self) -> dict[str, Any]:
        """The home's ``opencode.json`` ({} when there is none or it cannot be read)."""
        return self._json(CONFIG)

    def _json(self, name: str) -> dict[str, Any]:
        """A JSON object of the home ({} when there is none or it cannot be read)."""
        try:
            return _dict(json.loads((self._home / name).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError):
            return {}

    def credential(self, env: Mapping[str, str]) -> tuple[str, str] | None:
        """The key of the provider its model is from (``model: "<provider>/<model>"``), as OpenCode
        finds it: the provider's ``options.apiKey`` in its config (a ``{env:NAME}`` or ``{file:PATH}``
        reference read), else the provider's standard variable, else ``auth.json``'s entry — never
        another provider's variable (the Claude key baton holds for Claude Code). Hashed with the
        provider's ``baseURL``: the same key at another service is another breaker."""
        config = self._config()
        provider = str(config.get("model", "")).partition("/")[0]
        if not provider:  # no model named: OpenCode picks one of the providers it finds itself
            return super().credential(env)
        options = _dict(_dict(_dict(config.get("provider")).get(provider)).get("options"))
        where = f"{options.get('baseURL', '')}\0"
        key = options.get("apiKey")
        if isinstance(key, str) and key:  # its own references read, as OpenCode reads them
            named = ENV_REF.findall(key) + [f"{provider} key file {f}" for f in FILE_REF.findall(key)]
            value = ENV_REF.sub(lambda m: env.get(m.group(1), ""), key)
            value = FILE_REF.sub(lambda m: self._key_file(m.group(1)) or "", value)
            if not value:
                return None
            return (named[0] if named else f"{provider} apiKey in opencode.json"), where + value
        for name in PROVIDER_ENV.get(provider, ()):
            if env.get(name):
                return name, where + env[name]
        login = _dict(self._json(LOGINS).get(provider))
        if login:
            return f"{provider} login in auth.json", where + json.dumps(login, sort_keys=True)
        return None

    def gateway_key(self, env: Mapping[str, str]) -> ModelKey | None:
        """The key of its model's provider where that provider speaks OpenAI's or Anthropic's API (its
        ``npm`` package): its config's ``apiKey`` (its references read), else the provider's variable,
        else an API key of ``auth.json``; the run's token then goes in :data:`GATEWAY_KEY`, which its
        config content names (:meth:`behind_gateway`). None for a login (OAuth) or another API."""
        config = self._config()
        provider = str(config.get("model", "")).partition("/")[0]
        entry = _dict(_dict(config.get("provider")).get(provider))
        header = GATEWAY_HEADER.get(str(entry.get("npm") or BUILT_IN.get(provider, "")))
        if not provider or header is None:
            return None
        key, also = _dict(entry.get("options")).get("apiKey"), tuple[str, ...]()
        secret: Any
        if isinstance(key, str) and key:
            also = tuple(ENV_REF.findall(key))
            secret = FILE_REF.sub(
                lambda m: self._key_file(m.group(1)) or "",
                ENV_REF.sub(lambda m: env.get(m.group(1), ""), key),
            )
        elif name := next((n for n in PROVIDER_ENV.get(provider, ()) if env.get(n)), None):
            secret, also = env[name], (name,)
        else:
            login = _dict(self._json(LOGINS).get(provider))
            secret = login.get("key") if login.get("type") == "api" else None
        if not isinstance(secret, str) or not secret:
            return None
        api = ModelApi.ANTHROPIC if header == "x-api-key" else ModelApi.OPENAI  # @ai-sdk/anthropic's
        return ModelKey("", ((GATEWAY_KEY, header),), provider, secret, also, api)

    def behind_gateway(self, launch: Launch, setting: str, url: str) -> Launch:
        """``launch`` with provider ``setting``'s ``baseURL`` the gateway's ``url`` and its ``apiKey``
        the run's token (:data:`GATEWAY_KEY`), in its config content (which wins over its files)."""
        if not setting:
            return launch
        content = _dict(json.loads(launch.env.get("OPENCODE_CONFIG_CONTENT") or "{}"))
        options = {"baseURL": url, "apiKey": f"{{env:{GATEWAY_KEY}}}"}
        content["provider"] = {**_dict(content.get("provider")), setting: {"options": options}}
        return dataclasses.replace(launch, env={**launch.env, "OPENCODE_CONFIG_CONTENT": json.dumps(content)})

    def gateway_secrets(self, setting: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Provider ``setting``'s ``apiKey`` in the home's ``opencode.json`` and its entry in
        ``auth.json``: the key's copies of the operator's files keep no key the gateway holds."""
        return ((CONFIG, ("provider", setting, "options", "apiKey")), (LOGINS, (setting,)))

    def _key_file(self, name: str) -> str | None:
        """The text of a ``{file:…}`` reference (``~/`` the user's home, a relative path the config's
        folder), stripped as OpenCode reads it; None when it cannot be read."""
        path = Path(name).expanduser() if name.startswith("~") else (self._home / CONFIG).parent / name
        try:
            return path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None

    def model_check(self, env: Mapping[str, str]) -> tuple[bool, str] | None:
        """Its model is a provider in the base home's ``opencode.json``: without one it picks a provider
        of its own (online; ``OPENAI_BASE_URL`` means nothing to it)."""
        model = str(self._config().get("model", ""))
        if url := self.model_url(env):
            return True, f"{model} at {url} ({CONFIG} of the base home)"
        if model:
            return True, f"{model}, a provider OpenCode knows itself (online) ({CONFIG} of the base home)"
        where = self._home / CONFIG
        said = (
            " (OPENAI_BASE_URL is set, but OpenCode does not read it)" if env.get("OPENAI_BASE_URL") else ""
        )
        return False, (
            f"no model in {where}: OpenCode picks a provider of its own, online{said}; for a server of "
            "your own, a provider there (`python -m baton.testing.mock_openai --port N --agent opencode "
            "--print-config` prints one for the mock)"
        )

    def model_url(self, env: Mapping[str, str]) -> str | None:
        """The ``baseURL`` of the provider its config's model is from (None: a provider OpenCode finds
        itself, whose address baton does not know)."""
        config = self._config()
        provider = str(config.get("model", "")).partition("/")[0]
        url = _dict(_dict(_dict(config.get("provider")).get(provider)).get("options")).get("baseURL")
        return url if isinstance(url, str) and url else None

    def signal(self, event: dict[str, Any]) -> Signal | None:
        """Its prompt sent, nothing heard yet: OpenCode retries a provider it cannot reach without a word
        (~75 s, then "Cannot connect to API"), so until the model's first word the turn counts as not
        connected, and after the grace baton tries the address itself (a model that is only slow is
        reached, and left to answer)."""
        kind = event.get("type")
        update = _dict(event.get("update")).get("sessionUpdate") if kind == "acp.update" else None
        # its own notices (the commands it offers) are no word of the model's
        if kind == "acp.session" or (update and update not in MODEL_UPDATES):
            return Signal(SignalKind.UNREACHABLE, "no answer yet (OpenCode says nothing while it retries)")
        return None

    def endpoints(self) -> tuple[str, ...]:
        """The ``baseURL`` of each provider in the home's ``opencode.json`` (read on the operator's
        base home, never a key's): a walled-in OpenCode may connect to their ports."""
        options = [_dict(p).get("options") for p in _dict(self._config().get("provider")).values()]
        urls = [_dict(o).get("baseURL") for o in options]
        return tuple(url for url in urls if isinstance(url, str))

    def on_event(self, event: dict[str, Any], turn: Turn) -> None:
        """An unreachable provider: OpenCode retries silently for ~75 s, then fails the prompt with
        "Cannot connect to API: Unable to connect. Is the computer able to access the url?" without
        saying which: baton names it."""
        super().on_event(event, turn)
        said = turn.errors[-1] if event.get("type") == "acp.error" and turn.errors else ""
        if UNREACHABLE in said and (urls := self.endpoints()):
            turn.errors[-1] += f" (the model API at {', '.join(urls)})"
        elif UNREACHABLE in said:  # no provider of the operator's: one it found itself, online
            turn.errors[-1] += (
                f" (a provider OpenCode found itself, online: no provider in {CONFIG} of the base home, and "
                "OpenCode reads no OPENAI_BASE_URL; `baton doctor` says what it needs)"
            )

    def home_env(self) -> dict[str, str]:
        home = self._home
        xdg = {f"XDG_{part.upper()}_HOME": str(home / part) for part in ("data", "config", "cache", "state")}
        return {**xdg, **OFFLINE}

    def launch(
        self,
        mode: Mode,
        prompt: str,
        session_id: str | None,
        access: Access = Access.EDIT,
        walled: bool = False,
        servers: tuple[McpServer, ...] = (),
    ) -> Launch:
        made = super().launch(mode, prompt, session_id, access, walled, servers)
        argv, env = made.argv, {**made.env, "OPENCODE_PERMISSION": json.dumps(PERMISSION[access])}
        # no snapshots of its own: a git store of the worktree in each key's home (disk, ~1 s a turn);
        # baton checkpoints the worktree itself. Over the config files, so the operator's are kept.
        env["OPENCODE_CONFIG_CONTENT"] = json.dumps({"snapshot": False})
        if walled:
            # its ACP side calls its own HTTP server (127.0.0.1:4096, else any port), which walls refuse
            # (session/new fails "OpenCode service failure", service: directory): the walls grant the
            # port named here (SERVER_URL, baton.sandbox.walls.tcp_ports), chosen free a
            # moment before (another process could take it meanwhile: then OpenCode cannot listen and
            # the turn fails), that port only, for this launch only. Its model provider's baseURL is in
            # its config, not its environment: endpoints().
            port = free_port()
            argv = [*argv, "--port", str(port)]
            env[SERVER_URL] = f"http://{LOOPBACK}:{port}"
        return Launch(argv, env, made.new_session_id, made.stdin)

    def prepare_home(self, ttl_days: float) -> None:
        """The home, and the stub that keeps OpenCode from installing its plugin package from npm at
        every start (it skips the install when this lock file lists it)."""
        config = self._home / "config" / "opencode"
        (config / "node_modules").mkdir(parents=True, exist_ok=True)
        lock = config / "package-lock.json"
        if not lock.is_file():
            lock.write_text(json.dumps({"packages": {"": {"dependencies": {"@opencode-ai/plugin": "*"}}}}))

    def after_hydrate(self, session_id: str, cwd: Path) -> None:
        """Bind the hydrated conversation to ``cwd``: OpenCode fails every prompt of a session made in
        another directory (:mod:`baton.agents.opencode_db`)."""
        rebind(self._home / "data" / "opencode" / DATABASE[0], session_id, str(cwd))

    def transcript_files(self, session_id: str) -> list[Path]:
        data = self._home / "data" / "opencode"
        if not session_id.startswith("ses_") or not (data / DATABASE[0]).is_file():
            return []
        return [data / name for name in DATABASE if (data / name).is_file()]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def free_port() -> int:
    """A loopback TCP port free now (the kernel's pick), for OpenCode's server to listen on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def native_binary(setting: str = "") -> list[str]:
    """The platform package's binary beside the loader (``BATON_OPENCODE_BIN``, else the one the PATH
    finds; the loader is a placeholder until its postinstall ran)."""
    loader = find_binary(setting, "opencode", "BATON_OPENCODE_BIN", INSTALL)
    return platform_binary(
        loader, "opencode-linux-{arch}/bin/opencode", "opencode-linux-{arch}-baseline/bin/opencode"
    )


def from_settings(name: str, settings: Settings) -> OpenCodeAgent:
    return OpenCodeAgent(name, settings.home / "homes" / name, settings.opencode_bin)
