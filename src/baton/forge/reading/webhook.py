"""What a forge's webhook says, checked and read: the signature over the raw body (HMAC-SHA256,
compared in constant time), and the payload of an event that cleans up — which repository (its slugs)
and which branch. Pure functions: :mod:`baton.forge.reading.delivery` reads a whole delivery with them, the
background work is in :mod:`baton.forge.background.delivery_pool` and the routes in
:mod:`baton.service.webhooks`. Headers are any mapping whose ``get`` takes lower-case names (the routes pass
Starlette's, which matches names in any case)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from baton.errors import BadInput
from baton.keys import parse_repo

_SCP = re.compile(r"(?:(?P<user>[^@/\s]+)@)?(?P<host>[A-Za-z0-9.-]+):(?P<path>(?!//)[^\\\s]+)")


@dataclass(frozen=True)
class Forge:
    """Where a forge puts the event name, the delivery id and the signature (each forge's own: its
    package's ``facts.HOOK``)."""

    name: str
    event_headers: tuple[str, ...]
    delivery_headers: tuple[str, ...]
    plain_signatures: tuple[str, ...]  # headers carrying the bare hex digest (Gitea's, Forgejo's)
    token_header: str | None = None  # GitLab's: the secret itself (X-Gitlab-Token), not a signature
    summary: str = ""  # what its route says of it (the OpenAPI document)


@dataclass(frozen=True)
class Target:
    """What a delivery cleans up: sessions of any of these repo slugs working on ``branch``."""

    repos: tuple[str, ...]
    branch: str
    merged: bool = False  # a merged pull request: threads stacked on the branch move to the default branch

    def to_json(self) -> dict[str, Any]:
        return {"repos": list(self.repos), "branch": self.branch, "merged": self.merged}


@dataclass(frozen=True)
class Ignored:
    """Why a delivery (or one reading of it) asks nothing: stored as the delivery's ``ignored``."""

    reason: str

    def __str__(self) -> str:
        return self.reason


class Malformed(ValueError):
    """A signed payload that lacks what its event needs (400)."""


# -- verifying --------------------------------------------------------------------------------------


def signature(secret: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``body`` under ``secret`` (what both forges send)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def claimed_signatures(forge: Forge, headers: Mapping[str, str]) -> list[str]:
    """The hex digests the request claims; GitHub's header must carry its ``sha256=`` prefix."""
    claims = []
    github = headers.get("x-hub-signature-256")
    if github is not None and github.startswith("sha256="):
        claims.append(github.removeprefix("sha256="))
    claims.extend(plain for name in forge.plain_signatures if (plain := headers.get(name)) is not None)
    return claims


def verified(secret: str, body: bytes, claims: list[str]) -> bool:
    """Any claim equals the body's HMAC, compared in constant time (a truncated one never does)."""
    expected = signature(secret, body).encode()
    # every claim is compared (no early exit), and bytes avoid compare_digest's TypeError on non-ASCII
    results = [hmac.compare_digest(expected, c.strip().lower().encode("latin-1", "replace")) for c in claims]
    return any(results)


def token_verified(secret: str, claim: str | None) -> bool:
    """GitLab's ``X-Gitlab-Token`` equals the secret, compared in constant time (bytes: any claim)."""
    if claim is None:
        return False
    return hmac.compare_digest(secret.encode(), claim.encode("utf-8", "replace"))


def authentic(forge: Forge, secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """The delivery is the forge's: its token (GitLab) or its signature over ``body`` (the others)."""
    if forge.token_header is not None:
        return token_verified(secret, headers.get(forge.token_header))
    return verified(secret, body, claimed_signatures(forge, headers))


def refused(forge: Forge) -> str:
    """Why a delivery :func:`authentic` refused is refused, in the forge's terms: GitLab sends a token
    (the secret itself), not a signature."""
    if forge.token_header is not None:
        header = "-".join(word.capitalize() for word in forge.token_header.split("-"))  # X-Gitlab-Token
        return f"missing or wrong {header} (it must be the webhook secret)"
    return "missing or wrong signature"


# -- reading the payload ----------------------------------------------------------------------------


def payload_of(body: bytes, content_type: str) -> dict[str, Any]:
    """The JSON object of the body; both forges can also send it form-encoded as ``payload=``."""
    try:
        if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            body = parse_qs(body.decode("utf-8"), strict_parsing=True)["payload"][0].encode()
        data = json.loads(body)
    except (ValueError, KeyError) as exc:
        raise Malformed(f"the body is not a JSON payload: {exc}") from exc
    if not isinstance(data, dict):
        raise Malformed("the payload is not a JSON object")
    return data


def _field(data: dict[str, Any], name: str, kind: type, where: str = "payload") -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or (kind is str and not value):
        raise Malformed(f"{where}.{name} is missing or not a {kind.__name__}")
    return value


def repo_slug(url: str) -> str | None:
    """The slug of a repository URL (http, https, ssh, git or scp-like), or None. Never a local path or
    a ``file://`` URL: a payload must not make baton look at its own disk."""
    scp = _SCP.fullmatch(url) if "://" not in url else None
    if scp:
        url = f"ssh://{scp['user'] + '@' if scp['user'] else ''}{scp['host']}/{scp['path']}"
    try:
        if urlsplit(url).scheme not in ("http", "https", "ssh", "git"):
            return None
        return parse_repo(url).slug
    except (ValueError, BadInput):
        return None


def repo_slugs(repository: Any, where: str) -> tuple[str, ...]:
    if not isinstance(repository, dict):
        raise Malformed(f"{where} is missing or not an object")
    urls = [repository.get(name) for name in ("clone_url", "ssh_url", "html_url")]
    slugs = dict.fromkeys(s for u in urls if isinstance(u, str) and (s := repo_slug(u)))
    if not slugs:
        raise Malformed(f"{where} has no clone_url, ssh_url or html_url naming a repository")
    return tuple(slugs)


def branch_name(ref: str) -> str:
    branch = ref.removeprefix("refs/heads/")
    if not branch or len(branch) > 255 or any(ord(c) < 32 or c == "\x7f" for c in branch):
        raise Malformed("the branch name is empty, too long or has control characters")
    return branch


def _on_delete(p: dict[str, Any]) -> Target | Ignored:
    ref_type = _field(p, "ref_type", str)
    if ref_type != "branch":
        return Ignored(f"delete of a {ref_type}, not a branch")
    return Target(repo_slugs(p.get("repository"), "payload.repository"), branch_name(_field(p, "ref", str)))


def _on_pull_request(p: dict[str, Any]) -> Target | Ignored:
    action = _field(p, "action", str)
    if action != "closed":
        return Ignored(f"pull_request action {action!r} does not clean up")
    head = _field(_field(p, "pull_request", dict), "head", dict, "payload.pull_request")
    branch = branch_name(_field(head, "ref", str, "payload.pull_request.head"))
    if "repo" in head and head["repo"] is None:  # the fork was deleted: its branches went with it
        return Ignored("the pull request's head repository is gone")
    # the head branch lives in the head repository (a fork's own, for a PR from a fork)
    repository = head["repo"] if "repo" in head else p.get("repository")
    merged = p["pull_request"].get("merged") is True
    return Target(repo_slugs(repository, "payload.pull_request.head.repo"), branch, merged)


def _on_push(p: dict[str, Any]) -> Target | Ignored:
    if p.get("deleted") is not True:
        return Ignored("push that does not delete a branch")
    ref = _field(p, "ref", str)
    if not ref.startswith("refs/heads/"):
        return Ignored(f"push deleting {ref!r}, not a branch")
    return Target(repo_slugs(p.get("repository"), "payload.repository"), branch_name(ref))


EVENTS: dict[str, Callable[[dict[str, Any]], Target | Ignored]] = {
    "delete": _on_delete,
    "pull_request": _on_pull_request,
    "push": _on_push,
}


def classify(event: str, payload: dict[str, Any]) -> Target | Ignored:
    """What the event cleans up, or why it is ignored; :class:`Malformed` when it lacks fields."""
    handler = EVENTS.get(event)
    return handler(payload) if handler else Ignored(f"event {event!r} does not clean up")
