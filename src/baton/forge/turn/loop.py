"""The forge loop's runtime: the operator's forge configuration, one client per configured forge, the
trust policy's permission caches, the store and how a turn is submitted. Built once by the service (and
by ``baton forge`` commands, and a worker that publishes turns); everything in :mod:`dispatch`,
:mod:`publish` and :mod:`reconcile` takes it.

``submit`` is the executor's: the service passes its own (the in-process pool or Celery), a command
that only reconciles passes one that stores the job for the service to pick up; ``cancel`` too (a
merged or closed PR stops its thread's turns).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from baton.errors import BadInput
from baton.forge.data.config import ForgeConfig, ForgeSettings, RepoConfig
from baton.forge.data.kind import KindFacts
from baton.forge.data.model import ForgeClient
from baton.forge.data.records import Binding
from baton.forge.data.tables import forge_store
from baton.forge.kinds.registry import facts, implementation, make_client
from baton.forge.turn.trust import Permissions
from baton.settings import Settings
from baton.store import Store

log = logging.getLogger("baton.forge")


@dataclass
class ForgeLoop:
    """What the forge room works with. ``clients`` may be given (tests); else made on first use."""

    settings: Settings
    store: Store
    config: ForgeSettings
    submit: Callable[[str], None]  # start a stored job (the executor's submit)
    # stop a queued or running job (the executor's cancel): a closed PR's turns; None: the store's
    # cancel request alone (what a queue's worker watches)
    cancel: Callable[[str], bool] | None = None
    clients: dict[str, ForgeClient] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    _permissions: dict[str, Permissions] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def forge(self, name: str) -> ForgeConfig:
        """The forge's configuration, with its own login and mention read from the forge where the
        configuration leaves them to it (a GitHub App's: once; ForgeError when it does not answer)."""
        configured = self._configured(name)
        config = implementation(configured.kind).identified(configured)
        if config is not configured:
            with self._lock:  # what the webhooks' reader sees from now on
                self.config = dataclasses.replace(self.config, forges={**self.config.forges, name: config})
        return config

    def _configured(self, name: str) -> ForgeConfig:
        try:
            return self.config.forges[name]
        except KeyError:
            raise BadInput(f"no forge named {name!r} in the configuration") from None

    def identify(self) -> None:
        """Read each forge's own login now where the forge is to say it (a GitHub App's; the service's
        start: before its first webhook is read); a forge that does not answer is said, and asked again
        when the login is next needed."""
        for name in list(self.config.forges):
            try:
                self.forge(name)
            except Exception as exc:  # said; the first event that needs it asks again
                log.warning("forge %s: its own login could not be read yet: %s", name, exc)

    def client(self, name: str) -> ForgeClient:
        with self._lock:
            if name not in self.clients:
                self.clients[name] = make_client(self._configured(name))  # an App's login: not needed
            return self.clients[name]

    def which(self, forge: str, pr: bool) -> bool | None:
        """``pr`` where the forge numbers issues and PRs apart (GitLab), else None: one sequence, a
        number is either (what :meth:`~baton.forge.data.tables.ForgeStore.get_binding` takes)."""
        config = self.config.forges.get(forge)
        return pr if config is not None and facts(config.kind).numbers_apart else None

    def facts(self, forge: str) -> KindFacts:
        """What the configured forge ``forge``'s kind is like: its numbering, its names."""
        return facts(self.forge(forge).kind)

    def binding(self, forge: str, repo: str, number: int, pr: bool) -> Binding | None:
        """The thread bound to issue or pull request ``number`` (``pr``: as :meth:`which` tells it)."""
        return forge_store(self.store).get_binding(forge, repo, number, self.which(forge, pr))

    def lease_name(self, binding: Binding) -> str:
        """The thread's name in its store leases (its turns', its merge policy's): its conversation —
        and a GitLab merge request's thread bound before the two kinds were told apart (still named
        ``#N``) as ``!N``, so it never shares a lease with issue ``#N``'s."""
        if binding.on_pr and binding.sign == "#" and self.which(binding.forge, True):
            return f"{binding.forge}:{binding.repo}!{binding.number}"
        return binding.conversation

    def repo(self, forge: str, repo: str) -> RepoConfig | None:
        return self.config.repo(forge, repo)

    def permission(self, forge: str, repo: str, login: str) -> str:
        """The actor's permission on the repo, asked of the forge and cached briefly."""
        with self._lock:
            if forge not in self._permissions:
                self._permissions[forge] = Permissions(lambda r, who: self.client(forge).permission(r, who))
            cache = self._permissions[forge]
        return cache.get(repo, login)

    def close(self) -> None:
        """Close the clients this loop made (their connection pools)."""
        with self._lock:
            made, self.clients = list(self.clients.values()), {}
        for client in made:
            closing = getattr(client, "close", None)
            if callable(closing):
                closing()
