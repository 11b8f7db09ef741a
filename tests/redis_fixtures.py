"""A private, real ``redis-server`` for the tests that reach Redis (leases, cancel flags): started on
a free port by the module that uses it (never the shared 6379's data), without persistence, so that
killing it and starting it again empties it.

Use from a test module (the fixture is registered under its name without ruff's F811)::

    from tests.redis_fixtures import RedisServer, server_fixture  # noqa: F401
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_for

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_redis(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Wait until the redis-server ``proc`` answers PING on ``port`` (fails if it exited)."""

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return True
        except OSError:
            pass
        assert proc.poll() is None, f"redis-server exited with {proc.returncode}"
        return False

    wait_for(answers, timeout=30, what=f"redis-server to answer on port {port}")


class RedisServer:
    """A private redis-server without persistence: killing it and starting it again empties it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no"]
        proc = self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        wait_redis(self.port, proc)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart_empty(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(name="server", scope="module")
def server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    running = RedisServer(tmp_path_factory.mktemp("redis"))
    running.start()
    yield running
    running.stop()
