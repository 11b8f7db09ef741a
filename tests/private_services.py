"""Throw-away PostgreSQL and RabbitMQ servers for a machine where the configured ones do not answer.

The suite uses the machine's services when they answer (``BATON_TEST_PG_URL``, ``BATON_TEST_AMQP_URL``;
``make services`` starts them); otherwise each test process starts its own, from the server packages
(Debian's ``postgresql`` and ``rabbitmq-server``), on free ports, with its data in a temporary directory,
and stops it at the end. Redis needs nothing here: the tests already start private ``redis-server``s.
A missing server package is a failure naming the package, never a skip.

PostgreSQL refuses to run as root: as root, ``initdb`` and ``pg_ctl`` run as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # the real script; /usr/sbin's su's to rabbitmq
RABBITMQ_CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


def answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), 1).close()
        return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a server started after this returns)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(port: int, proc: subprocess.Popen[bytes] | None, what: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not answers("127.0.0.1", port):
        exited = proc is not None and proc.poll() is not None
        if exited or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            pytest.fail(f"a private {what} did not start on port {port}: {tail}", pytrace=False)
        time.sleep(0.2)


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail(
            "PostgreSQL is not answering and its server is not installed (no initdb): "
            "apt-get install postgresql, or set BATON_TEST_PG_URL",
            pytrace=False,
        )
    return Path(found[-1]).parent


def _as_postgres(argv: list[str]) -> list[str]:
    """``argv`` as the ``postgres`` user when this is root (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return argv
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("PostgreSQL refuses to run as root and there is no `postgres` user", pytrace=False)
    return ["runuser", "-u", "postgres", "--", *argv]


@contextmanager
def private_postgres() -> Iterator[str]:
    """A PostgreSQL server of its own (trust auth, database ``test``); its admin URL. Its directory is
    in the system's temp dir, not pytest's (which only root may enter), and removed at the end."""
    bin_dir, port = _pg_bin(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="baton-test-pg-"))
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
    data, log = workdir / "data", workdir / "postgres.log"
    initdb = [
        str(bin_dir / "initdb"),
        "-D",
        str(data),
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-sync",
    ]
    subprocess.run(_as_postgres(initdb), check=True, capture_output=True, timeout=120)
    options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log)]
    subprocess.run(
        _as_postgres([*ctl, "-o", options, "-w", "start"]), check=True, capture_output=True, timeout=120
    )
    try:
        _wait(port, None, "PostgreSQL", log)
        createdb = [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "test"]
        subprocess.run(_as_postgres(createdb), check=True, capture_output=True, timeout=60)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/test"
    finally:
        subprocess.run(_as_postgres([*ctl, "-m", "immediate", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


def rabbitmq_env(workdir: Path, node: str, port: int) -> dict[str, str]:
    """The environment of a RabbitMQ node of its own in ``workdir``: its name, AMQP ``port``, a free
    distribution port, its data and logs there, no plugins (``workdir`` is made)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "enabled_plugins").write_text("[].\n")
    return {
        **os.environ,
        "HOME": str(workdir),  # its own Erlang cookie
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(free_port()),
        "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(workdir / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(workdir / "pid"),
        "RABBITMQ_CONFIG_FILE": str(workdir / "none"),
    }


@contextmanager
def private_rabbitmq(workdir: Path) -> Iterator[str]:
    """A RabbitMQ node of its own (its own name, ports and data, no plugins); its AMQP URL (guest)."""
    if not Path(RABBITMQ_SERVER).exists():
        pytest.fail(
            "RabbitMQ is not answering and its server is not installed: apt-get install rabbitmq-server, "
            "or set BATON_TEST_AMQP_URL",
            pytrace=False,
        )
    port = free_port()
    node = f"baton-test-{port}@localhost"
    env = rabbitmq_env(workdir, node, port)
    log = workdir / "out.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([RABBITMQ_SERVER], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        _wait(port, proc, "RabbitMQ", log, timeout=90)
        yield f"amqp://guest:guest@127.0.0.1:{port}//"
    finally:
        subprocess.run([RABBITMQ_CTL, "-n", node, "stop"], env=env, capture_output=True, timeout=60)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
