"""``SqlSessionStore``: the SDK's ``SessionStore`` over baton's SQL store (SQLite or PostgreSQL).

Every call runs its SQL in a worker thread, so the event loop the SDK streams on never waits for the
database. Entries go to the ``sdk_entries`` table (see :mod:`baton.store.sql_sdk`), deduplicated by
uuid, stamped with the database's clock. Summaries (``list_session_summaries``) are folded from the
stored main transcripts when asked, with the SDK's own fold, in one query per project; they are what
an incrementally kept sidecar would hold (the fold only keeps set-once and last-wins fields), and their
``mtime`` is the session's last append, the same number ``list_sessions`` reports.
"""

from __future__ import annotations

from itertools import groupby
from operator import itemgetter

from claude_agent_sdk.types import (
    SessionKey,
    SessionListSubkeysKey,
    SessionStore,
    SessionStoreEntry,
    SessionStoreListEntry,
    SessionSummaryEntry,
)

from baton.errors import BadInput
from baton.settings import load_settings
from baton.store import open_store
from baton.store.sdk.common import decode, encode, fold, off_loop, parts, subpath
from baton.store.sql import SQLStore


class SqlSessionStore(SessionStore):
    """The Claude Agent SDK's session store over baton's SQL store.

    ``store_or_url``: an open :class:`baton.store.SQLStore`, a store URL (``sqlite:///...``,
    ``postgresql://...``), or None for baton's configured store (``BATON_STORE_URL``, else the SQLite
    file in ``BATON_HOME``).
    """

    def __init__(self, store_or_url: SQLStore | str | None = None) -> None:
        if store_or_url is None:
            store_or_url = load_settings().resolved_store_url
        if isinstance(store_or_url, str):
            store_or_url = _sql_store(store_or_url)
        if not isinstance(store_or_url, SQLStore):
            raise BadInput(f"SqlSessionStore needs a SQL store or its URL, not {type(store_or_url).__name__}")
        self.store = store_or_url

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        parts(key)
        if entries:
            await off_loop(self._append, key, entries)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return await off_loop(self._load, key)

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        rows = await off_loop(self.store.sdk_sessions, project_key)
        return [{"session_id": sid, "mtime": _ms(mtime)} for sid, mtime in rows]

    async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        return await off_loop(self._summaries, project_key)

    async def delete(self, key: SessionKey) -> None:
        # No subpath (or the empty one): the session with every subagent transcript under it.
        await off_loop(self.store.sdk_delete, *parts(key), subpath(key) or None)

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        return await off_loop(self.store.sdk_subpaths, *parts(key))

    def close(self) -> None:
        self.store.close()

    # -- in a worker thread: the SQL, and the JSON of a transcript that may weigh megabytes ----------

    def _append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        self.store.sdk_append(*parts(key), subpath(key), encode(key, entries))

    def _load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        texts = self.store.sdk_load(*parts(key), subpath(key))
        return None if texts is None else decode(texts)

    def _summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        summaries: list[SessionSummaryEntry] = []
        for session_id, group in groupby(self.store.sdk_main_entries(project_key), key=itemgetter(0)):
            rows = list(group)
            key: SessionKey = {"project_key": project_key, "session_id": session_id}
            mtime = _ms(max(mtime for _, mtime, _ in rows))
            summaries.append(fold(None, key, decode(text for _, _, text in rows), mtime))
        return summaries


def _sql_store(url: str) -> SQLStore:
    store = open_store(url)
    if not isinstance(store, SQLStore):
        raise BadInput(f"SqlSessionStore needs a SQL store; {url.split(':', 1)[0]} is not one")
    return store


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
