"""A forge that fails while a delivery's events are handled (baton.forge.webhook.act): a transient
failure is retried on the one retry policy (1, 2, 4, 8 s; five attempts), a refusal is not, and an
event that keeps failing is named in the delivery's error while the others are handled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from baton.forge import dispatch, webhook
from baton.forge.model import ForgeError


@dataclass
class Event:
    identity: str


@dataclass
class Handled:
    status: str

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status}


def test_transient_failures_are_retried_and_a_refusal_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    answers: dict[str, list[Exception | None]] = {
        "flaky": [ForgeError("502 Bad Gateway", 502), ForgeError("no answer", 0), None],
        "refused": [ForgeError("403 Forbidden", 403)],
        "down": [ForgeError("503", 503)] * 10,
    }
    calls: list[str] = []

    def handle(_loop: object, event: Event, _delivery: str) -> Handled:
        calls.append(event.identity)
        failure = answers[event.identity].pop(0)
        if failure is not None:
            raise failure
        return Handled("accepted")

    monkeypatch.setattr(dispatch, "handle", handle)
    pauses: list[float] = []
    events = [Event("flaky"), Event("refused"), Event("down")]
    result = webhook.act(None, events, "gh:1", sleep=pauses.append)  # type: ignore[arg-type]
    assert result["forge"] == [{"identity": "flaky", "status": "accepted"}]
    assert result["error"] == "refused: 403 Forbidden; down: 503 (the next reconcile looks again)"
    assert calls == ["flaky"] * 3 + ["refused"] + ["down"] * 5
    assert pauses == [1.0, 2.0, 1.0, 2.0, 4.0, 8.0]  # flaky's two pauses, then down's four
