"""A delivery's handling waits while webhook acknowledgements are in flight (``Acknowledging``), and
never longer than ``YIELD_S``; the service's acknowledgement holds it for its whole length."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from baton.forge.background import delivery_pool
from baton.forge.background.delivery_pool import Acknowledging, Worker
from baton.forge.reading.delivery import Delivery
from baton.settings import Settings
from baton.store import Store


@pytest.fixture
def handled(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """When each delivery's handling began (the handling itself replaced: only its start is timed)."""
    times: list[float] = []
    monkeypatch.setattr(Worker, "_handle", lambda _self, *_args: times.append(time.monotonic()))
    yield times


def _wait(times: list[float], n: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while len(times) < n and time.monotonic() < deadline:
        time.sleep(0.005)


def test_handling_waits_for_the_acknowledgements_in_flight(
    settings: Settings, store: Store, handled: list[float]
) -> None:
    acks = Acknowledging()
    worker = Worker(store, settings, threads=1, acks=acks)
    worker.start()
    try:
        with acks, acks:  # two in flight
            worker.submit("github", "d1", Delivery())
            time.sleep(0.15)
            assert handled == []  # not while they are answered
        released = time.monotonic()
        _wait(handled, 1)
        assert len(handled) == 1 and handled[0] - released < 0.1
    finally:
        worker.stop()


def test_handling_waits_no_longer_than_yield_s(
    settings: Settings, store: Store, handled: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery_pool, "YIELD_S", 0.2)
    acks = Acknowledging()
    worker = Worker(store, settings, threads=1, acks=acks)
    worker.start()
    try:
        with acks:  # a service that is never without an acknowledgement in flight
            submitted = time.monotonic()
            worker.submit("github", "d1", Delivery())
            _wait(handled, 1)
        assert len(handled) == 1 and 0.18 <= handled[0] - submitted < 1.0
    finally:
        worker.stop()


def test_without_acknowledgements_handling_starts_at_once(
    settings: Settings, store: Store, handled: list[float]
) -> None:
    worker = Worker(store, settings, threads=1, acks=Acknowledging())
    worker.start()
    try:
        submitted = time.monotonic()
        worker.submit("github", "d1", Delivery())
        _wait(handled, 1)
        assert len(handled) == 1 and handled[0] - submitted < 0.1
    finally:
        worker.stop()


def test_a_signed_acknowledgement_holds_the_handling_and_an_unsigned_one_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``acknowledge`` counts itself in flight from its signature's check to its answer, a refusal after
    it included; a POST without the right signature is refused without being counted (a flood of them
    must not delay the real deliveries' handling)."""
    import asyncio

    from starlette.datastructures import Headers
    from starlette.exceptions import HTTPException

    from baton.forge.data.model import ForgeKind
    from baton.forge.kinds import registry
    from baton.service import webhooks

    acks = Acknowledging()
    seen: list[int] = []
    state: Any = type("State", (), {"webhook_acks": acks})()

    def authentic(*_args: Any) -> bool:
        seen.append(acks.in_flight())
        return signatures.pop(0)

    def header(*_args: Any) -> str:  # past the signature: the next gate refuses (no delivery id)
        seen.append(acks.in_flight())
        raise HTTPException(400, "no delivery id")

    monkeypatch.setenv(webhooks.SECRET_ENV, "s")
    monkeypatch.setattr(webhooks, "authentic", authentic)
    monkeypatch.setattr(webhooks, "_header", header)
    signatures = [False, True]
    for _ in range(2):
        with pytest.raises(HTTPException):
            asyncio.run(
                webhooks.acknowledge(state, registry.reader(ForgeKind.GITHUB), Headers({}), b"{}", "c")
            )
    assert seen == [0, 0, 1] and acks.in_flight() == 0
