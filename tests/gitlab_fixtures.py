"""Shared fixtures of the GitLab tests that run a real service: the fake GitLab with a project and its
members (baton and alice Developers, rita a Reporter), ``baton serve`` with the GitLab forge configured
and the fake's webhooks delivered to it, and ``settled`` — every delivery handled, every turn ended and
published. Use: ``from tests.gitlab_fixtures import REPO, gitlab_fixture, service_fixture, settled``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.forge.data.tables import forge_store
from baton.forge.turn.threads import STATUS_HEAD
from baton.settings import Settings
from baton.testing.fake_gitlab import FakeGitLab
from tests.forge_fixtures import settled as settled  # one wait for every fake forge (re-exported)
from tests.service_fixtures import Service, run_service

SECRET = "gl-webhook-secret"
REPO = "acme/api"
BRANCH = "baton/claude/issue-1"


@pytest.fixture(name="gitlab")
def gitlab_fixture(tmp_path: Path) -> Iterator[FakeGitLab]:
    fake = FakeGitLab(tmp_path / "gitlab", secret=SECRET).start()
    fake.add_project(REPO, {"README.md": "# api\n", "app.py": "print('hi')\n"})
    fake.add_user("baton", "developer")
    fake.add_user("alice", "developer")
    fake.add_user("rita", "reporter")
    yield fake
    fake.stop()
    assert fake.violations == [], fake.violations


def configure(settings: Settings, fake: FakeGitLab, agent: str, ci_budget: int = 2, extra: str = "") -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "config.toml").write_text(
        f"""
[forge.gitlab]
kind = "gitlab"
api_url = "{fake.api_url}"
web_url = "{fake.web_url}"
token_env = "BATON_GIT_TOKEN"
user = "baton"

[repo."{REPO}"]
agent = "{agent}"
ci_budget = {ci_budget}
resolve_threads = true
{extra}"""
    )


@pytest.fixture(name="repo_extra")
def repo_extra_fixture() -> str:
    """More of config.toml after the repository's table (parametrize it: triggers, ...)."""
    return ""


@pytest.fixture(name="service")
def service_fixture(
    settings: Settings, gitlab: FakeGitLab, monkeypatch: pytest.MonkeyPatch, agent: str, repo_extra: str
) -> Iterator[Service]:
    monkeypatch.setenv("BATON_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("BATON_GIT_TOKEN", gitlab.token("baton"))
    configure(settings, gitlab, agent, extra=repo_extra)
    with run_service(dataclasses.replace(settings, forge_reconcile=0)) as service:
        gitlab.deliver_to = f"{service.url}/webhooks/gitlab"
        yield service


def statuses(fake: FakeGitLab, iid: int, mr: bool = False) -> list[str]:
    return [
        n.body for n in fake.notes(REPO, iid, mr=mr) if n.author == "baton" and n.body.startswith(STATUS_HEAD)
    ]


def binding(service: Service, iid: int) -> dict[str, object]:
    found = forge_store(service.store).get_binding("gitlab", REPO, iid, False)
    assert found is not None, f"#{iid} is not bound"
    return found.to_json()
