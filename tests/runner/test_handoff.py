"""Hand-off between agents: the source key and its checks, the target's worktree seeded with the source's
committed, uncommitted and untracked work (from its worktree, its cache refs, or the store's checkpoint of
another machine) while the source stays as it was, the changed-file list, and the recap within its budget,
hostile sizes included. Real git and SQLite; the source runs as the fake agent through :func:`baton.run`."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from baton import RunRequest, RunResult, run
from baton.agents import AGENTS, Agent, Capabilities, get_agent
from baton.errors import BadInput
from baton.keys import Key, make_key
from baton.models import Mode, Outcome, PromptKind, RunRecord, SessionRecord
from baton.runner.prompts import render
from baton.settings import Settings, load_settings
from baton.store import Store, open_store
from baton.sync.handoff import (
    DEFAULT_BUDGET,
    changed_files,
    handoff_recap,
    handoff_source,
    recap_budget,
    seed_worktree,
)
from baton.testing import MockModel
from baton.testing.mock_anthropic import MockAnthropic
from baton.workspace.workdirs import Workdirs, branch_for
from tests.conftest import FAMILIES, FAST, FIRST, MOCKS, agent_work, git, status

# -- helpers -------------------------------------------------------------------------------------------


def go(settings: Settings, repo: Path, prompt: str = "go on", thread: str = "t1") -> RunResult:
    result = run(RunRequest(agent="fake", repo=str(repo), thread=thread, prompt=prompt), settings=settings)
    assert result.ok, result.run.error
    return result


def key_of(agent: str, repo: Path, thread: str = "t1") -> Key:
    return make_key(agent, str(repo), thread, AGENTS)


def all_refs(cache: Path) -> dict[str, str]:
    out = git(cache, "for-each-ref", "--format=%(refname) %(objectname)")
    return {name: sha for name, sha in (line.split(" ") for line in out.splitlines())}


def session_of(store: Store, key: Key) -> SessionRecord:
    session = store.get_session(key.agent, key.repo.slug, key.thread)
    assert session is not None
    return session


def make_run(number: int, prompt: str, result: str | None = None, error: str | None = None) -> RunRecord:
    return RunRecord(
        id=f"r{number}",
        agent="claude",
        repo="local/x",
        thread="t1",
        attempt=1,
        mode=Mode.RESUME,
        prompt_kind=PromptKind.DELTA,
        prompt=prompt,
        outcome=Outcome.SUCCEEDED if result else Outcome.FAILED,
        result=result,
        error=error,
    )


@pytest.fixture
def workdirs(settings: Settings) -> Workdirs:
    return Workdirs(settings)


@pytest.fixture
def source_run(settings: Settings, src_repo: Path) -> RunResult:
    """The fake agent's conversation on (repo, t1), with work in its worktree: a commit, a modified
    file and an untracked one."""
    result = go(settings, src_repo, "write the lexer")
    agent_work(Path(result.session.worktree))
    return result


# -- handoff_source ------------------------------------------------------------------------------------


def test_the_source_is_the_other_agents_key_on_the_same_repo_and_thread(
    settings: Settings, src_repo: Path, source_run: RunResult, store: Store
) -> None:
    source, session = handoff_source(store, key_of("claude", src_repo), "fake")
    assert source == key_of("fake", src_repo)
    assert session.agent_session_id == source_run.session.agent_session_id


def test_a_source_that_cannot_hand_off_is_refused_and_nothing_is_written(
    settings: Settings, src_repo: Path, store: Store
) -> None:
    target = key_of("claude", src_repo)
    with pytest.raises(BadInput, match="no such agent"):
        handoff_source(store, target, "gpt")
    with pytest.raises(BadInput, match="its own agent"):
        handoff_source(store, target, "claude")
    with pytest.raises(BadInput, match="no session to hand off"):
        handoff_source(store, target, "fake")
    source = key_of("fake", src_repo)
    bare = SessionRecord("fake", source.repo.slug, "t1", str(src_repo), "baton/fake/t1", "/nowhere")
    store.save_session(bare)
    with pytest.raises(BadInput, match="no conversation to hand off"):
        handoff_source(store, target, "fake")
    assert store.list_sessions() == [bare] and store.list_runs() == []
    assert not (settings.home / "repos").exists() and not (settings.home / "worktrees").exists()


# -- seed_worktree ------------------------------------------------------------------------------------------


def staged(path: Path) -> str:
    """The index's entries (mode, object, stage, path), not its bytes: any ``git status`` may rewrite
    the file to refresh the files' stat data (seen once under load), which changes nothing staged."""
    return git(path, "ls-files", "--stage", "-z")


def test_the_target_worktree_holds_the_sources_commit_modified_and_untracked_files(
    settings: Settings, src_repo: Path, source_run: RunResult, store: Store, workdirs: Workdirs
) -> None:
    source, session = handoff_source(store, key_of("claude", src_repo), "fake")
    target = key_of("claude", src_repo)
    path_s = Path(session.worktree)
    cache = workdirs.cache_path(source.repo)
    head = git(path_s, "rev-parse", "HEAD")
    before = (
        status(path_s),
        all_refs(cache),
        staged(path_s),
    )

    note = seed_worktree(store, workdirs, source, session, target, branch_for(target))
    made = workdirs.prepare_worktree(target, branch_for(target), None)

    assert note == f"handed off from fake's worktree at {head[:12]} with 2 uncommitted files"
    path_t = made.path
    assert path_t == workdirs.worktree_path(target) and path_t != path_s
    assert git(path_t, "rev-parse", "HEAD") == head
    assert git(path_t, "rev-parse", "--abbrev-ref", "HEAD") == "baton/claude/t1"
    assert (path_t / "lexer.py").read_text() == "TOKENS = []\n"
    assert (path_t / "README.md").read_text() == "# changed, not committed\n"
    assert (path_t / "notes.md").read_text() == "untracked notes\n"
    assert status(path_t) == {"M README.md", "?? notes.md"}  # still uncommitted, still untracked
    # the source is as it was: files, index, branch, its own checkpoint ref (only the target's refs are new)
    after = all_refs(cache)
    assert status(path_s) == before[0] and git(path_s, "rev-parse", "HEAD") == head
    assert "\tlexer.py" in before[2] and staged(path_s) == before[2]
    new = {name for name in after if name not in before[1]}
    assert new == {"refs/heads/baton/claude/t1", "refs/baton/checkpoints/claude/t1"}
    assert {name: sha for name, sha in after.items() if name in before[1]} == before[1]
    # and it still resumes its own conversation
    again = go(settings, src_repo, "and the parser")
    assert again.run.mode == Mode.RESUME and again.run.result == "fake reply: received 4 messages"


def test_a_clean_source_gives_a_branch_and_no_checkpoint(
    settings: Settings, src_repo: Path, store: Store, workdirs: Workdirs
) -> None:
    first = go(settings, src_repo)
    path_s = Path(first.session.worktree)
    (path_s / "parser.py").write_text("def parse(): ...\n")
    git(path_s, "add", "parser.py")
    git(path_s, "commit", "--quiet", "-m", "agent: parser")
    target = key_of("claude", src_repo)
    cache = workdirs.cache_path(target.repo)
    stale = git(cache, "rev-parse", "refs/heads/main")
    git(cache, "update-ref", workdirs.checkpoint_ref(target), stale)  # an old session's, never its
    source, session = handoff_source(store, target, "fake")
    note = seed_worktree(store, workdirs, source, session, target, branch_for(target))
    assert note is not None and note.endswith("with nothing uncommitted")
    assert workdirs.read_ref(cache, workdirs.checkpoint_ref(target)) is None
    path_t = workdirs.prepare_worktree(target, branch_for(target), None).path
    assert git(path_t, "log", "-1", "--format=%s") == "agent: parser" and status(path_t) == set()


def test_a_branch_that_cannot_be_the_targets_is_refused_before_any_ref_moves(
    settings: Settings, src_repo: Path, source_run: RunResult, store: Store, workdirs: Workdirs
) -> None:
    target = key_of("claude", src_repo)
    source, session = handoff_source(store, target, "fake")
    cache = workdirs.cache_path(target.repo)
    with pytest.raises(BadInput, match="checks a branch out in one worktree only"):
        seed_worktree(store, workdirs, source, session, target, session.branch)
    # a branch elsewhere in the history (not behind the source's tip) is someone's work: kept
    git(cache, "branch", "other", "main")
    git(
        cache,
        "update-ref",
        "refs/heads/other",
        git(cache, "commit-tree", "-p", "main", "-m", "x", "main^{tree}"),
    )
    before = all_refs(cache)
    with pytest.raises(BadInput, match="already exists at"):
        seed_worktree(store, workdirs, source, session, target, "other")
    assert all_refs(cache) == before
    # a branch the target's own worktree has checked out does not count as checked out elsewhere
    workdirs.prepare_worktree(target, "other", None)
    with pytest.raises(BadInput, match="already exists at"):
        seed_worktree(store, workdirs, source, session, target, "other")
    assert all_refs(cache) == before and workdirs.worktree_path(target).is_dir()


def test_a_target_worktree_left_without_a_session_is_archived_and_replaced(
    settings: Settings, src_repo: Path, source_run: RunResult, store: Store, workdirs: Workdirs
) -> None:
    """Reused, it would not hold the source's work (e.g. a hand-off refused at launch left it)."""
    target = key_of("claude", src_repo)
    source, session = handoff_source(store, target, "fake")
    left = workdirs.prepare_worktree(target, branch_for(target), None).path
    (left / "stray.txt").write_text("left behind\n")
    note = seed_worktree(store, workdirs, source, session, target, branch_for(target))
    assert note and "replaced; it is archived at refs/baton/archive/claude/t1/" in note
    ref = note.rsplit(" ", 1)[-1]
    cache = workdirs.cache_path(target.repo)
    assert git(cache, "show", f"{ref}:stray.txt") == "left behind"
    path_t = workdirs.prepare_worktree(target, branch_for(target), None).path
    assert path_t == left and not (path_t / "stray.txt").exists()
    assert status(path_t) == {"M README.md", "?? notes.md"} and (path_t / "lexer.py").is_file()
    audit = store.list_audit(limit=5)
    assert audit and audit[0]["action"] == "handoff-replace" and audit[0]["detail"]["archive"] == ref


def test_a_branch_behind_the_sources_tip_is_fast_forwarded(
    settings: Settings, src_repo: Path, source_run: RunResult, store: Store, workdirs: Workdirs
) -> None:
    target = key_of("claude", src_repo)
    source, session = handoff_source(store, target, "fake")
    cache = workdirs.cache_path(target.repo)
    git(cache, "branch", "baton/claude/t1", "main")  # e.g. a hand-off refused after seeding, asked again
    seed_worktree(store, workdirs, source, session, target, branch_for(target))
    head = git(Path(session.worktree), "rev-parse", "HEAD")
    assert git(cache, "rev-parse", "refs/heads/baton/claude/t1") == head
    # and asked again at the same tip: the same refs
    before = all_refs(cache)
    seed_worktree(store, workdirs, source, session, target, branch_for(target))
    assert all_refs(cache).keys() == before.keys()
    assert git(cache, "rev-parse", "refs/heads/baton/claude/t1") == head


def test_without_the_sources_worktree_its_branch_and_checkpoint_in_the_cache_are_used(
    settings: Settings, src_repo: Path, source_run: RunResult, store: Store, workdirs: Workdirs
) -> None:
    target = key_of("claude", src_repo)
    source, session = handoff_source(store, target, "fake")
    head = git(Path(session.worktree), "rev-parse", "HEAD")
    workdirs.checkpoint(source, Path(session.worktree))  # what the end of its last run would do
    workdirs.remove_worktree_dir(source)
    note = seed_worktree(store, workdirs, source, session, target, branch_for(target))
    assert note is not None and note.startswith("handed off from fake's branch 'baton/fake/t1'")
    assert f"at {head[:12]} with 2 uncommitted files" in note
    path_t = workdirs.prepare_worktree(target, branch_for(target), None).path
    assert status(path_t) == {"M README.md", "?? notes.md"} and (path_t / "lexer.py").is_file()


def test_nothing_of_the_source_anywhere_starts_from_the_base_with_a_note(
    settings: Settings, src_repo: Path, source_run: RunResult, store: Store, workdirs: Workdirs
) -> None:
    target = key_of("claude", src_repo)
    source, session = handoff_source(store, target, "fake")
    workdirs.remove_worktree(source, session.branch)
    store.delete_checkpoint("fake", source.repo.slug, "t1")
    note = seed_worktree(store, workdirs, source, session, target, branch_for(target))
    assert note and "no work of" in note and "started from the base" in note
    cache = workdirs.cache_path(target.repo)
    assert workdirs.read_ref(cache, "refs/heads/baton/claude/t1") is None
    path_t = workdirs.prepare_worktree(target, branch_for(target), None).path
    assert git(path_t, "rev-parse", "HEAD") == git(src_repo, "rev-parse", "main")


def test_the_store_checkpoint_of_another_machine_is_used(tmp_path: Path, src_repo: Path) -> None:
    """The source ran on worker A (its work shared through the store); the hand-off runs on worker B,
    which has neither its worktree nor its cache clone."""
    url = f"sqlite:///{tmp_path / 'shared' / 'baton.db'}"
    a, b = (
        load_settings(overrides={"home": str(tmp_path / name), "store_url": url, **FAST}, environ={})
        for name in ("worker-a", "worker-b")
    )
    first = go(a, src_repo, "turn 1")
    head = agent_work(Path(first.session.worktree))
    go(a, src_repo, "turn 2")  # its end shares the work
    store = open_store(url)
    try:
        target = key_of("claude", src_repo)
        source, session = handoff_source(store, target, "fake")
        workdirs_b = Workdirs(b)
        note = seed_worktree(store, workdirs_b, source, session, target, branch_for(target))
        where = "fake's checkpoint in the store (another machine's)"
        assert note == f"handed off from {where} at {head[:12]} with 2 uncommitted files"
        path_t = workdirs_b.prepare_worktree(target, branch_for(target), None).path
        assert path_t.is_relative_to(b.home)
        assert git(path_t, "rev-parse", "HEAD") == head and status(path_t) == {"M README.md", "?? notes.md"}
        assert sorted(changed_files(workdirs_b, source, session, store=store)) == [
            "A lexer.py",
            "A notes.md",
            "M README.md",
        ]
    finally:
        store.close()


def test_a_newer_state_of_another_machine_wins_over_this_ones(tmp_path: Path, src_repo: Path) -> None:
    """A ran the source, then B did (more work): a hand-off on A takes B's state, the conversation's."""
    url = f"sqlite:///{tmp_path / 'shared' / 'baton.db'}"
    a, b = (
        load_settings(overrides={"home": str(tmp_path / name), "store_url": url, **FAST}, environ={})
        for name in ("worker-a", "worker-b")
    )
    go(a, src_repo, "turn 1")
    on_b = go(b, src_repo, "turn 2")
    (Path(on_b.session.worktree) / "from_b.txt").write_text("b\n")
    go(b, src_repo, "turn 3")
    store = open_store(url)
    try:
        target = key_of("claude", src_repo)
        source, session = handoff_source(store, target, "fake")
        workdirs_a = Workdirs(a)
        note = seed_worktree(store, workdirs_a, source, session, target, branch_for(target))
        assert note and "store (another machine's)" in note
        path_t = workdirs_a.prepare_worktree(target, branch_for(target), None).path
        assert (path_t / "from_b.txt").read_text() == "b\n"
    finally:
        store.close()


def test_a_running_source_is_noted(
    settings: Settings, src_repo: Path, source_run: RunResult, store: Store, workdirs: Workdirs
) -> None:
    target = key_of("claude", src_repo)
    source, session = handoff_source(store, target, "fake")
    session.status = session.status.RUNNING
    note = seed_worktree(store, workdirs, source, session, target, branch_for(target))
    assert note and "fake was running" in note


# -- changed_files ------------------------------------------------------------------------------------


def test_changed_files_are_the_sources_state_against_its_base(
    settings: Settings, src_repo: Path, source_run: RunResult, store: Store, workdirs: Workdirs
) -> None:
    source, session = handoff_source(store, key_of("claude", src_repo), "fake")
    path_s = Path(session.worktree)
    (path_s / "src" / "app.py").unlink()
    (path_s / "odd\nname.txt").write_text("x\n")
    lines = changed_files(workdirs, source, session)
    assert sorted(lines) == ["A lexer.py", "A notes.md", "A odd\\nname.txt", "D src/app.py", "M README.md"]
    # the base moved on since the source branched: only the source's changes count (the merge-base)
    (src_repo / "upstream.txt").write_text("u\n")
    git(src_repo, "add", ".")
    git(src_repo, "commit", "-q", "-m", "upstream")
    workdirs.ensure_cache(source.repo, "fake")
    assert sorted(changed_files(workdirs, source, session)) == sorted(lines)
    assert changed_files(workdirs, source, session) == changed_files(workdirs, source, session)


def test_changed_files_stop_at_the_limit_with_a_count(
    settings: Settings, src_repo: Path, store: Store, workdirs: Workdirs
) -> None:
    first = go(settings, src_repo)
    path_s = Path(first.session.worktree)
    for n in range(250):
        (path_s / f"f{n:03}.txt").write_text(f"{n}\n")
    source, session = handoff_source(store, key_of("claude", src_repo), "fake")
    lines = changed_files(workdirs, source, session)
    assert len(lines) == 201 and lines[-1] == "... and 50 more" and lines[0] == "A f000.txt"
    assert changed_files(workdirs, source, session, limit=10)[-1] == "... and 240 more"
    git(path_s, "clean", "-fq")
    assert changed_files(workdirs, source, session) == []


# -- handoff_recap --------------------------------------------------------------------------------------


def test_a_short_history_is_recapped_verbatim_oldest_first() -> None:
    runs = [
        make_run(1, "write the lexer", "done: lexer.py"),
        make_run(2, "now the parser\nwith errors", None, error="rate limited"),
        make_run(3, "fix the tests", "all green"),
    ]
    text = handoff_recap(runs, ["A lexer.py", "M README.md"], "claude", 10_000)
    assert text.startswith("claude's conversation on this thread (3 turns), oldest first:")
    order = [
        text.index(s)
        for s in (
            "write the lexer",
            "done: lexer.py",
            "now the parser\nwith errors",
            "rate limited",
            "fix the tests",
            "all green",
            "A lexer.py",
            "M README.md",
        )
    ]
    assert order == sorted(order)
    assert "--- Turn 2 (failed) ---" in text and "Error:\nrate limited" in text
    assert "shortened" not in text and "earlier turns" not in text


def test_no_runs_and_no_files() -> None:
    assert handoff_recap([], [], "codex", 1000) == "codex recorded no turns on this thread."
    assert handoff_recap([], [], "codex", 0) == ""


def test_one_run_of_a_megabyte_fits_with_its_ends_kept() -> None:
    prompt = "START-PROMPT " + "p" * 1_000_000 + " END-PROMPT"
    answer = "START-ANSWER " + "ä" * 1_000_000 + " END-ANSWER"
    for budget in (60_000, 5_000, 500, 50, 1):
        text = handoff_recap([make_run(1, prompt, answer)], ["M a.py"], "claude", budget)
        assert len(text) <= budget
        if budget >= 5_000:
            assert "START-ANSWER" in text and "END-ANSWER" in text and "characters cut" in text
            assert "START-PROMPT" in text and "END-PROMPT" in text and "M a.py" in text
    # a short answer leaves its room to the instruction: the budget is used, not wasted
    text = handoff_recap([make_run(1, prompt, "ok")], [], "claude", 60_000)
    assert 59_000 < len(text) <= 60_000 and text.endswith("Answer:\nok")


def test_five_thousand_runs_keep_the_newest_verbatim_and_summarise_the_rest() -> None:
    runs = [make_run(n, f"instruction {n} " + "x" * 300, f"answer {n} " + "y" * 300) for n in range(1, 5001)]
    started = time.monotonic()
    text = handoff_recap(runs, [f"M file{n}.py" for n in range(5000)], "gemini", DEFAULT_BUDGET)
    elapsed = time.monotonic() - started
    # linear, not quadratic, in the runs: well under a second here, 5 s is a busy machine's margin
    assert len(text) <= DEFAULT_BUDGET and elapsed < 5, elapsed
    assert "(5,000 turns)" in text
    assert "--- Turn 5000 (succeeded) ---\nInstruction:\ninstruction 5000 " + "x" * 300 in text
    assert "answer 5000 " + "y" * 300 in text
    groups = [line for line in text.splitlines() if " earlier turns (" in line]
    assert len(groups) == 10 and groups[0].startswith(f"{groups[0].split()[0]} earlier turns (1-")
    assert "): asked instruction 1 " in groups[0]
    assert groups[-1].startswith(f"{groups[-1].split()[0]} earlier turns (4,")  # the whole history shows
    one_liners = [line for line in text.splitlines() if line.startswith("Turn ")]
    assert one_liners and all(len(line) <= 240 for line in one_liners)
    # the sections in order: the oldest group, the one-liners, the verbatim turns, the files
    assert (
        text.index("earlier turns") < text.index(one_liners[0]) < text.index("--- Turn") < text.index("Files")
    )
    shown = [line for line in text.splitlines() if line.startswith("M file")]
    more = next(line for line in text.splitlines() if line.startswith("... and "))
    assert len(shown) + int(more.split()[2]) == 5000


@pytest.mark.parametrize("budget", [0, 1, 7, 64, 300, 1_000, 4_096, 20_000, 60_000])
@pytest.mark.parametrize("count", [1, 2, 30, 700])
def test_the_recap_never_exceeds_its_budget(budget: int, count: int) -> None:
    text_in = "ünïcödé 🎉 e\u0301 \U0001f600 tab\t" * 40
    runs = [make_run(n, f"#{n} {text_in}", f"re #{n} {text_in}" * (n % 5)) for n in range(count)]
    changed = [f"M dir/{text_in[:30]}{n}" for n in range(count)]
    text = handoff_recap(runs, changed, "claude", budget)
    assert len(text) <= budget
    text.encode("utf-8")  # valid text for any CLI


def test_nul_bytes_and_lone_surrogates_from_an_agent_are_made_valid() -> None:
    run_ = make_run(1, "fine", "bad \x00 byte and a lone \ud800 surrogate")
    text = handoff_recap([run_], [], "claude", 1_000)
    assert "\x00" not in text and text.encode("utf-8") and "bad  byte" in text


def test_the_sources_worktree_paths_become_paths_in_the_repository(tmp_path: Path) -> None:
    """The source's absolute worktree path (its home's, as its run's log names it; with and without a
    trailing slash; its real path where ``worktrees`` is a symlink; another home's, another machine's)
    is never quoted: the target works in its own worktree."""
    home, store = tmp_path / "home", tmp_path / "disk"
    home.mkdir()
    (store / "claude" / "local" / "x" / "t1").mkdir(parents=True)
    (home / "worktrees").symlink_to(store, target_is_directory=True)
    wt = f"{home}/worktrees/claude/local/x/t1"
    real = f"{store.resolve()}/claude/local/x/t1"
    other = "/srv/other-machine/baton/worktrees/claude/local/x/t1"
    runs = [
        make_run(1, f"write {wt}/src/lexer.py, then run `pytest {wt}/tests`", f"done: {real}/src/lexer.py"),
        make_run(2, f"cd {wt} && make; ls {wt}/", None, error=f"{other}/build/out.log:3: failed"),
        make_run(3, f"leave {wt}2/keep.py and /elsewhere{wt} alone", f'"{wt}/a b.py" (cwd={wt}/)'),
    ]
    runs = [dataclasses.replace(r, log_path=f"{home}/logs/r{n}.jsonl") for n, r in enumerate(runs, 1)]
    text = handoff_recap(runs, ["A src/lexer.py"], "claude", 10_000)
    for quoted in (
        "write src/lexer.py, then run `pytest tests`",
        "done: src/lexer.py",
        "cd ./ && make; ls ./",
        "Error:\nbuild/out.log:3: failed",
        f"leave {wt}2/keep.py",  # another thread's worktree (t12): not this key's
        '"a b.py" (cwd=./)',
    ):
        assert quoted in text, quoted
    assert real not in text and other not in text
    assert text.count(wt) == 1 and f"{wt}/" not in text  # only t12's path is left


def test_the_file_list_is_cut_with_how_many_more() -> None:
    changed = [f"A src/module_{n:05}.py" for n in range(10_000)]
    text = handoff_recap([make_run(1, "go", "ok")], changed, "claude", 2_000)
    shown = [line for line in text.splitlines() if line.startswith("A src/")]
    more = text.splitlines()[-1]
    assert more.startswith("... and ") and len(shown) + int(more.split()[2]) == 10_000 and len(text) <= 2_000
    # changed_files' own "... and N more" line is counted in
    text = handoff_recap([make_run(1, "go", "ok")], [*changed[:200], "... and 9800 more"], "claude", 2_000)
    more = text.splitlines()[-1]
    shown = [line for line in text.splitlines() if line.startswith("A src/")]
    assert len(shown) + int(more.split()[2]) == 10_000


# -- recap_budget and the template ---------------------------------------------------------------------------


class Limited:
    """An agent with prompt limits, as recap_budget sees it."""

    def __init__(self, chars: int | None = None, size: int | None = None) -> None:
        self.capabilities = Capabilities(
            preassigned_id=True,
            resume_by_id=True,
            continue_latest=True,
            fork=False,
            reports_cost=False,
            not_found="",
            max_prompt_chars=chars,
            max_prompt_bytes=size,
        )


def test_the_budget_is_the_default_within_each_clis_limits(settings: Settings) -> None:
    assert recap_budget(get_agent("claude", settings)) == recap_budget(get_agent("codex", settings))
    assert recap_budget(get_agent("claude", settings)) == DEFAULT_BUDGET
    gemini = get_agent("gemini", settings)
    limit = gemini.capabilities.max_prompt_bytes
    assert limit == 256_000 and recap_budget(gemini) == 32_000  # 4 bytes a character, half the limit
    for instruction in ("é" * 50_000, "é" * 100_000, "x" * 247_000):
        budget = recap_budget(gemini, others=instruction)
        assert 4 * budget + len(instruction.encode()) + 4 * 2_000 <= limit, len(instruction)
    assert recap_budget(gemini, others="é" * 100_000) == 12_000
    assert recap_budget(gemini, others="x" * 250_000) == 0
    assert recap_budget(Limited(chars=10_000)) == 8_000  # type: ignore[arg-type]
    assert recap_budget(Limited(chars=10_000), others="x" * 9_000) == 0  # type: ignore[arg-type]
    assert recap_budget(Limited(size=40_000)) == 5_000  # type: ignore[arg-type]


def test_the_template_carries_source_recap_context_and_instruction(tmp_path: Path) -> None:
    values = {
        "prompt": "THE-INSTRUCTION",
        "repo": "local/x",
        "thread": "t1",
        "branch": "baton/codex/t1",
        "worktree": "/w",
        "context": "THE-CONTEXT\n",
        "recap": "THE-RECAP with $dollar and ${braces}",
        "reason": "",
        "previous": "",
        "source": "claude",
    }
    rendered = render(PromptKind.HANDOFF, tmp_path, **values)
    for value in ("THE-INSTRUCTION", "THE-CONTEXT", "THE-RECAP with $dollar and ${braces}", "claude"):
        assert value in rendered
    assert "baton/codex/t1" in rendered and "taking it over from another coding agent, claude" in rendered
    assert rendered.index("THE-RECAP") < rendered.index("THE-CONTEXT") < rendered.index("THE-INSTRUCTION")


# -- end to end: the real CLIs against their mocks ----------------------------------------------------------

# to and from Claude; the hand-off's recap and the target's fresh turn are baton's: one target per family
TARGET_MOCKS = {agent: MOCKS[agent] for agent in FAMILIES if agent != "claude"}


@pytest.fixture(params=sorted(TARGET_MOCKS))
def target(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def two_models(
    target: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[MockModel, MockModel]]:
    """The mock Anthropic API and the target agent's mock, both serving."""
    module, name = TARGET_MOCKS[target]
    with MockAnthropic() as claude, getattr(importlib.import_module(module), name)() as other:
        for model, agent in ((claude, "claude"), (other, target)):
            for key, value in model.env().items():
                monkeypatch.setenv(key, value)
            model.configure_home(settings.home / "homes" / agent)
        yield claude, other


def turn(settings: Settings, agent: str, repo: Path, prompt: str, **kw: str) -> RunResult:
    result = run(
        RunRequest(agent=agent, repo=str(repo), thread="issue-1", prompt=prompt, **kw),  # type: ignore[arg-type]
        settings=settings,
    )
    assert result.ok, (result.run.error, result.run.note)
    return result


@pytest.mark.slow
def test_claude_hands_off_to_another_cli_and_both_conversations_go_on(
    settings: Settings, src_repo: Path, target: str, two_models: tuple[MockModel, MockModel]
) -> None:
    claude_model, model = two_models
    first = turn(settings, "claude", src_repo, "CLAUDE-ONE write the lexer")
    path_c = Path(first.session.worktree)
    head = agent_work(path_c)
    second = turn(settings, "claude", src_repo, "CLAUDE-TWO handle errors")
    (path_c / "late.txt").write_text("written after claude's last turn\n")  # the live state counts
    before = (status(path_c), git(path_c, "rev-parse", "HEAD"))
    assert claude_model.history_counts() == [2, 4]

    handed = turn(settings, target, src_repo, "TARGET-ONE review what claude did", handoff_from="claude")
    assert handed.run.mode == Mode.FRESH and handed.run.prompt_kind == PromptKind.HANDOFF
    assert model.history_counts() == [FIRST[target]], "a new conversation"
    sent = model.texts()[-1]
    for text in (
        "CLAUDE-ONE write the lexer",
        "CLAUDE-TWO handle errors",
        "received 2 messages",
        "received 4 messages",
        "A lexer.py",
        "A notes.md",
        "A late.txt",
        "M README.md",
        "TARGET-ONE review what claude did",
        "from another coding agent, claude",
    ):
        assert text in sent, text
    assert sent.index("CLAUDE-ONE") < sent.index("CLAUDE-TWO") < sent.index("TARGET-ONE")
    path_t = Path(handed.session.worktree)
    assert path_t != path_c and git(path_t, "rev-parse", "HEAD") == head
    assert git(path_t, "rev-parse", "--abbrev-ref", "HEAD") == f"baton/{target}/issue-1"
    assert status(path_t) == {"M README.md", "?? notes.md", "?? late.txt"}
    assert (path_t / "late.txt").read_text() == "written after claude's last turn\n"
    origin = dict(handed.session.origin or {})
    assert isinstance(origin.pop("at", None), float)  # when it was handed off
    assert origin == {
        "kind": "handoff",
        "agent": "claude",
        "thread": "issue-1",
        "session_id": second.session.agent_session_id,
    }
    assert handed.run.note and "handed off from claude's worktree" in handed.run.note

    again = turn(settings, target, src_repo, "TARGET-TWO go on")
    assert again.run.mode == Mode.RESUME and again.session.agent_session_id == handed.session.agent_session_id
    assert model.history_counts() == [FIRST[target], FIRST[target] + 2]
    assert "CLAUDE-ONE" in model.texts()[-1], "the resumed target conversation still holds the recap"

    back = turn(settings, "claude", src_repo, "CLAUDE-THREE carry on")
    assert back.run.mode == Mode.RESUME and back.session.agent_session_id == first.session.agent_session_id
    assert claude_model.history_counts() == [2, 4, 6], "claude's conversation goes on from where it was"
    assert not any("TARGET-" in text for text in claude_model.texts())
    assert (status(path_c), git(path_c, "rev-parse", "HEAD")) == before


def limited_claude(size: int) -> Callable[[str, Settings], Agent]:
    """The Claude adapter as if its CLI took at most ``size`` bytes of prompt."""
    from baton.agents import claude

    real = claude.from_settings

    def factory(name: str, settings: Settings) -> Agent:
        agent = real(name, settings)
        agent.capabilities = dataclasses.replace(agent.capabilities, max_prompt_bytes=size)
        return agent

    return factory


@pytest.mark.slow
def test_the_recap_leaves_room_for_a_long_instruction(
    settings: Settings, src_repo: Path, mock: MockAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A target whose CLI takes 50,000 bytes, an instruction of 36,000: the recap of a 400 KB turn is
    cut to what the instruction leaves, and the hand-off runs (instead of failing at launch)."""
    from baton.agents import claude

    go(settings, src_repo, "HUGE-START " + "🎉" * 100_000 + " HUGE-END")
    monkeypatch.setattr(claude, "from_settings", limited_claude(50_000))
    instruction = "TARGET-ONE " + "x" * 36_000
    handed = run(
        RunRequest(agent="claude", repo=str(src_repo), thread="t1", prompt=instruction, handoff_from="fake"),
        settings=settings,
    )
    assert handed.ok and handed.run.prompt_kind == PromptKind.HANDOFF, handed.run.error
    sent = mock.texts()[-1]
    assert "HUGE-START" in sent and "HUGE-END" in sent and "characters cut" in sent and instruction in sent


# -- refusals through the runner and the CLI: exit 2, nothing written ---------------------------------------


@pytest.mark.slow  # many `baton` processes: over 3 s of CPU
def test_refused_hand_offs_write_nothing(
    cli: Callable[..., subprocess.CompletedProcess[str]], settings: Settings, src_repo: Path, store: Store
) -> None:
    base = ["run", "-a", "fake", "-r", str(src_repo), "-t", "t1"]
    cases = [
        (["--handoff-from", "claude"], "has no session to hand off"),
        (["--handoff-from", "gpt"], "unknown agent 'gpt'"),
        (["--handoff-from", "fake"], "another agent"),
        (["--handoff-from", "claude", "--mode", "resume"], "starts a new conversation"),
    ]
    for args, message in cases:
        result = cli(*base, *args, "take over")
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert store.list_sessions() == [] and store.list_runs() == []
    assert not (settings.home / "worktrees").exists()
    go(settings, src_repo)  # now fake has a conversation: a hand-off to it is refused
    result = cli(*base, "--handoff-from", "claude", "take over")
    assert result.returncode == 2 and "already has a conversation" in result.stderr, result.stderr
    assert len(store.list_runs()) == 1


def test_the_target_is_sent_paths_in_the_repository_not_into_the_sources_worktree(
    settings: Settings, src_repo: Path, source_run: RunResult, store: Store, mock: MockAnthropic
) -> None:
    source_wt = Path(source_run.session.worktree)
    prompt = f"now fix {source_wt}/lexer.py and list {source_wt}/"
    second = go(settings, src_repo, prompt)
    store.update_run(second.run.id, result=f"fixed {source_wt}/lexer.py; see {source_wt.resolve()}/notes.md")
    handed = run(
        RunRequest(agent="claude", repo=str(src_repo), thread="t1", prompt="go on", handoff_from="fake"),
        settings=settings,
    )
    assert handed.ok and handed.run.prompt_kind == PromptKind.HANDOFF, handed.run.error
    sent = mock.texts()[-1]
    assert "now fix lexer.py and list ./" in sent and "fixed lexer.py; see notes.md" in sent
    assert str(source_wt) not in sent and str(source_wt.resolve()) not in sent
    assert handed.session.worktree in sent  # the target is told its own worktree, once, by the template
    assert store.get_run(second.run.id).prompt == prompt  # type: ignore[union-attr]  # the record is as it was


def test_a_hand_off_onto_the_sources_branch_is_refused_before_the_worktree(
    settings: Settings, src_repo: Path, source_run: RunResult, store: Store, mock: MockAnthropic
) -> None:
    with pytest.raises(BadInput, match="one worktree only"):
        run(
            RunRequest(
                agent="claude",
                repo=str(src_repo),
                thread="t1",
                prompt="take over",
                handoff_from="fake",
                branch=source_run.session.branch,
            ),
            settings=settings,
        )
    assert store.get_session("claude", source_run.run.repo, "t1") is None
    assert not (settings.home / "worktrees" / "claude").exists() and mock.history_counts() == []


@pytest.mark.slow
@pytest.mark.parametrize("target", ["gemini"])
def test_a_hand_off_refused_at_launch_can_be_asked_again(
    settings: Settings, src_repo: Path, target: str, two_models: tuple[MockModel, MockModel]
) -> None:
    """An instruction too long for Gemini once the hand-off's template is around it is refused at
    launch; the worktree seeded for it does not block the next hand-off."""
    _claude_model, model = two_models
    turn(settings, "claude", src_repo, "CLAUDE-ONE " + "🎉" * 60_000)
    with pytest.raises(BadInput, match="gemini takes at most"):
        # it passes the runner's checks (256,000 bytes at most) but not with the template around it
        turn(settings, target, src_repo, "TOO-LONG " + "é" * 127_900, handoff_from="claude")
    handed = turn(settings, target, src_repo, "TARGET-ONE", handoff_from="claude")
    assert handed.run.prompt_kind == PromptKind.HANDOFF and "CLAUDE-ONE" in model.texts()[-1]
    assert model.history_counts() == [FIRST[target]]
