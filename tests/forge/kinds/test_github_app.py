"""baton as a GitHub App against the fake GitHub (its App routes checked against GitHub's OpenAPI
description): the JWT (RS256, iat 60 s back, at most 10 minutes), the App's bot as baton's own login,
installations looked up and kept, installation tokens on the API and git, a refused token renewed once
and the request sent again, then the error said naming the App and never a secret."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from baton.errors import BadInput, GitError
from baton.forge.data.appkey import AppKey
from baton.forge.data.config import ForgeConfig, ForgeSettings, RepoConfig
from baton.forge.data.model import ForgeError, ForgeKind
from baton.forge.kinds.github import app as github_app
from baton.forge.kinds.github.app import AppAuth, GitHubApp, app_client, identified, missing
from baton.forge.kinds.github.client import GitHubClient
from baton.forge.turn.loop import ForgeLoop
from baton.forge.writes import gitauth
from baton.settings import Settings
from baton.store import Store
from baton.testing.fake_forge import FakeForge
from baton.workspace import credentials
from baton.workspace.gitcmd import run_git
from baton.workspace.workdirs import Workdirs

REPO = "acme/api"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeForge]:
    forge = FakeForge(tmp_path / "forge").start()
    forge.create_repo(REPO, {"README.md": "# api\n"})
    forge.create_repo("acme/web")
    forge.make_app("baton", token_lifetime=3600)
    forge.install_app([REPO])
    yield forge
    forge.stop()
    assert forge.violations == [], forge.violations


@pytest.fixture
def clients() -> Iterator[list[GitHubClient]]:
    made: list[GitHubClient] = []
    yield made
    for client in made:
        client.close()


@pytest.fixture
def forge(fake: FakeForge, tmp_path: Path) -> Iterator[ForgeConfig]:
    key = tmp_path / "app.pem"
    key.write_bytes(fake.private_key_pem())
    assert fake.app is not None
    config = ForgeConfig(
        "github", ForgeKind.GITHUB, fake.api_url, fake.web_url, "", "", "", AppKey(fake.app.id, key_file=key)
    )
    yield config
    github_app.forget_apps()


def new_client(forge: ForgeConfig, clients: list[GitHubClient]) -> GitHubClient:
    clients.append(app_client(forge))
    return clients[-1]


def test_the_jwt_is_rs256_issued_a_minute_back_and_lives_under_ten_minutes(
    fake: FakeForge, forge: ForgeConfig
) -> None:
    now = [1_800_000_000.0]
    app = GitHubApp(forge, clock=lambda: now[0], keeper=False)
    signed = app.jwt()
    assert fake.app is not None
    claims = jwt.decode(
        signed, fake.app.public_key, algorithms=["RS256"], options={"verify_exp": False, "verify_iat": False}
    )
    assert claims == {"iat": 1_800_000_000 - 60, "exp": 1_800_000_000 + 540, "iss": str(fake.app.id)}
    now[0] += 400
    assert app.jwt() == signed  # kept while it has more than two minutes left
    now[0] += 20
    assert app.jwt() != signed
    app.close()


def test_baton_is_the_apps_bot_read_once(
    fake: FakeForge, forge: ForgeConfig, settings: Settings, store: Store
) -> None:
    found = identified(forge)
    assert (found.user, found.mention) == ("baton[bot]", "@baton")
    assert identified(found) is found  # nothing to read once known
    configured = identified(ForgeConfig(**{**forge.__dict__, "user": "ci-bot", "mention": "@ci"}))
    assert (configured.user, configured.mention) == ("ci-bot", "@ci")
    loop = ForgeLoop(settings, store, ForgeSettings({"github": forge}), lambda _job: None)
    assert loop.forge("github").user == "baton[bot]"
    assert loop.config.forges["github"].mention == "@baton"  # what the webhooks' reader sees from now on
    assert [r.path for r in fake.requests].count("/app") == 1


def test_requests_take_their_repositorys_installation_token(
    fake: FakeForge, forge: ForgeConfig, clients: list[GitHubClient]
) -> None:
    client = new_client(forge, clients)
    assert client.default_branch(REPO) == "main"
    assert client.default_branch(REPO) == "main"
    app = github_app.app_of(forge)
    assert app.lookups == 1 and fake.app is not None and fake.app.minted == 1
    # a repository the App is not installed on: said, naming the App, and not asked again for a minute
    with pytest.raises(ForgeError, match=f"GitHub App {fake.app.id} is not installed on acme/web") as refused:
        client.default_branch("acme/web")
    assert refused.value.status == 404
    with pytest.raises(ForgeError, match="not installed"):
        client.default_branch("acme/web")
    assert app.lookups == 2


def test_an_expired_token_is_renewed_once_and_the_request_sent_again(
    fake: FakeForge, forge: ForgeConfig, clients: list[GitHubClient]
) -> None:
    client = new_client(forge, clients)
    client.default_branch(REPO)
    fake.expire_app_tokens()  # GitHub refuses it now ("Bad credentials"), though baton thought it good
    assert client.default_branch(REPO) == "main"
    statuses = [(r.method, r.path, r.status) for r in fake.requests][-3:]
    assert statuses == [
        ("GET", f"/repos/{REPO}", 401),
        ("POST", f"/app/installations/{next(iter(fake.app.installations))}/access_tokens", 201),  # type: ignore[union-attr]
        ("GET", f"/repos/{REPO}", 200),
    ]


def test_a_token_refused_again_is_said_naming_the_app_never_the_token(
    fake: FakeForge, forge: ForgeConfig, monkeypatch: pytest.MonkeyPatch, clients: list[GitHubClient]
) -> None:
    client = new_client(forge, clients)
    client.default_branch(REPO)
    assert fake.app is not None
    monkeypatch.setattr(fake, "user_by_token", lambda token: None)  # every token refused
    with pytest.raises(ForgeError) as refused:
        client.default_branch(REPO)
    text = str(refused.value)
    assert refused.value.status == 401 and "Bad credentials" in text
    assert f"an installation token of GitHub App {fake.app.id}, renewed once and refused again" in text
    assert not any(token in text for token in fake.app.tokens)
    assert fake.app.minted == 2  # renewed once, not in a loop


def test_a_wrong_key_is_said_naming_where_it_is(fake: FakeForge, forge: ForgeConfig, tmp_path: Path) -> None:
    other = FakeForge(tmp_path / "other")
    other.make_app()
    assert forge.app is not None and forge.app.key_file is not None
    forge.app.key_file.write_bytes(other.private_key_pem())  # another App's key
    with pytest.raises(ForgeError) as refused:
        identified(forge)
    text = str(refused.value)
    assert refused.value.status == 401 and "A JSON web token could not be decoded" in text
    assert f"the private key file {forge.app.key_file}" in text and "BEGIN" not in text
    forge.app.key_file.write_text(
        "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n"
    )
    github_app.forget_apps()
    with pytest.raises(BadInput, match="does not hold an unencrypted private key in PEM form") as bad:
        identified(forge)
    assert "not a key" not in str(bad.value)


def test_the_key_from_a_variable_escaped_newlines_too(fake: FakeForge, forge: ForgeConfig) -> None:
    assert fake.app is not None
    pem = fake.private_key_pem().decode()
    key = AppKey(fake.app.id, key_env="BATON_APP_KEY")
    for value in (pem, pem.replace("\n", "\\n")):
        key.private_key({"BATON_APP_KEY": value})
    with pytest.raises(BadInput, match="BATON_APP_KEY \\(its private_key_env\\) is not set"):
        key.private_key({})
    assert "BEGIN" not in repr(key) and "BEGIN" not in repr(forge)


def test_the_same_token_pushes_and_clones_and_an_expired_one_is_refused_by_git(
    fake: FakeForge, forge: ForgeConfig, settings: Settings, tmp_path: Path
) -> None:
    url = fake.clone_url(REPO)
    repo = RepoConfig(REPO, "github", clone_url=url)
    gitauth.provide(ForgeSettings({"github": forge}, {("github", REPO.casefold()): repo}))
    try:
        env = Workdirs(settings).process_env("baton", url)  # what a turn's clone of it gets
        assert env["BATON_GIT_USERNAME"] == "x-access-token" and env["BATON_GIT_TOKEN"].startswith("ghs_")
        assert "BATON_GIT_TOKEN" not in Workdirs(settings).git_env("baton")  # the agent's: never
        clone = tmp_path / "clone"
        subprocess.run(["git", "clone", "-q", url, str(clone)], env=env, check=True, capture_output=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "-qb", "baton/x"], check=True)
        subprocess.run(["git", "-C", str(clone), "push", "-q", "origin", "baton/x"], env=env, check=True)
        assert fake.pushes[-1].login == "baton[bot]"
        fake.expire_app_tokens()  # refused now, though baton's cache thinks them good for an hour
        done = subprocess.run(["git", "ls-remote", url], env=env, capture_output=True, text=True)
        assert done.returncode != 0 and "Authentication failed" in done.stderr
        # a push (publish, forge test) is sent once more with a renewed token
        heads = gitauth.with_push_env(forge, REPO, env, lambda e: run_git(["ls-remote", url], env=e))
        assert "baton/x" in heads
        assert credentials.env_for("http://elsewhere.invalid/x.git") == {}
    finally:
        gitauth.provide(ForgeSettings())


def test_a_removed_repository_stops_minting_and_an_added_one_needs_no_lookup(
    fake: FakeForge, forge: ForgeConfig
) -> None:
    app = github_app.app_of(forge)
    installation = app.installation(REPO)
    app.learned(installation, removed=[REPO])
    with pytest.raises(ForgeError, match="not installed"):
        app.token(REPO)
    app.learned(installation, added=["acme/web"])
    fake.add_to_installation(installation, ["acme/web"], notify=False)
    assert app.token("acme/web").startswith("ghs_") and app.lookups == 1
    app.uninstalled(installation)
    assert app.tokens.peek(installation) is None


def test_the_permissions_the_loop_needs_are_named_when_missing() -> None:
    assert missing({"contents": "write", "pull_requests": "write", "issues": "write", "checks": "read",
                    "actions": "read", "statuses": "read", "metadata": "read"}) == []  # fmt: skip
    assert missing({"contents": "read", "issues": "write", "pull_requests": "admin"}) == [
        "contents: write (has read)",
        "checks: read (has none)",
        "actions: read (has none)",
        "statuses: read (has none)",
        "metadata: read (has none)",
    ]


def test_a_scope_without_a_repository_takes_the_only_installation(
    fake: FakeForge, forge: ForgeConfig
) -> None:
    auth = AppAuth(github_app.app_of(forge))
    assert auth.authorization("/graphql").startswith("Bearer ghs_")
    assert fake.app is not None
    fake.install_app(["acme/web"], account="acme-two")
    github_app.forget_apps()
    with pytest.raises(ForgeError, match="has 2 installations"):
        AppAuth(github_app.app_of(forge)).authorization("/graphql")


def test_tokens_renew_in_the_background_while_they_are_used(
    fake: FakeForge, forge: ForgeConfig, clients: list[GitHubClient]
) -> None:
    """Tokens of two seconds, a request every 0.1 s for four and a half seconds (each token outlived
    twice over): every request answered, and almost none waited for a mint (the first; perhaps one on a
    loaded machine)."""
    assert fake.app is not None
    fake.app.token_lifetime = 2
    client = new_client(forge, clients)
    app = github_app.app_of(forge)
    deadline = time.monotonic() + 4.5
    while time.monotonic() < deadline:
        assert client.default_branch(REPO) == "main"
        time.sleep(0.1)
    assert fake.app.minted >= 3 and app.tokens.waits <= 2
    assert not [r for r in fake.requests if r.status == 401]


def test_a_git_credential_that_cannot_be_minted_is_a_git_error(fake: FakeForge, forge: ForgeConfig) -> None:
    repo = RepoConfig("acme/web", "github")
    gitauth.provide(ForgeSettings({"github": forge}, {("github", "acme/web"): repo}))
    try:
        with pytest.raises(GitError, match=r"no installation token for acme/web: .*not installed"):
            credentials.env_for(repo.repo_url(forge))
    finally:
        gitauth.provide(ForgeSettings())
