"""A model's context window: the table of known windows, the setting that overrides it (per agent, per
repository), the threshold, what a turn held, and the vendors' refusals of an over-long prompt as each
CLI relays them (measured against the mocks: tests/agents/test_window_real.py)."""

from __future__ import annotations

import json

import pytest

from baton.agents import AGENTS, Turn, get_agent
from baton.agents.window import known_window, measured, refused_sizes, request_tokens, too_long
from baton.errors import AgentError, BadInput
from baton.keys import make_key
from baton.models import Access
from baton.runner.window import window_of
from baton.settings import Settings, load_settings
from baton.testing.mock_anthropic import prompt_too_long
from baton.testing.mock_gemini import input_too_long
from baton.testing.mock_openai import context_length_exceeded


@pytest.mark.parametrize(
    ("model", "agent", "window"),
    [
        ("claude-opus-5-5", "claude", 200_000),
        ("claude-sonnet-4-5-20250929", "claude", 200_000),
        ("gpt-5.5", "codex", 400_000),
        ("gpt-5-codex", "codex", 400_000),
        ("gpt-4.1-mini", "codex", 1_047_576),
        ("gemini-2.5-pro", "gemini", 1_048_576),
        ("gemini-3.1-pro-preview", "gemini", 1_048_576),
        ("GEMINI-2.5-FLASH", "gemini", 1_048_576),  # names compared in lower case
        ("pro", "gemini", 1_048_576),  # an alias: the agent's default model's
        (None, "codex", 400_000),
        ("some-local-model", "opencode", None),  # unknown: only the setting gives one
    ],
)
def test_known_windows_by_model_name_then_by_agent(model: str | None, agent: str, window: int | None) -> None:
    assert known_window(model, agent) == window


def settings_with(home: object, **values: object) -> Settings:
    return load_settings(overrides={"home": str(home), **values}, environ={})


def test_the_setting_overrides_the_table_a_repository_over_an_agent_over_a_bare_number(
    tmp_path: object,
) -> None:
    key = make_key("claude", "https://github.com/acme/api", "issue-1", AGENTS)
    other = make_key("codex", "https://github.com/other/app", "issue-1", AGENTS)
    plain = settings_with(tmp_path)
    assert window_of(plain, key, "claude-opus-5-5") == 200_000
    bare = settings_with(tmp_path, context_window="150000")
    assert window_of(bare, key, "claude-opus-5-5") == window_of(bare, other, None) == 150_000
    mixed = settings_with(tmp_path, context_window="100000, codex=272000, github.com/acme/*=50000")
    assert mixed.context_windows == {"": 100_000, "codex": 272_000, "github.com/acme/*": 50_000}
    assert window_of(mixed, key, "claude-opus-5-5") == 50_000  # the repository's
    assert window_of(mixed, other, "gpt-5.5") == 272_000  # the agent's
    only_codex = settings_with(tmp_path, context_window="codex=272000")
    assert window_of(only_codex, key, "claude-opus-5-5") == 200_000  # not named: the table's


@pytest.mark.parametrize("value", ["big", "0", "codex=", "=5", "codex=-3", "codex=1e6"])
def test_a_bad_context_window_is_refused_naming_it(tmp_path: object, value: str) -> None:
    with pytest.raises(BadInput, match="context_window"):
        settings_with(tmp_path, context_window=value)


def test_the_threshold_is_a_share_of_the_window(tmp_path: object) -> None:
    assert settings_with(tmp_path).context_threshold == 0.8
    assert settings_with(tmp_path, context_threshold="0").context_threshold == 0.0
    with pytest.raises(BadInput, match="context_threshold"):
        settings_with(tmp_path, context_threshold="1.5")
    with pytest.raises(BadInput, match="context_threshold"):
        settings_with(tmp_path, context_threshold="-0.1")


def test_what_a_turn_held() -> None:
    # Anthropic counts cache writes and reads apart from the fresh input; the answer joins the context
    usage = {"input_tokens": 5, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 90_000}
    assert request_tokens({**usage, "output_tokens": 200}) == 91_205
    assert measured(91_205, {"input_tokens": 1}) == 91_205  # the events' per-request measure first
    # OpenAI's input includes its cached part (not added twice); Gemini's, as baton records it, does not
    assert measured(None, {"input_tokens": 400, "cached_input_tokens": 300, "output_tokens": 12}) == 412
    assert measured(None, {"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 2}) == 102
    assert measured(None, {}) is None and measured(None, {"input_tokens": True}) is None


def test_claude_measures_the_last_model_request_and_skips_synthetic_messages(settings: Settings) -> None:
    agent, turn = get_agent("claude", settings), Turn()
    init = {"type": "system", "subtype": "init", "session_id": "s", "model": "claude-opus-5-5"}
    real = {"model": "claude-opus-5-5", "usage": {"input_tokens": 10, "cache_read_input_tokens": 5000}}
    later = {"model": "claude-opus-5-5", "usage": {"input_tokens": 20, "cache_read_input_tokens": 7000}}
    synthetic = {"model": "<synthetic>", "usage": {"input_tokens": 0}, "content": []}
    for event in (
        init,
        {"type": "assistant", "message": real},
        {"type": "assistant", "message": later},
        {"type": "assistant", "error": "invalid_request", "message": synthetic},
    ):
        agent.read_event(json.dumps(event), turn)
    assert (turn.model, turn.context_tokens) == ("claude-opus-5-5", 7020)


# What each CLI relayed of its vendor's refusal, measured against the mocks (Claude Code 2.1.327, Codex
# 0.169.0, Gemini CLI 0.61.0)
RELAYED = {
    "claude": "Prompt is too long",
    "codex": "Codex ran out of room in the model's context window. Start a new thread or clear earlier "
    "history before retrying.",
    "gemini": '[API Error: {"error":{"code":400,"message":"The input token count (30) exceeds the maximum '
    'number of tokens allowed (1).","status":"INVALID_ARGUMENT"}}]',
}


@pytest.mark.parametrize("agent", sorted(RELAYED))
def test_each_clis_words_for_a_prompt_too_long_are_recognised(agent: str) -> None:
    assert too_long(f"something else\n{RELAYED[agent]}") == RELAYED[agent]


def test_the_vendors_refusals_are_recognised_and_their_sizes_read() -> None:
    anthropic = prompt_too_long(208_499, 200_000)
    assert anthropic.status == 400 and anthropic.body["error"]["type"] == "invalid_request_error"
    said = anthropic.body["error"]["message"]
    assert too_long(said) and refused_sizes(said) == (208_499, 200_000)
    gemini = input_too_long(1_196_265, 1_048_575)
    assert gemini.status == 400 and gemini.body["error"]["status"] == "INVALID_ARGUMENT"
    assert refused_sizes(gemini.body["error"]["message"]) == (1_196_265, 1_048_575)
    openai = context_length_exceeded()
    assert openai.status == 400 and openai.body["error"]["code"] == "context_length_exceeded"
    assert too_long(json.dumps(openai.body))
    assert too_long("rate limit exceeded\nAPI Error: 500") is None


def test_a_failed_turn_that_says_nothing_of_the_window_is_no_context_full(settings: Settings) -> None:
    agent = get_agent("claude", settings)
    turn = Turn(is_error=True, errors=["API Error: 500 overloaded"])
    assert agent.context_full(1, turn, "") is None
    assert agent.context_full(0, Turn(result="Prompt is too long, said the user"), "") is None  # a success
    assert agent.context_full(1, Turn(is_error=True, result="Prompt is too long"), "") == "Prompt is too long"


def test_claude_compacts_headlessly_and_says_what_the_conversation_held_after(settings: Settings) -> None:
    agent = get_agent("claude", settings)
    assert agent.capabilities.compacts
    launch = agent.compact_launch("0b5c6f4e-8d1d-4a59-9f0a-3c1b2d4e5f60", Access.EDIT)
    assert launch.stdin == b"/compact", "baton's own slash command, not rewritten as an instruction"
    assert launch.argv[launch.argv.index("--resume") + 1] == "0b5c6f4e-8d1d-4a59-9f0a-3c1b2d4e5f60"
    assert "-p" in launch.argv and launch.new_session_id is None
    turn = Turn()
    meta = {"trigger": "manual", "pre_tokens": 180_000, "post_tokens": 9_000}
    for event in (
        {"type": "system", "subtype": "status", "status": "compacting"},
        {"type": "system", "subtype": "status", "status": None, "compact_result": "success"},
        {"type": "system", "subtype": "compact_boundary", "compact_metadata": meta},
    ):
        agent.read_event(json.dumps(event), turn)
    assert turn.compacted and turn.context_tokens == 9_000
    failed = Turn()
    said = {"type": "system", "subtype": "status", "compact_result": "failed", "compact_error": "exhausted"}
    agent.read_event(json.dumps(said), failed)
    assert not failed.compacted and failed.errors == ["compaction failed: exhausted"]


@pytest.mark.parametrize("name", ["codex", "gemini"])
def test_codex_and_gemini_cannot_compact_headlessly(settings: Settings, name: str) -> None:
    agent = get_agent(name, settings)
    assert not agent.capabilities.compacts
    with pytest.raises(AgentError, match="cannot compact"):
        agent.compact_launch("0b5c6f4e-8d1d-4a59-9f0a-3c1b2d4e5f60", Access.EDIT)
