"""The store's time limits (:mod:`baton.store.limits`): every connection carries them, a statement blocked
by a lock another connection holds fails within ``store_lock_timeout`` with baton's error, a lease never
queues behind a frozen holder, and PostgreSQL ends a transaction left idle past ``store_idle_timeout`` (a
process frozen in it), after which the key is taken as if its holder had died. On SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from baton.errors import BadInput, Busy, StoreBusy, StoreUnavailable
from baton.housekeeping.sweep import sweep
from baton.models import Fence
from baton.settings import Settings, load_settings
from baton.store import SQLStore, open_store
from baton.store.leases import LeaseHolder
from baton.store.limits import StoreLimits
from baton.store.sql import LEASE_TRY_WAIT
from tests.store_contract import REPO, foreign_lock, frozen_renewal, make_session

KEY = "fake/github.com/acme/api/issue-1"  # make_session's key (its lease's name)
SHOWN = "fake:github.com/acme/api:issue-1"  # as a sweep's report shows it
QUICK = StoreLimits(lock=0.5, idle=1.0, statement=5.0, keepalive=30.0)


def test_a_statement_blocked_by_a_foreign_lock_fails_within_the_lock_timeout(store_url: str) -> None:
    store = open_store(store_url, QUICK)
    store.advance_fence(KEY, 1)  # the key's lease row
    with foreign_lock(store_url, KEY):
        began = time.monotonic()
        with pytest.raises(StoreBusy, match="store_lock_timeout") as refused:
            store.save_session(make_session(), fence=Fence(KEY, 1))
        took = time.monotonic() - began
    assert isinstance(refused.value, StoreUnavailable)  # tried again by callers, as a store away
    assert QUICK.lock * 0.8 < took < QUICK.lock * 2 + 3, took  # (SQLite: this process's writers' turn too)
    assert store.get_session("fake", REPO, "issue-1") is None  # nothing half-written
    store.save_session(make_session(), fence=Fence(KEY, 1))  # the lock gone: written


def test_a_lease_never_queues_behind_a_frozen_holder_of_its_row(store_url: str) -> None:
    """Not even for ``store_lock_timeout`` (10 s by default): its try is refused at once (PostgreSQL's
    NOWAIT; SQLite waits a second for its write lock, every key's), and tried again within ``--wait``."""
    store = open_store(store_url)
    store.advance_fence(KEY, 1)
    with foreign_lock(store_url, KEY):
        began = time.monotonic()
        with pytest.raises(Busy, match="being written by another connection"):
            LeaseHolder(store, KEY, ttl=30).acquire(wait=1.0)
        took = time.monotonic() - began
    assert took < 1.0 + LEASE_TRY_WAIT + 2, took
    holder = LeaseHolder(store, KEY, ttl=30)
    holder.acquire(wait=0)
    assert holder.fence == 2


def test_a_transaction_frozen_past_the_idle_timeout_loses_the_key_to_a_sweep(
    pg_url: str, tmp_path: Path
) -> None:
    """A holder whose renewal froze before its commit (a baton connection with baton's limits, idle in
    its transaction): a sweep skips the key at once instead of waiting on it, the server ends that
    transaction after the holder's ``store_idle_timeout``, and the next sweep takes the expired key."""
    settings = load_settings(overrides={"home": str(tmp_path / "home"), "store_url": pg_url}, environ={})
    frozen_store = open_store(pg_url, QUICK)
    holder = LeaseHolder(frozen_store, KEY, ttl=0.5)
    holder.acquire(wait=0)
    store = open_store(pg_url)
    store.save_session(make_session(expires_at=time.time() - 60), fence=holder.proof)
    with frozen_renewal(frozen_store, KEY) as errors:
        began = time.monotonic()
        first = sweep(store, settings)
        assert time.monotonic() - began < 5 and list(first.skipped) == [SHOWN], first.skipped
        time.sleep(QUICK.idle + 0.5)  # the server's idle timeout passes (and the lease's TTL)
        second = sweep(store, settings)
        assert second.expired == [SHOWN] and not second.skipped, second
    [error] = errors
    assert isinstance(error, StoreUnavailable) and "store_idle_timeout" in str(error), error
    assert holder.renew() is False  # the key went on without it


def test_a_statement_past_its_limit_is_stopped_but_a_bulk_write_is_not(pg_url: str) -> None:
    store = SQLStore(pg_url, StoreLimits(lock=1.0, idle=10.0, statement=0.3, keepalive=30.0))
    with pytest.raises(StoreBusy, match="store_statement_timeout"), store.transaction() as conn:
        conn.execute(sa.text("SELECT pg_sleep(3)"))
    with store._tx(bulk=True) as conn:
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "0"


def _setting(conn: sa.Connection, name: str) -> str:
    query = sa.text("SELECT setting FROM pg_settings WHERE name = :n")
    return str(conn.execute(query, {"n": name}).scalar_one())


def test_every_postgresql_connection_carries_the_limits_and_the_urls_own_options_win(pg_url: str) -> None:
    limits = StoreLimits(lock=1.5, idle=2.5, statement=7.0, keepalive=12.0)
    store = open_store(pg_url, limits)
    with store.transaction() as conn:
        got = {name: _setting(conn, name) for name in EXPECTED}
        assert _setting(conn, "synchronous_commit") == "off"  # pg_url's own -c, kept
    assert got == EXPECTED
    url = sa.engine.make_url(pg_url)
    own = url.update_query_dict({"options": f"{url.query['options']} -c lock_timeout=3s"})
    mine = open_store(own.render_as_string(hide_password=False), limits)
    with mine.transaction() as conn:
        assert _setting(conn, "lock_timeout") == "3000"


EXPECTED = {  # pg_settings' units: ms for the timeouts, s for the keepalives
    "lock_timeout": "1500",
    "idle_in_transaction_session_timeout": "2500",
    "statement_timeout": "7000",
    "tcp_keepalives_idle": "12",
    "tcp_keepalives_interval": "4",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "24000",
}


def test_the_connect_arguments_leave_what_the_url_says_to_it() -> None:
    url = sa.engine.make_url("postgresql+psycopg://u@db/baton?options=-csearch_path%3Dx&keepalives_idle=99")
    args = StoreLimits.default().postgres_args(url)
    assert args["options"].startswith("-c lock_timeout=10000 -c idle_in_transaction_session_timeout=10000")
    assert args["options"].endswith(" -csearch_path=x")  # the URL's own, last: it wins
    assert "keepalives_idle" not in args and args["keepalives"] == 1 and args["connect_timeout"] == 10


def test_the_defaults_are_the_settings_own(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert StoreLimits.default() == StoreLimits.of(settings) == StoreLimits(10.0, 10.0, 30.0, 30.0)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "1e9"])
def test_a_store_limit_without_a_bound_is_refused_naming_it(tmp_path: Path, value: str) -> None:
    with pytest.raises(BadInput, match="store_idle_timeout"):
        load_settings(overrides={"home": str(tmp_path)}, environ={"BATON_STORE_IDLE_TIMEOUT": value})
