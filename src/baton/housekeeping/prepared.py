"""The repositories' prepared environments (:mod:`baton.environment.prepared`) as disk users: rebuildable
(a thread's next first turn prepares its commit again), so a sweep removes those no thread was given
for ``prepared_idle_days`` (:func:`sweep_unused`) and, under disk pressure, all that no turn holds,
least recently used first, before any key's artefacts are pruned (:func:`relieve`). A tree a turn is
preparing or copying from holds its lock and is skipped. :func:`usage` is what ``baton du`` shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from baton.environment import prepared as trees
from baton.errors import Busy
from baton.settings import Settings
from baton.workspace.du import disk_usage


@dataclass
class Removed:
    """Prepared trees removed (or, dry, that would be), their bytes, and those skipped or failed."""

    trees: list[str] = field(default_factory=list)
    freed: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _remove(settings: Settings, tree: trees.PreparedTree, dry_run: bool, removed: Removed) -> int:
    """Remove one tree no turn holds; its bytes (0 when it was busy or could not be removed)."""
    size = disk_usage(tree.root)
    try:
        if dry_run:
            with tree.locked(settings.home, 0.0):
                pass
        else:
            trees.remove(settings.home, tree)
    except Busy:
        removed.skipped[str(tree.root)] = "busy: a turn is preparing it or copying from it"
        return 0
    except OSError as exc:
        removed.errors[str(tree.root)] = str(exc)
        return 0
    removed.trees.append(str(tree.root))
    removed.freed += size
    return size


def sweep_unused(settings: Settings, now: float, dry_run: bool = False) -> Removed:
    """Remove the prepared trees last used more than ``prepared_idle_days`` ago."""
    removed = Removed()
    if settings.prepared_idle_days <= 0:
        return removed
    cutoff = now - settings.prepared_idle_days * 86400
    for tree in trees.trees(settings.home):
        if trees.last_used(tree) < cutoff:
            _remove(settings, tree, dry_run, removed)
    return removed


def relieve(settings: Settings, need: int, dry_run: bool = False) -> Removed:
    """Remove prepared trees, least recently used first, until ``need`` bytes are freed."""
    removed = Removed()
    for tree in sorted(trees.trees(settings.home), key=trees.last_used):
        if need <= 0:
            break
        need -= _remove(settings, tree, dry_run, removed)
    return removed


def usage(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per repository: its prepared trees' count (those ready: a failed preparation's leftovers, its home
    and temp dir, are bytes but no tree) and bytes, and its preparations and hits so far."""
    found: dict[str, dict[str, Any]] = {}
    for tree in trees.trees(settings.home):
        row = found.setdefault(
            tree.slug, {"trees": 0, "bytes": 0, **trees.counts_of(settings.home, tree.slug)}
        )
        row["trees"] += 1 if tree.ready() else 0
        row["bytes"] += disk_usage(tree.root)
    return found
