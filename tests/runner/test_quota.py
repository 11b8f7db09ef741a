"""Usage limits as a state (:mod:`baton.runner.quota`, :mod:`baton.agents.limits`): a spent quota ends
the turn ``rate_limited`` with its reset, trips its credential's breaker so no other run of it starts
into the wall (nothing written), and the first turn after the reset resumes the same conversation and
delivers the instruction once; ``--wait-quota`` waits instead. The fake agent meets the limit the way
Claude Code does under a subscription login (``FAKE_AGENT_LIMIT_UNTIL``); the real CLIs:
tests/runner/test_quota_real.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from baton import Outcome, PromptKind, RunRequest, run
from baton.agents import limits
from baton.agents.limits import Limit, LimitKind
from baton.errors import QuotaHeld
from baton.models import QuotaRecord, QuotaState, SessionStatus
from baton.runner import quota
from baton.settings import Settings
from baton.store import Store
from tests.runner.test_runner import go, sent_prompts

NOW = 1_800_000_000.0


def test_claudes_events_say_which_limit_and_when_it_resets() -> None:
    rejected = {
        "type": "rate_limit_event",
        "rate_limit_info": {"status": "rejected", "resetsAt": 1800003600, "rateLimitType": "seven_day"},
    }
    found = limits.claude_event(rejected)
    assert found == Limit(
        LimitKind.EXHAUSTED, 1800003600.0, "seven_day", "rate_limit_event rejected (seven_day)"
    )
    warned = {"type": "rate_limit_event", "rate_limit_info": {"status": "allowed_warning", "resetsAt": 1}}
    assert limits.claude_event(warned) is None
    api_key = {
        "type": "result",
        "subtype": "success",
        "is_error": True,
        "api_error_status": 429,
        "result": "API Error: Request rejected (429) · This request would exceed your account's rate limit.",
    }
    transient = limits.claude_event(api_key)
    assert transient is not None and transient.kind == LimitKind.TRANSIENT and transient.resets_at is None
    # an older release's words, inside a zero-token success; an answer that merely mentions them is none
    old = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": "Claude AI usage limit reached|1800001234",
    }
    said = limits.claude_event({**old, "usage": {"output_tokens": 0}})
    assert said is not None and said.kind == LimitKind.EXHAUSTED and said.resets_at == 1800001234.0
    assert limits.claude_event({**old, "usage": {"output_tokens": 120}}) is None


@pytest.mark.parametrize(
    "event",
    [
        {"type": "rate_limit_event"},
        {"type": "rate_limit_event", "rate_limit_info": "rejected"},
        {"type": "rate_limit_event", "rate_limit_info": {"status": "rejected", "resetsAt": "soon"}},
        {"type": "rate_limit_event", "rate_limit_info": {"status": "rejected", "resetsAt": [1]}},
        {"type": "rate_limit_event", "rate_limit_info": {"status": "rejected", "resetsAt": 1e300}},
        {"type": "result", "api_error_status": 429, "result": None},
        {"type": "assistant", "error": "rate_limit", "message": "garbled"},
    ],
)
def test_a_garbled_limit_event_is_read_without_a_traceback(event: dict[str, object]) -> None:
    found = limits.claude_event(event)
    assert found is None or found.resets_at is None


def test_the_words_give_the_reset_in_the_zone_they_name() -> None:
    now = 1795608000.0  # 2026-11-25 12:00 UTC
    found = limits.from_words("You've hit your 5-hour limit · resets 11:03pm (UTC)", now)
    assert found is not None and found.scope == "five_hour" and found.resets_at == 1795647780.0  # 23:03 UTC
    weekly = limits.from_words("You've hit your weekly limit · resets Nov 28, 3pm (Europe/Paris)", now)
    assert (
        weekly is not None and weekly.scope == "seven_day" and weekly.resets_at == 1795874400.0
    )  # 14:00 UTC
    earlier = limits.from_words("You've hit your 5-hour limit · resets 9am (UTC)", now)
    assert earlier is not None and earlier.resets_at == 1795683600.0  # tomorrow 09:00: 9am today is past
    assert limits.from_words("resets 25:99pm (Mars/Base)", now) is None
    unknown_zone = limits.from_words("You've hit your limit · resets 1pm (Mars/Base)", now)
    assert unknown_zone is not None and unknown_zone.resets_at == 1795611600.0  # read as UTC


@pytest.mark.parametrize(
    ("said", "kind"),
    [  # as Copilot CLI 1.0.102 and OpenCode 1.18.33 relay an OpenAI-compatible provider's 429 (measured)
        (
            "Error: Failed to get response from the AI model; retried 5 times (total retry wait time: "
            "58.05 seconds) Last error: 429 You exceeded your current quota, please check your plan",
            limits.LimitKind.EXHAUSTED,
        ),
        (
            "session/prompt: Internal error: You exceeded your current quota, please check",
            limits.LimitKind.EXHAUSTED,
        ),
        (
            "Last error: 429 Rate limit reached for gpt-5.5 in organization org-mock on tokens per min (TPM)",
            limits.LimitKind.TRANSIENT,
        ),
        ("Error: Could not connect to local model provider at http://127.0.0.1:9/v1.", None),
        ("the rate limit of our API is documented in docs/limits.md", None),
    ],
)
def test_a_providers_refusal_relayed_in_an_acp_agents_words(said: str, kind: limits.LimitKind | None) -> None:
    found = limits.from_api_words(said)
    assert (found.kind if found else None) == kind
    assert found is None or (found.resets_at is None and found.detail)


def _settings(settings: Settings) -> Settings:
    return settings.with_(quota_wait=600.0, quota_max_wait=8 * 86400.0)


def test_when_a_spent_quota_may_be_tried_again(settings: Settings) -> None:
    s = _settings(settings)
    said = Limit(LimitKind.EXHAUSTED, NOW + 3600)
    assert quota.plan_reset(said, None, s, NOW) == (NOW + 3600, 0, "")
    at, _, how = quota.plan_reset(Limit(LimitKind.EXHAUSTED), None, s, NOW)
    assert at == NOW + 600 and "no reset time given: waiting 10 min" in how
    at, _, how = quota.plan_reset(Limit(LimitKind.EXHAUSTED, NOW - 50), None, s, NOW)
    assert at == NOW + quota.PAST_WAIT and "is past" in how
    at, _, how = quota.plan_reset(Limit(LimitKind.EXHAUSTED, NOW + 365 * 86400), None, s, NOW)
    assert at == NOW + 8 * 86400 and "not believed" in how and "BATON_QUOTA_MAX_WAIT" in how


def test_a_phantom_limit_backs_off_exponentially_and_capped(settings: Settings) -> None:
    s, previous, waits = _settings(settings), None, []
    now = NOW
    for _ in range(8):
        at, refusals, how = quota.plan_reset(Limit(LimitKind.EXHAUSTED, now + 1), previous, s, now)
        waits.append(at - now)
        previous = QuotaRecord("c", "claude", "l", QuotaState.EXHAUSTED, resets_at=at, refusals=refusals)
        now = at + 1  # tried after the reset, and refused again
        if refusals:
            assert "still refused after its reset" in how
    assert waits[:5] == [1, 600, 1200, 2400, 4800]
    assert waits[-1] == quota.PHANTOM_CAP


def test_the_credential_is_a_hash_never_the_secret(settings: Settings) -> None:
    from baton.agents import get_agent

    claude = get_agent("claude", settings)
    key, label = quota.credential(claude, {"ANTHROPIC_API_KEY": "sk-secret-1"})
    other, _ = quota.credential(claude, {"ANTHROPIC_API_KEY": "sk-secret-2"})
    assert key != other and "sk-secret" not in key + label and label.startswith("claude ANTHROPIC_API_KEY #")
    assert quota.credential(claude, {"ANTHROPIC_API_KEY": "sk-secret-1"})[0] == key


def test_a_spent_quota_waits_for_its_reset_and_the_turn_after_resumes(
    settings: Settings, store: Store, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    until = time.time() + 4
    monkeypatch.setenv("FAKE_AGENT_LIMIT_UNTIL", str(until))
    first = go(settings, src_repo, "write the parser", thread="quota")
    assert first.run.outcome == Outcome.RATE_LIMITED
    assert first.run.resets_at == float(int(until)) and first.run.limit_kind == "five_hour"
    assert first.run.error and "the thread waits until" in first.run.error, first.run.error
    assert first.session.status == SessionStatus.WAITING
    assert first.attempts == [first.run], "a spent quota is not retried into the wall"

    # every other run of that credential waits: refused before anything is written, any key
    with pytest.raises(QuotaHeld, match=r"resets at .*nothing was started") as held:
        go(settings, src_repo, "another key", thread="other")
    assert held.value.resets_at == first.run.resets_at
    assert store.get_session("fake", first.session.repo, "other") is None
    assert len(store.list_runs("fake", first.session.repo, "quota")) == 1, "the agent met the wall once"
    (breaker,) = store.list_quotas()
    assert breaker.state == QuotaState.EXHAUSTED and breaker.run_id == first.run.run_id

    time.sleep(max(0.0, first.run.resets_at - time.time()) + 0.1)
    after = go(settings, src_repo, "write the parser", thread="quota")
    assert after.ok, after.run.error
    assert after.run.session_id_in == first.session.agent_session_id and after.run.mode.value == "resume"
    assert after.run.prompt_kind == PromptKind.INTERRUPTED
    sent = sent_prompts(settings, after.session.agent_session_id or "")
    assert sum("write the parser" in p for p in sent[1:]) == 1, "delivered once after the reset"
    (breaker,) = store.list_quotas()
    assert breaker.state == QuotaState.OK, "the first turn through closes the breaker"
    assert after.session.status == SessionStatus.ACTIVE


def test_wait_quota_waits_and_runs_again(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the agent must start before the limit resets (whole seconds): 2 s was crossed by a loaded machine's
    # start, the run then never meeting the limit
    monkeypatch.setenv("FAKE_AGENT_LIMIT_UNTIL", str(time.time() + 8))
    told: list[str] = []
    request = RunRequest(
        agent="fake", repo=str(src_repo), thread="w", prompt="go on", wait_quota=True, on_wait=told.append
    )
    result = run(request, settings=settings)
    assert result.ok, result.run.error
    assert len(told) == 1 and "waiting until" in told[0] and "--wait-quota" in told[0]
    assert result.run.prompt_kind == PromptKind.INTERRUPTED  # the rate-limited turn before it


def test_a_phantom_limit_backs_off_and_says_so(
    settings: Settings, store: Store, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_LIMIT_UNTIL", str(time.time() + 600))  # refused for 10 min...
    monkeypatch.setenv("FAKE_AGENT_LIMIT_SAYS", str(int(time.time()) + 2))  # ...saying it resets in 2 s
    first = go(settings, src_repo, "go", thread="phantom")
    assert first.run.outcome == Outcome.RATE_LIMITED and first.run.resets_at is not None
    time.sleep(max(0.0, first.run.resets_at - time.time()) + 0.2)
    second = go(settings, src_repo, "go", thread="phantom")  # the breaker let it try: refused again
    assert second.run.outcome == Outcome.RATE_LIMITED and second.run.resets_at is not None
    assert second.run.resets_at - second.run.started_at >= settings.quota_wait - 5, "backed off, not 2 s"
    (breaker,) = store.list_quotas()
    assert breaker.refusals == 1 and "still refused after its reset (1 time in a row)" in breaker.detail
    assert "still refused after its reset" in (second.run.error or "")


@pytest.mark.parametrize(
    ("says", "wait", "words"),
    [
        ("garbled", None, None),  # no reset in the event: the words' time (the next 11:03pm UTC)
        ("1700000000", quota.PAST_WAIT, "is past"),  # 2023
        ("4102444800", 8 * 86400.0, "not believed"),  # 2100
    ],
)
def test_a_garbled_past_or_far_reset_is_handled_and_said(
    settings: Settings,
    src_repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    says: str,
    wait: float | None,
    words: str | None,
) -> None:
    monkeypatch.setenv("FAKE_AGENT_LIMIT_UNTIL", str(time.time() + 600))
    monkeypatch.setenv("FAKE_AGENT_LIMIT_SAYS", says)
    result = go(settings, src_repo, "go", thread="odd")
    assert result.run.outcome == Outcome.RATE_LIMITED and result.run.resets_at is not None
    if wait is not None:
        assert abs(result.run.resets_at - result.run.started_at - wait) < 10
    else:
        assert 0 < result.run.resets_at - time.time() <= 86400
    assert words is None or words in (result.run.error or ""), result.run.error
