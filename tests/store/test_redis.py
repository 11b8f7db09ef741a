"""Redis: lease grants with fencing tokens, cancel flags — against a private, real ``redis-server`` this
module starts on a free port (never the shared 6379's data), which some tests kill and start again EMPTY to
show that nothing is lost: the SQL store is the truth."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.errors import BadInput, Busy, Fenced, StoreError
from baton.fleet.cancel import CancelWatch, cancel_requested, flag_set, request_cancel
from baton.install import extra_hint
from baton.models import Fence, JobRecord, SessionRecord
from baton.settings import Settings
from baton.store import SQLStore
from baton.store.base import Lease
from baton.store.leases import HOST, LeaseHolder, held, lease_backend, pid_alive
from baton.store.redis import RedisConn, open_redis, prefix_for
from baton.store.redis_leases import RedisLeases
from baton.store.sql import LEASE_TRY_WAIT
from tests.conftest import wait_for
from tests.redis_fixtures import RedisServer, free_port, server_fixture  # noqa: F401 (the `server` fixture)
from tests.store_contract import foreign_lock

KEY = "fake/github.com/acme/api/issue-1"
SERVICE_FIXTURES = {"server": "redis"}  # marks the tests that use it (conftest)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLStore]:
    opened = SQLStore(f"sqlite:///{tmp_path / 'baton.db'}")
    yield opened
    opened.close()


@pytest.fixture
def conn(server: RedisServer, store: SQLStore) -> RedisConn:
    """This test's namespace: its own store's identity, so tests never share keys."""
    return open_redis(server.url, store)


@pytest.fixture
def leases(conn: RedisConn, store: SQLStore) -> RedisLeases:
    return RedisLeases(conn, store)


def _session(thread: str = "issue-1", expires_in: float = 3600.0, **changes: object) -> SessionRecord:
    values: dict[str, object] = {
        "agent": "fake",
        "repo": "github.com/acme/api",
        "thread": thread,
        "repo_url": "https://github.com/acme/api",
        "branch": f"baton/fake/{thread}",
        "worktree": f"/w/{thread}",
        "agent_session_id": f"sid-{thread}",
        "created_at": time.time(),
        "last_used_at": time.time(),
        "expires_at": time.time() + expires_in,
    }
    values.update(changes)
    return SessionRecord(**values)  # type: ignore[arg-type]


# -- the connection ------------------------------------------------------------------------------------


def test_missing_redis_package_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, store: SQLStore
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(BadInput, match=re.escape(extra_hint("redis"))):
        open_redis("redis://127.0.0.1:1/0", store)


def test_bad_url_is_refused_naming_the_setting(store: SQLStore) -> None:
    with pytest.raises(BadInput, match="redis_url"):
        open_redis("http://127.0.0.1:6379", store)


def test_namespace_is_the_stores_own_whatever_url_names_it(
    pg_url: str, server: RedisServer, tmp_path: Path
) -> None:
    """One PostgreSQL store named by two host names is one namespace: a lease taken through one name
    holds against the other (a hash of the URL gave two, and each of two processes one key's lease); two
    stores are two namespaces."""
    host = "@127.0.0.1:" if "@127.0.0.1:" in pg_url else "@localhost:"
    assert host in pg_url, f"this test spells the store's host two ways: {pg_url.split('@')[-1]}"
    alias = pg_url.replace(host, "@localhost:" if host == "@127.0.0.1:" else "@127.0.0.1:")
    one, other, elsewhere = SQLStore(pg_url), SQLStore(alias), SQLStore(f"sqlite:///{tmp_path / 'b.db'}")
    try:
        conns = [open_redis(server.url, s) for s in (one, other, elsewhere)]
        assert conns[0].prefix == conns[1].prefix == f"baton:{one.identity()}:" != conns[2].prefix
        first = LeaseHolder(one, KEY, 30, backend=RedisLeases(conns[0], one))
        first.acquire(wait=0)
        with pytest.raises(Busy):
            LeaseHolder(other, KEY, 30, backend=RedisLeases(conns[1], other)).acquire(wait=0)
        first.release()
    finally:
        for store in (one, other, elsewhere):
            store.close()


def test_unreachable_redis_is_a_store_error_naming_it_without_password(store: SQLStore) -> None:
    conn = open_redis(f"redis://:hunter2@127.0.0.1:{free_port()}/0", store)
    with pytest.raises(StoreError, match=r"Redis at redis://:\*\*\*@127\.0\.0\.1") as info:
        RedisLeases(conn, store).renew_lease(KEY, "someone", 30)
    assert "hunter2" not in str(info.value)


# -- leases through Redis ------------------------------------------------------------------------------


def _holder(store: SQLStore, leases: RedisLeases, ttl: float = 30.0, key: str = KEY) -> LeaseHolder:
    return LeaseHolder(store, key, ttl, backend=leases)


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(proc.stdout)
    assert not pid_alive(pid)
    return pid


def _foreign(leases: RedisLeases, pid: int, host: str = HOST, ttl: float = 3600.0) -> Lease:
    lease = Lease(KEY, f"{host}:{pid}:other", host, pid, 0.0, 0.0)
    assert leases.try_lease(lease, ttl, lambda _existing, _now: False) is None
    return lease


def test_redis_lease_is_exclusive_and_names_its_holder(store: SQLStore, leases: RedisLeases) -> None:
    first = _holder(store, leases)
    first.acquire(wait=0)
    with pytest.raises(Busy, match=f"host {HOST}, pid {os.getpid()}"):
        _holder(store, leases).acquire(wait=0)
    started = time.monotonic()
    with pytest.raises(Busy):
        _holder(store, leases).acquire(wait=0.3)
    # the given wait, then Busy: not the lease's TTL (the upper bound has a busy machine's margin)
    assert 0.3 <= time.monotonic() - started < 10
    other_key = _holder(store, leases, key=KEY + "-b")
    other_key.acquire(wait=0)  # keys are independent
    assert first.held and other_key.held


def test_fencing_tokens_grow_across_grants_and_releases(
    store: SQLStore, leases: RedisLeases, conn: RedisConn
) -> None:
    tokens = []
    for _ in range(4):
        holder = _holder(store, leases)
        holder.acquire(wait=0)
        tokens.append(holder.fence)
        if len(tokens) == 2:
            again = Lease(KEY, holder.holder, HOST, os.getpid(), 0.0, 0.0)
            assert leases.try_lease(again, 30, lambda _e, _n: False) is None
            assert again.fence == holder.fence  # the same holder taking it again keeps its token
        holder.release()
    assert tokens == [1, 2, 3, 4]
    assert conn.client.get(conn.key("fence", "{" + KEY + "}")) == "4"  # the counter stays after release
    assert not conn.client.exists(conn.key("lease", "{" + KEY + "}"))
    store.advance_fence(KEY, 4)  # the store saw every token
    with pytest.raises(Fenced):
        store.advance_fence(KEY, 3)


def test_renew_and_release_only_by_the_holder(store: SQLStore, leases: RedisLeases, conn: RedisConn) -> None:
    holder = _holder(store, leases, ttl=2.0)
    holder.acquire(wait=0)
    assert not leases.renew_lease(KEY, "someone-else", 30)
    leases.release_lease(KEY, "someone-else")
    for _ in range(5):  # renewals keep a short lease alive past its first TTL (margins for a busy CI)
        time.sleep(0.5)  # time passes, by Redis's clock: it cannot be moved by hand
        assert holder.renew()
    assert int(conn.client.pttl(conn.key("lease", "{" + KEY + "}"))) > 1000
    with pytest.raises(Busy):
        _holder(store, leases).acquire(wait=0)
    holder.release()
    assert not holder.renew()
    _holder(store, leases).acquire(wait=0)


def test_expired_redis_lease_is_taken_over_and_the_stale_holder_is_fenced(
    store: SQLStore, leases: RedisLeases
) -> None:
    stale = _holder(store, leases, ttl=0.1)
    stale.acquire(wait=0)
    lease_key = leases.conn.key("lease", "{" + KEY + "}")
    wait_for(lambda: not leases.conn.client.exists(lease_key), timeout=30, what="Redis to expire the lease")
    fresh = _holder(store, leases)
    fresh.acquire(wait=0)
    assert fresh.fence == stale.fence + 1
    assert not stale.renew()  # the stale holder learns it lost the key
    stale.release()  # and its release does not free the new holder's lease
    with pytest.raises(Busy):
        _holder(store, leases).acquire(wait=0)
    with pytest.raises(Fenced):  # the stale holder's write, fenced by the SQL store
        store.advance_fence(KEY, stale.fence)
    store.advance_fence(KEY, fresh.fence)  # the new holder's writes pass


def test_stale_redis_holder_cannot_write_on_either_store(server: RedisServer, store_url: str) -> None:
    """Over SQLite and PostgreSQL: a Redis grant's token reaches the store, so a holder whose Redis lease
    expired and was granted again has its fenced writes refused (nothing written), the new holder's pass."""
    sql = SQLStore(store_url)
    try:
        leases = RedisLeases(open_redis(server.url, sql), sql)
        stale = LeaseHolder(sql, KEY, 0.1, backend=leases)
        stale.acquire(wait=0)
        sql.save_session(_session(agent_session_id="from-stale"), fence=Fence(KEY, stale.fence))
        lease_key = leases.conn.key("lease", "{" + KEY + "}")
        wait_for(
            lambda: not leases.conn.client.exists(lease_key), timeout=30, what="Redis to expire the lease"
        )
        fresh = LeaseHolder(sql, KEY, 30, backend=leases)
        fresh.acquire(wait=0)
        assert fresh.fence > stale.fence
        with pytest.raises(Fenced):
            sql.save_session(_session(agent_session_id="late-stale"), fence=Fence(KEY, stale.fence))
        assert sql.get_session("fake", "github.com/acme/api", "issue-1").agent_session_id == "from-stale"  # type: ignore[union-attr]
        sql.save_session(_session(agent_session_id="from-fresh"), fence=Fence(KEY, fresh.fence))
        assert sql.get_session("fake", "github.com/acme/api", "issue-1").agent_session_id == "from-fresh"  # type: ignore[union-attr]
        fresh.release()
    finally:
        sql.close()


def test_a_redis_grant_never_queues_behind_a_frozen_holder_of_the_stores_row(
    server: RedisServer, store_url: str
) -> None:
    """The grant is Redis's, but its token is recorded in the store's row of the key, which a process
    frozen mid-write may hold: the grant is told "not yet" at once (not after ``store_lock_timeout``),
    Redis's lease given back, and tried again within the caller's wait; once the row is free it lands."""
    sql = SQLStore(store_url)
    try:
        leases = RedisLeases(open_redis(server.url, sql), sql)
        sql.advance_fence(KEY, 1)  # the key's row in the store
        with foreign_lock(store_url, KEY):
            began = time.monotonic()
            with pytest.raises(Busy, match="being written by another connection"):
                LeaseHolder(sql, KEY, 30, backend=leases).acquire(wait=1.0)
            assert time.monotonic() - began < 1.0 + LEASE_TRY_WAIT + 2
            assert not leases.conn.client.exists(leases.conn.key("lease", "{" + KEY + "}"))  # given back
        holder = LeaseHolder(sql, KEY, 30, backend=leases)
        holder.acquire(wait=0)
        assert holder.fence > 1
    finally:
        sql.close()


def test_dead_process_on_this_host_is_taken_over_at_once(store: SQLStore, leases: RedisLeases) -> None:
    _foreign(leases, _dead_pid())
    holder = _holder(store, leases)
    holder.acquire(wait=0)
    assert holder.held and holder.fence == 2


def test_live_process_and_other_hosts_are_respected(store: SQLStore, leases: RedisLeases) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        _foreign(leases, proc.pid)
        with pytest.raises(Busy, match=f"pid {proc.pid}"):
            _holder(store, leases).acquire(wait=0)
    finally:
        proc.kill()
        proc.wait()
    leases.release_lease(KEY, f"{HOST}:{proc.pid}:other")
    _foreign(leases, _dead_pid(), host="elsewhere.invalid")  # a pid on another machine means nothing here
    with pytest.raises(Busy, match=r"host elsewhere\.invalid"):
        _holder(store, leases).acquire(wait=0)


def test_redis_restarted_empty_tokens_still_grow_past_the_stores(
    server: RedisServer, store: SQLStore, leases: RedisLeases
) -> None:
    """Redis lost its counters: the next grant's token is raised past every token the store saw, so the
    old holder stays fenced and the new one's writes pass."""
    for _ in range(5):
        holder = _holder(store, leases)
        holder.acquire(wait=0)
        holder.release()
    old = _holder(store, leases)
    old.acquire(wait=0)
    assert old.fence == 6
    server.restart_empty()
    assert not old.renew()  # its lease is gone with Redis's data
    new = _holder(store, leases)
    new.acquire(wait=0)
    assert new.fence > old.fence
    with pytest.raises(Fenced):
        store.advance_fence(KEY, old.fence)
    store.advance_fence(KEY, new.fence)
    newer = _holder(store, leases)
    new.release()
    newer.acquire(wait=0)
    assert newer.fence == new.fence + 1  # and the counter continues from there


def test_held_keeps_a_redis_lease_alive_and_reports_its_loss(
    store: SQLStore, leases: RedisLeases, conn: RedisConn
) -> None:
    holder = _holder(store, leases, ttl=1.0)
    with held(holder, wait=0, every=0.2) as lost:
        time.sleep(1.5)  # time passes (Redis's clock): 1.5 TTLs, and the renewal thread kept it
        assert not lost.is_set()
        with pytest.raises(Busy):
            _holder(store, leases).acquire(wait=0)
        conn.client.delete(conn.key("lease", "{" + KEY + "}"))  # taken away (e.g. Redis lost it)
        assert lost.wait(2.0)
    assert not holder.held
    _holder(store, leases).acquire(wait=0)


def test_lease_backend_from_settings(tmp_path: Path, store: SQLStore, server: RedisServer) -> None:
    base = Settings(home=tmp_path)
    assert lease_backend(base, store) is store
    with pytest.raises(BadInput, match="redis_url"):
        lease_backend(base.with_(lease_backend="redis"), store)
    with pytest.raises(BadInput, match="lease_backend"):
        lease_backend(base.with_(lease_backend="zookeeper"), store)
    backend = lease_backend(base.with_(lease_backend="redis", redis_url=server.url), store)
    assert isinstance(backend, RedisLeases)
    assert backend.conn.prefix == prefix_for(store) == f"baton:{store.identity()}:"
    holder = LeaseHolder(store, KEY, 30, backend=backend)
    holder.acquire(wait=0)
    assert holder.fence == 1 and backend.conn.client.exists(backend.conn.key("lease", "{" + KEY + "}"))


def test_two_processes_never_hold_a_redis_lease_at_once(server: RedisServer, tmp_path: Path) -> None:
    """Four processes grab, hold briefly and release one key 15 times each: the intervals never overlap
    and every grant's token is larger than the previous grant's."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    SQLStore(url).close()
    script = tmp_path / "grab.py"
    script.write_text(_GRAB)
    procs = [
        subprocess.Popen([sys.executable, str(script), server.url, url], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    spans: list[tuple[float, float, int]] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        spans += [(float(a), float(b), int(t)) for a, b, t in (line.split() for line in out.splitlines())]
    spans.sort()
    assert len(spans) == 60
    for (_start, end, token), (next_start, _end, next_token) in itertools.pairwise(spans):
        assert end <= next_start
        assert next_token > token


_GRAB = """
import sys, time
from baton.store.leases import LeaseHolder
from baton.store.redis import open_redis
from baton.store.redis_leases import RedisLeases
from baton.store.sql import LEASE_TRY_WAIT
from baton.store import SQLStore
store = SQLStore(sys.argv[2])
leases = RedisLeases(open_redis(sys.argv[1], store), store)
for _ in range(15):
    holder = LeaseHolder(store, "k", 30, backend=leases)
    holder.acquire(wait=60)
    start = time.time()
    time.sleep(0.005)
    end = time.time()
    holder.release()
    print(start, end, holder.fence, flush=True)
"""


# -- cancel flags --------------------------------------------------------------------------------------


def _job(store: SQLStore, job_id: str = "job-1") -> str:
    store.add_job(JobRecord(job_id, "fake", "github.com/acme/api", "issue-1", {"prompt": "hi"}))
    return job_id


def test_cancel_request_sets_the_store_and_the_flag(store: SQLStore, conn: RedisConn) -> None:
    job = _job(store)
    assert not cancel_requested(store, job, conn)
    assert request_cancel(store, job, conn, at=123.0)
    assert store.get_job(job).cancel_requested_at == 123.0  # type: ignore[union-attr]
    assert conn.client.exists(conn.key("cancel", job))
    assert 0 < int(conn.client.ttl(conn.key("cancel", job))) <= 86400
    assert cancel_requested(store, job, conn)
    assert cancel_requested(store, job, None)
    assert not request_cancel(store, "no-such-job", conn)
    assert not conn.client.exists(conn.key("cancel", "no-such-job"))


def test_cancel_watch_sees_the_redis_flag_quickly(store: SQLStore, conn: RedisConn) -> None:
    job = _job(store)
    event = threading.Event()
    with CancelWatch(store, conn, job, event=event, store_every=3600) as watch:
        time.sleep(0.3)  # a few polls: that none fires has no condition to wait for
        assert not watch.is_set()
        conn.client.set(conn.key("cancel", job), "1")  # only Redis: the store is not read again
        assert watch.wait(30)  # seen through Redis: the store is read once an hour here
    assert event.is_set()


def test_cancel_watch_falls_back_to_the_store_when_redis_lost_the_flag(
    server: RedisServer, store: SQLStore, conn: RedisConn
) -> None:
    job = _job(store)
    with CancelWatch(store, conn, job, store_every=0.5) as watch:
        time.sleep(0.3)  # the watch is polling before the request comes
        assert request_cancel(store, job, conn)
        server.restart_empty()  # the flag is gone with Redis's data
        assert not conn.client.exists(conn.key("cancel", job))
        assert watch.wait(3.0)


def test_cancel_watch_without_redis_reads_the_store(store: SQLStore) -> None:
    job = _job(store)
    watch = CancelWatch(store, None, job).start()
    try:
        time.sleep(0.3)  # a few polls: that none fires has no condition to wait for
        assert not watch.is_set()
        started = time.monotonic()
        assert request_cancel(store, job)
        assert watch.wait(30)  # there is no Redis: seen by reading the store
        assert time.monotonic() - started < 5  # at its next poll (every 0.5 s; a busy machine's margin)
    finally:
        watch.stop()


def test_cancel_watch_stops_cleanly_without_a_cancel(store: SQLStore, server: RedisServer) -> None:
    job = _job(store)
    conn = open_redis(server.url, store)
    watch = CancelWatch(store, conn, job).start()
    time.sleep(0.25)  # the watch is polling when it is stopped
    started = time.monotonic()
    watch.stop()
    # stop() does not wait out the store's 2 s poll (bound with a busy machine's margin)
    assert time.monotonic() - started < 5
    assert not watch.is_set()


def test_two_deployments_on_one_redis_never_mix(server: RedisServer, tmp_path: Path) -> None:
    """Two stores, one Redis: each deployment's keys live under its own prefix, so the same key's lease
    is granted in both and a cancel flag of one is not the other's."""
    one, two = (SQLStore(f"sqlite:///{tmp_path / name / 'baton.db'}") for name in ("a", "b"))
    try:
        conn_one, conn_two = (open_redis(server.url, s) for s in (one, two))
        assert conn_one.prefix != conn_two.prefix
        first = LeaseHolder(one, KEY, 30, backend=RedisLeases(conn_one, one))
        second = LeaseHolder(two, KEY, 30, backend=RedisLeases(conn_two, two))
        first.acquire(wait=0)
        second.acquire(wait=0)  # not Busy: the other deployment's lease is another key
        assert (first.fence, second.fence) == (1, 1)
        job = _job(one)
        assert request_cancel(one, job, conn_one)
        assert flag_set(conn_one, job) and not flag_set(conn_two, job)
    finally:
        one.close()
        two.close()


def test_runs_and_resets_with_redis_leases(
    server: RedisServer, tmp_path: Path, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With BATON_LEASE_BACKEND=redis a run's lease comes from Redis and its token is recorded in the
    store, whose fenced writes then refuse older grants; a reset of the key still works."""
    from baton import RunRequest, Scope, reset_session, run
    from baton.keys import make_key
    from baton.settings import load_settings

    settings = load_settings(
        overrides={"home": str(tmp_path / "home"), "redis_url": server.url, "lease_backend": "redis"},
        environ={},
    )
    result = run(RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="go"), settings=settings)
    assert result.ok, result.run.error
    key = make_key("fake", str(src_repo), "t1", ["fake"])
    store = SQLStore(settings.resolved_store_url)
    conn = open_redis(server.url, store)
    assert int(str(conn.client.get(conn.key("fence", "{" + key.id + "}")))) == 1
    try:
        with pytest.raises(Fenced):
            store.advance_fence(key.id, 0)  # the store recorded Redis's grant
        store.advance_fence(key.id, 1)
        reset_session(store, settings, key, Scope.ALL, actor="test")
        assert store.get_session("fake", result.run.repo, "t1") is None
    finally:
        store.close()


def test_a_reset_waits_for_a_run_holding_the_redis_lease(
    server: RedisServer, tmp_path: Path, src_repo: Path
) -> None:
    """With BATON_LEASE_BACKEND=redis a reset takes the key's lease from Redis too, so a run holding it
    there makes the reset Busy (it took the store's lease before: nothing excluded the run)."""
    from baton import RunRequest, Scope, reset_session, run
    from baton.errors import Busy
    from baton.keys import make_key
    from baton.settings import load_settings
    from baton.store.leases import key_lease

    settings = load_settings(
        overrides={"home": str(tmp_path / "home"), "redis_url": server.url, "lease_backend": "redis"},
        environ={},
    )
    result = run(RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="go"), settings=settings)
    assert result.ok, result.run.error
    key = make_key("fake", str(src_repo), "t1", ["fake"])
    store = SQLStore(settings.resolved_store_url)
    running = key_lease(settings, store, key.id)
    try:
        running.acquire(wait=0)  # a run of the key, as far as Redis knows
        with pytest.raises(Busy):
            reset_session(store, settings, key, Scope.ALL, actor="test", wait=0)
        assert store.get_session("fake", result.run.repo, "t1") is not None
    finally:
        running.release()
        store.close()
