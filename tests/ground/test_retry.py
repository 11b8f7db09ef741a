"""The one retry policy (baton.retry): its delays, its cancellable sleep, and the loops built on it that
no other test times: the job's end written through a store outage (baton.fleet.execute)."""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from baton import retry
from baton.agents import gemini_files
from baton.errors import Busy, GitError, StoreError
from baton.fleet import execute
from baton.forge.data import sql
from baton.forge.data.records import Binding, BindingStatus
from baton.forge.data.tables import forge_store
from baton.sandbox import cgroups
from baton.store import open_store
from baton.workspace import badrefs
from baton.workspace.locks import file_lock


def test_growing_delays_double_from_the_first_up_to_the_cap() -> None:
    seen: list[float] = []
    with pytest.raises(ValueError):
        retry.Retrying(
            retry=retry.retry_if_exception_type(ValueError),
            wait=retry.growing(0.2, 5.0),
            stop=retry.stop_after_attempt(8),
            sleep=seen.append,
            reraise=True,
        )(_fails)
    assert seen == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])


def test_growing_by_another_factor() -> None:
    seen: list[float] = []
    retry.Retrying(
        retry=retry.retry_if_result(lambda value: value is None),
        wait=retry.growing(0.05, 0.5, factor=1.5),
        stop=retry.stop_after_attempt(8),
        sleep=seen.append,
        retry_error_callback=lambda _state: "gave up",
    )(lambda: None)
    assert seen == pytest.approx([0.05, 0.075, 0.1125, 0.16875, 0.253125, 0.3796875, 0.5])


def test_a_cancel_wakes_the_sleep_and_stops_the_loop() -> None:
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    calls: list[int] = []
    started = time.monotonic()
    with pytest.raises(retry.Stopped):
        retry.Retrying(
            retry=retry.retry_if_result(lambda value: True),
            wait=retry.growing(30.0),
            stop=retry.stop_never,
            sleep=retry.cancellable(cancel),
        )(lambda: calls.append(1))
    assert calls == [1] and time.monotonic() - started < 10


def test_the_job_end_is_written_once_the_store_is_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    failures = iter([StoreError("down"), StoreError("still down")])

    def step() -> str:
        for failure in failures:
            raise failure
        return "recorded"

    log = logging.getLogger("test.retry")
    with caplog.at_level(logging.WARNING, logger="test.retry"):
        assert execute._through_outage("job-1", log, step) == "recorded"
    assert slept == pytest.approx([0.2, 0.4])
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "job job-1: its end is not recorded yet (down); trying again in 0.2 s",
        "job job-1: its end is not recorded yet (still down); trying again in 0.4 s",
    ]


def test_an_outage_longer_than_the_drain_leaves_the_store_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execute, "DRAIN", 0.5)  # no time passes in the stubbed sleeps: 0.8 passes it
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    with pytest.raises(StoreError, match="down"):
        execute._through_outage("job-2", logging.getLogger("test.retry"), _store_down)
    assert slept == pytest.approx([0.2, 0.4])


def test_an_error_not_of_the_store_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    with pytest.raises(ValueError):
        execute._through_outage("job-3", logging.getLogger("test.retry"), _fails)
    assert slept == []


def _fails() -> None:
    raise ValueError("no")


def _store_down() -> None:
    raise StoreError("down")


def test_a_file_lock_held_elsewhere_is_busy_after_its_timeout_and_taken_once_free(tmp_path: Path) -> None:
    with file_lock(tmp_path, "repo cache"):
        started = time.monotonic()
        # another open file description of the same lock file: flock refuses it as another process's
        with pytest.raises(Busy, match="repo cache is locked"), file_lock(tmp_path, "repo cache", 0.3):
            pass
        assert 0.3 <= time.monotonic() - started < 5
    with file_lock(tmp_path, "repo cache", 0):  # released: taken at the first try
        assert time.monotonic() - started < 5


def test_gemini_s_registry_lock_waits_for_its_holder_and_takes_a_stale_one(tmp_path: Path) -> None:
    registry = tmp_path / "projects.json"
    lock = Path(str(registry) + ".lock")
    lock.mkdir()  # a Gemini CLI holds it, then lets go
    threading.Timer(0.4, lock.rmdir).start()
    started = time.monotonic()
    with gemini_files.registry_lock(registry):
        assert lock.is_dir() and time.monotonic() - started >= 0.4
    assert not lock.exists()
    lock.mkdir()  # its holder died long ago: older than proper-lockfile's stale time
    old = time.time() - 2 * gemini_files.LOCK_STALE_S
    os.utime(lock, (old, old))
    started = time.monotonic()
    with gemini_files.registry_lock(registry):
        assert time.monotonic() - started < 1


class Group:
    """A control group's directory whose rmdir answers as the kernel did."""

    def __init__(self, *answers: OSError | None) -> None:
        self.answers, self.tries = list(answers), 0

    def rmdir(self) -> None:
        self.tries += 1
        answer = self.answers.pop(0) if self.answers else OSError(errno.EBUSY, "busy")
        if answer is not None:
            raise answer


def test_a_busy_control_group_is_removed_when_the_kernel_lets_go_and_left_after_50_tries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    busy = OSError(errno.EBUSY, "busy")
    freed, stuck, gone = Group(busy, busy, None), Group(), Group(FileNotFoundError())
    cgroups.remove({"memory": freed, "pids": stuck, "cpu": gone})  # type: ignore[dict-item]
    assert (freed.tries, stuck.tries, gone.tries) == (3, 50, 1)
    assert slept == [0.002] * (2 + 49)


def test_a_fetch_is_tried_again_after_each_bad_ref_healed_up_to_eight(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(badrefs, "heal", lambda _cache, ref: not ref.endswith("kept"))
    failures = [GitError("fatal: bad object refs/heads/a"), GitError("fatal: bad object refs/heads/b")]
    fetches: list[int] = []

    def fetch() -> None:
        fetches.append(1)
        if failures:
            raise failures.pop(0)

    assert badrefs.fetch_healing(tmp_path, fetch) == ["refs/heads/a", "refs/heads/b"]
    assert len(fetches) == 3
    with pytest.raises(GitError, match="refs/heads/kept"):  # not healed: the fetch's own error
        badrefs.fetch_healing(tmp_path, _bad("refs/heads/kept"))
    with pytest.raises(GitError, match="network"):  # any other failure: not tried again
        badrefs.fetch_healing(tmp_path, _fails_with(GitError("fatal: network unreachable")))
    refs = iter(range(100))
    with pytest.raises(GitError, match="refs/heads/r8"):  # the ninth bad ref: TRIES healed already
        badrefs.fetch_healing(tmp_path, lambda: _bad(f"refs/heads/r{next(refs)}")())


def _bad(ref: str) -> Callable[[], None]:
    return _fails_with(GitError(f"fatal: bad object {ref}"))


def _fails_with(exc: Exception) -> Callable[[], None]:
    def fetch() -> None:
        raise exc

    return fetch


def test_a_bind_whose_blocking_row_keeps_vanishing_is_tried_three_times_then_a_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'baton.db'}")
    first = Binding(
        forge="github",
        repo="acme/api",
        number=42,
        agent="claude",
        repo_slug="acme-api",
        thread="issue-42",
        repo_url="https://forge.example/acme/api.git",
        status=BindingStatus.ACTIVE,
        created_at=1.0,
        updated_at=1.0,
    )
    assert forge_store(store).bind(first)[1]
    reads: list[int] = []

    def never_found(*_args: object) -> None:  # the row that blocks the insert is gone when read
        reads.append(1)

    monkeypatch.setattr(sql, "_binding_row", never_found)
    again = dataclasses.replace(first, thread="another-thread")  # blocked by the conversation's key
    with pytest.raises(StoreError, match="its rows kept changing"):
        forge_store(store).bind(again)
    assert len(reads) == 2 * 3  # two reads a try, three tries
    store.close()
