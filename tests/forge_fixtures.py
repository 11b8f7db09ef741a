"""Shared fixtures of the forge tests that run a real service: the fake GitHub, a ``baton serve`` with
its forge configured and the fake's webhooks delivered to it, the mock model of the module's
``agent``, and ``settled`` — wait until every delivery was handled and every turn ended and published.

Use from a test module::

    from tests.forge_fixtures import REPO, fake_fixture, forge_service_fixture, settled  # noqa: F401
    # and agent_fixture, model_fixture (the mock model of the agent; default claude)
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.forge.data.records import DeliveryStatus
from baton.forge.data.tables import delivery_store, forge_store
from baton.forge.turn.threads import STATUS_HEAD
from baton.models import JobStatus
from baton.settings import Settings
from baton.testing.fake_forge import FakeForge
from baton.testing.fake_gitlab import FakeGitLab
from tests.conftest import MOCKS, wait_for
from tests.service_fixtures import Service, run_service
from tests.support.fake_gitea import FakeGitea

SECRET = "webhook-secret"
REPO = "acme/api"


def open_gate(home: Path, number: int, agent: str = "fake") -> None:
    """Let the held turns of the thread of issue or PR ``number`` in ``home`` go on (this one, the next)."""
    pattern = f"worktrees/{agent}/**/*-{number}"
    wait_for(lambda: list(home.glob(pattern)), timeout=30, what=f"the worktree of #{number}")
    [worktree] = home.glob(pattern)
    (worktree / ".gate").write_text("go\n")


@pytest.fixture(name="forge_kind")
def forge_kind_fixture() -> str:
    """Which forge the fake is: github (the default) or gitea (parametrize it)."""
    return "github"


@pytest.fixture(name="fake")
def fake_fixture(tmp_path: Path, forge_kind: str) -> Iterator[FakeForge]:
    kind = FakeGitea if forge_kind == "gitea" else FakeForge
    forge = kind(tmp_path / "forge", secret=SECRET).start()
    forge.create_repo(REPO, {"README.md": "# api\n", "app.py": "print('hi')\n"})
    forge.add_user("baton-bot")
    # Gitea answers a collaborator's permission only to an admin of the repository
    forge.set_permission(REPO, "baton-bot", "admin" if forge_kind == "gitea" else "write")
    forge.set_permission(REPO, "alice", "write")
    forge.set_permission(REPO, "mallory", "read")
    yield forge
    forge.stop()
    assert forge.violations == [], forge.violations


def configure(
    settings: Settings, fake: FakeForge, agent: str, ci_budget: int = 2, extra: str = "", access: str = "edit"
) -> None:
    """The forge tables of config.toml for the fake (the forge is named after its kind)."""
    kind = kind_of(fake)
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "config.toml").write_text(
        f"""
[forge.{kind}]
kind = "{kind}"
api_url = "{fake.api_url}"
web_url = "{fake.web_url}"
token_env = "BATON_GIT_TOKEN"
user = "baton-bot"
mention = "@baton"

[repo."{REPO}"]
forge = "{kind}"
agent = "{agent}"
access = "{access}"
ci_budget = {ci_budget}
clone_url = "{fake.clone_url(REPO)}"
{extra}"""
    )


@pytest.fixture(name="forge_service")
def forge_service_fixture(
    settings: Settings,
    fake: FakeForge,
    monkeypatch: pytest.MonkeyPatch,
    agent: str,
    request: pytest.FixtureRequest,
) -> Iterator[Service]:
    """``baton serve`` over the fake; a test parametrized with ``forge_extra`` (and taking it) adds
    that text to config.toml after the repository's table (triggers, ...); one with ``forge_access``
    sets the repository's access (default ``edit``)."""
    monkeypatch.setenv("BATON_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("BATON_GIT_TOKEN", fake.token("baton-bot"))
    extra = request.getfixturevalue("forge_extra") if "forge_extra" in request.fixturenames else ""
    access = request.getfixturevalue("forge_access") if "forge_access" in request.fixturenames else "edit"
    configure(settings, fake, agent, extra=extra, access=access)
    settings = dataclasses.replace(settings, forge_reconcile=0)  # the test reconciles when it wants
    with run_service(settings) as service:
        fake.deliver_to = f"{service.url}/webhooks/{kind_of(fake)}"
        yield service


def settled(service: Service, fake: FakeForge | FakeGitLab, turns: int) -> None:
    """``turns`` turns submitted, every one ended and published, no event waiting (any fake forge:
    its webhooks delivered first)."""
    fake.settle()

    def done() -> bool:
        jobs = service.store.list_jobs(limit=100)
        return (
            len(jobs) >= turns
            and all(j.status == JobStatus.DONE for j in jobs)
            and not forge_store(service.store).unpublished_turns()
            and not forge_store(service.store).pending_forge_threads()
            and not delivery_store(service.store).list_deliveries_by_status(DeliveryStatus.PENDING)
        )

    try:
        wait_for(done, timeout=float(os.environ.get("FORGE_E2E_WAIT", "180")), what=f"{turns} turns")
    except AssertionError as exc:  # say where the loop stopped
        deliveries = [
            (d.event, d.status.value, d.result)
            for d in delivery_store(service.store).list_deliveries(limit=10)
        ]
        jobs = [(j.id, j.status.value, j.outcome, j.error) for j in service.store.list_jobs(limit=10)]
        # what the fake sent and the answers it got (0: none within its timeout), where it keeps them
        sent = [(d.event, d.statuses) for d in getattr(fake, "deliveries", [])[-10:]]
        raise AssertionError(f"{exc}\ndeliveries: {deliveries}\njobs: {jobs}\nsent: {sent}") from None
    assert len(service.store.list_jobs(limit=100)) == turns


def kind_of(fake: FakeForge) -> str:
    return "gitea" if isinstance(fake, FakeGitea) else "github"


def statuses(fake: FakeForge, number: int | None = None) -> list[str]:
    """The bodies of baton's status comments (one per thread) on ``number`` (every one: None)."""
    return [c.body for c in fake.comments(REPO, number, login="baton-bot") if c.body.startswith(STATUS_HEAD)]


def answers(fake: FakeForge, number: int) -> list[str]:
    """The bodies of the agent's answers baton posted on ``number`` (``reply = "comment"``), oldest first."""
    return [c.body for c in fake.comments(REPO, number, login="baton-bot") if c.body.startswith("<sub>`")]


def binding_of(service: Service, number: int, forge: str = "github") -> dict[str, object]:
    found = forge_store(service.store).get_binding(forge, REPO, number)
    assert found is not None, f"#{number} is not bound"
    return found.to_json()


@pytest.fixture(name="agent")
def agent_fixture() -> str:
    return "claude"


@pytest.fixture(name="model")
def model_fixture(agent: str, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    module, name = MOCKS[agent]
    with getattr(importlib.import_module(module), name)() as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        server.configure_home(settings.home / "homes" / agent)
        yield server
