"""GitLab's facts: its webhook's headers (:data:`HOOK`), the hook's flags the loop needs
(:data:`HOOK_EVENTS`) and what its ``[forge.<name>]`` table defaults to (:data:`FACTS`: gitlab.com, its
API under ``/api/v4``, git's ``oauth2``, its role names, its nested groups)."""

from __future__ import annotations

import re

from baton.forge.data.kind import KindFacts
from baton.forge.data.model import ForgeKind
from baton.forge.reading.webhook import Forge

# GitLab sends the hook's secret token as it is; its Idempotency-Key (17.4+) stays the same across a
# delivery's retries and resends, its X-Gitlab-Event-UUID (older GitLab's only id) names the event
HOOK = Forge(
    "gitlab",
    ("x-gitlab-event",),
    ("idempotency-key", "x-gitlab-event-uuid"),
    (),
    token_header="x-gitlab-token",
    summary="A GitLab webhook (X-Gitlab-Token, X-Gitlab-Event-UUID): notes, issues, MRs, pipelines, pushes",
)

# the hook's flags the loop needs: notes, issues (labels, assignees, closes), MRs, pipelines, pushes
HOOK_EVENTS = frozenset(
    {"note_events", "issues_events", "merge_requests_events", "pipeline_events", "push_events"}
)

FACTS = KindFacts(
    ForgeKind.GITLAB,
    "GitLab",
    api_suffix="/api/v4",
    api_url="https://gitlab.com/api/v4",
    web_url="https://gitlab.com",
    git_user="oauth2",  # any access token's
    # its role names, as its members are given them, for ``trusted``: the permission each maps to
    roles={"developer": "write", "maintainer": "maintain", "owner": "admin"},
    max_groups=20,  # its subgroups nest at most 20 deep
    numbers_apart=True,  # issue #N and merge request !N
    pr_noun="merge request",
)

# GitLab's own users (lib/users/internal.rb; a number is added when the name was taken: ``ghost1``),
# project and group access tokens' bot users (``project_<id>_bot_<hex>``; older ``project_<id>_bot<n>``),
# service accounts, and the ``*-bot``/``*[bot]`` names the webhook intake counts as bots too: bots,
# whose API user objects (a note's author) carry no ``bot`` flag
_BOT = re.compile(
    r"(?:project|group)_\d+_bot(?:_?[0-9a-f]*)"
    r"|service_account_[a-z0-9_]+"
    r"|(?:ghost|gitlabduo)\d*|.*-bot\d*|.*\[bot\]",
    re.IGNORECASE,
)


def is_bot_login(login: str) -> bool:
    """A GitLab username that is a bot's (the users API and a webhook's ``user`` alike)."""
    return _BOT.fullmatch(login) is not None
