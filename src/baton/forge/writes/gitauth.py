"""baton's git credentials for a forge's repositories: a push (:func:`push_env`) takes the forge's token
(a GitHub App's: its installation token for the repository), and the clones and fetches of the
repositories a GitHub App forge serves take the same installation token (:func:`provide`, the source
:mod:`baton.workspace.credentials` asks for each remote). Through ``GIT_ASKPASS`` or a sync's up-front
header, as always: never in a URL, an argv, git config or a log. Other forges' clones keep
``$BATON_GIT_TOKEN``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TypeVar

from baton.errors import BadInput, GitError
from baton.forge.data.config import ForgeConfig, ForgeSettings
from baton.forge.data.model import ForgeError
from baton.forge.kinds.registry import implementation
from baton.workspace import credentials

SOURCE = "forge-apps"
T = TypeVar("T")
# what git says when the server refused its credentials (HTTP 401/403)
REFUSED = re.compile(
    r"Authentication failed|returned error: 40[13]|Invalid username or password|Bad credentials"
)


def push_env(forge: ForgeConfig, repo: str) -> dict[str, str]:
    """The variables of a push to ``repo`` on ``forge``: its token (BadInput naming the variable when it
    is not set; a GitHub App's installation token, ForgeError when it cannot be minted) and the user
    name the forge wants with it (its kind's :attr:`~baton.forge.data.kind.KindFacts.git_user`)."""
    return implementation(forge.kind).push_env(forge, repo)


def with_push_env(
    forge: ForgeConfig, repo: str, env: Mapping[str, str], run: Callable[[dict[str, str]], T]
) -> T:
    """``run(env with the push's credentials)``; a GitHub App's token git says was refused is renewed
    once and ``run`` tried again with the new one (the forge did not act on a refused push)."""
    pushing = {**env, **push_env(forge, repo)}
    try:
        return run(pushing)
    except GitError as exc:
        if not REFUSED.search(str(exc)):
            raise
        if not implementation(forge.kind).push_refused(forge, pushing["BATON_GIT_TOKEN"]):
            raise
    return run({**env, **push_env(forge, repo)})


def _bare(url: str) -> str:
    return url.strip().rstrip("/").removesuffix(".git").casefold()


def provide(config: ForgeSettings) -> None:
    """Give baton's clones and fetches of each GitHub App forge's configured repositories that App's
    installation token (in every process that runs turns: the service, a worker). Replaces what an
    earlier configuration provided; with no App forge, provides nothing."""
    apps = {
        _bare(repo.repo_url(config.forges[forge])): (config.forges[forge], repo.name)
        for (forge, _), repo in config.repos.items()
        if config.forges[forge].app is not None
    }
    if not apps:
        credentials.provide(SOURCE, None)
        return

    def source(url: str) -> dict[str, str] | None:
        found = apps.get(_bare(url))
        if found is None:
            return None
        forge, repo = found
        try:
            return push_env(forge, repo)
        except (ForgeError, BadInput) as exc:
            raise GitError(f"forge {forge.name}: no installation token for {repo}: {exc}") from None

    credentials.provide(SOURCE, source)
