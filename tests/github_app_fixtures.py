"""Fixtures of the tests that run baton as a GitHub App against the fake GitHub: the fake with its App
installed on ``acme/api`` (tokens living ``token_lifetime`` seconds: the module's fixture, default an
hour), config.toml naming the App by ``app_id`` and ``private_key_file`` (no token anywhere: not even
``BATON_GIT_TOKEN``, so every clone and push must use the App's installation tokens), and a ``baton
serve`` receiving the fake's webhooks. Use from a test module::

    from tests.github_app_fixtures import app_fake_fixture, app_service_fixture  # noqa: F401
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.forge.data.config import ForgeSettings
from baton.forge.kinds.github import app as github_app
from baton.forge.writes import gitauth
from baton.settings import Settings
from baton.testing.fake_forge import FakeForge
from tests.forge_fixtures import REPO, SECRET
from tests.service_fixtures import Service, run_service


@pytest.fixture(name="token_lifetime")
def token_lifetime_fixture() -> float:
    return 3600.0


@pytest.fixture(name="fake")
def app_fake_fixture(tmp_path: Path, token_lifetime: float) -> Iterator[FakeForge]:
    forge = FakeForge(tmp_path / "forge", secret=SECRET).start()
    forge.create_repo(REPO, {"README.md": "# api\n", "app.py": "print('hi')\n"})
    forge.make_app("baton", token_lifetime=token_lifetime)
    forge.install_app([REPO])
    forge.set_permission(REPO, "alice", "write")
    forge.set_permission(REPO, "mallory", "read")
    yield forge
    forge.stop()
    github_app.forget_apps()
    gitauth.provide(ForgeSettings())
    assert forge.violations == [], forge.violations


def configure_app(settings: Settings, fake: FakeForge, agent: str, ci_budget: int = 2) -> None:
    """config.toml for the fake as a GitHub App: its key in ``$BATON_HOME/app.pem``, no user, no
    mention (the App's bot, ``baton[bot]``, and ``@baton``, read from the fake)."""
    assert fake.app is not None
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "app.pem").write_bytes(fake.private_key_pem())
    (settings.home / "config.toml").write_text(
        f"""
[forge.github]
kind = "github"
api_url = "{fake.api_url}"
web_url = "{fake.web_url}"
app_id = {fake.app.id}
private_key_file = "app.pem"

[repo."{REPO}"]
forge = "github"
agent = "{agent}"
access = "edit"
ci_budget = {ci_budget}
clone_url = "{fake.clone_url(REPO)}"
"""
    )


@pytest.fixture(name="app_service")
def app_service_fixture(
    settings: Settings, fake: FakeForge, monkeypatch: pytest.MonkeyPatch, agent: str
) -> Iterator[Service]:
    monkeypatch.setenv("BATON_WEBHOOK_SECRET", SECRET)
    for name in ("BATON_GIT_TOKEN", "BATON_GITHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    configure_app(settings, fake, agent)
    settings = dataclasses.replace(settings, forge_reconcile=0)  # the test reconciles when it wants
    with run_service(settings) as service:
        fake.deliver_to = f"{service.url}/webhooks/github"
        yield service
