"""What every forge reached with one configured token does alike (Gitea, GitLab, GitHub without an
App): its login is the configured one, a push uses that token, a refused token is not renewed, and
``baton forge test`` checks that token.
Each forge's ``forge`` module builds on it (:class:`~baton.forge.kinds.registry.Implementation`)."""

from __future__ import annotations

from baton.forge.data.config import ForgeConfig
from baton.forge.data.kind import KindFacts
from baton.forge.kinds.appchecks import AppChecks


class TokenForge:
    facts: KindFacts  # its kind's (each forge's ``facts.FACTS``)

    def identified(self, forge: ForgeConfig) -> ForgeConfig:
        return forge

    def push_env(self, forge: ForgeConfig, repo: str) -> dict[str, str]:
        return {"BATON_GIT_TOKEN": forge.token(), "BATON_GIT_USERNAME": self.facts.git_user or forge.user}

    def push_refused(self, forge: ForgeConfig, token: str) -> bool:
        return False

    def app_checks(self, forge: ForgeConfig) -> AppChecks | None:
        return None
