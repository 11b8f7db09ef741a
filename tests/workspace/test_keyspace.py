"""Key spaces: every key has its own agent home (and temp dir), seeded from the operator's base home;
conversations from before key spaces move in; forks copy their source in (or hydrate it); reset,
close and doctor look there. The fake agent for the matrix, the real CLIs against their mocks for
what each CLI keeps per home (Codex's indexes, Gemini's projects.json)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
import uuid
from pathlib import Path

import pytest

from baton import Mode, Outcome, RunRequest, RunResult, Scope, open_store, reset_session, run
from baton.agents import AGENTS, get_agent
from baton.errors import BadInput
from baton.housekeeping.doctor import check_orphans
from baton.keys import Key, Repo, key_of, make_key
from baton.models import SessionRecord
from baton.runner.resolve import check_request
from baton.settings import Settings
from baton.testing import MockModel
from baton.workspace import keyspace
from baton.workspace.keyspace import (
    agent_for,
    key_dir,
    key_home,
    key_spaces,
    key_tmp,
    seed_home,
    session_agent,
)
from tests.conftest import FAMILIES, FIRST, MOCKS
from tests.runner.test_runner import go

# -- layout -------------------------------------------------------------------------------------------


def _key(slug: str, thread: str, agent: str = "claude") -> Key:
    return Key(agent, Repo(f"https://{slug}", slug, False), thread)


def test_no_key_space_is_inside_another(settings: Settings) -> None:
    """Slugs have any number of segments: without the mark, (acme, api)'s home would hold all of
    (acme/api, home)'s space, and a Landlock grant of one would grant the other."""
    outer, inner = _key("github.com/acme", "api"), _key("github.com/acme/api", "home")
    for a, b in ((outer, inner), (inner, outer)):
        for path in (key_home(settings, a), key_tmp(settings, a), key_dir(settings, a)):
            assert key_dir(settings, b) not in path.parents and path not in key_dir(settings, b).parents
    assert key_home(settings, outer) == settings.home / "keys/claude/github.com/acme/@api/home"
    assert key_tmp(settings, outer) == settings.home / "keys/claude/github.com/acme/@api/tmp"


def test_key_spaces_are_found_by_their_mark(settings: Settings) -> None:
    keys = [
        _key("github.com/acme", "api"),
        _key("github.com/acme/api", "home"),
        _key("local/x-1", "t", "fake"),
    ]
    for key in keys:
        key_home(settings, key).mkdir(parents=True)
    found = {(s.agent, s.repo, s.thread, s.path) for s in key_spaces(settings)}
    assert found == {(k.agent, k.repo.slug, k.thread, key_dir(settings, k)) for k in keys}
    assert [s.thread for s in key_spaces(settings, "fake")] == ["t"]


def test_check_request_gives_the_keys_adapter_and_writes_nothing(settings: Settings, src_repo: Path) -> None:
    resolved = check_request(RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="p"), settings)
    home = key_home(settings, resolved.key)
    assert resolved.agent.home == home != get_agent("fake", settings).home
    assert resolved.agent.launch(Mode.FRESH, "p", None).env["CLAUDE_CONFIG_DIR"] == str(home)
    assert not settings.home.exists()


# -- two keys, two homes ------------------------------------------------------------------------------


def test_two_keys_of_one_agent_get_two_homes(settings: Settings, src_repo: Path) -> None:
    a, b = go(settings, src_repo, "alpha", thread="t1"), go(settings, src_repo, "bravo", thread="t2")
    agent_a, agent_b = session_agent(a.session, settings), session_agent(b.session, settings)
    assert agent_a.home != agent_b.home
    sid_a, sid_b = str(a.session.agent_session_id), str(b.session.agent_session_id)
    assert agent_a.transcript_files(sid_a) and agent_b.transcript_files(sid_b)
    assert agent_b.transcript_files(sid_a) == [] and agent_a.transcript_files(sid_b) == []
    assert not any("alpha" in p.read_text() for p in agent_b.home.rglob("*") if p.is_file())
    base = get_agent("fake", settings)
    assert base.transcript_files(sid_a) == [], "the shared base home holds no conversation"
    assert key_tmp(settings, key_of(a.session)).is_dir()


def test_the_temp_dir_is_emptied_before_every_run(settings: Settings, src_repo: Path) -> None:
    first = go(settings, src_repo)
    tmp = key_tmp(settings, key_of(first.session))
    (tmp / "left-over").mkdir()
    (tmp / "left-over" / "sub").mkdir()
    (tmp / "left-over" / "sub").chmod(stat.S_IRUSR | stat.S_IXUSR)  # read-only, as Go's module cache
    (tmp / "file").write_text("x")
    assert go(settings, src_repo).ok
    assert tmp.is_dir() and list(tmp.iterdir()) == []


# -- the base home's configuration -----------------------------------------------------------------------


def test_base_config_edits_reach_the_keys_home(settings: Settings, src_repo: Path) -> None:
    base = settings.home / "homes" / "fake"
    base.mkdir(parents=True)
    (base / "settings.json").write_text('{"theme": "dark"}')
    (base / ".credentials.json").write_text('{"token": "t1"}')
    (base / ".credentials.json").chmod(0o600)
    first = go(settings, src_repo)
    home = session_agent(first.session, settings).home
    assert json.loads((home / "settings.json").read_text()) == {"theme": "dark", "cleanupPeriodDays": 30}
    assert (home / ".credentials.json").read_text() == '{"token": "t1"}'
    assert stat.S_IMODE((home / ".credentials.json").stat().st_mode) == 0o600
    # the operator edits the base: the next run of the key gets it (with baton's retention merged again)
    time.sleep(0.01)
    (base / "settings.json").write_text('{"theme": "light", "cleanupPeriodDays": 90}')
    (base / ".credentials.json").write_text('{"token": "t2"}')
    assert go(settings, src_repo).ok
    assert json.loads((home / "settings.json").read_text()) == {"theme": "light", "cleanupPeriodDays": 90}
    assert (home / ".credentials.json").read_text() == '{"token": "t2"}'


def test_seed_home_copies_only_what_is_missing_or_older(tmp_path: Path) -> None:
    base, home = tmp_path / "base", tmp_path / "home"
    (base / ".gemini").mkdir(parents=True)
    (base / ".gemini" / "settings.json").write_text("base")
    (base / "dir.json").mkdir()  # not a file: never copied
    files = (".gemini/settings.json", "missing.json", "dir.json")
    assert seed_home(base, home, files) == [".gemini/settings.json"]
    assert seed_home(base, home, files) == [], "unchanged: not copied again"
    (home / ".gemini" / "settings.json").write_text("the key's own, newer")
    assert seed_home(base, home, files) == []
    later = time.time() + 10
    os.utime(base / ".gemini" / "settings.json", (later, later))
    assert seed_home(base, home, files) == [".gemini/settings.json"]
    assert (home / ".gemini" / "settings.json").read_text() == "base"
    assert not list(home.rglob("*.baton-tmp"))


# -- moving a conversation in from the base home -----------------------------------------------------------


def _make_legacy(settings: Settings, result: RunResult) -> None:
    """The key's conversation as a run before key spaces left it: in the shared base home."""
    base = get_agent(result.session.agent, settings).home
    shutil.rmtree(base, ignore_errors=True)
    home = key_home(settings, key_of(result.session))
    home.rename(base)
    shutil.rmtree(key_dir(settings, key_of(result.session)))


def _drop_snapshot(settings: Settings, session: SessionRecord) -> None:
    store = open_store(settings.resolved_store_url)
    store.delete_snapshot(session.agent, session.repo, session.thread)
    store.close()


def test_a_conversation_in_the_base_home_moves_in_and_resumes(settings: Settings, src_repo: Path) -> None:
    first = go(settings, src_repo, "one")
    go(settings, src_repo, "two")
    sid = str(first.session.agent_session_id)
    _make_legacy(settings, first)
    _drop_snapshot(settings, first.session)  # only the base home has it: the move alone must bring it
    base = get_agent("fake", settings)
    assert base.transcript_files(sid)
    after = go(settings, src_repo, "three")
    assert (after.run.mode, after.session.agent_session_id) == (Mode.RESUME, sid)
    assert after.run.result == "fake reply: received 6 messages"
    assert "moved the conversation from the shared home" in str(after.run.note)
    assert base.transcript_files(sid) == [] and session_agent(after.session, settings).transcript_files(sid)
    assert go(settings, src_repo, "four").run.note is None


def test_a_failed_move_falls_back_to_the_snapshot_then_to_a_recap(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = go(settings, src_repo, "write the lexer")
    sid = str(first.session.agent_session_id)
    _make_legacy(settings, first)

    def broken(source_home: Path, home: Path, files: list[Path]) -> list[Path]:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keyspace, "copy_into", broken)
    hydrated = go(settings, src_repo, "write the parser")
    assert (hydrated.run.mode, hydrated.session.agent_session_id) == (Mode.RESUME, sid)
    assert hydrated.run.result == "fake reply: received 4 messages"
    assert "could not move" in str(hydrated.run.note) and "hydrated" in str(hydrated.run.note)
    assert get_agent("fake", settings).transcript_files(sid), "the base's files are left where they were"

    shutil.rmtree(key_dir(settings, key_of(first.session)))
    _drop_snapshot(settings, first.session)
    recovered = go(settings, src_repo, "write the docs")
    assert (recovered.run.mode, recovered.run.outcome) == (Mode.RECOVER, Outcome.SUCCEEDED)
    assert "could not move" in str(recovered.run.note)


# -- forks ------------------------------------------------------------------------------------------------


def _digests(home: Path) -> dict[str, str]:
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest() for p in home.rglob("*.jsonl")
    }


def test_a_fork_copies_its_source_from_the_source_keys_home(settings: Settings, src_repo: Path) -> None:
    dev = go(settings, src_repo, "implement", thread="dev")
    go(settings, src_repo, "refine", thread="dev")
    source_home = session_agent(dev.session, settings).home
    before = _digests(source_home)
    review = go(settings, src_repo, "review it", thread="review", mode=Mode.FORK, fork_from="dev")
    assert review.run.mode == Mode.FORK and review.run.result == "fake reply: received 6 messages"
    assert "copied the conversation of" in str(review.run.note) and "hydrated" not in str(review.run.note)
    assert _digests(source_home) == before, "the source key's home is only read"
    agent = session_agent(review.session, settings)
    assert agent.transcript_files(str(review.session.agent_session_id))
    assert session_agent(dev.session, settings).transcript_files(str(review.session.agent_session_id)) == []


def test_a_fork_of_a_source_whose_home_is_gone_hydrates_its_snapshot(
    settings: Settings, src_repo: Path
) -> None:
    dev = go(settings, src_repo, "implement", thread="dev")
    go(settings, src_repo, "refine", thread="dev")
    shutil.rmtree(key_dir(settings, key_of(dev.session)))
    review = go(settings, src_repo, "review it", thread="review", mode=Mode.FORK, fork_from="dev")
    assert review.run.mode == Mode.FORK and review.run.result == "fake reply: received 6 messages"
    assert "hydrated" in str(review.run.note)
    assert not key_dir(settings, key_of(dev.session)).exists(), "nothing is written into the source's space"
    assert go(settings, src_repo, "more", thread="dev").run.result == "fake reply: received 6 messages"


def test_a_fork_of_a_source_still_in_the_base_home(settings: Settings, src_repo: Path) -> None:
    dev = go(settings, src_repo, "implement", thread="dev")
    _make_legacy(settings, dev)
    _drop_snapshot(settings, dev.session)
    review = go(settings, src_repo, "review it", thread="review", mode=Mode.FORK, fork_from="dev")
    assert review.run.result == "fake reply: received 4 messages"
    sid = str(dev.session.agent_session_id)
    assert get_agent("fake", settings).transcript_files(sid), "copied, not moved: the source key moves it"
    assert go(settings, src_repo, "more", thread="dev").run.result == "fake reply: received 4 messages"


# -- housekeeping ---------------------------------------------------------------------------------------


def test_reset_of_the_conversation_removes_the_key_space(settings: Settings, src_repo: Path) -> None:
    a, b = go(settings, src_repo, thread="t1"), go(settings, src_repo, thread="t2")
    store = open_store(settings.resolved_store_url)
    try:
        result = reset_session(store, settings, key_of(a.session), Scope.CONVERSATION)
    finally:
        store.close()
    assert result.transcript_files == 1 and not key_dir(settings, key_of(a.session)).exists()
    assert key_dir(settings, key_of(b.session)).is_dir(), "another key's space is untouched"
    again = go(settings, src_repo, thread="t1")
    assert again.run.mode == Mode.FRESH and again.run.result == "fake reply: received 2 messages"


def test_doctor_finds_transcripts_no_session_owns_in_key_homes(settings: Settings) -> None:
    settings.home.mkdir(parents=True)
    own, source, old = (str(uuid.uuid4()) for _ in range(3))
    known = _key("github.com/acme/api", "known")
    store = open_store(settings.resolved_store_url)
    origin = {"kind": "fork", "agent": "claude", "thread": "dev", "session_id": source}
    store.save_session(
        SessionRecord("claude", known.repo.slug, "known", known.repo.url, "b", "/w", own, origin=origin)
    )
    store.close()

    def transcript(key: Key, sid: str) -> None:
        path = key_home(settings, key) / "projects" / "-w" / f"{sid}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"type":"user"}\n')

    transcript(known, own)
    transcript(known, source)  # the copy its fork was made from: the key's too
    assert check_orphans(settings).status == "ok"
    transcript(known, old)  # a conversation the key no longer has (the store was replaced)
    transcript(_key("github.com/acme/api", "stray"), str(uuid.uuid4()))  # a key the store does not know
    check = check_orphans(settings)
    assert check.status == "warn" and check.detail.startswith("2 transcripts on disk belong to no session")


# -- the real CLIs ----------------------------------------------------------------------------------------


@pytest.fixture(params=sorted(MOCKS))
def agent(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def real(
    settings: Settings, agent: str, repo: Path, prompt: str, thread: str = "issue-1", **kw: object
) -> RunResult:
    request = RunRequest(agent=agent, repo=str(repo), thread=thread, prompt=prompt, **kw)  # type: ignore[arg-type]
    result = run(request, settings=settings)
    assert result.ok, [(a.mode, a.error, a.note) for a in result.attempts]
    return result


@pytest.mark.slow
def test_real_cli_conversation_in_the_base_home_moves_in_with_its_history(
    agent: str, settings: Settings, src_repo: Path, model: MockModel
) -> None:
    """A whole legacy shared home (transcripts, Codex's SQLite indexes, Gemini's projects.json): the
    key's next run moves its conversation in and resumes it with the full history — no snapshot."""
    # the gateway's key homes lose the operator's credential (OpenCode's apiKey): a key home made the
    # base home, as this test makes it, would have none; a base home from before key spaces has its own
    settings = settings.with_(model_gateway="off")
    first = real(settings, agent, src_repo, "step zero")
    sid = str(first.session.agent_session_id)
    _make_legacy(settings, first)
    _drop_snapshot(settings, first.session)
    base = get_agent(agent, settings)
    assert base.transcript_files(sid)
    after = real(settings, agent, src_repo, "step one")
    assert (after.run.mode, after.session.agent_session_id) == (Mode.RESUME, sid)
    assert model.history_counts() == [FIRST[agent] + 2 * i for i in range(2)]
    assert "step zero" in model.texts()[-1]
    assert "moved the conversation" in str(after.run.note)
    assert base.transcript_files(sid) == [] and session_agent(after.session, settings).transcript_files(sid)
    again = real(settings, agent, src_repo, "step two")
    assert again.run.mode == Mode.RESUME and model.history_counts()[-1] == FIRST[agent] + 4
    assert "step zero" in model.texts()[-1] and "step one" in model.texts()[-1]


@pytest.mark.slow
@pytest.mark.parametrize("agent", FAMILIES)  # the ACP agents have no fork: one refusal, Copilot's, says so
def test_real_cli_fork_of_a_thread_whose_home_is_gone(
    agent: str, settings: Settings, src_repo: Path, model: MockModel
) -> None:
    dev = real(settings, agent, src_repo, "dev step 0", thread="dev")
    real(settings, agent, src_repo, "dev step 1", thread="dev")
    shutil.rmtree(key_dir(settings, key_of(dev.session)))  # the source's home: hydrated from its snapshot
    if not get_agent(agent, settings).capabilities.fork:  # an agent without forks: refused up front
        with pytest.raises(BadInput, match="cannot run in mode 'fork'"):
            real(settings, agent, src_repo, "review it", thread="review", mode=Mode.FORK, fork_from="dev")
        assert not list((settings.home / "worktrees").rglob("review")), "nothing written"
        return
    review = real(settings, agent, src_repo, "review it", thread="review", mode=Mode.FORK, fork_from="dev")
    assert review.run.mode == Mode.FORK and review.session.agent_session_id != dev.session.agent_session_id
    assert "hydrated" in str(review.run.note)
    assert model.history_counts()[-1] >= FIRST[agent] + 4, "the fork carried dev's history"
    assert "dev step 0" in model.texts()[-1] and "dev step 1" in model.texts()[-1]
    forked = model.history_counts()[-1]
    again = real(settings, agent, src_repo, "and the tests?", thread="review")
    assert (again.run.mode, again.session.agent_session_id) == (Mode.RESUME, review.session.agent_session_id)
    assert model.history_counts()[-1] == forked + 2 and "review it" in model.texts()[-1]
    back = real(settings, agent, src_repo, "dev step 2", thread="dev")
    assert back.run.mode == Mode.RESUME and "review it" not in model.texts()[-1]


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["claude"])
def test_real_claude_fork_copies_the_source_from_its_keys_home(
    agent: str, settings: Settings, src_repo: Path, model: MockModel
) -> None:
    dev = real(settings, agent, src_repo, "dev step 0", thread="dev")
    real(settings, agent, src_repo, "dev step 1", thread="dev")
    source = session_agent(dev.session, settings)
    before = _digests(source.home / "projects")
    review = real(settings, agent, src_repo, "review it", thread="review", mode=Mode.FORK, fork_from="dev")
    assert review.run.mode == Mode.FORK and "copied the conversation" in str(review.run.note)
    assert "dev step 0" in model.texts()[-1] and "dev step 1" in model.texts()[-1]
    assert _digests(source.home / "projects") == before, "the source's transcript is only read"
    mine = session_agent(review.session, settings)
    assert mine.transcript_files(str(review.session.agent_session_id))
    assert source.transcript_files(str(review.session.agent_session_id)) == []
    assert mine.launch(Mode.RESUME, "x", "id").env["CLAUDE_CONFIG_DIR"] == str(mine.home)


def test_agent_for_is_the_keys_adapter(settings: Settings, src_repo: Path) -> None:
    key = make_key("codex", str(src_repo), "t", AGENTS)
    adapter = agent_for(key, settings)
    assert adapter.home == key_home(settings, key) and adapter.name == "codex"
    assert get_agent("codex", settings).home == settings.home / "homes" / "codex", "the base is untouched"
