"""The Codex adapter: unit tests (argv, events recorded from the real CLI, classification, config.toml,
Codex's SQLite index) and tests of the REAL Codex CLI against :class:`MockOpenAI`.

The mock's replies say how many ``input`` items each request carried: 4 on a thread's first turn, and
every resumed turn adds 2 (the reply and the new prompt). A growing count proves that a run resumed its
thread with the full history; 4 again proves a fresh start.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import pytest

from baton import Mode, Outcome, PromptKind, RunRequest, RunResult, open_store, run
from baton.agents import clean_error, get_agent
from baton.agents.base import Turn
from baton.agents.codex import (
    _TARGETS,
    EXEC,
    MANAGED,
    MAX_PROMPT_CHARS,
    STDIN,
    CodexAgent,
    is_thread_id,
    merge_toml,
    native_codex,
    read_toml,
    repair_index,
)
from baton.errors import AgentError, BadInput
from baton.keys import key_of
from baton.settings import Settings
from baton.testing.mock_openai import MockOpenAI
from baton.workspace.keyspace import key_home, session_agent
from tests.conftest import BATON, gone, wait_for

THREAD = "01a1feaa-303a-75d0-8293-4ac0347e196e"
EDIT = [
    "--sandbox",
    "workspace-write",
]  # the default access level's flags (tests/agents/test_agents_access.py)

# -- recorded from `codex exec --json` 0.169.0 against the mock -------------------------------------
STARTED = '{"type":"thread.started","thread_id":"01a1feaa-303a-75d0-8293-4ac0347e196e"}'
TURN_STARTED = '{"type":"turn.started"}'
MESSAGE = (
    '{"type":"item.completed","item":{"id":"item_0","type":"agent_message",'
    '"text":"mock reply #2: received 6 items"}}'
)
COMPLETED = (
    '{"type":"turn.completed","usage":{"input_tokens":1000,"cached_input_tokens":0,'
    '"cache_write_input_tokens":0,"output_tokens":24,"reasoning_output_tokens":0}}'
)
ERROR = (
    '{"type":"error","message":"We\\u2019re currently experiencing high demand, '
    'which may cause temporary errors."}'
)
FAILED = (
    '{"type":"turn.failed","error":{"message":"We\\u2019re currently experiencing high demand, '
    'which may cause temporary errors."}}'
)
NOT_FOUND_STDERR = (
    "WARNING: proceeding, even though we could not create PATH aliases: Refusing to create helper "
    'binaries under temporary dir "/tmp"\n'
    "Error: thread/resume: thread/resume failed: no rollout found for thread id "
    "01a1feaa-0000-7000-8000-000000000000 (code -32600)\n"
)
PROVIDER_STDERR = (  # measured on 0.169.0: a thread made under `openai`, config.toml now names `mock`
    "WARNING: proceeding, even though we could not create PATH aliases: Refusing to create helper "
    'binaries under temporary dir "/tmp" (codex_home: AbsolutePathBuf("/tmp/cx/home"))\n'
    "Error: thread/resume: thread/resume failed: failed to load configuration: Cannot change this "
    "thread's model provider from `openai` to `mock` on resume. (code -32600)\n"
)
EMPTY_STDERR = (
    "Error: thread/resume: thread/resume failed: failed to read thread: thread-store internal error: "
    "failed to read session metadata /h/sessions/2026/11/21/rollout-x.jsonl: rollout at "
    "/h/sessions/2026/11/21/rollout-x.jsonl is empty (code -32603)\n"
)
WRITER_STDERR = (
    "Error: thread/resume: thread/resume failed: thread 01a1feaa-303a-75d0-8293-4ac0347e196e already "
    "has an active writer (code -32600)\n"
)


def test_clean_error_drops_codex_noise_lines_and_keeps_the_cause() -> None:
    warning, cause = NOT_FOUND_STDERR.splitlines()
    assert clean_error("codex", NOT_FOUND_STDERR) == cause
    assert clean_error("codex", f"{warning}; {cause}") == cause  # how the runner joins stderr lines
    assert clean_error("codex", warning) == warning  # all noise: better the noise than nothing
    assert clean_error("claude", NOT_FOUND_STDERR) == NOT_FOUND_STDERR  # each CLI's own noise only
    assert clean_error("nobody", "x; y") == "x; y"


def feed(agent: CodexAgent, *lines: str) -> Turn:
    turn = Turn()
    for line in lines:
        agent.read_event(line, turn)
    return turn


@pytest.fixture
def agent(tmp_path: Path) -> CodexAgent:
    return CodexAgent(tmp_path / "codex-home", "/opt/codex/bin/codex")


# -- argv ---------------------------------------------------------------------------------------------


def test_argv_fresh_and_recover_read_the_prompt_from_stdin(agent: CodexAgent) -> None:
    for mode in (Mode.FRESH, Mode.RECOVER):
        launch = agent.launch(mode, "-rf everything", None)
        assert launch.argv == ["/opt/codex/bin/codex", *EXEC, *EDIT, "-"] and STDIN == "-"
        assert launch.stdin == b"-rf everything"
        assert launch.new_session_id is None, "Codex picks its own thread id"
    assert EXEC == ["exec", "--json", "--skip-git-repo-check"]


def test_argv_resume_puts_exec_flags_before_resume(agent: CodexAgent) -> None:
    launch = agent.launch(Mode.RESUME, "go on", THREAD)
    assert launch.argv == ["/opt/codex/bin/codex", *EXEC, *EDIT, "resume", THREAD, "-"]
    assert launch.stdin == b"go on"
    assert launch.argv.index("--json") < launch.argv.index("resume")
    assert launch.env["CODEX_HOME"] == str(agent.home)
    assert launch.env["RUST_BACKTRACE"] == "0"


def test_argv_continue_uses_last(agent: CodexAgent) -> None:
    launch = agent.launch(Mode.CONTINUE, "more", None)
    assert launch.argv[-3:] == ["resume", "--last", "-"] and launch.stdin == b"more"


def test_a_prompt_codex_would_refuse_is_refused_up_front(agent: CodexAgent) -> None:
    agent.check_prompt("é" * MAX_PROMPT_CHARS)  # characters, not bytes (measured)
    with pytest.raises(BadInput, match="at most 1,048,576"):
        agent.launch(Mode.FRESH, "x" * (MAX_PROMPT_CHARS + 1), None)


def test_bad_ids_are_refused(agent: CodexAgent) -> None:
    """Forks are tested in tests/agents/test_codex_fork.py."""
    with pytest.raises(AgentError, match=r"cannot fork Codex thread .* has no rollout"):
        agent.launch(Mode.FORK, "x", THREAD)
    with pytest.raises(AgentError, match="needs an existing session id"):
        agent.launch(Mode.RESUME, "x", None)
    # a non-UUID is a thread *name* to Codex: unknown, it silently starts a new thread
    for bad in ("my-thread", "*", THREAD.upper() + "x", f"{THREAD} --last"):
        with pytest.raises(AgentError, match="not a Codex thread id"):
            agent.launch(Mode.RESUME, "x", bad)


def test_capabilities(agent: CodexAgent) -> None:
    caps = agent.capabilities
    assert (caps.preassigned_id, caps.resume_by_id, caps.continue_latest, caps.reports_cost) == (
        False,
        True,
        True,
        False,
    )
    assert caps.resume_keeps_id and caps.cumulative_usage and caps.fork
    assert caps.not_found == "no rollout found for thread id"
    assert agent.name == "codex"


def test_is_thread_id() -> None:
    assert is_thread_id(THREAD) and is_thread_id(str(uuid.uuid4()))
    assert not any(is_thread_id(x) for x in (None, "", "abc", "*", THREAD + "0", "{" + THREAD + "}"))


def test_native_binary_behind_the_npm_wrapper(tmp_path: Path) -> None:
    package, triple = _TARGETS[(sys.platform, platform.machine())]
    root = tmp_path / "node_modules" / "@openai" / "codex"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "codex.js").write_text("#!/usr/bin/env node\n")
    binary = tmp_path / "node_modules" / "@openai" / package / "vendor" / triple / "bin" / "codex"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    link = tmp_path / "bin" / "codex"
    link.parent.mkdir()
    link.symlink_to(root / "bin" / "codex.js")
    path, env = native_codex(str(link))
    assert path == str(binary)
    assert env == {"CODEX_MANAGED_BY_NPM": "1", "CODEX_MANAGED_PACKAGE_ROOT": str(root)}
    assert native_codex("/usr/local/bin/codex") == ("/usr/local/bin/codex", {})
    binary.unlink()  # no platform package: keep the wrapper
    assert native_codex(str(link)) == (str(link), {})


def test_installed_codex_runs_native(tmp_path: Path) -> None:
    """The pinned npm CLI: baton runs the native binary, so the process it starts is Codex itself."""
    command = CodexAgent(tmp_path, "").command
    assert Path(command[0]).name == "codex" and "vendor" in Path(command[0]).parts
    assert Path(command[0]).read_bytes()[:4] == b"\x7fELF"


# -- events ---------------------------------------------------------------------------------------


def test_read_event_success(agent: CodexAgent) -> None:
    turn = feed(agent, STARTED, TURN_STARTED, "not json", MESSAGE, COMPLETED)
    assert turn.session_id == THREAD
    assert turn.result == "mock reply #2: received 6 items"
    assert turn.usage == {
        "input_tokens": 1000,
        "cached_input_tokens": 0,
        "cache_write_input_tokens": 0,
        "output_tokens": 24,
        "reasoning_output_tokens": 0,
    }
    assert not turn.is_error and turn.errors == [] and turn.events == 4
    assert agent.classify(0, turn, "") == Outcome.SUCCEEDED


def test_read_event_keeps_the_last_message_and_ignores_other_items(agent: CodexAgent) -> None:
    other = '{"type":"item.completed","item":{"id":"item_1","type":"reasoning","text":"hmm"}}'
    last = MESSAGE.replace("mock reply #2: received 6 items", "final")
    turn = feed(agent, STARTED, TURN_STARTED, MESSAGE, other, last, COMPLETED)
    assert turn.result == "final"
    assert agent.read_event("[1, 2]", turn) is None


def test_read_event_failed_turn(agent: CodexAgent) -> None:
    turn = feed(agent, STARTED, TURN_STARTED, ERROR, FAILED)
    assert turn.is_error and turn.result is None
    assert len(turn.errors) == 2 and "high demand" in turn.errors[0]
    assert agent.classify(1, turn, "") == Outcome.FAILED


def test_read_event_error_item(agent: CodexAgent) -> None:
    item = '{"type":"item.completed","item":{"id":"item_3","type":"error","message":"tool broke"}}'
    turn = feed(agent, STARTED, TURN_STARTED, item)
    assert turn.errors == ["tool broke"]


def test_classify(agent: CodexAgent) -> None:
    ok = feed(agent, STARTED, TURN_STARTED, MESSAGE, COMPLETED)
    assert agent.classify(0, ok, "") == Outcome.SUCCEEDED
    assert agent.classify(1, ok, "") == Outcome.FAILED
    # killed after the reply but before turn.completed: not a success
    cut = feed(agent, STARTED, TURN_STARTED, MESSAGE)
    assert agent.classify(0, cut, "") == Outcome.FAILED
    assert agent.classify(0, Turn(), "") == Outcome.FAILED
    no_reply = feed(agent, STARTED, TURN_STARTED, COMPLETED)
    assert agent.classify(0, no_reply, "") == Outcome.FAILED
    # the thread is gone or unreadable: the conversation is lost, baton recovers
    assert agent.classify(1, Turn(), NOT_FOUND_STDERR) == Outcome.SESSION_LOST
    assert agent.classify(1, Turn(), EMPTY_STDERR) == Outcome.SESSION_LOST
    # another process still writes the thread: a failure to retry, never a lost conversation
    assert agent.classify(1, Turn(), WRITER_STDERR) == Outcome.FAILED
    # made under another model provider: Codex refuses it for ever, so it is lost too, with baton's words
    changed = Turn()
    assert agent.classify(1, changed, PROVIDER_STDERR) == Outcome.SESSION_LOST
    assert changed.errors == [
        "the conversation was made with model provider 'openai' and Codex cannot resume it with 'mock', "
        "the one its configuration names now",
        PROVIDER_STDERR.splitlines()[1],
    ]


# -- config.toml --------------------------------------------------------------------------------------

USER_CONFIG = """\
model = "o3"
model_provider = "corp"
approval_policy = "never"

[features]
plugins = true
web_search = true

[analytics]
enabled = true

[model_providers.corp]
name = "Corp \\"proxy\\""
base_url = "https://llm.example.invalid/v1"
env_key = "CORP_KEY"
query_params = { "api-version" = "2025-01-01" }
http_headers = { X-Team = "baton" }

[profiles.fast.tools]
web_search = false

[[mcp_servers.list]]
name = "one"
args = ["-y", "x"]

[[mcp_servers.list]]
name = "two"
"""


def test_prepare_home_forces_managed_keys_and_keeps_the_users(agent: CodexAgent) -> None:
    agent.home.mkdir(parents=True)
    (agent.home / "config.toml").write_text(USER_CONFIG)
    agent.prepare_home(30)
    config = read_toml(agent.home / "config.toml")
    assert config["check_for_update_on_startup"] is False
    assert config["features"] == {"plugins": False, "web_search": True}
    assert config["analytics"] == {"enabled": False}
    assert config["feedback"] == {"enabled": False} and config["otel"] == {"exporter": "none"}
    user = tomllib.loads(USER_CONFIG)
    for key in ("model", "model_provider", "approval_policy", "model_providers", "profiles", "mcp_servers"):
        assert config[key] == user[key], key


def test_endpoints_name_every_provider_url_codex_connects_to(agent: CodexAgent) -> None:
    """What a walled-in Codex may connect to: each provider's base_url and the built-in provider's
    ``openai_base_url`` (without it, walls kept Codex from its model and it retried for ever)."""
    agent.home.mkdir(parents=True)
    (agent.home / "config.toml").write_text('openai_base_url = "http://127.0.0.1:4011/v1"\n' + USER_CONFIG)
    assert sorted(agent.endpoints()) == ["http://127.0.0.1:4011/v1", "https://llm.example.invalid/v1"]


def test_prepare_home_creates_the_home_and_writes_only_on_change(tmp_path: Path) -> None:
    agent = CodexAgent(tmp_path / "a" / "b" / "codex", "")
    agent.prepare_home(30)
    path = agent.home / "config.toml"
    assert read_toml(path) == MANAGED
    before = path.stat().st_ino, path.stat().st_mtime_ns
    agent.prepare_home(30)
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == before, "an unchanged config is not rewritten"
    assert [p.name for p in agent.home.iterdir()] == ["config.toml"], "no temp file left behind"
    ok, detail = agent.retention(30)
    assert ok and "no retention" in detail


def test_prepare_home_rejects_a_broken_config(agent: CodexAgent) -> None:
    agent.home.mkdir(parents=True)
    (agent.home / "config.toml").write_text("model = \n")
    with pytest.raises(AgentError, match="not valid TOML"):
        agent.prepare_home(30)
    assert (agent.home / "config.toml").read_text() == "model = \n", "left for the user to fix"


def test_mock_configure_home_merges_and_survives_prepare_home(tmp_path: Path) -> None:
    home = tmp_path / "codex"
    home.mkdir()
    (home / "config.toml").write_text('approval_policy = "never"\n[model_providers.other]\nname = "O"\n')
    mock = MockOpenAI(port=4321)
    mock.configure_home(home)
    CodexAgent(home, "").prepare_home(30)
    config = read_toml(home / "config.toml")
    assert config["model_provider"] == "mock" and config["model"] == "gpt-5.5"
    assert config["model_providers"]["mock"]["base_url"] == "http://127.0.0.1:4321/v1"
    assert config["model_providers"]["mock"]["wire_api"] == "responses"
    assert config["model_providers"]["other"] == {"name": "O"}
    assert config["approval_policy"] == "never" and config["features"]["plugins"] is False


def test_merge_keeps_the_users_comments_and_layout(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    user = '# my provider, do not touch\nmodel = "o3"  # the one we pay for\n\n[features]\nweb_search = 1\n'
    path.write_text(user)
    assert merge_toml(path, MANAGED)
    text = path.read_text()
    assert text.startswith('# my provider, do not touch\nmodel = "o3"  # the one we pay for\n'), text
    assert tomllib.loads(text)["features"] == {"web_search": 1, "plugins": False}
    assert not merge_toml(path, MANAGED), "nothing changed the second time"
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"], "no temp file left behind"


def test_merge_replaces_a_value_of_the_wrong_shape(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('features = "all"\ncheck_for_update_on_startup = 0\n')
    merge_toml(path, MANAGED)
    config = read_toml(path)
    assert config["features"] == {"plugins": False} and config["check_for_update_on_startup"] is False


# -- transcripts and Codex's index (no CLI) ---------------------------------------------------------


def rollout(
    home: Path, thread: str, day: str = "2026/11/21", text: str = '{"type":"session_meta"}\n'
) -> Path:
    path = home / "sessions" / day / f"rollout-{day.replace('/', '-')}T15-12-08-{thread}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_transcript_files_by_thread_id(agent: CodexAgent) -> None:
    assert agent.transcript_files(THREAD) == []
    path = rollout(agent.home, THREAD)
    other = rollout(agent.home, str(uuid.uuid4()))
    assert agent.transcript_files(THREAD) == [path]
    assert other not in agent.transcript_files(THREAD)
    assert agent.transcript_files("*") == [] and agent.transcript_files("15-12-08") == []
    path.write_text("")
    assert agent.transcript_files(THREAD) == [], "an empty rollout is no transcript (hydration replaces it)"


def make_index(home: Path, thread: str, rollout_path: str) -> None:
    with sqlite3.connect(home / "state_5.sqlite") as db:
        db.execute("CREATE TABLE threads (id TEXT PRIMARY KEY, rollout_path TEXT NOT NULL, title TEXT)")
        db.execute("INSERT INTO threads VALUES (?, ?, 't')", (thread, rollout_path))
        db.execute("INSERT INTO threads VALUES ('other', '/gone/other.jsonl', 'o')")
    with sqlite3.connect(home / "thread_history_1.sqlite") as db:
        db.execute("CREATE TABLE thread_turns (thread_id TEXT, turn_id TEXT)")
        db.execute(
            "CREATE TABLE thread_history_projection_state (thread_id TEXT, next_rollout_byte_offset INT)"
        )
        db.execute("CREATE TABLE unrelated (id TEXT)")
        for table in ("thread_turns", "thread_history_projection_state"):
            db.execute(f"INSERT INTO {table} VALUES (?, 1)", (thread,))
            db.execute(f"INSERT INTO {table} VALUES ('other', 1)")


def index_rows(home: Path) -> tuple[dict[str, str], int, int]:
    with sqlite3.connect(home / "state_5.sqlite") as db:
        paths = dict(db.execute("SELECT id, rollout_path FROM threads").fetchall())
    with sqlite3.connect(home / "thread_history_1.sqlite") as db:
        turns = db.execute("SELECT count(*) FROM thread_turns").fetchone()[0]
        state = db.execute("SELECT count(*) FROM thread_history_projection_state").fetchone()[0]
    return paths, turns, state


def test_repair_index_points_a_stale_row_at_the_rollout(agent: CodexAgent) -> None:
    agent.home.mkdir(parents=True)
    path = rollout(agent.home, THREAD, day="2026/11/20")
    make_index(agent.home, THREAD, str(agent.home / "sessions/2026/11/21/rollout-old.jsonl"))
    agent.launch(Mode.RESUME, "x", THREAD)  # every resume checks the index
    paths, turns, state = index_rows(agent.home)
    assert paths == {THREAD: str(path), "other": "/gone/other.jsonl"}, "only this thread is touched"
    assert (turns, state) == (1, 1), "the stale projection of the thread is dropped, others kept"
    assert not repair_index(agent.home, THREAD), "idempotent"


def test_after_hydrate_drops_the_projection_even_when_the_row_is_right(agent: CodexAgent) -> None:
    agent.home.mkdir(parents=True)
    path = rollout(agent.home, THREAD)
    make_index(agent.home, THREAD, str(path))
    agent.launch(Mode.RESUME, "x", THREAD)
    assert index_rows(agent.home)[1:] == (2, 2), "a resume leaves a consistent index alone"
    agent.after_hydrate(THREAD, agent.home)
    assert index_rows(agent.home) == ({THREAD: str(path), "other": "/gone/other.jsonl"}, 1, 1)


def test_repair_index_tolerates_foreign_databases(agent: CodexAgent) -> None:
    agent.home.mkdir(parents=True)
    rollout(agent.home, THREAD)
    (agent.home / "state_5.sqlite").write_bytes(b"not a database at all" * 20)
    with sqlite3.connect(agent.home / "state_9.sqlite") as db:
        db.execute("CREATE TABLE threads (uid TEXT)")
    assert not repair_index(agent.home, THREAD, projection=True)
    agent.after_hydrate(THREAD, agent.home)  # no error: best effort


# -- the real Codex CLI against the mock -------------------------------------------------------------


def go(
    settings: Settings, repo: Path, prompt: str, mode: Mode = Mode.AUTO, thread: str = "issue-1"
) -> RunResult:
    return run(
        RunRequest(agent="codex", repo=str(repo), thread=thread, prompt=prompt, mode=mode), settings=settings
    )


def codex_home(settings: Settings, result: RunResult) -> Path:
    """The agent home of the run's key."""
    return key_home(settings, key_of(result.session))


def codex_of(settings: Settings, result: RunResult) -> CodexAgent:
    """The adapter of the run's key (working in its own home)."""
    agent = session_agent(result.session, settings)
    assert isinstance(agent, CodexAgent)
    return agent


def steps(result: RunResult) -> list[tuple[Mode, Outcome]]:
    return [(a.mode, a.outcome) for a in result.attempts]


@pytest.mark.slow
def test_codex_version_is_printed(settings: Settings) -> None:
    agent = get_agent("codex", settings)
    version = agent.version()
    print(f"real Codex CLI: {version} at {agent.command[0]}")
    assert version == "0.169.0"


@pytest.mark.slow
def test_three_runs_one_thread_with_usage_deltas(
    settings: Settings, src_repo: Path, openai: MockOpenAI
) -> None:
    results = [go(settings, src_repo, f"step {i}") for i in range(3)]
    assert [r.run.outcome for r in results] == [Outcome.SUCCEEDED] * 3, [r.run.error for r in results]
    assert [r.run.mode for r in results] == [Mode.FRESH, Mode.RESUME, Mode.RESUME]
    assert len({r.session.agent_session_id for r in results}) == 1
    assert is_thread_id(results[0].session.agent_session_id)
    assert openai.history_counts() == [4, 6, 8]
    assert results[2].run.result == "mock reply #3: received 8 items"
    # the mock bills 100 input tokens per item: 400, 600, 800; Codex reports 400, 1000, 1800
    assert [r.run.usage["input_tokens"] for r in results] == [400, 600, 800]
    assert [r.run.usage["output_tokens"] for r in results] == [12, 12, 12]
    assert results[1].run.usage["thread_total"]["input_tokens"] == 1000
    assert results[2].run.usage["thread_total"]["input_tokens"] == 1800
    assert results[0].run.cost_usd is None
    assert len(list(codex_home(settings, results[0]).glob("sessions/*/*/*/rollout-*.jsonl"))) == 1


@pytest.mark.slow
def test_prompt_starting_with_a_dash(settings: Settings, src_repo: Path, openai: MockOpenAI) -> None:
    assert go(settings, src_repo, "start").ok
    # the resume prompt is the bare instruction: without `--` Codex would parse it as flags
    result = go(settings, src_repo, "--version -h resume --last")
    assert result.ok and result.run.mode == Mode.RESUME, result.run.error
    assert openai.history_counts() == [4, 6]
    sent = openai.conversation_requests()[-1].input[-1]["content"][0]["text"]
    assert sent.strip() == "--version -h resume --last"


@pytest.mark.slow
def test_continue_mode_picks_the_worktrees_thread(
    settings: Settings, src_repo: Path, openai: MockOpenAI
) -> None:
    first = go(settings, src_repo, "start")
    go(settings, src_repo, "elsewhere", thread="issue-2")  # a newer thread, in another worktree
    again = go(settings, src_repo, "continue please", mode=Mode.CONTINUE)
    assert again.ok and again.run.mode == Mode.CONTINUE, again.run.error
    assert again.session.agent_session_id == first.session.agent_session_id
    assert openai.history_counts() == [4, 4, 6]


@pytest.mark.slow
def test_agent_home_wiped_hydrates_and_resumes(
    settings: Settings, src_repo: Path, openai: MockOpenAI
) -> None:
    first = go(settings, src_repo, "one")
    go(settings, src_repo, "two")
    shutil.rmtree(codex_home(settings, first))  # the provider is in the base home: seeded again
    after = go(settings, src_repo, "three")
    assert steps(after) == [(Mode.RESUME, Outcome.SUCCEEDED)], after.run.error
    assert after.session.agent_session_id == first.session.agent_session_id
    assert openai.history_counts() == [4, 6, 8]
    assert "one" in openai.texts()[-1] and "two" in openai.texts()[-1]
    # Codex restores the thread's cumulative usage from the rollout: the delta is still per run
    assert after.run.usage["input_tokens"] == 800 and after.run.usage["thread_total"]["input_tokens"] == 1800


@pytest.mark.slow
def test_hydrate_into_a_home_whose_index_lacks_the_thread(
    settings: Settings, src_repo: Path, openai: MockOpenAI
) -> None:
    """The home keeps its SQLite files (with other threads) but lost the rollout and the thread's rows."""
    first = go(settings, src_repo, "one")
    go(settings, src_repo, "other thread", thread="issue-2")
    thread = first.session.agent_session_id
    shutil.rmtree(codex_home(settings, first) / "sessions")
    with sqlite3.connect(codex_home(settings, first) / "state_5.sqlite") as db:
        assert db.execute("DELETE FROM threads WHERE id = ?", (thread,)).rowcount == 1
        assert db.execute("SELECT count(*) FROM threads").fetchone()[0] == 0, "issue-2 has its own home"
    after = go(settings, src_repo, "two")
    assert steps(after) == [(Mode.RESUME, Outcome.SUCCEEDED)], after.run.error
    assert after.session.agent_session_id == thread
    assert openai.history_counts() == [4, 4, 6]


@pytest.mark.slow
def test_stale_index_row_breaks_resume_and_is_repaired(
    settings: Settings, src_repo: Path, openai: MockOpenAI
) -> None:
    """Codex's ``threads`` row names the rollout's absolute path. When the file is elsewhere (a home
    restored at another path; a snapshot hydrated under another date folder) Codex says "no rollout
    found" although the rollout is on disk. The adapter repairs the row before every resume."""
    first = go(settings, src_repo, "one")
    thread = str(first.session.agent_session_id)
    agent = codex_of(settings, first)
    [old] = agent.transcript_files(thread)
    moved = (
        codex_home(settings, first) / "sessions/2020/01/01" / f"rollout-2020-01-01T00-00-00-{thread}.jsonl"
    )
    moved.parent.mkdir(parents=True)
    old.rename(moved)
    # measured: the raw CLI cannot resume it
    launch = agent.launch(Mode.FRESH, "x", None)  # only for argv[0] and env: no repair on fresh
    raw = subprocess.run(
        [launch.argv[0], *EXEC, "resume", thread, "--", "raw"],
        env={**os.environ, **launch.env},
        cwd=first.session.worktree,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert raw.returncode == 1 and f"no rollout found for thread id {thread}" in raw.stderr
    after = go(settings, src_repo, "two")
    assert steps(after) == [(Mode.RESUME, Outcome.SUCCEEDED)], after.run.error
    assert after.session.agent_session_id == thread
    assert openai.history_counts() == [4, 6]
    with sqlite3.connect(codex_home(settings, first) / "state_5.sqlite") as db:
        assert db.execute("SELECT rollout_path FROM threads WHERE id = ?", (thread,)).fetchone() == (
            str(moved),
        )


@pytest.mark.slow
def test_transcript_gone_everywhere_is_recovered_never_resumed(
    settings: Settings, src_repo: Path, openai: MockOpenAI
) -> None:
    """The rollout is deleted (the home and its index stay) and so is the snapshot; baton still holds
    the old thread id. It must recover, never report success on the old id."""
    first = go(settings, src_repo, "implement the parser")
    go(settings, src_repo, "add error messages")
    old = str(first.session.agent_session_id)
    agent = codex_of(settings, first)
    for path in agent.transcript_files(old):
        path.unlink()
    store = open_store(settings.resolved_store_url)
    store.delete_snapshot("codex", first.run.repo, "issue-1")
    store.close()
    after = go(settings, src_repo, "write the docs")
    # baton sees the transcript gone and recovers directly (a resume would get "no rollout found")
    assert steps(after) == [(Mode.RECOVER, Outcome.SUCCEEDED)], after.run.error
    assert after.run.prompt_kind == PromptKind.RECAP
    assert after.session.agent_session_id not in (None, old)
    assert openai.history_counts()[-1] == 4, "a recovered thread starts fresh"
    sent = openai.texts()[-1]
    assert "implement the parser" in sent and "received 6 items" in sent, "the recap carries earlier runs"
    nxt = go(settings, src_repo, "next")
    assert steps(nxt) == [(Mode.RESUME, Outcome.SUCCEEDED)]
    assert nxt.session.agent_session_id == after.session.agent_session_id
    assert openai.history_counts()[-1] == 6


@pytest.mark.slow
def test_a_thread_made_under_another_model_provider_is_recovered_with_a_recap(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread made with Codex's default ``openai`` provider (pointed at the mock by ``openai_base_url``)
    cannot be resumed once the operator's config.toml names another provider: Codex refuses it for
    ever. baton recovers as for a lost conversation: a new thread with a recap, and a note saying why;
    the error shows the cause, not Codex's PATH-aliases warning (its home is under /tmp here)."""
    with MockOpenAI() as mock:
        base = settings.home / "homes" / "codex"
        base.mkdir(parents=True)
        # the built-in provider's URL, a port the walls must let Codex reach (CodexAgent.endpoints)
        config = f'model = "gpt-5.5"\nopenai_base_url = "{mock.url}/v1"\n'
        (base / "config.toml").write_text(config + "[features]\nresponses_websockets = false\n")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-mock")
        first = go(settings, src_repo, "implement the parser")
        assert first.ok, first.run.error
        old = str(first.session.agent_session_id)
        mock.configure_home(base)  # the operator moves to another provider
        for name, value in mock.env().items():
            monkeypatch.setenv(name, value)
        after = go(settings, src_repo, "write the docs")
        assert steps(after) == [(Mode.RESUME, Outcome.SESSION_LOST), (Mode.RECOVER, Outcome.SUCCEEDED)]
        lost, recovered = after.attempts
        assert lost.error and lost.error.startswith(
            "the conversation was made with model provider 'openai' and Codex cannot resume it with 'mock'"
        )
        assert "Cannot change this thread's model provider" in lost.error and "PATH aliases" not in lost.error
        assert recovered.note and "model provider 'openai'" in recovered.note
        assert recovered.prompt_kind == PromptKind.RECAP
        assert after.session.agent_session_id not in (None, old)
        assert mock.history_counts() == [4, 4], "the new thread starts fresh"
        assert "implement the parser" in mock.texts()[-1], "with a recap of the earlier run"
        nxt = go(settings, src_repo, "next")
        assert steps(nxt) == [(Mode.RESUME, Outcome.SUCCEEDED)]
        assert mock.history_counts()[-1] == 6


@pytest.mark.slow
def test_corrupt_rollout_is_session_lost_then_recover(
    settings: Settings, src_repo: Path, openai: MockOpenAI
) -> None:
    first = go(settings, src_repo, "one")
    old = str(first.session.agent_session_id)
    [path] = codex_of(settings, first).transcript_files(old)
    path.write_bytes(b"\x00\xff garbage \xfe\n")
    store = open_store(settings.resolved_store_url)
    store.delete_snapshot("codex", first.run.repo, "issue-1")
    store.close()
    after = go(settings, src_repo, "two")
    assert steps(after) == [(Mode.RESUME, Outcome.SESSION_LOST), (Mode.RECOVER, Outcome.SUCCEEDED)]
    assert after.attempts[0].error and "failed to read session metadata" in after.attempts[0].error
    assert "Stack backtrace" not in after.attempts[0].error
    assert after.session.agent_session_id not in (None, old)
    assert openai.history_counts() == [4, 4]


@pytest.mark.slow
def test_silent_other_thread_is_session_lost_then_recover(
    settings: Settings, src_repo: Path, openai: MockOpenAI
) -> None:
    """The trap forced: baton's thread B has a rollout on disk, so baton resumes it, but the file
    holds thread A (a misnamed copy). Codex resumes A with exit 0 and reports A: that is a lost
    conversation, never a success on B."""
    first = go(settings, src_repo, "one")
    a = str(first.session.agent_session_id)
    b = str(uuid.uuid4())
    [path] = codex_of(settings, first).transcript_files(a)
    shutil.copy(path, path.with_name(path.name.replace(a, b)))
    store = open_store(settings.resolved_store_url)
    session = store.get_session("codex", first.run.repo, "issue-1")
    assert session is not None
    session.agent_session_id = b
    store.save_session(session)
    store.close()
    after = go(settings, src_repo, "two")
    assert steps(after) == [(Mode.RESUME, Outcome.SESSION_LOST), (Mode.RECOVER, Outcome.SUCCEEDED)]
    assert after.attempts[0].session_id_in == b
    assert after.attempts[0].error == f"asked to resume {b}, the agent started {a} instead"
    assert after.session.agent_session_id not in (a, b)
    assert openai.history_counts() == [4, 6, 4], "codex did run A's history; the recovery starts fresh"


@pytest.mark.slow
def test_sigkill_mid_run_keeps_the_prompt_and_resumes(
    baton_env: dict[str, str], settings: Settings, src_repo: Path, openai: MockOpenAI
) -> None:
    first = go(settings, src_repo, "first task")
    thread = str(first.session.agent_session_id)
    openai.delay = 60
    runner = subprocess.Popen(
        [*BATON, "run", "-a", "codex", "-r", str(src_repo), "-t", "issue-1", "--json", "zebra-task"],
        env={**os.environ, **baton_env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    wait_for(lambda: any("zebra-task" in t for t in openai.texts()))
    store = open_store(settings.resolved_store_url)
    running = store.list_runs(limit=1)[0]
    assert running.outcome == Outcome.RUNNING and running.agent_pid
    os.kill(runner.pid, signal.SIGKILL)  # at once: the request is in flight, no reply yet
    runner.wait(timeout=10)
    # baton runs the native binary, so Codex itself dies with its runner and frees the thread
    wait_for(lambda: gone(running.agent_pid or 0), 10)
    [path] = codex_of(settings, first).transcript_files(thread)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    user = [
        c.get("text")
        for e in lines
        if e.get("type") == "response_item" and e["payload"].get("role") == "user"
        for c in e["payload"].get("content", [])
    ]
    assert any(t and "zebra-task" in t for t in user), "Codex wrote the interrupted prompt before the call"
    assert not any("mock reply #2" in json.dumps(e) for e in lines), "and no reply"
    openai.delay = 0
    after = go(settings, src_repo, "carry on")
    crashed = store.get_run(running.id)
    store.close()
    assert crashed is not None and crashed.outcome == Outcome.CRASHED
    assert steps(after) == [(Mode.RESUME, Outcome.SUCCEEDED)], after.run.error
    assert after.run.prompt_kind == PromptKind.INTERRUPTED
    assert after.session.agent_session_id == thread
    # 4 (first) → 6 (the interrupted request) → 7: first turn (2), the reply, the kept prompt, this one
    assert openai.history_counts() == [4, 6, 7]
    last = openai.texts()[-1]
    assert "zebra-task" in last and "carry on" in last and "first task" in last


def test_repair_index_never_follows_a_link_out_of_the_home(agent: CodexAgent, tmp_path: Path) -> None:
    """The home is the agent's: an index it replaced by a link (to another key's index, or the store)
    is left alone, and so is what the link points at."""
    agent.home.mkdir(parents=True)
    rollout(agent.home, THREAD, day="2026/11/20")
    elsewhere = tmp_path / "another-key"
    elsewhere.mkdir()
    make_index(elsewhere, THREAD, "/somewhere/else.jsonl")
    before = index_rows(elsewhere)
    for name in ("state_5.sqlite", "thread_history_1.sqlite"):
        (agent.home / name).symlink_to(elsewhere / name)
    assert not repair_index(agent.home, THREAD, projection=True)
    assert index_rows(elsewhere) == before


def test_baton_codex_model_names_each_turns_model_and_nothing_else() -> None:
    """``BATON_CODEX_MODEL`` becomes ``-c model="..."`` (a TOML string, quoted as such); unset or blank:
    no flag (config.toml's model, else Codex's own); a value that names no model is refused."""
    from baton.agents.codex import model_flags

    assert model_flags({}) == [] and model_flags({"BATON_CODEX_MODEL": "  "}) == []
    assert model_flags({"BATON_CODEX_MODEL": "gpt-5.5"}) == ["-c", 'model="gpt-5.5"']
    assert model_flags({"BATON_CODEX_MODEL": 'a"b'}) == ["-c", 'model="a\\"b"']
    for bad in ("two words", "x\ny", "m" * 201):
        with pytest.raises(AgentError, match="BATON_CODEX_MODEL"):
            model_flags({"BATON_CODEX_MODEL": bad})
