"""A spending cap on a forge thread, with the fake agent and the in-memory forge: a turn past the repo's
thread cap parks the thread (its agent never starts; baton's notice says what was spent and how to
raise it), an untrusted `@baton budget` raises nothing, and a trusted one raises the cap and resumes
the thread with the parked turn's instruction, once. The forge's own budgets say the same notice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.caps.model import Caps, Measure, Scope
from baton.caps.tables import cap_store
from baton.fleet.execute import AFTER_JOB
from baton.fleet.local import LocalExecutor
from baton.forge.data.config import ForgeConfig, ForgeSettings, RepoConfig
from baton.forge.data.model import Budget, ForgeKind
from baton.forge.data.records import BindingStatus
from baton.forge.data.tables import forge_store
from baton.forge.turn import budget, dispatch, start
from baton.forge.turn.loop import ForgeLoop
from baton.forge.writes import publish
from baton.settings import Settings
from baton.store import Store
from baton.testing.fake import register_fake
from tests.conftest import git, make_repo
from tests.forge.turn.test_forge_loop import MemoryForge, comment, idle


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """The forge's repository: a bare clone baton fetches from and pushes to."""
    bare = tmp_path / "origin.git"
    git(
        tmp_path,
        "clone",
        "--bare",
        "--quiet",
        str(make_repo(tmp_path / "src", {"README.md": "hi\n"})),
        str(bare),
    )
    return bare


@pytest.fixture
def forge() -> MemoryForge:
    return MemoryForge()


@pytest.fixture
def loop(
    settings: Settings, store: Store, origin: Path, forge: MemoryForge, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ForgeLoop]:
    register_fake()
    monkeypatch.setenv("FAKE_AGENT_WRITE", "notes.md")
    monkeypatch.setenv("TEST_FORGE_TOKEN", "secret-token")
    gh = ForgeConfig(
        "gh", ForgeKind.GITHUB, "http://x/api/v3", "http://x", "TEST_FORGE_TOKEN", "baton-bot", "@baton"
    )
    repo = RepoConfig(
        name="acme/api", forge="gh", agent="fake", clone_url=str(origin), caps=Caps(turns=1), budget=Budget()
    )
    executor = LocalExecutor(settings, store)
    made = ForgeLoop(
        settings,
        store,
        ForgeSettings({"gh": gh}, {("gh", "acme/api"): repo}),
        executor.submit,
        clients={"gh": forge},
    )
    publish.install(made)
    executor.start()
    yield made
    executor.stop()
    AFTER_JOB.pop("forge", None)


def test_a_trusted_budget_reply_raises_the_cap_and_resumes_the_parked_turn_once(
    loop: ForgeLoop, forge: MemoryForge, origin: Path
) -> None:
    assert dispatch.handle(loop, comment(1, "@baton add a greeting")).status == "accepted"
    idle(loop)
    assert dispatch.handle(loop, comment(2, "now make it louder")).status == "accepted"
    idle(loop)
    binding = forge_store(loop.store).get_binding("gh", "acme/api", 42)
    assert (
        binding is not None and binding.status == BindingStatus.NEEDS_HUMAN and binding.note == publish.CAPPED
    )
    [notice] = [c for c in forge.answers() if "baton paused this thread" in c]
    assert "this thread has spent 1 turn of its 1 turn cap; reply `@baton budget +1 turns`" in notice
    assert "**The agent asks" not in notice
    assert len(forge.answers()) == 2  # the first turn's answer, then the notice: the agent did not run
    assert git(origin, "show", "baton/fake/issue-42:notes.md").count("turn ") == 1
    subject = f"fake:{binding.repo_slug}:issue-42"
    # an untrusted actor's budget command raises nothing and resumes nothing
    assert dispatch.handle(loop, comment(3, "@baton budget +100 turns", login="mallory")).status == "dropped"
    assert cap_store(loop.store).raises(Scope.THREAD, subject) == []
    # a trusted one raises the thread's cap and resumes it: the parked turn's instruction runs, once
    assert dispatch.handle(loop, comment(4, "@baton budget +1 turns")).status == "accepted"
    idle(loop)
    [made] = cap_store(loop.store).raises(Scope.THREAD, subject)
    assert (made.measure, made.amount, made.by) == (Measure.TURNS, 1.0, "@alice on gh:acme/api#42")
    jobs = loop.store.list_jobs(limit=10, oldest_first=True)
    assert len(jobs) == 3 and jobs[2].request["prompt"] == jobs[1].request["prompt"]
    assert "now make it louder" in jobs[2].request["prompt"] and "budget +1" not in jobs[2].request["prompt"]
    assert jobs[2].outcome == "succeeded"
    assert git(origin, "show", "baton/fake/issue-42:notes.md").count("turn ") == 2
    binding = forge_store(loop.store).get_binding("gh", "acme/api", 42)
    assert binding is not None and binding.status == BindingStatus.ACTIVE
    # a redelivery of the same comment is a duplicate: the cap is not raised twice
    assert dispatch.handle(loop, comment(4, "@baton budget +1 turns")).status == "duplicate"
    assert len(cap_store(loop.store).raises(Scope.THREAD, subject)) == 1
    # on a thread that waits on nothing, a budget command raises the cap and runs no turn
    assert dispatch.handle(loop, comment(5, "@baton budget +2 turns")).status == "accepted"
    idle(loop)
    assert [r.amount for r in cap_store(loop.store).raises(Scope.THREAD, subject)] == [1.0, 2.0]
    assert len(loop.store.list_jobs(limit=10)) == 3


@pytest.mark.parametrize(
    ("body", "wanted"),
    [
        ("@baton budget +5", (Measure.USD, 5.0)),
        ("  @Baton budget +2.5 usd ", (Measure.USD, 2.5)),
        ("@baton budget +3 turns", (Measure.TURNS, 3.0)),
        ("@baton budget +1000 tokens", (Measure.TOKENS, 1000.0)),
        ("@baton budget +abc", None),
        ("@baton budget -5", None),
        ("@baton budget 5", None),
        ("@baton budget +5 dollars", None),
        ("@baton budget +nan", None),
        ("@baton budget +1e309", None),
        ("@baton budget +2.5 turns", None),
        ("@baton budget +99999999999 usd", None),  # over the maximum
        ("please @baton budget +5", None),
        ("@baton budget +5\n\nand also delete everything", None),
        ("@baton budget +5\x00", None),
        ("@batonx budget +5", None),
        ("@baton budget +\uff15", None),  # a full-width digit is no digit here
        ("@baton budget +5" + " " * 300, None),
    ],
)
def test_a_budget_command_is_read_strictly(body: str, wanted: tuple[Measure, float] | None) -> None:
    assert budget.command(body, "@baton") == wanted


def test_the_forge_budgets_notice_is_the_caps_one(loop: ForgeLoop, forge: MemoryForge) -> None:
    assert dispatch.handle(loop, comment(1, "@baton start")).status == "accepted"
    idle(loop)
    binding = forge_store(loop.store).get_binding("gh", "acme/api", 42)
    assert binding is not None
    start.needs_human(loop, binding, "the thread's daily budget of 20 turns is spent")
    [said] = [c for c in forge.comments_of() if "stopped working on this on its own" in c]
    assert said == (
        "baton stopped working on this on its own: the thread's daily budget of 20 turns is spent; a comment "
        "from someone with write access resumes it (mention @baton or just say what to do), or close it."
    )
