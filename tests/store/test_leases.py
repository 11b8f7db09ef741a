"""Leases over a real SQLite store: exclusive, waitable, taken over when expired or when the holder died."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from baton.errors import Busy
from baton.settings import Settings
from baton.store import SQLStore
from baton.store.base import Lease
from baton.store.leases import HOST, LeaseBackend, LeaseHolder, held, lease_backend, pid_alive
from tests.conftest import wait_for

KEY = "fake/github.com/acme/api/issue-1"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLStore]:
    opened = SQLStore(f"sqlite:///{tmp_path / 'baton.db'}")
    yield opened
    opened.close()


def _foreign_lease(store: SQLStore, pid: int, host: str = HOST, expires_in: float = 3600.0) -> None:
    """A lease held by another runner process (``pid`` on ``host``)."""
    lease = Lease(KEY, f"{host}:{pid}:other", host, pid, 0.0, 0.0)
    assert store.try_lease(lease, expires_in, lambda _existing, _now: False) is None


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(proc.stdout)
    assert not pid_alive(pid)
    return pid


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(_dead_pid())


def test_acquire_and_release(store: SQLStore) -> None:
    holder = LeaseHolder(store, KEY, ttl=30)
    holder.acquire(wait=0)
    assert holder.held
    assert holder.renew()
    holder.release()
    assert not holder.held
    assert not holder.renew()  # nothing to renew once released
    other = LeaseHolder(store, KEY, ttl=30)
    other.acquire(wait=0)
    assert other.held


def test_second_holder_is_busy_and_told_who_holds_it(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = LeaseHolder(store, KEY, ttl=30)
    first.acquire(wait=0)
    second = LeaseHolder(store, KEY, ttl=30)
    tries: list[str] = []
    real_try = store.try_lease

    def counted(lease: Lease, ttl: float, can_take: Callable[[Lease, float], bool]) -> Lease | None:
        tries.append(lease.holder)
        return real_try(lease, ttl, can_take)

    monkeypatch.setattr(store, "try_lease", counted)
    with pytest.raises(Busy) as info:
        second.acquire(wait=0)
    assert tries == [second.holder]  # one try, no waiting: wait=0 gives up at once
    message = str(info.value)
    assert KEY in message
    assert f"host {HOST}" in message
    assert f"pid {os.getpid()}" in message
    assert "--wait" in message
    assert not second.held
    assert info.value.exit_code == 3


def test_busy_after_waiting_the_given_time(store: SQLStore) -> None:
    LeaseHolder(store, KEY, ttl=30).acquire(wait=0)
    started = time.monotonic()
    with pytest.raises(Busy):
        LeaseHolder(store, KEY, ttl=30).acquire(wait=0.3)
    # the given wait, then Busy: not the lease's 30 s TTL (the upper bound has a busy machine's margin)
    assert 0.3 <= time.monotonic() - started < 10


def test_waiting_acquire_succeeds_once_released(store: SQLStore) -> None:
    first = LeaseHolder(store, KEY, ttl=30)
    first.acquire(wait=0)
    timer = threading.Timer(0.3, first.release)
    timer.start()
    try:
        second = LeaseHolder(store, KEY, ttl=30)
        started = time.monotonic()
        second.acquire(wait=60)
        assert second.held
        # taken once released, not at the end of the 60 s wait (with a busy machine's margin)
        assert 0.25 <= time.monotonic() - started < 30
    finally:
        timer.join()
    assert not first.renew()


def test_expired_lease_is_taken_over(store: SQLStore, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [time.time()]  # the store's clock, moved by hand (test_store_fences expires one for real)
    monkeypatch.setattr(store, "db_now", lambda _conn: clock[0])
    stale = LeaseHolder(store, KEY, ttl=0.05)
    stale.acquire(wait=0)
    clock[0] += 0.1  # the lease expired
    fresh = LeaseHolder(store, KEY, ttl=30)
    fresh.acquire(wait=0)
    assert fresh.held
    assert not stale.renew()  # the old holder learns it lost the key
    stale.release()  # and its release does not free the new holder's lease
    with pytest.raises(Busy):
        LeaseHolder(store, KEY, ttl=30).acquire(wait=0)


def test_renew_keeps_a_short_lease_alive(store: SQLStore, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [time.time()]  # the store's clock, moved by hand: no sleeping, and no busy-machine margins
    monkeypatch.setattr(store, "db_now", lambda _conn: clock[0])
    holder = LeaseHolder(store, KEY, ttl=1.0)
    holder.acquire(wait=0)
    for _ in range(3):  # 1.5 s in all: past the first TTL
        clock[0] += 0.5
        assert holder.renew()
    with pytest.raises(Busy):
        LeaseHolder(store, KEY, ttl=30).acquire(wait=0)


def test_lease_of_a_dead_process_on_this_host_is_taken_over_before_expiry(store: SQLStore) -> None:
    _foreign_lease(store, _dead_pid())
    holder = LeaseHolder(store, KEY, ttl=30)
    holder.acquire(wait=0)
    assert holder.held


def test_lease_of_a_live_process_on_this_host_is_respected(store: SQLStore) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        _foreign_lease(store, proc.pid)
        with pytest.raises(Busy, match=f"pid {proc.pid}"):
            LeaseHolder(store, KEY, ttl=30).acquire(wait=0)
    finally:
        proc.kill()
        proc.wait()


def test_lease_of_a_pid_on_another_host_waits_for_expiry(store: SQLStore) -> None:
    # the pid means nothing here: another machine's runner may be alive
    _foreign_lease(store, _dead_pid(), host="elsewhere.invalid")
    with pytest.raises(Busy, match=r"host elsewhere\.invalid"):
        LeaseHolder(store, KEY, ttl=30).acquire(wait=0)


def test_leases_of_different_keys_are_independent(store: SQLStore) -> None:
    one = LeaseHolder(store, KEY, ttl=30)
    two = LeaseHolder(store, KEY + "-other", ttl=30)
    one.acquire(wait=0)
    two.acquire(wait=0)
    assert one.held and two.held


class _RecordingBackend:
    """A :class:`LeaseBackend` that grants everything and records the calls: LeaseHolder must go
    through its backend, not the store, when it is given one."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def try_lease(self, lease: Lease, ttl: float, can_take: Callable[[Lease, float], bool]) -> Lease | None:
        self.calls.append("grant")
        lease.fence = 41
        return None

    def renew_lease(self, key: str, holder: str, ttl: float) -> bool:
        self.calls.append("renew")
        return True

    def release_lease(self, key: str, holder: str) -> None:
        self.calls.append("release")


def test_holder_uses_its_backend_and_the_store_is_the_default(store: SQLStore, tmp_path: Path) -> None:
    backend = _RecordingBackend()
    holder = LeaseHolder(store, KEY, ttl=30, backend=backend)
    with held(holder, wait=0, every=0.05) as lost:
        wait_for(lambda: "renew" in backend.calls, timeout=30, what="a renewal through the backend")
        assert not lost.is_set()
    assert holder.fence == 41
    assert backend.calls[0] == "grant" and backend.calls[-1] == "release" and "renew" in backend.calls
    LeaseHolder(store, KEY, ttl=30).acquire(wait=0)  # the store never saw the backend's grant
    sql: LeaseBackend = store  # the SQL store is a LeaseBackend
    assert lease_backend(Settings(home=tmp_path), store) is sql


def test_a_zombie_is_not_alive() -> None:
    from baton.store.leases import pid_alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])

    def zombie() -> bool:  # exited, not reaped yet
        return bool(psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE)

    wait_for(zombie, timeout=30, interval=0.01, what="the child to become a zombie")
    try:
        assert not pid_alive(child.pid)
        assert pid_alive(os.getpid())
    finally:
        child.wait()
    assert not pid_alive(child.pid)


def test_a_lost_lease_sets_the_callers_event_itself(store: SQLStore) -> None:
    """``held(on_loss=...)``: the renewal that finds the lease taken sets the caller's event as well as
    the yielded one (no relay in between); a lease kept to the end sets neither."""
    mine, stop = LeaseHolder(store, KEY, ttl=30), threading.Event()
    with held(mine, 0, every=0.05, on_loss=stop) as lost:
        time.sleep(0.2)
        assert not stop.is_set() and not lost.is_set()
        thief = Lease(KEY, "thief", "elsewhere.invalid", 1, 0.0, 0.0)
        assert store.try_lease(thief, 30, lambda _existing, _now: True) is None  # taken over
        assert stop.wait(2.0)
        assert lost.is_set()
    kept = threading.Event()
    with held(LeaseHolder(store, KEY + "-kept", ttl=30), 0, every=0.05, on_loss=kept) as lost:
        time.sleep(0.2)
    assert not kept.is_set() and not lost.is_set()
