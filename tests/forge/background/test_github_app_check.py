"""``baton forge test`` for a GitHub App against the fake GitHub: the JWT works and baton is the App's
bot, each repository's installation is found and a token minted, the installation's permissions are
held against what the loop needs (each one missing named), the clone and the dry-run push use the
minted token (no BATON_GIT_TOKEN anywhere), and the App's webhook events are checked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from baton.forge.background.check import check_forges
from baton.forge.kinds.configured import load_forges
from baton.forge.turn.loop import ForgeLoop
from baton.settings import Settings
from baton.store import Store
from baton.testing.fake_forge import FakeForge
from tests.forge_fixtures import REPO, SECRET
from tests.github_app_fixtures import app_fake_fixture, configure_app, token_lifetime_fixture  # noqa: F401

W = f"repo github:{REPO}"


@pytest.fixture
def checks(
    fake: FakeForge, settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    monkeypatch.setenv("BATON_WEBHOOK_SECRET", SECRET)
    monkeypatch.delenv("BATON_GIT_TOKEN", raising=False)
    configure_app(settings, fake, "claude")

    def run() -> dict[str, dict[str, Any]]:
        loop = ForgeLoop(settings, store, load_forges(settings.home), lambda _job: None)
        try:
            return {c["what"]: c for c in check_forges(loop)}
        finally:
            loop.close()

    yield run


def test_an_app_with_what_the_loop_needs_passes(fake: FakeForge, checks: Any) -> None:
    found = checks()
    assert all(c["ok"] for c in found.values()), found
    assert fake.app is not None
    assert found["forge github"]["detail"] == (
        f"GitHub App baton (id {fake.app.id}) at {fake.api_url}, as baton[bot]"
    )
    installation = next(iter(fake.app.installations))
    assert found[f"{W} app"]["detail"].startswith(
        f"installation {installation} on acme (selected repositories): a token was minted, good for 59 min"
    )
    assert found[f"{W} permissions"]["detail"] == "the installation has every permission the loop needs"
    assert found[f"{W} clone"]["detail"].endswith(
        "can be cloned with the App's installation token (1 branch)"
    )
    assert found[f"{W} push"]["detail"] == (
        f"baton[bot] can push to {fake.clone_url(REPO)} with the App's installation token (dry run)"
    )
    assert "baton/forge-test-dry-run" not in fake.branches(REPO)
    assert found[f"{W} webhooks"]["ok"]


def test_a_missing_permission_is_named(fake: FakeForge, checks: Any) -> None:
    assert fake.app is not None
    installation = next(iter(fake.app.installations))
    fake.set_installation_permissions(
        installation, {"contents": "write", "issues": "write", "pull_requests": "read", "metadata": "read"}
    )
    found = checks()
    lacking = found[f"{W} permissions"]
    assert not lacking["ok"]
    assert lacking["detail"].startswith(
        "the App's installation lacks pull_requests: write (has read), checks: read (has none), "
        "actions: read (has none), statuses: read (has none): grant them in the App's settings"
    )


def test_a_repository_the_app_is_not_installed_on_is_named(fake: FakeForge, checks: Any) -> None:
    assert fake.app is not None
    fake.uninstall_app(next(iter(fake.app.installations)), notify=False)
    found = checks()
    assert not found[f"{W} app"]["ok"] and f"{W} clone" not in found
    assert found[f"{W} app"]["detail"].startswith(f"GitHub App {fake.app.id} is not installed on {REPO}")


def test_a_wrong_key_or_an_unsubscribed_event_is_said(
    fake: FakeForge, checks: Any, settings: Settings
) -> None:
    assert fake.app is not None
    fake.app.events = [e for e in fake.app.events if e != "check_run"]
    found = checks()
    assert not found[f"{W} webhooks"]["ok"]
    assert "the App's webhook is not subscribed to check_run" in found[f"{W} webhooks"]["detail"]
    other = FakeForge(Path(settings.home) / "other")
    other.make_app()
    (settings.home / "app.pem").write_bytes(other.private_key_pem())
    from baton.forge.kinds.github import app as github_app

    github_app.forget_apps()  # a new process would read the new key; this one is told to
    found = checks()
    assert not found["forge github"]["ok"]
    detail = found["forge github"]["detail"]
    assert "401" in detail and f"the private key file {settings.home / 'app.pem'}" in detail
    assert not [k for k in found if k.startswith("repo ")]
