"""GitHub as the loop's :class:`~baton.forge.kinds.registry.Implementation`: a token's client, or a GitHub
App's (its installation tokens, its own login read from GitHub)."""

from __future__ import annotations

from baton.forge.data.config import ForgeConfig
from baton.forge.data.model import ForgeClient, Review
from baton.forge.kinds.appchecks import AppChecks
from baton.forge.kinds.github.facts import FACTS
from baton.forge.kinds.readiness import MergeClient
from baton.forge.kinds.tokenforge import TokenForge
from baton.forge.reading.delivery import DeliveryReader
from baton.forge.reading.events import HOOK_EVENTS


class GitHub(TokenForge):
    facts = FACTS
    hook_events = HOOK_EVENTS
    web_paths = ("issues", "pull")

    def client(self, forge: ForgeConfig) -> ForgeClient:
        # lazy: the registry is read for a kind's facts without its client (a run reads its egress)
        from baton.forge.kinds.github.app import app_client
        from baton.forge.kinds.github.client import GitHubClient

        if forge.app is not None:
            return app_client(forge)
        return GitHubClient(forge.api_url, forge.token())

    def merge_client(self, client: ForgeClient) -> MergeClient | None:
        # lazy: the registry is read for a kind's facts without its client (a run reads its egress)
        from baton.forge.kinds.github.client import GitHubClient
        from baton.forge.kinds.github.merge import GitHubMerge

        if isinstance(client, GitHubClient):
            return GitHubMerge(client.http)
        return None

    def identified(self, forge: ForgeConfig) -> ForgeConfig:
        if forge.app is not None and not (forge.user and forge.mention):
            # lazy: the registry is read for a kind's facts without its client (a run reads its egress)
            from baton.forge.kinds.github.app import identified

            return identified(forge)
        return super().identified(forge)

    def push_env(self, forge: ForgeConfig, repo: str) -> dict[str, str]:
        if forge.app is not None:
            # lazy: the registry is read for a kind's facts without its client (a run reads its egress)
            from baton.forge.kinds.github.app import app_of

            return {"BATON_GIT_TOKEN": app_of(forge).token(repo), "BATON_GIT_USERNAME": FACTS.git_user or ""}
        return super().push_env(forge, repo)

    def push_refused(self, forge: ForgeConfig, token: str) -> bool:
        if forge.app is None:
            return super().push_refused(forge, token)
        # lazy: the registry is read for a kind's facts without its client (a run reads its egress)
        from baton.forge.kinds.github.app import app_of

        app = app_of(forge)
        installation = app.tokens.owner(token)
        return installation is not None and app.tokens.refused(installation, token)

    def app_checks(self, forge: ForgeConfig) -> AppChecks | None:
        if forge.app is None:
            return super().app_checks(forge)
        # lazy: the registry is read for a kind's facts without its client (a run reads its egress)
        from baton.forge.kinds.github import app_check

        return app_check

    def review_identity(self, number: int, review: Review) -> str:
        return f"review:{review.id}"  # its webhook names the review's id

    @property
    def reader(self) -> DeliveryReader:
        # lazy: the registry is read for a kind's facts without its client (a run reads its egress)
        from baton.forge.kinds.github.app_events import READER

        return READER


GITHUB = GitHub()
