"""Credentials for a remote that a room above the workspace supplies: the forge loop's GitHub App
installation tokens, minted and renewed in this process. :func:`provide` registers a source by name;
:func:`env_for` asks the sources for a remote's URL. The environment of baton's own git with that remote
then carries ``BATON_GIT_TOKEN`` (and ``BATON_GIT_USERNAME``), which git's askpass and a sync's up-front
header read: never argv, a file, git config, a log or the store. An agent's environment never has them
(:meth:`~baton.workspace.workdirs.Workdirs.git_env` without a URL). A URL no source knows keeps what
the process's environment has (``$BATON_GIT_TOKEN``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

# a remote's URL -> {"BATON_GIT_TOKEN": ..., "BATON_GIT_USERNAME": ...}, or None when not its own; raises
# GitError when it knows the URL and cannot give its credentials now
Source = Callable[[str], Mapping[str, str] | None]
_SOURCES: dict[str, Source] = {}
_LOCK = threading.Lock()


def provide(name: str, source: Source | None) -> None:
    """Register (or with None, remove) the source ``name``."""
    with _LOCK:
        if source is None:
            _SOURCES.pop(name, None)
        else:
            _SOURCES[name] = source


def env_for(url: str) -> dict[str, str]:
    """The variables that give baton's git its credentials for ``url``; empty when no source knows it."""
    with _LOCK:
        sources = list(_SOURCES.values())
    for source in sources:
        found = source(url)
        if found:
            return dict(found)
    return {}
