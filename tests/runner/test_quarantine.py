"""Quarantine (:mod:`baton.runner.quarantine`), on the fake agent: a conversation whose resume fails at
once twice in a row is never resumed again; the run recovers with a recap in a new conversation, and
no key resumes one id more than twice, across runs, retries and machines."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from baton import Mode, Outcome, PromptKind, RunRequest, RunResult, open_store, run
from baton.keys import key_of
from baton.models import RunRecord, SessionRecord
from baton.runner import quarantine
from baton.sessions.tables import strike_store
from baton.settings import Settings
from baton.store.base import Transactions
from baton.testing.fake import find_transcripts


def go(settings: Settings, repo: Path, prompt: str, **kw: object) -> RunResult:
    request = RunRequest(agent="fake", repo=str(repo), thread="t1", prompt=prompt, **kw)  # type: ignore[arg-type]
    return run(request, settings=settings)


def sent_prompts(settings: Settings, session_id: str) -> list[str]:
    """What the fake agent was told in the conversation, as its transcript holds it."""
    (path,) = find_transcripts(settings, session_id)
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    return [e["message"]["content"] for e in entries if e["type"] == "user"]


def resumes_of(settings: Settings, session: SessionRecord, session_id: str) -> list[RunRecord]:
    store = open_store(settings.resolved_store_url)
    try:
        runs = store.list_runs(session.agent, session.repo, session.thread, limit=100)
    finally:
        store.close()
    return [r for r in runs if r.mode == Mode.RESUME and r.session_id_in == session_id]


def strikes(settings: Settings, session: SessionRecord, session_id: str) -> int:
    store = open_store(settings.resolved_store_url)
    try:
        found = strike_store(store).strikes(key_of(session), session_id)
    finally:
        store.close()
    return found.strikes if found else 0


def test_two_instant_failures_in_a_row_quarantine_the_conversation(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = go(settings, src_repo, "remember the word heron")
    poisoned = first.session.agent_session_id
    assert poisoned
    monkeypatch.setenv("FAKE_AGENT_RESUME_FAIL", "1")

    failed = go(settings, src_repo, "second")  # one strike: the run fails, the id is kept
    assert [a.outcome for a in failed.attempts] == [Outcome.FAILED]
    assert "invalid_request_error" in (failed.run.error or "")
    assert failed.session.agent_session_id == poisoned and strikes(settings, first.session, poisoned) == 1

    again = go(settings, src_repo, "third")  # the second in a row: quarantined, recovered at once
    assert [(a.mode, a.outcome) for a in again.attempts] == [
        (Mode.RESUME, Outcome.FAILED),
        (Mode.RECOVER, Outcome.SUCCEEDED),
    ]
    struck, recovered = again.attempts
    assert struck.note and f"conversation {poisoned} is quarantined" in struck.note
    assert recovered.note and "quarantined" in recovered.note and "never resumed again" in recovered.note
    assert recovered.prompt_kind == PromptKind.RECAP
    assert again.session.agent_session_id not in (None, poisoned)
    (told,) = sent_prompts(settings, str(again.session.agent_session_id))  # the new conversation's first
    assert "remember the word heron" in told and "third" in told

    monkeypatch.delenv("FAKE_AGENT_RESUME_FAIL")
    later = go(settings, src_repo, "fourth")  # the new conversation goes on; the old id never again
    assert later.run.mode == Mode.RESUME and later.run.session_id_in == again.session.agent_session_id
    assert len(resumes_of(settings, first.session, poisoned)) == 2


def test_retries_within_one_run_resume_an_id_twice_at_most(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = go(settings, src_repo, "one")
    poisoned = first.session.agent_session_id
    monkeypatch.setenv("FAKE_AGENT_RESUME_FAIL", "1")
    result = go(settings, src_repo, "two", retries=5)
    assert [(a.mode, a.outcome) for a in result.attempts] == [
        (Mode.RESUME, Outcome.FAILED),
        (Mode.RESUME, Outcome.FAILED),
        (Mode.RECOVER, Outcome.SUCCEEDED),
    ]
    assert result.ok and "two" in result.attempts[-1].prompt
    assert len(resumes_of(settings, first.session, str(poisoned))) == 2


def test_a_resume_that_reaches_the_model_clears_the_strikes(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failures with an answer between them are not "in a row"; nor is a slow failure one "at once"."""
    first = go(settings, src_repo, "one")
    sid = first.session.agent_session_id
    assert sid
    monkeypatch.setenv("FAKE_AGENT_RESUME_FAIL", "1")
    assert go(settings, src_repo, "two").run.outcome == Outcome.FAILED
    assert strikes(settings, first.session, sid) == 1
    monkeypatch.delenv("FAKE_AGENT_RESUME_FAIL")
    assert go(settings, src_repo, "three").ok
    assert strikes(settings, first.session, sid) == 0
    monkeypatch.setenv("FAKE_AGENT_RESUME_FAIL", "1")
    monkeypatch.setattr(quarantine, "QUICK", 0.0)  # every failure now took longer than "at once"
    assert go(settings, src_repo, "four").run.outcome == Outcome.FAILED
    assert go(settings, src_repo, "five").run.outcome == Outcome.FAILED
    assert strikes(settings, first.session, sid) == 0 and len(resumes_of(settings, first.session, sid)) == 4


def test_a_quarantined_id_is_never_resumed_from_another_machine(
    settings: Settings, src_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The strikes are in the store: one on each machine is two in a row; a key that names the
    quarantined id again (a store restored from an older backup) recovers instead of resuming it."""
    other = settings.with_(home=tmp_path / "machine-b", store_url=settings.resolved_store_url)
    first = go(settings, src_repo, "one")
    poisoned = first.session.agent_session_id
    assert poisoned
    monkeypatch.setenv("FAKE_AGENT_RESUME_FAIL", "1")
    assert go(settings, src_repo, "two").run.outcome == Outcome.FAILED
    moved = go(other, src_repo, "three")  # hydrated there from the snapshot, and refused again
    assert [a.mode for a in moved.attempts] == [Mode.RESUME, Mode.RECOVER] and moved.ok
    monkeypatch.delenv("FAKE_AGENT_RESUME_FAIL")
    store = open_store(settings.resolved_store_url)
    try:
        store.save_session(dataclasses.replace(moved.session, agent_session_id=poisoned))
    finally:
        store.close()
    back = go(settings, src_repo, "four")
    assert [a.mode for a in back.attempts] == [Mode.RECOVER] and back.ok
    assert back.run.note and f"conversation {poisoned} is quarantined" in back.run.note
    assert len(resumes_of(settings, first.session, poisoned)) == 2


@pytest.mark.parametrize(
    ("change", "counts"),
    [
        ({}, True),
        ({"mode": Mode.FRESH}, False),  # not a resume
        ({"outcome": Outcome.TIMED_OUT}, False),  # baton stopped it
        ({"usage": {"output_tokens": 3}}, False),  # the model answered
        ({"usage": {"outputTokens": 3}}, False),  # (as the ACP agents count it)
        ({"usage": {"output_tokens": 0, "input_tokens": 900}}, True),  # refused: no output
        ({"ended_at": 130.0}, False),  # took 30 s: not at once
        ({"outcome": Outcome.SESSION_LOST}, True),
    ],
)
def test_what_counts_as_failing_at_once(change: dict[str, object], counts: bool) -> None:
    base = RunRecord(
        id="r1",
        agent="fake",
        repo="o/r",
        thread="t",
        attempt=1,
        mode=Mode.RESUME,
        prompt_kind=PromptKind.DELTA,
        prompt="p",
        started_at=100.0,
        ended_at=101.0,
        outcome=Outcome.FAILED,
        session_id_in="s1",
    )
    record = dataclasses.replace(base, **change)  # type: ignore[arg-type]
    assert quarantine.failed_at_once(record, stopped_by_baton=False) is counts
    assert quarantine.failed_at_once(base, stopped_by_baton=True) is False


def test_strikes_are_kept_per_conversation(settings: Settings, src_repo: Path) -> None:
    store = open_store(settings.resolved_store_url)
    tables: Transactions = store
    key = key_of(go(settings, src_repo, "one").session)
    try:
        kept = strike_store(tables)
        assert not kept.strike(key, "s1", "r1", "no", 2).quarantined
        assert kept.strike(key, "s1", "r2", "no again", 2).quarantined
        third = kept.strike(key, "s1", "r3", "'; DROP TABLE runs; --", 2)
        assert third.quarantined_at == kept.strike(key, "s1", "r4", "x", 2).quarantined_at  # the first time
        kept.clear(key, "s1")  # a quarantined id stays quarantined
        assert kept.strike(key, "s2", "r5", "other", 2).strikes == 1
        kept.clear(key, "s2")
        assert [s.session_id for s in kept.of_key(key)] == ["s1"]
        assert kept.quarantined_by_agent() == {"fake": 1}
        assert json.loads(json.dumps(kept.of_key(key)[0].to_json()))["strikes"] == 4
    finally:
        store.close()
