"""Gitea and Forgejo as the loop's :class:`~baton.forge.registry.Implementation`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from baton.forge.config import ForgeConfig
from baton.forge.events import HOOK_EVENTS
from baton.forge.model import ForgeClient, ForgeKind
from baton.forge.readiness import MergeClient
from baton.forge.tokenforge import TokenForge

if TYPE_CHECKING:
    from baton.forge.delivery import DeliveryReader


class Gitea(TokenForge):
    hook_events = HOOK_EVENTS

    def client(self, forge: ForgeConfig) -> ForgeClient:
        from baton.forge.gitea.client import GiteaClient

        return GiteaClient(forge.api_url, forge.token())

    def merge_client(self, client: ForgeClient) -> MergeClient | None:
        from baton.forge.gitea.client import GiteaClient

        if isinstance(client, GiteaClient):
            from baton.forge.gitea.merge import GiteaMerge

            return GiteaMerge(client)
        return None

    @property
    def reader(self) -> DeliveryReader:
        from baton.forge.delivery import READERS

        return READERS[ForgeKind.GITEA]


GITEA = Gitea()
