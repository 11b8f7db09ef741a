"""The warm server's door (``baton.cli.warmgate``): no connection costs the server a process before it
proved it read the key, and a client never gives anything to a process that could not prove the same.

Real processes: a real server of a real home, a flooder process opening 1,500 connections that say
nothing and then a storm of connections that say garbage, while a legitimate ``baton run`` of another
key is served warm in its usual time; the server's children are counted the whole time. And a
squatter on the server's name (what an agent may do: Landlock lets it bind, not connect) that
answers wrong or not at all: the client gives it only the key's first half and runs the command
itself.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from baton.cli import warm, warmserver
from baton.settings import Settings
from tests.test_cli_warm import (  # noqa: F401
    _no_server_left,
    first_turn,
    ran_in,
    request_with,
    run_json,
    servers,
    wait_for_server,
)

FLOOD = 1500


@pytest.fixture
def env(baton_env: dict[str, str]) -> dict[str, str]:
    """A ``baton`` process's environment with warm start on (the suite turns it off elsewhere)."""
    return {**os.environ, **baton_env, "BATON_WARM": "auto"}


FLOODER = """
import os, socket, sys, time
name, count = "\\0" + sys.argv[1], int(sys.argv[2])
rounds = 0
while True:
    held = []  # connections that never say a word, all open at once
    for _ in range(count):
        conn = socket.socket(socket.AF_UNIX)
        try:
            conn.connect(name)
            held.append(conn)
        except OSError:
            conn.close()
    for conn in held:
        conn.close()
    for _ in range(count):  # a connect storm, each saying garbage
        conn = socket.socket(socket.AF_UNIX)
        try:
            conn.connect(name)
            conn.sendall(os.urandom(64))
        except OSError:
            pass
        conn.close()
    rounds += 1
    print(rounds, flush=True)
"""


def tree_rss(server: psutil.Process) -> int:
    """Bytes resident in the server and its children."""
    total = 0
    try:
        procs = [server, *server.children()]
    except psutil.Error:
        return 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


class Watch(threading.Thread):
    """The most children and resident bytes the server had, sampled every 20 ms until stopped."""

    def __init__(self, server: psutil.Process) -> None:
        super().__init__(daemon=True)
        self.server, self.done = server, threading.Event()
        self.children, self.rss = 0, 0

    def run(self) -> None:
        while not self.done.is_set():
            try:
                live = [c for c in self.server.children() if c.status() != psutil.STATUS_ZOMBIE]
            except psutil.Error:
                live = []
            self.children = max(self.children, len(live))
            self.rss = max(self.rss, tree_rss(self.server))
            time.sleep(0.02)


def test_a_flood_of_connections_forks_nothing_and_a_real_run_is_still_served(
    src_repo: Path,
    env: dict[str, str],
    home: Path,
    settings: Settings,
) -> None:
    key = first_turn(src_repo, "flood-a", env, home)
    other = first_turn(src_repo, "flood-b", env, home)
    (server,) = servers(home)
    t0 = time.monotonic()
    pid, result, code = run_json([*other, "calibration"], env)
    usual = time.monotonic() - t0
    assert code == 0 and ran_in(settings, result) != pid
    before = tree_rss(server)
    watch = Watch(server)
    watch.start()
    flooder = subprocess.Popen(
        [sys.executable, "-c", FLOODER, warm.address(str(home))[1:], str(FLOOD)],  # without its NUL
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert flooder.stdout is not None
        assert flooder.stdout.readline().strip() == "1"  # one whole round: 1,500 bare, then 1,500 garbage
        t0 = time.monotonic()
        pid, result, code = run_json([*key, "in the flood"], env)  # the flood goes on meanwhile
        during = time.monotonic() - t0
        assert code == 0 and result["outcome"] == "succeeded", result
        assert ran_in(settings, result) != pid  # served warm, not run by the client itself
        assert during < 10, (during, usual)
        assert flooder.poll() is None  # still flooding while the run was served
    finally:
        flooder.kill()
        flooder.communicate()
        watch.done.set()
        watch.join()
    # the spare, the run it served (and the next spare while the last one finished): never one per connection
    assert watch.children <= 3, watch.children
    assert watch.rss - before < 150 * 2**20, (before, watch.rss)  # a served run's worth, not 2 GB
    assert server.is_running() and len(servers(home)) == 1


def test_clients_with_the_key_that_send_nothing_more_keep_a_bounded_number_of_children(
    env: dict[str, str],
    home: Path,
) -> None:
    warm.start_server(env)
    server = psutil.Process(wait_for_server(home))
    key = Path(warm.key_path(str(home))).read_bytes()
    quiet = []
    try:
        for _ in range(3 * warmserver.WAITING):
            conn = warm.connect(warm.address(str(home)))
            quiet.append(conn)
            assert warm._proven(conn, key)  # let in at the door; then not a byte of the request
        time.sleep(1)
        live = [c for c in server.children() if c.status() != psutil.STATUS_ZOMBIE]
        assert len(live) <= warmserver.WAITING + 1, live  # those waiting for their request, and a spare
    finally:
        for conn in quiet:
            conn.close()  # their children see the end of the stream and leave
    assert request_with(home, key) == b"A"  # the server goes on


def squat(name: str, answer: bytes | None) -> tuple[socket.socket, list[bytes], threading.Thread]:
    """A listener on the server's ``name`` (as an agent could bind it) that reads what a client sends,
    answers ``answer`` (None: nothing), and keeps what it read."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(name)
    listener.listen(8)
    heard: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(8)
            data, ancillary, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(64))
            if answer is not None:
                conn.sendall(answer)
            try:
                while chunk := conn.recv(1 << 16):
                    data += chunk
            except OSError:
                pass
            heard.append(data + b"FDS" * len(ancillary))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, heard, thread


def test_a_squatter_on_the_name_gets_half_a_key_and_the_client_runs_the_command_itself(
    src_repo: Path,
    env: dict[str, str],
    home: Path,
    settings: Settings,
) -> None:
    key_path = Path(warm.key_path(str(home)))
    key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path.write_bytes(os.urandom(warm.KEY_SIZE))  # a key left by an earlier server
    key_path.chmod(0o600)
    args = ["run", "-a", "fake", "-r", str(src_repo), "-t", "squatted"]
    for answer in (b"\0" * warm.HALF, None):  # a wrong second half; silence
        listener, heard, thread = squat(warm.address(str(home)), answer)
        try:
            t0 = time.monotonic()
            pid, result, code = run_json([*args, "a turn"], env)
            elapsed = time.monotonic() - t0
            thread.join(10)
        finally:
            listener.close()
        assert code == 0 and ran_in(settings, result) == pid  # run by the client itself
        assert heard == [key_path.read_bytes()[: warm.HALF]]  # no request, no descriptors, no environment
        assert elapsed < warm.ANSWER + 10, elapsed  # silence is waited out, not forever
    assert servers(home) == []  # a client that found someone on the name starts no server
