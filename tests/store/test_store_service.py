"""The service's tables and the dashboard's reads, on SQLite and PostgreSQL: jobs start in submission
order per key (and once when executors race), cancel requests, tokens keep only a hash, a delivery is
stored once; pages of sessions, the overview's and /metrics' counts."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from baton.forge.data.records import DeliveryRecord, DeliveryStatus
from baton.forge.data.tables import delivery_store
from baton.models import JobRecord, JobStatus, Outcome, SessionStatus
from baton.service.records import TokenRecord, TokenScope
from baton.service.tables import token_store, web_session_store
from baton.store import Store, open_store
from tests.store_contract import REPO, make_run, make_session, race


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def job(job_id: str, thread: str, at: float) -> JobRecord:
    return JobRecord(job_id, "fake", "github.com/a/b", thread, {"prompt": job_id}, submitted_at=at)


def test_jobs_of_one_key_start_in_submission_order(store: Store) -> None:
    for job_id, thread, at in (("j1", "t1", 1.0), ("j2", "t1", 2.0), ("j3", "t2", 3.0)):
        store.add_job(job(job_id, thread, at))
    assert not store.start_job("j2", 5.0)  # j1 of the same key was submitted first
    assert store.start_job("j3", 5.0)  # another key: free
    assert store.start_job("j1", 5.0)
    assert not store.start_job("j1", 5.0)  # already running
    assert not store.start_job("j2", 5.0)  # j1 runs
    store.update_job("j1", status=JobStatus.DONE, outcome="succeeded", result={"outcome": "succeeded"})
    assert store.start_job("j2", 6.0)
    done = store.get_job("j1")
    assert done is not None and done.result == {"outcome": "succeeded"} and done.status == JobStatus.DONE
    queued = store.list_jobs(status=JobStatus.RUNNING, oldest_first=True)
    assert [j.id for j in queued] == ["j2", "j3"]


def test_tokens_and_deliveries(store: Store) -> None:
    token_store(store).add_token(TokenRecord("ci", TokenScope.RUN, "d" * 64, 1.0))
    found = token_store(store).find_token("d" * 64)
    assert found is not None and found.scope == TokenScope.RUN and found.revoked_at is None
    assert token_store(store).revoke_token("ci", 2.0) and not token_store(store).revoke_token("ci", 3.0)
    assert TokenScope.ADMIN.allows(TokenScope.RUN) and not TokenScope.READ.allows(TokenScope.RUN)
    first = DeliveryRecord("github", "abc", "delete", 1.0)
    assert delivery_store(store).add_delivery(first) and not delivery_store(store).add_delivery(first)
    delivery_store(store).update_delivery("github", "abc", DeliveryStatus.DONE, {"closed": 1})
    stored = delivery_store(store).get_delivery("github", "abc")
    assert stored is not None and stored.status == DeliveryStatus.DONE and stored.result == {"closed": 1}
    delivery_store(store).add_delivery(DeliveryRecord("gitea", "x", "push", 2.0))
    assert sorted(delivery_store(store).delivery_counts()) == [
        ("gitea", "push", "pending", 1),
        ("github", "delete", "done", 1),
    ]


def test_a_batch_of_deliveries_is_stored_once_per_id(store: Store) -> None:
    delivery_store(store).add_delivery(DeliveryRecord("github", "known", "push", 1.0))
    batch = [
        DeliveryRecord("github", "new", "push", 2.0),
        DeliveryRecord("github", "known", "push", 2.0),
        DeliveryRecord("gitlab", "known", "push", 2.0),  # another forge: another delivery
        DeliveryRecord("github", "new", "push", 2.0),  # again in the batch
    ]
    assert delivery_store(store).add_deliveries(batch) == [True, False, True, False]
    assert delivery_store(store).add_deliveries([]) == []
    assert sorted((d.forge, d.delivery_id) for d in delivery_store(store).list_deliveries()) == [
        ("github", "known"),
        ("github", "new"),
        ("gitlab", "known"),
    ]


def executors_race(store: Store, thread: str) -> None:
    for i in range(4):
        store.add_job(job(f"{thread}-{i}", thread, float(i)))
    first, delivery = f"{thread}-0", DeliveryRecord("github", thread, "push", 1.0)
    # four executors start the key's first job at once (a later one never starts before it)
    started = race(4, lambda _i: store.start_job(first, 5.0))
    assert started.count(True) == 1, started
    assert [j.id for j in store.list_jobs(thread=thread, status=JobStatus.RUNNING)] == [first]
    added = race(4, lambda _i: delivery_store(store).add_delivery(delivery))
    assert sorted(added) == [False, False, False, True], added


def test_racing_executors_start_one_job_of_a_key_and_store_a_delivery_once(store: Store) -> None:
    for round_ in range(5):
        executors_race(store, f"t{round_}")


def test_the_dashboard_pages_and_counts(store: Store) -> None:
    store.save_session(make_session("a", attempts=3, last_used_at=30.0))
    store.save_session(make_session("b", attempts=1, last_used_at=20.0, status=SessionStatus.CLOSED))
    store.save_session(
        make_session("c", attempts=2, last_used_at=10.0, agent="claude", repo="github.com/x/y")
    )
    page, total = store.page_sessions(sort="attempts", descending=False, limit=2)
    assert ([s.thread for s in page], total) == (["b", "c"], 3)
    page, total = store.page_sessions(agent="fake", status=SessionStatus.CLOSED)
    assert ([s.thread for s in page], total) == (["b"], 1)
    assert [s.thread for s in store.page_sessions(offset=1)[0]] == ["b", "c"]  # last used first
    assert store.session_facets() == (["claude", "fake"], ["github.com/acme/api", "github.com/x/y"])
    assert sorted(store.session_keys(agent="fake")) == [("fake", REPO, "a"), ("fake", REPO, "b")]
    store.add_run(make_run("r1", started_at=100.0, note="hydrated from the store"))
    store.add_run(make_run("r2", started_at=101.0))
    store.update_run("r1", outcome=Outcome.SUCCEEDED, ended_at=104.0)
    store.add_run(make_run("old", started_at=1.0, outcome=Outcome.FAILED, ended_at=2.0))
    store.add_job(job("j1", "a", 1.0))
    counts = store.overview_counts(since=50.0)
    assert counts["sessions"] == {"active": 2, "closed": 1}
    assert sorted(counts["runs"]) == [("fresh", "running", False, 1), ("fresh", "succeeded", True, 1)]
    assert (counts["running"], counts["queued"]) == (1, 1)
    metrics = store.metrics_counts([1.0, 5.0])
    assert sorted(metrics["runs"]) == [
        ("fake", "fresh", "failed", 0, 1, 1, 1.0, 1, 1),
        ("fake", "fresh", "succeeded", 1, 1, 1, 4.0, 0, 1),
    ]
    assert sorted(metrics["sessions"]) == [
        ("claude", "active", 1),
        ("fake", "active", 1),
        ("fake", "closed", 1),
    ]
    assert metrics["jobs"] == [("queued", 1)]


def test_a_cancel_request_reaches_a_job_until_it_ended(store: Store) -> None:
    store.add_job(job("j1", "t", 1.0))
    assert store.request_cancel("j1", 5.0)
    cancelled = store.get_job("j1")
    assert cancelled is not None and cancelled.cancel_requested_at == 5.0
    store.update_job("j1", status=JobStatus.DONE)
    assert not store.request_cancel("j1", 6.0)
    assert not store.request_cancel("missing", 6.0)


def test_job_events_are_shared_in_order_and_stored_once(store: Store) -> None:
    assert store.job_events("j1") == [] and store.last_job_event("j1") == 0
    for seq in (1, 2, 3):
        store.add_job_event("j1", seq, f'{{"seq": {seq}}}')
    store.add_job_event("j1", 2, '{"seq": 2, "again": true}')  # a redelivered worker's duplicate: kept
    store.add_job_event("j2", 1, '{"seq": 1}')
    assert store.job_events("j1") == ['{"seq": 1}', '{"seq": 2}', '{"seq": 3}']
    assert store.job_events("j1", after=1, limit=1) == ['{"seq": 2}']
    assert store.last_job_event("j1") == 3 and store.last_job_event("j2") == 1


def test_released_lease_rows_of_ended_jobs_are_pruned(store: Store) -> None:
    from baton.models import JobStatus
    from baton.store.base import Lease

    for job_id, status in (
        ("done1", JobStatus.DONE),
        ("done2", JobStatus.DONE),
        ("queued1", JobStatus.QUEUED),
    ):
        store.add_job(job(job_id, job_id, 1.0))
        if status == JobStatus.DONE:
            store.update_job(job_id, status=JobStatus.DONE, outcome="succeeded")
        for kind in ("job", "publish"):  # the job's own lease, and its forge turn's claim
            lease = Lease(f"{kind}:{job_id}", f"w-{job_id}", "h", 1, 0.0, 0.0)
            assert store.try_lease(lease, 60, lambda _e, _n: False) is None
            if job_id != "done2":  # done2's worker still holds its lease (recording the end, say)
                store.release_lease(f"{kind}:{job_id}", f"w-{job_id}")
    assert store.prune_job_leases() == 2  # done1's two rows only
    assert (
        store.try_lease(Lease("job:done2", "other", "h", 1, 0.0, 0.0), 60, lambda _e, _n: False) is not None
    )
    queued = Lease("job:queued1", "next", "h", 1, 0.0, 0.0)
    assert store.try_lease(queued, 60, lambda _e, _n: False) is None and queued.fence == 2  # row kept
    assert store.prune_job_leases() == 0


def test_a_keys_jobs_start_in_commit_order_under_concurrent_submits(store: Store) -> None:
    """Submits of one key from many threads, each reading the clock a while before its insert commits
    (as the API does, validating the request in between), while a dispatcher starts and ends the key's
    first queued job as soon as it sees one: the jobs start in the order of the ``seq`` the store
    numbered them with, 1..N, whatever their clocks say, on every trial. (Ordered by the clock, a
    dispatcher started a job while one with an earlier clock was still being inserted.)"""
    threads, trials = 8, 10
    for trial in range(trials):
        thread = f"t{trial}"
        started: list[str] = []
        submitting = threading.Barrier(threads + 1)
        done = threading.Event()

        def submit(n: int, thread: str = thread, barrier: threading.Barrier = submitting) -> None:
            barrier.wait()
            at = time.time()
            time.sleep(random.uniform(0, 0.01))  # the request is validated between the clock and the insert
            store.add_job(job(f"{thread}-{n}", thread, at))

        def dispatch(
            thread: str = thread, started: list[str] = started, done: threading.Event = done
        ) -> None:
            while True:
                finished = done.is_set()  # read before the look: a look that found none after it is final
                first = store.list_jobs(
                    "fake", "github.com/a/b", thread, status=JobStatus.QUEUED, limit=1, oldest_first=True
                )
                if not first:
                    if finished:
                        return
                    continue
                if store.start_job(first[0].id, time.time()):
                    started.append(first[0].id)
                    store.update_job(first[0].id, status=JobStatus.DONE, outcome="succeeded")

        workers = [threading.Thread(target=submit, args=(n,)) for n in range(threads)]
        dispatcher = threading.Thread(target=dispatch)
        for worker in [*workers, dispatcher]:
            worker.start()
        submitting.wait()
        for worker in workers:
            worker.join()
        done.set()
        dispatcher.join(timeout=30)
        stored = store.list_jobs("fake", "github.com/a/b", thread, limit=threads)
        by_seq = [j.id for j in sorted(stored, key=lambda j: j.seq or 0)]
        assert sorted(j.seq or 0 for j in stored) == list(range(1, threads + 1)), f"trial {trial}"
        assert started == by_seq, f"trial {trial}: started out of commit order"


def test_jobs_from_before_seq_come_first_by_their_clock(store: Store, store_url: str) -> None:
    """Rows from before migration 11 have no ``seq``: they start first, in the order of their clock."""
    for job_id, at in (("new", 1.0), ("old-2", 3.0), ("old-1", 2.0)):
        store.add_job(job(job_id, "t1", at))
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE jobs SET seq = NULL WHERE id LIKE 'old-%'"))
    engine.dispose()
    queued = store.list_jobs("fake", "github.com/a/b", "t1", status=JobStatus.QUEUED, oldest_first=True)
    assert [j.id for j in queued] == ["old-1", "old-2", "new"]
    assert not store.start_job("new", 5.0) and not store.start_job("old-2", 5.0)
    assert store.start_job("old-1", 5.0)


def test_web_sessions_expire_and_are_revoked_once(store: Store) -> None:
    web_session_store(store).add_web_session("d1", "alice", 100.0, 200.0)
    assert web_session_store(store).web_session_token("d1", 150.0) == "alice"
    assert web_session_store(store).web_session_token("d1", 200.0) is None  # expired
    assert web_session_store(store).web_session_token("nope", 150.0) is None
    assert web_session_store(store).revoke_web_session("d1", 160.0) and not web_session_store(
        store
    ).revoke_web_session("d1", 161.0)
    assert web_session_store(store).web_session_token("d1", 170.0) is None
    web_session_store(store).add_web_session("d2", "bob", 300.0, 400.0)  # sessions expired by then are pruned
    web_session_store(store).add_web_session(
        "d1", "carol", 300.0, 400.0
    )  # (d1's row went: its digest is free again)
    assert web_session_store(store).web_session_token("d1", 310.0) == "carol"
