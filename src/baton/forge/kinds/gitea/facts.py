"""Gitea's (and Forgejo's) facts: its webhook's headers (:data:`HOOK`) and what its ``[forge.<name>]``
table defaults to (:data:`FACTS`: no public service, so an address is required; its API under
``/api/v1``; git sends baton's own login)."""

from __future__ import annotations

from baton.forge.data.kind import KindFacts
from baton.forge.data.model import ForgeKind
from baton.forge.reading.webhook import Forge

# Gitea also sends Gogs' and GitHub's headers; Forgejo (a Gitea fork) its own and Gitea's
HOOK = Forge(
    "gitea",
    ("x-gitea-event", "x-forgejo-event", "x-gogs-event", "x-github-event"),
    ("x-gitea-delivery", "x-forgejo-delivery", "x-gogs-delivery", "x-github-delivery"),
    ("x-gitea-signature", "x-forgejo-signature"),
    summary="A Gitea webhook (X-Gitea-Signature or X-Hub-Signature-256); same events as GitHub",
)

FACTS = KindFacts(ForgeKind.GITEA, "Gitea", api_suffix="/api/v1")
