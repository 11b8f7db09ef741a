"""The Gemini CLI adapter and its mock: argv per mode, events from recorded real lines, classification,
settings.json, transcript matching and the projects.json mapping — then the REAL Gemini CLI 0.61.0
against :class:`MockGemini` (marked slow).

The mock's replies say how many ``contents`` each conversation request carried: a fresh conversation
sends 1, each resumed turn adds 2 (1, 3, 5), so a growing count proves a run resumed its history.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from baton import Mode, Outcome, PromptKind, RunRequest, open_store, run
from baton.agents import AGENTS, Turn, clean_error, get_agent
from baton.agents.gemini import IMPORT_FAILED, MANAGED, NOT_FOUND, POLICY_FILE, GeminiAgent, read_chat
from baton.errors import AgentError, BadInput
from baton.keys import make_key
from baton.settings import Settings
from baton.testing.mock_gemini import MockGemini, fill_schema
from baton.workspace.keyspace import agent_for, key_home
from tests.conftest import BATON, make_repo, wait_for

SID = "5297d322-89bd-473b-acde-43c6d45dab4c"
TWIN = "5297d322-0000-4000-8000-000000000000"  # same 8-character short id, another session
# Lines the real CLI printed (gemini -p … -o stream-json, 0.61.0), timestamps trimmed.
INIT = {"type": "init", "timestamp": "t", "session_id": SID, "model": "pro"}
USER = {"type": "message", "timestamp": "t", "role": "user", "content": "step 1"}
DELTA = {"type": "message", "role": "assistant", "content": "mock reply #2: ", "delta": True}
DELTA2 = {"type": "message", "role": "assistant", "content": "received 3 contents", "delta": True}
RESULT = {
    "type": "result",
    "status": "success",
    "stats": {
        "total_tokens": 62,
        "input_tokens": 50,
        "output_tokens": 12,
        "cached": 20,
        "input": 30,
        "duration_ms": 119,
        "tool_calls": 0,
        "models": {"gemini-3.8-flash": {"total_tokens": 62}},
    },
}
API_ERROR = {
    "type": "result",
    "status": "error",
    "error": {"type": "unknown", "message": '[API Error: {"error":{"code":400,"message":"mock failure"}}]'},
    "stats": {"total_tokens": 0, "input_tokens": 0, "output_tokens": 0, "cached": 0, "input": 0},
}
INVALID_ID = (
    'Error resuming session: Invalid session identifier "12345678-aaaa-bbbb-cccc-dddddddddddd".\n'
    "  Searched for sessions in /h/.gemini/tmp/p4/chats.\n"
)
NO_SESSIONS = "Error resuming session: No previous sessions found for this project.\n"
CONTEXT = "<session_context>\nThis is the Gemini CLI. We are setting up the context for our chat.\n"


@pytest.fixture
def adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GeminiAgent:
    monkeypatch.delenv("BATON_GEMINI_MODEL", raising=False)
    monkeypatch.delenv("GEMINI_MODEL", raising=False)
    return GeminiAgent(tmp_path / "home", "/bin/gemini")


def header(session_id: str, **extra: Any) -> dict[str, Any]:
    return {"sessionId": session_id, "projectHash": "ab" * 32, "startTime": "t", "kind": "main", **extra}


def write_chat(agent: GeminiAgent, slug: str, name: str, records: list[dict[str, Any]]) -> Path:
    path = agent.gemini_dir / "tmp" / slug / "chats" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def conversation(session_id: str, prompt: str = "hello") -> list[dict[str, Any]]:
    """A real chat file's shape: header, the session context, a prompt and a reply."""
    context = {"id": "c0", "type": "user", "content": [{"text": CONTEXT}]}
    return [
        header(session_id),
        {"$set": {"messages": [context]}},
        {"id": "u1", "type": "user", "content": [{"text": prompt}]},
        {"id": "g1", "type": "gemini", "content": "mock reply #1: received 1 contents"},
        {"$set": {"lastUpdated": "t"}},
    ]


def stub(session_id: str) -> list[dict[str, Any]]:
    """What a resume in a new minute writes: the header and the session context, nothing resumable."""
    return conversation(session_id)[:2]


# -- argv ----------------------------------------------------------------------------------------------


def test_clean_error_drops_what_gemini_prints_before_an_error() -> None:
    said = (  # what Gemini 0.61.0 printed before a real error (yolo, no terminal, no ripgrep)
        "Warning: 256-color support not detected. Using a terminal with at least 256-color support is "
        "recommended for a better visual experience.\nYOLO mode is enabled. All tool calls will be "
        "automatically approved.\nRipgrep is not available. Falling back to GrepTool.\nError: quota"
    )
    assert clean_error("gemini", said) == "Error: quota"


def test_argv_per_mode(adapter: GeminiAgent) -> None:
    fresh = adapter.launch(Mode.FRESH, "-rf do it", None)
    assert fresh.argv[:3] == ["/bin/gemini", "-o", "stream-json"]
    policy = f"--policy={adapter.home / '.gemini' / POLICY_FILE}"  # edit, the default access level
    assert fresh.argv[3:] == [
        "--approval-mode=auto_edit",
        policy,
        "-m",
        "pro",
        "--session-id",
        fresh.new_session_id,
    ]
    assert fresh.stdin == b"-rf do it"
    assert fresh.env == {
        "GEMINI_CLI_HOME": str(adapter.home),
        "GEMINI_CLI_TRUST_WORKSPACE": "true",
        "GEMINI_CLI_NO_RELAUNCH": "true",
    }
    recover = adapter.launch(Mode.RECOVER, "x", None)
    assert recover.argv[-2] == "--session-id" and recover.new_session_id not in (None, fresh.new_session_id)
    resume = adapter.launch(Mode.RESUME, "x", SID)
    assert resume.argv[-2:] == ["--resume", SID] and resume.new_session_id is None
    assert adapter.launch(Mode.CONTINUE, "x", None).argv[-2:] == ["--resume", "latest"]
    with pytest.raises(AgentError):
        adapter.launch(Mode.RESUME, "x", None)
    with pytest.raises(AgentError, match="no chat file"):
        adapter.launch(Mode.FORK, "x", SID)
    source = write_chat(adapter, "dev", f"session-2026-01-01T10-00-{SID[:8]}.jsonl", conversation(SID))
    write_chat(adapter, "dev", f"session-2026-01-01T11-00-{SID[:8]}.jsonl", stub(SID))
    fork = adapter.launch(Mode.FORK, "x", SID)
    # --session-file and --session-id are mutually exclusive: the fork's id comes from its init event
    assert fork.argv[-2:] == ["--session-file", str(source)] and fork.new_session_id is None
    assert "--session-id" not in fork.argv


def test_prompts_gemini_would_run_or_drop_are_guarded(adapter: GeminiAgent) -> None:
    def sent(prompt: str) -> str:
        launch = adapter.launch(Mode.RESUME, prompt, SID)
        assert launch.stdin is not None
        return launch.stdin.decode()

    assert sent("/clear the cache") == "Instruction: /clear the cache"
    assert sent("  ? why does it fail") == "Instruction:   ? why does it fail"
    assert sent("<session_context>x") == "Instruction: <session_context>x"
    assert sent("fix the /api route?") == "fix the /api route?"
    assert sent("--resume latest\nline two") == "--resume latest\nline two"


def test_a_prompt_gemini_would_cut_is_refused(adapter: GeminiAgent) -> None:
    limit = adapter.capabilities.max_prompt_bytes
    assert limit == 256_000
    adapter.check_prompt("é" * (limit // 2))
    with pytest.raises(BadInput, match="bytes; gemini takes at most"):
        adapter.launch(Mode.FRESH, "é" * (limit // 2 + 1), None)


def test_model_choice(adapter: GeminiAgent, monkeypatch: pytest.MonkeyPatch) -> None:
    def model_args() -> list[str]:
        argv = adapter.launch(Mode.FRESH, "x", None).argv
        return argv[argv.index("-m") : argv.index("-m") + 2] if "-m" in argv else []

    assert model_args() == ["-m", "pro"]
    adapter.prepare_home(30)
    settings = json.loads((adapter.gemini_dir / "settings.json").read_text())
    (adapter.gemini_dir / "settings.json").write_text(json.dumps({**settings, "model": {"name": "flash"}}))
    assert model_args() == ["-m", "flash"]
    monkeypatch.setenv("GEMINI_MODEL", "flash-lite")  # the CLI's own variable, above settings.json
    assert model_args() == ["-m", "flash-lite"]
    monkeypatch.setenv("BATON_GEMINI_MODEL", "gemini-2.5-flash")
    assert model_args() == ["-m", "gemini-2.5-flash"]
    monkeypatch.setenv("BATON_GEMINI_MODEL", "auto")
    assert model_args() == []


# -- events and classification ------------------------------------------------------------------------


def test_events_from_real_lines(adapter: GeminiAgent) -> None:
    turn = Turn()
    for event in (INIT, USER, DELTA, DELTA2):
        assert adapter.read_event(json.dumps(event), turn) == event
    assert turn.session_id == SID and turn.is_error, "not done before the result"
    assert adapter.read_event("Warning: 256-color support not detected.", turn) is None
    adapter.read_event(json.dumps(RESULT), turn)
    assert not turn.is_error and turn.result == "mock reply #2: received 3 contents"
    assert turn.usage == {
        "input_tokens": 30,
        "output_tokens": 12,
        "cache_read_input_tokens": 20,
        "total_tokens": 62,
        "tool_calls": 0,
    }
    assert turn.events == 5 and turn.errors == [] and turn.cost_usd is None
    assert adapter.classify(0, turn, "Ripgrep is not available.") == Outcome.SUCCEEDED


def test_text_around_tool_calls_and_empty_replies(adapter: GeminiAgent) -> None:
    turn = Turn()
    for event in (
        INIT,
        {"type": "message", "role": "assistant", "content": "Reading it.", "delta": True},
        {"type": "tool_use", "tool_name": "read_file", "tool_id": "t1", "parameters": {}},
        {"type": "tool_result", "tool_id": "t1", "status": "success"},
        {"type": "message", "role": "assistant", "content": "Done.", "delta": True},
        RESULT,
    ):
        adapter.read_event(json.dumps(event), turn)
    assert turn.result == "Reading it.\n\nDone."
    silent = Turn()
    for event in (INIT, RESULT):
        adapter.read_event(json.dumps(event), silent)
    assert silent.result == "" and adapter.classify(0, silent, "") == Outcome.SUCCEEDED


def test_errors_and_classification(adapter: GeminiAgent) -> None:
    event: dict[str, Any]  # the loops below mix the module's event constants with literal events
    failed = Turn()
    for event in (INIT, USER, API_ERROR):
        adapter.read_event(json.dumps(event), failed)
    assert failed.is_error and "mock failure" in failed.errors[0]
    assert adapter.classify(144, failed, "Error when talking to Gemini API") == Outcome.FAILED
    blocked = Turn()
    for event in (INIT, {"type": "error", "severity": "error", "message": "Maximum session turns exceeded"}):
        adapter.read_event(json.dumps(event), blocked)
    adapter.read_event(json.dumps({"type": "error", "severity": "warning", "message": "slow"}), blocked)
    adapter.read_event(json.dumps({"type": "result", "status": "error", "stats": {}}), blocked)
    assert blocked.errors[0] == "Maximum session turns exceeded" and len(blocked.errors) == 2
    assert adapter.classify(0, blocked, "") == Outcome.FAILED
    # nothing on stdout for a missing session: exit 42 and stderr only
    assert NOT_FOUND in INVALID_ID
    assert adapter.classify(42, Turn(), INVALID_ID) == Outcome.SESSION_LOST
    assert adapter.classify(42, Turn(), NO_SESSIONS) == Outcome.SESSION_LOST
    assert adapter.classify(42, Turn(), "Error importing session from file: x") == Outcome.SESSION_LOST
    # `--resume latest` with no session: a warning, then a NEW conversation, exit 0 — not lost
    fresh = Turn()
    for event in (INIT, DELTA, RESULT):
        adapter.read_event(json.dumps(event), fresh)
    assert adapter.classify(0, fresh, "No previous sessions found for this project.") == Outcome.SUCCEEDED
    torn = Turn()
    for event in (INIT, DELTA):
        adapter.read_event(json.dumps(event), torn)
    assert adapter.classify(0, torn, "") == Outcome.FAILED, "no result event: not a finished turn"
    assert adapter.classify(0, Turn(), "") == Outcome.FAILED


# -- settings.json --------------------------------------------------------------------------------------


def test_settings_merge_keeps_user_keys_and_turns_retention_off(adapter: GeminiAgent) -> None:
    path = adapter.gemini_dir / "settings.json"
    path.parent.mkdir(parents=True)
    user = {
        "ui": {"theme": "GitHub"},
        "security": {"auth": {"selectedType": "vertex-ai"}, "folderTrust": {"enabled": True}},
        "general": {"sessionRetention": {"enabled": True, "maxAge": "7d"}, "vimMode": True},
        "telemetry": {"enabled": True, "target": "gcp"},
        "mcpServers": {"x": {"command": "x"}},
    }
    path.write_text(json.dumps(user))
    ok, detail = adapter.retention(30)
    assert not ok and "deletes resumed sessions" in detail
    adapter.prepare_home(30)
    got = json.loads(path.read_text())
    assert got["ui"] == {"theme": "GitHub"} and got["mcpServers"] == user["mcpServers"]
    assert got["security"] == {"auth": {"selectedType": "vertex-ai"}, "folderTrust": {"enabled": True}}
    assert got["general"]["sessionRetention"] == {"enabled": False, "maxAge": "7d"}
    assert got["general"]["vimMode"] is True and got["general"]["enableAutoUpdate"] is False
    assert got["general"]["enableAutoUpdateNotification"] is False
    assert got["telemetry"] == {"enabled": False, "target": "gcp"}
    assert got["privacy"] == {"usageStatisticsEnabled": False}
    assert adapter.retention(30) == (True, "session retention off (baton's sweeper expires conversations)")
    before = path.stat().st_mtime_ns
    adapter.prepare_home(30)
    assert path.stat().st_mtime_ns == before, "nothing to change: not rewritten"
    assert not list(path.parent.glob("*.baton-tmp"))


def test_settings_on_a_fresh_home_and_a_broken_file(tmp_path: Path) -> None:
    agent = GeminiAgent(tmp_path / "h", "/bin/gemini")
    agent.prepare_home(7)
    got = json.loads((agent.gemini_dir / "settings.json").read_text())
    assert got["security"] == {"auth": {"selectedType": "gemini-api-key"}}
    assert got["general"]["sessionRetention"] == MANAGED["general"]["sessionRetention"] == {"enabled": False}
    (agent.gemini_dir / "settings.json").write_text("{not json")
    with pytest.raises(AgentError, match="not valid JSON"):
        agent.prepare_home(7)
    assert agent.retention(7)[0] is False


# -- transcripts and projects.json ----------------------------------------------------------------------


def test_transcript_files_match_the_full_id_and_skip_unresumable_files(adapter: GeminiAgent) -> None:
    real = write_chat(adapter, "api", f"session-2026-01-01T10-00-{SID[:8]}.jsonl", conversation(SID))
    twin = write_chat(adapter, "api", f"session-2026-01-01T10-05-{TWIN[:8]}.jsonl", conversation(TWIN))
    write_chat(adapter, "api", f"session-2026-01-01T11-00-{SID[:8]}.jsonl", stub(SID))
    write_chat(adapter, "web", f"session-2026-01-02T09-00-{SID[:8]}.jsonl", conversation(SID, "/clear")[:3])
    (real.parent / f"{real.name}.unreadable-123").write_text("x")
    assert adapter.transcript_files(SID) == [real]
    assert adapter.transcript_files(TWIN) == [twin]
    assert adapter.transcript_files(SID[:8]) == []
    assert adapter.transcript_files("") == []
    # torn and garbage lines are tolerated, as Gemini's loader does
    with real.open("a") as handle:
        handle.write('garbage\n{"id": "u2", "type": "us')
    assert adapter.transcript_files(SID) == [real]
    # a rewind to before the first prompt leaves nothing resumable
    with real.open("a") as handle:
        handle.write('\n{"$rewindTo": "u1"}\n')
    assert adapter.transcript_files(SID) == []


def test_read_chat_follows_set_and_legacy_files(tmp_path: Path) -> None:
    jsonl = tmp_path / "a.jsonl"
    records = [*conversation(SID), {"$set": {"sessionId": SID}}, {"$set": {"messages": []}}]
    jsonl.write_text("\n".join(json.dumps(r) for r in records))
    chat = read_chat(jsonl)
    assert chat is not None and chat.session_id == SID and not chat.resumable, "$set replaced the messages"
    legacy = tmp_path / "b.json"
    legacy.write_text(json.dumps({"sessionId": SID, "messages": [{"type": "gemini", "content": "hi"}]}))
    chat = read_chat(legacy)
    assert chat is not None and chat.resumable
    (tmp_path / "c.jsonl").write_bytes(b"\x00\xff binary")
    assert read_chat(tmp_path / "c.jsonl") is None and read_chat(tmp_path / "missing") is None


def test_after_hydrate_maps_the_exact_cwd_to_the_hydrated_slug(adapter: GeminiAgent, tmp_path: Path) -> None:
    cwd = tmp_path / "wt" / "issue-1"
    cwd.mkdir(parents=True)
    registry = adapter.gemini_dir / "projects.json"
    registry.parent.mkdir(parents=True)
    registry.write_text(json.dumps({"projects": {"/elsewhere/api": "api"}}))
    chat = write_chat(adapter, "issue-1-1", f"session-2026-01-01T10-00-{SID[:8]}.jsonl", conversation(SID))
    adapter.after_hydrate(SID, cwd)
    assert json.loads(registry.read_text()) == {
        "projects": {"/elsewhere/api": "api", str(cwd.resolve()): "issue-1-1"}
    }
    for base in ("tmp", "history"):
        assert (adapter.gemini_dir / base / "issue-1-1" / ".project_root").read_text() == str(cwd.resolve())
    assert chat.is_file() and adapter.transcript_files(SID) == [chat]
    assert not (adapter.gemini_dir / "projects.json.lock").exists()
    assert not list(adapter.gemini_dir.glob(".projects.json.*"))
    # a symlinked path to the worktree maps the physical directory, which is what the CLI sees
    link = tmp_path / "link"
    link.symlink_to(cwd)
    adapter.after_hydrate(SID, link)
    assert str(link) not in json.loads(registry.read_text())["projects"]


def test_after_hydrate_moves_a_chat_out_of_a_slug_another_directory_owns(
    adapter: GeminiAgent, tmp_path: Path
) -> None:
    ours, theirs = tmp_path / "a" / "issue-1", tmp_path / "c" / "issue-1"
    ours.mkdir(parents=True)
    theirs.mkdir(parents=True)
    # another key started first on this machine and claimed "issue-1", as Gemini does
    registry = adapter.gemini_dir / "projects.json"
    registry.parent.mkdir(parents=True)
    registry.write_text(json.dumps({"projects": {str(theirs): "issue-1"}}))
    (adapter.gemini_dir / "tmp" / "issue-1").mkdir(parents=True)
    (adapter.gemini_dir / "tmp" / "issue-1" / ".project_root").write_text(str(theirs))
    name = f"session-2026-01-01T10-00-{SID[:8]}.jsonl"
    write_chat(adapter, "issue-1", name, conversation(SID))  # where our snapshot put it
    adapter.after_hydrate(SID, ours)
    projects = json.loads(registry.read_text())["projects"]
    assert projects == {str(theirs): "issue-1", str(ours.resolve()): "issue-1-1"}
    assert adapter.transcript_files(SID) == [adapter.gemini_dir / "tmp" / "issue-1-1" / "chats" / name]
    assert not (adapter.gemini_dir / "tmp" / "issue-1" / "chats" / name).exists()
    # hydrated again into the other slug (a shorter, older copy): dropped there, ours kept
    ours_chat = adapter.transcript_files(SID)[0]
    write_chat(adapter, "issue-1", name, conversation(SID)[:4])
    adapter.after_hydrate(SID, ours)
    assert adapter.transcript_files(SID) == [ours_chat] and ours_chat.read_text().count("\n") == 5
    # once mapped, a later hydration of the same cwd lands in its slug
    write_chat(adapter, "issue-1", f"session-2026-01-02T10-00-{TWIN[:8]}.jsonl", conversation(TWIN))
    adapter.after_hydrate(TWIN, ours)
    assert adapter.transcript_files(TWIN)[0].parent.parent.name == "issue-1-1"
    assert json.loads(registry.read_text())["projects"] == projects


def test_after_hydrate_waits_for_geminis_lock_and_breaks_a_stale_one(
    adapter: GeminiAgent, tmp_path: Path
) -> None:
    write_chat(adapter, "w", f"session-2026-01-01T10-00-{SID[:8]}.jsonl", conversation(SID))
    registry = adapter.gemini_dir / "projects.json"
    registry.write_text('{"projects": {}}')
    lock = Path(str(registry) + ".lock")
    lock.mkdir()
    released: list[float] = []

    def release() -> None:
        time.sleep(0.4)  # the lock is held a while: after_hydrate must wait (the order is asserted below)
        # a Gemini start that held the lock wrote its own mapping meanwhile
        registry.write_text(json.dumps({"projects": {"/other": "other"}}))
        released.append(time.monotonic())
        lock.rmdir()

    thread = threading.Thread(target=release)
    thread.start()
    adapter.after_hydrate(SID, tmp_path)
    done = time.monotonic()
    thread.join()
    assert released and done >= released[0]
    assert json.loads(registry.read_text())["projects"] == {"/other": "other", str(tmp_path.resolve()): "w"}
    lock.mkdir()
    os.utime(lock, (time.time() - 60, time.time() - 60))  # its holder died long ago
    adapter.after_hydrate(SID, tmp_path / "..")
    assert not lock.exists()


# -- the mock ---------------------------------------------------------------------------------------------


def post(url: str, body: dict[str, Any]) -> tuple[str, str]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["Content-Type"], response.read().decode()


def test_mock_answers_routing_title_and_conversation_calls() -> None:
    router = {
        "type": "OBJECT",
        "properties": {
            "complexity_reasoning": {"type": "STRING"},
            "complexity_score": {"type": "INTEGER", "minimum": 1, "maximum": 100},
        },
        "required": ["complexity_reasoning", "complexity_score"],
    }
    assert fill_schema(router) == {"complexity_reasoning": "mock", "complexity_score": 1}
    user = {"role": "user", "parts": [{"text": "hello"}]}
    with MockGemini() as mock:
        base = f"{mock.url}/v1beta/models"
        kind, raw = post(
            f"{base}/gemini-3.5-flash-lite:generateContent",
            {"contents": [user], "generationConfig": {"responseJsonSchema": router}},
        )
        routed = json.loads(json.loads(raw)["candidates"][0]["content"]["parts"][0]["text"])
        assert kind == "application/json" and 1 <= routed["complexity_score"] <= 100
        _, raw = post(f"{base}/flash:generateContent", {"contents": [user]})
        assert json.loads(raw)["candidates"][0]["content"]["parts"][0]["text"] == "Mock session title"
        kind, raw = post(f"{base}/pro:streamGenerateContent?alt=sse", {"contents": [user, user, user]})
        chunks = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: ")]
        assert kind == "text/event-stream" and len(chunks) == 2
        assert (
            chunks[0]["candidates"][0]["content"]["parts"][0]["text"] == "mock reply #1: received 3 contents"
        )
        assert chunks[-1]["candidates"][0]["finishReason"] == "STOP" and chunks[-1]["usageMetadata"]
        assert len(mock.requests) == 3
        assert mock.history_counts() == [3] and mock.texts() == ["hello\nhello\nhello"]
        assert mock.env()["GOOGLE_GEMINI_BASE_URL"] == mock.url
    assert mock.env()["GEMINI_CLI_TRUST_WORKSPACE"] == "true"


# -- the real Gemini CLI against the mock ------------------------------------------------------------------


@pytest.fixture
def gemini(monkeypatch: pytest.MonkeyPatch) -> Iterator[MockGemini]:
    """The mock Gemini API, with this process's environment pointing the Gemini CLI at it."""
    monkeypatch.delenv("BATON_GEMINI_MODEL", raising=False)
    monkeypatch.delenv("GEMINI_MODEL", raising=False)
    with MockGemini() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield server


def go(settings: Settings, repo: Path, prompt: str, thread: str = "issue-1", **kw: Any) -> dict[str, Any]:
    result = run(
        RunRequest(agent="gemini", repo=str(repo), thread=thread, prompt=prompt, **kw), settings=settings
    )
    return result.to_json()


def agent_of(settings: Settings, repo: Path | None = None, thread: str = "issue-1") -> GeminiAgent:
    """The adapter of the key (``repo``, ``thread``), in its own home; the base one without a repo."""
    base = get_agent("gemini", settings)
    agent = base if repo is None else agent_for(make_key("gemini", str(repo), thread, AGENTS), settings)
    assert isinstance(agent, GeminiAgent)
    return agent


def gemini_direct(settings: Settings, cwd: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """Run the real CLI by hand (not through baton), as a user in the worktree would."""
    agent = agent_of(settings)
    env = {**os.environ, "GEMINI_CLI_HOME": str(home), "GEMINI_CLI_NO_RELAUNCH": "true"}
    return subprocess.run(
        [*agent.command, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_gemini_version_is_printed(settings: Settings) -> None:
    agent = agent_of(settings)
    version = agent.version()
    print(f"real Gemini CLI: {version} at {agent.command[0]}")
    assert version == "0.61.0"
    assert not agent.home.exists(), "asking the version leaves baton's agent home alone"


@pytest.mark.slow
def test_agent_home_wiped_hydrates_into_the_right_project(
    settings: Settings, tmp_path: Path, gemini: MockGemini
) -> None:
    # two keys with the same thread name: in one shared home Gemini would give their worktrees the slugs
    # issue-1 and issue-1-1; each key has a home of its own, where its worktree's project is issue-1
    repo_a, repo_b = (make_repo(tmp_path / name) for name in ("repo-a", "repo-b"))
    a, b = go(settings, repo_a, "alpha one"), go(settings, repo_b, "bravo one")
    agent_a, agent_b = agent_of(settings, repo_a), agent_of(settings, repo_b)
    assert agent_b.transcript_files(b["session_id"])[0].parent.parent.name == "issue-1"
    assert agent_a.transcript_files(b["session_id"]) == [], "B's conversation is not in A's home"
    shutil.rmtree(settings.home / "keys" / "gemini")  # every key's home
    after_b = go(settings, repo_b, "bravo two")
    assert (after_b["mode"], after_b["outcome"], after_b["session_id"]) == (
        "resume",
        "succeeded",
        b["session_id"],
    )
    assert gemini.history_counts()[-1] == 3 and "bravo one" in gemini.texts()[-1]
    after_a = go(settings, repo_a, "alpha two")
    assert (after_a["mode"], after_a["outcome"], after_a["session_id"]) == (
        "resume",
        "succeeded",
        a["session_id"],
    )
    assert gemini.history_counts()[-1] == 3 and "alpha one" in gemini.texts()[-1]
    assert "bravo" not in gemini.texts()[-1]
    [chat_a] = agent_a.transcript_files(a["session_id"])
    projects = json.loads((agent_a.gemini_dir / "projects.json").read_text())["projects"]
    assert projects == {os.path.realpath(after_a["worktree"]): chat_a.parent.parent.name}


@pytest.mark.slow
def test_retention_bug_is_neutralised_and_reproduced_when_on(
    settings: Settings, src_repo: Path, gemini: MockGemini, tmp_path: Path
) -> None:
    first = go(settings, src_repo, "keep me")
    go(settings, src_repo, "and me")
    sid, worktree = str(first["session_id"]), Path(str(first["worktree"]))
    agent = agent_of(settings, src_repo)
    [real] = agent.transcript_files(sid)
    # what a resume in a new minute leaves behind: a header-only file with the same (full) id
    lines = real.read_text().splitlines(keepends=True)
    leftover = real.with_name(f"session-2000-01-01T00-00-{sid[:8]}.jsonl")
    leftover.write_text("".join(lines[:2]))
    assert agent.transcript_files(sid) == [real], "the leftover is not a transcript"
    # the bug's trigger: ANOTHER session starting in the same directory (a user's own gemini run)
    doomed = tmp_path / "retention-on"
    shutil.copytree(agent.home, doomed, symlinks=True)
    on = json.loads((doomed / ".gemini" / "settings.json").read_text())
    on["general"]["sessionRetention"] = {"enabled": True}  # Gemini's default
    (doomed / ".gemini" / "settings.json").write_text(json.dumps(on))
    for home in (agent.home, doomed):
        done = gemini_direct(settings, worktree, "--prompt=unrelated", "-o", "json", "-m", "flash", home=home)
        assert done.returncode == 0, done.stderr
    lost = doomed / real.relative_to(agent.home)
    assert not lost.exists() and not lost.with_name(leftover.name).exists(), "retention on: data loss"
    assert real.is_file() and agent.transcript_files(sid) == [real], "retention off: kept"
    after = go(settings, src_repo, "still there?")
    assert (after["mode"], after["outcome"], after["session_id"]) == ("resume", "succeeded", sid)
    assert gemini.history_counts()[-1] == 5 and "keep me" in gemini.texts()[-1]


@pytest.mark.slow
def test_real_cli_lost_session_messages_classify(
    settings: Settings, tmp_path: Path, gemini: MockGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = agent_of(settings)
    agent.prepare_home(30)
    empty = tmp_path / "nothing-here"
    empty.mkdir()

    def turn_of(
        mode: Mode, session_id: str | None, before: Callable[[], object] = str
    ) -> tuple[Outcome, str]:
        launch = agent.launch(mode, "hello", session_id)
        before()  # what changes between baton's launch and the CLI's start
        done = subprocess.run(
            launch.argv,
            cwd=empty,
            env={**os.environ, **launch.env},
            input=(launch.stdin or b"").decode(),  # the prompt, as the runner writes it
            capture_output=True,
            text=True,
            timeout=120,
        )
        turn = Turn()
        for line in done.stdout.splitlines():
            agent.read_event(line, turn)
        return agent.classify(done.returncode, turn, done.stderr), done.stderr

    # no session in this directory at all: exit 42
    assert turn_of(Mode.RESUME, SID)[0] == Outcome.SESSION_LOST
    # `--resume latest` there: a warning and a NEW conversation; with the CLI routing (model auto) the
    # mock answers the router's schema call, which is not counted as conversation
    monkeypatch.setenv("BATON_GEMINI_MODEL", "auto")
    outcome, stderr = turn_of(Mode.CONTINUE, None)
    assert outcome == Outcome.SUCCEEDED and "No previous sessions found" in stderr
    router = [schema for r in gemini.requests if (schema := r.schema) is not None]
    assert router and "complexity_score" in router[0]["properties"]
    monkeypatch.delenv("BATON_GEMINI_MODEL")
    # a session exists now; an id that is not one of them
    outcome, stderr = turn_of(Mode.RESUME, TWIN)
    assert outcome == Outcome.SESSION_LOST and NOT_FOUND in stderr
    # a fork whose source chat file Gemini cannot import (baton read it; it changed before Gemini did):
    # exit 42, "Error importing session from file: File not found or invalid format: <path>"
    chats = (read_chat(path) for path in agent.gemini_dir.glob("tmp/*/chats/*.jsonl"))
    [made] = {str(chat.session_id) for chat in chats if chat is not None and chat.resumable}
    [source] = agent.transcript_files(made)
    outcome, stderr = turn_of(Mode.FORK, made, lambda: source.write_bytes(b"\x00\xff garbled\n"))
    assert outcome == Outcome.SESSION_LOST and f"{IMPORT_FAILED}: File not found or invalid format" in stderr
    assert gemini.history_counts() == [1]


@pytest.mark.slow
def test_sigkill_mid_run_keeps_the_interrupted_prompt(
    baton_env: dict[str, str],
    settings: Settings,
    src_repo: Path,
    gemini: MockGemini,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the adapter itself keeps Gemini one process: a relaunched child would survive the runner's death
    monkeypatch.delenv("GEMINI_CLI_NO_RELAUNCH")
    first = go(settings, src_repo, "first task")
    gemini.delay = 120
    runner = subprocess.Popen(
        [
            *BATON,
            "run",
            "-a",
            "gemini",
            "-r",
            str(src_repo),
            "-t",
            "issue-1",
            "--json",
            "interrupted-task-zebra",
        ],
        env={**os.environ, **baton_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    store = open_store(settings.resolved_store_url)
    try:
        wait_for(lambda: any("interrupted-task-zebra" in t for t in gemini.texts()))
        running = store.list_runs(limit=1)[0]
        assert running.outcome == Outcome.RUNNING and running.agent_pid
        [chat] = agent_of(settings, src_repo).transcript_files(str(first["session_id"]))
        # measured: Gemini writes the prompt to the chat file before it calls the model
        assert '"text":"interrupted-task-zebra' in chat.read_text()
        os.kill(runner.pid, signal.SIGKILL)
    finally:
        runner.kill()
        runner.communicate(timeout=10)
    wait_for(lambda: not _alive(running.agent_pid or 0), 10)
    # baton's MCP server (a child of the agent) ends itself within 0.1 s of its parent's death
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not _pids_with_env("BATON_RUN_ID", running.id), 5)
    left = _pids_with_env("BATON_RUN_ID", running.id)
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:300] for pid in left]
    assert not left, f"one process: nothing outlives the runner: {commands}"
    gemini.delay = 0
    after = go(settings, src_repo, "carry on")
    assert (after["mode"], after["prompt_kind"], after["outcome"]) == (
        "resume",
        PromptKind.INTERRUPTED.value,
        "succeeded",
    )
    crashed = store.get_run(running.id)
    store.close()
    assert crashed is not None and crashed.outcome == Outcome.CRASHED
    assert after["session_id"] == first["session_id"] == crashed.session_id_in
    # the interrupted prompt is in the resumed history as its own part, merged with the new user turn
    last = gemini.conversation()[-1]
    assert len(last.contents) == 3 and gemini.history_counts() == [1, 3, 3]
    parts = [p.get("text") for p in last.contents[-1]["parts"]]
    assert parts[0].strip() == "interrupted-task-zebra" and "carry on" in parts[-1]


def _alive(pid: int) -> bool:
    try:
        return not Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return False


def _pids_with_env(name: str, value: str) -> list[int]:
    wanted = f"{name}={value}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if wanted in environ.read_bytes().split(b"\0") and _alive(int(environ.parent.name)):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


# A conversation gone from every home and the store is recovered with a recap: Gemini's turn of it is
# tests/agents/test_agents_real.py's test_transcript_gone_everywhere_recovers_with_recap.


@pytest.mark.slow
def test_fork_branches_a_conversation(
    settings: Settings, src_repo: Path, gemini: MockGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two turns of one conversation (in the key's own project, retention off), then a fork of it."""
    monkeypatch.delenv("GEMINI_CLI_TRUST_WORKSPACE")  # baton trusts the worktrees it makes (else exit 55)
    dev = [go(settings, src_repo, f"dev step {i}", thread="dev") for i in range(2)]
    assert [(r["outcome"], r["mode"]) for r in dev] == [("succeeded", "fresh"), ("succeeded", "resume")]
    assert dev[0]["session_id"] and dev[0]["session_id"] == dev[1]["session_id"]
    assert dev[1]["result"] == "mock reply #2: received 3 contents"
    assert dev[1]["usage"]["input_tokens"] == 30 and dev[1]["cost_usd"] is None
    assert all(r.is_conversation for r in gemini.requests), "-m skips the routing call"
    settings_json = json.loads((agent_of(settings, src_repo, "dev").gemini_dir / "settings.json").read_text())
    assert settings_json["general"]["sessionRetention"] == {"enabled": False}
    [chat] = agent_of(settings, src_repo, "dev").transcript_files(str(dev[0]["session_id"]))
    assert chat.parent.parent.name == "dev", "the chat is in the worktree's own project"
    review = go(settings, src_repo, "review it", thread="review", mode=Mode.FORK, fork_from="dev")
    assert (review["mode"], review["outcome"]) == ("fork", "succeeded"), review
    assert review["session_id"] not in (None, dev[0]["session_id"])
    assert gemini.history_counts() == [1, 3, 5], "the fork carried dev's whole history"
    assert "dev step 0" in gemini.texts()[-1] and "dev step 1" in gemini.texts()[-1]
    agent = agent_of(settings, src_repo, "review")
    [forked] = agent.transcript_files(str(review["session_id"]))
    assert forked.parent.parent.name == "review", "the fork lives in the review worktree's project"
    projects = json.loads((agent.gemini_dir / "projects.json").read_text())["projects"]
    assert projects[os.path.realpath(review["worktree"])] == "review"
    assert projects[os.path.realpath(dev[0]["worktree"])] == "dev", "the copy of dev's chat stays apart"
    again = go(settings, src_repo, "and the tests?", thread="review")
    assert (again["mode"], again["session_id"]) == ("resume", review["session_id"])
    assert gemini.history_counts()[-1] == 7 and "review it" in gemini.texts()[-1]
    dev_chat = agent_of(settings, src_repo, "dev").transcript_files(str(dev[0]["session_id"]))
    assert len(dev_chat) == 1 and "review it" not in dev_chat[0].read_text(), "the source is untouched"
    assert agent_of(settings, src_repo, "dev").transcript_files(str(review["session_id"])) == []


def test_leftover_stub_files_are_listed_for_reset(adapter: GeminiAgent) -> None:
    real = write_chat(adapter, "api", f"session-2026-01-01T10-00-{SID[:8]}.jsonl", conversation(SID))
    leftover = write_chat(adapter, "api", f"session-2026-01-01T11-00-{SID[:8]}.jsonl", stub(SID))
    other = write_chat(adapter, "api", f"session-2026-01-01T12-00-{TWIN[:8]}.jsonl", stub(TWIN))
    assert adapter.transcript_files(SID) == [real]
    assert adapter.leftover_files(SID) == [leftover]
    assert other not in adapter.leftover_files(SID)


@pytest.mark.parametrize("where", ["key", "base"])  # base: a conversation from before key homes
def test_reset_conversation_removes_the_stubs_too(tmp_path: Path, where: str) -> None:
    from baton import Scope, reset_session
    from baton.models import SessionRecord
    from baton.settings import load_settings
    from baton.store import open_store

    settings = load_settings(overrides={"home": str(tmp_path / "h")}, environ={})
    repo = make_repo(tmp_path / "repo")
    key = make_key("gemini", str(repo), "t", ["gemini"])
    store = open_store(settings.resolved_store_url)
    store.save_session(
        SessionRecord("gemini", key.repo.slug, "t", key.repo.url, "b", "/w", agent_session_id=SID)
    )
    home = key_home(settings, key) if where == "key" else settings.home / "homes" / "gemini"
    agent = GeminiAgent(home, "/bin/gemini")
    real = write_chat(agent, "w", f"session-2026-01-01T10-00-{SID[:8]}.jsonl", conversation(SID))
    leftover = write_chat(agent, "w", f"session-2026-01-01T11-00-{SID[:8]}.jsonl", stub(SID))
    removed = reset_session(store, settings, key, Scope.CONVERSATION)
    store.close()
    assert removed.transcript_files == 2
    assert not real.exists() and not leftover.exists()
    assert not key_home(settings, key).exists(), "the key's whole home went with its conversation"
