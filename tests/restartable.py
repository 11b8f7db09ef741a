"""Private services a test may stop, freeze and start again: a ``redis-server`` and a RabbitMQ node
on fixed ports of their own (a restart comes back on the same port, as a real broker's restart
does), and a PostgreSQL server that can be frozen (SIGSTOP) or stopped. Never the machine's shared
servers, which other tests use at the same time.

- :class:`RestartableRedis`: no persistence, so a restart empties it (the harder case: the messages
  in flight are gone with it);
- :class:`RestartableRabbit`: a node of its own (``tests.private_services``' way), data kept across a
  restart (durable queues and their messages survive, as on a real server);
- :class:`RestartablePostgres`: ``initdb`` once, ``pg_ctl`` start/stop, :meth:`freeze`/:meth:`thaw`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.private_services import (
    RABBITMQ_CTL,
    RABBITMQ_SERVER,
    _as_postgres,
    _pg_bin,
    _wait,
    answers,
    free_port,
    rabbitmq_env,
)

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _wait_gone(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while answers("127.0.0.1", port):
        if time.monotonic() > deadline:
            pytest.fail(f"the server on port {port} did not stop", pytrace=False)
        time.sleep(0.1)


class _Restartable:
    """A server stopped and started again on the same port, as a real restart does."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def restart(self, down: float = 1.0) -> None:
        self.stop()
        time.sleep(down)
        self.start()


class RestartableRedis(_Restartable):
    def __init__(self, workdir: Path) -> None:
        self.port, self.workdir = free_port(), workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        log = self.workdir / "redis.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen([*argv, "no", "--dir", str(self.workdir)], stdout=out, stderr=out)
        _wait(self.port, self.proc, "redis-server", log, timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        _wait_gone(self.port)


class RestartableRabbit(_Restartable):
    def __init__(self, workdir: Path) -> None:
        if not Path(RABBITMQ_SERVER).exists():
            pytest.fail(
                "the RabbitMQ server is not installed: apt-get install rabbitmq-server", pytrace=False
            )
        self.port = free_port()
        self.node = f"baton-restart-{self.port}@localhost"
        self.workdir = workdir
        self.env = rabbitmq_env(workdir, self.node, self.port)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self) -> None:
        log = self.workdir / "out.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [RABBITMQ_SERVER], env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        _wait(self.port, self.proc, "RabbitMQ", log, timeout=90)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        subprocess.run([RABBITMQ_CTL, "-n", self.node, "stop"], env=self.env, capture_output=True, timeout=60)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        _wait_gone(self.port)


class RestartablePostgres:
    """A PostgreSQL server of its own (trust, database ``test``)."""

    def __init__(self) -> None:
        self.bin, self.port = _pg_bin(), free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="baton-test-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
        self.data, self.log = self.workdir / "data", self.workdir / "postgres.log"
        initdb = [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust"]
        subprocess.run(_as_postgres([*initdb, "-E", "UTF8", "--no-sync"]), check=True, capture_output=True)
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/test"
        self.start()
        createdb = [str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        subprocess.run(_as_postgres([*createdb, "test"]), check=True, capture_output=True, timeout=60)

    def _ctl(self, *args: str) -> None:
        ctl = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), *args]
        subprocess.run(_as_postgres(ctl), check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-o", options, "-w", "start")
        _wait(self.port, None, "PostgreSQL", self.log)

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")
        _wait_gone(self.port)

    def _head(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def _children(self) -> list[int]:
        found = subprocess.run(["pgrep", "-P", str(self._head())], capture_output=True, text=True).stdout
        return [int(p) for p in found.split()]

    def freeze(self) -> None:
        """SIGSTOP the postmaster first (it forks no new backend), then every backend: connections stay
        open and nothing answers, as on a frozen VM."""
        os.kill(self._head(), signal.SIGSTOP)
        for pid in self._children():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._children():
            os.kill(pid, signal.SIGCONT)
        os.kill(self._head(), signal.SIGCONT)

    def close(self) -> None:
        try:
            self.thaw()
            self._ctl("-m", "immediate", "stop")
        except (OSError, subprocess.CalledProcessError, ValueError):
            pass
        shutil.rmtree(self.workdir, ignore_errors=True)


# The fixtures a test module imports by name (with its SERVICE_FIXTURES entry: redis, postgres).
@pytest.fixture(name="private_redis")
def private_redis_fixture(tmp_path: Path) -> Iterator[RestartableRedis]:
    """A private redis-server of the test's own, started; stopped at the end."""
    server = RestartableRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="private_pg")
def private_pg_fixture() -> Iterator[RestartablePostgres]:
    """A private PostgreSQL server of the test's own; removed at the end."""
    server = RestartablePostgres()
    try:
        yield server
    finally:
        server.close()
