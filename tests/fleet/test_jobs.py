"""A job's request as plain data (what POST /v1/runs takes and a queued job stores): the sync, stacking and
hand-off fields survive the round trip, and bad values are refused naming the field."""

from __future__ import annotations

import pytest

from baton.errors import BadInput
from baton.fleet.jobs import build_request, plain_request
from baton.models import Mode, OnConflict, SyncHow

BASE = {"agent": "claude", "repo": "https://github.com/acme/api", "thread": "issue-43", "prompt": "go on"}


def test_sync_stacking_and_hand_off_fields_round_trip() -> None:
    fields = {
        **BASE,
        "sync": "rebase",
        "on_conflict": "agent",
        "base_thread": "issue-42",
        "handoff_from": "codex",
    }
    request = build_request(fields)
    assert (request.sync, request.on_conflict) == (SyncHow.REBASE, OnConflict.AGENT)
    assert (request.base_thread, request.handoff_from, request.mode) == ("issue-42", "codex", Mode.AUTO)
    stored = plain_request(request)
    assert stored["sync"] == "rebase" and stored["on_conflict"] == "agent"
    assert plain_request(build_request(stored)) == stored


def test_unset_sync_fields_stay_unset_for_the_settings_to_decide() -> None:
    request = build_request(dict(BASE))
    assert request.sync is None and request.on_conflict is None
    assert build_request(plain_request(request)).sync is None


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("sync", "sometimes", "sync must be one of off, merge, rebase"),
        ("on_conflict", "ignore", "on_conflict must be one of stop, agent"),
        ("base_thread", 42, "base_thread has the wrong type"),
        ("handoff_from", ["claude"], "handoff_from has the wrong type"),
    ],
)
def test_bad_values_are_refused_naming_the_field(field: str, value: object, words: str) -> None:
    with pytest.raises(BadInput, match=words):
        build_request({**BASE, field: value})
