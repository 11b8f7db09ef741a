"""GitHub Copilot CLI (``@github/copilot``) through the ACP adapter (:mod:`baton.agents.acp`): ``copilot
--acp --stdio``, its npm package's native binary run directly (:func:`native_binary`), its state in the
key's ``$COPILOT_HOME`` (a conversation is ``session-state/<id>/``), its access levels as tool rules
(:data:`TOOL_RULES`), its credentials a model provider of one's own or a GitHub token
(:meth:`CopilotAgent.credential`), and its failed model calls, which end ``end_turn`` with an ``Error: …``
text, told from answers (:meth:`CopilotAgent.on_event`). Measured on 1.0.102: docs/agent-clis.md,
"GitHub Copilot CLI".
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from baton.agents.acp import AcpAgent, platform_binary
from baton.agents.base import McpServer, ModelApi, ModelKey, Turn, find_binary
from baton.agents.signals import Signal, from_text
from baton.models import Access
from baton.settings import Settings

INSTALL = "npm install -g @github/copilot (or `make setup` in a baton checkout)"
TOOL_RULES = {
    Access.READ: ("--deny-tool=write", "--deny-tool=shell"),
    Access.EDIT: ("--allow-tool=write", "--deny-tool=shell"),
    Access.FULL: ("--allow-all-tools",),
}
NO_TELEMETRY = ("--disable-client-telemetry",)
GITHUB_TOKENS = ("COPILOT_GITHUB_TOKEN", "GH_TOKEN", "GITHUB_TOKEN")  # its order of precedence
FAILED_CALL = re.compile(r"(?:^|\s|\.\.\.)Error: ")  # its words for a model call that failed
# the header its provider's type sends the key in (COPILOT_PROVIDER_TYPE; "openai" by default: Bearer)
PROVIDER_HEADER = {"anthropic": "x-api-key", "azure": "api-key"}


class CopilotAgent(AcpAgent):
    acp_args = ("--acp", "--stdio", "--no-auto-update", "--disallow-temp-dir")
    gateway_hint = (
        "a GitHub login, which only GitHub's service takes; a provider of its own "
        "(COPILOT_PROVIDER_BASE_URL, COPILOT_PROVIDER_API_KEY) is held by the gateway"
    )
    credentials = ("COPILOT_PROVIDER_API_KEY", *GITHUB_TOKENS)
    auth_hint = (
        "a model provider's key (COPILOT_PROVIDER_BASE_URL, COPILOT_PROVIDER_API_KEY, COPILOT_MODEL) "
        "or a GitHub token"
    )
    env_patterns = ("COPILOT_*", "GH_TOKEN", "GITHUB_TOKEN", "GH_HOST")
    instruction_files = (
        *(".github/copilot-instructions.md", ".github/instructions/", "AGENTS.md", "CLAUDE.md"),
        *("GEMINI.md", ".mcp.json", ".github/mcp.json"),
    )

    def __init__(self, name: str, home: Path, binary: str = "") -> None:
        super().__init__(name, home)
        self.binary = binary

    def locate(self) -> list[str]:
        return native_binary(self.binary)

    def access_args(self, access: Access) -> list[str]:
        """Its own tool rules: a permission it asks for and baton refuses cancels the whole turn
        ("Operation cancelled by user"), a tool denied by rule is refused to the model, which goes on.
        And its telemetry off, where the release knows the flag (1.0.100 on: older ones exit on it)."""
        return [*TOOL_RULES[access], *(NO_TELEMETRY if _release(self.version()) >= (1, 0, 100) else ())]

    def server_args(self, servers: tuple[McpServer, ...]) -> list[str]:
        """``--additional-mcp-config``: 1.0.102 takes no MCP server given over ACP (its tools never
        appear), only its own configuration; every tool of each server allowed."""
        if not servers:
            return []
        config = {
            "mcpServers": {
                s.name: {"type": "local", "command": s.command, "args": list(s.args), "tools": ["*"]}
                for s in servers
            }
        }
        return ["--additional-mcp-config", json.dumps(config)]

    def home_env(self) -> dict[str, str]:
        return {"COPILOT_HOME": str(self._home / "copilot"), "XDG_CACHE_HOME": str(self.cache_dir())}

    def prepare_home(self, ttl_days: float) -> None:
        """The home, and the binary's unpacked package in its cache (its first start unpacks it: here,
        outside the walls, which give the agent that cache to read only)."""
        super().prepare_home(ttl_days)
        if not (self.cache_dir() / "copilot" / "pkg").is_dir():
            self.probe_version(tuple(self.command))

    def cache_dir(self) -> Path:
        """Where the binary unpacks itself (~235 MB on its first start, into ``$XDG_CACHE_HOME/copilot/
        pkg``): beside it when that is writable (one cache shared by every key), else in this home."""
        binary = Path(self.command[0])
        shared = binary.parent / ".baton-cache"
        if shared.is_dir() or os.access(binary.parent, os.W_OK):
            return shared
        return self._home / "cache"

    def probe_version(self, command: tuple[str, ...]) -> str | None:
        """``copilot --version``, its cache where runs find it (the first start unpacks it there)."""
        env = {**os.environ, "XDG_CACHE_HOME": str(self.cache_dir()), "COPILOT_OFFLINE": "true"}
        try:
            out = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60, env=env)
        except (OSError, subprocess.TimeoutExpired):
            return None
        words = out.stdout.split()
        return next((w.strip(".,") for w in words if w[:1].isdigit()), None) if out.returncode == 0 else None

    def credential(self, env: Mapping[str, str]) -> tuple[str, str] | None:
        """Its own provider's key when a provider is set (a GitHub token then authenticates nothing),
        else the GitHub token it reads first."""
        if env.get("COPILOT_PROVIDER_BASE_URL"):
            key = env.get("COPILOT_PROVIDER_API_KEY")
            return ("COPILOT_PROVIDER_API_KEY", key) if key else None
        return next(((name, env[name]) for name in GITHUB_TOKENS if env.get(name)), None)

    def model_check(self, env: Mapping[str, str]) -> tuple[bool, str] | None:
        """A provider of its own needs a model named, else it exits during initialize ("BYOK providers
        require an explicit model"); without a provider it is GitHub's service, online only."""
        url = env.get("COPILOT_PROVIDER_BASE_URL")
        if not url:
            return True, (
                "GitHub's Copilot service (online); offline, a provider of your own: "
                "COPILOT_PROVIDER_BASE_URL, COPILOT_PROVIDER_API_KEY and COPILOT_MODEL"
            )
        if not env.get("COPILOT_MODEL"):
            return False, (
                f"COPILOT_PROVIDER_BASE_URL is {url} but COPILOT_MODEL is not set: Copilot CLI exits at "
                "start ('BYOK providers require an explicit model'); set it to a model that provider serves"
            )
        return True, f"{env['COPILOT_MODEL']} at {url}"

    def model_url(self, env: Mapping[str, str]) -> str | None:
        """Its own provider's address; None for GitHub's service (a login: baton does not know where)."""
        return env.get("COPILOT_PROVIDER_BASE_URL") or None

    def gateway_key(self, env: Mapping[str, str]) -> ModelKey | None:
        """Its own provider's key (``COPILOT_PROVIDER_BEARER_TOKEN``, which wins, else ``_API_KEY``) in
        the header of the provider's type. None for GitHub's service (a GitHub login, which only GitHub
        takes), a key a command prints (``_API_KEY_COMMAND``: it would run inside the walls) and the
        WebSocket transport (the gateway speaks HTTP only)."""
        if not env.get("COPILOT_PROVIDER_BASE_URL") or env.get("COPILOT_PROVIDER_API_KEY_COMMAND"):
            return None
        if env.get("COPILOT_PROVIDER_TRANSPORT", "").lower() == "websockets":
            return None
        kind = env.get("COPILOT_PROVIDER_TYPE", "").lower()
        keys = (
            ("COPILOT_PROVIDER_BEARER_TOKEN", "authorization"),
            ("COPILOT_PROVIDER_API_KEY", PROVIDER_HEADER.get(kind, "authorization")),
        )
        api = ModelApi.ANTHROPIC if kind == "anthropic" else ModelApi.OPENAI  # azure speaks OpenAI's
        return ModelKey("COPILOT_PROVIDER_BASE_URL", keys, api=api)

    def signal(self, event: dict[str, Any]) -> Signal | None:
        """Its retries, told in the turn's text ("Info: Response was interrupted due to a server error.
        Retrying..."): its words do not tell a refused connection from a server error; it gives up
        after five (~28 s), naming the provider's address."""
        said = retry_notice(event)
        return from_text(said) if said else None

    def on_event(self, event: dict[str, Any], turn: Turn) -> None:
        if retry_notice(event):
            return  # shown live as a retry (:meth:`signal`), not part of the answer
        super().on_event(event, turn)
        said = FAILED_CALL.search(turn.result or "") if event.get("type") == "acp.result" else None
        if said is not None and not turn.usage:  # a failed model call ends the turn end_turn, without usage
            turn.is_error = True
            turn.errors.append((turn.result or "")[said.start() :].strip(" .")[:500])

    def transcript_files(self, session_id: str) -> list[Path]:
        folder = self._home / "copilot" / "session-state" / session_id
        if "/" in session_id or session_id in ("", ".", "..") or not folder.is_dir():
            return []
        return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith((".lock", ".hold")))


def _release(version: str | None) -> tuple[int, ...]:
    """``1.0.102`` as ``(1, 0, 102)``; ``()`` for none or another form."""
    parts = (version or "").split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else ()


def retry_notice(event: dict[str, Any]) -> str | None:
    """The words of a retry notice Copilot streams as a message chunk, else None."""
    update = event.get("update") if event.get("type") == "acp.update" else None
    content = update.get("content") if isinstance(update, dict) else None
    text = content.get("text") if isinstance(content, dict) else None
    if isinstance(text, str) and text.startswith("Info: ") and text.rstrip().endswith("Retrying..."):
        return text.removeprefix("Info: ").strip()
    return None


def native_binary(setting: str = "") -> list[str]:
    """The platform package's binary beside the loader (``BATON_COPILOT_BIN``, else the one the PATH
    finds), else the loader itself."""
    loader = find_binary(setting, "copilot", "BATON_COPILOT_BIN", INSTALL)
    return platform_binary(loader, "@github/copilot-linux-{arch}/copilot")


def from_settings(name: str, settings: Settings) -> CopilotAgent:
    return CopilotAgent(name, settings.home / "homes" / name, settings.copilot_bin)
