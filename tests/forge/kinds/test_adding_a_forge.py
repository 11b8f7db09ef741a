"""A forge added as docs/architecture.md (Adding a forge) says: its folder (its facts, a client that is a
``ForgeClient``, held in memory here, its implementation) and its one line in ``forge/kinds/registry.py``.
A table of its kind defaults to its facts, read through the registry; the loop is given no client: one
turn (a mention binds the issue, baton pushes and opens the pull request, its status comment is posted)
reaches the forge only through the registry. Its kind, ``tiny``, is new: nothing outside its folder and
its registry line names it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from baton.fleet.execute import AFTER_JOB
from baton.fleet.local import LocalExecutor
from baton.forge.data.config import ForgeConfig, ForgeSettings, RepoConfig
from baton.forge.data.kind import KindFacts
from baton.forge.data.model import (
    Actor,
    Changed,
    Comment,
    FailedCheck,
    ForgeClient,
    ForgeEvent,
    ForgeKind,
    Review,
    ThreadInfo,
    Trigger,
)
from baton.forge.data.records import FeedbackKind
from baton.forge.data.tables import forge_store
from baton.forge.kinds import registry
from baton.forge.kinds.configured import load_forges
from baton.forge.kinds.readiness import MergeClient
from baton.forge.reading.delivery import DeliveryReader, Reader
from baton.forge.reading.events import HOOK_EVENTS
from baton.forge.reading.webhook import Forge
from baton.forge.turn import dispatch
from baton.forge.turn.loop import ForgeLoop
from baton.forge.writes import publish
from baton.models import JobStatus
from baton.settings import Settings
from baton.store import Store
from baton.testing.fake import register_fake
from tests.conftest import git, make_repo, wait_for

# The new forge's facts (step 1, its facts.py): what a table of its kind defaults to, its webhook's headers
FACTS = KindFacts(
    "tiny",
    "Tiny",
    "/api/v1",
    "http://t/api/v1",
    "http://t",
    git_user="tiny",
    roles={"crew": "write"},
)
HOOK = Forge("tiny", ("x-tiny-event",), ("x-tiny-delivery",), ("x-tiny-signature",), summary="A Tiny webhook")


@dataclass
class TinyClient:
    """The new forge's client (step 1, its client.py): one issue, and what baton writes."""

    prs: list[tuple[str, str, str]] = field(default_factory=list)
    posted: dict[int, str] = field(default_factory=dict)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def permission(self, repo: str, login: str) -> str:
        return "write" if login == "alice" else "none"

    def thread(self, repo: str, number: int, *, pr: bool = False) -> ThreadInfo:
        return ThreadInfo(number, False, "open", "Add a greeting", "Please.", "u", Actor("alice"))

    def updated_since(self, repo: str, since: float) -> list[ThreadInfo]:
        return []

    def checks_changed(self, repo: str, sha: str, etag: str | None) -> Changed:
        return Changed(False, etag)

    def comments(
        self, repo: str, number: int, since: float | None = None, *, pr: bool = False
    ) -> list[Comment]:
        return []

    def reviews(self, repo: str, number: int, since: float | None = None) -> list[Review]:
        return []

    def failed_checks(self, repo: str, sha: str, tail_bytes: int = 16_384) -> list[FailedCheck]:
        return []

    def open_pr(self, repo: str, head: str, base: str, title: str, body: str, draft: bool) -> tuple[int, str]:
        self.prs.append((head, base, title))
        return 7, "https://tiny.example/acme/api/pull/7"

    def default_branch(self, repo: str) -> str:
        return "main"

    def post_comment(self, repo: str, number: int, body: str, *, pr: bool = False) -> int:
        comment_id = next(self.ids)
        self.posted[comment_id] = body
        return comment_id

    def edit_comment(
        self, repo: str, comment_id: int, body: str, *, number: int = 0, pr: bool = False
    ) -> None:
        self.posted[comment_id] = body


@dataclass
class Tiny:
    """The new forge's implementation (step 1, its forge.py): what the registry hands the loop."""

    client_made: TinyClient = field(default_factory=TinyClient)
    web_paths: tuple[str, str] = ("issues", "pulls")
    facts: KindFacts = FACTS
    hook_events: frozenset[str] = HOOK_EVENTS
    asked: list[str] = field(default_factory=list)

    def client(self, forge: ForgeConfig) -> ForgeClient:
        self.asked.append(f"client {forge.name}")
        return self.client_made

    def merge_client(self, client: ForgeClient) -> MergeClient | None:
        return None

    def identified(self, forge: ForgeConfig) -> ForgeConfig:
        return forge

    def push_env(self, forge: ForgeConfig, repo: str) -> dict[str, str]:
        self.asked.append(f"push {repo}")
        return {"BATON_GIT_TOKEN": forge.token(), "BATON_GIT_USERNAME": self.facts.git_user or forge.user}

    def push_refused(self, forge: ForgeConfig, token: str) -> bool:
        return False

    def review_identity(self, number: int, review: Review) -> str:
        return f"review:{review.id}"

    @property
    def reader(self) -> DeliveryReader:
        return Reader(HOOK, ForgeKind.GITEA)  # GitHub-shaped payloads: read with Gitea's table


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> Tiny:
    made = Tiny()
    monkeypatch.setitem(registry.IMPLEMENTATIONS, "tiny", made)  # step 2: its one line
    return made


@pytest.fixture
def loop(
    settings: Settings, store: Store, tmp_path: Path, tiny: Tiny, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ForgeLoop]:
    register_fake()
    monkeypatch.setenv("FAKE_AGENT_WRITE", "notes.md")
    monkeypatch.setenv("TINY_TOKEN", "tiny-token")
    src = make_repo(tmp_path / "src", {"README.md": "hello\n"})
    git(tmp_path, "clone", "--bare", "--quiet", str(src), str(tmp_path / "origin.git"))
    forge = ForgeConfig("tiny", "tiny", "http://t/api/v1", "http://t", "TINY_TOKEN", "baton", "@baton")
    repo = RepoConfig(name="acme/api", forge="tiny", agent="fake", clone_url=str(tmp_path / "origin.git"))
    config = ForgeSettings(forges={"tiny": forge}, repos={("tiny", "acme/api"): repo})
    executor = LocalExecutor(settings, store)
    made = ForgeLoop(settings, store, config, executor.submit)  # no clients: the registry makes them
    publish.install(made)
    executor.start()
    yield made
    executor.stop()
    AFTER_JOB.pop("forge", None)


def test_one_turn_reaches_the_added_forge_through_the_registry(
    loop: ForgeLoop, tiny: Tiny, tmp_path: Path
) -> None:
    event = ForgeEvent(
        "tiny",
        "acme/api",
        42,
        FeedbackKind.COMMENT,
        "comment:1",
        Actor("alice"),
        Trigger.MENTION,
        body="@baton please add a greeting",
    )
    assert dispatch.handle(loop, event).status == "accepted"

    def settled() -> bool:
        jobs = loop.store.list_jobs(limit=10)
        store = forge_store(loop.store)
        return bool(jobs) and all(j.status == JobStatus.DONE for j in jobs) and not store.unpublished_turns()

    wait_for(settled, timeout=60)
    binding = forge_store(loop.store).get_binding("tiny", "acme/api", 42)
    assert binding is not None and binding.pr == 7
    assert tiny.client_made.prs == [("baton/fake/issue-42", "main", "Add a greeting")]
    assert "turn 1" in git(tmp_path / "origin.git", "show", "baton/fake/issue-42:notes.md")
    assert any("opened #7" in body for body in tiny.client_made.posted.values())
    assert tiny.asked[0] == "client tiny" and "push acme/api" in tiny.asked


def test_a_table_of_the_added_forge_defaults_to_its_facts(tiny: Tiny, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[forge.tiny]\nkind = "tiny"\nuser = "baton"\n\n[repo."acme/api"]\ntrusted = "crew"\n'
    )
    config = load_forges(tmp_path, environ={})
    forge = config.forges["tiny"]
    assert (forge.api_url, forge.web_url, forge.token_env) == (
        "http://t/api/v1",
        "http://t",
        "BATON_TINY_TOKEN",
    )
    assert config.repos[("tiny", "acme/api")].trusted == "write"  # its role name
    assert forge.kind == "tiny" and registry.facts(forge.kind).pr_noun == "pull request"
    assert registry.readers()["tiny"].forge is HOOK  # what POST /webhooks/tiny reads


def test_each_registry_line_names_the_kind_its_facts_name() -> None:
    """A kind's name is said twice, in its line and in its facts: the two never differ."""
    assert {kind: each.facts.kind for kind, each in registry.IMPLEMENTATIONS.items()} == {
        kind: kind for kind in registry.IMPLEMENTATIONS
    }
    assert list(registry.IMPLEMENTATIONS) == ["github", "gitea", "gitlab"]
