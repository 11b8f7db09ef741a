"""``RedisSessionStore``: the SDK's ``SessionStore`` over Redis, with an optional TTL. Each transcript
is a Redis list of its entries beside a set of their uuids (deduplication), indexed per project and
summarised per session (the keys: :class:`RedisSessionStore`); an append is one optimistic
transaction, so these never disagree and concurrent writers never fold the same entries twice
(:meth:`RedisSessionStore._append`). Times come from the Redis server's clock, and blocking redis-py
calls run in a worker thread (:meth:`RedisSessionStore._call`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import quote

from claude_agent_sdk.types import (
    SessionKey,
    SessionListSubkeysKey,
    SessionStore,
    SessionStoreEntry,
    SessionStoreListEntry,
    SessionSummaryEntry,
)

from baton.errors import BadInput, StoreError
from baton.install import extra_hint
from baton.settings import load_settings
from baton.store.sdk.common import decode, encode, fold, off_loop, parts, subpath

try:
    import redis
    from redis.client import Pipeline
except ImportError:  # pragma: no cover - the extra is installed in tests
    redis = None  # type: ignore[assignment]

T = TypeVar("T")


class RedisSessionStore(SessionStore):
    """The Claude Agent SDK's session store over Redis.

    ``url_or_client``: a ``redis://`` URL, a ``redis.Redis`` client, or None for ``BATON_REDIS_URL``.
    ``prefix`` starts every key; ``ttl`` (seconds) makes sessions expire after their last write.

    Keys (``P`` the prefix; each part percent-encoded, so a ``:`` or ``/`` in a project key cannot make
    two keys collide)::

        P e:<project>:<session>:<subpath>   list    the transcript's entries (JSON), in append order
        P u:<project>:<session>:<subpath>   set     the uuids those entries carry (deduplication)
        P k:<project>:<session>             set     the session's subpaths (subagent transcripts)
        P s:<project>:<session>             string  the session's summary (JSON: mtime and the SDK's data)
        P i:<project>                       zset    the project's sessions, scored by last append (ms)

    The main transcript's subpath is empty. With ``ttl``, every key a write touches expires ``ttl``
    seconds after it; the index drops sessions older than that. Not for Redis Cluster (a transaction
    spans a project's keys).
    """

    def __init__(
        self, url_or_client: Any = None, prefix: str = "baton:sdk:", ttl: float | None = None
    ) -> None:
        if redis is None:
            raise BadInput(f"Redis support is not installed: {extra_hint('redis')}")
        if ttl is not None and ttl <= 0:
            raise BadInput(f"ttl must be positive seconds, not {ttl!r}")
        self.client = _client(url_or_client)
        self.prefix, self.ttl_ms = prefix, None if ttl is None else int(ttl * 1000)

    # -- the protocol ------------------------------------------------------------------------------

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        parts(key)
        if entries:
            await self._call(self._append, key, entries)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return await self._call(self._load, key)

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        return [{"session_id": sid, "mtime": mtime} for sid, mtime in await self._sessions(project_key)]

    async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        sessions = [sid for sid, _ in await self._sessions(project_key)]
        if not sessions:
            return []
        names = [self._summary(project_key, sid) for sid in sessions]
        texts = await self._call(self.client.mget, names)
        summaries: list[SessionSummaryEntry] = []
        for sid, text in zip(sessions, texts, strict=True):
            if text is not None:
                stored = json.loads(text)
                summaries.append({"session_id": sid, "mtime": stored["mtime"], "data": stored["data"]})
        return summaries

    async def delete(self, key: SessionKey) -> None:
        parts(key)
        await self._call(self._delete_session if not subpath(key) else self._delete_subkey, key)

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        return await self._call(self._subkeys, key)

    def close(self) -> None:
        self.client.close()

    # -- keys --------------------------------------------------------------------------------------

    def _name(self, kind: str, *names: str) -> str:
        return self.prefix + kind + ":" + ":".join(quote(n, safe="") for n in names)

    def _entries(self, key: SessionKey) -> str:
        return self._name("e", *parts(key), subpath(key))

    def _uuids(self, key: SessionKey) -> str:
        return self._name("u", *parts(key), subpath(key))

    def _subpaths(self, key: SessionKey | SessionListSubkeysKey) -> str:
        return self._name("k", *parts(key))

    def _summary(self, project_key: str, session_id: str) -> str:
        return self._name("s", project_key, session_id)

    def _index(self, project_key: str) -> str:
        return self._name("i", project_key)

    # -- the work, in a worker thread --------------------------------------------------------------

    async def _call(self, func: Callable[..., T], *args: Any) -> T:
        """``func`` in a worker thread: no event loop is ever blocked, and no connection is tied to one
        loop."""
        try:
            return await off_loop(func, *args)
        except redis.RedisError as exc:
            raise StoreError(f"Redis error ({_where(self.client)}): {exc.__class__.__name__}: {exc}") from exc

    def _load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        texts = self.client.lrange(self._entries(key), 0, -1)
        return decode(texts) if texts else None

    def _append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        """One optimistic transaction: WATCH the uuid set and the summary, read which uuids are new and
        the previous summary, fold, MULTI/EXEC; retried when another writer got in between. So the list,
        the uuid set, the index and the summary never disagree, and concurrent writers never fold the
        same entries twice."""
        rows = encode(key, entries)
        project_key, session_id = parts(key)
        sub, uuids_key = subpath(key), self._uuids(key)
        summary_key = self._summary(project_key, session_id)
        with self.client.pipeline() as pipe:
            while True:
                try:
                    _watch(pipe, uuids_key, *([] if sub else [summary_key]))
                    fresh = _fresh(pipe, uuids_key, rows)
                    if not fresh:
                        pipe.unwatch()
                        return
                    prev = None if sub else pipe.get(summary_key)
                    now_ms = _now_ms(pipe)
                    pipe.multi()
                    self._write(pipe, key, fresh, now_ms)
                    if not sub:
                        summary = _folded(prev, key, [entries[i] for i, _ in fresh], now_ms)
                        pipe.set(summary_key, summary)
                        self._expire(pipe, summary_key)
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue

    def _write(
        self, pipe: Pipeline, key: SessionKey, fresh: list[tuple[int, tuple[str | None, str]]], now_ms: int
    ) -> None:
        """Queue the writes of an append (inside MULTI)."""
        project_key, session_id = parts(key)
        sub, entries_key, uuids_key = subpath(key), self._entries(key), self._uuids(key)
        pipe.rpush(entries_key, *[text for _, (_, text) in fresh])
        self._expire(pipe, entries_key)
        uuids = [uuid for _, (uuid, _) in fresh if uuid is not None]
        if uuids:
            pipe.sadd(uuids_key, *uuids)
            self._expire(pipe, uuids_key)
        if sub:
            pipe.sadd(self._subpaths(key), sub)
            self._expire(pipe, self._subpaths(key))
            return
        index = self._index(project_key)
        pipe.zadd(index, {session_id: now_ms})
        if self.ttl_ms is not None:
            pipe.zremrangebyscore(index, "-inf", f"({now_ms - self.ttl_ms}")
        self._expire(pipe, index)

    def _expire(self, pipe: Pipeline, name: str) -> None:
        if self.ttl_ms is not None:
            pipe.pexpire(name, self.ttl_ms)

    def _sessions_now(self, project_key: str) -> list[tuple[str, int]]:
        index = self._index(project_key)
        if self.ttl_ms is None:
            rows = self.client.zrange(index, 0, -1, withscores=True)
        else:
            rows = self.client.zrangebyscore(
                index, _now_ms(self.client) - self.ttl_ms, "+inf", withscores=True
            )
        return [(_text(sid), int(score)) for sid, score in cast("list[tuple[bytes | str, float]]", rows)]

    async def _sessions(self, project_key: str) -> list[tuple[str, int]]:
        return await self._call(self._sessions_now, project_key)

    def _delete_session(self, key: SessionKey) -> None:
        project_key, session_id = parts(key)
        main: SessionKey = {"project_key": project_key, "session_id": session_id}
        with self.client.pipeline() as pipe:
            while True:
                try:
                    _watch(pipe, self._subpaths(main))
                    subs = [_text(s) for s in pipe.smembers(self._subpaths(main))]
                    keys = [_sub(main, s) for s in subs] + [main]
                    pipe.multi()
                    for k in keys:
                        pipe.delete(self._entries(k), self._uuids(k))
                    pipe.delete(self._subpaths(main), self._summary(project_key, session_id))
                    pipe.zrem(self._index(project_key), session_id)
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue

    def _delete_subkey(self, key: SessionKey) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self._entries(key), self._uuids(key))
            pipe.srem(self._subpaths(key), subpath(key))
            pipe.execute()

    def _subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        project_key, session_id = parts(key)
        subs = sorted(_text(s) for s in self.client.smembers(self._subpaths(key)))
        # With a TTL a subagent's list can expire before the set that names it.
        with self.client.pipeline(transaction=False) as pipe:
            for s in subs:
                pipe.exists(
                    self._entries({"project_key": project_key, "session_id": session_id, "subpath": s})
                )
            alive = pipe.execute()
        return [s for s, n in zip(subs, alive, strict=True) if n]


def _fresh(
    pipe: Pipeline, uuids_key: str, rows: list[tuple[str | None, str]]
) -> list[tuple[int, tuple[str | None, str]]]:
    """The rows to add, with their index in the batch: those without a uuid, and the first of each
    uuid the transcript does not hold yet."""
    with_uuid = sorted({uuid for uuid, _ in rows if uuid is not None})
    stored = dict(zip(with_uuid, pipe.smismember(uuids_key, with_uuid), strict=True)) if with_uuid else {}
    fresh, seen = [], set()
    for i, (uuid, text) in enumerate(rows):
        if uuid is not None:
            if stored[uuid] or uuid in seen:
                continue
            seen.add(uuid)
        fresh.append((i, (uuid, text)))
    return fresh


def _sub(main: SessionKey, sub: str) -> SessionKey:
    return {"project_key": main["project_key"], "session_id": main["session_id"], "subpath": sub}


def _watch(pipe: Pipeline, *names: str) -> None:
    pipe.watch(*names)  # type: ignore[no-untyped-call]  # redis-py leaves watch() untyped


def _folded(prev: Any, key: SessionKey, entries: list[SessionStoreEntry], now_ms: int) -> str:
    before: SessionSummaryEntry | None = None
    if prev is not None:
        stored = json.loads(prev)
        before = {"session_id": parts(key)[1], "mtime": stored["mtime"], "data": stored["data"]}
    summary = fold(before, key, entries, now_ms)
    return json.dumps({"mtime": summary["mtime"], "data": summary["data"]}, separators=(",", ":"))


def _now_ms(client: Any) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _client(url_or_client: Any) -> redis.Redis:
    if url_or_client is None:
        url_or_client = load_settings().redis_url
        if not url_or_client:
            raise BadInput("RedisSessionStore needs a Redis URL or client (or BATON_REDIS_URL)")
    if isinstance(url_or_client, str):
        try:
            return redis.Redis.from_url(url_or_client, socket_timeout=10, socket_connect_timeout=5)
        except ValueError as exc:
            raise BadInput(f"not a Redis URL: {exc}") from None
    if isinstance(url_or_client, redis.Redis):
        return url_or_client
    raise BadInput(
        f"RedisSessionStore needs a redis:// URL or a redis.Redis client, not {type(url_or_client).__name__}"
    )


def _where(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', '')}"
