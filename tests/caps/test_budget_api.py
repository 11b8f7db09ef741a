"""``GET``/``POST /v1/budget`` on a real uvicorn with the fake agent: a thread parked at its cap is shown,
a raise (admin) resumes it by queueing its parked instruction, which runs once; hostile amounts and a
smaller scope are refused with nothing written; an API token's own caps hold the runs it submits."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx
import pytest

from baton import Outcome, RunRequest, run
from baton.agents import AGENTS
from baton.caps.model import Scope
from baton.caps.tables import cap_store
from baton.keys import make_key
from baton.settings import Settings
from tests.conftest import wait_for
from tests.service_fixtures import run_service

WRITE = {"FAKE_AGENT_WRITE": "turns.txt"}


def finished(http: httpx.Client, run_id: str) -> dict[str, Any]:
    wait_for(lambda: http.get(f"/v1/runs/{run_id}").json()["status"] == "done", timeout=60)
    found: dict[str, Any] = http.get(f"/v1/runs/{run_id}").json()
    return found


@pytest.mark.parametrize("amount", [-5, 0, math.nan, math.inf, 1e309, "+abc", "5", True, 1e10, None])
def test_hostile_raises_are_refused_with_nothing_written(
    settings: Settings, src_repo: Path, amount: object
) -> None:
    body = {"agent": "fake", "repo": str(src_repo), "thread": "t1", "usd": amount}
    with run_service(settings) as service, service.client("admin") as http:
        headers = {"content-type": "application/json"}
        answer = http.post("/v1/budget", content=_json(body), headers=headers)
        raises = cap_store(service.store).raises(Scope.THREAD, f"fake:{_slug(src_repo)}:t1")
    assert raises == []
    if amount is None:  # no amount: nothing to raise, the caps shown
        assert answer.status_code == 200 and answer.json()["raised"] == 0
    else:
        assert answer.status_code == 422, answer.text


def _json(body: dict[str, object]) -> bytes:
    """The body as a hostile client may send it: NaN as JSON's non-standard literal, infinity as 1e309."""
    return json.dumps(body, allow_nan=True).replace("Infinity", "1e309").encode()


def _slug(repo: Path) -> str:
    return make_key("fake", str(repo), "t1", AGENTS).repo.slug


def test_a_raise_through_the_api_queues_the_parked_instruction_once(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_WRITE", "turns.txt")
    request = RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="first", max_usd=0.0001)
    assert run(request, settings=settings).run.outcome == Outcome.SUCCEEDED
    request.prompt = "parked-instruction"
    assert run(request, settings=settings).run.outcome == Outcome.NEEDS_INPUT
    key = {"agent": "fake", "repo": str(src_repo), "thread": "t1"}
    with run_service(settings) as service, service.client("admin") as admin, service.client("run") as runner:
        shown = admin.get("/v1/budget", params=key).json()
        [usd] = [c for c in shown["caps"] if c["measure"] == "usd"]
        assert usd["reached"] and usd["limit"] == 0.0001, shown
        session = admin.get("/v1/session", params=key).json()
        assert "this thread has spent $0.0002 of its $0.0001 cap" in session["question"]["text"]
        assert runner.post("/v1/budget", json={**key, "usd": 1}).status_code == 403  # raising is admin's
        raised = admin.post("/v1/budget", json={**key, "usd": 1}).json()
        assert raised["raised"] == 1 and raised["resumed"] == "its parked instruction is queued", raised
        done = finished(admin, raised["run_id"])
        again = admin.post("/v1/budget", json={**key, "usd": 1}).json()  # not parked: nothing queued
    assert done["outcome"] == "succeeded", done
    assert again["run_id"] is None and again["resumed"] is None
    notes = settings.home / "worktrees" / "fake" / _slug(src_repo) / "t1" / "turns.txt"
    ran = notes.read_text().splitlines()
    assert len(ran) == 2 and "parked-instruction" in ran[1], ran


def test_a_tokens_caps_hold_the_runs_it_submits(settings: Settings, src_repo: Path) -> None:
    body = {"agent": "fake", "repo": str(src_repo), "thread": "t1", "prompt": "go"}
    with run_service(settings) as service, service.client("admin") as admin:
        made = admin.post("/v1/tokens", json={"name": "ci", "scope": "run", "max_turns": 1}).json()
        assert (
            admin.post("/v1/tokens", json={"name": "ci2", "scope": "run", "max_usd": -1}).status_code == 422
        )
        with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {made['token']}"}) as ci:
            first = finished(admin, ci.post("/v1/runs", json=body).json()["run_id"])
            second = finished(admin, ci.post("/v1/runs", json={**body, "thread": "t2"}).json()["run_id"])
        shown = admin.get("/v1/budget/token", params={"token": "ci"}).json()
        assert admin.get("/v1/budget/token", params={"token": "nobody"}).status_code == 404
        assert admin.post("/v1/budget/token", json={"token": "nobody", "turns": 1}).status_code == 404
        raised = admin.post("/v1/budget/token", json={"token": "ci", "turns": 2}).json()
        repo = admin.post("/v1/budget/repo", json={"repo": str(src_repo), "usd": 5}).json()
        assert admin.get("/v1/budget/repo", params={"repo": "0" * 2048}).status_code == 404
        audit = [a for a in service.store.list_audit(50) if a["action"] == "caps.raised"]
    assert first["outcome"] == "succeeded" and second["outcome"] == "needs_input", (first, second)
    assert "API token 'ci' has spent 1 turn of its 1 turn cap" in second["question"]["text"]
    [turns] = [c for c in shown["caps"] if c["measure"] == "turns"]
    assert (turns["scope"], turns["limit"], turns["spent"]) == ("token", 1.0, 1.0)
    [turns] = [c for c in raised["caps"] if c["measure"] == "turns"]
    assert (raised["raised"], turns["raised"], turns["limit"]) == (1, 2.0, 3.0)
    assert repo["target"] == f"repo {_slug(src_repo)}" and repo["raised"] == 1
    assert {a["key"] for a in audit} == {"ci", _slug(src_repo)}
    assert all(a["actor"].endswith("(through baton's API)") for a in audit)
