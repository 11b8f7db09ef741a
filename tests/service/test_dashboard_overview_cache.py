"""The overview's disk card answers from the service's cached measurement: the first page starts it in
the background, waits half a second at most and says it is running (since when); once it is done the
page shows it with its time, and pages do not measure again until it is stale. The measurement is the
real one (``baton.housekeeping.disk.usage`` over a real home); the test only holds it back with a
gate, to see the page before it ends."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from baton.housekeeping import disk
from baton.service import diskcache
from baton.service.dashboard import overview
from baton.settings import Settings
from baton.store import Store
from tests.conftest import wait_for
from tests.service_fixtures import run_service


class Gated:
    """``usage`` that waits for :attr:`open` before measuring, counting its calls."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> disk.DiskReport:
        self.calls += 1
        assert self.open.wait(60), "the test never let the measurement run"
        return disk.usage(*args, **kwargs)


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gated]:
    gate = Gated()
    monkeypatch.setattr(diskcache, "usage", gate)
    yield gate
    gate.open.set()  # a measurement still waiting ends with the test


def test_the_overview_answers_from_the_cached_measurement_with_its_age(
    settings: Settings, store: Store, gated: Gated
) -> None:
    with run_service(settings) as service, httpx.Client(base_url=service.url, timeout=30) as http:
        signed = http.post("/login", data={"token": service.token("read"), "next": "/"})
        assert signed.status_code == 303

        t0 = time.monotonic()
        first = http.get("/")
        took = time.monotonic() - t0
        assert first.status_code == 200 and 'id="disk-measuring"' in first.text
        assert "still running (started" in first.text and "data-measured-at" not in first.text
        assert took < overview.FIRST_WAIT + 2.0  # it waited its half second, not for the walk
        assert gated.calls == 1  # the page started the measurement, in the background

        gated.open.set()
        wait_for(lambda: "data-measured-at" in http.get("/").text, timeout=30, what="the measurement")
        page = http.get("/")
        found = re.search(r'data-measured-at="([0-9.]+)"', page.text)
        assert found is not None
        measured_at = float(found.group(1))
        assert time.time() - 30 <= measured_at <= time.time()
        age = re.search(r'id="disk-age">Measured ([^<·]+)', page.text)
        assert age is not None and "ago" in age.group(1), page.text[:2000]
        assert "a new measurement is running" not in page.text

        for _ in range(3):  # fresh enough: the pages read it, nothing measures again
            again = http.get("/")
            assert f'data-measured-at="{found.group(1)}"' in again.text
        assert gated.calls == 1

        fresh = http.get("/", params={"fresh": 1})  # a person asks for a new one: it measures now
        assert gated.calls == 2
        newer = re.search(r'data-measured-at="([0-9.]+)"', fresh.text)
        assert newer is not None and float(newer.group(1)) > measured_at


def test_the_card_is_computed_once_per_measurement(settings: Settings, store: Store) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    report = disk.usage(store, settings)
    view = overview.cached_view(report)
    assert overview.cached_view(report) is view  # the same measurement: the same card
    other = disk.usage(store, settings)
    assert overview.cached_view(other) is not view and overview.cached_view(other)["report"] is other
