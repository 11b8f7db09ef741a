"""The agent seam: what baton needs from one coding-agent CLI (:class:`Agent`), and what the adapters share
(:class:`AgentBase`: home, version, prompt checks, event-line parsing, the "not logged in" translation;
:func:`find_binary`, :func:`cli_version`, :func:`need_session`, :func:`need_uuid`). An adapter turns a
mode and a prompt into a :class:`Launch` — the prompt on stdin, never a byte of it in argv, so no prompt
can be read as an option — reads the CLI's event stream into a :class:`Turn`, classifies how the turn
ended, and knows where the CLI keeps a session's transcript files in its relocated home, so they can be
snapshotted and hydrated. Adapters never start processes, touch git or the store: the runner does.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

from baton.agents import limits, window
from baton.agents.limits import Limit
from baton.agents.signals import Signal
from baton.agents.versions import cached_version, known_version, remember_version
from baton.errors import AgentError, BadInput, BatonError
from baton.models import Access, Mode, Outcome


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
    max_prompt_chars: int | None = None  # the CLI refuses longer prompts (characters)
    max_prompt_bytes: int | None = None  # the CLI cuts its stdin beyond this many UTF-8 bytes
    prompt_before_answer: bool = False  # writes an instruction to its transcript before the model answers
    compacts: bool = False  # can compact a conversation in place, headlessly (:meth:`Agent.compact_launch`)

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
    limit: Limit | None = None  # a usage limit its events reported (:mod:`baton.agents.limits`)
    refused: list[str] = field(default_factory=list)  # the permissions it asked for and was refused
    model: str | None = None  # the model it said it ran (None: its events name none)
    context_tokens: int | None = None  # the context its last model request held, where its events say it
    compacted: bool = False  # it compacted the conversation (its events said so)
    wire: dict[str, int] | None = None  # its usage as baton's model gateway read it on the wire


@dataclass(frozen=True)
class Launch:
    """How to start one turn: the argv (never a secret, never a byte of the prompt), the environment to
    add, and the prompt as the bytes to write to the agent's stdin.

    Issue bodies and PR comments become prompts, so a prompt such as ``--settings={"hooks":…}`` must
    never reach a CLI's option parser (that one runs a command): argv carries only baton's own flags and
    ids. stdin also has no length limit of its own, where one argv string is capped at 128 KiB on Linux;
    what each CLI still limits is in :class:`Capabilities` (``max_prompt_chars``, ``max_prompt_bytes``),
    refused up front by :func:`check_prompt`."""

    argv: list[str]
    env: dict[str, str]
    new_session_id: str | None = None  # pre-assigned id of a fresh or forked conversation
    stdin: bytes | None = None  # written to the agent's stdin, then closed (None: /dev/null)


@dataclass(frozen=True)
class McpServer:
    """A stdio MCP server a turn's agent is given (baton's own ``ask_human``: :mod:`baton.asking`),
    configured through the CLI's own MCP configuration. Never a secret in it: it may reach argv."""

    name: str
    command: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Auth:
    """How an agent CLI can authenticate under baton: any one of these does; none at all means it needs
    no credentials (a local model provider). baton checks it before a run writes anything
    (:func:`baton.runner.resolve.check_request`) and ``baton doctor`` reports it: one source of truth."""

    names: tuple[str, ...]  # the variables baton's message asks for
    also: tuple[str, ...] = ()  # other variables the CLI documents (a gateway's token, another cloud)
    files: tuple[Path, ...] = ()  # login files in the operator's base home (copied into each key's)
    hint: str = ""  # what the variables hold, for a person

    @property
    def needed(self) -> bool:
        return bool(self.names or self.also or self.files)

    def found(self, environ: Mapping[str, str]) -> str | None:
        """What authenticates the CLI here (a variable's name or a file), None when nothing does."""
        name = next((n for n in (*self.names, *self.also) if environ.get(n)), None)
        return name or next((str(f) for f in self.files if _nonempty(f)), None)

    def message(self, agent: str) -> str:
        """baton's words for a CLI without credentials: what to set, never the CLI's own advice
        (``Please run /login`` logs into a home baton does not use)."""
        text = f"{agent} is not authenticated: set {' or '.join(self.names)} for baton"
        return f"{text} ({self.hint})" if self.hint else text


def _nonempty(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


class ModelApi(StrEnum):
    """The model API a CLI's requests speak (what baton's model gateway lends the key for:
    :mod:`baton.sandbox.routes`)."""

    ANTHROPIC = "anthropic"  # Messages
    OPENAI = "openai"  # Responses and Chat Completions, and the APIs compatible with them
    GEMINI = "gemini"  # generateContent


@dataclass(frozen=True)
class ModelKey:
    """How baton's model gateway stands in for the CLI's model credential (docs/security.md, "The model
    credential"): the variable the CLI reads its base URL from, and the variables of the keys it can
    take, each with the header the model API wants it in (``x-api-key``, ``authorization`` as a Bearer
    token, ``x-goog-api-key``), the first one set winning; or, for a CLI that reads its base URL from
    its configuration, the key of the setting that holds it (``config``: Codex's ``-c`` path). A key no
    variable holds (a config file's) is ``secret``: the first of ``keys`` is then where its token goes."""

    base_url: str  # "" when the base URL is no variable's
    keys: tuple[tuple[str, str], ...]
    config: str = ""
    secret: str = field(default="", repr=False)
    also: tuple[str, ...] = ()  # other variables that hold the key (a config's reference): dropped
    api: ModelApi = ModelApi.OPENAI  # what its requests speak: the calls the key is lent for


class Agent(Protocol):
    name: str
    capabilities: Capabilities
    credentials: tuple[str, ...]  # environment variables that authenticate the CLI (any one will do)
    auth_hint: str  # how to set them up, for `doctor` and for a "not logged in" run
    config_files: tuple[str, ...]  # the operator's files of the base home a key's home gets copies of
    instruction_files: tuple[str, ...]  # what it reads of its worktree as instructions (``dir/``: all within)

    @property
    def command(self) -> list[str]:
        """The CLI's argv prefix; raises AgentError naming how to install it when it is missing."""
        ...

    @property
    def home(self) -> Path:
        """The agent's relocated home inside BATON_HOME."""
        ...

    def with_home(self, home: Path) -> Self:
        """A copy of this adapter working in ``home`` (a key's own home) instead."""
        ...

    def prepare_home(self, ttl_days: float) -> None:
        """Create the home and align the CLI's own retention with baton's TTL."""
        ...

    def check_prompt(self, prompt: str) -> None:
        """Raise BadInput for a prompt this CLI cannot take whole (call it before anything is written)."""
        ...

    def auth(self) -> Auth:
        """How the CLI authenticates, as the home's configuration says (read it on the base home)."""
        ...

    def credential(self, env: Mapping[str, str]) -> tuple[str, str] | None:
        """The credential the CLI authenticates with in ``env`` (read on the base home): where it is
        found, for people (a variable's name, a file), and the secret, which only a hash may keep (the
        key of its usage-limit breaker); None when it uses none."""
        ...

    def gateway_key(self, env: Mapping[str, str]) -> ModelKey | None:
        """How baton's model gateway stands in for the CLI's model credential in ``env`` (read on the
        operator's base home); None when it cannot (a login, a cloud provider's own credentials)."""
        ...

    def behind_gateway(self, launch: Launch, setting: str, url: str) -> Launch:
        """``launch`` with ``setting`` (a :class:`ModelKey`'s ``config``) the gateway's ``url``, where the
        CLI reads its base URL from its argv."""
        ...

    def gateway_secrets(self, setting: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """What of its home's config files holds the key the gateway stands in for (``setting``: its
        :class:`ModelKey`'s ``config``): each a JSON file of the home and the path of the value to drop."""
        ...

    def env_names(self) -> tuple[str, ...]:
        """The environment variables the CLI needs, as fnmatch patterns (``ANTHROPIC_*``): its
        credentials, base URL and its own switches; never one of baton's (``BATON_*``). The runner
        passes the agent these, the few every program needs and what :meth:`launch` sets, nothing else."""
        ...

    def endpoints(self) -> tuple[str, ...]:
        """URLs the CLI connects to that its environment does not name (Codex's model providers, from
        its config file): a walled-in agent may connect to their ports."""
        ...

    def launch(
        self,
        mode: Mode,
        prompt: str,
        session_id: str | None,
        access: Access = Access.EDIT,
        walled: bool = False,
        servers: tuple[McpServer, ...] = (),
    ) -> Launch:
        """``session_id``: the conversation to resume/fork (None for fresh/recover/continue);
        ``access``: what the CLI may let the agent do; ``walled``: baton's Landlock walls hold the
        agent at that level whatever the CLI allows (a CLI whose own sandbox cannot run inside them
        switches it off); ``servers``: MCP servers the agent is given, each tool allowed at every
        access level (they run inside the same walls)."""
        ...

    def compact_launch(self, session_id: str, access: Access, walled: bool = False) -> Launch:
        """How to have the CLI compact conversation ``session_id`` in place (its own summary replacing
        the history, the id kept), for an agent whose ``capabilities.compacts``; AgentError otherwise."""
        ...

    def read_event(self, line: str, turn: Turn) -> dict[str, Any] | None:
        """Parse one stdout line into ``turn``; returns the event object, or None if not JSON."""
        ...

    def classify(self, exit_code: int, turn: Turn, stderr: str) -> Outcome:
        """SUCCEEDED, FAILED or SESSION_LOST for a process that exited on its own. A turn that failed
        for want of credentials is FAILED with baton's own message first in ``turn.errors``."""
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

    def signal(self, event: dict[str, Any]) -> Signal | None:
        """What one stdout event says about the model API (retrying, unreachable), as it streams
        (:mod:`baton.agents.signals`); None for every other event."""
        ...

    def stderr_signal(self, line: str) -> Signal | None:
        """The same for one stderr line (Gemini CLI reports its retries there)."""
        ...

    def usage_limit(self, exit_code: int, turn: Turn, stderr: str) -> Limit | None:
        """The usage limit the turn ran into (:mod:`baton.agents.limits`): what its events said, else
        its words when it failed; None when it ran into none."""
        ...

    def context_full(self, exit_code: int, turn: Turn, stderr: str) -> str | None:
        """The model's refusal of the conversation as longer than its context window, in the agent's
        words (:mod:`baton.agents.window`); None when the turn met no such refusal."""
        ...

    def model_url(self, env: Mapping[str, str]) -> str | None:
        """The model API's address the CLI connects to with the environment ``env`` (read on the
        operator's base home); None when baton cannot tell (a cloud provider's own endpoint)."""
        ...

    def unanswered_prompt(self, transcript: bytes) -> str | None:
        """In a transcript file's bytes: the last instruction when the model never answered it (its turn
        failed first) and the CLI will send it again on resume; None otherwise."""
        ...

    def transcript_problem(self, transcript: bytes) -> str | None:
        """Why a transcript file's bytes are in a format baton cannot read (another release of the CLI
        changed it, and a resume would lose part of the history), None when they are fine
        (:mod:`baton.agents.formats`)."""
        ...

    def retention(self, ttl_days: float) -> tuple[bool, str]:
        """Whether the CLI's own transcript retention keeps conversations at least ``ttl_days``."""
        ...

    def version(self) -> str | None:
        """The installed CLI's version (cheap: remembered per binary); None when it reports none."""
        ...

    def known_version(self) -> str | None:
        """The installed CLI's version if it is remembered already, without running the CLI."""
        ...

    def remember_version(self, version: str) -> None:
        """Remember ``version``, which the installed CLI reported itself, for this binary."""
        ...


class AgentBase:
    """What the three adapters share. A subclass sets the class attributes, implements
    :meth:`on_event` (one parsed event object into the turn) and the rest of :class:`Agent`."""

    name: str
    capabilities: Capabilities
    credentials: tuple[str, ...] = ()
    model_key: ModelKey | None = None
    gateway_hint: str = ""  # why the gateway cannot stand in for a credential it keeps (``baton doctor``)
    auth_hint: str = ""
    # Words the CLI uses when it has no (valid) credentials, matched against its errors and stderr.
    auth_failures: tuple[str, ...] = ()
    auth_exit_codes: tuple[int, ...] = ()  # exit codes that only mean "no credentials"
    # Other ways the CLI documents to authenticate: variables, and login files of the home.
    other_credentials: tuple[str, ...] = ()
    credential_files: tuple[str, ...] = ()
    # The CLI's own flags for each access level, in argv only (never a byte of the prompt).
    access_flags: ClassVar[dict[Access, tuple[str, ...]]] = {}
    env_patterns: tuple[str, ...] = ()  # what env_names() returns unless an adapter adds to it
    # Files of the base home (relative paths: the operator's configuration and credentials) that a
    # key's home is given copies of (see :mod:`baton.workspace.keyspace`).
    config_files: tuple[str, ...] = ()
    # What the CLI reads of its worktree before it answers, as instructions and configuration (paths
    # relative to the worktree; one ending in ``/`` is a directory, read whole): a resumed conversation
    # whose files changed since it last saw them is told how (:mod:`baton.runner.instructions`).
    instruction_files: tuple[str, ...] = ()
    # Where the CLI's version is remembered per binary (``BATON_HOME/cache``, set by
    # :func:`baton.agents.get_agent`); None asks the CLI every time (see :mod:`baton.agents.versions`).
    version_cache: Path | None = None

    def __init__(self, home: Path) -> None:
        self._home = home

    @property
    def home(self) -> Path:
        return self._home

    def with_home(self, home: Path) -> Self:
        """A copy of this adapter whose home is ``home``: everything else (name, binary) is shared."""
        clone = copy.copy(self)
        clone._home = home
        return clone

    @property
    def command(self) -> list[str]:
        raise NotImplementedError

    def check_prompt(self, prompt: str) -> None:
        check_prompt(self.name, self.capabilities, prompt)

    def prompt_stdin(self, prompt: str) -> bytes:
        """The prompt as the bytes for the agent's stdin, after :meth:`check_prompt`."""
        self.check_prompt(prompt)
        return prompt.encode("utf-8")

    def read_event(self, line: str, turn: Turn) -> dict[str, Any] | None:
        event = parse_event(line, turn)
        if event is not None:
            self.on_event(event, turn)
            turn.limit = limits.merge(turn.limit, self.limit_event(event))
        return event

    def limit_event(self, event: dict[str, Any]) -> Limit | None:
        """None by default: an adapter that knows its CLI's limit events reads them."""
        return None

    def usage_limit(self, exit_code: int, turn: Turn, stderr: str) -> Limit | None:
        if turn.limit is not None:
            return turn.limit
        if exit_code == 0 and not turn.is_error:
            return None
        return limits.from_words("\n".join([*turn.errors, turn.result or "", stderr[-4000:]]))

    def compact_launch(self, session_id: str, access: Access, walled: bool = False) -> Launch:
        raise AgentError(f"{self.name} cannot compact a conversation headlessly")

    def context_full(self, exit_code: int, turn: Turn, stderr: str) -> str | None:
        if exit_code == 0 and not turn.is_error:
            return None
        return window.too_long("\n".join([*turn.errors, turn.result or "", stderr[-4000:]]))

    def on_event(self, event: dict[str, Any], turn: Turn) -> None:
        raise NotImplementedError

    def auth(self) -> Auth:
        """The class's credentials (:attr:`credentials`, :attr:`other_credentials`, and
        :attr:`credential_files` in this home)."""
        files = tuple(self._home / f for f in self.credential_files)
        return Auth(self.credentials, self.other_credentials, files, self.auth_hint)

    def credential(self, env: Mapping[str, str]) -> tuple[str, str] | None:
        """The first of :meth:`auth`'s variables set in ``env``, else the first login file it can read
        (its bytes in hex); None when there is neither."""
        auth = self.auth()
        for name in (*auth.names, *auth.also):
            if value := env.get(name):
                return name, value
        for path in auth.files:
            try:
                return path.name, path.read_bytes().hex()
            except OSError:
                continue
        return None

    def not_logged_in(self, exit_code: int, turn: Turn, stderr: str) -> bool:
        """True, with baton's message put first in ``turn.errors``, when the CLI said it has no valid
        credentials. The agent's own advice (``Please run /login``) does not apply under baton, which
        relocates the agent's home: the message names the variables to set instead."""
        said = "\n".join([*turn.errors, (turn.result or "") if turn.is_error else "", stderr])
        if exit_code not in self.auth_exit_codes and not any(words in said for words in self.auth_failures):
            return False
        turn.errors.insert(0, self.auth().message(self.name))
        return True

    def leftover_files(self, session_id: str) -> list[Path]:
        """None by default: the transcript is all the CLI keeps of a session."""
        return []

    def unanswered_prompt(self, transcript: bytes) -> str | None:
        """None by default: the CLI writes an instruction with its answer, or not at all."""
        return None

    def transcript_problem(self, transcript: bytes) -> str | None:
        """None by default: an adapter that knows its CLI's format checks it."""
        return None

    def env_names(self) -> tuple[str, ...]:
        return self.env_patterns

    def gateway_key(self, env: Mapping[str, str]) -> ModelKey | None:
        """The class's :attr:`model_key`, when the CLI's model API is one baton can tell."""
        return self.model_key if self.model_url(env) is not None else None

    def behind_gateway(self, launch: Launch, setting: str, url: str) -> Launch:
        """As it is: the CLIs that read their base URL from a variable are told it there."""
        return launch

    def gateway_secrets(self, setting: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """None: the key the gateway stands in for is a variable's."""
        return ()

    def signal(self, event: dict[str, Any]) -> Signal | None:
        """None by default: an adapter that knows its CLI's retry events reads them."""
        return None

    def stderr_signal(self, line: str) -> Signal | None:
        return None

    def model_url(self, env: Mapping[str, str]) -> str | None:
        """None by default: baton does not know where the CLI connects."""
        return None

    def endpoints(self) -> tuple[str, ...]:
        """None by default: the CLI's base URL is in its environment."""
        return ()

    def version(self) -> str | None:
        """The installed CLI's version, asked once per binary (:func:`cached_version`)."""
        return cached_version(tuple(self.command), self.probe_version, self.version_cache)

    def known_version(self) -> str | None:
        return known_version(tuple(self.command), self.version_cache)

    def remember_version(self, version: str) -> None:
        remember_version(tuple(self.command), self.version_cache, version)

    def probe_version(self, command: tuple[str, ...]) -> str | None:
        """Ask the CLI itself (``COMMAND --version``); an adapter whose CLI needs more overrides it."""
        return cli_version(command)


def check_prompt(agent: str, capabilities: Capabilities, prompt: str) -> None:
    """Refuse what cannot reach the agent whole: text no CLI takes (:func:`check_text`) and a prompt
    beyond the CLI's own limit (:func:`check_limit`)."""
    check_text("prompt", prompt)
    check_limit(agent, capabilities, prompt)


def check_text(name: str, value: str) -> None:
    """Refuse a NUL byte (no CLI carries one through) and text that is not UTF-8 (lone surrogates:
    undecodable bytes that came in through argv), naming the field."""
    if "\0" in value:
        raise BadInput(f"the {name} contains a NUL byte, which no agent CLI can take; remove it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadInput(f"the {name} is not valid UTF-8 text (at character {exc.start})") from exc


def check_limit(agent: str, capabilities: Capabilities, prompt: str) -> None:
    """Refuse a prompt (already valid text) beyond the CLI's own limit: Codex refuses, Gemini cuts its
    stdin."""
    limit = capabilities.max_prompt_chars
    if limit is not None and len(prompt) > limit:
        raise BadInput(f"the prompt has {len(prompt):,} characters; {agent} takes at most {limit:,}")
    limit = capabilities.max_prompt_bytes
    if limit is not None and (size := len(prompt.encode("utf-8"))) > limit:
        raise BadInput(f"the prompt has {size:,} bytes; {agent} takes at most {limit:,}")


def parse_event(line: str, turn: Turn) -> dict[str, Any] | None:
    """One stdout line as a JSON object (counted in ``turn.events``), or None for anything else."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(event, dict):
        return None
    turn.events += 1
    return event


def find_binary(
    setting: str, name: str, env_name: str, install: str, bundled: str | None = None
) -> list[str]:
    """The CLI to run: the setting (``BATON_*_BIN``), else a ``bundled`` copy (Claude's, inside the
    claude-agent-sdk wheel), else ``name`` on PATH, else next to this Python (the project's set-up
    links the pinned npm CLIs into the virtualenv's ``bin``)."""
    if setting:
        return [setting]
    found = bundled or shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        raise AgentError(f"{name} was not found: {install}, put `{name}` on PATH, or set {env_name}")
    return [found]


@cache
def cli_version(command: tuple[str, ...]) -> str | None:
    """What ``COMMAND --version`` prints, as :func:`version_word` reads it; None if it fails."""
    try:
        out = subprocess.run(
            [*command, "--version"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return version_word(out)


def version_or_none(agent: Agent) -> str | None:
    """The installed CLI's version (remembered per binary, :mod:`baton.agents.versions`), or None when
    it cannot be told: a run never fails for want of it."""
    try:
        return agent.version()
    except (BatonError, OSError):
        return None


def version_word(out: subprocess.CompletedProcess[str]) -> str | None:
    """The first word starting with a digit (``2.1.327 (Claude Code)`` → ``2.1.327``, ``codex-cli
    0.169.0`` → ``0.169.0``), None if the command failed or printed none."""
    if out.returncode != 0:
        return None
    return next((w for w in out.stdout.split() if w[:1].isdigit()), None)


def need_session(session_id: str | None, mode: Mode) -> str:
    """The id a resume or fork needs; AgentError without one."""
    if not session_id:
        raise AgentError(f"mode {mode.value!r} needs an existing session id")
    return session_id


def is_uuid(value: str | None) -> bool:
    """True for a canonical (lower-case, hyphenated) UUID."""
    if not value:
        return False
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def need_uuid(session_id: str | None, mode: Mode, what: str) -> str:
    """Like :func:`need_session`, for a CLI that would take anything else as a *name* (Codex)."""
    value = need_session(session_id, mode)
    if not is_uuid(value):
        raise AgentError(f"{value!r} is not a {what} (a UUID); refusing to resume it")
    return value


def guard_prompt(prompt: str, prefixes: tuple[str, ...]) -> str:
    """``Instruction: <prompt>`` for a prompt that starts (after blanks) with one of ``prefixes``: the
    CLI would run it as a slash command or drop it from a resumed history instead of sending it."""
    return f"Instruction: {prompt}" if prompt.lstrip().startswith(prefixes) else prompt
