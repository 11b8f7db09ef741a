"""Gemini CLI adapter (``gemini --prompt=… -o stream-json``), built on measured behaviour of 0.61.0.

The argv (``--prompt=PROMPT`` is one argv element, so a prompt that starts with ``-`` is never parsed
as flags, which ``-p PROMPT`` does):

- fresh / recover: ``gemini --prompt=P -o stream-json -m MODEL --session-id <new uuid>``
- resume:          ``… --resume <full id>`` (the 8-character short id is rejected)
- continue:        ``… --resume latest``
- fork:            ``… --session-file <the source's chat file>`` — Gemini copies the history into a
  NEW session in the current directory's project. ``--session-file`` and ``--session-id`` are
  mutually exclusive (exit 1), so a fork's id cannot be pre-assigned: it is the one the ``init``
  event reports, which the runner captures like any other.

``-m`` skips the per-turn routing call that the default ``auto`` model makes. The model is, in order:
``BATON_GEMINI_MODEL``; the CLI's own choices (``GEMINI_MODEL``, then ``model.name`` in the home's
settings.json); else :data:`DEFAULT_MODEL` (the CLI's ``pro`` alias, which it resolves to its current
pro model). ``auto`` from any of them passes no ``-m`` and lets the CLI route.

The environment: ``GEMINI_CLI_HOME`` relocates everything into ``<home>/.gemini``;
``GEMINI_CLI_TRUST_WORKSPACE`` trusts the worktree baton made (an untrusted folder exits 55 before
doing anything); ``GEMINI_CLI_NO_RELAUNCH`` keeps Gemini one process — by default it re-spawns itself
as a child node process, which would outlive a runner killed with SIGKILL (only the direct child gets
``PR_SET_PDEATHSIG``) and keep writing the transcript the next run resumes.

Prompts that Gemini would not keep: a prompt starting with ``/`` runs a slash command in ``-p`` mode
(``/clear``, ``/memory add …``), and a user message starting with ``/``, ``?``, ``<session_context>``
or ``<hook_context>`` is sent once but dropped from the history of every later resume (measured). Such
a prompt is sent as ``Instruction: <prompt>``.

Sessions are keyed by the EXACT working directory: ``<home>/.gemini/projects.json`` maps a directory
to a slug, and a session's chat file lives in ``tmp/<slug>/chats/session-<time>-<first 8 of id>.jsonl``
(JSONL: a header ``{"sessionId","projectHash",…}``, message records, ``{"$set":…}`` updates). The slug
is derived from the directory's basename (``issue-1``, ``issue-1-1``, …) and owned through a
``.project_root`` marker. So :meth:`GeminiAgent.transcript_files` matches the FULL id in the file
(two sessions can share the 8-character prefix) and only counts files with resumable content, and
:meth:`GeminiAgent.after_hydrate` maps the worktree to the slug its hydrated chat file lives in —
moving the file to a slug of its own when that one belongs to another directory on this machine.

Retention: Gemini's session cleanup runs at every start and has a data-loss bug (see
:data:`MANAGED`), so baton turns it off and its own sweeper expires conversations.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from baton.agents.base import Capabilities, Launch, Turn, find_binary
from baton.errors import AgentError
from baton.models import Mode, Outcome

NOT_FOUND = "Invalid session identifier"  # `--resume <id>`: no such session in this directory
NO_SESSIONS = "No previous sessions found"  # `--resume …` in a directory with no session at all
IMPORT_FAILED = "Error importing session from file"  # `--session-file` of an unreadable file
INSTALL = "run `make setup` (npm @google/gemini-cli 0.61.0)"
DEFAULT_MODEL = "pro"
MODEL_ENV = "BATON_GEMINI_MODEL"
# Gemini drops user messages starting like this from a resumed history; "/" also runs slash commands.
IGNORED_PREFIXES = ("/", "?", "<session_context>", "<hook_context>")
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "total_tokens", "tool_calls")
LOCK_STALE_S = 10.0  # proper-lockfile's default, which Gemini uses for projects.json

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


class GeminiAgent:
    name = "gemini"
    capabilities = Capabilities(
        preassigned_id=True,
        resume_by_id=True,
        continue_latest=True,
        fork=True,
        reports_cost=False,
        not_found=NOT_FOUND,
        resume_keeps_id=True,
    )

    def __init__(self, home: Path, binary_setting: str = "") -> None:
        self._home = home
        self._binary_setting = binary_setting

    @property
    def home(self) -> Path:
        return self._home

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

    def launch(self, mode: Mode, prompt: str, session_id: str | None) -> Launch:
        argv = [*self.command, f"--prompt={guard_prompt(prompt)}", "-o", "stream-json"]
        model = self.model()
        if model:
            argv += ["-m", model]
        new_id: str | None = None
        if mode in (Mode.FRESH, Mode.RECOVER):
            new_id = str(uuid.uuid4())
            argv += ["--session-id", new_id]
        elif mode == Mode.RESUME:
            argv += ["--resume", _need(session_id, mode)]
        elif mode == Mode.CONTINUE:
            argv += ["--resume", "latest"]
        elif mode == Mode.FORK:
            files = self.transcript_files(_need(session_id, mode))
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
        return Launch(argv=argv, env=env, new_session_id=new_id)

    def model(self) -> str | None:
        """The ``-m`` value, or None to let the CLI route (``auto``)."""
        chosen = os.environ.get(MODEL_ENV, "").strip() or os.environ.get("GEMINI_MODEL", "").strip()
        if not chosen:
            with contextlib.suppress(AgentError, AttributeError):
                name = self._settings().get("model", {}).get("name")
                chosen = name.strip() if isinstance(name, str) else ""
        chosen = chosen or DEFAULT_MODEL
        return None if chosen == "auto" else chosen

    def read_event(self, line: str, turn: Turn) -> dict[str, Any] | None:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            return None
        if not isinstance(event, dict):
            return None
        turn.events += 1
        kind = event.get("type")
        if kind == "init":
            if isinstance(event.get("session_id"), str):
                turn.session_id = event["session_id"]
            turn.is_error = True  # not done until a successful `result`
        elif kind == "message" and event.get("role") == "assistant":
            if isinstance(event.get("content"), str):
                turn.result = (turn.result or "") + event["content"]
        elif kind in ("tool_use", "tool_result") and turn.result:
            turn.result = turn.result.rstrip("\n") + "\n\n"  # text before and after a tool call
        elif kind == "error" and event.get("severity") == "error":
            turn.errors.append(str(event.get("message") or "error"))
        elif kind == "result":
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
        return event

    def classify(self, exit_code: int, turn: Turn, stderr: str) -> Outcome:
        said = "\n".join([*turn.errors, stderr])
        succeeded = exit_code == 0 and not turn.is_error and turn.result is not None
        if NOT_FOUND in said or IMPORT_FAILED in said:
            return Outcome.SESSION_LOST
        # `--resume latest` in a directory without sessions warns and starts a NEW one (exit 0): a
        # continue that began a conversation, like Claude's; `--resume <id>` there exits 42.
        if NO_SESSIONS in said and not succeeded:
            return Outcome.SESSION_LOST
        return Outcome.SUCCEEDED if succeeded else Outcome.FAILED

    # -- transcripts --------------------------------------------------------------------------------

    def transcript_files(self, session_id: str) -> list[Path]:
        """The chat files of ``session_id``: named for its short id, holding its FULL id, and with
        content Gemini can resume. The near-empty file a resume writes in a new minute is left out
        (alone it cannot be resumed: the runner must hydrate or recover, not resume it)."""
        tmp = self.gemini_dir / "tmp"
        if not session_id or not tmp.is_dir():
            return []
        short = session_id[:8]
        found = []
        for chats in tmp.glob("*/chats"):
            with contextlib.suppress(OSError):
                for path in chats.iterdir():
                    name = path.name
                    if not (
                        name.startswith("session-") and name.endswith((f"-{short}.jsonl", f"-{short}.json"))
                    ):
                        continue
                    chat = read_chat(path)
                    if chat is not None and chat.session_id == session_id and chat.resumable:
                        found.append(path)
        return sorted(found)

    def after_hydrate(self, session_id: str, cwd: Path) -> None:
        """Map ``cwd`` (exactly as the CLI will see it) to the slug directory holding the hydrated chat
        files in projects.json, merging with other mappings under Gemini's own lock. If that slug
        belongs to another directory here (another key hydrated or started first), the files move
        to the slug ``cwd`` already has, or to a new one."""
        files = self.transcript_files(session_id)
        if not files:
            return
        root = os.path.realpath(cwd)  # the CLI keys projects by process.cwd(): the physical path
        registry = self.gemini_dir / "projects.json"
        with registry_lock(registry):
            projects = read_projects(registry)
            slug = projects.get(root)
            if slug is None or self._owner(slug, projects) not in (None, root):
                here = files[-1].parent.parent.name
                slug = here if self._owner(here, projects) in (None, root) else self._new_slug(root, projects)
            chats = self.gemini_dir / "tmp" / slug / "chats"
            chats.mkdir(parents=True, exist_ok=True)
            for path in files:
                target = chats / path.name
                if path.parent == chats:
                    continue
                if target.exists() and target.stat().st_size >= path.stat().st_size:
                    path.unlink()  # the same session's file is already there, at least as long
                else:
                    os.replace(path, target)
            for base in (self.gemini_dir / "tmp", self.gemini_dir / "history"):
                marker = base / slug / ".project_root"
                if not marker.is_file():
                    marker.parent.mkdir(parents=True, exist_ok=True)
                    marker.write_text(root)
            if projects.get(root) != slug:
                projects[root] = slug
                write_json(registry, {"projects": projects})

    def _owner(self, slug: str, projects: dict[str, str]) -> str | None:
        """The directory that owns ``slug``: its ``.project_root`` marker, else its mapping."""
        for base in (self.gemini_dir / "tmp", self.gemini_dir / "history"):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                return (base / slug / ".project_root").read_text().strip()
        return next((path for path, s in projects.items() if s == slug), None)

    def _new_slug(self, root: str, projects: dict[str, str]) -> str:
        """Gemini's own scheme: the slugified basename, then ``-1``, ``-2``… until unclaimed."""
        base = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", os.path.basename(root).lower())).strip("-")
        base = base or "project"
        for n in range(10_000):
            slug = base if n == 0 else f"{base}-{n}"
            taken = slug in projects.values() or (self.gemini_dir / "tmp" / slug).exists()
            if not taken and self._owner(slug, projects) in (None, root):
                return slug
        raise AgentError(f"no free project slug for {root} in {self.gemini_dir / 'tmp'}")

    def version(self) -> str | None:
        return gemini_version(tuple(self.command))


# -- helpers ----------------------------------------------------------------------------------------


def guard_prompt(prompt: str) -> str:
    """Keep a prompt out of slash-command handling and in the resumed history (module docstring)."""
    return f"Instruction: {prompt}" if prompt.lstrip().startswith(IGNORED_PREFIXES) else prompt


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


class Chat:
    """What baton needs from one chat file: its session id and whether Gemini can resume it."""

    def __init__(self, session_id: str | None, resumable: bool) -> None:
        self.session_id = session_id
        self.resumable = resumable


def read_chat(path: Path) -> Chat | None:
    """Replay a chat file as Gemini's loader does (header, message records, ``$set`` updates that may
    replace the messages, ``$rewindTo``), tolerating torn or garbage lines; None if unreadable."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    meta: dict[str, Any] = {}
    messages: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(json.JSONDecodeError):
        whole = json.loads(text)
        if isinstance(whole, dict) and isinstance(whole.get("messages"), list):  # legacy .json format
            sid = whole.get("sessionId")
            return Chat(sid if isinstance(sid, str) else None, any(map(_resumable, whole["messages"])))
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        if isinstance(record.get("$rewindTo"), str):
            ids = list(messages)
            cut = ids.index(record["$rewindTo"]) if record["$rewindTo"] in ids else 0
            for key in ids[cut:]:
                del messages[key]
        elif isinstance(record.get("id"), str):
            messages[record["id"]] = record
        elif isinstance(record.get("$set"), dict):
            update = record["$set"]
            if isinstance(update.get("messages"), list):
                messages = {m["id"]: m for m in update["messages"] if isinstance(m, dict) and "id" in m}
            meta.update(update)
        elif isinstance(record.get("sessionId"), str) and isinstance(record.get("projectHash"), str):
            meta.update(record)
    sid = meta.get("sessionId")
    if not isinstance(sid, str):
        return None
    return Chat(sid, any(map(_resumable, messages.values())))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "")
    if isinstance(content, list):
        return "".join(_text(part) for part in content)
    return ""


def _resumable(message: Any) -> bool:
    """Gemini's ``isResumableMessageRecord``: a real user prompt, or a model turn with any content."""
    if not isinstance(message, dict):
        return False
    text = _text(message.get("content")).strip()
    if message.get("type") == "user":
        return bool(text) and not text.startswith(IGNORED_PREFIXES)
    if message.get("type") == "gemini":
        return bool(text or message.get("toolCalls") or message.get("thoughts"))
    return False


def newest(files: list[Path]) -> Path:
    """The chat file Gemini would pick among several of one session: the last modified."""
    return max(files, key=lambda p: (p.stat().st_mtime, p.name))


def read_projects(path: Path) -> dict[str, str]:
    """projects.json's mappings; a missing or malformed file is empty, as Gemini treats it."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    projects = data.get("projects") if isinstance(data, dict) else None
    if not isinstance(projects, dict):
        return {}
    return {k: v for k, v in projects.items() if isinstance(k, str) and isinstance(v, str)}


@contextlib.contextmanager
def registry_lock(path: Path) -> Iterator[None]:
    """Gemini's lock on projects.json (proper-lockfile: a ``<file>.lock`` directory, stale after 10 s
    without a refresh), so a concurrent Gemini start never loses baton's mapping or the reverse."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        write_json(path, {"projects": {}})
    lock = Path(os.path.realpath(path) + ".lock")
    deadline = time.monotonic() + 2 * LOCK_STALE_S
    while True:
        try:
            lock.mkdir()
            break
        except FileExistsError:
            with contextlib.suppress(OSError):
                if time.time() - lock.stat().st_mtime > LOCK_STALE_S:
                    lock.rmdir()
                    continue
            if time.monotonic() > deadline:
                raise AgentError(f"{lock} is held by another process; remove it if none runs") from None
            time.sleep(0.05)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.rmdir()


def merge(base: dict[str, Any], forced: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``forced`` written over it, key by key into nested objects."""
    out = dict(base)
    for key, value in forced.items():
        current = out.get(key)
        out[key] = merge(current, value) if isinstance(value, dict) and isinstance(current, dict) else value
    return out


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a temporary file in the same directory, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".baton-tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    words = out.stdout.strip().split()
    if out.returncode != 0 or not words:
        return None
    return next((w for w in words if w[:1].isdigit()), None)


def _need(session_id: str | None, mode: Mode) -> str:
    if not session_id:
        raise AgentError(f"mode {mode.value!r} needs an existing session id")
    return session_id
