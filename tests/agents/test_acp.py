"""The ACP adapter (:mod:`baton.agents.acp`) and its bridge (:mod:`baton.agents.acpbridge`) through the
whole runner, driving the fake ACP agent (:mod:`tests.support.fake_acp_agent`, newline-delimited JSON-RPC
as ``opencode acp`` speaks it): a conversation created, loaded by id and grown; the agent's permission
requests answered from the access level (edits at ``edit``, commands only at ``full``) and done or
refused for real; a wiped home hydrated from the store; a conversation gone everywhere recovered with a
recap; a timeout cancelling the turn."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton import Mode, Outcome, PromptKind, RunRequest, RunResult, run
from baton.agents import AGENTS, register_agent, unregister_agent
from baton.agents.acpbridge import decide
from baton.agents.events import LogRenderer
from baton.asking.questions import Question
from baton.keys import make_key
from baton.models import Access, OnPermission
from baton.settings import Settings
from baton.store import Store
from baton.workspace.keyspace import agent_for, key_home
from tests.support.fake_acp import ACP_FACTORY, ACP_NAME


@pytest.fixture(autouse=True)
def fake_acp() -> Iterator[None]:
    """The fake ACP agent, known to this module's tests only (the API's schema of the others and
    `baton agents` list the agents every process knows)."""
    register_agent(ACP_NAME, ACP_FACTORY)
    yield
    unregister_agent(ACP_NAME)


def go(settings: Settings, repo: Path, prompt: str, **how: object) -> RunResult:
    request = RunRequest(agent=ACP_NAME, repo=str(repo), thread="acp", prompt=prompt, **how)  # type: ignore[arg-type]
    return run(request, settings=settings)


def test_a_conversation_is_created_loaded_by_id_and_grows(settings: Settings, src_repo: Path) -> None:
    first = go(settings, src_repo, "outline the parser")
    assert first.ok, first.run.error
    assert first.run.mode == Mode.FRESH and first.session.agent_session_id
    assert first.run.result == "fake acp reply: received 2 messages"
    # what the conversation held (its agent names no model: no window known)
    context = {"tokens": 25, "window": None, "model": None}
    assert first.run.usage == {"input_tokens": 20, "output_tokens": 5, "context": context}
    second = go(settings, src_repo, "write it")
    assert second.ok and second.run.mode == Mode.RESUME
    assert second.run.session_id_in == first.session.agent_session_id == second.session.agent_session_id
    assert second.run.result == "fake acp reply: received 4 messages", "the history came along"


def restored(result: RunResult) -> tuple[str, int]:
    """How the turn's conversation was restored (the bridge's ``acp.session`` event), and how many
    ``session/update`` notifications that sent."""
    log = [json.loads(line) for line in Path(result.run.log_path).read_text().splitlines()]
    session = next(e for e in log if e.get("type") == "acp.session")
    return session["restored"], session["replayed"]


@pytest.mark.parametrize(
    ("advertised", "method", "replayed"),
    [
        ("", "session/load", 2),  # not advertised: the history replayed by a load
        ("1", "session/resume", 0),  # advertised: resumed, nothing sent back
        ("absent", "session/load", 2),  # advertised, but method not found: loaded after all
    ],
)
def test_a_conversation_is_resumed_where_the_agent_advertises_it_else_loaded(
    settings: Settings,
    src_repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    advertised: str,
    method: str,
    replayed: int,
) -> None:
    monkeypatch.setenv("FAKE_ACP_RESUME", advertised)
    first = go(settings, src_repo, "outline the parser")
    assert restored(first) == ("", 0)
    second = go(settings, src_repo, "write it")
    assert second.ok and second.run.mode == Mode.RESUME, second.run.error
    assert second.session.agent_session_id == first.session.agent_session_id
    assert restored(second) == (method, replayed)
    assert second.run.result == "fake acp reply: received 4 messages", "the history came along"
    shown = [e.text for e in LogRenderer(ACP_NAME).feed(Path(second.run.log_path).read_text().splitlines())]
    said = "resumed" if method == "session/resume" else f"loaded ({replayed} replayed)"
    assert f"session {second.session.agent_session_id} · {said}" in shown


@pytest.mark.parametrize(
    ("advertised", "resume", "refusal", "asked"),
    [
        (True, True, None, ["session/resume"]),
        (True, True, -32601, ["session/resume", "session/load"]),  # method not found: it has none
        (True, True, -32602, ["session/resume", "session/load"]),  # invalid params: not as sent
        (True, True, -32002, ["session/resume"]),  # not found: lost, no load tried after it
        (False, True, None, ["session/load"]),
        (True, False, None, ["session/load"]),  # the adapter's choice (``resumes = False``)
    ],
)
def test_restore_resumes_where_advertised_and_loads_otherwise(
    advertised: bool, resume: bool, refusal: int | None, asked: list[str]
) -> None:
    from typing import Any, cast

    from baton.agents.acpbridge import Peer, restore

    class Agent:
        """What :func:`restore` uses of a peer: ``call`` (recorded) and ``replaying``."""

        def __init__(self) -> None:
            self.asked: list[str] = []
            self.replaying = False

        def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
            assert self.replaying and params == {"sessionId": "s", "cwd": "/w", "mcpServers": []}
            self.asked.append(method)
            if method == "session/resume" and refusal is not None:
                return {"error": {"code": refusal, "message": "no"}}
            return {"result": {}}

    agent = Agent()
    capabilities: dict[str, object] = {"loadSession": True}
    if advertised:
        capabilities["sessionCapabilities"] = {"resume": {}}
    method, answer = restore(cast(Peer, agent), {"agentCapabilities": capabilities}, "s", "/w", [], resume)
    assert agent.asked == asked and method == asked[-1] and not agent.replaying
    assert ("error" in answer) is (refusal == -32002)


def test_an_adapter_that_does_not_resume_loads_where_the_agent_advertises_resume(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``AcpAgent.resumes = False`` (a release whose resume misbehaves): loaded all the same."""
    from tests.support.fake_acp import FakeAcpAgent

    monkeypatch.setenv("FAKE_ACP_RESUME", "1")
    monkeypatch.setattr(FakeAcpAgent, "resumes", False)
    go(settings, src_repo, "one")
    second = go(settings, src_repo, "two")
    assert second.ok and restored(second) == ("session/load", 2), second.run.error
    assert second.run.result == "fake acp reply: received 4 messages"


def test_a_resume_the_agent_refuses_is_a_lost_conversation_then_recovered(
    settings: Settings, store: Store, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused as a conversation it does not have (not as a method it lacks): no load is tried after it."""
    monkeypatch.setenv("FAKE_ACP_RESUME", "1")
    first = go(settings, src_repo, "one")
    store.delete_snapshot(ACP_NAME, first.session.repo, "acp")
    for path in next((settings.home / "keys" / ACP_NAME).rglob("sessions")).iterdir():
        path.write_text("garbled")
    after = go(settings, src_repo, "two")
    assert after.ok, after.run.error
    assert [a.outcome for a in after.attempts] == [Outcome.SESSION_LOST, Outcome.SUCCEEDED]
    log = [json.loads(line) for line in Path(after.attempts[0].log_path).read_text().splitlines()]
    assert [e["step"] for e in log if e.get("type") == "acp.error"] == ["session/resume"]
    assert after.run.mode == Mode.RECOVER and after.session.agent_session_id != first.session.agent_session_id


@pytest.mark.parametrize(
    ("access", "made", "ran"),
    [(Access.READ, False, False), (Access.EDIT, True, False), (Access.FULL, True, True)],
)
def test_permission_requests_are_answered_from_the_access_level(
    settings: Settings, src_repo: Path, access: Access, made: bool, ran: bool
) -> None:
    result = go(settings, src_repo, "[[acp:edit made.txt]] [[acp:execute touch ran.txt]]", access=access)
    assert result.ok, result.run.error
    worktree = Path(result.session.worktree)
    assert (worktree / "made.txt").exists() is made
    assert (worktree / "ran.txt").exists() is ran
    log = [json.loads(line) for line in Path(result.run.log_path).read_text().splitlines()]
    decisions = {e["kind"]: e["allowed"] for e in log if e.get("type") == "acp.permission"}
    assert decisions == {"edit": made, "execute": ran}, "every request answered and recorded"


def test_a_permission_request_without_the_wanted_option_is_cancelled() -> None:
    reject_only = {"toolCall": {"kind": "edit"}, "options": [{"optionId": "r", "kind": "reject_once"}]}
    assert decide("edit", reject_only)[0] == {"outcome": "cancelled"}
    assert decide("read", reject_only)[0] == {"outcome": "selected", "optionId": "r"}
    assert decide("full", {"toolCall": "garbled", "options": "garbled"})[0] == {"outcome": "cancelled"}


def test_a_wiped_home_is_hydrated_from_the_store(settings: Settings, src_repo: Path) -> None:
    first = go(settings, src_repo, "one")
    go(settings, src_repo, "two")
    shutil.rmtree(settings.home / "keys" / ACP_NAME)  # a redeploy on a disk that is not persistent
    after = go(settings, src_repo, "three")
    assert after.ok and after.run.mode == Mode.RESUME, after.run.error
    assert after.session.agent_session_id == first.session.agent_session_id
    assert after.run.result == "fake acp reply: received 6 messages"


def test_a_conversation_gone_everywhere_is_recovered_with_a_recap(
    settings: Settings, store: Store, src_repo: Path
) -> None:
    first = go(settings, src_repo, "implement the parser")
    shutil.rmtree(settings.home / "keys" / ACP_NAME)
    store.delete_snapshot(ACP_NAME, first.session.repo, "acp")
    after = go(settings, src_repo, "write the docs")
    assert after.ok, after.run.error
    assert after.run.mode == Mode.RECOVER and after.run.prompt_kind == PromptKind.RECAP
    assert after.session.agent_session_id != first.session.agent_session_id


def test_a_load_the_agent_refuses_is_a_lost_conversation_then_recovered(
    settings: Settings, store: Store, src_repo: Path
) -> None:
    first = go(settings, src_repo, "one")
    store.delete_snapshot(ACP_NAME, first.session.repo, "acp")  # (else baton restores the store's copy)
    sessions = next((settings.home / "keys" / ACP_NAME).rglob("sessions"))
    for path in sessions.iterdir():  # there, but the agent cannot load it
        path.write_text("garbled")
    after = go(settings, src_repo, "two")
    assert after.ok, after.run.error
    assert [a.outcome for a in after.attempts] == [Outcome.SESSION_LOST, Outcome.SUCCEEDED]
    assert after.attempts[0].error and "could not load the conversation" in after.attempts[0].error
    assert after.run.mode == Mode.RECOVER and after.session.agent_session_id != first.session.agent_session_id


def test_a_timeout_cancels_the_turn_and_the_conversation_resumes(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = go(settings, src_repo, "one")
    monkeypatch.setenv("FAKE_ACP_DELAY", "30")
    slow = go(settings, src_repo, "two", timeout=2)
    assert slow.run.outcome == Outcome.TIMED_OUT
    monkeypatch.setenv("FAKE_ACP_DELAY", "0")
    after = go(settings, src_repo, "three")
    assert after.ok and after.run.session_id_in == first.session.agent_session_id
    assert after.run.prompt_kind == PromptKind.INTERRUPTED


def test_runs_logs_shows_an_acp_turn(settings: Settings, src_repo: Path) -> None:
    result = go(settings, src_repo, "[[acp:edit made.txt]] [[acp:execute touch ran.txt]]", access=Access.EDIT)
    shown = [
        (e.kind, e.text)
        for e in LogRenderer(ACP_NAME).feed(Path(result.run.log_path).read_text().splitlines())
    ]
    shown += [(e.kind, e.text) for e in LogRenderer(ACP_NAME).flush()]
    assert ("info", "allowed at edit: edit edit made.txt") in shown
    assert ("info", "refused at edit: execute execute touch ran.txt") in shown
    assert ("tool", "edit made.txt") in shown and ("done", "done") in shown
    assert ("text", "fake acp reply: received 2 messages") in shown, "the chunks joined"


def test_a_local_transcript_is_trusted_by_its_own_format(tmp_path: Path) -> None:
    """Before a resume baton trusts the local transcript over the snapshot unless it looks damaged:
    a JSON transcript smaller than its snapshot or not parsing is; OpenCode's SQLite database (smaller
    once its WAL is merged) and Copilot's rewritten ``workspace.yaml`` are not, so such a resume loads
    the local conversation instead of overwriting it with an older snapshot."""
    from baton.models import Snapshot
    from baton.runner.decide import SQLITE, _damage

    def snapshot(total: int) -> Snapshot:
        return Snapshot("a", "r", "t", "s", {}, total, 0.0)

    db, wal = tmp_path / "opencode.db", tmp_path / "opencode.db-wal"
    db.write_bytes(SQLITE + b"\0" * 100)
    wal.write_bytes(b"")
    assert _damage([db, wal], snapshot(10_000)) is None
    db.write_bytes(b"garbage")
    assert _damage([db], None) == "opencode.db is not a SQLite database"
    events, workspace = tmp_path / "events.jsonl", tmp_path / "workspace.yaml"
    events.write_text('{"type": "session.start"}\n')
    workspace.write_text("id: x\n")
    assert _damage([events, workspace], snapshot(10_000)) is None
    assert (
        _damage([events], snapshot(10_000))
        == f"the local transcript has {events.stat().st_size} bytes, the snapshot 10000"
    )
    events.write_bytes(b"\x00\x01 not json\n")
    assert _damage([events, workspace], None) == "events.jsonl does not parse as JSONL"


@pytest.mark.parametrize("pids", [1, 2])
def test_a_bridge_under_the_process_limit_says_so_in_one_line(
    settings: Settings, src_repo: Path, pids: int
) -> None:
    """Under ``BATON_RUN_PIDS`` the bridge cannot start its agent (1: no fork) or the thread that reads
    it (2): the run ends ``limited``, and its log has one line saying why, never a Python traceback."""
    from baton.sandbox import cgroups

    assert "pids" in cgroups.probe().enforces(), "this host enforces no process limit: nothing to test"
    result = go(settings, src_repo, "hello", pids=pids)
    assert result.run.outcome == Outcome.LIMITED, (result.run.outcome, result.run.error)
    log = Path(result.run.log_path).read_text()
    assert "Traceback" not in log and 'File "' not in log, log
    said = [json.loads(line) for line in log.splitlines()]
    stderr = [e["line"] for e in said if e.get("type") == "baton.stderr"]
    assert len(stderr) == 1 and stderr[0].startswith("acpbridge: cannot "), stderr
    assert "process limit, BATON_RUN_PIDS" in stderr[0]
    assert result.attempts[0].error and "BATON_RUN_PIDS" in result.attempts[0].error


def test_with_on_permission_ask_a_refused_permission_becomes_the_question_of_the_turn(
    settings: Settings, src_repo: Path
) -> None:
    """``on_permission = "ask"``: the request above the access level is refused all the same (nothing
    runs), and the turn ends needs_input with it as a question; with the default, it just goes on."""
    asked = go(
        settings,
        src_repo,
        "[[acp:execute touch ran.txt]]",
        access=Access.EDIT,
        on_permission=OnPermission.ASK,
    )
    assert asked.run.outcome == Outcome.NEEDS_INPUT, asked.run.error
    assert not (Path(asked.session.worktree) / "ran.txt").exists()
    question = Question.from_json(asked.run.question)
    assert question is not None and "touch ran.txt (execute)" in question.text and "(edit)" in question.text
    went_on = go(settings, src_repo, "[[acp:execute touch ran.txt]]", access=Access.EDIT)
    assert went_on.run.outcome == Outcome.SUCCEEDED and went_on.run.question is None


@pytest.mark.parametrize(
    ("reported", "kept"),
    [
        ("1.18.33", "1.18.33"),
        ("2.0.0-beta.1+build", "2.0.0-beta.1+build"),
        ("--version", None),  # data from the agent: only what looks like a version
        ("1.0 && rm -rf /", None),
        ("9" * 65, None),
        (12, None),
        (None, None),
    ],
)
def test_opencode_reports_its_version_in_initialize_and_nothing_else_is_taken(
    tmp_path: Path, reported: object, kept: str | None
) -> None:
    """OpenCode's ``initialize`` answer names its version (``agentInfo``, as ``--version`` prints it):
    the turn takes it, so the CLI is never started only to be asked; an agent that does not say it
    reports that (Copilot's ``agentInfo`` is not its ``--version``) keeps asking."""
    from baton.agents.base import Turn
    from baton.agents.copilot import CopilotAgent
    from baton.agents.opencode import OpenCodeAgent

    event = {"type": "acp.session", "session_id": "ses_1", "agent": {"agentInfo": {"version": reported}}}
    turn = Turn()
    OpenCodeAgent("opencode", tmp_path, "opencode").on_event(event, turn)
    assert turn.session_id == "ses_1" and turn.version == kept
    other = Turn()
    CopilotAgent("copilot", tmp_path, "copilot").on_event(
        {**event, "agent": {"agentInfo": {"version": "1.0"}}}, other
    )
    assert other.session_id == "ses_1" and other.version is None


def test_each_opencode_key_keeps_all_its_state_in_its_own_home(settings: Settings) -> None:
    """What keeps two threads' OpenCode conversations apart (the real CLIs' two-threads test runs the
    ACP family on Copilot): every XDG directory OpenCode is launched with lies in its own key's home."""
    keys = [make_key("opencode", "https://example.com/acme/app.git", t, AGENTS) for t in ("alpha", "beta")]
    envs = [agent_for(key, settings).launch(Mode.FRESH, "hi", None).env for key in keys]
    for key, env in zip(keys, envs, strict=True):
        dirs = [Path(env[f"XDG_{part}_HOME"]) for part in ("DATA", "CONFIG", "CACHE", "STATE")]
        assert all(d.is_relative_to(key_home(settings, key)) for d in dirs), (key, dirs)
    assert not key_home(settings, keys[0]).is_relative_to(key_home(settings, keys[1]))
