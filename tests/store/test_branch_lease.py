"""Branch leases (one writer per branch) on both lease backends, the SQL store and a private, real
``redis-server``: the name is a hash of the repository and the branch whatever the branch's bytes, a
second key is refused naming the key and run that write the branch, a grant left by the same key is
taken at once while another key's waits for its expiry, and a wait ends when the writer lets go."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.errors import BranchBusy, Busy
from baton.store import SQLStore
from baton.store.base import Lease, LeaseBackend
from baton.store.branchlease import BranchLease, branch_lease_name, writer_of
from baton.store.leases import HOST
from baton.store.redis import open_redis
from baton.store.redis_leases import RedisLeases
from tests.redis_fixtures import RedisServer, server_fixture  # noqa: F401 (the `server` fixture)

SERVICE_FIXTURES = {"server": "redis"}  # marks the tests that reach it (conftest)
REPO = "github.com/acme/api"
HOSTILE = "x|y/$(touch${IFS}pwned);'\"`id`\u202e\u00e9{a}%s&<>!"  # a valid branch name, every byte hostile


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLStore]:
    opened = SQLStore(f"sqlite:///{tmp_path / 'baton.db'}")
    yield opened
    opened.close()


@pytest.fixture(params=["sql", "redis"])
def backend(request: pytest.FixtureRequest, store: SQLStore) -> LeaseBackend:
    """Where grants live: the store itself, or Redis (its tokens recorded in the store)."""
    if request.param == "sql":
        return store
    server: RedisServer = request.getfixturevalue("server")
    return RedisLeases(open_redis(server.url, store), store)


def lease_of(
    store: SQLStore, backend: LeaseBackend, writer: str, run_id: str, branch: str = "feat", ttl: float = 30
) -> BranchLease:
    name = branch_lease_name(REPO, branch)
    return BranchLease(
        store, name, ttl, backend=backend, repo=REPO, branch=branch, writer=writer, run_id=run_id
    )


def foreign(backend: LeaseBackend, writer: str, host: str, branch: str = "feat") -> None:
    """A grant of the branch by a live runner of ``writer`` on another machine, for an hour."""
    holder = f"{host}:4242:abcd|r-foreign|{writer}"
    lease = Lease(branch_lease_name(REPO, branch), holder, host, 4242, 0.0, 0.0)
    assert backend.try_lease(lease, 3600, lambda _existing, _now: False) is None


def test_the_name_is_a_hash_of_repo_and_branch() -> None:
    name = branch_lease_name(REPO, HOSTILE)
    assert re.fullmatch(r"branch:[0-9a-f]{40}", name)
    assert name == branch_lease_name(REPO, HOSTILE)  # stable: every machine finds the same lease
    others = {branch_lease_name(REPO, "feat"), branch_lease_name("github.com/acme/web", HOSTILE)}
    assert name not in others and len(others) == 2
    # the separator cannot make two pairs one: ("a", "b\0c") and ("a\0b", "c")
    assert branch_lease_name("a", "b\0c") != branch_lease_name("a\0b", "c")


def test_a_second_key_is_refused_naming_the_key_and_run_that_write_the_branch(
    store: SQLStore, backend: LeaseBackend
) -> None:
    first = lease_of(store, backend, "fake/github.com/acme/api/t1", "r-one", branch=HOSTILE)
    first.acquire(0)
    second = lease_of(store, backend, "fake/github.com/acme/api/t2", "r-two", branch=HOSTILE)
    with pytest.raises(BranchBusy) as info:
        second.acquire(0)
    said = str(info.value)
    assert said.startswith(
        f"branch {HOSTILE!r} of {REPO} is being written by key fake/github.com/acme/api/t1 (run r-one, "
        f"host {HOST}, pid {os.getpid()}, since "
    )
    assert "\u202e" not in said and "\\u202e" in said  # the branch is quoted, its controls escaped
    assert isinstance(info.value, Busy)  # the executors defer or wait on it as on a busy key
    other_branch = lease_of(store, backend, "fake/github.com/acme/api/t2", "r-two", branch="feat")
    other_branch.acquire(0)  # branches are independent
    first.release()
    second.acquire(0)
    assert second.held and other_branch.held


def test_a_wait_ends_when_the_writer_lets_go(store: SQLStore, backend: LeaseBackend) -> None:
    first = lease_of(store, backend, "fake/r/t1", "r-one")
    first.acquire(0)
    threading.Timer(0.5, first.release).start()
    second = lease_of(store, backend, "codex/r/t2", "r-two")
    started = time.monotonic()
    second.acquire(wait=30)
    assert second.held and 0.4 <= time.monotonic() - started < 15  # not the 30 s (a busy machine's margin)


def test_a_grant_left_by_the_same_key_is_taken_at_once_another_keys_is_not(
    store: SQLStore, backend: LeaseBackend
) -> None:
    """The caller holds the key's lease: a branch grant of that key on another machine belongs to a run
    of it that is gone (its key's lease was taken over). Another key's grant there is respected."""
    foreign(backend, "fake/r/t1", "other-machine")
    again = lease_of(store, backend, "fake/r/t1", "r-again")
    again.acquire(0)
    assert again.held
    again.release()
    foreign(backend, "fake/r/t9", "other-machine")
    with pytest.raises(BranchBusy, match=r"by key fake/r/t9 \(run r-foreign, host other-machine, pid 4242"):
        lease_of(store, backend, "fake/r/t1", "r-refused").acquire(0)


def test_the_holder_carries_run_and_key_and_a_plain_holder_is_another_run(
    store: SQLStore, backend: LeaseBackend
) -> None:
    lease = lease_of(store, backend, "fake/r/a|b", "r-1")  # a key with the separator in it still reads back
    assert writer_of(Lease("k", lease.holder, HOST, 1, 0.0, 0.0)) == ("r-1", "fake/r/a|b")
    plain = Lease(branch_lease_name(REPO, "feat"), "elsewhere:7:zz", "elsewhere", 7, 0.0, 0.0)
    assert writer_of(plain) is None
    assert backend.try_lease(plain, 3600, lambda _e, _n: False) is None
    with pytest.raises(BranchBusy, match=r"being written by another run \(host elsewhere, pid 7"):
        lease.acquire(0)
