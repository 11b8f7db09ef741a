"""Stacked threads: thread B's branch starts from thread A's (``base_thread``); when A's pull request is
merged — a signed GitHub ``pull_request`` closed + merged webhook to the real service, or
``baton sync --merged`` by hand — B is rebased onto ``main`` with only its own commits on top (a squash merge
included, where A's original commits must NOT come along), its base becomes ``main``, and its next turn
resumes B's conversation and is told what came in.

The remote is a bare repository served over smart HTTP on 127.0.0.1 (the forge's clone URL); the
maintainer merges on it through a clone, as a forge's merge button would. The agent's own commits are
made with git in its worktree, as the agent would make them. The webhook test runs the REAL Claude Code
CLI against the mock Anthropic API: its message counts (2, then 4) prove B's conversation resumed.
The rest use the fake agent (fast). Refusals (a base thread with no session, ``--base`` with
``--base-thread``) write nothing; a restack that conflicts leaves B's worktree byte for byte as it was,
keeps the report for B's next turn, and the delivery ends with the reason, never a traceback."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from baton import Mode, Outcome, RunRequest, RunResult, run
from baton.forge.data.records import DeliveryRecord
from baton.forge.data.tables import delivery_store
from baton.forge.reading.webhook import repo_slug
from baton.models import OnConflict, SessionRecord, SessionStatus, SyncHow
from baton.settings import Settings
from baton.store import Store, open_store
from baton.testing.git_http import GitHttpServer
from baton.testing.mock_anthropic import MockAnthropic
from tests.conftest import git, make_repo
from tests.forge.reading.test_webhooks import SECRET, TOKEN, finished, post, pr_closed_event
from tests.runner.test_runner import sent_prompts
from tests.service_fixtures import Service, run_service, service_fixture  # noqa: F401 (the `service` fixture)

Cli = Callable[..., subprocess.CompletedProcess[str]]
PARSER = "def parse(text):\n    return text.split()\n"
CLI_PY = "from parser import parse\n\nprint(parse('a b'))\n"


def turn(
    settings: Settings,
    store: Store | None,
    repo: str,
    thread: str,
    prompt: str,
    agent: str = "fake",
    **extra: Any,
) -> RunResult:
    request = RunRequest(agent=agent, repo=repo, thread=thread, prompt=prompt, **extra)
    return run(request, settings=settings, store=store)


def commit(worktree: Path, files: dict[str, str], message: str) -> str:
    """The agent commits ``files`` in its worktree; the commit id."""
    for name, text in files.items():
        (worktree / name).parent.mkdir(parents=True, exist_ok=True)
        (worktree / name).write_text(text)
    git(worktree, "add", *files)
    git(worktree, "commit", "-q", "-m", message)
    return git(worktree, "rev-parse", "HEAD")


def publish(worktree: Path, remote: Path, branch: str) -> None:
    """The agent's branch pushed to the remote (its pull request's head)."""
    git(worktree, "push", "-q", str(remote), f"HEAD:refs/heads/{branch}")


def maintainer_merges(
    tmp_path: Path, remote: Path, branch: str, how: str, main_edits: dict[str, str] | None = None
) -> str:
    """A maintainer merges ``branch`` into main on ``remote`` (a merge commit, or a squash), after
    ``main_edits`` landed on main first; then main moves on by one more commit. Main's new tip."""
    clone = tmp_path / f"maintainer-{uuid.uuid4().hex[:8]}"
    git(tmp_path, "clone", "-q", str(remote), str(clone))
    if main_edits:
        commit(clone, main_edits, "Someone else edits main")
    if how == "squash":
        git(clone, "merge", "-q", "--squash", f"origin/{branch}")
        git(clone, "commit", "-q", "-m", "The parser (#7)")
    else:
        git(clone, "merge", "-q", "--no-ff", f"origin/{branch}", "-m", "Merge pull request #7")
    commit(clone, {"CHANGELOG.md": "- the parser\n"}, "Main moves on: CHANGELOG")
    git(clone, "push", "-q", "origin", "main")
    return git(clone, "rev-parse", "HEAD")


def is_ancestor(repo: Path, commit_id: str, of: str) -> bool:
    done = subprocess.run(
        ["git", "merge-base", "--is-ancestor", commit_id, of], cwd=repo, capture_output=True
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 0


def subjects(repo: Path, since: str) -> list[str]:
    """The subjects of the commits on HEAD after ``since``, newest first."""
    return git(repo, "log", "--format=%s", f"{since}..HEAD").splitlines()


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` but .git, by its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def session_of(store: Store, agent: str, slug: str, thread: str) -> SessionRecord:
    session = store.get_session(agent, slug, thread)
    assert session is not None
    return session


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service reads the webhook secret from its environment at every request (it runs here)."""
    monkeypatch.setenv("BATON_WEBHOOK_SECRET", SECRET)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHttpServer]:
    """A bare repository served as ``http://127.0.0.1:PORT/api.git`` (the forge's clone URL)."""
    root = tmp_path / "served"
    root.mkdir()
    git(root, "clone", "--quiet", "--bare", str(make_repo(tmp_path / "origin")), "api.git")
    monkeypatch.setenv("BATON_GIT_TOKEN", TOKEN)
    with GitHttpServer(root=root, token=TOKEN) as server:
        yield server


@pytest.fixture
def claude(settings: Settings, claude_bin: str, mock: MockAnthropic) -> Settings:
    return dataclasses.replace(settings, claude_bin=claude_bin)


def stack(
    settings: Settings, store: Store | None, repo: str, remote: Path, agent: str = "fake"
) -> tuple[RunResult, RunResult, str]:
    """Thread A commits the parser and publishes its branch; thread B starts on A's branch and commits
    the CLI. A's run, B's run, and B's own commit."""
    a = turn(settings, store, repo, "A", "write the parser", agent)
    assert a.run.outcome == Outcome.SUCCEEDED, a.run.error
    a_commit = commit(Path(a.session.worktree), {"parser.py": PARSER}, "A adds the parser")
    publish(Path(a.session.worktree), remote, a.session.branch)
    b = turn(settings, store, repo, "B", "write the CLI on the parser", agent, base_thread="A")
    assert b.run.outcome == Outcome.SUCCEEDED and b.run.mode == Mode.FRESH, b.run.error
    assert b.session.base_thread == "A" and b.session.base == a.session.branch
    assert b.session.base_sha == a_commit
    worktree_b = Path(b.session.worktree)
    assert (worktree_b / "parser.py").read_text() == PARSER  # B starts where A is
    assert git(worktree_b, "rev-parse", "HEAD") == a_commit
    b_commit = commit(worktree_b, {"cli.py": CLI_PY}, "B adds the CLI")
    return a, b, b_commit


def assert_restacked(worktree: Path, main: str, a_commit: str, squashed: bool) -> None:
    """B sits on main's tip with only its own commit on top, A's work there through main."""
    assert is_ancestor(worktree, main, "HEAD")
    assert subjects(worktree, main) == ["B adds the CLI"]
    assert (worktree / "cli.py").read_text() == CLI_PY
    assert (worktree / "parser.py").read_text() == PARSER
    assert (worktree / "CHANGELOG.md").is_file()
    assert git(worktree, "status", "--porcelain") == ""
    # a squash merge rewrote A's commits: the originals must not come along into B's history
    assert is_ancestor(worktree, a_commit, "HEAD") is not squashed


# -- the webhook, with the real Claude Code CLI ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("how", ["merge", "squash"])
def test_a_merged_upstream_pr_restacks_b_onto_main_and_b_resumes_told(
    service: Service, claude: Settings, served: GitHttpServer, mock: MockAnthropic, tmp_path: Path, how: str
) -> None:
    url, remote = served.url("api.git"), Path(served.root) / "api.git"
    slug = repo_slug(url) or ""
    a, b, b_commit = stack(claude, service.store, url, remote, agent="claude")
    a_commit = b.session.base_sha or ""
    assert mock.message_counts() == [2, 2]  # two conversations, one turn each
    worktree_b = Path(b.session.worktree)
    main = maintainer_merges(tmp_path, remote, a.session.branch, how)

    delivery = str(uuid.uuid4())
    started = time.monotonic()
    answer = post(
        service, "github", "pull_request", pr_closed_event(served, a.session.branch, True), delivery
    )
    assert answer.status_code == 202, answer.text
    record = finished(service, "github", delivery)
    print(f"{how}: the delivery's work took {time.monotonic() - started:.2f} s")
    assert record.status.value == "done", record.result
    assert record.result["closed"] == [f"claude:{slug}:A"]
    [restacked] = record.result["restacked"]
    assert restacked["key"] == f"claude:{slug}:B" and restacked["result"] == "integrated", restacked

    assert git(worktree_b, "rev-parse", "HEAD") != b_commit  # rewritten onto main
    assert_restacked(worktree_b, main, a_commit, squashed=how == "squash")
    stored = session_of(service.store, "claude", slug, "B")
    assert (stored.base, stored.base_thread) == ("main", None)
    assert stored.base_sha == main  # a later rebase replays from main's tip, not from A's old one
    assert stored.pending_sync is not None and stored.pending_sync["result"] == "integrated"
    assert session_of(service.store, "claude", slug, "A").status == SessionStatus.CLOSED

    again = turn(claude, service.store, url, "B", "add a --verbose flag", "claude")
    assert again.run.outcome == Outcome.SUCCEEDED, again.run.error
    assert again.run.mode == Mode.RESUME
    assert again.session.agent_session_id == b.session.agent_session_id
    assert mock.message_counts() == [2, 2, 4]  # B's conversation, resumed with its history
    told = mock.conversation()[-1].text()
    assert "write the CLI on the parser" in told and "write the parser" not in told
    assert "Main moves on: CHANGELOG" in told and "main" in told
    assert again.run.sync is not None and again.run.sync["result"] == "integrated"
    assert session_of(service.store, "claude", slug, "B").pending_sync is None  # told once
    assert subjects(worktree_b, main) == ["B adds the CLI"]  # the turn itself synced nothing more


# -- by hand: baton sync -------------------------------------------------------------------------------


def test_baton_sync_merged_by_hand_restacks_b(
    settings: Settings, src_repo: Path, cli: Cli, tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(src_repo), str(remote))
    store = open_store(settings.resolved_store_url)
    try:
        a, b, _ = stack(settings, store, str(remote), remote)
        a_commit = b.session.base_sha or ""
        main = maintainer_merges(tmp_path, remote, a.session.branch, "merge")
        started = time.monotonic()
        done = cli("sync", "--repo", str(remote), "--thread", "A", "--merged", "--json")
        print(f"baton sync --merged: {time.monotonic() - started:.2f} s")
        assert done.returncode == 0, done.stdout + done.stderr
        results = {item["key"]: item for item in json.loads(done.stdout)}
        key_b = f"fake:{b.run.repo}:B"
        assert set(results) == {f"fake:{b.run.repo}:A", key_b}
        assert results[key_b]["result"] == "integrated", results[key_b]
        worktree_b = Path(b.session.worktree)
        assert_restacked(worktree_b, main, a_commit, squashed=False)
        stored = session_of(store, "fake", b.run.repo, "B")
        assert (stored.base, stored.base_thread, stored.base_sha) == ("main", None, main)

        again = turn(settings, store, str(remote), "B", "carry on")
        assert again.run.outcome == Outcome.SUCCEEDED and again.run.mode == Mode.RESUME
        assert again.run.result == "fake reply: received 4 messages"
        assert "Main moves on: CHANGELOG" in sent_prompts(settings, str(b.session.agent_session_id))[-1]

        # a dispatcher repeating its flags: --base-thread A again runs on main, with a warning
        repeated = turn(settings, store, str(remote), "B", "and again", base_thread="A")
        assert repeated.run.outcome == Outcome.SUCCEEDED and repeated.run.mode == Mode.RESUME
        assert any("--base-thread A applies only when a thread is created" in w for w in repeated.warnings)
        stored = session_of(store, "fake", b.run.repo, "B")
        assert (stored.base, stored.base_thread) == ("main", None)
    finally:
        store.close()


def test_baton_sync_brings_b_onto_as_new_tip(
    settings: Settings, src_repo: Path, cli: Cli, tmp_path: Path
) -> None:
    """Without --merged, A only moved (one more commit): B is rebased onto A's new tip, still on A."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(src_repo), str(remote))
    store = open_store(settings.resolved_store_url)
    try:
        a, b, _ = stack(settings, store, str(remote), remote)
        a_tip = commit(Path(a.session.worktree), {"lexer.py": "TOKENS = []\n"}, "A adds the lexer")
        done = cli("sync", "--repo", str(remote), "--thread", "A", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        results = {item["key"]: item for item in json.loads(done.stdout)}
        assert results[f"fake:{b.run.repo}:B"]["result"] == "integrated", results
        worktree_b = Path(b.session.worktree)
        assert is_ancestor(worktree_b, a_tip, "HEAD")
        assert subjects(worktree_b, a_tip) == ["B adds the CLI"]
        assert (worktree_b / "lexer.py").read_text() == "TOKENS = []\n"
        stored = session_of(store, "fake", b.run.repo, "B")
        assert (stored.base, stored.base_thread, stored.base_sha) == (a.session.branch, "A", a_tip)
        # A itself was only synced with its own upstream (nothing moved there): its commit is kept
        assert git(Path(a.session.worktree), "rev-parse", "HEAD") == a_tip
    finally:
        store.close()


# -- refusals and conflicts ------------------------------------------------------------------------------


@pytest.mark.slow  # many `baton` processes: over 3 s of CPU
def test_base_thread_refusals_write_nothing(settings: Settings, src_repo: Path, cli: Cli) -> None:
    a = turn(settings, None, str(src_repo), "A", "write the parser")
    cases = [
        (["-t", "B", "--base-thread", "nobody"], "'nobody'"),
        (["-t", "B", "--base", "main", "--base-thread", "A"], "--base-thread"),
        (["-t", "B", "--base-thread", "../A"], "thread"),
        (["-t", "B", "--base-thread", "B"], "itself"),
    ]
    for args, words in cases:
        done = cli("run", "-a", "fake", "-r", str(src_repo), *args, "go")
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert words in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    store = open_store(settings.resolved_store_url)
    try:
        assert [s.thread for s in store.list_sessions()] == ["A"]
        assert len(store.list_runs("fake", a.run.repo, "A", limit=10)) == 1
        assert store.list_runs("fake", a.run.repo, "B", limit=10) == []
    finally:
        store.close()
    assert not (settings.home / "worktrees" / "fake" / a.run.repo / "B").exists()
    cache = settings.home / "repos" / f"{a.run.repo}.git"
    assert "baton/fake/B" not in git(cache, "branch", "--list")

    # a thread's base cannot change once it exists
    turn(settings, None, str(src_repo), "C", "docs")
    turn(settings, None, str(src_repo), "B", "the CLI", base_thread="A")
    done = cli("run", "-a", "fake", "-r", str(src_repo), "-t", "B", "--base-thread", "C", "go")
    assert done.returncode == 2 and "cannot change" in done.stderr, done.stderr


@dataclasses.dataclass
class Conflicted:
    """B after a restack that conflicted: its runs, its worktree as it was before, main's tip."""

    a: RunResult
    b: RunResult
    main: str
    slug: str
    url: str
    before: dict[str, str]


def restack_conflict(
    service: Service, settings: Settings, served: GitHttpServer, tmp_path: Path
) -> Conflicted:
    """A is squash-merged while main retitled the README that B retitled too: the webhook's restack of B
    conflicts; B's worktree (a commit, an uncommitted change, an untracked file) must stay as it was."""
    url, remote = served.url("api.git"), Path(served.root) / "api.git"
    slug = repo_slug(url) or ""
    a, b, _ = stack(settings, service.store, url, remote)
    worktree_b = Path(b.session.worktree)
    commit(worktree_b, {"README.md": "# B's title\n"}, "B retitles")
    (worktree_b / "cli.py").write_text(CLI_PY + "# uncommitted\n")
    (worktree_b / "notes.txt").write_text("untracked notes\n")
    before = tree_digest(worktree_b)
    status_before, head_before = (
        git(worktree_b, "status", "--porcelain"),
        git(worktree_b, "rev-parse", "HEAD"),
    )
    main = maintainer_merges(tmp_path, remote, a.session.branch, "squash", {"README.md": "# main's title\n"})

    delivery = str(uuid.uuid4())
    post(service, "github", "pull_request", pr_closed_event(served, a.session.branch, True), delivery)
    record = finished(service, "github", delivery)
    assert record.status.value in ("done", "failed"), record.result
    assert "Traceback" not in json.dumps(record.result)
    [restacked] = record.result["restacked"]
    assert restacked["key"] == f"fake:{slug}:B" and restacked["result"] == "conflict", restacked
    assert "README.md" in restacked["summary"]

    assert tree_digest(worktree_b) == before
    assert git(worktree_b, "status", "--porcelain") == status_before
    assert git(worktree_b, "rev-parse", "HEAD") == head_before
    for leftover in ("rebase-merge", "rebase-apply", "MERGE_HEAD"):
        assert not Path(worktree_b, git(worktree_b, "rev-parse", "--git-path", leftover)).exists()
    stored = session_of(service.store, "fake", slug, "B")
    assert stored.pending_sync is not None and stored.pending_sync["result"] == "conflict"
    assert "README.md" in stored.pending_sync.get("conflicts", [])
    assert stored.base_sha == b.session.base_sha  # B's own commits still start at A's old tip
    return Conflicted(a, b, main, slug, url, before)


def test_a_restack_conflict_leaves_b_as_it_was_until_the_agent_resolves_it(
    service: Service, settings: Settings, served: GitHttpServer, tmp_path: Path
) -> None:
    c = restack_conflict(service, settings, served, tmp_path)
    worktree_b = Path(c.b.session.worktree)
    # the next turn that syncs tries again; with --on-conflict agent the agent gets the rebase, stopped
    again = turn(
        settings, service.store, c.url, "B", "resolve it", sync=SyncHow.REBASE, on_conflict=OnConflict.AGENT
    )
    assert again.run.outcome == Outcome.SUCCEEDED, again.run.error
    assert again.session.agent_session_id == c.b.session.agent_session_id
    told = sent_prompts(settings, str(c.b.session.agent_session_id))[-1]
    assert "README.md" in told and "conflict" in told.lower()
    assert "<<<<<<<" in (worktree_b / "README.md").read_text()
    # the agent finishes the rebase: B's own commits (and its uncommitted work, committed so that it
    # travels through) on main, A's original commit not among them
    (worktree_b / "README.md").write_text("# both titles\n")
    git(worktree_b, "add", "README.md")
    subprocess.run(
        ["git", "-c", "core.editor=true", "rebase", "--continue"],
        cwd=worktree_b,
        check=True,
        capture_output=True,
    )
    assert is_ancestor(worktree_b, c.main, "HEAD")
    assert subjects(worktree_b, c.main)[1:] == ["B retitles", "B adds the CLI"]
    assert not is_ancestor(worktree_b, c.b.session.base_sha or "", "HEAD")
    assert (worktree_b / "notes.txt").read_text() == "untracked notes\n"
    assert (worktree_b / "cli.py").read_text() == CLI_PY + "# uncommitted\n"


def test_after_a_restack_conflict_a_plain_turn_runs_and_is_told(
    service: Service, settings: Settings, served: GitHttpServer, tmp_path: Path
) -> None:
    """The restack already stopped (the worktree as it was) and kept its report for the next turn
    (upstream.restack: "the next turn with --sync rebase tries again"). A turn without --sync must
    then run the agent and tell it, not stop on the old report: stopping consumes the report, and its
    advice (--on-conflict agent) does nothing without --sync, so the turn after it would run untold."""
    c = restack_conflict(service, settings, served, tmp_path)
    plain = turn(settings, service.store, c.url, "B", "carry on")
    assert plain.run.outcome == Outcome.SUCCEEDED, plain.run.error
    assert plain.run.mode == Mode.RESUME and plain.run.result == "fake reply: received 4 messages"
    told = sent_prompts(settings, str(c.b.session.agent_session_id))[-1]
    assert "README.md" in told and "NOT integrated" in told
    assert tree_digest(Path(c.b.session.worktree)) == c.before
    assert session_of(service.store, "fake", c.slug, "B").pending_sync is None


def test_a_restarted_service_restacks_for_a_pending_merged_delivery(
    settings: Settings, served: GitHttpServer, tmp_path: Path
) -> None:
    """A merged-PR delivery accepted (stored pending with its target) by a process that died before doing
    it: the restarted service must restack, not only close."""
    url, remote = served.url("api.git"), Path(served.root) / "api.git"
    slug = repo_slug(url) or ""
    store = open_store(settings.resolved_store_url)
    try:
        a, b, _ = stack(settings, store, url, remote)
        main = maintainer_merges(tmp_path, remote, a.session.branch, "squash")
        target = {"repos": [slug], "branch": a.session.branch, "merged": True}
        delivery_store(store).add_delivery(
            DeliveryRecord("github", "d-merged", "pull_request", time.time(), result=target)
        )
        with run_service(settings) as restarted:
            record = finished(restarted, "github", "d-merged")
        assert record.status.value == "done", record.result
        assert [r["result"] for r in record.result.get("restacked", [])] == ["integrated"], record.result
        assert_restacked(Path(b.session.worktree), main, b.session.base_sha or "", squashed=True)
    finally:
        store.close()
