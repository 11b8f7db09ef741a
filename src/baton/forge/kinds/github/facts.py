"""GitHub's facts: its webhook's headers (:data:`HOOK`) and what its ``[forge.<name>]`` table defaults to
(:data:`FACTS`: github.com, GitHub Enterprise Server's ``/api/v3``, git's ``x-access-token``, Apps)."""

from __future__ import annotations

from baton.forge.data.kind import KindFacts
from baton.forge.data.model import ForgeKind
from baton.forge.reading.webhook import Forge

HOOK = Forge(
    "github",
    ("x-github-event",),
    ("x-github-delivery",),
    (),
    summary="A GitHub webhook (X-Hub-Signature-256): branch deleted, PR closed, push deleting a branch",
)

FACTS = KindFacts(
    ForgeKind.GITHUB,
    "GitHub",
    api_suffix="/api/v3",
    api_url="https://api.github.com",
    web_url="https://github.com",
    git_user="x-access-token",  # any token's
    apps=True,
)
