"""What the configuration needs to know of a forge kind (:class:`KindFacts`): its public addresses, where
its API sits under its web address, the user name git sends with its token, its role names, how deep
a repository's owner may nest, whether it is reached as an App. Each kind states its own in its package
(``forge/kinds/<kind>/facts.py``); :func:`baton.forge.kinds.configured.load_forges` hands them to
:func:`baton.forge.data.config.read_forges`, so this wing reads them without importing a forge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class KindFacts:
    """One forge kind's facts, as its ``[forge.<name>]`` table is read."""

    kind: str  # its name: the ``kind`` of ``[forge.<name>]``, and its webhook's ``/webhooks/<kind>``
    title: str  # how messages name it: "GitLab"
    api_suffix: str  # its REST API's path under a self-hosted web address: "/api/v4"
    api_url: str | None = None  # its public service's API; None: the table must name one
    web_url: str | None = None  # its public service's web address
    git_user: str | None = None  # the user name git sends with a token; None: baton's own login
    roles: Mapping[str, str] = field(default_factory=dict)  # its role names ``trusted`` takes: permission
    max_groups: int = 0  # how deep a repository's owner may nest (GitLab's subgroups); 0: owner/name
    apps: bool = False  # whether it may be reached as an App (``app_id``): GitHub's
    # its issues and pull (merge) requests are numbered apart (GitLab's #3 and !3 are two things;
    # GitHub's and Gitea's share one sequence): every read and write then says which it means
    numbers_apart: bool = False
    pr_noun: str = "pull request"  # what it calls a pull request

    def ref(self, number: int, pr: bool) -> str:
        """How the forge writes a reference to issue or pull request ``number``: GitLab's merge request
        is ``!N`` (its ``#N`` links to the issue of that number); the others' ``#N`` is either."""
        return f"!{number}" if pr and self.numbers_apart else f"#{number}"


Kinds = Mapping[str, KindFacts]  # every registered kind's facts, in the registry's order
