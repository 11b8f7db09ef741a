"""What ``baton forge test`` asks of a forge reached as an App (:class:`AppChecks`), part of a forge's
:class:`~baton.forge.kinds.registry.Implementation`."""

from __future__ import annotations

from typing import Any, Protocol

from baton.forge.data.config import ForgeConfig


class AppChecks(Protocol):
    """What ``baton forge test`` checks of a forge reached as an App, in place of a token's login,
    access and repository webhooks (a GitHub App's: :mod:`baton.forge.kinds.github.app_check`)."""

    def forge_detail(self, forge: ForgeConfig) -> str:
        """How the forge's line names the App."""
        ...

    def repo_checks(self, what: str, forge: ForgeConfig, repo: str) -> tuple[list[dict[str, Any]], bool]:
        """The App's installation on ``repo`` and its permissions; whether a token could be minted."""
        ...

    def webhook_check(self, what: str, forge: ForgeConfig, needed: frozenset[str]) -> dict[str, Any]:
        """Whether the App's own webhook delivers the events ``needed``."""
        ...
