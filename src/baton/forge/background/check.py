"""``baton forge test``: the configuration checked against each forge, as ``doctor`` checks the machine.
Everything a turn will need (the webhook secret, each forge's token and API, baton's permission and the
check runs on each repository, a clone with the clone credentials, a push with the forge's token, the
webhooks) is tried the way the turn does it, so that "ok" here means a turn can run; each check and what
a warning means: docs/forge.md (Configuration).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from baton.errors import BadInput, GitError
from baton.forge.data.config import ForgeConfig, RepoConfig
from baton.forge.data.model import ForgeError
from baton.forge.kinds import registry
from baton.forge.turn.loop import ForgeLoop
from baton.forge.writes import gitauth
from baton.workspace.gitcmd import redact, run_git
from baton.workspace.workdirs import Workdirs

PUSHERS = ("write", "maintain", "admin")
SAFE_GIT = ["-c", "core.hooksPath=/dev/null", "-c", "credential.helper="]


def check_forges(loop: ForgeLoop) -> list[dict[str, Any]]:
    checks = [_check("webhook secret", bool(os.environ.get("BATON_WEBHOOK_SECRET")), _secret_detail())]
    usable: set[str] = set()
    for name, forge in sorted(loop.config.forges.items()):
        try:
            if forge.app is None:
                forge.token()
            loop.client(name)
            forge = loop.forge(name)  # a GitHub App's own login: its JWT works (GET /app)
            app = registry.implementation(forge.kind).app_checks(forge)
            detail = app.forge_detail(forge) if app else f"{forge.kind} at {forge.api_url}, as {forge.user}"
        except (BadInput, ForgeError) as exc:
            checks.append(_check(f"forge {name}", False, str(exc)))
            continue
        usable.add(name)
        checks.append(_check(f"forge {name}", True, detail))
        checks += _token(loop, name, forge)
    for (forge_name, _), repo in sorted(loop.config.repos.items()):
        if forge_name in usable:
            checks += _repo(loop, forge_name, repo)
    return checks


def _repo(loop: ForgeLoop, forge_name: str, repo: RepoConfig) -> list[dict[str, Any]]:
    client, forge = loop.client(forge_name), loop.forge(forge_name)
    what = f"repo {forge_name}:{repo.name}"
    implementation = registry.implementation(forge.kind)
    app = implementation.app_checks(forge)
    try:
        if app is not None:  # the installation, a token minted, its permissions
            checks, minted = app.repo_checks(what, forge, repo.name)
            if not minted:
                return checks
            branch = client.default_branch(repo.name)
            checks.insert(0, _check(what, True, f"default branch {branch}"))
        else:
            branch = client.default_branch(repo.name)
            checks = [_access(what, forge, branch, client.permission(repo.name, forge.user))]
    except ForgeError as exc:
        return [_check(what, False, f"the forge answered: {exc}")]
    refusal = getattr(client, "check_runs_refusal", None)
    if callable(refusal):
        checks.append(_check_runs(what, refusal, repo.name, branch))
    url = repo.repo_url(forge)
    checks.append(_clone(loop, what, url, forge, repo.name))
    checks.append(_push(loop, what, url, forge, repo.name))
    if app is not None:
        checks.append(app.webhook_check(what, forge, implementation.hook_events))
    else:
        checks.append(_hooks(loop, what, forge_name, forge, repo.name, implementation.hook_events))
    return checks


def _access(what: str, forge: ForgeConfig, branch: str, permission: str) -> dict[str, Any]:
    if permission not in PUSHERS:
        return _check(
            what, False, f"{forge.user} has {permission} access: baton needs write to push and comment"
        )
    return _check(what, True, f"default branch {branch}; {forge.user} has {permission} access")


def _token(loop: ForgeLoop, name: str, forge: ForgeConfig) -> list[dict[str, Any]]:
    """Where the forge tells (GitLab): whom the token acts as — baton's ``user``, or its own notes would
    be someone else's — and whether its scopes let it comment and push (``api``), active, not expiring."""
    client = loop.client(name)
    whoami, scopes = getattr(client, "whoami", None), getattr(client, "token_scopes", None)
    if not callable(whoami) or not callable(scopes):
        return []
    what = f"forge {name} token"
    try:
        me, info = whoami(), scopes()
    except ForgeError as exc:
        return [_check(what, False, f"the forge refused {forge.token_env}: {exc}")]
    if str(me.login).casefold() != forge.user.casefold():
        return [
            _check(
                what,
                False,
                f"{forge.token_env} acts as {me.login}, not as user {forge.user!r}: set user = "
                f"{str(me.login)!r} (baton must know its own notes, which never trigger it)",
            )
        ]
    if not info.active or "api" not in info.scopes:
        held = ", ".join(info.scopes) or "none"
        return [
            _check(what, False, f"{forge.token_env} needs the api scope and to be active (scopes: {held})")
        ]
    expiry = f", expires {info.expires_at}" if info.expires_at else ""
    return [_check(what, True, f"acts as {me.login}; scopes {', '.join(info.scopes)}{expiry}")]


def _check_runs(what: str, refusal: Any, repo: str, branch: str) -> dict[str, Any]:
    try:
        words = refusal(repo, branch)
    except ForgeError as exc:
        return _check(f"{what} checks", False, f"the forge answered: {exc}")
    if words:
        return _check(
            f"{what} checks",
            True,
            f"check runs cannot be read ({words}): CI failures come from commit statuses only "
            "(a GitHub App's token with Checks: read reads both)",
            warn=True,
        )
    return _check(f"{what} checks", True, "check runs and commit statuses can be read")


def _clone(loop: ForgeLoop, what: str, url: str, forge: ForgeConfig, repo: str) -> dict[str, Any]:
    """``git ls-remote`` as a turn's clone authenticates: BATON_GIT_TOKEN through GIT_ASKPASS (a GitHub
    App's installation token)."""
    env = Workdirs(loop.settings).process_env("baton")
    given = "BATON_GIT_TOKEN"
    if forge.app is not None:
        env, given = {**env, **gitauth.push_env(forge, repo)}, "the App's installation token"
    try:
        heads = run_git([*SAFE_GIT, "ls-remote", "--heads", "--", url], cwd=loop.settings.home, env=env)
    except GitError as exc:
        hint = "" if env.get("BATON_GIT_TOKEN") else " (BATON_GIT_TOKEN, the clone credential, is not set)"
        return _check(f"{what} clone", False, f"git cannot read {url}{hint}: {_words(exc)}")
    count = len([line for line in heads.splitlines() if line.strip()])
    branches = "1 branch" if count == 1 else f"{count} branches"
    return _check(f"{what} clone", True, f"{url} can be cloned with {given} ({branches})")


def _push(loop: ForgeLoop, what: str, url: str, forge: ForgeConfig, repo: str) -> dict[str, Any]:
    """A dry-run push with the forge's token, as baton's pushes authenticate; nothing is written.

    A throw-away commit to a branch that does not exist: ``git push --dry-run`` still authenticates to
    the forge's receive-pack as a real push would, so a refused token shows here."""
    workdirs = Workdirs(loop.settings)
    env = {**workdirs.process_env("baton"), **gitauth.push_env(forge, repo)}
    given = "the App's installation token" if forge.app is not None else forge.token_env
    with tempfile.TemporaryDirectory(prefix="baton-forge-test-") as tmp:
        scratch = Path(tmp)
        try:
            run_git(["init", "--quiet", "--bare", str(scratch)], cwd=scratch, env=env)
            tree = run_git(
                ["hash-object", "-t", "tree", "-w", "--stdin"],
                cwd=scratch,
                env={**env, "GIT_DIR": tmp},
                stdin="",
            )
            commit = run_git(
                ["commit-tree", tree, "-m", "baton forge test"], cwd=scratch, env={**env, "GIT_DIR": tmp}
            )
            ref = "refs/heads/baton/forge-test-dry-run"
            run_git(
                [*SAFE_GIT, "push", "--dry-run", "--porcelain", "--", url, f"{commit}:{ref}"],
                cwd=scratch,
                env={**env, "GIT_DIR": tmp},
            )
        except GitError as exc:
            return _check(f"{what} push", False, f"a push with {given} is refused: {_words(exc)}")
    return _check(f"{what} push", True, f"{forge.user} can push to {url} with {given} (dry run)")


def _hooks(
    loop: ForgeLoop, what: str, forge_name: str, forge: ForgeConfig, repo: str, needed: frozenset[str]
) -> dict[str, Any]:
    hooks = getattr(loop.client(forge_name), "webhooks", None)
    if not callable(hooks):
        return _check(
            f"{what} webhooks", True, "the forge does not tell its webhooks: not checked", warn=True
        )
    try:
        found: list[tuple[str, frozenset[str]]] = hooks(repo)
    except ForgeError as exc:
        said = f"the forge shows a repository's webhooks to its admins only ({exc.status} for this token)"
        return _check(f"{what} webhooks", True, f"{said}: not checked", warn=True)
    path = f"/webhooks/{forge.kind}"
    ours = [events for url, events in found if url.rstrip("/").endswith(path)]
    if not ours:
        return _check(
            f"{what} webhooks", False, f"no webhook delivers to …{path}: only the reconcile finds events"
        )
    missing = sorted(needed - ours[0]) if "*" not in ours[0] else []
    if missing:
        return _check(
            f"{what} webhooks", False, f"the webhook to …{path} lacks the events {', '.join(missing)}"
        )
    return _check(f"{what} webhooks", True, f"a webhook delivers every event the loop needs to …{path}")


def _words(exc: GitError) -> str:
    text = " ".join(redact(str(exc)).split())
    return text[-400:]


def _secret_detail() -> str:
    if os.environ.get("BATON_WEBHOOK_SECRET"):
        return "BATON_WEBHOOK_SECRET is set: deliveries are verified"
    return "BATON_WEBHOOK_SECRET is not set: webhooks are refused (403); only the reconcile finds events"


def _check(what: str, ok: bool, detail: str, warn: bool = False) -> dict[str, Any]:
    found: dict[str, Any] = {"what": what, "ok": ok, "detail": detail}
    if warn:
        found["warn"] = True
    return found
