"""``baton homes link``: for people who run the agent CLIs outside baton (the redeploy problem). The
CLIs keep their conversations in ``~/.claude`` (plus ``~/.claude.json``), ``~/.codex`` and
``~/.gemini``, which on a container live on the ephemeral disk; :func:`link` turns each into a symlink
to a directory on a persistent volume, moving or backing up (never deleting) what is there, and
records every action in ``<target dir>/.baton-homes.json`` so that :func:`unlink` puts back exactly
what was there.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

from baton.errors import BadInput
from baton.files import atomic_write_text, make_private_dir

ENTRIES = [".claude", ".claude.json", ".codex", ".gemini"]
MANIFEST = ".baton-homes.json"


class Did(StrEnum):
    """What ``link`` or ``unlink`` did (or, with ``--dry-run``, would do) with one entry."""

    LINKED = "linked"  # nothing was there: the symlink was made
    MOVED = "moved+linked"  # the directory moved into the persistent dir, a symlink in its place
    BACKED_UP = "backed-up+linked"  # the target existed too: what was here went to a backup
    ALREADY = "already linked"  # the symlink was already there
    BLOCKED = "blocked"  # a symlink to somewhere else: left alone, exit 1
    SKIPPED = "skipped"  # no file to keep; the CLI creates it on first use
    MOVED_BACK = "moved back"  # unlink: the directory is back where it was
    RESTORED = "backup restored"  # unlink: the backup is back where it was
    UNLINKED = "unlinked"  # unlink: the symlink is gone
    NOT_LINKED = "not linked (left alone)"  # unlink: not ours


@dataclass
class Action:
    name: str  # e.g. ".claude"
    action: Did
    source: str  # ~/.claude
    target: str  # <dir>/claude
    backup: str | None = None


def _target(directory: Path, name: str) -> Path:
    return directory / name.lstrip(".")


def _load(directory: Path) -> dict[str, dict[str, str | None]]:
    path = directory / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path} is corrupt ({exc}); fix it by hand before linking or unlinking") from exc
    return data if isinstance(data, dict) else {}


def _save(directory: Path, manifest: dict[str, dict[str, str | None]]) -> None:
    atomic_write_text(directory / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def _move(source: Path, destination: Path) -> None:
    """A rename when possible; across filesystems, copy everything, then remove the source."""
    try:
        source.rename(destination)
    except OSError:
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, destination, symlinks=True, copy_function=shutil.copy2)
            shutil.rmtree(source)
        else:
            shutil.copy2(source, destination, follow_symlinks=False)
            source.unlink()


def _has_data(path: Path) -> bool:
    return path.exists() and (path.is_file() or any(path.iterdir()))


def link(directory: Path, home: Path | None = None, dry_run: bool = False) -> list[Action]:
    """Link each agent home under ``home`` (default ``~``) to ``directory`` (:func:`_decide`):

    - nothing there → create the target, link it;
    - a real directory/file there and no target yet → *move* it to the target (same data, now
      persistent), link it;
    - a real one there and a target that already holds data (the volume remembers an earlier
      container) → move the local one aside to ``<name>.baton-backup-<time>`` (never deleted) and link
      the target;
    - already linked to the target → nothing (idempotent)."""
    home = home or Path.home()
    directory = directory.expanduser().absolute()
    if directory == home or directory in {home / n for n in ENTRIES}:
        raise BadInput(f"{directory} cannot be the target: choose a directory on a persistent volume")
    manifest = _load(directory) if directory.is_dir() else {}
    actions: list[Action] = []
    for name in ENTRIES:
        act = _decide(name, home, directory)
        actions.append(act)
        if dry_run or act.action in (Did.SKIPPED, Did.ALREADY, Did.BLOCKED):
            continue
        make_private_dir(directory)  # 0700 when made here (BATON_HOME too, when it is first)
        _apply(act)
        # saved after every entry, so an interrupted link leaves a manifest unlink can follow
        manifest[name] = {"action": act.action, "source": act.source, "backup": act.backup}
        _save(directory, manifest)
    return actions


def _decide(name: str, home: Path, directory: Path) -> Action:
    """What :func:`link` does with ``home/name``, decided before anything is touched."""
    source, target = home / name, _target(directory, name)
    act = Action(name, Did.SKIPPED, str(source), str(target))  # decided below
    if source.is_symlink():
        act.action = Did.ALREADY if source.resolve() == target.resolve() else Did.BLOCKED
    elif source.exists() and not _has_data(target):
        act.action = Did.MOVED
    elif source.exists():
        act.action = Did.BACKED_UP
        act.backup = str(home / f"{name}.baton-backup-{time.strftime('%Y%m%d-%H%M%S')}")
    elif _is_file(name) and not target.exists():
        act.action = Did.SKIPPED  # no file to keep; the CLI creates it on first use
    else:
        act.action = Did.LINKED
    return act


def _apply(act: Action) -> None:
    """Carry out a decided action: move (or back up) what is there, then put the symlink in its place."""
    source, target, is_file = Path(act.source), Path(act.target), _is_file(act.name)
    if act.action == Did.MOVED:
        if target.is_dir() and not target.is_symlink():
            target.rmdir()  # an empty directory left by an earlier unlink
        _move(source, target)
    elif act.action == Did.BACKED_UP:
        assert act.backup is not None
        _move(source, Path(act.backup))
    elif not is_file:
        target.mkdir(parents=True, exist_ok=True)
    source.symlink_to(target, target_is_directory=not is_file)


def _is_file(name: str) -> bool:
    return name.endswith(".json")


def unlink(directory: Path, dry_run: bool = False) -> list[Action]:
    """Undo :func:`link`: remove the symlinks and put back what was there, as its manifest says (the
    moved directory returns to its place, a backup is restored, the symlink goes)."""
    directory = directory.expanduser().absolute()
    manifest = _load(directory)
    actions: list[Action] = []
    for name, entry in list(manifest.items()):
        source, target = Path(str(entry["source"])), _target(directory, name)
        act = Action(name, Did.UNLINKED, str(source), str(target), entry.get("backup"))  # decided below
        if not source.is_symlink() or source.resolve() != target.resolve():
            act.action = Did.NOT_LINKED
            actions.append(act)
            continue
        undone: dict[str, Did] = {Did.MOVED: Did.MOVED_BACK, Did.BACKED_UP: Did.RESTORED}
        act.action = undone.get(str(entry["action"]), Did.UNLINKED)
        actions.append(act)
        if dry_run:
            continue
        source.unlink()
        if entry["action"] == Did.MOVED:
            _move(target, source)
        elif entry["action"] == Did.BACKED_UP and act.backup and os.path.lexists(act.backup):
            _move(Path(act.backup), source)
        del manifest[name]
        _save(directory, manifest)
    return actions


def to_json(actions: list[Action]) -> list[dict[str, str | None]]:
    return [asdict(a) for a in actions]
