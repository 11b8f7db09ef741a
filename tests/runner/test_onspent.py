"""The one decision about a spent usage quota (baton.runner.onspent): each caller's consequence, in
the order the module's docstring gives. The runner and the executors acting on it are proven by
tests/runner/test_quota.py (fallback, --wait-quota, both executors queueing again) and the real CLIs'."""

from __future__ import annotations

import dataclasses
import random

import pytest

from baton.errors import QuotaHeld
from baton.models import Mode, Outcome, PromptKind, RunRecord
from baton.runner import onspent
from baton.runner.onspent import Can, Spent, Then, consequence

NOW = 1_800_000_000.0
RESET = NOW + 3600


def held() -> Spent:
    return Spent.refused(QuotaHeld("the usage quota of claude #abc is spent", RESET, "k"))


def ended(resets_at: float | None) -> Spent:
    return Spent("you have hit your limit", resets_at)


@pytest.mark.parametrize(
    ("spent", "can", "cancelled", "then"),
    [
        (held(), Can(fall_back_to="codex", wait=True), False, Then.FALL_BACK),  # fallback first
        (ended(None), Can(fall_back_to="codex"), False, Then.FALL_BACK),  # with no reset, too
        (ended(None), Can(wait=True, requeue=True), False, Then.STOP),  # nothing to wait for
        (ended(RESET), Can(requeue=True), True, Then.STOP),  # cancelled while it ran: its end stands
        (held(), Can(requeue=True), True, Then.REQUEUE),  # refused: the executor ends it cancelled
        (held(), Can(wait=True), False, Then.WAIT),
        (ended(RESET), Can(wait=True), False, Then.WAIT),
        (ended(RESET), Can(requeue=True), False, Then.REQUEUE),
        (held(), Can(), False, Then.STOP),  # exit 75
        (ended(RESET), Can(), False, Then.STOP),  # the rate_limited result
    ],
)
def test_the_consequence_of_each_spent_quota(spent: Spent, can: Can, cancelled: bool, then: Then) -> None:
    assert consequence(spent, can, cancelled=cancelled, now=NOW).then == then


def test_waiting_and_queueing_start_again_a_little_after_the_reset() -> None:
    for can in (Can(wait=True), Can(requeue=True)):
        until = consequence(held(), can, now=NOW).until
        assert until is not None and RESET + 1 <= until <= RESET + 300
    assert consequence(held(), Can(), now=NOW).until is None


def test_a_run_ended_rate_limited_is_a_spent_quota_and_others_are_not() -> None:
    record = RunRecord("r1", "claude", "repo", "t", 1, Mode.FRESH, PromptKind.FULL, "do it")
    limited = dataclasses.replace(record, outcome=Outcome.RATE_LIMITED, resets_at=RESET)
    assert Spent.ended(limited) == Spent(onspent.SPENT, RESET)  # no error: the words said for it
    said = dataclasses.replace(limited, error="weekly limit", resets_at=None)
    assert Spent.ended(said) == Spent("weekly limit", None)
    assert Spent.ended(dataclasses.replace(limited, outcome=Outcome.FAILED)) is None


def test_an_executor_starts_a_refused_job_after_its_reset() -> None:
    random.seed(4)
    assert RESET < onspent.requeue_at(QuotaHeld("spent", RESET, "k"), NOW) <= RESET + 300
