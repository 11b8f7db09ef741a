"""Instructions that changed under a thread, through the runner on the fake agent (the Claude adapter):
a resumed turn is told how CLAUDE.md changed, or starts a new conversation (``fresh``); an unchanged
worktree adds nothing; a link out of the worktree is never read."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from baton import Mode, OnInstructions, PromptKind, RunRequest, RunResult, open_store, run
from baton.settings import Settings
from tests.conftest import commit_file
from tests.runner.test_runner import sent_prompts


def go(settings: Settings, repo: Path, prompt: str, **kw: object) -> RunResult:
    return run(RunRequest(agent="fake", repo=str(repo), thread="t1", prompt=prompt, **kw), settings=settings)  # type: ignore[arg-type]


def worktree(result: RunResult) -> Path:
    return Path(result.session.worktree)


def test_a_changed_claude_md_is_told_on_the_next_resumed_turn(settings: Settings, src_repo: Path) -> None:
    first = go(settings, src_repo, "step one")
    (worktree(first) / "CLAUDE.md").write_text("Always answer in French.\n")
    second = go(settings, src_repo, "step two")
    third = go(settings, src_repo, "step three")
    assert [r.run.mode for r in (first, second, third)] == [Mode.FRESH, Mode.RESUME, Mode.RESUME]
    prompts = sent_prompts(settings, str(first.session.agent_session_id))
    told = prompts[1]
    assert "Your instruction files in the working directory changed" in told
    assert "Added: CLAUDE.md" in told and "+++ b/CLAUDE.md" in told and "+Always answer in French." in told
    assert told.rstrip().endswith("step two")  # the instruction last
    assert second.run.note is not None and "added: CLAUDE.md" in second.run.note
    assert prompts[2].strip() == "step three"  # told once: the record follows what the conversation saw
    (worktree(first) / "CLAUDE.md").write_text("Always answer in German.\n")
    fourth = go(settings, src_repo, "step four")
    told = sent_prompts(settings, str(first.session.agent_session_id))[3]
    assert "-Always answer in French.\n+Always answer in German." in told
    assert fourth.run.note is not None and "changed: CLAUDE.md" in fourth.run.note


def test_unchanged_files_add_nothing(settings: Settings, src_repo: Path) -> None:
    commit_file(src_repo, "CLAUDE.md", "Use tabs.\n", "instructions")
    first = go(settings, src_repo, "step one")
    second = go(settings, src_repo, "step two")
    assert second.run.mode == Mode.RESUME and second.run.note is None
    assert sent_prompts(settings, str(first.session.agent_session_id))[1].strip() == "step two"
    store = open_store(settings.resolved_store_url)
    try:
        stored = store.get_instructions("fake", first.run.repo, "t1")
    finally:
        store.close()
    assert stored is not None and stored.session_id == first.session.agent_session_id
    assert stored.files["CLAUDE.md"]["text"] == "Use tabs.\n"


def test_fresh_starts_a_new_conversation_with_a_recap(settings: Settings, src_repo: Path) -> None:
    first = go(settings, src_repo, "write the lexer")
    (worktree(first) / "CLAUDE.md").write_text("New rules.\n")
    second = go(settings, src_repo, "write the parser", on_instructions_change=OnInstructions.FRESH)
    assert second.run.mode == Mode.RECOVER and second.run.prompt_kind == PromptKind.RECAP
    assert second.session.agent_session_id != first.session.agent_session_id
    assert second.run.note is not None and "on_instructions_change is fresh" in second.run.note
    prompt = sent_prompts(settings, str(second.session.agent_session_id))[0]
    assert "write the lexer" in prompt  # the recap of the earlier turn
    assert "+++ b/CLAUDE.md" not in prompt  # a new conversation reads the files itself
    third = go(settings, src_repo, "write the checker", on_instructions_change=OnInstructions.FRESH)
    assert third.run.mode == Mode.RESUME  # recorded for the new conversation: nothing changed since


def test_fresh_from_the_setting(settings: Settings, src_repo: Path) -> None:
    fresh = settings.with_(on_instructions_change="fresh")
    first = go(fresh, src_repo, "one")
    (worktree(first) / "AGENTS.md").write_text("not Claude's: no change for it\n")
    assert go(fresh, src_repo, "two").run.mode == Mode.RESUME
    (worktree(first) / ".mcp.json").write_text("{}\n")
    assert go(fresh, src_repo, "three").run.mode == Mode.RECOVER


def test_a_linked_claude_md_outside_the_worktree_is_not_followed(
    settings: Settings, src_repo: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET: hunter2\n")
    first = go(settings, src_repo, "one")
    (worktree(first) / "CLAUDE.md").symlink_to(secret)
    go(settings, src_repo, "two")
    told = sent_prompts(settings, str(first.session.agent_session_id))[1]
    assert f"CLAUDE.md: a symbolic link to {str(secret)!r} (not followed)" in told
    assert "hunter2" not in told
    store = open_store(settings.resolved_store_url)
    try:
        stored = store.get_instructions("fake", first.run.repo, "t1")
    finally:
        store.close()
    assert stored is not None and "hunter2" not in repr(stored.files)


def test_a_huge_claude_md_is_bounded_in_the_prompt(settings: Settings, src_repo: Path) -> None:
    first = go(settings, src_repo, "one")
    rules = "".join(f"rule {n}: be brief\n" for n in range(200_000))  # ~3.7 MB
    (worktree(first) / "CLAUDE.md").write_text(rules)
    go(settings, src_repo, "two")
    told = sent_prompts(settings, str(first.session.agent_session_id))[1]
    assert "+rule 0: be brief" in told and "more lines of this diff not shown" in told
    assert len(told) < 40_000


def test_sessions_show_lists_the_recorded_files(
    settings: Settings, src_repo: Path, cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    first = go(settings, src_repo, "one")
    (worktree(first) / "CLAUDE.md").write_text("Use tabs.\n")
    (worktree(first) / ".mcp.json").write_bytes(b"\xff\xfe")
    go(settings, src_repo, "two")
    args = ("sessions", "show", "-a", "fake", "-r", first.run.repo, "-t", "t1")
    shown = json.loads(cli(*args, "--json").stdout)["instructions"]
    assert shown["session_id"] == first.session.agent_session_id
    assert shown["files"]["CLAUDE.md"]["kind"] == "text" and shown["files"]["CLAUDE.md"]["size"] == 10
    assert shown["files"][".mcp.json"]["kind"] == "binary"
    assert all("text" not in entry for entry in shown["files"].values())  # digests, never the texts
    text = cli(*args).stdout
    assert "instructions (recorded" in text and "CLAUDE.md: text, 10 B sha256 " in text


def test_an_explicit_resume_is_told_even_when_fresh_is_set(settings: Settings, src_repo: Path) -> None:
    first = go(settings, src_repo, "one")
    (worktree(first) / "CLAUDE.md").write_text("New rules.\n")
    second = go(settings, src_repo, "two", mode=Mode.RESUME, on_instructions_change=OnInstructions.FRESH)
    assert second.run.mode == Mode.RESUME
    assert "+New rules." in sent_prompts(settings, str(first.session.agent_session_id))[1]
