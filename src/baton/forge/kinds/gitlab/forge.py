"""GitLab as the loop's :class:`~baton.forge.kinds.registry.Implementation`."""

from __future__ import annotations

from baton.forge.data.config import ForgeConfig
from baton.forge.data.model import ForgeClient, Review
from baton.forge.kinds.gitlab.events import GITLAB_READER
from baton.forge.kinds.gitlab.facts import FACTS, HOOK_EVENTS
from baton.forge.kinds.readiness import MergeClient
from baton.forge.kinds.tokenforge import TokenForge
from baton.forge.reading.delivery import DeliveryReader


class GitLab(TokenForge):
    facts = FACTS
    hook_events = HOOK_EVENTS
    web_paths = ("-/issues", "-/merge_requests")  # its issue #N and MR !N are two things

    def client(self, forge: ForgeConfig) -> ForgeClient:
        # lazy: the registry is read for a kind's facts without its client (a run reads its egress)
        from baton.forge.kinds.gitlab.client import GitLabClient

        return GitLabClient(forge.api_url, forge.token())

    def merge_client(self, client: ForgeClient) -> MergeClient | None:
        # lazy: the registry is read for a kind's facts without its client (a run reads its egress)
        from baton.forge.kinds.gitlab.client import GitLabClient
        from baton.forge.kinds.gitlab.merge import GitLabMerge

        if isinstance(client, GitLabClient):
            return GitLabMerge(client)
        return None

    def review_identity(self, number: int, review: Review) -> str:
        return f"review:note-{review.id}"  # no review id: a diff note each (baton.forge.turn.gathering)

    @property
    def reader(self) -> DeliveryReader:
        return GITLAB_READER


GITLAB = GitLab()
