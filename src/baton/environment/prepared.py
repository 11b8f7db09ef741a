"""Prepared trees: where a repository's setup runs once per preparation key (the setup's text and its
inputs: :attr:`baton.environment.plan.SetupPlan.key`) and configured setup, for every thread whose
worktree has those inputs (:func:`inputs_id`); a commit no one trusts yet is prepared by its commit
alone (:func:`prepared_id`). ``BATON_HOME/prepared/<slug>/@<id>/`` holds ``tree/`` (a
detached linked worktree of the cache clone, its admin dir named ``@prepared+<id>``: never a key's),
``home/`` and ``tmp/`` (the setup's own) and ``meta.json`` (written once the setup succeeded: the plan
it ran, its results, when it was last used and how often it was given). One file lock per tree makes
concurrent threads wait for one preparation; ``@counts.json`` per repository counts preparations and
hits. Prepared trees are rebuildable: a sweep removes the unused ones first (:func:`remove`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baton.files import atomic_write_text, make_private_dir
from baton.workspace.gitcmd import run_git
from baton.workspace.locks import file_lock

ROOT = "prepared"  # under BATON_HOME
MARK = "@"  # a prepared tree's directory and the counts file: never a slug segment
COUNTS = f"{MARK}counts.json"
ADMIN = "@prepared+"  # the admin dir's name in the cache clone: "@" is never in a key's


def prepared_id(commit: str, configured: str | None) -> str:
    """The tree of a commit and a configured setup (its plan is a function of both)."""
    return hashlib.sha256(f"{commit}\0{configured or ''}".encode()).hexdigest()[:32]


def inputs_id(plan_key: str, configured: str | None) -> str:
    """The tree of a preparation key and a configured setup: every commit with the same setup and the
    same inputs (a README-only commit's) shares it."""
    return hashlib.sha256(f"inputs\0{plan_key}\0{configured or ''}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class PreparedTree:
    """One prepared tree's directory and its parts."""

    root: Path
    slug: str

    @classmethod
    def of(cls, home: Path, slug: str, pid: str) -> PreparedTree:
        return cls(home / ROOT / slug / f"{MARK}{pid}", slug)

    @property
    def pid(self) -> str:
        return self.root.name.removeprefix(MARK)

    @property
    def tree(self) -> Path:
        return self.root / "tree"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def admin(self, cache: Path) -> Path:
        return cache / "worktrees" / f"{ADMIN}{self.pid}"

    def ready(self) -> bool:
        """Whether a setup succeeded here (a failed one's leftovers, its home and temp dir, are not)."""
        return bool(self.meta().get("plan"))

    def meta(self) -> dict[str, Any]:
        """What the successful setup recorded ({}: not prepared, or not yet)."""
        try:
            data = json.loads((self.root / "meta.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_meta(self, data: dict[str, Any]) -> None:
        atomic_write_text(self.root / "meta.json", json.dumps(data), mode=0o600)

    @contextmanager
    def locked(self, home: Path, timeout: float | None) -> Iterator[None]:
        """The tree's lock: who holds it prepares the tree, copies from it or removes it."""
        with file_lock(home, f"prepared:{self.slug}/{self.pid}", timeout):
            yield


def make(tree: PreparedTree, home: Path, cache: Path, commit: str, env: dict[str, str]) -> Path:
    """A fresh detached checkout of ``commit`` at ``tree.tree`` (what an earlier try left removed, its
    home and temp dir kept); the admin dir of its git in the cache clone, renamed to the tree's own
    name under the repo's lock. The caller holds the tree's lock."""
    reset(tree, home, cache)
    for path in (tree.root, tree.home, tree.tmp):
        make_private_dir(path)
    admin = tree.admin(cache)
    with file_lock(home, f"repo:{tree.slug}"):
        before = set(os.listdir(cache / "worktrees")) if (cache / "worktrees").is_dir() else set()
        run_git(["worktree", "add", "--quiet", "--detach", str(tree.tree), commit], cwd=cache, env=env)
        made = set(os.listdir(cache / "worktrees")) - before
        if len(made) != 1:
            raise OSError(f"git worktree add made {len(made)} admin dirs, not one")
        os.rename(cache / "worktrees" / made.pop(), admin)
        (tree.tree / ".git").write_text(f"gitdir: {admin}\n")
    return admin


def reset(tree: PreparedTree, home: Path, cache: Path) -> None:
    """Remove the checkout, its meta and its admin dir in the cache clone (the caller holds the
    tree's lock); the home and temp dir stay."""
    (tree.root / "meta.json").unlink(missing_ok=True)
    if tree.tree.exists():
        shutil.rmtree(tree.tree)
    admin = tree.admin(cache)
    if admin.exists():
        with file_lock(home, f"repo:{tree.slug}"):
            shutil.rmtree(admin, ignore_errors=True)


def discard(tree: PreparedTree, home: Path, cache: Path) -> None:
    """Remove the whole tree (the caller holds its lock)."""
    reset(tree, home, cache)
    if tree.root.exists():
        shutil.rmtree(tree.root)


def remove(home: Path, tree: PreparedTree) -> None:
    """Remove a prepared tree no turn holds (Busy when one does)."""
    with tree.locked(home, 0.0):
        discard(tree, home, home / "repos" / f"{tree.slug}.git")
        with file_lock(home, f"prepared-counts:{tree.slug}"):
            _remove_empty(tree.root.parent, home / ROOT)


def _remove_empty(directory: Path, root: Path) -> None:
    """The repository's directory when no tree is left in it (its counts are kept)."""
    while directory != root and directory.is_dir() and not any(p.is_dir() for p in directory.iterdir()):
        if (directory / COUNTS).exists():
            return
        directory.rmdir()
        directory = directory.parent


def trees(home: Path) -> list[PreparedTree]:
    """Every prepared tree under ``BATON_HOME``, by repository."""
    found: list[PreparedTree] = []
    root = home / ROOT

    def walk(directory: Path) -> None:
        for child in sorted(p for p in directory.iterdir() if p.is_dir() and not p.is_symlink()):
            if child.name.startswith(MARK):
                found.append(PreparedTree(child, directory.relative_to(root).as_posix()))
            else:
                walk(child)

    if root.is_dir():
        walk(root)
    return found


def last_used(tree: PreparedTree) -> float:
    """When the tree was last given to a worktree (or made; its directory's time when it has no meta)."""
    meta = tree.meta()
    found = meta.get("used_at")
    return float(found) if isinstance(found, (int, float)) else tree.root.stat().st_mtime


def count(home: Path, slug: str, what: str) -> dict[str, int]:
    """Add one to the repository's count ``what`` (``preparations``, ``hits``); the counts."""
    path = home / ROOT / slug / COUNTS
    with file_lock(home, f"prepared-counts:{slug}"):
        counts = counts_of(home, slug)
        counts[what] = counts.get(what, 0) + 1
        atomic_write_text(path, json.dumps(counts), mode=0o600)
    return counts


def counts_of(home: Path, slug: str) -> dict[str, int]:
    """The repository's preparations and hits so far."""
    try:
        data = json.loads((home / ROOT / slug / COUNTS).read_text())
    except (OSError, ValueError):
        data = {}
    return {k: int(data.get(k, 0)) for k in ("preparations", "hits")} if isinstance(data, dict) else {}


def used(tree: PreparedTree, hit: bool) -> None:
    """Record a use (the caller holds the tree's lock)."""
    meta = tree.meta()
    meta["used_at"] = time.time()
    meta["hits"] = int(meta.get("hits", 0)) + (1 if hit else 0)
    tree.write_meta(meta)
