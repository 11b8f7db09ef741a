"""The forge loop's runtime: the operator's forge configuration, one client per configured forge, the
trust policy's permission caches, the store and how a turn is submitted. Built once by the service (and
by ``baton forge`` commands, and a worker that publishes turns); everything in :mod:`dispatch`,
:mod:`publish` and :mod:`reconcile` takes it.

``submit`` is the executor's: the service passes its own (the in-process pool or Celery), a command
that only reconciles passes one that stores the job for the service to pick up; ``cancel`` too (a
merged or closed PR stops its thread's turns).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from baton.errors import BadInput
from baton.forge.config import ForgeConfig, ForgeSettings, RepoConfig
from baton.forge.model import ForgeClient, ForgeKind
from baton.forge.trust import Permissions
from baton.settings import Settings
from baton.store import Store


def make_client(forge: ForgeConfig) -> ForgeClient:
    """The client of a configured forge, with its token from the environment (BadInput naming the
    variable when it is not set)."""
    token = forge.token()
    if forge.kind == ForgeKind.GITEA:
        from baton.forge.gitea import GiteaClient

        return GiteaClient(forge.api_url, token)
    if forge.kind == ForgeKind.GITLAB:
        from baton.forge.gitlab import GitLabClient

        return GitLabClient(forge.api_url, token)
    from baton.forge.github import GitHubClient

    return GitHubClient(forge.api_url, token)


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
        try:
            return self.config.forges[name]
        except KeyError:
            raise BadInput(f"no forge named {name!r} in the configuration") from None

    def client(self, name: str) -> ForgeClient:
        with self._lock:
            if name not in self.clients:
                self.clients[name] = make_client(self.forge(name))
            return self.clients[name]

    def which(self, forge: str, pr: bool) -> bool | None:
        """``pr`` where the forge numbers issues and PRs apart (GitLab), else None: one sequence, a
        number is either (what :meth:`~baton.forge.tables.ForgeStore.get_binding` takes)."""
        config = self.config.forges.get(forge)
        return pr if config is not None and config.kind.numbers_apart else None

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
