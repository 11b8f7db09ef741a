"""Nothing acked and dropped: a job reaches only workers of its store, and a message a worker's store does not
have goes back to the broker. REAL brokers and REAL ``baton worker`` processes: two workers on store A and one
on store B.

- with the default queues (the store's own, ``baton.<store id>``): A's job runs on an A worker, B's job
  waits, queued and untouched by A's workers, until a B worker starts, then runs there; each worker's
  heartbeat is in its own store; ``baton doctor``'s fleet checks list the workers of each store;
- with one explicit queue shared by both stores (RabbitMQ and Redis): a worker of A that gets B's job
  logs an ERROR naming both stores and sends it back, and the B worker runs it;
- without a broker: the store's identity (one per store, whatever the URL's spelling, no password),
  the queue's name, the bounded back-off, and what sending back does when the broker refuses.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from baton.fleet import jobs
from baton.fleet.celery import CeleryExecutor, _send_back
from baton.fleet.checks import fleet_checks
from baton.fleet.routing import MAX_BOUNCE_DELAY, StoreTag, bounce_delay, queue_for, store_tag
from baton.housekeeping.doctor import CheckStatus
from baton.models import JobRecord, JobStatus
from baton.settings import Settings, load_settings
from baton.store import Store, open_store
from tests.celery_fixtures import (  # noqa: F401 (fixtures)
    Broker,
    Workers,
    amqp_broker_fixture,
    broker_fixture,
    redis_broker_fixture,
)
from tests.conftest import BATON, FAST, wait_for

DEFAULT_QUEUES = {"BATON_QUEUE": ""}  # workers read their store's own queue


def body(repo: Path, thread: str, prompt: str) -> dict[str, Any]:
    return {"agent": "fake", "repo": str(repo), "thread": thread, "prompt": prompt}


class Side:
    """One store of the test: its URL, a client's settings and store, and its workers."""

    def __init__(self, root: Path, broker: Broker, queue: str) -> None:
        root.mkdir(parents=True)
        self.url = f"sqlite:///{root / 'store' / 'baton.db'}"
        overrides = {"home": str(root / "client"), "store_url": self.url, "broker_url": broker.url}
        self.settings = load_settings({**overrides, "queue": queue or None, **FAST}, environ={})
        self.store = open_store(self.url)
        self.workers = Workers(root, self.url, broker)

    def submit(self, repo: Path, thread: str) -> JobRecord:
        executor = CeleryExecutor(self.settings, self.store)
        try:
            job = jobs.submit(self.store, self.settings, body(repo, thread, "hello"), "test")
            executor.submit(job.id)
        finally:
            executor.stop()
        return job

    def job(self, job_id: str) -> JobRecord:
        job = self.store.get_job(job_id)
        assert job is not None
        return job

    def wait_done(self, job_id: str, timeout: float = 90) -> JobRecord:
        wait_for(lambda: self.job(job_id).status == JobStatus.DONE, timeout, what=f"job {job_id} to end")
        return self.job(job_id)


def two_sides(tmp_path: Path, broker: Broker, queue: str) -> Iterator[tuple[Side, Side]]:
    a, b = Side(tmp_path / "a", broker, queue), Side(tmp_path / "b", broker, queue)
    try:
        yield a, b
    finally:
        a.workers.stop_all()
        b.workers.stop_all()
        a.store.close()
        b.store.close()


@pytest.fixture
def sides(tmp_path: Path, broker: Broker) -> Iterator[tuple[Side, Side]]:
    """Stores A and B on one broker, each with its own queue (start workers with DEFAULT_QUEUES; the
    Redis broker: it is the test's own, so the queues need no cleanup)."""
    yield from two_sides(tmp_path, broker, "")


@pytest.fixture
def sharing(tmp_path: Path, broker: Broker) -> Iterator[tuple[Side, Side]]:
    """Stores A and B on one broker and one queue, named explicitly (the broker fixture's)."""
    yield from two_sides(tmp_path, broker, broker.queue)


def ran_in(job: JobRecord, home: Path) -> bool:
    return job.result is not None and str(job.result.get("worktree", "")).startswith(str(home))


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_jobs_reach_only_workers_of_their_store(sides: tuple[Side, Side], src_repo: Path) -> None:
    a, b = sides
    a1, a2 = a.workers.start_together([(n, {"env": DEFAULT_QUEUES}) for n in ("a1", "a2")])
    waiting = b.submit(src_repo, "tb")  # no worker of B is up
    done = a.wait_done(a.submit(src_repo, "ta").id)
    assert done.outcome == "succeeded", done.error
    assert ran_in(done, a1.home) or ran_in(done, a2.home)
    assert b.job(waiting.id).status == JobStatus.QUEUED, "B's job waits for a worker of B"
    assert waiting.id not in a1.text() + a2.text(), "no worker of A saw B's job"

    b1 = b.workers.start("b1", env=DEFAULT_QUEUES)
    ended = b.wait_done(waiting.id)
    assert ended.outcome == "succeeded" and ran_in(ended, b1.home), ended.error

    # each worker's heartbeat is in its own store, with its queue: the store's own
    queue_a, queue_b = (queue_for(s.settings, store_tag(s.settings, s.store)) for s in (a, b))
    assert queue_a != queue_b and queue_a.startswith("baton.")
    rows_a, rows_b = a.store.list_workers(), b.store.list_workers()
    assert sorted(w.name.split("-")[0] for w in rows_a) == ["a1", "a2"]
    assert [w.name.split("-")[0] for w in rows_b] == ["b1"]
    assert {w.queue for w in rows_a} == {queue_a} and rows_b[0].queue == queue_b
    assert {w.pid for w in rows_a} == {a1.proc.pid, a2.proc.pid}

    # doctor: broker and Redis answer; each store's recent workers, by name
    checks = {c.name: c for c in fleet_checks(a.settings.with_(redis_url=a.settings.broker_url))}
    assert [checks[n].status for n in ("broker", "redis", "workers")] == [CheckStatus.OK] * 3, checks
    assert all(w.name in checks["workers"].detail for w in rows_a) and "b1-" not in checks["workers"].detail
    (seen_b,) = (c for c in fleet_checks(b.settings) if c.name == "workers")
    assert seen_b.status == CheckStatus.OK and rows_b[0].name in seen_b.detail and "a1-" not in seen_b.detail

    # a stopped worker stops counting once its heartbeat is older than a lease TTL: the reader's, here
    # 1 s (the workers beat every 0.5 s) rather than waiting out FAST's 5 s
    b.workers.stop_all()
    short = b.settings.with_(lease_ttl=1.0)
    wait_for(
        lambda: next(c for c in fleet_checks(short) if c.name == "workers").status == CheckStatus.WARN,
        20,
    )


@pytest.mark.parametrize("broker", ["amqp", "redis"], indirect=True)
def test_a_job_on_a_worker_of_another_store_goes_back_to_the_queue(
    sharing: tuple[Side, Side], src_repo: Path
) -> None:
    a, b = sharing  # both on the broker fixture's queue, named explicitly
    a1 = a.workers.start("a1")
    job = b.submit(src_repo, "tb")
    id_a, id_b = a.store.identity(), b.store.identity()
    line = re.compile(rf"ERROR.*job {job.id} is not in this worker's store {id_a} .*store {id_b} ")
    wait_for(lambda: line.search(a1.text()), 30, what="worker a1 to log B's job as not its store's")
    assert b.job(job.id).status == JobStatus.QUEUED
    assert a.store.get_job(job.id) is None

    b1 = b.workers.start("b1")  # the next bounce (2 s, 4 s, ... later) may reach it
    ended = b.wait_done(job.id, timeout=120)
    assert ended.outcome == "succeeded" and ran_in(ended, b1.home), ended.error
    assert not ran_in(ended, a1.home)


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_submit_follow_says_when_no_worker_took_the_run(
    sides: tuple[Side, Side], src_repo: Path, tmp_path: Path
) -> None:
    a, _ = sides
    env = {
        **os.environ,
        **{f"BATON_{k.upper()}": str(v) for k, v in FAST.items()},
        "BATON_HOME": str(a.settings.home),
        "BATON_STORE_URL": a.url,
        "BATON_BROKER_URL": a.settings.broker_url,
        "BATON_QUEUE": "",
        "BATON_QUEUED_NOTICE": "1",
    }
    err = tmp_path / "stderr"
    argv = [*BATON, "submit", "-a", "fake", "-r", str(src_repo), "-t", "t1", "--follow", "hello"]
    with err.open("w") as stderr:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        wait_for(lambda: "still queued" in err.read_text() or proc.poll() is not None, 30, what="the notice")
        notice = err.read_text()
        queue = queue_for(a.settings, store_tag(a.settings, a.store))
        assert f"queue {queue!r}" in notice and "no worker of this store has been seen" in notice
        assert "baton worker" in notice and "Still waiting" in notice
        assert proc.poll() is None, "it keeps waiting"
        a.workers.start("a1", env=DEFAULT_QUEUES)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    assert proc.returncode == 0, err.read_text()
    assert "succeeded" in out
    assert err.read_text().count("still queued") == 1, "said once"


# -- without workers ----------------------------------------------------------------------------------


def test_one_store_one_identity(tmp_path: Path, pg_url: str) -> None:
    path = tmp_path / "x" / "baton.db"
    plain, detour = f"sqlite:///{path}", f"sqlite:///{tmp_path / 'x' / '..' / 'x' / 'baton.db'}"
    other = f"sqlite:///{tmp_path / 'y' / 'baton.db'}"
    ids = [open_store(url).identity() for url in (plain, detour, other)]
    assert ids[0] == ids[1] != ids[2], "one store whatever the URL's spelling; another store another id"
    assert re.fullmatch(r"[0-9a-f]{12}", ids[0])
    # PostgreSQL: another host name and a password (trust ignores it) name the same schema
    url = sa.engine.make_url(pg_url)
    spelled = url.set(host="localhost", password="hunter2").render_as_string(hide_password=False)
    assert open_store(pg_url).identity() == open_store(spelled).identity() not in ids
    settings = load_settings({"home": str(tmp_path), "store_url": spelled}, environ={})
    tag = store_tag(settings, open_store(spelled))
    assert "hunter2" not in str(tag) and "localhost" in tag.url


def test_the_queue_is_the_stores_own_unless_named(settings: Settings, store: Store) -> None:
    tag = store_tag(settings, store)
    assert queue_for(settings, tag) == f"baton.{store.identity()}"
    assert queue_for(settings.with_(queue="gpu"), tag) == "gpu"
    assert [bounce_delay(n) for n in range(4)] == [2.0, 4.0, 8.0, 16.0]
    assert bounce_delay(10**6) == MAX_BOUNCE_DELAY


def test_sending_back_never_drops(caplog: pytest.LogCaptureFixture) -> None:
    """What a worker does with a job its store lacks: an ERROR naming both stores and a copy on the same
    queue, one bounce more, later; a broker that refuses the copy gets the message back (Reject)."""
    from celery.exceptions import Reject  # type: ignore[import-untyped]

    sent: list[dict[str, Any]] = []
    conf = SimpleNamespace(broker_url="amqp://guest:guest@127.0.0.1//")
    app = SimpleNamespace(conf=conf, send_task=lambda name, **kw: sent.append(kw))
    ours, theirs = StoreTag("aaaaaaaaaaaa", "sqlite:///a.db"), StoreTag("bbbbbbbbbbbb", "sqlite:///b.db")
    with caplog.at_level(logging.ERROR, "baton.worker"):
        assert _send_back(SimpleNamespace(app=app), "j1", "shared", ours, theirs, 2) == "sent back"
    assert sent == [
        {
            "args": ["j1"],
            "kwargs": {"bounces": 3, "store": theirs.to_json()},
            "queue": "shared",
            "countdown": 8.0,
        }
    ]
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and str(ours) in record.message and str(theirs) in record.message

    def refuse(name: str, **_: Any) -> None:
        raise ConnectionRefusedError("broker down")

    app.send_task = refuse
    with pytest.raises(Reject) as refused:
        _send_back(SimpleNamespace(app=app), "j1", "shared", ours, None, 0)
    assert refused.value.requeue is True
    assert "older baton" in caplog.records[-2].message
    assert StoreTag.from_json({"id": 3}) is None and StoreTag.from_json(theirs.to_json()) == theirs
    assert StoreTag.from_json({"id": "../x", "url": ""}) is None
    assert StoreTag.from_json({"id": "ab", "url": "a\nERROR forged"}) == StoreTag("ab", "a?ERROR forged")


def test_doctor_when_the_broker_and_redis_do_not_answer(settings: Settings, store: Store, cli: Any) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = {
        "broker_url": f"amqp://guest:secret@127.0.0.1:{port}//",
        "redis_url": f"redis://127.0.0.1:{port}/0",
    }
    checks = {c.name: c for c in fleet_checks(settings.with_(**closed))}
    assert checks["broker"].status == CheckStatus.ERROR and "does not answer" in checks["broker"].detail
    assert "secret" not in checks["broker"].detail
    assert checks["redis"].status == CheckStatus.ERROR
    assert checks["workers"].status == CheckStatus.WARN and "no worker of store" in checks["workers"].detail
    assert fleet_checks(settings) == [], "no broker, no Redis: nothing to check"

    done = cli("doctor", "--json", env={"BATON_BROKER_URL": closed["broker_url"]})
    assert done.returncode == 1
    assert "secret" not in done.stdout
    report = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert report["broker"]["status"] == "error" and report["workers"]["status"] == "warn"
