"""Gitea and Forgejo as the loop's :class:`~baton.forge.kinds.registry.Implementation`."""

from __future__ import annotations

from baton.forge.data.config import ForgeConfig
from baton.forge.data.model import ForgeClient, ForgeKind, Review
from baton.forge.kinds.gitea.facts import FACTS, HOOK
from baton.forge.kinds.readiness import MergeClient
from baton.forge.kinds.tokenforge import TokenForge
from baton.forge.reading.delivery import DeliveryReader, Reader
from baton.forge.reading.events import HOOK_EVENTS, gitea_review_identity

READER = Reader(HOOK, ForgeKind.GITEA)  # GitHub-shaped payloads: the loop's shared reading


class Gitea(TokenForge):
    facts = FACTS
    hook_events = HOOK_EVENTS
    web_paths = ("issues", "pulls")

    def client(self, forge: ForgeConfig) -> ForgeClient:
        # lazy: the registry is read for a kind's facts without its client (a run reads its egress)
        from baton.forge.kinds.gitea.client import GiteaClient

        return GiteaClient(forge.api_url, forge.token())

    def merge_client(self, client: ForgeClient) -> MergeClient | None:
        # lazy: the registry is read for a kind's facts without its client (a run reads its egress)
        from baton.forge.kinds.gitea.client import GiteaClient
        from baton.forge.kinds.gitea.merge import GiteaMerge

        if isinstance(client, GiteaClient):
            return GiteaMerge(client)
        return None

    def review_identity(self, number: int, review: Review) -> str:
        # its payload has no review id: webhook and API agree on its PR, commit and text
        return gitea_review_identity(number, review.commit or "", review.body)

    @property
    def reader(self) -> DeliveryReader:
        return READER


GITEA = Gitea()
