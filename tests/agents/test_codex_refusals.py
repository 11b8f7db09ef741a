"""Codex's refusals to resume a thread, as the REAL Codex CLI 0.169.0 says them against
:class:`MockOpenAI`, each a lost conversation that baton recovers with a recap at once: no rollout for
the id, an unreadable rollout, a model provider changed, and a model provider no longer configured
(``modelProviderNotConfigured``: the operator moved between ``OPENAI_BASE_URL`` and a config.toml
provider, or renamed a provider). What must not pass for one: a fresh turn whose configuration names
an unknown provider, and a usage limit whose words name a provider.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomlkit

from baton import Mode, Outcome, PromptKind, RunRequest, RunResult, run
from baton.agents.base import Turn
from baton.agents.codex import BASE_URL_PROVIDER, CodexAgent, rollout_files
from baton.agents.limits import Limit, LimitKind
from baton.settings import Settings
from baton.testing.mock_openai import MODEL, MockOpenAI

# -- recorded from `codex exec --json` 0.169.0 against the mock (stdout was empty each time) ----------
NOT_CONFIGURED = (  # a thread made with OPENAI_BASE_URL, resumed once config.toml names `mock`
    "Error: thread/resume: thread/resume failed: This chat uses model provider “openai-base-url”, which "
    "is no longer configured. Restore this provider\u2019s configuration to continue. (code -32600), data: "
    '{"type":"modelProviderNotConfigured","modelProvider":"openai-base-url"}\n'
)
RENAMED = (  # a thread made with [model_providers.mock], resumed once it is [model_providers.mock2]
    "Error: thread/resume: thread/resume failed: This chat uses model provider “mock”, which is no "
    "longer configured. Restore this provider\u2019s configuration to continue. (code -32600), data: "
    '{"type":"modelProviderNotConfigured","modelProvider":"mock"}\n'
)
CHANGED = (  # a thread made with `mock`, resumed with OPENAI_BASE_URL once model_provider is unset
    "Error: thread/resume: thread/resume failed: failed to load configuration: Cannot change this "
    "thread's model provider from `mock` to `openai-base-url` on resume. (code -32600)\n"
)
UNKNOWN = "Error: Model provider `nope` not found\n"  # a FRESH turn; config.toml names no such table


@pytest.fixture
def agent(tmp_path: Path) -> CodexAgent:
    return CodexAgent(tmp_path / "codex-home", "/opt/codex/bin/codex")


def test_a_provider_no_longer_configured_is_lost_with_baton_saying_why(agent: CodexAgent) -> None:
    turn = Turn()
    assert agent.classify(1, turn, NOT_CONFIGURED) == Outcome.SESSION_LOST
    assert turn.errors == [
        "the conversation was made with model provider 'openai-base-url' (the one baton makes of "
        "OPENAI_BASE_URL), which Codex's configuration no longer defines, so Codex cannot resume it",
        NOT_CONFIGURED.strip(),
    ]
    unnamed = Turn()
    assert agent.classify(1, unnamed, 'failed, data: {"type":"modelProviderNotConfigured"}') == (
        Outcome.SESSION_LOST
    )
    assert unnamed.errors[0] == (
        "the conversation was made with a model provider Codex's configuration no longer defines, so "
        "Codex cannot resume it"
    )
    renamed = Turn()
    assert agent.classify(1, renamed, RENAMED) == Outcome.SESSION_LOST
    assert renamed.errors[0].startswith("the conversation was made with model provider 'mock', which")
    changed = Turn()
    assert agent.classify(1, changed, CHANGED) == Outcome.SESSION_LOST
    assert changed.errors[0] == (
        "the conversation was made with model provider 'mock' and Codex cannot resume it with "
        "'openai-base-url' (the one baton makes of OPENAI_BASE_URL), the one its configuration names now"
    )


@pytest.mark.parametrize(
    "said",
    [
        # the code alone, its data's keys in another order; the sentence alone, in plain quotes
        'thread/resume failed (code -32600), data: {"modelProvider":"corp","type":'
        '"modelProviderNotConfigured"}',
        'This chat uses model provider "corp", which is no longer configured.',
        "This chat uses model provider `corp` which is no longer configured",
    ],
)
def test_either_the_code_or_the_sentence_is_enough(agent: CodexAgent, said: str) -> None:
    turn = Turn(errors=[said])  # 0.169 says it on stderr; an error event of the turn would do too
    assert agent.classify(1, turn, "") == Outcome.SESSION_LOST
    assert turn.errors == [
        "the conversation was made with model provider 'corp', which Codex's configuration no longer "
        "defines, so Codex cannot resume it",
        said,
    ]


def test_nothing_else_passes_for_a_provider_refusal(agent: CodexAgent) -> None:
    # a fresh turn's unknown provider is the operator's configuration to fix: failed, said as it was
    unknown = Turn()
    assert agent.classify(1, unknown, UNKNOWN) == Outcome.FAILED
    assert unknown.errors == []
    # a turn refused over a limit found its thread: never lost, whatever its words
    limited = Turn(limit=Limit(LimitKind.EXHAUSTED, None, "codex", "spent"))
    assert agent.classify(1, limited, NOT_CONFIGURED) == Outcome.FAILED
    # other words about a provider
    for said in (
        "Error: Could not connect to local model provider at http://127.0.0.1:9/v1.",
        "Missing environment variable: `MOCK_API_KEY`. (model provider mock)",
        "stream disconnected before completion: model provider is no longer reachable",
    ):
        assert agent.classify(1, Turn(), said) == Outcome.FAILED, said


# -- the real Codex CLI against the mock -------------------------------------------------------------

Config = dict[str, Any]


@pytest.fixture
def mock(monkeypatch: pytest.MonkeyPatch) -> Iterator[MockOpenAI]:
    """The mock, its key in this process's environment; no OPENAI_BASE_URL unless a test sets it."""
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with MockOpenAI() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-mock")
        yield server


def provider(mock: MockOpenAI, name: str) -> Config:
    """config.toml's keys that make ``name`` the model provider, a table pointing at the mock."""
    return {"model": MODEL, "model_provider": name, "model_providers": {name: mock.provider()}}


def write_config(home: Path, config: Config) -> None:
    """The operator rewrites config.toml whole (the adapter adds its managed keys at the next turn)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(tomlkit.dumps({"model": MODEL, **config}))


def codex_turn(agent: CodexAgent, mode: Mode, session: str | None, cwd: Path) -> tuple[Outcome, Turn, str]:
    """One turn of the real CLI, launched and classified by the adapter as the runner does."""
    agent.prepare_home(30)
    launch = agent.launch(mode, "hello", session)
    done = subprocess.run(
        launch.argv,
        cwd=cwd,
        env={**os.environ, **launch.env},
        input=launch.stdin,
        capture_output=True,
        timeout=120,
    )
    turn = Turn()
    for line in done.stdout.decode().splitlines():
        agent.read_event(line, turn)
    stderr = done.stderr.decode()
    return agent.classify(done.returncode, turn, stderr), turn, stderr


@pytest.mark.slow
def test_real_cli_refusals_are_lost_conversations(
    tmp_path: Path, mock: MockOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every resume refusal the real CLI gives offline, classified by the adapter: lost (the runner
    recovers with a recap), baton's sentence first for a provider; a fresh turn's unknown provider is
    not one of them. None of them reaches the model."""
    home, cwd = tmp_path / "home", tmp_path / "work"
    cwd.mkdir()
    agent = CodexAgent(home)
    write_config(home, provider(mock, "mock"))
    outcome, made, _ = codex_turn(agent, Mode.FRESH, None, cwd)
    assert outcome == Outcome.SUCCEEDED and made.session_id
    thread = made.session_id
    # no rollout for the id
    outcome, turn, stderr = codex_turn(agent, Mode.RESUME, str(uuid.uuid4()), cwd)
    assert outcome == Outcome.SESSION_LOST and "no rollout found for thread id" in stderr
    # an unreadable rollout (a copy of the thread's, garbled, under another id)
    [path] = rollout_files(home, thread)
    other = str(uuid.uuid4())
    path.with_name(path.name.replace(thread, other)).write_bytes(b"\x00\xff not a rollout\n")
    outcome, turn, stderr = codex_turn(agent, Mode.RESUME, other, cwd)
    assert outcome == Outcome.SESSION_LOST and "failed to read session metadata" in stderr
    # config.toml names no provider of its own and OPENAI_BASE_URL is set: the thread's `mock` is
    # still defined, but another provider is named
    write_config(home, {"model_providers": {"mock": mock.provider()}})
    monkeypatch.setenv("OPENAI_BASE_URL", f"{mock.url}/v1")
    outcome, turn, stderr = codex_turn(agent, Mode.RESUME, thread, cwd)
    assert outcome == Outcome.SESSION_LOST, stderr
    assert turn.errors[0].startswith("the conversation was made with model provider 'mock' and Codex")
    assert f"from `mock` to `{BASE_URL_PROVIDER}` on resume" in turn.errors[-1]
    # the provider renamed: the thread's is defined no more
    monkeypatch.delenv("OPENAI_BASE_URL")
    write_config(home, provider(mock, "mock2"))
    outcome, turn, stderr = codex_turn(agent, Mode.RESUME, thread, cwd)
    assert outcome == Outcome.SESSION_LOST, stderr
    assert turn.errors[0].startswith("the conversation was made with model provider 'mock', which Codex's")
    assert '"type":"modelProviderNotConfigured","modelProvider":"mock"' in stderr
    assert "This chat uses model provider “mock”, which is no longer configured." in stderr
    # not a refusal to resume: a fresh turn whose configuration names an unknown provider fails
    write_config(home, {"model_provider": "nope"})
    outcome, turn, stderr = codex_turn(agent, Mode.FRESH, None, cwd)
    assert outcome == Outcome.FAILED and "Model provider `nope` not found" in stderr
    assert mock.history_counts() == [4], "no refusal reached the model"


def go(settings: Settings, repo: Path, prompt: str) -> RunResult:
    return run(RunRequest(agent="codex", repo=str(repo), thread="issue-1", prompt=prompt), settings=settings)


def recovered_at_once(result: RunResult, mock: MockOpenAI, was: str, earlier: list[str]) -> str:
    """The run met Codex's refusal of a thread made with provider ``was`` and recovered in the same
    run: a fresh thread told a recap of ``earlier`` prompts, the note saying why; its new thread id."""
    assert [(a.mode, a.outcome) for a in result.attempts] == [
        (Mode.RESUME, Outcome.SESSION_LOST),
        (Mode.RECOVER, Outcome.SUCCEEDED),
    ], [a.error for a in result.attempts]
    lost, recovered = result.attempts
    why = f"the conversation was made with model provider {was!r}"
    assert lost.error and lost.error.startswith(why), lost.error
    assert "modelProviderNotConfigured" in lost.error and "which is no longer configured" in lost.error
    assert recovered.note and why in recovered.note and "no longer defines" in recovered.note
    assert recovered.prompt_kind == PromptKind.RECAP and result.run is recovered
    assert result.session.agent_session_id not in (None, lost.session_id_in)
    assert mock.history_counts()[-1] == 4, "the recovery is a new thread"
    sent = mock.conversation_requests()[-1].text()
    assert all(prompt in sent for prompt in earlier), "with a recap of the earlier turns"
    return str(result.session.agent_session_id)


@pytest.mark.slow
def test_a_provider_switch_recovers_in_one_turn(
    settings: Settings, src_repo: Path, mock: MockOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator moves a thread's Codex from ``OPENAI_BASE_URL`` to a config.toml provider, renames
    that provider, and moves back to ``OPENAI_BASE_URL``: each time Codex 0.169 refuses the thread
    (``modelProviderNotConfigured``), and the same run recovers it with a recap — no failed turn, no
    strikes to wait for."""
    base = settings.home / "homes" / "codex"
    write_config(base, {})
    monkeypatch.setenv("OPENAI_BASE_URL", f"{mock.url}/v1")
    first = go(settings, src_repo, "implement the parser")
    assert first.ok and first.run.mode == Mode.FRESH, first.run.error
    prompts = ["implement the parser"]
    requests = len(mock.conversation_requests())
    for was, config, prompt in (
        (BASE_URL_PROVIDER, provider(mock, "mock"), "add error messages"),  # a provider of config.toml
        ("mock", provider(mock, "mock2"), "write the docs"),  # renamed
        ("mock2", {}, "ship it"),  # back to OPENAI_BASE_URL
    ):
        write_config(base, config)
        result = go(settings, src_repo, prompt)
        recovered_at_once(result, mock, was, prompts)
        assert len(mock.conversation_requests()) == requests + 1, "the refused resume never reached the model"
        requests += 1
        prompts.append(prompt)
    after = go(settings, src_repo, "next")
    assert [(a.mode, a.outcome) for a in after.attempts] == [(Mode.RESUME, Outcome.SUCCEEDED)]
    assert mock.history_counts()[-1] == 6
