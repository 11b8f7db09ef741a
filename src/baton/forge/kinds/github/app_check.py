"""``baton forge test`` for a GitHub App (:mod:`baton.forge.background.check` calls these): the JWT works
(``GET /app``: the App's slug, its bot, the events its webhook is subscribed to), each repository's
installation is found, a token is minted for it, and the installation's permissions (what the minted
token carries) are held against what the loop needs (:data:`~baton.forge.kinds.github.app.REQUIRED`), each
one missing named. The clone and the push then run with that token.
"""

from __future__ import annotations

from typing import Any

from baton.forge.data.config import ForgeConfig
from baton.forge.kinds.github.app import app_of, missing


def forge_detail(forge: ForgeConfig) -> str:
    """How the forge's line names an App (its identity was read already: ``loop.forge``)."""
    found = app_of(forge).identity()
    return f"GitHub App {found.slug} (id {found.app_id}) at {forge.api_url}, as {forge.user}"


def repo_checks(what: str, forge: ForgeConfig, repo: str) -> tuple[list[dict[str, Any]], bool]:
    """The installation and its permissions on ``repo``; whether a token could be minted (the clone
    and push checks need one)."""
    app = app_of(forge)
    info = app.installation_info(repo)
    if info is None:
        return [
            _check(
                f"{what} app",
                False,
                f"GitHub App {forge.app.app_id if forge.app else '?'} is not installed on {repo}: "
                "install it there (the App's page: Install App, or Configure to add the repository)",
            )
        ], False
    account = info.get("account") if isinstance(info.get("account"), dict) else {}
    minted = app.minted(repo)
    left = max(0, int(minted.expires_at - app.clock()))
    found = _check(
        f"{what} app",
        True,
        f"installation {info['id']} on {str((account or {}).get('login') or '?')[:100]} "
        f"({str(info.get('repository_selection') or '?')[:20]} repositories): a token was minted, "
        f"good for {left // 60} min {left % 60} s",
    )
    permissions = minted.details.get("permissions") or info.get("permissions") or {}
    lacking = missing(permissions if isinstance(permissions, dict) else {})
    if lacking:
        return [
            found,
            _check(
                f"{what} permissions",
                False,
                f"the App's installation lacks {', '.join(lacking)}: grant them in the App's settings "
                "(Permissions & events), then accept them on the installation",
            ),
        ], True
    return [
        found,
        _check(f"{what} permissions", True, "the installation has every permission the loop needs"),
    ], True


def webhook_check(what: str, forge: ForgeConfig, needed: frozenset[str]) -> dict[str, Any]:
    """An App's webhook is the App's own (its settings), not the repository's: its events are read
    from ``GET /app``."""
    events = app_of(forge).identity().events
    lacking = sorted(needed - events)
    if lacking:
        return _check(
            f"{what} webhooks",
            False,
            f"the App's webhook is not subscribed to {', '.join(lacking)} (the App's settings: "
            "Permissions & events, Subscribe to events)",
        )
    return _check(f"{what} webhooks", True, "the App's webhook is subscribed to every event the loop needs")


def _check(what: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"what": what, "ok": ok, "detail": detail}
