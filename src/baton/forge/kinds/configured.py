"""The configured forges and repositories, read with the registered kinds' facts: the one way in for
everything above the data wing (the loop, the service, the CLI). The data wing types the tables
(:func:`baton.forge.data.config.read_forges`) and cannot import a forge; here the registry hands it
each kind's defaults (:func:`baton.forge.kinds.registry.kinds`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from baton.forge.data.config import ForgeSettings, read_forges
from baton.forge.kinds.registry import kinds


def load_forges(
    home: Path, environ: Mapping[str, str] = os.environ, agents: Iterable[str] | None = None
) -> ForgeSettings:
    """The ``forge`` and ``repo`` tables of ``home/config.toml`` (or of ``$BATON_FORGE_CONFIG``), typed
    (:func:`~baton.forge.data.config.read_forges`); an empty ForgeSettings when there are none."""
    return read_forges(home, kinds(), environ, agents)


def repo_egress(home: Path, repo: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """The ``egress`` a repository table gives the repository ``repo``
    (:meth:`~baton.forge.data.config.ForgeSettings.egress_of`), for a run submitted through the CLI or the
    API; None when none does."""
    return load_forges(home, environ).egress_of(repo)
