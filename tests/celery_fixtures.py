"""Fixtures for the Celery executor's tests: REAL brokers and REAL ``baton worker`` processes.

- ``redis_broker``: a private ``redis-server`` on a free port (its own directory, no persistence),
  killed after the test: nothing is shared with the machine's Redis on 6379.
- ``amqp_broker``: the machine's RabbitMQ (127.0.0.1:5672, guest; else a private node,
  ``tests.private_services``) with a queue name of its own, deleted
  after the test (with the direct exchange Celery declares beside it).
- ``broker``: either, by parameter (``@pytest.mark.parametrize("broker", ["redis", "amqp"],
  indirect=True)``). A broker that cannot be reached FAILS the test.
- ``shared_store_url``/``shared_store``: the store every process of the test opens: a SQLite file
  (SQLite's locks work across processes on one machine), or PostgreSQL (indirect parameter
  ``postgresql``); ``client``: this process's settings on it (its own BATON_HOME), with the broker.
- ``workers``: :class:`Workers` starts ``baton worker`` subprocesses, each with its own BATON_HOME on the
  shared store, each in its own process group (so a test can SIGKILL a worker with its pool), and stops
  them after the test.

Use from a test module (each fixture is registered under its name without ruff's F811)::

    from tests.celery_fixtures import Broker, Workers, broker_fixture, client_fixture, ...  # noqa: F401
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from baton.settings import Settings, load_settings
from baton.store import Store, open_store
from tests.conftest import BATON, FAST, wait_for
from tests.redis_fixtures import free_port, wait_redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@dataclass
class Broker:
    kind: str  # redis | amqp
    url: str
    queue: str

    def env(self) -> dict[str, str]:
        return {"BATON_BROKER_URL": self.url, "BATON_QUEUE": self.queue}


@pytest.fixture(name="redis_broker")
def redis_broker_fixture(tmp_path: Path) -> Iterator[Broker]:
    port = free_port()
    workdir = tmp_path / "redis"
    workdir.mkdir()
    args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [*args, "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_redis(port, proc)
        yield Broker("redis", f"redis://127.0.0.1:{port}/0", "baton")
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(name="amqp_broker")
def amqp_broker_fixture(amqp_url: str) -> Iterator[Broker]:
    import kombu

    queue = f"baton-test-{uuid.uuid4().hex[:10]}"
    conn: Any = getattr(kombu, "Connection")(amqp_url, connect_timeout=5)  # noqa: B009 (kombu is untyped)
    try:
        conn.ensure_connection(max_retries=1)
    except Exception as exc:
        pytest.fail(f"RabbitMQ is not answering at {amqp_url} ({exc})", pytrace=False)
    try:
        yield Broker("amqp", amqp_url, queue)
    finally:
        channel = conn.channel()
        try:
            channel.queue_delete(queue)
            channel.exchange_delete(queue)
        finally:
            channel.close()
            conn.release()


@pytest.fixture(name="broker")
def broker_fixture(request: pytest.FixtureRequest) -> Broker:
    """``redis`` or ``amqp``, by the test's indirect parameter."""
    found: Broker = request.getfixturevalue(f"{request.param}_broker")
    return found


@pytest.fixture(name="shared_store_url")
def shared_store_url_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file, or with the indirect parameter ``postgresql`` a fresh PostgreSQL schema (conftest's
    ``pg_url``), that every process of the test opens."""
    if getattr(request, "param", "sqlite") == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'shared' / 'baton.db'}"


@pytest.fixture(name="client")
def client_fixture(
    tmp_path: Path, shared_store_url: str, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """This process's settings: its own home, the shared store, the broker (and its queue)."""
    monkeypatch.setenv("BATON_QUEUE", broker.queue)
    overrides = {
        "home": str(tmp_path / "client"),
        "store_url": shared_store_url,
        "broker_url": broker.url,
        "queue": broker.queue,  # the workers' (a job remembers it: a janitor sends it nowhere else)
    }
    settings = load_settings(overrides={**overrides, **FAST}, environ={})
    settings.home.mkdir(parents=True, exist_ok=True)
    return settings


@pytest.fixture(name="shared_store")
def shared_store_fixture(client: Settings) -> Iterator[Store]:
    store = open_store(client.resolved_store_url)
    yield store
    store.close()


@dataclass
class Worker:
    name: str
    home: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes (its process group); agents have their own."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # a warm shutdown: running jobs finish
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class Workers:
    """``baton worker`` processes on one shared store and one broker, each with its own home."""

    root: Path
    store_url: str
    broker: Broker
    started: list[Worker] = field(default_factory=list)

    def start(
        self, name: str, concurrency: int = 2, env: dict[str, str] | None = None, pool: str = "prefork"
    ) -> Worker:
        home = self.root / f"home-{name}"
        log = self.root / f"worker-{name}-{len(self.started)}.log"
        settings = {f"BATON_{k.upper()}": str(v) for k, v in FAST.items()}
        full = {
            **os.environ,
            **settings,
            **self.broker.env(),
            "BATON_HOME": str(home),
            "BATON_STORE_URL": self.store_url,
            **(env or {}),
        }
        argv = [
            *BATON,
            "worker",
            "-c",
            str(concurrency),
            "--pool",
            pool,
            "-n",
            f"{name}-{uuid.uuid4().hex[:6]}@%h",
        ]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                env=full,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        worker = Worker(name, home, proc, log)
        self.started.append(worker)

        def ready() -> bool:
            assert proc.poll() is None, f"worker {name} exited with {proc.returncode}:\n{worker.text()}"
            return " ready." in worker.text()

        try:
            wait_for(ready, timeout=60, interval=0.05, what=f"worker {name} to be ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its log:\n{worker.text()}") from None
        return worker

    def start_together(self, specs: list[tuple[str, dict[str, Any]]]) -> list[Worker]:
        """Start several workers side by side, each waiting for its own ``ready``: one start-up's wait
        instead of one each, for workers whose order of start the test does not depend on.
        ``specs``: each worker's name and keyword arguments of :meth:`start`."""
        with ThreadPoolExecutor(len(specs)) as pool:
            started = [pool.submit(self.start, name, **kwargs) for name, kwargs in specs]
            return [future.result() for future in started]

    def stop_all(self) -> None:
        """SIGTERM every worker at once (a warm shutdown each), then wait for them."""
        alive = [w for w in self.started if w.proc.poll() is None]
        for worker in alive:
            os.killpg(worker.proc.pid, signal.SIGTERM)
        for worker in alive:
            worker.stop()


@pytest.fixture(name="workers")
def workers_fixture(tmp_path: Path, shared_store_url: str, broker: Broker) -> Iterator[Workers]:
    running = Workers(tmp_path, shared_store_url, broker)
    try:
        yield running
    finally:
        running.stop_all()
