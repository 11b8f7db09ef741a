"""Which forge implementation serves a configured forge: the one place that maps a kind's name (the
``kind`` of ``[forge.<name>]``) to its package (:data:`IMPLEMENTATIONS`: one line a forge, all of it). An
implementation carries its kind's facts (:func:`kinds`: what its configuration defaults to) and
makes the forge's :class:`~baton.forge.data.model.ForgeClient`, its merge policy's
:class:`~baton.forge.kinds.readiness.MergeClient`, reads the forge's own login where the configuration leaves
it to the forge, and gives a push its credentials. Its webhook deliveries are read by its
:class:`~baton.forge.reading.delivery.DeliveryReader` (:func:`reader`: the service's routes).
The loop and the service ask here, never a forge's package.
"""

from __future__ import annotations

from typing import Protocol

from baton.forge.data.config import ForgeConfig
from baton.forge.data.kind import KindFacts, Kinds
from baton.forge.data.model import ForgeClient, ForgeError, ForgeKind, Review
from baton.forge.kinds.appchecks import AppChecks
from baton.forge.kinds.gitea.forge import GITEA
from baton.forge.kinds.github.forge import GITHUB
from baton.forge.kinds.gitlab.forge import GITLAB
from baton.forge.kinds.intake import Intake
from baton.forge.kinds.readiness import MergeClient
from baton.forge.reading.delivery import DeliveryReader, PartReaders


class Implementation(Protocol):
    """What a forge's package offers the loop (each in its ``forge`` module)."""

    @property
    def facts(self) -> KindFacts:
        """Its kind's facts: what a ``[forge.<name>]`` table of it defaults to (its ``facts`` module)."""
        ...

    def client(self, forge: ForgeConfig) -> ForgeClient:
        """The forge's client, with its token from the environment (BadInput naming the variable when
        it is not set) or the credentials the configuration names."""
        ...

    def merge_client(self, client: ForgeClient) -> MergeClient | None:
        """The merge policy's reads and writes over ``client``; None when it is not this forge's."""
        ...

    def identified(self, forge: ForgeConfig) -> ForgeConfig:
        """``forge`` with its own login and mention, read from the forge where the configuration leaves
        them to it (a GitHub App's); else ``forge`` itself. ForgeError when the forge does not answer."""
        ...

    def push_env(self, forge: ForgeConfig, repo: str) -> dict[str, str]:
        """A push's ``BATON_GIT_TOKEN`` and ``BATON_GIT_USERNAME`` for ``repo``."""
        ...

    def push_refused(self, forge: ForgeConfig, token: str) -> bool:
        """git said ``token`` was refused: whether a renewed one is worth one more push."""
        ...

    @property
    def reader(self) -> DeliveryReader:
        """How its webhook deliveries are read."""
        ...

    @property
    def hook_events(self) -> frozenset[str]:
        """What a repository's webhook must deliver for the loop (``baton forge test`` checks it)."""
        ...

    def app_checks(self, forge: ForgeConfig) -> AppChecks | None:
        """``baton forge test``'s checks of ``forge`` reached as an App; None for a token's."""
        ...

    @property
    def web_paths(self) -> tuple[str, str]:
        """Where its issues and its pull requests are under a repository's web address."""
        ...

    def review_identity(self, number: int, review: Review) -> str:
        """The identity a webhook of the same review of pull request ``number`` carries, for a review
        read from the API (the reconcile's, the dispatcher's, the merge policy's)."""
        ...


IMPLEMENTATIONS: dict[str, Implementation] = {
    ForgeKind.GITHUB: GITHUB,
    ForgeKind.GITEA: GITEA,
    ForgeKind.GITLAB: GITLAB,
}


def implementation(kind: str) -> Implementation:
    return IMPLEMENTATIONS[kind]


def facts(kind: str) -> KindFacts:
    """What a registered kind is like (:attr:`Implementation.facts`): its numbering, its names."""
    return implementation(kind).facts


def kinds() -> Kinds:
    """Every registered kind's facts, in the registry's order (what the configuration is read with)."""
    return {kind: each.facts for kind, each in IMPLEMENTATIONS.items()}


def readers() -> dict[str, DeliveryReader]:
    """Each registered kind's webhook reader by the kind's name: ``/webhooks/<kind>`` (the service's)."""
    return {kind: each.reader for kind, each in IMPLEMENTATIONS.items()}


def reader(kind: str) -> DeliveryReader:
    """The reader of a forge kind's webhook deliveries (:attr:`Implementation.reader`)."""
    return implementation(kind).reader


def stored_parts() -> PartReaders:
    """How each forge's own parts of a delivery are read back from a stored one
    (:attr:`~baton.forge.reading.delivery.DeliveryReader.parts`)."""
    return {key: read for each in IMPLEMENTATIONS.values() for key, read in each.reader.parts.items()}


def review_identity(kind: str, number: int, review: Review) -> str:
    """A review's identity as its forge's webhook names it (:meth:`Implementation.review_identity`)."""
    return implementation(kind).review_identity(number, review)


def make_client(forge: ForgeConfig) -> ForgeClient:
    """The client of a configured forge (:meth:`Implementation.client`)."""
    return implementation(forge.kind).client(forge)


def merge_client(client: ForgeClient) -> MergeClient:
    """The merge policy's reading and writing of the forge ``client`` speaks (a client that is one
    already, such as a test's, is itself)."""
    for each in IMPLEMENTATIONS.values():
        found = each.merge_client(client)
        if found is not None:
            return found
    if isinstance(client, MergeClient):
        return client
    raise ForgeError(f"{type(client).__name__} cannot read a pull request's readiness", 0)


# -- intakes: the places other than a forge where people talk to threads (baton.forge.kinds.intake) ----
INTAKES: dict[str, Intake] = {}


def intake(name: str) -> Intake | None:
    """The intake an event's ``source`` names; None for one that is not registered (here)."""
    return INTAKES.get(name)
