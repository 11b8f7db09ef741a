"""Duties (:mod:`baton.store.duties`) on SQLite and PostgreSQL: one holder at a time however many ask,
the same holder round after round (its heartbeat keeps it between rounds), another takes it when the
holder gives it up or stops renewing (after the lease's TTL), with a larger fencing token, and the one
that lost it is told at its next round."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest

from baton.settings import Settings
from baton.store import Store, open_store
from baton.store.duties import Duty
from tests.conftest import wait_for


@pytest.fixture(name="shared")
def shared_fixture(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def duties(settings: Settings, store: Store, n: int, ttl: float = 30.0) -> list[Duty]:
    quick = dataclasses.replace(settings, lease_ttl=ttl)
    return [Duty(quick, "forge", store) for _ in range(n)]


def test_one_holder_at_a_time_round_after_round(settings: Settings, shared: Store) -> None:
    three = duties(settings, shared, 3)
    try:
        for _ in range(5):
            assert [d.mine() for d in three] == [True, False, False]
        assert three[0].fence > 0 and three[1].fence == three[2].fence == 0
    finally:
        for duty in three:
            duty.release()


def test_a_released_duty_is_taken_with_a_larger_fence(settings: Settings, shared: Store) -> None:
    first, second = duties(settings, shared, 2)
    assert first.mine() and not second.mine()
    fence = first.fence
    first.release()
    assert second.mine() and second.fence > fence
    second.release()


def test_a_holder_that_stops_renewing_loses_the_duty_after_its_ttl(settings: Settings, shared: Store) -> None:
    first, second = duties(settings, shared, 2, ttl=0.6)
    assert first.mine()
    first._stop.set()  # its heartbeat stops, as a frozen process's would (it does not release)
    assert first._beat is not None
    first._beat.join(timeout=5)
    assert not second.mine()  # still within its TTL
    time.sleep(0.8)
    assert second.mine()  # expired: taken over
    assert not first.mine()  # the old holder is told at its next round
    second.release()


def test_the_heartbeat_keeps_the_duty_between_rare_rounds(settings: Settings, shared: Store) -> None:
    """No round for longer than the TTL, and the duty is still the first holder's: its heartbeat renewed
    it. Asked just after a renewal made past the grant's own expiry (a fixed sleep failed twice in full
    runs on a loaded 2-core machine, where three beats in a row came late)."""
    first, second = duties(settings, shared, 2, ttl=2.0)
    assert first.mine()
    expiry = first._renewed + 2.0  # the grant's, had nothing renewed it
    # _renewed: set by the heartbeat thread after each renewal
    wait_for(lambda: first._renewed > expiry, 60, 0.05, "a renewal past the grant's expiry")
    assert not second.mine() and first.mine()
    first.release()
    second.release()


def test_a_duty_with_no_store_of_its_own_opens_and_closes_one(settings: Settings, shared: Store) -> None:
    del shared
    duty = Duty(settings, "sessions")
    assert duty.mine()
    duty.release()
    after = Duty(settings, "sessions")
    assert duty._own is not None and after.mine()
    after.release()


def test_a_holder_whose_duty_moved_may_not_write_mid_round(settings: Settings, shared: Store) -> None:
    """:meth:`Duty.still`, asked before each write of a round: false once another holds the duty, and
    false for a holder frozen past its TTL even before its heartbeat could tell it."""
    first, second = duties(settings, shared, 2, ttl=0.6)
    assert not first.still() and first.mine() and first.still()
    first._stop.set()  # frozen: no heartbeat, no round
    assert first._beat is not None
    first._beat.join(timeout=5)
    time.sleep(0.8)
    assert not first.still()  # past its TTL: it cannot know it still holds it
    assert second.mine() and second.still() and second.fence > first.fence
    assert not first.mine() and not first.still()
    second.release()
