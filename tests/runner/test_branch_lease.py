"""One writer per branch through :func:`baton.run` with the fake agent: two keys on one branch never run
at once — the second is refused naming the key and run that write it, or, asked to wait, runs when the
first has ended — on one machine and across two ``BATON_HOME``s on one store (SQL leases and Redis
leases); keys on different branches run side by side; a hostile branch name; a hand-off and an
``on_limit`` fallback on one thread neither deadlock nor wait on each other.

Two keys on one branch of ONE machine share its one cache clone, where git checks a branch out in one
worktree only: each key's turn takes the branch (:mod:`baton.sync.sharing`), the other's worktree parked
off it, so both run — one after the other, in both orders, and started together (the second waits on
the lease, then runs); after a run killed with SIGKILL mid-turn; on SQLite and PostgreSQL — each
resuming its own conversation in its own worktree, seeing the other's commits, its own uncommitted work
kept, the branch pushed fast-forward each time.

The first run is held inside its agent by a gate: the fake agent's ``FAKE_AGENT_RUN`` command waits for
a file ``.gate`` in the worktree of the key ``fake``/``t1`` (only that key's; :func:`gate` for another
thread's), which the test creates."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest
import sqlalchemy as sa

from baton import RunRequest, RunResult, run
from baton.agents import register_agent, unregister_agent
from baton.agents.claude import ClaudeAgent
from baton.errors import BranchBusy, Busy
from baton.keys import Key, make_key
from baton.models import Access, Mode, Outcome, RunRecord, SyncHow
from baton.runner import run as runner
from baton.settings import Settings, load_settings
from baton.store import Store, open_store
from baton.store.branchlease import branch_lease_name
from baton.store.leases import LeaseHolder
from baton.store.schema import leases
from baton.sync.upstream import sync_key
from baton.testing.fake import FakeAgent, fake_agent_bin
from baton.workspace.workdirs import Workdirs
from tests.conftest import BATON, FAST, git, wait_for
from tests.redis_fixtures import RedisServer, server_fixture  # noqa: F401 (the `server` fixture)

SERVICE_FIXTURES = {"server": "redis"}  # marks the tests that reach it (conftest)


def gate(thread: str) -> str:
    """The fake agent's command that holds the key ``fake``/``thread`` until ``.gate`` is in its
    worktree (at most a minute: a broken test ends instead of hanging)."""
    return (
        f'case "$PWD" in */worktrees/fake/*/{thread}) i=0; '
        "while [ ! -e .gate ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done;; esac"
    )


GATE = gate("t1")
# an agent's turn at access full: a commit of its own (a line more in log-<thread>.txt) and uncommitted
# work left behind (a line more in draft-<thread>.txt, untracked)
WORK = (
    't=$(basename "$PWD"); echo "$t turn" >> "log-$t.txt"; git add "log-$t.txt"; '
    'git commit -qm "$t: turn $(grep -c . "log-$t.txt")"; echo "$t draft" >> "draft-$t.txt"'
)
HOSTILE = "x|y/$(touch${IFS}pwned);'\"`id`\u202e\u00e9{a}%s&<>!"  # a valid branch name, every byte hostile


class UnlimitedFake(FakeAgent):
    """A second fake agent (``fake2``) that never meets the usage limit ``FAKE_AGENT_LIMIT_UNTIL`` sets
    for ``fake``: it is given only ``FAKE_AGENT_RUN`` of the fake's switches."""

    env_patterns = (*ClaudeAgent.env_patterns, "FAKE_AGENT_RUN")


def unlimited_fake(name: str, settings: Settings) -> ClaudeAgent:
    return UnlimitedFake(name, settings.home / "homes" / name, fake_agent_bin())


@pytest.fixture
def fake2() -> Iterator[str]:
    register_agent("fake2", f"{__name__}:unlimited_fake")
    yield "fake2"
    unregister_agent("fake2")


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_AGENT_RUN", GATE)


def go(settings: Settings, repo: Path, thread: str, agent: str = "fake", **kw: Any) -> RunResult:
    request = RunRequest(agent=agent, repo=str(repo), thread=thread, prompt=f"work on {thread}", **kw)
    return run(request, settings=settings)


def key_of(repo: Path, thread: str, agent: str = "fake") -> Key:
    return make_key(agent, str(repo), thread, [agent])


def running(store: Store, repo: Path, thread: str, agent: str = "fake") -> RunRecord:
    """The run of the key once its agent has started (it holds both leases then)."""
    slug = key_of(repo, thread, agent).repo.slug
    found: list[RunRecord] = []

    def started() -> bool:
        found[:] = [r for r in store.list_runs(agent, slug, thread) if r.outcome == Outcome.RUNNING]
        return bool(found)

    wait_for(started, 60, 0.05, f"{agent}'s run of {thread} to start its agent")
    return found[0]


def open_gate(settings: Settings, repo: Path, agent: str = "fake", thread: str = "t1") -> None:
    (Workdirs(settings).worktree_path(key_of(repo, thread, agent)) / ".gate").write_text("go\n")


def lease_held(store: Store, name: str) -> bool:
    """Whether a runner holds the lease ``name`` now (the SQL backend's row)."""
    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        holder = conn.execute(sa.select(leases.c.holder).where(leases.c.key == name)).scalar()
    return bool(holder)


def refused_by(first: RunRecord, repo: Path, branch: str) -> str:
    """The start of the message that refuses a second key on ``first``'s branch."""
    slug = key_of(repo, "t1").repo.slug
    return (
        f"branch {branch!r} of {slug} is being written by key {key_of(repo, 't1').id} (run {first.run_id}, "
    )


@pytest.mark.usefixtures("gated")
def test_a_second_key_on_a_branch_being_written_is_refused_naming_the_writer(
    settings: Settings, src_repo: Path, store: Store
) -> None:
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(go, settings, src_repo, "t1", branch="feat")
        record = running(store, src_repo, "t1")
        with pytest.raises(BranchBusy) as info:
            go(settings, src_repo, "t2", branch="refs/heads/feat")  # the same branch, spelt in full
        assert str(info.value).startswith(refused_by(record, src_repo, "feat")), str(info.value)
        slug = key_of(src_repo, "t2").repo.slug
        assert store.get_session("fake", slug, "t2") is None and store.list_runs("fake", slug, "t2") == []
        assert not Workdirs(settings).worktree_path(key_of(src_repo, "t2")).exists()  # nothing written
        open_gate(settings, src_repo)
        result = first.result(timeout=120)
    assert result.ok and result.session.branch == "feat", result.run.error
    assert not lease_held(store, branch_lease_name(slug, "feat"))  # released with the key's lease


@pytest.mark.usefixtures("gated")
def test_keys_on_different_branches_run_side_by_side(
    settings: Settings, src_repo: Path, store: Store
) -> None:
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(go, settings, src_repo, "t1")
        running(store, src_repo, "t1")
        other = go(settings, src_repo, "t2", wait=0)  # baton/fake/t2 beside baton/fake/t1: at once
        assert other.ok and not first.done()
        own = go(settings, src_repo, "t3", branch="feat-3", wait=0)
        assert own.ok and not first.done()
        open_gate(settings, src_repo)
        assert first.result(timeout=120).ok


@pytest.mark.parametrize("backend", ["sql", "redis"])
@pytest.mark.usefixtures("gated")
def test_on_two_machines_the_second_key_is_refused_or_waits_then_runs(
    tmp_path: Path, src_repo: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Two BATON_HOMEs on one store (each its own cache clone, so git itself would let both check the
    branch out): the lease is what keeps them apart, granted by the store or by Redis."""
    url = f"sqlite:///{tmp_path / 'shared' / 'baton.db'}"
    (tmp_path / "shared").mkdir()
    extra: dict[str, Any] = {}
    if backend == "redis":
        extra = {"lease_backend": "redis", "redis_url": request.getfixturevalue("server").url}
    a, b = (
        load_settings(overrides={"home": str(tmp_path / n), "store_url": url, **FAST, **extra}, environ={})
        for n in ("machine-a", "machine-b")
    )
    store = open_store(url)
    try:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(go, a, src_repo, "t1", branch="feat")
            record = running(store, src_repo, "t1")
            with pytest.raises(BranchBusy) as info:
                go(b, src_repo, "t2", branch="feat")
            assert str(info.value).startswith(refused_by(record, src_repo, "feat")), str(info.value)
            waiting: Future[RunResult] = pool.submit(go, b, src_repo, "t2", branch="feat", wait=120)
            key_t2 = key_of(src_repo, "t2").id
            if backend == "sql":  # it holds its key's lease while it waits for the branch's
                wait_for(lambda: lease_held(store, key_t2), 60, 0.05, "t2 to hold its key's lease")
            time.sleep(0.5)  # time passes on purpose: the second must still be waiting after it
            slug = key_of(src_repo, "t2").repo.slug
            assert not waiting.done() and store.list_runs("fake", slug, "t2") == []
            open_gate(a, src_repo)
            one, two = first.result(timeout=120), waiting.result(timeout=120)
    finally:
        store.close()
    assert one.ok and two.ok, (one.run.error, two.run.error)
    assert one.session.branch == two.session.branch == "feat"
    assert one.run.ended_at is not None and two.run.started_at >= one.run.ended_at  # never at once
    assert Path(two.session.worktree).is_relative_to(b.home)


# -- two keys on one branch of one machine ----------------------------------------------------------------


@pytest.fixture
def one_machine(home: Path, store_url: str) -> Settings:
    """One BATON_HOME on the store of ``store_url`` (SQLite, then PostgreSQL)."""
    home.mkdir(parents=True, exist_ok=True)
    return load_settings(overrides={"home": str(home), "store_url": store_url, **FAST}, environ={})


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A bare repository the cache clone's ``feat`` is pushed to after every turn: fast-forward only."""
    path = tmp_path / "origin.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(path)], check=True)
    return path


def push(settings: Settings, repo: Path, origin: Path) -> None:
    """Push ``feat`` from the cache clone, as the forge's publish does; git refuses a non-fast-forward."""
    cache = Workdirs(settings).cache_path(key_of(repo, "t1").repo)
    done = subprocess.run(
        ["git", "push", "--porcelain", str(origin), "refs/heads/feat:refs/heads/feat"],
        cwd=cache,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr  # a non-fast-forward is "[rejected]", exit 1
    assert git(origin, "rev-parse", "feat") == git(cache, "rev-parse", "feat")


def tree_of(settings: Settings, repo: Path, thread: str) -> Path:
    return Workdirs(settings).worktree_path(key_of(repo, thread))


def subjects(worktree: Path) -> list[str]:
    """The subjects of the commits the worktree has checked out, newest first."""
    return git(worktree, "log", "--format=%s").splitlines()


def on_feat(worktree: Path) -> bool:
    return git(worktree, "rev-parse", "--symbolic-full-name", "HEAD") == "refs/heads/feat"


def own(result: RunResult, first: RunResult) -> None:
    """``result`` resumed the conversation ``first`` started (its key's own), and succeeded."""
    assert result.ok, result.run.error
    assert result.run.mode == Mode.RESUME and result.run.session_id_in == first.session.agent_session_id
    assert result.session.worktree == first.session.worktree  # the stable path: never moved


def test_two_keys_on_one_branch_take_turns_on_one_machine(
    one_machine: Settings, src_repo: Path, origin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`baton run -t t1 --branch feat && baton run -t t2 --branch feat --wait 60`, then each again: the
    second key's worktree gets the branch (the first's parked off it), each turn sees the other's
    commits, keeps its own uncommitted work and resumes its own conversation; pushes fast-forward."""
    monkeypatch.setenv("FAKE_AGENT_RUN", WORK)
    settings, full = one_machine, {"access": Access.FULL}
    a1 = go(settings, src_repo, "t1", branch="feat", **full)
    assert a1.ok, a1.run.error
    push(settings, src_repo, origin)
    b1 = go(settings, src_repo, "t2", branch="feat", wait=60, **full)  # the reproduction: it failed here
    assert b1.ok and b1.run.mode == Mode.FRESH, b1.run.error
    assert b1.session.agent_session_id != a1.session.agent_session_id
    t1, t2 = tree_of(settings, src_repo, "t1"), tree_of(settings, src_repo, "t2")
    assert subjects(t2) == ["t2: turn 1", "t1: turn 1", "initial"]  # the first key's commit is here
    assert b1.run.note and f"parked the worktree of {key_of(src_repo, 't1')}" in b1.run.note
    assert on_feat(t2) and not on_feat(t1) and (t1 / "draft-t1.txt").read_text() == "t1 draft\n"
    push(settings, src_repo, origin)

    a2 = go(settings, src_repo, "t1", **full)  # the other order, without --wait (its session has feat)
    own(a2, a1)
    assert subjects(t1) == ["t1: turn 2", "t2: turn 1", "t1: turn 1", "initial"]
    assert (t1 / "draft-t1.txt").read_text() == "t1 draft\nt1 draft\n"  # its uncommitted work, kept
    assert not (t1 / "draft-t2.txt").exists() and on_feat(t1) and not on_feat(t2)
    assert a2.run.note and "gained 1 commit while this worktree was parked" in a2.run.note, a2.run.note
    push(settings, src_repo, origin)

    b2 = go(settings, src_repo, "t2", branch="feat", wait=60, **full)
    own(b2, b1)
    assert subjects(t2)[:2] == ["t2: turn 2", "t1: turn 2"]
    assert (t2 / "draft-t2.txt").read_text() == "t2 draft\nt2 draft\n"
    push(settings, src_repo, origin)
    assert subjects(t2) == git(origin, "log", "--format=%s", "feat").splitlines()
    listing = git(Workdirs(settings).cache_path(key_of(src_repo, "t1").repo), "worktree", "list")
    assert listing.count("[feat]") == 1, listing  # checked out once, in t2's worktree


def test_two_keys_on_one_branch_started_together_the_second_waits_then_runs(
    one_machine: Settings, src_repo: Path, origin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs of two keys on one branch started together, in both orders: the second waits on the
    branch's lease (--wait), then runs on the first's work, in its own conversation."""
    settings, full = one_machine, {"access": Access.FULL}
    store = open_store(settings.resolved_store_url)
    firsts: dict[str, RunResult] = {}
    try:
        for number, (first, second) in enumerate((("t1", "t2"), ("t2", "t1")), start=1):
            monkeypatch.setenv("FAKE_AGENT_RUN", f"{gate(first)}; {WORK}")
            with ThreadPoolExecutor(2) as pool:
                held_run = pool.submit(go, settings, src_repo, first, branch="feat", **full)
                running(store, src_repo, first)
                waiting = pool.submit(go, settings, src_repo, second, branch="feat", wait=120, **full)
                time.sleep(0.5)  # time passes on purpose: the second must still be waiting after it
                slug = key_of(src_repo, second).repo.slug
                assert not waiting.done()
                assert len(store.list_runs("fake", slug, second)) == number - 1  # it has not started
                open_gate(settings, src_repo, thread=first)
                one, two = held_run.result(timeout=120), waiting.result(timeout=120)
            (tree_of(settings, src_repo, first) / ".gate").unlink()
            for result in (one, two):
                if number == 1:
                    assert result.ok and result.run.mode == Mode.FRESH, result.run.error
                    firsts[result.session.thread] = result
                else:
                    own(result, firsts[result.session.thread])
            assert one.run.ended_at is not None and two.run.started_at >= one.run.ended_at  # never at once
            seen = subjects(tree_of(settings, src_repo, second))
            assert seen[:2] == [f"{second}: turn {number}", f"{first}: turn {number}"], seen
            push(settings, src_repo, origin)
    finally:
        store.close()
    assert (tree_of(settings, src_repo, "t1") / "draft-t1.txt").read_text() == "t1 draft\nt1 draft\n"
    assert (tree_of(settings, src_repo, "t2") / "draft-t2.txt").read_text() == "t2 draft\nt2 draft\n"


def agents_of(record: RunRecord) -> list[int]:
    """The live processes of a run's agent (tagged with its ``BATON_RUN_ID``, as baton tags them)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("BATON_RUN_ID") == record.id and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def test_a_key_killed_mid_turn_on_a_shared_branch_loses_nothing_and_the_other_runs(
    one_machine: Settings,
    src_repo: Path,
    origin: Path,
    store_url: str,
    baton_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``baton run -t t1 --branch feat`` killed with SIGKILL mid-turn leaves its worktree on the branch,
    a commit made and uncommitted work: the next key takes the branch once t1's leases expire (its
    worktree parked, checkpointed first), and t1's next turn resumes on top of it with nothing lost."""
    settings, store = one_machine, open_store(store_url)
    env = {**os.environ, **baton_env, "BATON_STORE_URL": store_url, "FAKE_AGENT_RUN": f"{WORK}; {GATE}"}
    args = ["run", "-a", "fake", "-r", str(src_repo), "-t", "t1", "--branch", "feat", "--access", "full"]
    killed = subprocess.Popen(
        [*BATON, *args, "work"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        t1 = tree_of(settings, src_repo, "t1")
        running(store, src_repo, "t1")
        wait_for(lambda: (t1 / "draft-t1.txt").exists(), 60, 0.05, "t1's agent to leave its draft")
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        assert on_feat(t1)  # left on the branch mid-turn
        (dead,) = store.list_runs("fake", key_of(src_repo, "t1").repo.slug, "t1")
        assert agents_of(dead)  # its agent outlived its runner

        monkeypatch.setenv("FAKE_AGENT_RUN", WORK)
        b1 = go(
            settings, src_repo, "t2", branch="feat", wait=60, access=Access.FULL
        )  # after t1's leases expire
        assert b1.ok, b1.run.error
        t2 = tree_of(settings, src_repo, "t2")
        assert subjects(t2) == ["t2: turn 1", "t1: turn 1", "initial"]
        assert not on_feat(t1) and (t1 / "draft-t1.txt").read_text() == "t1 draft\n"  # parked, untouched
        assert not agents_of(dead)  # ended before its worktree was parked: it writes no more
        cache = Workdirs(settings).cache_path(key_of(src_repo, "t1").repo)
        checkpoint = git(cache, "rev-parse", Workdirs(settings).checkpoint_ref(key_of(src_repo, "t1")))
        assert git(cache, "show", f"{checkpoint}:draft-t1.txt") == "t1 draft"  # checkpointed first
        push(settings, src_repo, origin)

        a2 = go(settings, src_repo, "t1", access=Access.FULL)
        assert a2.ok and a2.run.mode == Mode.RESUME, a2.run.error
        assert [r.outcome for r in store.list_runs("fake", a2.run.repo, "t1")][-1] == Outcome.CRASHED
        assert subjects(t1)[:3] == ["t1: turn 2", "t2: turn 1", "t1: turn 1"]
        assert (t1 / "draft-t1.txt").read_text() == "t1 draft\nt1 draft\n"
        push(settings, src_repo, origin)
    finally:
        if killed.poll() is None:
            killed.kill()
        store.close()


def test_uncommitted_work_that_conflicts_with_the_other_keys_commits_is_refused_with_exit_5(
    cli: Callable[..., subprocess.CompletedProcess[str]], src_repo: Path, settings: Settings
) -> None:
    """t1 leaves README.md changed, uncommitted; t2 commits another change to it on the same branch:
    t1's next turn is refused (exit 5) before its agent starts, saying where and what to do, its
    worktree as it was; once the change is put aside it runs on t2's commit."""
    key = ["-a", "fake", "-r", str(src_repo), "--branch", "feat", "--access", "full"]
    left = {"FAKE_AGENT_RUN": "echo mine > README.md"}
    assert cli("run", *key, "-t", "t1", "go", env=left).returncode == 0
    commits = {"FAKE_AGENT_RUN": 'echo theirs > README.md && git commit -qam "t2: readme"'}
    assert cli("run", *key, "-t", "t2", "go", env=commits).returncode == 0
    t1 = tree_of(settings, src_repo, "t1")
    refused = cli("run", *key, "-t", "t1", "again", env=left)
    assert refused.returncode == 5, refused.stderr
    said = " ".join(refused.stderr.split())
    assert "its uncommitted changes conflict with those commits in README.md" in said, said
    assert f"git -C {t1} stash" in said and "nothing was changed" in said
    assert (t1 / "README.md").read_text() == "mine\n" and not on_feat(t1)
    git(t1, "stash", "--quiet")
    again = cli("run", *key, "-t", "t1", "--json", "again", env={"FAKE_AGENT_RUN": "true"})
    assert again.returncode == 0, again.stderr
    assert subjects(t1)[0] == "t2: readme" and on_feat(t1)


@pytest.mark.usefixtures("gated")
def test_a_hostile_branch_name_is_leased_by_its_hash_and_quoted(
    settings: Settings, src_repo: Path, store: Store, tmp_path: Path
) -> None:
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(go, settings, src_repo, "t1", branch=HOSTILE)
        record = running(store, src_repo, "t1")
        slug = key_of(src_repo, "t1").repo.slug
        assert lease_held(store, branch_lease_name(slug, HOSTILE))
        with pytest.raises(BranchBusy) as info:
            go(settings, src_repo, "t2", branch=HOSTILE)
        said = str(info.value)
        assert said.startswith(refused_by(record, src_repo, HOSTILE)) and "\\u202e" in said, said
        open_gate(settings, src_repo)
        result = first.result(timeout=120)
    assert result.ok and result.session.branch == HOSTILE, result.run.error
    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        names = list(conn.execute(sa.select(leases.c.key)).scalars())
    assert all(HOSTILE not in n and "pwned" not in n for n in names)  # no lease is named by the branch
    assert not list(tmp_path.rglob("pwned")) and not list(Path.cwd().glob("pwned"))


def test_a_hand_off_runs_beside_its_running_source_and_onto_its_branch_is_refused(
    settings: Settings, src_repo: Path, store: Store, fake2: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The target of a hand-off works on a branch of its own: it neither waits for the source's run
    nor blocks it; a hand-off asking for the branch the source writes now is refused naming it."""
    assert go(settings, src_repo, "t1", branch="feat").ok  # a conversation to hand off
    monkeypatch.setenv("FAKE_AGENT_RUN", GATE)
    with ThreadPoolExecutor(1) as pool:
        source = pool.submit(go, settings, src_repo, "t1", branch="feat")
        record = running(store, src_repo, "t1")
        with pytest.raises(BranchBusy) as info:  # onto the branch the source writes now
            go(settings, src_repo, "t1", agent=fake2, handoff_from="fake", branch="feat", wait=0)
        assert str(info.value).startswith(refused_by(record, src_repo, "feat"))
        handed = go(settings, src_repo, "t1", agent=fake2, handoff_from="fake", wait=0)
        assert handed.ok and handed.session.branch == "baton/fake2/t1", handed.run.error
        assert not source.done()
        open_gate(settings, src_repo)
        assert source.result(timeout=120).ok


def test_a_fallback_runs_after_the_original_let_go_of_its_leases_on_its_own_branch(
    settings: Settings, src_repo: Path, store: Store, fake2: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``on_limit = fallback:fake2`` on a run with ``--branch``: the original meets its spent quota,
    its run ends (both its leases released), and only then the fallback carries the turn, on its own
    branch (the request's is the original key's, which git checks out in one worktree only)."""
    assert go(settings, src_repo, "t1", branch="feat").ok
    monkeypatch.setenv("FAKE_AGENT_LIMIT_UNTIL", str(int(time.time()) + 600))
    slug = key_of(src_repo, "t1").repo.slug
    seen: dict[str, bool] = {}
    real = runner._run_once

    def watched(request: RunRequest, *args: Any, **kw: Any) -> RunResult:
        if request.agent == fake2:  # the fallback's turn: are the original's leases free by now?
            for what, name in (
                ("key", key_of(src_repo, "t1").id),
                ("branch", branch_lease_name(slug, "feat")),
            ):
                probe = LeaseHolder(store, name, 5.0)
                try:
                    probe.acquire(0)
                    seen[what] = True
                    probe.release()
                except Busy:
                    seen[what] = False
        return real(request, *args, **kw)

    monkeypatch.setattr(runner, "_run_once", watched)
    started = time.monotonic()
    result = go(settings, src_repo, "t1", branch="feat", on_limit=f"fallback:{fake2}", wait=30)
    assert time.monotonic() - started < 60  # no wait on a lease of its own (a busy machine's margin)
    assert seen == {"key": True, "branch": True}
    assert result.ok and result.run.agent == fake2, result.run.error
    assert result.session.branch == f"baton/{fake2}/t1"
    assert [r.agent for r in result.attempts] == ["fake", fake2]
    assert result.attempts[0].outcome == Outcome.RATE_LIMITED
    again = go(settings, src_repo, "t1", branch="feat", on_limit=f"fallback:{fake2}", wait=0)
    assert again.ok and again.run.agent == fake2  # the breaker holds: the fallback again, no refusal
    assert again.session.branch == f"baton/{fake2}/t1"


@pytest.mark.usefixtures("gated")
def test_baton_sync_of_a_key_waits_for_the_branch_another_key_writes(
    settings: Settings, src_repo: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``baton sync`` moves the key's branch: a writer too, refused while another key's run writes it."""
    monkeypatch.delenv("FAKE_AGENT_RUN")
    assert go(settings, src_repo, "t2", branch="feat-2").ok  # t2 works on feat-2
    monkeypatch.setenv("FAKE_AGENT_RUN", GATE)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(go, settings, src_repo, "t1", branch="feat")
        record = running(store, src_repo, "t1")
        # t2's session moved to feat by hand: as if it had been made on it on another machine
        session = store.get_session("fake", record.repo, "t2")
        assert session is not None
        session.branch = "feat"
        store.save_session(session)
        with pytest.raises(BranchBusy) as info:
            sync_key(settings, store, key_of(src_repo, "t2"), SyncHow.REBASE)
        assert str(info.value).startswith(refused_by(record, src_repo, "feat")), str(info.value)
        open_gate(settings, src_repo)
        assert first.result(timeout=120).ok
