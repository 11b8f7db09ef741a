"""A transcript in a format baton cannot read (another release of the CLI changed it) is caught before
a resume: the run says so and recovers with a recap (:mod:`baton.agents.formats`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from baton import Mode, Outcome, PromptKind, RunRequest, RunResult, run
from baton.agents.formats import claude_problem, codex_problem, gemini_problem
from baton.keys import key_of
from baton.sessions.snapshots import take_snapshot
from baton.settings import Settings
from baton.store import open_store
from baton.testing.fake import FakeAgent, find_transcripts
from baton.workspace.keyspace import session_agent

Edit = Callable[[dict[str, Any]], dict[str, Any] | None]


OLDER = "0.0.1-older"  # the release that wrote a conversation before an upgrade


def jsonl(*entries: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in entries)


def rewrite(path: Path, edit: Edit) -> None:
    """Each JSON line through ``edit`` (None drops it), as a release that changed the format writes."""
    out = []
    for line in path.read_text().splitlines():
        changed = edit(json.loads(line))
        if changed is not None:
            out.append(json.dumps(changed))
    path.write_text("\n".join(out) + "\n")


CLAUDE: list[dict[str, Any]] = [
    {"type": "queue-operation", "operation": "enqueue"},
    {"type": "user", "uuid": "u1", "sessionId": "s", "message": {"role": "user", "content": "hi"}},
    {"type": "assistant", "uuid": "a1", "sessionId": "s", "message": {"role": "assistant", "content": []}},
    {"type": "last-prompt", "leafUuid": "a1"},
]


def renamed_message(entry: dict[str, Any]) -> dict[str, Any]:
    """(Longer than the original, as a file a CLI appended to is: a shorter one would be hydrated
    from the store's snapshot, which still holds the old format.)"""
    if "message" in entry:
        entry["message_v2"] = entry.pop("message")
    return entry


def renamed_type(entry: dict[str, Any]) -> dict[str, Any]:
    if entry.get("type") == "user":
        entry["type"] = "human"
    return entry


def envelope(entry: dict[str, Any]) -> dict[str, Any]:
    return {"v": 2, "record": entry}


def test_claude_as_the_pinned_cli_writes_it_is_fine() -> None:
    assert claude_problem(jsonl(*CLAUDE)) is None
    # a release that adds a metadata entry loses nothing; garbage and a torn last line are tolerated
    extra = jsonl(*CLAUDE, {"type": "brand-new-metadata", "x": 1}) + b"garbage\n" + b'{"type": "us'
    assert claude_problem(extra) is None
    assert claude_problem(b"") is None  # empty: the CLI itself says "not found"


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (renamed_message, "line 2 (an entry of type 'user') is a turn in a format baton cannot read"),
        (renamed_type, "line 2 (an entry of type 'human') is a turn in a format baton cannot read"),
        (envelope, "none of its 4 entries is a conversation turn in a format baton can read"),
    ],
)
def test_claude_format_changes_are_caught(edit: Edit, said: str) -> None:
    edited = [edit(json.loads(json.dumps(e))) for e in CLAUDE]
    assert claude_problem(jsonl(*(e for e in edited if e))) == said


def test_a_newer_release_appending_a_changed_turn_is_caught() -> None:
    """Half a history: the old turns readable, the newest in a new shape that an older CLI would skip."""
    newer = {"type": "user", "uuid": "u2", "message": {"role": "user", "text": "moved"}}
    assert claude_problem(jsonl(*CLAUDE, newer)) == (
        "line 5 (an entry of type 'user') is a turn in a format baton cannot read"
    )


CODEX: list[dict[str, Any]] = [
    {"type": "session_meta", "payload": {"id": "t", "cli_version": "0.169.0"}},
    {"type": "turn_context", "payload": {"cwd": "/w"}},
    {"type": "response_item", "payload": {"type": "message", "role": "user", "content": []}},
    {"type": "event_msg", "payload": {"type": "token_count"}},
    {"type": "response_item", "payload": {"type": "message", "role": "assistant", "content": []}},
]


def test_codex_formats() -> None:
    assert codex_problem(jsonl(*CODEX)) is None
    assert codex_problem(jsonl(*CODEX[1:])) == "its first entry is not the session_meta header Codex writes"
    moved = [CODEX[0], *({"kind": e["type"], "data": e["payload"]} for e in CODEX[1:])]
    assert (
        codex_problem(jsonl(*moved))
        == "none of its 5 entries is a conversation turn in a format baton can read"
    )
    flat = {"type": "response_item", "item": {"type": "message", "role": "user", "content": []}}
    assert codex_problem(jsonl(*CODEX, flat)) == (
        "line 6 (an entry of type 'response_item') is a turn in a format baton cannot read"
    )


GEMINI: list[dict[str, Any]] = [
    {"sessionId": "s", "projectHash": "p", "startTime": "t"},
    {"id": "1", "type": "user", "content": [{"text": "hi"}]},
    {"id": "2", "type": "gemini", "content": "hello"},
    {"$set": {"lastUpdated": "t"}},
]


def test_gemini_formats() -> None:
    assert gemini_problem(jsonl(*GEMINI)) is None
    rewritten = {"$set": {"messages": GEMINI[1:3]}}  # a resumed turn rewrites the history as one update
    assert gemini_problem(jsonl(GEMINI[0], rewritten)) is None
    renamed = [GEMINI[0], *({**e, "type": "human"} if e.get("type") == "user" else e for e in GEMINI[1:])]
    assert gemini_problem(jsonl(*renamed)) == (
        "line 2 (an entry of type 'human') is a turn in a format baton cannot read"
    )


def go(settings: Settings, repo: Path, prompt: str) -> RunResult:
    return run(RunRequest(agent="fake", repo=str(repo), thread="fmt", prompt=prompt), settings=settings)


@pytest.mark.parametrize("edit", [renamed_message, renamed_type, envelope])
def test_a_changed_transcript_recovers_with_a_recap_and_says_so(
    settings: Settings, src_repo: Path, edit: Edit
) -> None:
    first, second = go(settings, src_repo, "make a plan"), go(settings, src_repo, "step two")
    assert (first.run.mode, second.run.mode) == (Mode.FRESH, Mode.RESUME)
    old_id = str(second.session.agent_session_id)
    [path] = find_transcripts(settings, old_id)
    rewrite(path, edit)  # what another release of the CLI would have written
    edited = path.read_bytes()
    store = open_store(settings.resolved_store_url)
    store.update_run(second.run.id, cli_version=OLDER)  # ... and that release ran the last turn,
    # whose end snapshotted (and marked) the transcript as it wrote it
    take_snapshot(store, session_agent(second.session, settings), key_of(second.session), old_id)
    third = go(settings, src_repo, "step three")
    assert third.run.outcome == Outcome.SUCCEEDED
    assert (third.run.mode, third.run.prompt_kind) == (Mode.RECOVER, PromptKind.RECAP)
    note = str(third.run.note)
    assert f"the transcript of conversation {old_id} is in a format baton cannot read" in note
    assert f"its last turn ran on fake {OLDER}" in note
    assert f"the old transcript is kept at {path}" in note
    assert third.session.agent_session_id not in (None, old_id)
    assert path.read_bytes() == edited  # nothing of the old conversation is lost
    [new] = find_transcripts(settings, str(third.session.agent_session_id))
    sent = [json.loads(line) for line in new.read_text().splitlines()]
    recap = next(e["message"]["content"] for e in sent if e["type"] == "user")
    assert "make a plan" in recap and "step two" in recap and "step three" in recap
    fourth = go(settings, src_repo, "step four")  # the new conversation resumes as usual
    assert (
        fourth.run.mode == Mode.RESUME and fourth.session.agent_session_id == third.session.agent_session_id
    )


def test_under_the_same_release_the_transcript_is_not_read(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a change of release changes a format: a turn under the release that ran the last one does
    not parse the transcript (a long Gemini chat costs tens of ms); after an upgrade it is read."""
    judged: list[int] = []
    real = FakeAgent.transcript_problem

    def counting(self: FakeAgent, transcript: bytes) -> str | None:
        judged.append(len(transcript))
        return real(self, transcript)

    monkeypatch.setattr(FakeAgent, "transcript_problem", counting)
    first, second = go(settings, src_repo, "a"), go(settings, src_repo, "b")
    assert second.run.mode == Mode.RESUME and first.run.cli_version == second.run.cli_version is not None
    assert judged == []
    open_store(settings.resolved_store_url).update_run(second.run.id, cli_version=OLDER)
    third = go(settings, src_repo, "c")
    assert third.run.mode == Mode.RESUME and len(judged) == 1 and judged[0] > 0


def test_an_unchanged_transcript_resumes(settings: Settings, src_repo: Path) -> None:
    results = [go(settings, src_repo, p) for p in ("a", "b", "c")]
    assert [r.run.mode for r in results] == [Mode.FRESH, Mode.RESUME, Mode.RESUME]
    assert all(r.run.note is None or "format" not in r.run.note for r in results)
