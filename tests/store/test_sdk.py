"""baton.sdk: the Claude Agent SDK's SessionStore over baton's SQL store (SQLite and the real
PostgreSQL) and over a real Redis (a private redis-server per module): the SDK's own conformance suite
with every optional contract, idempotent appends, an event loop that keeps running while the database
holds a call back, clear errors, Redis TTLs — and the real SDK driving the real Claude CLI against the
mock Anthropic API, mirroring its transcript into the store and resuming it from there in a fresh
config dir."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    MirrorErrorMessage,
    ResultMessage,
    TextBlock,
    get_session_messages_from_store,
    list_sessions_from_store,
    project_key_for_directory,
    query,
)
from claude_agent_sdk.testing import run_session_store_conformance
from claude_agent_sdk.types import SessionKey, SessionStore, SessionStoreEntry

from baton.errors import BadInput, StoreError
from baton.sdk import RedisSessionStore, SqlSessionStore
from baton.store.schema import sdk_entries
from baton.store.sql import SQLStore
from baton.testing.mock_anthropic import MockAnthropic
from tests.conftest import wait_for

OPTIONAL = ("list_sessions", "list_session_summaries", "delete", "list_subkeys")
KEY: SessionKey = {"project_key": "proj", "session_id": "sess"}


def e(**fields: Any) -> SessionStoreEntry:
    return {"type": "x", **fields}  # type: ignore[typeddict-item]


# -- a private Redis --------------------------------------------------------------------------------

SERVICE_FIXTURES = {"redis_url": "redis"}  # marks the tests that use it (conftest)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of this module's own on a free port, no persistence; stopped afterwards."""
    port, data = free_port(), tmp_path_factory.mktemp("redis")
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(
        [*argv, "--dir", str(data)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    url, client = f"redis://127.0.0.1:{port}/0", redis.Redis(port=port)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            assert server.poll() is None, f"redis-server exited with {server.poll()}"
            return False

    try:
        wait_for(answers, timeout=30, what=f"redis-server to answer on port {port}")
    except AssertionError as exc:
        server.kill()
        pytest.fail(f"redis-server did not start on port {port}: {exc}")
    yield url
    client.close()
    server.terminate()
    server.wait(10)


# -- stores -----------------------------------------------------------------------------------------


def empty_sql_store(url: str) -> Callable[[], SqlSessionStore]:
    """A factory of stores on ``url``, each starting from an empty ``sdk_entries`` (the conformance
    suite reuses its keys from one contract to the next)."""
    store = SQLStore(url)

    def make() -> SqlSessionStore:
        with store.engine.begin() as conn:
            conn.execute(sa.delete(sdk_entries))
        return SqlSessionStore(store)

    return make


def fresh_redis_store(url: str, ttl: float | None = None) -> Callable[[], RedisSessionStore]:
    """A factory of stores on ``url``, each under a new key prefix."""
    return lambda: RedisSessionStore(url, prefix=f"t-{uuid.uuid4().hex[:12]}:", ttl=ttl)


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], SessionStore]:
    """Parametrises a test over the three backends."""
    if request.param == "redis":
        return fresh_redis_store(request.getfixturevalue("redis_url"))
    if request.param == "sqlite":
        return empty_sql_store(f"sqlite:///{tmp_path / 'baton.db'}")
    return empty_sql_store(request.getfixturevalue("pg_url"))


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await coro

    return asyncio.run(main())


# -- conformance ------------------------------------------------------------------------------------


def test_the_sdks_conformance_suite_with_every_optional_contract(
    make_store: Callable[[], SessionStore],
) -> None:
    store = make_store()
    for method in OPTIONAL:  # what the suite probes: an override, not the Protocol's default
        assert getattr(type(store), method) is not getattr(SessionStore, method), method
    run(run_session_store_conformance(make_store))


def test_conformance_with_a_ttl(redis_url: str) -> None:
    run(run_session_store_conformance(fresh_redis_store(redis_url, ttl=60)))


# -- behaviour beyond the suite ---------------------------------------------------------------------


def test_appends_are_idempotent_on_uuid(make_store: Callable[[], SessionStore]) -> None:
    store = make_store()
    sub: SessionKey = {**KEY, "subpath": "subagents/agent-1"}

    async def scenario() -> None:
        await store.append(KEY, [e(uuid="a", n=1), e(uuid="b", n=2)])
        # A retried batch overlapping the last one, a uuid twice in one batch, entries without uuid.
        await store.append(KEY, [e(uuid="b", n=2), e(uuid="c", n=3), e(uuid="c", n=3), e(n=4), e(n=4)])
        await store.append(KEY, [e(uuid="a", n=1)])  # all known: nothing changes
        await store.append(sub, [e(uuid="a", n=9)])  # the same uuid in another transcript is its own
        assert await store.load(KEY) == [
            e(uuid="a", n=1),
            e(uuid="b", n=2),
            e(uuid="c", n=3),
            e(n=4),
            e(n=4),
        ]
        assert await store.load(sub) == [e(uuid="a", n=9)]

    run(scenario())


def test_concurrent_appends_keep_each_uuid_once(make_store: Callable[[], SessionStore]) -> None:
    """Eight writers, each with overlapping batches of one session: every uuid lands exactly once and
    each writer's entries keep their order."""
    stores = [make_store()]
    if isinstance(stores[0], RedisSessionStore):  # one prefix, eight clients
        stores += [RedisSessionStore(stores[0].client, prefix=stores[0].prefix) for _ in range(7)]
    else:
        assert isinstance(stores[0], SqlSessionStore)
        stores += [SqlSessionStore(stores[0].store) for _ in range(7)]

    async def writer(store: SessionStore, w: int) -> None:
        for i in range(0, 40, 4):
            await store.append(KEY, [e(uuid=f"u{j}", n=j) for j in range(i, i + 8)] + [e(w=w, i=i)])

    async def scenario() -> list[SessionStoreEntry] | None:
        await asyncio.gather(*(writer(s, w) for w, s in enumerate(stores)))
        return await stores[0].load(KEY)

    loaded = run(scenario())
    assert loaded is not None
    uuids = [x["uuid"] for x in loaded if "uuid" in x]
    assert sorted(uuids, key=lambda u: int(u[1:])) == [f"u{j}" for j in range(44)]
    for w in range(8):
        mine = [x["i"] for x in loaded if x.get("w") == w]
        assert mine == list(range(0, 40, 4))


def test_summaries_feed_the_sdks_session_listing(make_store: Callable[[], SessionStore]) -> None:
    """``list_sessions_from_store`` answers from the summaries alone (no load), with titles, first
    prompts and tags, newest first; a subagent's transcript adds nothing to its session's."""
    store, project = make_store(), "/work/demo"
    pk = project_key_for_directory(project)
    one: SessionKey = {"project_key": pk, "session_id": str(uuid.uuid4())}
    two: SessionKey = {"project_key": pk, "session_id": str(uuid.uuid4())}
    user = {"type": "user", "timestamp": "2026-01-01T00:00:00.000Z", "cwd": project}

    def says(text: str, n: str) -> SessionStoreEntry:
        return e(**user, uuid=n, message={"role": "user", "content": text})

    async def scenario() -> None:
        await store.append(one, [says("fix the bug", "1")])
        await store.append(one, [e(type="tag", tag="urgent")])
        await asyncio.sleep(0.01)  # mtimes are milliseconds: two's must be later than one's, not equal
        await store.append(two, [says("write docs", "2")])
        await store.append(two, [e(type="custom-title", customTitle="Docs day")])
        await store.append({**one, "subpath": "subagents/agent-1"}, [e(customTitle="not mine")])
        summaries = {s["session_id"]: s for s in await store.list_session_summaries(pk)}
        listed = {s["session_id"]: s["mtime"] for s in await store.list_sessions(pk)}
        assert set(summaries) == set(listed) == {one["session_id"], two["session_id"]}
        assert all(summaries[sid]["mtime"] >= listed[sid] for sid in listed)

        loads = 0
        real_load = store.load

        async def counting_load(key: SessionKey) -> list[SessionStoreEntry] | None:
            nonlocal loads
            loads += 1
            return await real_load(key)

        store.load = counting_load  # type: ignore[method-assign]
        infos = await list_sessions_from_store(store, directory=project)
        assert loads == 0
        assert [(i.session_id, i.summary, i.first_prompt, i.tag) for i in infos] == [
            (two["session_id"], "Docs day", "write docs", None),
            (one["session_id"], "fix the bug", "fix the bug", "urgent"),
        ]

    run(scenario())


def test_a_slow_database_never_blocks_the_event_loop(tmp_path: Path) -> None:
    """Another connection holds SQLite's write lock for 0.6 s: the append waits for it in a worker
    thread while a ticker on the event loop keeps ticking."""
    url = f"sqlite:///{tmp_path / 'baton.db'}"
    store = SqlSessionStore(url)
    blocker = sqlite3.connect(tmp_path / "baton.db", isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    threading.Timer(0.6, blocker.rollback).start()

    async def scenario() -> tuple[float, float]:
        ticks, done = [time.monotonic()], asyncio.Event()

        async def ticker() -> None:
            while not done.is_set():
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)  # the tick's period: the loop is free between ticks

        task = asyncio.create_task(ticker())
        started = time.monotonic()
        await store.append(KEY, [e(uuid="a")])
        waited = time.monotonic() - started
        done.set()
        await task
        return waited, longest_gap(ticks)

    waited, gap = run(scenario())
    blocker.close()
    # the append waited for the lock, and the loop kept ticking all along: a blocked loop would show
    # one gap as long as the wait (a busy machine delays ticks, never by half a second each)
    assert waited >= 0.5 and gap < waited / 2, (waited, gap)
    assert run(store.load(KEY)) == [e(uuid="a")]


def longest_gap(ticks: list[float]) -> float:
    """The longest time between two ticks (the first is the ticker's start)."""
    return max(b - a for a, b in itertools.pairwise(ticks)) if len(ticks) > 1 else float("inf")


def test_redis_paused_never_blocks_the_event_loop(redis_url: str) -> None:
    store = fresh_redis_store(redis_url)()
    store.client.client_pause(600, all=False)  # write commands wait 600 ms

    async def scenario() -> tuple[float, float]:
        ticks, done = [time.monotonic()], asyncio.Event()

        async def ticker() -> None:
            while not done.is_set():
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)  # the tick's period: the loop is free between ticks

        task = asyncio.create_task(ticker())
        started = time.monotonic()
        await store.append(KEY, [e(uuid="a")])
        waited = time.monotonic() - started
        done.set()
        await task
        return waited, longest_gap(ticks)

    waited, gap = run(scenario())
    assert waited >= 0.4 and gap < waited / 2, (waited, gap)  # as above: the loop was never blocked


def test_redis_ttl_expires_sessions(redis_url: str) -> None:
    store = fresh_redis_store(redis_url, ttl=0.5)()
    sub: SessionKey = {**KEY, "subpath": "subagents/agent-1"}

    async def scenario() -> None:
        await store.append(KEY, [e(uuid="a")])
        await store.append(sub, [e(uuid="b")])
        assert [s["session_id"] for s in await store.list_sessions("proj")] == ["sess"]
        names = store.client.keys(store.prefix + "*")
        assert len(names) == 7  # entries+uuids twice, subpaths, summary, index
        assert all(0 < store.client.pttl(n) <= 500 for n in names)
        await asyncio.sleep(0.7)  # time passes by Redis's clock (it cannot be moved by hand): the TTL ends
        assert await store.load(KEY) is None and await store.load(sub) is None
        assert await store.list_sessions("proj") == []
        assert await store.list_session_summaries("proj") == []
        assert await store.list_subkeys(KEY) == []
        assert store.client.keys(store.prefix + "*") == []

    run(scenario())


def test_redis_key_parts_cannot_collide(redis_url: str) -> None:
    store = fresh_redis_store(redis_url)()

    async def scenario() -> None:
        await store.append({"project_key": "a:b", "session_id": "c"}, [e(n=1)])
        await store.append({"project_key": "a", "session_id": "b:c"}, [e(n=2)])
        assert await store.load({"project_key": "a:b", "session_id": "c"}) == [e(n=1)]
        assert await store.load({"project_key": "a", "session_id": "b:c"}) == [e(n=2)]

    run(scenario())


# -- errors -----------------------------------------------------------------------------------------


def test_bad_input_is_refused_before_anything_is_written(make_store: Callable[[], SessionStore]) -> None:
    store = make_store()
    with pytest.raises(BadInput, match="not plain JSON"):
        run(store.append(KEY, [e(uuid="a"), e(when=object())]))
    with pytest.raises(BadInput, match="not plain JSON"):
        run(store.append(KEY, [e(n=float("nan"))]))
    with pytest.raises(BadInput, match="project_key"):
        run(store.append({"project_key": "", "session_id": "s"}, [e()]))
    with pytest.raises(BadInput, match="session_id"):
        run(store.load({"project_key": "p"}))  # type: ignore[typeddict-item]
    assert run(store.load(KEY)) is None


def test_unreachable_backends_fail_fast_with_clear_errors(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    started = time.monotonic()
    with pytest.raises(StoreError, match=f"the store at postgresql\\+psycopg://postgres@127.0.0.1:{port}"):
        SqlSessionStore(f"postgresql://postgres@127.0.0.1:{port}/test")
    store = RedisSessionStore(f"redis://127.0.0.1:{port}/0")
    with pytest.raises(StoreError, match=f"Redis error \\(127.0.0.1:{port}\\): ConnectionError"):
        run(store.append(KEY, [e(uuid="a")]))
    with pytest.raises(StoreError, match="ConnectionError"):
        run(store.load(KEY))
    assert time.monotonic() - started < 10  # refused at once, not a connect timeout's wait (margin: busy CI)
    with pytest.raises(BadInput, match=r"redis\.Redis client"):
        RedisSessionStore(42)
    with pytest.raises(BadInput, match="SQL store or its URL"):
        SqlSessionStore(42)  # type: ignore[arg-type]
    with pytest.raises(BadInput, match="not supported"):
        SqlSessionStore("mysql://x/y")


# -- the real SDK, the real Claude CLI, the mock API ------------------------------------------------


def texts(messages: list[Any]) -> list[str]:
    return [
        b.text
        for m in messages
        if isinstance(m, AssistantMessage)
        for b in m.content
        if isinstance(b, TextBlock)
    ]


async def turn(
    prompt: str, work: Path, config: Path, claude_bin: str, store: SessionStore, resume: str | None = None
) -> list[Any]:
    options = ClaudeAgentOptions(
        cwd=str(work),
        cli_path=claude_bin,
        env={"CLAUDE_CONFIG_DIR": str(config)},
        session_store=store,
        resume=resume,
    )
    return [m async for m in query(prompt=prompt, options=options)]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "redis"])
def test_the_real_sdk_mirrors_into_the_store_and_resumes_from_it(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, mock: MockAnthropic, claude_bin: str
) -> None:
    """Turn 1 mirrors Claude Code's transcript into the store, entry for entry. Its config dir is then
    deleted, and turn 2 — a new store object, an empty config dir — resumes the session from the store:
    the mock receives the whole history (4 messages), the same session id goes on, and the store holds
    both turns with every uuid once."""
    if backend == "redis":
        make: Callable[[], SessionStore] = fresh_redis_store(request.getfixturevalue("redis_url"))
        prefix = make().prefix  # type: ignore[attr-defined]
        make = lambda: RedisSessionStore(request.getfixturevalue("redis_url"), prefix=prefix)  # noqa: E731
    else:
        url = (
            f"sqlite:///{tmp_path / 'baton.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
        )
        make = lambda: SqlSessionStore(url)  # noqa: E731
    work, first, second = tmp_path / "work", tmp_path / "config-1", tmp_path / "config-2"
    work.mkdir()

    messages = run(turn("hello there", work, first, claude_bin, make()))
    result = messages[-1]
    assert isinstance(result, ResultMessage) and not result.is_error
    key: SessionKey = {"project_key": project_key_for_directory(str(work)), "session_id": result.session_id}
    local = first / "projects" / key["project_key"] / f"{key['session_id']}.jsonl"
    written = [json.loads(line) for line in local.read_text().splitlines()]
    # The mirror is the local transcript entry for entry, but for the request-replay records Claude
    # Code keeps on disk only (measured with the bundled 2.1.327: api-request, -shape, -blob).
    mirrored = [x for x in written if not x["type"].startswith("api-request")]
    assert len(mirrored) < len(written)
    assert run(make().load(key)) == mirrored
    shutil.rmtree(first)

    messages = run(turn("and again", work, second, claude_bin, make(), resume=key["session_id"]))
    assert texts(messages) == ["mock reply #2: received 4 messages"]
    assert mock.message_counts() == [2, 4]
    assert isinstance(messages[-1], ResultMessage) and messages[-1].session_id == key["session_id"]
    assert not second.exists() or not any(second.rglob("*.jsonl"))  # the resume came from the store

    stored = run(make().load(key))
    assert stored[: len(mirrored)] == mirrored and len(stored) > len(mirrored)
    uuids = [x["uuid"] for x in stored if "uuid" in x]
    assert len(uuids) == len(set(uuids))
    history = run(get_session_messages_from_store(make(), key["session_id"], directory=str(work)))
    said = [
        m.message["content"] if isinstance(m.message["content"], str) else m.message["content"][0]["text"]
        for m in history
    ]
    assert said == [
        "hello there",
        "mock reply #1: received 2 messages",
        "and again",
        "mock reply #2: received 4 messages",
    ]


@pytest.mark.slow
def test_an_unreachable_store_is_reported_and_the_turn_goes_on(
    tmp_path: Path, mock: MockAnthropic, claude_bin: str
) -> None:
    """Redis down: each append fails at once with baton's StoreError, the SDK retries (3 attempts) and
    reports it as a MirrorErrorMessage naming Redis; the turn itself still succeeds."""
    (work := tmp_path / "work").mkdir()
    store = RedisSessionStore(f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    messages = run(turn("hello", work, tmp_path / "config", claude_bin, store))
    assert time.monotonic() - started < 30  # the failing appends never stall the turn (margin: busy CI)
    errors = [m for m in messages if isinstance(m, MirrorErrorMessage)]
    assert errors and all("Redis error" in m.error and "ConnectionError" in m.error for m in errors)
    assert errors[0].key is not None and errors[0].key["project_key"] == project_key_for_directory(str(work))
    results = [m for m in messages if isinstance(m, ResultMessage)]
    assert len(results) == 1 and not results[0].is_error  # (the final flush's error comes after it)
    assert texts(messages) == ["mock reply #1: received 2 messages"]


def test_the_default_stores_come_from_batons_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    monkeypatch.setenv("BATON_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BATON_STORE_URL", raising=False)
    monkeypatch.delenv("BATON_REDIS_URL", raising=False)
    store = SqlSessionStore()
    assert store.store.url == f"sqlite:///{tmp_path / 'home' / 'baton.db'}"
    run(store.append(KEY, [e(uuid="a")]))
    assert run(SqlSessionStore(f"sqlite:///{tmp_path / 'home' / 'baton.db'}").load(KEY)) == [e(uuid="a")]
    with pytest.raises(BadInput, match="BATON_REDIS_URL"):
        RedisSessionStore()
    monkeypatch.setenv("BATON_REDIS_URL", redis_url)
    prefix = f"t-{uuid.uuid4().hex[:12]}:"
    run(RedisSessionStore(prefix=prefix).append(KEY, [e(uuid="b")]))
    assert run(RedisSessionStore(redis.Redis.from_url(redis_url), prefix=prefix).load(KEY)) == [e(uuid="b")]
