"""The store's contract for many machines, on SQLite and PostgreSQL: fenced writes (a write carrying an
older token than the key's is refused and writes nothing; a newer one is recorded), a takeover never
interleaving with a fenced write, lease expiry judged by the database's clock (not the worker's), and
writers racing on one new row never colliding (real upserts)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from baton.errors import Busy, Fenced
from baton.models import Fence, InstructionsRecord
from baton.plans.records import PlanRecord, PlanStatus
from baton.plans.tables import plan_store
from baton.store import SQLStore
from baton.store.base import Lease
from baton.store.leases import LeaseHolder
from baton.store.schema import leases
from baton.store.sql import LEASE_TRY_WAIT
from baton.store.tables import check_fence
from tests.store_contract import REPO, count, make_lease, make_run, make_session, make_snapshot, race

KEY = "fake/github.com/acme/api/issue-1"


@pytest.fixture
def store(store_url: str) -> Iterator[SQLStore]:
    opened = SQLStore(store_url)
    yield opened
    opened.close()


def token(store: SQLStore, key: str = KEY) -> int | None:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(leases.c.fence).where(leases.c.key == key)).scalar()


def grant(store: SQLStore, holder: str, key: str = KEY) -> int:
    """Grant the key to ``holder`` (taking it from anyone); the grant's token."""
    lease = make_lease(holder, key=key)
    assert store.try_lease(lease, 60, lambda _e, _n: True) is None
    return lease.fence


# -- each fenced write: (prepare, write version N with a fence, the version stored) -----------------


@dataclass
class Write:
    name: str
    prepare: Callable[[SQLStore], None]
    write: Callable[[SQLStore, Fence | None, int], None]
    seen: Callable[[SQLStore], int]


def _nothing(_store: SQLStore) -> None:
    pass


def _session_attempts(store: SQLStore) -> int:
    session = store.get_session("fake", REPO, "issue-1")
    return session.attempts if session else 0


def _latest_run(store: SQLStore) -> int:
    return max((int(r.id[1:]) for r in store.list_runs()), default=0)


def _run_attempt(store: SQLStore) -> int:
    run = store.get_run("r0")
    return run.attempt if run else 0


def _save_snapshot(store: SQLStore, fence: Fence | None, version: int) -> None:
    store.put_blob(f"d{version}", b"x", 1)
    store.save_snapshot(make_snapshot({"a.jsonl": f"d{version}"}), fence=fence)


def _snapshot_version(store: SQLStore) -> int:
    snapshot = store.get_snapshot("fake", REPO, "issue-1")
    return int(snapshot.files["a.jsonl"][0][1:]) if snapshot else 0


def _save_instructions(store: SQLStore, fence: Fence | None, version: int) -> None:
    files = {"CLAUDE.md": {"kind": "text", "sha256": str(version)}}
    store.save_instructions(
        InstructionsRecord("fake", REPO, "issue-1", "s", float(version), files), fence=fence
    )


def _instructions_version(store: SQLStore) -> int:
    record = store.get_instructions("fake", REPO, "issue-1")
    return int(record.recorded_at) if record else 0


def _plan(version: int, plan_id: str = "p1") -> PlanRecord:
    return PlanRecord(
        plan_id, "fake", REPO, f"plan-{plan_id}", "plan.yml", PlanStatus.RUNNING, [], updated_at=version
    )


def _plan_version(store: SQLStore) -> int:
    plan = plan_store(store).get_plan("p1")
    return int(plan.updated_at) if plan else 0


WRITES = [
    Write(
        "save_session",
        _nothing,
        lambda s, f, v: s.save_session(make_session(attempts=v), fence=f),
        _session_attempts,
    ),
    Write("add_run", _nothing, lambda s, f, v: s.add_run(make_run(f"r{v}"), fence=f), _latest_run),
    Write(  # a run's start: its record and the key's session in one transaction, both or neither
        "add_run_with_session",
        _nothing,
        lambda s, f, v: s.add_run(make_run(f"r{v}"), fence=f, session=make_session(attempts=v)),
        lambda s: _latest_run(s) if _latest_run(s) == _session_attempts(s) else -1,
    ),
    Write(
        "update_run",
        lambda s: s.add_run(make_run("r0", attempt=0)),
        lambda s, f, v: s.update_run("r0", fence=f, attempt=v),
        _run_attempt,
    ),
    Write("save_snapshot", _nothing, _save_snapshot, _snapshot_version),
    Write("save_instructions", _nothing, _save_instructions, _instructions_version),
    Write("save_plan", _nothing, lambda s, f, v: plan_store(s).save_plan(_plan(v), fence=f), _plan_version),
]


@pytest.mark.parametrize("write", WRITES, ids=[w.name for w in WRITES])
def test_a_write_with_an_older_token_is_refused_and_writes_nothing(store: SQLStore, write: Write) -> None:
    assert (grant(store, "a"), grant(store, "b")) == (1, 2)
    write.prepare(store)
    write.write(store, Fence(KEY, 2), 1)  # the holder's write
    assert write.seen(store) == 1
    with pytest.raises(Fenced, match=r"token 2 > 1"):
        write.write(store, Fence(KEY, 1), 2)  # the previous holder's
    assert write.seen(store) == 1
    write.write(store, Fence(KEY, 7), 3)  # a newer grant the store has not seen (Redis): recorded
    assert (write.seen(store), token(store)) == (3, 7)
    with pytest.raises(Fenced, match=r"token 7 > 2"):
        write.write(store, Fence(KEY, 2), 4)
    assert write.seen(store) == 3
    write.write(store, None, 5)  # no fence: not checked
    assert (write.seen(store), token(store)) == (5, 7)
    assert grant(store, "c") == 8  # the next grant is above every recorded token


def test_a_holder_whose_lease_was_taken_over_cannot_write(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_now, ahead = store.db_now, [0.0]  # the database's clock, moved by hand (expired for real below)
    monkeypatch.setattr(store, "db_now", lambda conn: real_now(conn) + ahead[0])
    first = LeaseHolder(store, KEY, ttl=0.5)
    first.acquire(0)
    store.save_session(make_session(attempts=1), fence=Fence(KEY, first.fence))
    ahead[0] += 0.7  # its lease expired (it stopped renewing: paused, partitioned)
    second = LeaseHolder(store, KEY, ttl=30)
    second.acquire(0)
    assert second.fence == first.fence + 1
    with pytest.raises(Fenced) as refused:
        store.save_session(make_session(attempts=2), fence=Fence(KEY, first.fence))
    assert refused.value.exit_code == 3  # a Busy
    with pytest.raises(Fenced):
        store.add_run(make_run("r-stale"), fence=Fence(KEY, first.fence))
    assert first.renew() is False
    assert store.get_run("r-stale") is None and _session_attempts(store) == 1
    store.save_session(make_session(attempts=3), fence=Fence(KEY, second.fence))
    assert _session_attempts(store) == 3


def test_a_fence_for_a_key_the_store_never_granted_is_recorded(store: SQLStore) -> None:
    store.save_session(make_session(), fence=Fence("granted-by-redis", 3))
    assert token(store, "granted-by-redis") == 3
    store.advance_fence("granted-by-redis", 3)  # the same token again: fine
    with pytest.raises(Fenced):
        store.advance_fence("granted-by-redis", 2)
    assert grant(store, "a", key="granted-by-redis") == 4


def test_a_takeover_cannot_slip_into_a_fenced_write_in_progress(store: SQLStore) -> None:
    """The check locks the key's lease row until the write commits: a takeover cannot slip in between
    the check and the write. Its try does not queue behind the write either (the writer might be frozen
    there): it is told "not yet" (the row locked, its last committed grant), and tries again; after the
    write it lands, and its grant is then the larger."""
    holder = grant(store, "a")
    store.add_run(make_run("r1"))
    tried: list[tuple[Lease | None, float]] = []

    def takeover() -> None:
        began = time.monotonic()
        tried.append(
            (store.try_lease(make_lease("b", key=KEY), 60, lambda _e, _n: True), time.monotonic() - began)
        )

    with store._tx() as conn:
        check_fence(conn, Fence(KEY, holder))
        thread = threading.Thread(target=takeover)
        thread.start()
        thread.join(30)
        conn.execute(sa.text("UPDATE runs SET note = 'written under the fence' WHERE id = 'r1'"))
    [(blocker, took)] = tried
    assert blocker is not None and blocker.locked and blocker.holder == "a" and blocker.fence == holder
    assert took < LEASE_TRY_WAIT + 5  # never store_lock_timeout, let alone the writer's whole life
    assert grant(store, "b") == holder + 1
    run = store.get_run("r1")
    assert run is not None and run.note == "written under the fence"
    with pytest.raises(Fenced):
        store.update_run("r1", fence=Fence(KEY, holder), note="too late")


# -- lease expiry by the database's clock ---------------------------------------------------------------


def test_lease_expiry_is_judged_by_the_database_clock(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)  # this worker's clock is an hour fast
    first = LeaseHolder(store, "clock-fast", ttl=60)
    first.acquire(0)
    # by the fast clock the lease would have expired an hour ago; by the database's it has a minute
    with pytest.raises(Busy):
        LeaseHolder(store, "clock-fast", ttl=60).acquire(0)

    monkeypatch.setattr(time, "time", lambda: real() - 3600)  # an hour slow
    slow = LeaseHolder(store, "clock-slow", ttl=0.3)
    slow.acquire(0)
    blocker = store.try_lease(make_lease("probe", key="clock-slow"), 60, lambda _e, _n: False)
    assert blocker is not None and abs(blocker.expires_at - (real() + 0.3)) < 5
    time.sleep(0.5)  # time passes by the database's clock (the one this test cannot move)
    # expired by the database's clock (the slow clock would give it another hour)
    taker = LeaseHolder(store, "clock-slow", ttl=60)
    taker.acquire(0)
    assert taker.fence == slow.fence + 1


# -- writers racing on one new row ------------------------------------------------------------------------


def _snapshot_race(store: SQLStore, thread: str, i: int) -> None:
    store.put_blob(f"{thread}-{i}", b"x", 1)  # a new blob each
    store.put_blob(f"{thread}-shared", b"s", 1)  # and one blob all of them put
    store.save_snapshot(make_snapshot({"a": f"{thread}-{i}", "b": f"{thread}-shared"}, thread=thread))


RACES: dict[str, Callable[[SQLStore, str, int], Any]] = {
    "save_session": lambda s, t, i: s.save_session(make_session(t, attempts=i)),
    "save_snapshot": _snapshot_race,
    "save_plan": lambda s, t, i: plan_store(s).save_plan(_plan(i, plan_id=t)),
    "try_lease": lambda s, t, i: s.try_lease(make_lease(f"h{i}", key=t), 60, lambda _e, _n: False),
    "advance_fence": lambda s, t, i: s.advance_fence(t, i + 1),
    "fenced save_session": lambda s, t, i: s.save_session(make_session(t), fence=Fence(t, i + 1)),
}


@pytest.mark.parametrize("what", list(RACES))
def test_writers_racing_on_a_new_row_never_collide(store: SQLStore, what: str) -> None:
    for round_ in range(6):
        thread = f"race-{round_}"
        results = race(4, lambda i, t=thread: RACES[what](store, t, i))  # type: ignore[misc]
        errors = [r for r in results if isinstance(r, Exception) and not isinstance(r, Fenced)]
        assert not errors, errors
        if what == "try_lease":
            assert [r is None for r in results].count(True) == 1, results  # one grant, three blockers
        if what in ("advance_fence", "fenced save_session"):
            assert token(store, thread) == 4  # the largest token, whichever order they committed in
    assert count(store, "sessions") == (6 if "session" in what else 0)
    if what == "save_snapshot":
        assert count(store, "snapshots") == 6
        assert count(store, "blobs") == 12  # each key's last snapshot's blob and its shared one
    if what == "save_plan":
        assert count(store, "plans") == 6


def take(store: SQLStore, holder: str, key: str) -> int:
    """Take ``key`` from anyone, trying again while another try holds its row; the grant's token."""
    lease = make_lease(holder, key=key)
    while (blocker := store.try_lease(lease, 60, lambda _e, _n: True)) is not None:
        assert blocker.locked  # nothing else stops a taker that may replace anyone
    return lease.fence


def test_a_lease_row_is_one_row_per_key(store: SQLStore) -> None:
    race(4, lambda i: take(store, f"h{i}", "once"))
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(leases).where(leases.c.key == "once")).all()
    assert len(rows) == 1 and Lease(**rows[0]._mapping).fence == 4  # every grant took it over
