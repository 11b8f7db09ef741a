"""``baton forge test``: the configuration checked against each forge, as ``doctor`` checks the machine —
the token's variable is set, the API answers, baton's own user may push to each repository, and
webhooks can be verified."""

from __future__ import annotations

import os
from typing import Any

from baton.errors import BadInput
from baton.forge.loop import ForgeLoop
from baton.forge.model import ForgeError

PUSHERS = ("write", "maintain", "admin")


def check_forges(loop: ForgeLoop) -> list[dict[str, Any]]:
    checks = [_check("webhook secret", bool(os.environ.get("BATON_WEBHOOK_SECRET")), _secret_detail())]
    usable: set[str] = set()
    for name, forge in sorted(loop.config.forges.items()):
        try:
            forge.token()
            loop.client(name)
        except BadInput as exc:
            checks.append(_check(f"forge {name}", False, str(exc)))
            continue
        usable.add(name)
        checks.append(
            _check(f"forge {name}", True, f"{forge.kind.value} at {forge.api_url}, as {forge.user}")
        )
    for (forge_name, _), repo in sorted(loop.config.repos.items()):
        if forge_name in usable:
            checks.append(_repo(loop, forge_name, repo.name))
    return checks


def _repo(loop: ForgeLoop, forge_name: str, repo: str) -> dict[str, Any]:
    client, user = loop.client(forge_name), loop.forge(forge_name).user
    what = f"repo {forge_name}:{repo}"
    try:
        branch = client.default_branch(repo)
        permission = client.permission(repo, user)
    except ForgeError as exc:
        return _check(what, False, f"the forge answered: {exc}")
    if permission not in PUSHERS:
        return _check(what, False, f"{user} has {permission} access: baton needs write to push and comment")
    return _check(what, True, f"default branch {branch}; {user} has {permission} access")


def _secret_detail() -> str:
    if os.environ.get("BATON_WEBHOOK_SECRET"):
        return "BATON_WEBHOOK_SECRET is set: deliveries are verified"
    return "BATON_WEBHOOK_SECRET is not set: webhooks are refused (403); only the reconcile finds events"


def _check(what: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"what": what, "ok": ok, "detail": detail}
