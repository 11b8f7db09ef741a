"""Where the Gemini CLI keeps a conversation on disk, and how baton finds and re-homes it. Gemini keys
sessions by the EXACT working directory: ``<home>/.gemini/projects.json`` maps a directory to a slug, and
a session's chat file is ``tmp/<slug>/chats/session-<time>-<first 8 of id>.jsonl`` (its formats are in
docs/agent-clis.md, "Gemini CLI"). :func:`chat_files` finds a session's resumable files (replayed as
Gemini's loader does, :func:`read_chat`); :func:`map_project` makes a worktree resume its hydrated chat
files, moving them to a slug of its own when theirs belongs to another directory here; and
:func:`registry_lock` takes Gemini's own lock on ``projects.json``, so a Gemini starting meanwhile never
loses baton's mapping or the reverse.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from baton import retry
from baton.errors import AgentError
from baton.files import write_json

# Gemini drops user messages starting like this from a resumed history; "/" also runs slash commands.
IGNORED_PREFIXES = ("/", "?", "<session_context>", "<hook_context>")
LOCK_STALE_S = 10.0  # proper-lockfile's default, which Gemini uses for projects.json


# -- chat files -------------------------------------------------------------------------------------


def chat_files(gemini_dir: Path, session_id: str, resumable_only: bool = True) -> list[Path]:
    """The chat files of ``session_id`` under ``gemini_dir/tmp``: named for its short id, holding its
    FULL id, and with content Gemini can resume. The near-empty file a resume writes in a new minute
    is left out (alone it cannot be resumed: the runner must hydrate or recover, not resume it) unless
    ``resumable_only`` is false (a reset removes those too)."""
    tmp = gemini_dir / "tmp"
    if not session_id or not tmp.is_dir():
        return []
    short = session_id[:8]
    found = []
    for chats in tmp.glob("*/chats"):
        with contextlib.suppress(OSError):
            for path in chats.iterdir():
                name = path.name
                if not (name.startswith("session-") and name.endswith((f"-{short}.jsonl", f"-{short}.json"))):
                    continue
                chat = read_chat(path)
                if (
                    chat is not None
                    and chat.session_id == session_id
                    and (chat.resumable or not resumable_only)
                ):
                    found.append(path)
    return sorted(found)


def newest(files: list[Path]) -> Path:
    """The chat file Gemini would pick among several of one session: the last modified."""
    return max(files, key=lambda p: (p.stat().st_mtime, p.name))


class Chat:
    """What baton needs from one chat file: its session id and whether Gemini can resume it."""

    def __init__(self, session_id: str | None, resumable: bool) -> None:
        self.session_id = session_id
        self.resumable = resumable


_CHATS: OrderedDict[tuple[str, int, int, int], Chat | None] = OrderedDict()


def read_chat(path: Path) -> Chat | None:
    """:func:`parse_chat`, remembered per (path, inode, size, mtime): Gemini rewrites the whole message
    list on every resumed turn, so a long chat file is megabytes, and each run looks at it twice (to
    choose the mode, and to snapshot it)."""
    try:
        st = path.stat()
    except OSError:
        return None
    signature = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if signature in _CHATS:
        _CHATS.move_to_end(signature)
        return _CHATS[signature]
    chat = parse_chat(path)
    _CHATS[signature] = chat
    while len(_CHATS) > 256:
        _CHATS.popitem(last=False)
    return chat


def parse_chat(path: Path) -> Chat | None:
    """Replay a chat file as Gemini's loader does (header, message records, ``$set`` updates that may
    replace the messages, ``$rewindTo``), tolerating torn or garbage lines; None if unreadable."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    legacy = _legacy_chat(text)
    if legacy is not None:
        return legacy
    meta: dict[str, Any] = {}
    messages: dict[str, dict[str, Any]] = {}
    for record in _records(text):
        messages = _replay(record, messages, meta)
    sid = meta.get("sessionId")
    if not isinstance(sid, str):
        return None
    return Chat(sid, any(map(_resumable, messages.values())))


def _legacy_chat(text: str) -> Chat | None:
    """The chat of a legacy whole-file ``.json`` chat, or None if ``text`` is not one."""
    with contextlib.suppress(json.JSONDecodeError):
        whole = json.loads(text)
        if isinstance(whole, dict) and isinstance(whole.get("messages"), list):
            sid = whole.get("sessionId")
            return Chat(sid if isinstance(sid, str) else None, any(map(_resumable, whole["messages"])))
    return None


def _records(text: str) -> Iterator[dict[str, Any]]:
    """The JSON object lines of a ``.jsonl`` chat; torn or garbage lines are skipped, as Gemini does."""
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            yield record


def _replay(
    record: dict[str, Any], messages: dict[str, dict[str, Any]], meta: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Apply one record to ``messages`` (in order, by id) and ``meta``; returns the messages, which a
    ``$set`` may replace wholesale."""
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
    return messages


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


# -- project folders ---------------------------------------------------------------------------------


def map_project(gemini_dir: Path, files: list[Path], cwd: Path) -> None:
    """Map ``cwd`` (exactly as the CLI will see it) to the slug directory holding the chat ``files`` in
    projects.json, merging with other mappings under Gemini's own lock. If that slug belongs to
    another directory here (another key hydrated or started first), the files move to the slug
    ``cwd`` already has, or to a new one."""
    root = os.path.realpath(cwd)  # the CLI keys projects by process.cwd(): the physical path
    registry = gemini_dir / "projects.json"
    with registry_lock(registry):
        projects = read_projects(registry)
        slug = projects.get(root)
        if slug is None or _owner(gemini_dir, slug, projects) not in (None, root):
            here = files[-1].parent.parent.name
            mine = _owner(gemini_dir, here, projects) in (None, root)
            slug = here if mine else _new_slug(gemini_dir, root, projects)
        chats = gemini_dir / "tmp" / slug / "chats"
        chats.mkdir(parents=True, exist_ok=True)
        for path in files:
            target = chats / path.name
            if path.parent == chats:
                continue
            if target.exists() and target.stat().st_size >= path.stat().st_size:
                path.unlink()  # the same session's file is already there, at least as long
            else:
                os.replace(path, target)
        for base in (gemini_dir / "tmp", gemini_dir / "history"):
            marker = base / slug / ".project_root"
            if marker.is_symlink():  # an agent's link: baton never writes through it
                marker.unlink()
            if not marker.is_file():
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(root)
        if projects.get(root) != slug:
            projects[root] = slug
            write_json(registry, {"projects": projects})


def _owner(gemini_dir: Path, slug: str, projects: dict[str, str]) -> str | None:
    """The directory that owns ``slug``: its ``.project_root`` marker, else its mapping."""
    for base in (gemini_dir / "tmp", gemini_dir / "history"):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            return (base / slug / ".project_root").read_text().strip()
    return next((path for path, s in projects.items() if s == slug), None)


def _new_slug(gemini_dir: Path, root: str, projects: dict[str, str]) -> str:
    """Gemini's own scheme: the slugified basename, then ``-1``, ``-2``… until unclaimed."""
    base = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", os.path.basename(root).lower())).strip("-")
    base = base or "project"
    for n in range(10_000):
        slug = base if n == 0 else f"{base}-{n}"
        taken = slug in projects.values() or (gemini_dir / "tmp" / slug).exists()
        if not taken and _owner(gemini_dir, slug, projects) in (None, root):
            return slug
    raise AgentError(f"no free project slug for {root} in {gemini_dir / 'tmp'}")


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

    def take() -> None:
        try:
            lock.mkdir()
        except FileExistsError:
            with contextlib.suppress(OSError):  # a lock that went meanwhile, or taken again: as held
                if time.time() - lock.stat().st_mtime > LOCK_STALE_S:
                    lock.rmdir()  # stale: its holder is gone
                    lock.mkdir()
                    return
            raise

    try:
        retry.Retrying(
            retry=retry.retry_if_exception_type(FileExistsError),
            wait=retry.wait_fixed(0.05),
            stop=lambda _state: time.monotonic() > deadline,
            sleep=retry.sleep,
            reraise=True,
        )(take)
    except FileExistsError:
        raise AgentError(f"{lock} is held by another process; remove it if none runs") from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.rmdir()
