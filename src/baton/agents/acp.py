"""Agents that speak the Agent Client Protocol (ACP): one adapter, :class:`AcpAgent`, configured per agent
by a subclass's few attributes (its command, where its home's variables point, where it keeps a
conversation, its credentials and model settings). Each turn runs the ACP bridge
(:mod:`baton.agents.acpbridge`) as the agent process, and :meth:`AcpAgent.on_event` reads its JSON events
into the turn, so the runner treats an ACP agent as every CLI (walls, containment, timeouts, snapshots,
hand-offs). Modes: ``fresh`` (``session/new``, the agent's id from the ``acp.session`` event) and
``resume`` (``session/resume`` where the agent advertises it, which sends no history back, else
``session/load``: :func:`baton.agents.acpbridge.restore`; a refused one is a lost conversation, recovered
with a recap); ``continue`` and ``fork`` are not offered (ACP's ``session/fork`` is unstable, and not
every agent has it).
"""

from __future__ import annotations

import json
import platform
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from baton.agents import limits
from baton.agents.base import AgentBase, Capabilities, Launch, McpServer, Turn, guard_prompt, need_session
from baton.agents.limits import Limit
from baton.errors import AgentError
from baton.models import Access, Mode, Outcome

NOT_FOUND = "the ACP agent could not load the conversation"
BRIDGE = Path(__file__).with_name("acpbridge.py")
VERSION = re.compile(r"\d[0-9A-Za-z.+-]{0,63}")  # a version an agent reports, as --version prints it


class AcpAgent(AgentBase):
    """An ACP agent driven through the bridge; a subclass says which and how (see the module)."""

    capabilities = Capabilities(
        preassigned_id=False,
        resume_by_id=True,
        continue_latest=False,
        fork=False,
        reports_cost=False,
        not_found=NOT_FOUND,
    )
    acp_args: ClassVar[tuple[str, ...]] = ()  # what makes the CLI speak ACP on stdio (``acp``)
    # the agent binds a conversation to the directory it was made in: a load it does not list for the
    # worktree is a lost conversation (recovered), not a prompt that fails every turn
    bound_to_cwd: ClassVar[bool] = False
    # the variable that protects the agent's own server (its password), given a fresh random value for
    # each turn by the bridge, inside the walls: never in argv, a log, the store or baton's memory
    server_secret_env: ClassVar[str] = ""
    # its ``initialize`` answer's ``agentInfo.version`` is the one ``--version`` prints: the turn reports it
    # (remembered per binary), and the CLI is never started only to be asked (OpenCode: 0.7 s of CPU)
    reports_version: ClassVar[bool] = False
    # where the agent advertises ``session/resume``, a conversation is restored with it (its history not
    # sent back, as ``session/load`` does); False: always loaded (a release whose resume misbehaves)
    resumes: ClassVar[bool] = True

    def __init__(self, name: str, home: Path, command: list[str] | None = None) -> None:
        super().__init__(home)
        self.name = name
        self._command = command

    @property
    def command(self) -> list[str]:
        """The ACP agent's own argv prefix (the bridge runs it); found when first asked for."""
        if self._command is None:
            self._command = self.locate()
        return self._command

    def locate(self) -> list[str]:
        """Find the CLI; AgentError naming how to install it when it is missing."""
        raise AgentError(f"the {self.name} CLI is not installed")

    def prepare_home(self, ttl_days: float) -> None:
        self._home.mkdir(parents=True, exist_ok=True)

    def home_env(self) -> dict[str, str]:
        """The variables that put the agent's state (sessions, config) in this key's home."""
        return {"HOME": str(self._home)}

    def launch(
        self,
        mode: Mode,
        prompt: str,
        session_id: str | None,
        access: Access = Access.EDIT,
        walled: bool = False,
        servers: tuple[McpServer, ...] = (),
    ) -> Launch:
        argv = [sys.executable, "-S", str(BRIDGE), "--access", access.value]
        flagged = self.server_args(servers)
        if servers and not flagged:  # ACP's stdio McpServer: name, command, args, env (no secret: argv)
            given = [{"name": s.name, "command": s.command, "args": list(s.args), "env": []} for s in servers]
            argv += ["--mcp", json.dumps(given)]
        if mode == Mode.RESUME:
            argv += ["--session", need_session(session_id, mode)]
            argv += [] if self.resumes else ["--restore", "load"]
        elif mode not in (Mode.FRESH, Mode.RECOVER):
            raise AgentError(f"mode {mode.value!r} cannot be launched directly")
        if self.bound_to_cwd:
            argv += ["--bound", "1"]
        if self.server_secret_env:
            argv += ["--secret-env", self.server_secret_env]
        argv += ["--", *self.command, *self.acp_args, *self.access_args(access), *flagged]
        # ACP's slash commands are prompts that start with "/" (OpenCode runs them): never a user's
        return Launch(argv=argv, env=self.home_env(), stdin=self.prompt_stdin(guard_prompt(prompt, ("/",))))

    def server_args(self, servers: tuple[McpServer, ...]) -> list[str]:
        """The agent's own flags that give it ``servers``, for an agent that takes no MCP server over
        ACP; [] (the default): they go in ``session/new`` and in its restore (resume or load)."""
        return []

    def access_args(self, access: Access) -> list[str]:
        """The agent's own flags for an access level, where it has them (the bridge's answers to its
        permission requests hold either way)."""
        return []

    def _reported_version(self, info: Any) -> str | None:
        """``agentInfo.version`` of the agent's ``initialize`` answer, where it is the CLI's version
        (:attr:`reports_version`) and looks like one (it comes from the agent: data)."""
        agent = info.get("agentInfo") if self.reports_version and isinstance(info, dict) else None
        version = agent.get("version") if isinstance(agent, dict) else None
        return version if isinstance(version, str) and VERSION.fullmatch(version) else None

    def on_event(self, event: dict[str, Any], turn: Turn) -> None:
        kind = event.get("type")
        if kind == "acp.session" and isinstance(event.get("session_id"), str):
            turn.session_id = event["session_id"]
            turn.version = self._reported_version(event.get("agent")) or turn.version
        elif kind == "acp.update":
            self._update(event.get("update"), turn)
        elif kind == "acp.result":
            stop = event.get("stop_reason")
            turn.is_error = stop != "end_turn"
            turn.result = turn.result or ""
            if turn.is_error:
                turn.errors.append(f"the agent stopped: {stop}")
            usage = event.get("usage")  # the prompt's result (Copilot), or its _meta (others)
            if not isinstance(usage, dict) and isinstance(event.get("meta"), dict):
                usage = event["meta"].get("usage")
            if isinstance(usage, dict):
                turn.usage = {
                    k: v for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)
                }
        elif kind == "acp.permission" and event.get("allowed") is False:
            turn.refused.append(f"{str(event.get('tool'))[:200]} ({event.get('kind')})")
        elif kind == "acp.error":
            error = event.get("error")
            said = error.get("message") if isinstance(error, dict) else error
            if event.get("session_not_found"):
                turn.errors.append(f"{NOT_FOUND}: {said}")
            else:
                turn.errors.append(f"{event.get('step')}: {said}")

    @staticmethod
    def _update(update: Any, turn: Turn) -> None:
        if not isinstance(update, dict) or update.get("sessionUpdate") != "agent_message_chunk":
            return
        content = update.get("content")
        if isinstance(content, dict) and isinstance(content.get("text"), str):
            turn.result = (turn.result or "") + content["text"]

    def classify(self, exit_code: int, turn: Turn, stderr: str) -> Outcome:
        if any(e.startswith(NOT_FOUND) for e in turn.errors):
            return Outcome.SESSION_LOST
        if exit_code == 0 and not turn.is_error and turn.result is not None:
            return Outcome.SUCCEEDED
        self.not_logged_in(exit_code, turn, stderr)
        return Outcome.FAILED

    def usage_limit(self, exit_code: int, turn: Turn, stderr: str) -> Limit | None:
        """Its words for a limit: an ACP agent relays its provider's refusal as text (measured: Copilot
        CLI on an OpenAI-compatible provider), which baton reads as any agent's, then as an API's."""
        found = super().usage_limit(exit_code, turn, stderr)
        if found is not None or (exit_code == 0 and not turn.is_error):
            return found
        return limits.from_api_words("\n".join([*turn.errors, turn.result or ""]))

    def transcript_files(self, session_id: str) -> list[Path]:
        raise NotImplementedError

    def retention(self, ttl_days: float) -> tuple[bool, str]:
        """Always kept: neither Copilot CLI nor OpenCode has a transcript retention setting (none in
        their releases' configuration schemas), and neither was seen deleting a conversation; baton's
        sweeper applies the TTL."""
        return True, f"{self.name} keeps conversations until they are deleted (no retention setting to align)"

    def after_hydrate(self, session_id: str, cwd: Path) -> None:
        """Nothing by default: the agent loads a conversation by its id from its home."""

    def model_url(self, env: Mapping[str, str]) -> str | None:
        return None

    def model_check(self, env: Mapping[str, str]) -> tuple[bool, str] | None:
        """Whether its model is set up, and where it is (``baton doctor``): an ACP agent reads it from
        its own settings, which a run cannot check before it starts. None: nothing to say."""
        return None


def platform_binary(loader: list[str], *candidates: str) -> list[str]:
    """The native binary an npm package's loader runs (a placeholder or a node wrapper that a killed
    run would leave its child behind): the first of ``candidates`` (relative paths, ``{arch}`` the Node
    name of this machine's: ``x64``, ``arm64``) in a ``node_modules`` around the loader, the nearest
    first (a global install nests it in the package's own ``node_modules``, a local one beside it); the
    loader itself when there is none."""
    arch = {"x86_64": "x64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    for parent in Path(loader[0]).resolve().parents:
        root = parent if parent.name == "node_modules" else parent / "node_modules"
        for candidate in candidates:
            native = root / candidate.format(arch=arch)
            if native.is_file():
                return [str(native)]
    return loader
