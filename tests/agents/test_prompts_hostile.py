"""A prompt is never an option, and a prompt of any length reaches the agent.

Issue bodies and PR comments become prompts, so a prompt such as ``--settings={"hooks":…}`` must never
reach an agent CLI's option parser: Claude Code would run the hook's command. Every adapter passes
the prompt on stdin and keeps argv free of it; these tests prove it for any text (hypothesis) and end
to end through :func:`baton.run` with the fake agent, which parses argv as Claude Code does and runs
``--settings`` hooks as Claude does. The real CLIs are driven the same way in
``tests/agents/test_agents_real.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from baton import RunRequest, run
from baton.agents.base import Agent
from baton.agents.claude import ClaudeAgent
from baton.agents.codex import CodexAgent
from baton.agents.gemini import GeminiAgent
from baton.errors import BadInput
from baton.models import Mode
from baton.settings import Settings
from baton.testing.fake import find_transcripts

THREAD = "01a1feaa-303a-75d0-8293-4ac0347e196e"
LEADS = ["-", "--", "-p ", "--settings=", "--resume ", "/", "?", " /", "\n--", "resume ", "@", "!"]


def hook(marker: Path) -> str:
    """The attack to stop: a prompt that, read as Claude's `--settings`, runs a command."""
    settings = {"hooks": {"SessionStart": [{"hooks": [{"type": "command", "command": f"touch {marker}"}]}]}}
    return f"--settings={json.dumps(settings, separators=(',', ':'))}"


def adapters(tmp: Path) -> list[Agent]:
    return [
        ClaudeAgent("claude", tmp / "claude", "/opt/claude"),
        CodexAgent(tmp / "codex", "/opt/codex"),
        GeminiAgent(tmp / "gemini", "/opt/gemini"),
    ]


MODES = [(Mode.FRESH, None), (Mode.RECOVER, None), (Mode.RESUME, THREAD), (Mode.CONTINUE, None)]


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lead=st.sampled_from(LEADS), text=st.text(st.characters(blacklist_characters="\x00")))
def test_no_byte_of_any_prompt_is_in_argv(tmp_path: Path, lead: str, text: str) -> None:
    prompt = lead + text
    if not valid_utf8(prompt):  # lone surrogates (undecodable argv bytes) are refused, never sent
        for agent in adapters(tmp_path):
            with pytest.raises(BadInput, match="UTF-8"):
                agent.launch(Mode.FRESH, prompt, None)
        return
    for agent in adapters(tmp_path):
        for mode, session in MODES:
            launch = agent.launch(mode, prompt, session)
            neutral = agent.launch(mode, "x", session)
            # argv does not depend on the prompt at all (bar the fresh id baton pre-assigns)
            ids = {launch.new_session_id, neutral.new_session_id} - {None}
            assert [a for a in launch.argv if a not in ids] == [a for a in neutral.argv if a not in ids]
            assert launch.stdin is not None
            sent = launch.stdin.decode("utf-8")
            assert sent == prompt or sent == f"Instruction: {prompt}", (agent.name, mode)


def valid_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def test_a_nul_byte_is_refused_by_every_adapter(tmp_path: Path) -> None:
    for agent in adapters(tmp_path):
        with pytest.raises(BadInput, match="NUL"):
            agent.launch(Mode.FRESH, "before\x00after", None)


def fake_prompts(settings: Settings, session_id: str) -> list[str]:
    """The user messages in the fake agent's transcript of ``session_id``."""
    [path] = find_transcripts(settings, session_id)
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    return [e["message"]["content"] for e in entries if e["type"] == "user"]


def test_hostile_prompts_reach_the_fake_agent_as_text(
    settings: Settings, src_repo: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    prompts = [hook(marker), "-p hello", "--", "--resume x", "/clear the cache", "?why"]
    sent = []
    for prompt in [hook(marker), *prompts]:
        request = RunRequest(agent="fake", repo=str(src_repo), thread="t", prompt=prompt)
        result = run(request, settings=settings)
        assert result.ok, result.run.error
        sent.append(prompt)
    assert not marker.exists(), "a prompt was read as --settings and its hook ran"
    assert result.session.agent_session_id
    got = fake_prompts(settings, result.session.agent_session_id)
    assert hook(marker) in got[0], "the full prompt of the fresh turn holds the instruction"
    # a delta turn is the instruction itself (the template adds a newline); `/` would be a slash command
    want = [f"Instruction: {p}" if p.startswith("/") else p for p in sent[1:]]
    assert [g.removesuffix("\n") for g in got[1:]] == want


@pytest.mark.parametrize("size", [300_000, 2_000_000])
def test_long_prompts_reach_the_fake_agent_whole(settings: Settings, src_repo: Path, size: int) -> None:
    prompt = ("--long " + "log line ünï\n" * (size // 13))[:size].rstrip()  # the template trims the end
    first = run(RunRequest(agent="fake", repo=str(src_repo), thread="big", prompt="start"), settings=settings)
    assert first.ok, first.run.error
    again = run(RunRequest(agent="fake", repo=str(src_repo), thread="big", prompt=prompt), settings=settings)
    assert again.ok, again.run.error
    assert again.session.agent_session_id
    assert fake_prompts(settings, again.session.agent_session_id)[-1].removesuffix("\n") == prompt
