"""A forge that fails, on the one retry policy (baton.retry): while a delivery's events are handled
(baton.forge.background.feedback.act) a transient failure is retried (1, 2, 4, 8 s; five attempts), a refusal
is not, and an event that keeps failing is named in the delivery's error while the others are handled; the
REST client (baton.forge.kinds.http) retries a dropped connection and a 5xx with its backoff, and logs
each."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from baton.forge.background import feedback
from baton.forge.data.model import ForgeError
from baton.forge.kinds.http import ForgeHTTP
from baton.forge.turn import dispatch


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
    result = feedback.act(None, events, "gh:1", sleep=pauses.append)  # type: ignore[arg-type]
    assert result["forge"] == [{"identity": "flaky", "status": "accepted"}]
    assert result["error"] == "refused: 403 Forbidden; down: 503 (the next reconcile looks again)"
    assert calls == ["flaky"] * 3 + ["refused"] + ["down"] * 5
    assert pauses == [1.0, 2.0, 1.0, 2.0, 4.0, 8.0]  # flaky's two pauses, then down's four


def test_the_forge_client_retries_a_5xx_and_a_dropped_connection_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = iter([0, 502, 200])  # 0: the connection refused

    def answer(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        if status == 0:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(status, json={"ok": status == 200})

    sleeps: list[float] = []
    http = ForgeHTTP(
        "https://forge.example/api/v1",
        "tok",
        name="Gitea",
        transport=httpx.MockTransport(answer),
        sleep=sleeps.append,
        jitter=lambda: 1.0,  # the whole backoff: 0.5 s, then 1 s
    )
    with caplog.at_level(logging.INFO, logger="baton.forge"):
        assert http.json("GET", "repos/a/b") == {"ok": True}
    assert sleeps == [0.5, 1.0]
    said = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert said == [
        "Gitea: GET /api/v1/repos/a/b: ConnectError: refused; retrying in 0.5 s (1 of 4)",
        "Gitea: GET /api/v1/repos/a/b: 502; retrying in 1.0 s (2 of 4)",
    ]
