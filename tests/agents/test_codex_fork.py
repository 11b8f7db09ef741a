"""Forking a Codex thread: the rollout copy (:func:`baton.agents.codex_threads.fork_rollout`, no CLI)
and forks run through :func:`baton.run` with the REAL Codex CLI against :class:`MockOpenAI`.

The mock's replies say how many ``input`` items each request carried: 4 on a thread's first turn, and
every resumed turn adds 2 (the reply and the new prompt); a turn run from another directory than the
thread's last one adds a third item, an ``<environment_context>`` naming the new cwd (measured). A
fork's first request must carry its source's whole history; a fresh thread would start at 4 again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from baton import Mode, Outcome, RunRequest, RunResult, run
from baton.agents.codex import EXEC, CodexAgent, is_thread_id
from baton.agents.codex_threads import fork_rollout, new_thread_id, rollout_files, rollout_path
from baton.errors import AgentError, BadInput
from baton.settings import Settings
from baton.testing.mock_openai import MockOpenAI
from baton.workspace.keyspace import session_agent

SOURCE = "01a1feaa-303a-75d0-8293-4ac0347e196e"
OTHER = "01a1feaa-0000-7000-8000-000000000000"
# A fork resumed in another key's CODEX_HOME gets Codex's skills instructions once more (they name the
# skills' root inside CODEX_HOME, so they differ from the source's): one input item more.
SKILLS = 1


def rollout_text(thread: str, turns: int = 2) -> str:
    """A rollout shaped like Codex 0.169's: the header and the events and usage records that name the
    thread, plus a message that mentions another thread's id (which must stay)."""
    lines: list[dict[str, object]] = [
        {
            "timestamp": "2026-11-21T15:12:08.094Z",
            "ordinal": 0,
            "type": "session_meta",
            "payload": {"session_id": thread, "id": thread, "cwd": "/w/dev", "source": "exec"},
        }
    ]
    for n in range(turns):
        lines += [
            {"type": "event_msg", "payload": {"type": "thread_settings_applied", "thread_id": thread}},
            {
                "type": "response_item",
                "payload": {"type": "message", "role": "user", "content": f"step {n}é"},
            },
            {"type": "event_msg", "payload": {"type": "item_completed", "thread_id": thread}},
            {"type": "token_usage_record", "payload": {"thread_id": thread, "session_id": thread}},
        ]
    lines.append({"type": "response_item", "payload": {"type": "message", "content": f"see {OTHER}"}})
    return "".join(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n" for line in lines)


def write_rollout(home: Path, thread: str, text: str, day: str = "2020/01/01") -> Path:
    path = home / "sessions" / day / f"rollout-{day.replace('/', '-')}T15-12-08-{thread}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def all_files(home: Path) -> list[Path]:
    """Every file under ``sessions/``, temporary ones included."""
    return sorted(p for p in (home / "sessions").rglob("*") if p.is_file())


@pytest.fixture
def agent(tmp_path: Path) -> CodexAgent:
    return CodexAgent(tmp_path / "codex-home", "/opt/codex/bin/codex")


# -- the copy (no CLI) ------------------------------------------------------------------------------------


def test_fork_launch_copies_the_rollout_under_a_new_id_and_resumes_it(agent: CodexAgent) -> None:
    text = rollout_text(SOURCE)
    source = write_rollout(agent.home, SOURCE, text)
    before = source.read_bytes(), source.stat().st_mtime_ns
    launch = agent.launch(Mode.FORK, "--review it", SOURCE)
    new = launch.new_session_id
    assert new is not None and is_thread_id(new) and new != SOURCE
    assert launch.argv == ["/opt/codex/bin/codex", *EXEC, "--sandbox", "workspace-write", "resume", new, "-"]
    assert launch.stdin == b"--review it", "the prompt stays on stdin"
    assert launch.env["CODEX_HOME"] == str(agent.home)
    [copy] = agent.transcript_files(new)
    assert copy.read_text(encoding="utf-8") == text.replace(SOURCE, new)
    assert SOURCE not in copy.read_text(encoding="utf-8") and f"see {OTHER}" in copy.read_text(
        encoding="utf-8"
    )
    header = json.loads(copy.read_text(encoding="utf-8").splitlines()[0])
    assert (
        header["type"] == "session_meta" and header["payload"]["id"] == header["payload"]["session_id"] == new
    )
    assert (source.read_bytes(), source.stat().st_mtime_ns) == before, "the source is only read"
    assert agent.transcript_files(SOURCE) == [source]
    # named and filed the way Codex names a thread created now (local time)
    today = time.strftime("%Y/%m/%d")
    assert copy.parent == agent.home / "sessions" / today
    assert copy.name.startswith(f"rollout-{today.replace('/', '-')}T") and copy.name.endswith(f"-{new}.jsonl")
    assert len(copy.name) == len(source.name)
    assert all_files(agent.home) == sorted([source, copy]), "no temporary file is left"


def test_two_forks_of_one_thread_get_two_ids(agent: CodexAgent) -> None:
    write_rollout(agent.home, SOURCE, rollout_text(SOURCE))
    first, _ = fork_rollout(agent.home, SOURCE)
    second, _ = fork_rollout(agent.home, SOURCE)
    assert len({first, second, SOURCE}) == 3
    assert len(all_files(agent.home)) == 3
    # a fork of a fork is a copy of the copy
    third, path = fork_rollout(agent.home, second)
    assert second not in path.read_text(encoding="utf-8") and third in path.read_text(encoding="utf-8")


def test_a_torn_last_line_is_left_out_of_the_copy(agent: CodexAgent) -> None:
    """A run of the source may be appending while the fork copies: only whole lines are copied."""
    text = rollout_text(SOURCE)
    write_rollout(agent.home, SOURCE, text + '{"type":"event_msg","payload":{"thread_id":"' + SOURCE[:9])
    _, copy = fork_rollout(agent.home, SOURCE)
    assert copy.read_bytes().endswith(b"\n") and copy.read_bytes().count(b"\n") == text.count("\n")


def test_new_thread_ids_are_uuid7_in_time_order() -> None:
    ids = [new_thread_id() for _ in range(50)]
    assert len(set(ids)) == 50 and all(is_thread_id(i) for i in ids)
    parsed = [uuid.UUID(i) for i in ids]
    assert {u.version for u in parsed} == {7} and {u.variant for u in parsed} == {uuid.RFC_4122}
    millis = [u.int >> 80 for u in parsed]
    assert millis == sorted(millis) and abs(millis[-1] / 1000 - time.time()) < 60


def test_rollout_path_is_the_local_date_folder() -> None:
    when = time.mktime((2026, 1, 2, 3, 4, 5, 0, 0, -1))
    path = rollout_path(Path("/h"), SOURCE, when)
    assert path == Path(f"/h/sessions/2026/01/02/rollout-2026-01-02T03-04-05-{SOURCE}.jsonl")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "has no rollout"),
        (b"", "has no rollout"),  # an empty file is no transcript
        (b'{"type":"session_meta","payload":{"id":"x"}}', "not a readable rollout"),  # no whole line
        (b"\xff\xfe garbage\n", "not a readable rollout"),
        (b'{"type":"event_msg","payload":{}}\n', "not a readable rollout"),
        (
            rollout_text(OTHER).encode(),
            "not a readable rollout",
        ),  # a file named for one thread, holding another
    ],
)
def test_a_source_that_cannot_be_forked_is_refused_with_nothing_written(
    agent: CodexAgent, content: bytes | None, words: str
) -> None:
    agent.home.mkdir(parents=True)
    if content is not None:
        write_rollout(agent.home, SOURCE, "").write_bytes(content)
    before = all_files(agent.home) if (agent.home / "sessions").exists() else []
    with pytest.raises(AgentError, match=f"cannot fork Codex thread {SOURCE}: .*{words}"):
        agent.launch(Mode.FORK, "review", SOURCE)
    after = all_files(agent.home) if (agent.home / "sessions").exists() else []
    assert after == before


def test_an_unreadable_source_is_refused(agent: CodexAgent, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_rollout(agent.home, SOURCE, rollout_text(SOURCE))
    real = Path.read_bytes

    def refuse(path: Path) -> bytes:
        if path == source:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(AgentError, match=r"cannot read .*Permission denied"):
        agent.launch(Mode.FORK, "review", SOURCE)
    assert all_files(agent.home) == [source]


def test_a_copy_that_cannot_be_written_leaves_nothing(agent: CodexAgent) -> None:
    source = write_rollout(agent.home, SOURCE, rollout_text(SOURCE))
    blocker = agent.home / "sessions" / time.strftime("%Y/%m/%d")  # today's folder is a file: mkdir fails
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("in the way")
    with pytest.raises(AgentError, match="cannot write"):
        agent.launch(Mode.FORK, "review", SOURCE)
    assert all_files(agent.home) == sorted([source, blocker])


def test_nothing_is_copied_for_a_refused_prompt_or_id(agent: CodexAgent) -> None:
    source = write_rollout(agent.home, SOURCE, rollout_text(SOURCE))
    with pytest.raises(BadInput, match="NUL"):
        agent.launch(Mode.FORK, "a\x00b", SOURCE)
    for bad in (None, "my-thread", SOURCE + "0", f"{SOURCE} --last"):
        with pytest.raises(AgentError, match=r"existing session id|not a Codex thread id"):
            agent.launch(Mode.FORK, "review", bad)
    assert all_files(agent.home) == [source]


def test_fork_is_a_capability(agent: CodexAgent) -> None:
    assert agent.capabilities.fork and agent.capabilities.supports(Mode.FORK)


def test_copy_time_for_a_long_rollout(agent: CodexAgent) -> None:
    """Measured, and bounded loosely (2 busy cores): the copy reads, checks and writes the whole file."""
    source = write_rollout(agent.home, SOURCE, rollout_text(SOURCE, turns=20_000))  # ~7 MB
    started = time.perf_counter()
    fork_rollout(agent.home, SOURCE)
    took = time.perf_counter() - started
    print(f"fork copy of a {source.stat().st_size / 1e6:.1f} MB rollout: {took * 1000:.1f} ms")
    assert took < 5


# -- the real Codex CLI against the mock -------------------------------------------------------------


def go(
    settings: Settings,
    repo: Path,
    thread: str,
    prompt: str,
    mode: Mode = Mode.AUTO,
    fork_from: str | None = None,
) -> RunResult:
    request = RunRequest(
        agent="codex", repo=str(repo), thread=thread, prompt=prompt, mode=mode, fork_from=fork_from
    )
    result = run(request, settings=settings)
    assert result.ok, [a.error for a in result.attempts]
    return result


def codex(settings: Settings, result: RunResult) -> CodexAgent:
    """The adapter of the run's key: its own Codex home."""
    agent = session_agent(result.session, settings)
    assert isinstance(agent, CodexAgent)
    return agent


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def thread_row(home: Path, thread: str) -> dict[str, object] | None:
    with sqlite3.connect(home / "state_5.sqlite") as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM threads WHERE id = ?", (thread,)).fetchone()
    return dict(row) if row else None


@pytest.mark.slow
def test_fork_branches_another_threads_conversation(
    settings: Settings, src_repo: Path, openai: MockOpenAI
) -> None:
    dev = [go(settings, src_repo, "A", f"dev step {i}") for i in range(2)]
    source = str(dev[0].session.agent_session_id)
    assert dev[1].session.agent_session_id == source and openai.history_counts() == [4, 6]
    a_home = codex(settings, dev[0]).home
    [source_file] = codex(settings, dev[0]).transcript_files(source)
    source_bytes, source_row = digest(source_file), thread_row(a_home, source)

    review = go(settings, src_repo, "B", "review it", mode=Mode.FORK, fork_from="A")
    forked = str(review.session.agent_session_id)
    assert (review.run.mode, review.run.outcome) == (Mode.FORK, Outcome.SUCCEEDED)
    assert is_thread_id(forked) and forked != source
    assert review.run.session_id_in == source and review.run.session_id_out == forked
    # A's full history (6) + the reply and the prompt + B's worktree as the new cwd + the skills
    # instructions again: they name the skills' root in CODEX_HOME, and B's home is its own (SKILLS)
    assert openai.history_counts() == [4, 6, 9 + SKILLS]
    sent = openai.conversation_requests()[-1].text()
    assert "dev step 0" in sent and "dev step 1" in sent and "review it" in sent
    assert f"<cwd>{review.session.worktree}</cwd>" in sent
    assert review.session.worktree != dev[1].session.worktree
    # Codex's counters are per thread and the copy carries A's: the fork's own usage is what it added
    source_total, fork_total = dev[1].run.usage["thread_total"], review.run.usage["thread_total"]
    assert review.run.usage["input_tokens"] == fork_total["input_tokens"] - source_total["input_tokens"] > 0

    # a fresh process resumes the fork by its id: Codex indexed it at the fork's run
    again = go(settings, src_repo, "B", "and the tests?")
    assert (again.run.mode, again.session.agent_session_id) == (Mode.RESUME, forked)
    assert openai.history_counts()[-1] == 11 + SKILLS
    assert "review it" in openai.conversation_requests()[-1].text()
    b_home = codex(settings, review).home
    assert b_home != a_home, "each thread has its own Codex home"
    [forked_file] = codex(settings, review).transcript_files(forked)
    row = thread_row(b_home, forked)
    assert (
        row is not None and row["rollout_path"] == str(forked_file) and row["cwd"] == review.session.worktree
    )
    assert forked_file.parent == b_home / "sessions" / time.strftime("%Y/%m/%d")
    assert thread_row(a_home, forked) is None and not rollout_files(a_home, forked), "A's home never sees B's"

    # the source is untouched: its rollout byte for byte, its index row, and its own history
    assert digest(source_file) == source_bytes and thread_row(a_home, source) == source_row
    back = go(settings, src_repo, "A", "dev step 2")
    assert (back.run.mode, back.session.agent_session_id) == (Mode.RESUME, source)
    assert openai.history_counts()[-1] == 8, "A continues from its own 6 items"
    assert "review it" not in openai.conversation_requests()[-1].text()


@pytest.mark.slow
def test_fork_in_place_gets_a_new_id_with_the_history(
    settings: Settings, src_repo: Path, openai: MockOpenAI
) -> None:
    first = [go(settings, src_repo, "A", f"step {i}") for i in range(2)]
    source = str(first[0].session.agent_session_id)
    [source_file] = codex(settings, first[0]).transcript_files(source)
    source_bytes = digest(source_file)
    forked = go(settings, src_repo, "A", "try another way", mode=Mode.FORK)
    new = str(forked.session.agent_session_id)
    assert forked.run.mode == Mode.FORK and is_thread_id(new) and new != source
    assert openai.history_counts() == [4, 6, 8], "same worktree: the history and 2 new items"
    assert "step 0" in openai.conversation_requests()[-1].text()
    after = go(settings, src_repo, "A", "go on")
    assert (after.run.mode, after.session.agent_session_id) == (Mode.RESUME, new)
    assert openai.history_counts()[-1] == 10
    assert digest(source_file) == source_bytes


@pytest.mark.slow
def test_a_fork_outlives_its_source_and_travels_alone(
    settings: Settings, src_repo: Path, openai: MockOpenAI
) -> None:
    """Why a copy and not ``codex exec fork``: with the source's rollout gone (and, later, the whole
    Codex home), the fork still resumes with its full history, from its own snapshot alone."""
    dev = go(settings, src_repo, "A", "dev step 0")
    source = str(go(settings, src_repo, "A", "dev step 1").session.agent_session_id)
    review = go(settings, src_repo, "B", "review it", mode=Mode.FORK, fork_from="A")
    forked = str(review.session.agent_session_id)
    assert forked != source
    home = codex(settings, review).home
    for path in [*rollout_files(codex(settings, dev).home, source), *rollout_files(home, source)]:
        path.unlink()  # the source everywhere: in A's home, and the copy B's home was given to fork it
    again = go(settings, src_repo, "B", "more")
    assert (again.run.mode, again.session.agent_session_id) == (Mode.RESUME, forked)
    assert openai.history_counts()[-1] == 11 + SKILLS
    for path in rollout_files(home, forked):  # the home loses the fork too: hydrated from its snapshot
        path.unlink()
    hydrated = go(settings, src_repo, "B", "still there?")
    assert (hydrated.run.mode, hydrated.session.agent_session_id) == (Mode.RESUME, forked)
    assert openai.history_counts()[-1] == 13 + SKILLS
    assert "dev step 0" in openai.conversation_requests()[-1].text()


@pytest.mark.slow
def test_fork_of_a_source_hydrated_from_its_snapshot(
    settings: Settings, src_repo: Path, openai: MockOpenAI
) -> None:
    """The Codex home is wiped (the source's rollout and every index): the fork hydrates the source
    first, then copies it."""
    dev = go(settings, src_repo, "A", "dev step 0")
    source = str(go(settings, src_repo, "A", "dev step 1").session.agent_session_id)
    home = codex(settings, dev).home
    for path in home.iterdir():
        if path.is_dir():
            shutil.rmtree(path)
        elif path.name != "config.toml":
            path.unlink()
    review = go(settings, src_repo, "B", "review it", mode=Mode.FORK, fork_from="A")
    assert review.run.mode == Mode.FORK and review.session.agent_session_id != source
    assert openai.history_counts()[-1] == 9 + SKILLS
    assert "hydrated" in str(review.run.note)
    assert rollout_files(codex(settings, review).home, source), (
        "the source was hydrated (into B's home) to be copied"
    )
    assert not rollout_files(home, source), "A's home is A's: only A's own runs write it"
