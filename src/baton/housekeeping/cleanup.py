"""Closing the sessions of a branch or PR that is gone (being built)."""

from __future__ import annotations

from typing import Any

from baton.settings import Settings
from baton.store import Store


def close_branch(store: Store, settings: Settings, repo_slug: str, branch: str, actor: str) -> dict[str, Any]:
    """Close every session of ``repo_slug`` working on ``branch`` (checkpoint first; a running key
    after its run); returns a JSON-able report ``{"closed": [keys], "checkpoints": {key: ref}, ...}``."""
    raise NotImplementedError
