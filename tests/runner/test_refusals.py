"""A run's refusals coalesced per destination (baton.runner.refusals): what a hostile agent's burst or
endless variation of targets costs the audit log."""

from __future__ import annotations

from baton.runner.refusals import DESTINATIONS, Refusals


def test_a_burst_is_told_at_each_tenfold_and_its_last_count_at_the_end() -> None:
    told: list[tuple[tuple[str, str], str, int]] = []
    refusals = Refusals[tuple[str, str], str](lambda w, what, n, _t: told.append((w, what, n)), ("*", "*"))
    for i in range(300):
        refusals(("POST", "/v1/files"), f"refusal {i}")
    refusals(("GET", "/v1/organizations/me"), "once")
    refusals.flush()
    refusals.flush()  # nothing left to tell
    counts = [(w[1], n) for w, _what, n in told]
    assert counts == [("/v1/files", 1), ("/v1/files", 10), ("/v1/files", 100), ("/v1/organizations/me", 1),
                      ("/v1/files", 300)], counts  # fmt: skip
    assert told[-1][1] == "refusal 299"  # the last one's words


def test_endless_destinations_share_one_count_past_the_bound() -> None:
    told: list[tuple[tuple[str, str], int]] = []
    refusals = Refusals[tuple[str, str], str](lambda w, _what, n, _t: told.append((w, n)), ("*", "*"))
    for i in range(10_000):
        refusals(("POST", f"/v1/x{i}"), "no")
    refusals.flush()
    assert len(refusals.seen) == DESTINATIONS + 1  # the first ones, and the others' one key
    others = [n for w, n in told if w == ("*", "*")]
    assert others == [1, 10, 100, 1000, 10_000 - DESTINATIONS], others
    assert len(told) == DESTINATIONS + len(others)  # not 10,000 rows
