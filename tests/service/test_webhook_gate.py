"""The webhooks' plain ASGI gate (:mod:`baton.service.webhook_gate`): it answers ``POST /webhooks/*``
before FastAPI's router (the route's handler is never called), and its answers are the FastAPI route's,
byte for byte in status, body and content type, over real uvicorn servers: an ignored delivery, its
redelivery, a bad signature (nothing stored), a signed but malformed delivery, no secret; other
methods still reach the router."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from baton.forge.data.tables import delivery_store
from baton.service import webhooks
from baton.service.app import create_app
from baton.service.webhook_gate import WebhookGate
from baton.settings import Settings, load_settings
from tests import service_fixtures
from tests.service_fixtures import Service, run_service, service_fixture  # noqa: F401 (the `service` fixture)

SECRET = "gate-s3cret"


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_WEBHOOK_SECRET", SECRET)


def without_gate(settings: Settings | None = None) -> FastAPI:
    app = create_app(settings)
    app.user_middleware = [
        m for m in app.user_middleware if not (isinstance(m.cls, type) and issubclass(m.cls, WebhookGate))
    ]
    return app


@pytest.fixture
def routed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    """The same service without the gate: its webhooks go through FastAPI's routes."""
    settings = load_settings(overrides={"home": str(tmp_path / "routed-home")}, environ={})
    monkeypatch.setattr(service_fixtures, "create_app", without_gate)
    with run_service(settings) as running:
        yield running


def signed(body: bytes, delivery: str, event: str = "ping", secret: str = SECRET) -> dict[str, str]:
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature,
        "Content-Type": "application/json",
    }


def answer(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, Any]:
    response = httpx.post(f"{url}/webhooks/github", content=body, headers=headers, timeout=10)
    return response.status_code, response.headers["content-type"], response.json()


CASES: list[tuple[str, bytes, dict[str, str]]] = [
    (
        "ignored",
        b'{"zen": "Design for failure.", "hook_id": 1}',
        signed(b'{"zen": "Design for failure.", "hook_id": 1}', "d-1"),
    ),
    (
        "redelivery",
        b'{"zen": "Design for failure.", "hook_id": 1}',
        signed(b'{"zen": "Design for failure.", "hook_id": 1}', "d-1"),
    ),
    ("bad signature", b'{"zen": "x"}', signed(b'{"zen": "y"}', "d-2")),
    ("no delivery id", b'{"zen": "x"}', {**signed(b'{"zen": "x"}', "d-3"), "X-GitHub-Delivery": ""}),
    ("not an object", b"[1, 2]", signed(b"[1, 2]", "d-4")),
]


def test_the_gate_answers_as_the_route_does(service: Service, routed: Service) -> None:
    for what, body, headers in CASES:
        gated, through_router = answer(service.url, body, headers), answer(routed.url, body, headers)
        assert gated == through_router, what
    assert [d.delivery_id for d in delivery_store(service.store).list_deliveries()] == ["d-1"]
    assert [d.delivery_id for d in delivery_store(routed.store).list_deliveries()] == ["d-1"]
    status, _, first = answer(service.url, CASES[0][1], CASES[0][2])
    assert status == 202 and first["delivery"] == "d-1" and first["status"] == "ignored"


def test_the_gate_answers_before_the_router(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    async def never(*_args: object) -> None:
        raise AssertionError("the FastAPI route was called")

    monkeypatch.setattr(webhooks, "receive", never)
    body = json.dumps({"zen": "Approachable is better than simple."}).encode()
    status, kind, data = answer(service.url, body, signed(body, "d-gate"))
    assert (status, kind, data["status"]) == (202, "application/json", "ignored")
    assert delivery_store(service.store).get_delivery("github", "d-gate") is not None
    refused = httpx.post(
        f"{service.url}/webhooks/github", content=body, headers=signed(body, "d-x", secret="no")
    )
    assert refused.status_code == 401 and refused.json() == {"detail": "missing or wrong signature"}
    assert delivery_store(service.store).get_delivery("github", "d-x") is None
    assert httpx.get(f"{service.url}/webhooks/github", timeout=10).status_code == 405  # the router's


def test_without_a_secret_the_gate_refuses_as_the_route_does(
    service: Service, routed: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BATON_WEBHOOK_SECRET")
    body = b'{"zen": "x"}'
    gated, through_router = (
        answer(service.url, body, signed(body, "d")),
        answer(routed.url, body, signed(body, "d")),
    )
    assert gated == through_router and gated[0] == 403
