"""Pruning: an idle key's rebuildable artefacts go before any whole worktree is evicted. Under disk
pressure (:func:`baton.housekeeping.disk.relieve`) and in ``baton sweep --prune``, idle keys lose,
least recently used first (:func:`prune_idle`), the ignored and untracked directories of known kinds in
their worktrees (``node_modules``, ``.venv``, ``target``, ...: :data:`baton.settings.PRUNE_KINDS`,
found and removed by :mod:`baton.workspace.artefacts`), each key under its lease (:func:`prune_key`).
Which kinds: ``prune_kinds`` and ``config.toml``'s ``[prune."<repo slug>"]`` tables (:func:`rules`;
docs/configuration.md, "Rebuildable artefacts: prune").
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from baton.errors import BadInput, BatonError, Busy
from baton.keys import Key, key_of
from baton.models import SessionStatus
from baton.settings import PRUNE_TABLE, Settings, format_size, prune_kind_ok, read_config
from baton.store.base import KeyStore
from baton.store.leases import held, key_lease
from baton.workspace import artefacts
from baton.workspace.artefacts import Artefact
from baton.workspace.readonly import readonly_git
from baton.workspace.workdirs import Workdirs

log = logging.getLogger("baton.housekeeping")
_TABLE_KEYS = ("kinds", "keep")


# -- which kinds, per repo ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneRules:
    """The kinds pruned in each repository: the global ones, and each ``[prune."<slug>"]`` table's."""

    kinds: frozenset[str]
    # repo slug: (the kinds its table adds, those it keeps)
    repos: dict[str, tuple[frozenset[str], frozenset[str]]] = field(default_factory=dict)

    def of(self, slug: str) -> frozenset[str]:
        add, keep = self.repos.get(slug, (frozenset(), frozenset()))
        return (self.kinds | add) - keep


def rules(settings: Settings) -> PruneRules:
    """The settings' kinds and ``config.toml``'s per-repo tables; BadInput naming a bad entry. The file
    is read by :func:`baton.settings.read_config` (once per process), and these tables typed strictly
    here (as :mod:`baton.forge.data.config` types its own): an unknown key or a bad name is an error naming
    its table."""
    return PruneRules(settings.prune_kind_names, _repo_tables(settings.home / "config.toml"))


def _repo_tables(config: Path) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    tables = read_config(config).table(PRUNE_TABLE)  # the one reader: parsed once, errors named
    if not isinstance(tables, dict):  # load_settings refuses it first (an unknown setting); never crash
        raise BadInput(f"{config}: {PRUNE_TABLE} must be a table of repository slugs")
    found = {}
    for slug, table in tables.items():
        where = f'{config}: [{PRUNE_TABLE}."{slug}"]'
        if not isinstance(table, dict):
            raise BadInput(f"{where} must be a table with kinds and keep (lists of directory names)")
        unknown = sorted(set(table) - set(_TABLE_KEYS))
        if unknown:
            raise BadInput(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_TABLE_KEYS)})")
        found[slug] = (_names(where, table, "kinds"), _names(where, table, "keep"))
    return found


def _names(where: str, table: dict[str, Any], name: str) -> frozenset[str]:
    value = table.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and prune_kind_ok(v) for v in value):
        raise BadInput(f"{where}.{name} must be a list of plain directory names, not {value!r}")
    return frozenset(value)


# -- one key --------------------------------------------------------------------------------------------


@dataclass
class Pruning:
    """What was (or, dry, would be) pruned in one key's worktree, and why."""

    key: str
    worktree: str
    reason: str
    artefacts: list[dict[str, Any]]  # {path, kind, bytes}, relative to the worktree
    bytes: int
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def found_in(settings: Settings, key: Key, kinds: frozenset[str]) -> list[Artefact]:
    """The key's artefacts of ``kinds``, found without writing anything (``baton du``'s split)."""
    wt = readonly_git(settings, key) if kinds else None
    return [] if wt is None else artefacts.find(wt, kinds)


def prune_key(
    store: KeyStore,
    settings: Settings,
    key: Key,
    actor: str,
    reason: str,
    dry_run: bool = False,
    table: PruneRules | None = None,
) -> Pruning | None:
    """Prune the key's artefacts under its lease (no wait: Busy when a run holds it); None when it has
    no worktree or nothing to prune. A removal stops when the lease is lost. Logged and audited as
    ``prune``, with the bytes freed per artefact.

    Never a tracked file, never an untracked file git does not ignore: both are in the key's
    checkpoint, and ignored files never are, so pruning loses nothing eviction would keep. A dry run is
    the same code, the same lease check and the same git questions, stopping before the first removal:
    what it lists (key, path, kind, bytes, why) is what the real run would prune."""
    kinds = (table or rules(settings)).of(key.repo.slug)
    with held(key_lease(settings, store, key.id), 0.0, settings.heartbeat) as lost:
        wt = readonly_git(settings, key) if dry_run else Workdirs(settings).worktree_git(key)
        found = artefacts.find(wt, kinds) if wt is not None and kinds else []
        if wt is None or not found:
            return None
        done: list[dict[str, Any]] = []
        for artefact in found:
            size = artefacts.size(wt.path, artefact)
            if dry_run or (not lost.is_set() and artefacts.remove(wt.path, artefact)):
                done.append({"path": artefact.path, "kind": artefact.kind, "bytes": size})
    pruning = Pruning(str(key), str(wt.path), reason, done, sum(a["bytes"] for a in done), dry_run)
    if not dry_run and done:
        log.info("pruned %d artefact(s) of %s (%d bytes): %s", len(done), key, pruning.bytes, reason)
        store.audit("prune", str(key), actor, {**pruning.to_json(), "at": time.time()})
    return pruning


# -- idle keys, least recently used first ---------------------------------------------------------------


@dataclass
class PruneReport:
    """The prunings of one pass, the keys skipped (busy) and those that failed."""

    prunings: list[Pruning] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def freed(self) -> int:
        return sum(p.bytes for p in self.prunings)


def prune_idle(
    store: KeyStore,
    settings: Settings,
    need: int,
    actor: str,
    everything: bool = False,
    dry_run: bool = False,
) -> PruneReport:
    """Prune idle keys' artefacts, least recently used first, until ``need`` bytes are freed (all of
    them with ``everything``: ``baton sweep --prune``); a dry run counts what it would free. A busy
    key is skipped and reported. Only when pruning did not free enough is a whole worktree evicted
    (the caller's: :func:`baton.housekeeping.disk.relieve`)."""
    report = PruneReport()
    if need <= 0 and not everything:
        return report
    try:
        table = rules(settings)
    except BadInput as exc:  # a bad [prune."<slug>"] table: reported, and nothing pruned
        report.errors["prune"] = str(exc)
        return report
    workdirs = Workdirs(settings)
    sessions = [s for s in store.list_sessions() if s.status != SessionStatus.CLOSED]
    for session in sorted(sessions, key=lambda s: s.last_used_at):
        if need <= 0 and not everything:
            break
        key = key_of(session)
        if not workdirs.worktree_path(key).is_dir():
            continue
        why = "asked: sweep --prune" if need <= 0 else f"disk pressure: {format_size(need)} to free"
        try:
            pruning = prune_key(store, settings, key, actor, why, dry_run, table)
        except Busy:
            report.skipped[str(key)] = "busy: a run holds the key"
            continue
        except (BatonError, OSError) as exc:
            log.warning("could not prune the worktree of %s: %s", key, exc)
            report.errors[str(key)] = str(exc)
            continue
        if pruning is not None:
            report.prunings.append(pruning)
            need -= pruning.bytes
    return report
