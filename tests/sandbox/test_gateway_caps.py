"""Spending held on the wire by baton's model gateway: a turn whose tokens, as the model API's replies
count them, pass a tokens cap (or whose cost, at the operator's ``model_prices``, passes a USD cap) is
refused its next model request (HTTP 403 in Anthropic's error shape),
stopped, and ends parked at the cap as a turn that never started at one does; a turn under its cap is
untouched. A usage limit the model API answers (429) trips the credential's breaker as the gateway reads
it, whatever the CLI makes of it. The real Claude Code CLI against the mock model API.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest

from baton import RunRequest, open_store, run
from baton.agents import get_agent
from baton.agents.limits import LimitKind, from_api_reply
from baton.asking.pending import waiting
from baton.caps.check import Holds, Running, reached
from baton.caps.model import Caps, Measure, Scope
from baton.caps.parked import parked
from baton.caps.spend import reconciled
from baton.cli.run import _print_question
from baton.models import Access, Outcome, QuotaState
from baton.runner import quota
from baton.runner.capped import WireHold
from baton.sandbox import gateway
from baton.settings import Settings
from baton.testing import mock_anthropic, mock_gemini, mock_openai
from baton.testing._http import MockServer, Refusal
from baton.testing.mock_anthropic import MockAnthropic
from tests.sandbox.test_access_real import shell_marker, write_marker
from tests.sandbox.test_gateway import ANTHROPIC, MESSAGE, REAL_KEY, gateway_settings
from tests.sandbox.test_gateway import model as model  # the fixture: the agent's mock, the real key set

RESET = int(time.time()) + 3 * 3600


def _reply(refusal: Refusal) -> tuple[int, dict[str, str], bytes]:
    headers = {k.lower(): v for k, v in refusal.headers.items()}
    return refusal.status, headers, json.dumps(refusal.body).encode()


def test_a_model_apis_429_is_read_as_its_vendor_means_it() -> None:
    spent = from_api_reply(*_reply(mock_anthropic.usage_limit(RESET)))
    assert spent is not None and (spent.kind, spent.resets_at, spent.scope) == (
        LimitKind.EXHAUSTED, RESET, "five_hour")  # fmt: skip
    minute = from_api_reply(*_reply(mock_anthropic.rate_limit()))
    assert minute is not None and minute.kind == LimitKind.TRANSIENT
    plan = from_api_reply(*_reply(mock_openai.usage_limit(RESET)))
    assert plan is not None and (plan.kind, plan.resets_at) == (LimitKind.EXHAUSTED, RESET)
    billing = {"error": {"type": "insufficient_quota", "code": "insufficient_quota", "message": "Quota"}}
    broke = from_api_reply(429, {}, json.dumps(billing).encode())
    assert broke is not None and broke.kind == LimitKind.EXHAUSTED and broke.resets_at is None
    tpm = from_api_reply(*_reply(mock_openai.rate_limit()))
    assert tpm is not None and tpm.kind == LimitKind.TRANSIENT
    daily = from_api_reply(*_reply(mock_gemini.quota_exhausted(43)))
    assert daily is not None and daily.kind == LimitKind.EXHAUSTED and daily.scope == "daily"
    per_minute = from_api_reply(*_reply(mock_gemini.rate_limit(5)))
    assert per_minute is not None and per_minute.kind == LimitKind.TRANSIENT
    assert from_api_reply(529, {}, b'{"type":"error","error":{"type":"overloaded_error"}}') is None
    garbled = from_api_reply(429, {}, b"not json")
    assert garbled is not None and garbled.kind == LimitKind.TRANSIENT


def test_a_running_turn_is_held_to_its_tokens_caps_and_its_priced_usd_caps(settings: Settings) -> None:
    store = open_store(settings.resolved_store_url)
    try:
        caps = Caps(tokens=1000, turns=1, usd=0.01)
        holds = Holds("claude:o-r:t", "o-r", caps, Caps(tokens=5000))
        assert reached(store, holds, Running(999)) is None, "its cost unknown, its count held at its start"
        found = reached(store, holds, Running(1000))
        assert found is not None and (found.scope, found.measure, found.spent, found.cap) == (
            Scope.THREAD, Measure.TOKENS, 1000, 1000)  # fmt: skip
        wide = Holds("claude:o-r:t", "o-r", Caps(turns=1), Caps(tokens=5000))
        repo = reached(store, wide, Running(6000))
        assert repo is not None and repo.scope == Scope.REPO
        usd = Holds("claude:o-r:t", "o-r", Caps(usd=0.01), Caps())
        assert reached(store, usd, Running(10**9)) is None, "no price: the USD cap is held at the end"
        assert reached(store, usd, Running(10**9, 0.0099)) is None
        past = reached(store, usd, Running(5, 0.01))
        assert past is not None and (past.scope, past.measure, past.spent, past.cap) == (
            Scope.THREAD, Measure.USD, 0.01, 0.01)  # fmt: skip
        first = reached(store, holds, Running(10, 0.02))
        assert first is not None and first.measure == Measure.USD, "USD is the first measure"
        repo_usd = reached(store, Holds("claude:o-r:t", "o-r", Caps(), Caps(usd=1)), Running(1, 1.5))
        assert repo_usd is not None and (repo_usd.scope, repo_usd.measure) == (Scope.REPO, Measure.USD)
    finally:
        store.close()


def test_the_gateway_refuses_the_next_request_once_the_guard_says_so() -> None:
    """The guard is asked after each metered reply; the request after a refusal is a 403 in Anthropic's
    shape, never sent on; a 429 is told to the guard before the client has the whole reply."""
    seen: list[dict[str, int]] = []
    told: list[tuple[int, str]] = []
    got: list[bool] = []

    def spend(total: dict[str, int], models: dict[str, dict[str, int]]) -> str | None:
        seen.append(total)
        return "baton stopped this turn: over its cap" if total["input_tokens"] >= 10 else None

    def limit(status: int, headers: dict[str, str], body: bytes) -> None:
        told.append((status, headers["anthropic-ratelimit-unified-status"]))
        time.sleep(0.3)  # the client waits for it: the reply's last byte follows
        got.append(bool(replies))

    replies: list[httpx.Response] = []
    with MockAnthropic() as mock:
        mine = gateway.admit("run-guarded", gateway.Upstream(mock.url, "x-api-key", REAL_KEY, ANTHROPIC))
        mine.guard = gateway.Guard(spend, limit)
        with httpx.Client() as http:

            def send() -> httpx.Response:
                return http.post(f"{mine.url}/v1/messages", headers={"x-api-key": mine.token}, json=MESSAGE)

            mock.refusal = mock_anthropic.usage_limit(RESET, times=1)
            replies.append(send())
            assert replies[0].status_code == 429 and told == [(429, "rejected")] and got == [False]
            assert seen == [], "a refused reply spends nothing"
            assert send().status_code == 200
            refused = send()
            assert refused.status_code == 403, refused.text
            error = refused.json()["error"]
            assert refused.json()["type"] == "error" and error["type"] == "permission_error"
            assert error["message"] == "baton stopped this turn: over its cap"
            assert send().status_code == 403, "the turn stays stopped"
        mine.close()
        assert len(mock.conversation()) == 2 and seen == [
            {"input_tokens": 10, "output_tokens": 12, "requests": 1}
        ]


def _wire_hold(settings: Settings, store: Any, holds: Holds) -> WireHold:
    """A turn's :class:`WireHold` on ``holds``, without a run around it."""
    hold = WireHold.__new__(WireHold)
    hold.ctx = cast(Any, SimpleNamespace(settings=settings, tables=store))
    hold.held, hold.reached, hold.unpriced_said, hold.standings = holds, None, False, None
    return hold


def test_the_gateway_refuses_the_next_request_once_the_turns_priced_cost_reaches_a_usd_cap(
    settings: Settings,
) -> None:
    """Each reply of a priced model adds its tokens times its prices (the mock's: 10 input and 12 output
    tokens) to the turn's cost: past the thread's $1 the next request is a 403 saying the USD cap. A
    turn whose replies name a model with no price goes on (its cost is unknown, the cap held at its
    end), and its events say so once."""
    priced = settings.with_(model_prices="claude-sonnet-4*=10000/50000")  # $0.70 a reply
    store = open_store(priced.resolved_store_url)
    try:
        holds = Holds("claude:o-r:t", "o-r", Caps(usd=1.0), Caps())
        with MockAnthropic() as mock, httpx.Client() as http:
            for name, model in (("run-priced", "claude-sonnet-4-5"), ("run-unpriced", "claude-opus-4-1")):
                hold = _wire_hold(priced, store, holds)
                events: list[dict[str, Any]] = []
                mine = gateway.admit(name, gateway.Upstream(mock.url, "x-api-key", REAL_KEY, ANTHROPIC))
                mine.guard = gateway.Guard(partial(hold.spend, note=events.append), lambda *a: None)
                body = {**MESSAGE, "model": model}
                codes = [
                    http.post(f"{mine.url}/v1/messages", headers={"x-api-key": mine.token}, json=body)
                    for _ in range(3)
                ]
                mine.close()
                if model == "claude-opus-4-1":
                    assert [c.status_code for c in codes] == [200, 200, 200] and hold.reached is None
                    assert [e["type"] for e in events] == ["baton.cost_unknown"], "said once"
                    assert events[0]["models"] == ["claude-opus-4-1"]
                    continue
                assert [c.status_code for c in codes] == [200, 200, 403], codes[-1].text
                assert events == [] and mine.models == {
                    model: {"input_tokens": 20, "output_tokens": 24, "requests": 2}}  # fmt: skip
                said = codes[-1].json()["error"]["message"]
                assert said.startswith(
                    "baton stopped this turn: this thread has spent $1.40 of its $1.00 cap"
                )
                assert hold.reached is not None and hold.reached.measure == Measure.USD
                assert hold.reached.spent == pytest.approx(1.4)
            assert len(mock.conversation()) == 5, "the refused request never reached the model"
    finally:
        store.close()


def test_ten_requests_fired_at_once_past_a_small_cap_forward_at_most_one(settings: Settings) -> None:
    """A thread with a tokens cap of 30 (each request's body alone is estimated past it): ten requests
    the agent fires at once with its run's token are admitted against what is spent plus what is in
    flight, so one reaches the model API and nine are 403 saying the cap; then, sequentially, the
    spend (22 tokens) is under the cap and the next request goes, and after it (44) none does."""
    store = open_store(settings.resolved_store_url)
    try:
        hold = _wire_hold(settings, store, Holds("claude:o-r:t", "o-r", Caps(tokens=30), Caps()))
        with MockAnthropic(delay=0.5) as mock, httpx.Client() as http:
            mine = gateway.admit("run-burst", gateway.Upstream(mock.url, "x-api-key", REAL_KEY, ANTHROPIC))
            mine.guard = gateway.Guard(
                partial(hold.spend, note=lambda e: None), lambda *a: None, None, hold.admit
            )

            body = {**MESSAGE, "system": "You are a careful engineer. " * 8}  # ~60 tokens by its size

            def send(_: object = None) -> httpx.Response:
                headers = {"x-api-key": mine.token}
                return http.post(f"{mine.url}/v1/messages", headers=headers, json=body, timeout=30)

            with ThreadPoolExecutor(10) as pool:
                codes = list(pool.map(send, range(10)))
            assert sorted(c.status_code for c in codes) == [200] + [403] * 9, [c.text for c in codes]
            assert len(mock.conversation()) == 1, "the refused requests never reached the model"
            said = next(c for c in codes if c.status_code == 403).json()["error"]["message"]
            assert said.startswith("baton refused this model request: with the turn's requests in flight")
            assert "tokens" in said and hold.reached is None  # an estimate refuses; it stops nothing
            assert mine.usage()["input_tokens"] == 10
            assert send().status_code == 200  # 22 spent, under 30: it goes
            assert send().status_code == 403 and hold.reached is not None  # 44: stopped
            assert len(mock.conversation()) == 2
            mine.close()
    finally:
        store.close()


def test_the_wire_count_wins_where_the_agent_reported_less() -> None:
    """What a run spent is the larger of its agent's and the wire's counts, field by field; the agent's
    own is kept beside it when the wire's was more."""
    said = {"input_tokens": 30, "output_tokens": 14, "cache_read_tokens": 5}
    wire = {"input_tokens": 120, "output_tokens": 144, "requests": 12}
    found = reconciled(said, wire)
    assert found["input_tokens"] == 120 and found["output_tokens"] == 144
    assert found["reported"] == {"input_tokens": 30, "output_tokens": 14} and found["wire"] == wire
    assert found["cache_read_tokens"] == 5
    assert reconciled({"input_tokens": 500, "output_tokens": 200}, wire) == {
        "input_tokens": 500, "output_tokens": 200, "wire": wire}  # fmt: skip


# -- the real Claude Code CLI ------------------------------------------------------------------------


def work(agent: str) -> str:
    """A turn that writes a file and runs a command, both in its model's first reply."""
    return f"do {write_marker(agent)} and {shell_marker(agent, 'echo ran > ran.txt')}"


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["claude", "codex", "gemini"])
def test_a_turn_past_its_tokens_cap_is_stopped_at_its_next_request_and_parks(
    home: Path, src_repo: Path, agent: str, model: MockServer[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """The first reply counts tens of thousands of tokens against a 5,000 cap: the CLI runs its two
    tools, its next request is refused and never reaches the model; the run ends parked at the cap with
    its question, the file written before the stop kept. Under a larger cap the same turn completes."""
    model.item_tokens = 20_000  # per history item of the request: its first reply is over the cap
    settings = gateway_settings(home, "open")
    request = RunRequest(
        agent=agent,
        repo=str(src_repo),
        thread="capped",
        prompt=work(agent),
        access=Access.FULL,
        max_tokens=5000,
    )
    result = run(request, settings=settings)
    assert result.run.outcome == Outcome.NEEDS_INPUT, result.run.error
    assert len(model.conversation()) == 1, "the request after the cap was passed never reached the model"
    question = result.run.question or {}
    assert question["cap"]["measure"] == "tokens" and question["cap"]["cap"] == 5000
    spent = f"this thread has spent {question['cap']['spent']:,.0f} tokens of its 5,000 tokens cap"
    assert question["cap"]["spent"] >= 20_000 and question["text"].startswith(spent + ";")
    assert "--tokens +5000" in question["text"]
    worktree = Path(result.session.worktree)
    assert (worktree / "made.txt").read_text() == "made by the agent\n"
    assert (worktree / "ran.txt").read_text() == "ran\n"
    log = Path(result.run.log_path).read_text()
    assert f"baton stopped this turn: {spent}" in log, "the CLI was told why"
    store = open_store(settings.resolved_store_url)
    try:
        found = parked(store, agent, result.run.repo, "capped")
        assert found is not None and found.run.run_id == result.run.run_id
        assert found.run.prompt == work(agent)
        asked = waiting(store, agent, result.run.repo, "capped")
        assert asked is not None and asked.question.text == question["text"]
    finally:
        store.close()
    _print_question(result.run)  # what `baton run` says of it
    said = capsys.readouterr().out
    assert said.startswith("the thread is parked at a spending cap (exit 7; its agent was stopped at a model")
    again = run(dataclasses.replace(request, prompt="more"), settings=settings)
    assert again.run.outcome == Outcome.NEEDS_INPUT and again.run.agent_pid is None, "the next turn parks"
    assert len(model.conversation()) == 1

    under = run(dataclasses.replace(request, thread="under", max_tokens=1_000_000), settings=settings)
    assert under.run.outcome == Outcome.SUCCEEDED, under.run.error
    assert under.run.question is None and len(model.conversation()) >= 3
    assert under.run.usage["wire"]["requests"] == len(model.conversation()) - 1


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["claude"])
def test_a_turn_past_its_usd_cap_at_the_operators_prices_is_stopped_at_its_next_request_and_parks(
    home: Path, src_repo: Path, agent: str, model: MockServer[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """``model_prices`` prices the models Claude Code asks for (the mock replies as the model asked) at
    $1,000 per million tokens: its first reply (tens of tokens) costs more than the thread's $0.01 cap,
    so its next request is refused and never reaches the model; the run ends parked at the USD cap,
    the file written before the stop kept, and no event says the cost was unknown."""
    settings = gateway_settings(home, "open").with_(model_prices="claude-*=1000/1000/1000/1000")
    request = RunRequest(
        agent=agent,
        repo=str(src_repo),
        thread="usd-capped",
        prompt=work(agent),
        access=Access.FULL,
        max_usd=0.01,
    )
    result = run(request, settings=settings)
    assert result.run.outcome == Outcome.NEEDS_INPUT, result.run.error
    assert len(model.conversation()) == 1, "the request after the cap was passed never reached the model"
    assert str(model.conversation()[0].body["model"]).startswith("claude-")
    question = result.run.question or {}
    assert question["cap"]["measure"] == "usd" and question["cap"]["cap"] == 0.01
    assert question["cap"]["spent"] >= 0.01
    spent = f"this thread has spent ${question['cap']['spent']:,.2f} of its $0.01 cap"
    assert question["text"].startswith(spent + ";") and "--usd +1" in question["text"]
    worktree = Path(result.session.worktree)
    assert (worktree / "made.txt").read_text() == "made by the agent\n"
    log = Path(result.run.log_path).read_text()
    assert f"baton stopped this turn: {spent}" in log, "the CLI was told why"
    assert "baton.cost_unknown" not in log
    store = open_store(settings.resolved_store_url)
    try:
        found = parked(store, agent, result.run.repo, "usd-capped")
        assert found is not None and found.run.run_id == result.run.run_id
    finally:
        store.close()
    _print_question(result.run)
    said = capsys.readouterr().out
    assert said.startswith("the thread is parked at a spending cap (exit 7; its agent was stopped at a model")


SPENT = {  # each vendor's spent quota, and the event its CLI ends a refused turn with
    "claude": (mock_anthropic.usage_limit(RESET), "result"),
    "codex": (mock_openai.usage_limit(RESET), "turn.failed"),
    "gemini": (mock_gemini.quota_exhausted(None), "result"),
}


@pytest.mark.slow
@pytest.mark.parametrize("agent", sorted(SPENT))
def test_a_usage_limit_the_model_api_answers_trips_the_breaker(
    home: Path, src_repo: Path, agent: str, model: MockServer[Any]
) -> None:
    """The gateway reads the model API's own 429 and trips the credential's breaker before the CLI has
    the reply; the run ends ``rate_limited``. Claude Code with an API key calls even a rejected unified
    window a transient limit (its words name none): without the gateway's reading nothing would trip."""
    model.refusal, last = SPENT[agent]
    settings = gateway_settings(home, "open")
    request = RunRequest(
        agent=agent, repo=str(src_repo), thread="limited", prompt="hello", access=Access.FULL
    )
    result = run(request, settings=settings)
    store = open_store(settings.resolved_store_url)
    key, _ = quota.credential(get_agent(agent, settings), os.environ)
    try:
        assert result.run.outcome == Outcome.RATE_LIMITED, result.run.error
        record = store.quota(key)
        assert record is not None and record.state == QuotaState.EXHAUSTED
        assert record.run_id == result.run.run_id and record.resets_at == result.run.resets_at
        if agent == "gemini":  # a day's quota: the next midnight Pacific time
            assert record.scope == "daily" and (result.run.resets_at or 0) > time.time()
        else:
            assert record.resets_at == RESET
        kinds = [json.loads(line).get("type") for line in Path(result.run.log_path).read_text().splitlines()]
        assert "baton.usage_limit" in kinds and last in kinds, kinds
        assert kinds.index("baton.usage_limit") < kinds.index(last), "tripped before the CLI's report"
    finally:
        store.close()
