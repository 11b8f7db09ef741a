"""Gitea and Forgejo as the loop's :class:`~baton.forge.registry.Implementation`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from baton.forge.config import ForgeConfig
from baton.forge.model import ForgeClient, ForgeKind
from baton.forge.readiness import MergeClient

if TYPE_CHECKING:
    from baton.forge.delivery import DeliveryReader


class Gitea:
    def client(self, forge: ForgeConfig) -> ForgeClient:
        from baton.forge.gitea.client import GiteaClient

        return GiteaClient(forge.api_url, forge.token())

    def merge_client(self, client: ForgeClient) -> MergeClient | None:
        from baton.forge.gitea.client import GiteaClient

        if isinstance(client, GiteaClient):
            from baton.forge.gitea.merge import GiteaMerge

            return GiteaMerge(client)
        return None

    def identified(self, forge: ForgeConfig) -> ForgeConfig:
        return forge

    def push_env(self, forge: ForgeConfig, repo: str) -> dict[str, str]:
        return {"BATON_GIT_TOKEN": forge.token(), "BATON_GIT_USERNAME": forge.git_username}

    def push_refused(self, forge: ForgeConfig, token: str) -> bool:
        return False

    @property
    def reader(self) -> DeliveryReader:
        from baton.forge.delivery import READERS

        return READERS[ForgeKind.GITEA]


GITEA = Gitea()
