"""GitLab as the loop's :class:`~baton.forge.registry.Implementation`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from baton.forge.config import ForgeConfig
from baton.forge.model import ForgeClient
from baton.forge.readiness import MergeClient

if TYPE_CHECKING:
    from baton.forge.delivery import DeliveryReader


class GitLab:
    def client(self, forge: ForgeConfig) -> ForgeClient:
        from baton.forge.gitlab.client import GitLabClient

        return GitLabClient(forge.api_url, forge.token())

    def merge_client(self, client: ForgeClient) -> MergeClient | None:
        from baton.forge.gitlab.client import GitLabClient

        if isinstance(client, GitLabClient):
            from baton.forge.gitlab.merge import GitLabMerge

            return GitLabMerge(client)
        return None

    def identified(self, forge: ForgeConfig) -> ForgeConfig:
        return forge

    def push_env(self, forge: ForgeConfig, repo: str) -> dict[str, str]:
        return {"BATON_GIT_TOKEN": forge.token(), "BATON_GIT_USERNAME": forge.git_username}

    def push_refused(self, forge: ForgeConfig, token: str) -> bool:
        return False

    @property
    def reader(self) -> DeliveryReader:
        from baton.forge.gitlab.intake import GITLAB_READER

        return GITLAB_READER


GITLAB = GitLab()
