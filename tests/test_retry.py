"""The one retry policy (baton.retry): its delays, its cancellable sleep, and the loops built on it that
no other test times: the job's end written through a store outage (baton.fleet.execute)."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from baton import retry
from baton.errors import StoreError
from baton.fleet import execute


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
