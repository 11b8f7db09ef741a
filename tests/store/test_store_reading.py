"""Reads and writers of a SQLite store (issue 48): a read transaction (``Transactions.reading``) takes no
write lock, so it answers while a writer holds one and sees only what was committed; the writers of one
store in one process take turns (:class:`baton.store.engine.Writers`), all of them succeeding; the
intake's multi-row insert keeps dedupe by (forge, delivery id) on both backends."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from baton.forge.data.records import DeliveryRecord, DeliveryStatus
from baton.forge.data.schema import deliveries
from baton.forge.data.tables import delivery_store
from baton.store import Store, open_store
from baton.store.engine import writers_for

HOLD = 5.0  # seconds the writer below holds its transaction at most


@contextmanager
def writer_holding(store: Store, delivery_id: str) -> Iterator[threading.Event]:
    """A thread inside a write transaction that has inserted ``delivery_id`` and not committed; it
    commits when the yielded event is set (or after :data:`HOLD` s)."""
    inside, release = threading.Event(), threading.Event()

    def write() -> None:
        with store.transaction() as conn:
            values = {"forge": "github", "delivery_id": delivery_id, "event": "ping", "received_at": 1.0}
            conn.execute(sa.insert(deliveries).values(**values, status="ignored", result="{}"))
            inside.set()
            release.wait(HOLD)

    thread = threading.Thread(target=write)
    thread.start()
    assert inside.wait(10), "the writer did not start"
    try:
        yield release
    finally:
        release.set()
        thread.join(10)


def test_a_read_answers_while_a_writer_holds_the_lock_and_sees_only_commits(store: Store) -> None:
    with writer_holding(store, "d-open") as release:
        started = time.monotonic()
        assert delivery_store(store).get_delivery("github", "d-open") is None  # not committed yet
        assert store.get_job("no-such-job") is None
        waited = time.monotonic() - started
        assert not release.is_set()
        assert waited < HOLD / 2, f"the reads waited {waited:.2f} s for the writer"
    found = delivery_store(store).get_delivery("github", "d-open")
    assert found is not None and found.status == DeliveryStatus.IGNORED


def test_writers_of_one_store_in_one_process_take_turns(store: Store) -> None:
    url = store.url  # type: ignore[attr-defined]
    assert writers_for(url) is writers_for(url)
    assert writers_for("postgresql://u@127.0.0.1/db") is None
    others = [open_store(url) for _ in range(4)]  # stores of one URL share the turn
    errors: list[BaseException] = []

    def write(n: int, opened: Store) -> None:
        try:
            for i in range(25):
                record = DeliveryRecord("github", f"d-{n}-{i}", "ping", float(i))
                assert delivery_store(opened).add_deliveries([record, record]) == [True, False]
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n, s)) for n, s in enumerate(others)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for opened in others:
        opened.close()
    assert errors == []
    assert len(delivery_store(store).list_deliveries(limit=1000)) == 100


def test_the_intake_insert_dedupes_on_both_backends(store_url: str) -> None:
    opened = open_store(store_url)
    try:
        deliveries_ = delivery_store(opened)
        first = [DeliveryRecord("github", f"d{i}", "ping", float(i), result={"n": i}) for i in range(3)]
        assert deliveries_.add_deliveries(first) == [True, True, True]
        again = [first[1], DeliveryRecord("gitea", "d1", "push", 5.0), first[1]]
        assert deliveries_.add_deliveries(again) == [False, True, False]
        stored = deliveries_.get_delivery("github", "d2")
        assert stored is not None and stored.result == {"n": 2} and stored.received_at == 2.0
    finally:
        opened.close()


def test_a_forked_child_starts_with_no_writer_holding_the_turn(store: Store) -> None:
    writers = writers_for(store.url)  # type: ignore[attr-defined]
    assert writers is not None
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with writers.turn(10.0):
            holding.set()
            done.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(10)
    try:
        pid = os.fork()
        if pid == 0:  # the child: the parent's holder is not here, the turn is free
            os._exit(0 if writers._lock.acquire(timeout=2) else 1)
        _, status = os.waitpid(pid, 0)
    finally:
        done.set()
        thread.join(10)
    assert os.waitstatus_to_exitcode(status) == 0
