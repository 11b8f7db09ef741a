"""Gitea and Forgejo as the loop's :class:`~baton.forge.registry.Implementation`."""

from __future__ import annotations

from baton.forge.config import ForgeConfig
from baton.forge.delivery import READERS, DeliveryReader
from baton.forge.events import HOOK_EVENTS
from baton.forge.gitea.client import GiteaClient
from baton.forge.gitea.merge import GiteaMerge
from baton.forge.model import ForgeClient, ForgeKind
from baton.forge.readiness import MergeClient
from baton.forge.tokenforge import TokenForge


class Gitea(TokenForge):
    hook_events = HOOK_EVENTS

    def client(self, forge: ForgeConfig) -> ForgeClient:
        return GiteaClient(forge.api_url, forge.token())

    def merge_client(self, client: ForgeClient) -> MergeClient | None:
        if isinstance(client, GiteaClient):
            return GiteaMerge(client)
        return None

    @property
    def reader(self) -> DeliveryReader:
        return READERS[ForgeKind.GITEA]


GITEA = Gitea()
