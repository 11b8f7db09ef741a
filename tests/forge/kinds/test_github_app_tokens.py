"""The installation tokens' cache (baton.forge.kinds.github.tokens) on a fake clock: a token is reused while
good, renewed in the background when close to its expiry (the caller keeps the good one, never waiting),
minted on the spot only when none is good enough, once for every caller waiting; a refused token is dropped;
the keeper renews what was read recently and lets the rest lapse; a fork starts empty."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from baton.forge.kinds.github import tokens
from baton.forge.kinds.github.tokens import Minted, TokenCache, renew_ahead, usable_floor


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Mint:
    """Mints ``t1``, ``t2``, ... living ``lifetime`` seconds on the clock; ``fail`` raises instead."""

    def __init__(self, clock: Clock, lifetime: float = 3600.0) -> None:
        self.clock, self.lifetime, self.count, self.fail = clock, lifetime, 0, False
        self.asked: list[object] = []

    def __call__(self, key: object) -> Minted:
        self.asked.append(key)
        if self.fail:
            raise RuntimeError("GitHub answered 502")
        self.count += 1
        return Minted(f"t{self.count}", self.clock() + self.lifetime, self.lifetime, {"key": key})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def spawned() -> list[Callable[[], None]]:
    return []


def cache(mint: Mint, clock: Clock, spawned: list[Callable[[], None]]) -> TokenCache[int]:
    return TokenCache(mint, clock=clock, spawn=spawned.append, keeper=False)


def test_a_token_is_minted_once_and_reused_while_good(
    clock: Clock, spawned: list[Callable[[], None]]
) -> None:
    mint = Mint(clock)
    found = cache(mint, clock, spawned)
    assert found.get(7).token == "t1"
    clock.now += 3000  # 10 minutes left of the hour: still far from the 5-minute renewal
    assert found.get(7).token == "t1"
    assert mint.count == 1 and found.waits == 1 and not spawned
    assert found.get(8).token == "t2"  # another installation, its own token


def test_close_to_expiry_the_good_token_is_returned_and_renewed_in_the_background(
    clock: Clock, spawned: list[Callable[[], None]]
) -> None:
    mint = Mint(clock)
    found = cache(mint, clock, spawned)
    found.get(7)
    clock.now += 3600 - 299  # under 5 minutes left
    assert found.get(7).token == "t1"  # no wait: the token at hand is still good
    assert len(spawned) == 1 and mint.count == 1 and found.waits == 1
    assert found.get(7).token == "t1" and len(spawned) == 1  # one renewal in flight, not one per read
    spawned.pop()()  # the background renewal runs
    assert found.get(7).token == "t2" and found.waits == 1


def test_a_token_within_its_floor_is_not_handed_out(clock: Clock, spawned: list[Callable[[], None]]) -> None:
    mint = Mint(clock, lifetime=3.0)
    found = cache(mint, clock, spawned)
    found.get(1)
    assert renew_ahead(3.0) == 1.0 and usable_floor(3.0) == 0.5  # proportional for short-lived tokens
    clock.now += 2.6  # 0.4 s left: under the floor
    assert found.get(1).token == "t2" and found.waits == 2 and not spawned


def test_githubs_hour_is_renewed_five_minutes_ahead_and_never_used_in_its_last_minute() -> None:
    assert renew_ahead(3600) == 300 and usable_floor(3600) == 60


def test_callers_waiting_for_a_mint_share_it(clock: Clock) -> None:
    release, started = threading.Event(), threading.Event()
    count = [0]

    def slow(key: int) -> Minted:
        count[0] += 1
        started.set()
        release.wait(10)
        return Minted("shared", clock() + 3600, 3600)

    found: TokenCache[int] = TokenCache(slow, clock=clock, keeper=False)
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(found.get(1).token)) for _ in range(5)]
    for thread in threads:
        thread.start()
    assert started.wait(10)
    release.set()
    for thread in threads:
        thread.join(10)
    assert got == ["shared"] * 5 and count[0] == 1


def test_a_refused_token_is_dropped_and_the_next_read_mints(
    clock: Clock, spawned: list[Callable[[], None]]
) -> None:
    mint = Mint(clock)
    found = cache(mint, clock, spawned)
    found.get(1)
    assert found.refused(1, "t1") is True
    assert found.get(1).token == "t2"
    assert found.refused(1, "t1") is True  # a retired token: another request already renewed it
    assert found.refused(1, "never-minted") is False and found.refused(9, "t2") is False
    assert found.owner("t2") == 1 and found.owner("t1") == 1 and found.owner("x") is None


def test_a_background_renewal_that_fails_keeps_the_good_token(
    clock: Clock, spawned: list[Callable[[], None]], caplog: pytest.LogCaptureFixture
) -> None:
    mint = Mint(clock)
    found = cache(mint, clock, spawned)
    found.get(1)
    clock.now += 3400
    mint.fail = True
    assert found.get(1).token == "t1"
    spawned.pop()()
    assert "renewing the token of 1 ahead of its expiry failed: GitHub answered 502" in caplog.text
    assert found.get(1).token == "t1"  # still good; another renewal starts, and fails too
    spawned.pop()()
    clock.now += 180  # within its last minute: minted on the spot, and the failure is the caller's
    with pytest.raises(RuntimeError, match="502"):
        found.get(1)
    mint.fail = False
    assert found.get(1).token == "t2"


def test_the_keeper_renews_what_was_read_and_lets_the_rest_lapse(
    clock: Clock, spawned: list[Callable[[], None]]
) -> None:
    mint = Mint(clock, lifetime=60.0)
    found = cache(mint, clock, spawned)
    found.get(1)
    found.get(2)
    assert found.renew_due() == pytest.approx(40.0)  # the next one due: at a third of 60 s before expiry
    clock.now += 41
    found.renew_due()  # both were read within keep_warm: renewed without anyone waiting
    assert [found.peek(k).token for k in (1, 2)] == ["t3", "t4"]  # type: ignore[union-attr]
    assert found.waits == 2 and not spawned
    clock.now += tokens.keep_warm(60.0)  # unread since: both lapse
    found.renew_due()
    assert mint.count == 4


def test_forget_drops_a_token_and_a_fork_starts_empty(
    clock: Clock, spawned: list[Callable[[], None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    mint = Mint(clock)
    found = cache(mint, clock, spawned)
    found.get(1)
    found.forget(1)
    assert found.peek(1) is None and "t1" in found.secrets()
    found.get(1)
    monkeypatch.setattr(
        "baton.forge.kinds.github.tokens.os.getpid", lambda: -1
    )  # as in a forked worker process
    assert found.peek(1) is None and found.get(1).token == "t3"


def test_a_minted_token_never_shows_in_a_repr(clock: Clock) -> None:
    minted = Minted("ghs_secret_value_1234567890", clock() + 60, 60.0)
    assert "ghs_secret" not in repr(minted) and "ghs_secret" not in str(minted)
