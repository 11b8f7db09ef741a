"""What both session stores share: reading a ``SessionKey``, turning entries into JSON text and back,
folding a session's summary with the SDK's own fold, and running blocking I/O off the event loop."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, TypeVar, cast

import anyio.to_thread
from claude_agent_sdk import fold_session_summary
from claude_agent_sdk.types import SessionKey, SessionListSubkeysKey, SessionStoreEntry, SessionSummaryEntry

from baton.errors import BadInput

T = TypeVar("T")


async def off_loop(func: Callable[..., T], *args: Any) -> T:
    """Run ``func(*args)`` in a worker thread (asyncio or trio alike). A caller that gives up (the
    SDK's timeouts cancel) gets control back at once; the thread finishes its statement on its own, as
    the SDK expects of a timed-out append ("may still land")."""
    return await anyio.to_thread.run_sync(partial(func, *args), abandon_on_cancel=True)


def parts(key: SessionKey | SessionListSubkeysKey) -> tuple[str, str]:
    """The key's project key and session id, checked (both non-empty strings)."""
    project_key, session_id = key.get("project_key"), key.get("session_id")
    if not isinstance(project_key, str) or not project_key:
        raise BadInput(f"a session key needs a non-empty project_key: {key!r}")
    if not isinstance(session_id, str) or not session_id:
        raise BadInput(f"a session key needs a non-empty session_id: {key!r}")
    return project_key, session_id


def subpath(key: SessionKey) -> str:
    """The key's subpath; ``""`` for the main transcript (an absent subpath, or the empty string the
    SDK calls invalid)."""
    value = key.get("subpath") or ""
    if not isinstance(value, str):
        raise BadInput(f"a session key's subpath must be a string: {key!r}")
    return value


def encode(key: SessionKey, entries: Iterable[SessionStoreEntry]) -> list[tuple[str | None, str]]:
    """``(uuid, JSON text)`` per entry; the uuid is None when the entry has none (never deduplicated)."""
    rows = []
    for entry in entries:
        try:
            text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise BadInput(f"an entry for {dict(key)!r} is not plain JSON: {exc}") from exc
        uuid = entry.get("uuid")
        rows.append((uuid if isinstance(uuid, str) and uuid else None, text))
    return rows


def decode(texts: Iterable[str | bytes]) -> list[SessionStoreEntry]:
    return [cast(SessionStoreEntry, json.loads(text)) for text in texts]


def fold(
    prev: SessionSummaryEntry | None, key: SessionKey, entries: list[SessionStoreEntry], mtime_ms: int
) -> SessionSummaryEntry:
    """The SDK's fold of ``entries`` into ``prev``, stamped with the storage write time."""
    summary = fold_session_summary(prev, key, entries)
    summary["mtime"] = mtime_ms
    return summary
