"""Key spaces: each key's private corner of ``BATON_HOME``, holding its agent home and its temp dir
(``keys/<agent>/<repo slug>/@<thread>/home`` and ``…/tmp``: :func:`key_dir`), and per repository the
package caches its keys share (``caches/<repo slug>/@shared``: :func:`shared_cache`). An agent run for
one key may write only its worktree, its key's home and its key's temp dir (Landlock, whose rules are
hierarchical), so every key has its own agent home, seeded from the operator's base home,
``homes/<agent>`` (:func:`prepare_space`), and its adapter is the agent's with its home moved
(:func:`agent_for`). Conversations from before key spaces are moved in on a key's first run
(:func:`adopt_legacy`), and every copy here goes through :mod:`baton.workspace.nofollow`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baton.agents import Agent, get_agent
from baton.errors import AgentError, BatonError
from baton.files import make_private_dir
from baton.keys import Key, key_of
from baton.models import Access, SessionRecord
from baton.settings import Settings
from baton.workspace import checkmemo, nofollow
from baton.workspace.workdirs import remove_empty_parents

log = logging.getLogger("baton.keyspace")
KEYS = "keys"  # under BATON_HOME
MARK = "@"  # the first character of a key's directory: never in a slug segment or a thread
CACHES = "caches"  # under BATON_HOME: caches/<slug>/@shared, the package caches a repo's threads share
SHARED = f"{MARK}shared"


# -- where ----------------------------------------------------------------------------------------------


def key_dir(settings: Settings, key: Key) -> Path:
    """The key's space: its agent home and its temp dir, and nothing of any other key::

        keys/<agent>/<repo slug>/@<thread>/home   the CLI's home for this key (CLAUDE_CONFIG_DIR,
                                                  CODEX_HOME, GEMINI_CLI_HOME; HOME too): its
                                                  transcripts, indexes, history, caches
        keys/<agent>/<repo slug>/@<thread>/tmp    its private temp dir (TMPDIR), emptied before every run

    The ``@`` marks the key's directory. Slugs have any number of segments and neither a slug segment
    nor a thread may contain ``@``, so no key's directory is ever inside another key's (without it, the
    key ``(github.com/acme, api)``'s home ``…/acme/api/home`` would hold the key
    ``(github.com/acme/api, home)``'s whole space ``…/acme/api/home/home``). A walk finds every key
    space by that mark (:func:`key_spaces`)."""
    return settings.home / KEYS / key.agent / key.repo.slug / f"{MARK}{key.thread}"


def key_home(settings: Settings, key: Key) -> Path:
    """The key's agent home."""
    return key_dir(settings, key) / "home"


def key_tmp(settings: Settings, key: Key) -> Path:
    """The key's private temp dir (the agent's TMPDIR)."""
    return key_dir(settings, key) / "tmp"


def cache_dir(settings: Settings, slug: str) -> Path:
    """The package caches the threads of repository ``slug`` share (``caches/<slug>/@shared``: the mark
    keeps one repo's caches out of another's, as it does key spaces, when one slug is a prefix of
    another's)."""
    return settings.home / CACHES / slug / SHARED


def shared_cache(settings: Settings, key: Key, access: Access) -> Path | None:
    """The key's repository's shared package caches, made (0700) if missing; None when the setting
    ``shared_caches`` is off, or at access ``read``: an agent that may not change its worktree does
    not write to what its repository's other threads install from (its tools cache in its own home)."""
    if settings.shared_caches == "off" or access == Access.READ:
        return None
    path = cache_dir(settings, key.repo.slug)
    if not path.is_dir():
        try:
            _make_private(settings.home, path)
        except OSError as exc:
            raise AgentError(f"cannot make {key.repo.slug}'s shared package caches ({path}): {exc}") from exc
    return path


def _make_private(root: Path, path: Path) -> None:
    """``path`` and its missing parents below ``root``, each 0700 (and ``root``'s, BATON_HOME's)."""
    make_private_dir(root)
    missing = [path, *(p for p in path.parents if p != root and root in p.parents)]
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)


def agent_for(key: Key, settings: Settings) -> Agent:
    """The key's adapter: the agent's, working in the key's home. Writes nothing."""
    return get_agent(key.agent, settings).with_home(key_home(settings, key))


def session_agent(session: SessionRecord, settings: Settings) -> Agent:
    """The adapter of a stored session's key (:func:`agent_for`)."""
    return agent_for(key_of(session), settings)


@dataclass(frozen=True)
class KeySpace:
    """One key space found on disk."""

    agent: str
    repo: str  # the slug
    thread: str
    path: Path

    @property
    def home(self) -> Path:
        return self.path / "home"


def key_spaces(settings: Settings, agent: str | None = None) -> list[KeySpace]:
    """The key spaces on disk (of ``agent``, or of every agent), found by their mark."""
    root = settings.home / KEYS
    if not root.is_dir():
        return []
    names = [agent] if agent else sorted(p.name for p in root.iterdir() if p.is_dir())
    found: list[KeySpace] = []
    for name in names:
        top = root / name
        for dirpath, dirnames, _files in os.walk(top):
            here = Path(dirpath)
            found += [
                KeySpace(name, here.relative_to(top).as_posix(), d[len(MARK) :], here / d)
                for d in sorted(dirnames)
                if d.startswith(MARK)
            ]
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(MARK))
    return found


# -- making it ready --------------------------------------------------------------------------------------


def prepare_space(settings: Settings, key: Key, agent: Agent) -> bool:
    """Make the key's space ready for a run of ``agent`` (the key's adapter, :func:`agent_for`): the
    base home aligned, the key's home seeded from it and aligned, the temp dir empty. True when the
    space was created now (a refused first run removes it again: :func:`remove_space`).

    ``homes/<agent>`` stays the operator's **base home**: configuration and credentials. A key's home
    is given copies of the base's files its adapter names (``config_files``: Claude's ``settings.json``,
    Codex's ``config.toml``, …) when they are missing there or older than the base's
    (:func:`seed_home`) — so an operator's edit, or a test's mock configuring the base home, reaches
    every key on its next run — and then the adapter aligns it as it always did (``prepare_home``:
    retention and baton's managed settings)."""
    made = not key_dir(settings, key).exists()
    base = get_agent(key.agent, settings)
    base.prepare_home(settings.ttl_days)  # the operator's base: `baton doctor` checks its retention
    tmp = key_tmp(settings, key)
    try:
        for path in (agent.home, tmp):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        seed_home(base.home, agent.home, agent.config_files)
        agent.prepare_home(settings.ttl_days)
        _empty(tmp)
    except OSError as exc:
        raise AgentError(f"cannot prepare the agent home of {key} ({key_dir(settings, key)}): {exc}") from exc
    return made


def seed_home(base: Path, home: Path, files: tuple[str, ...]) -> list[str]:
    """Copy each of ``files`` (relative paths) from ``base`` to ``home`` where it is missing or older
    than the base's (mode and time kept, so an unchanged base is not copied again); the ones copied.
    The key's home is its agent's: nothing is written through a link there (that file is skipped)."""
    copied = []
    for rel in files:
        try:
            st = (base / rel).stat()
        except OSError:
            continue  # the operator has none: the adapter's prepare_home makes what it needs
        if not stat.S_ISREG(st.st_mode) or _mtime(home / rel) >= st.st_mtime_ns:
            continue
        try:
            nofollow.copy_beneath(base, rel, home, rel)
        except nofollow.Unsafe as exc:
            log.warning("%s is not copied into %s: %s", rel, home, exc)
            continue
        copied.append(rel)
    return copied


def drop_secrets(home: Path, secrets: Sequence[tuple[str, tuple[str, ...]]]) -> list[str]:
    """Delete from each JSON file of ``home`` (a relative path) the value at its path of keys, no link
    followed; the files changed. A changed file is dated 1970, older than any base's: the next run
    copies the operator's afresh (:func:`seed_home`), and drops it again only if the gateway still
    stands in for that key. A file that is missing, no JSON or a link is left as it is; AgentError when
    one cannot be written."""
    changed = []
    for rel, path in secrets:
        try:
            data = json.loads(nofollow.read_beneath(home, rel))
        except (OSError, ValueError):
            continue
        parent = data
        for part in path[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if not path or not isinstance(parent, dict) or path[-1] not in parent:
            continue
        del parent[path[-1]]
        try:
            nofollow.write_beneath(home, rel, json.dumps(data, indent=2).encode(), 0o600, (0, 0))
        except OSError as exc:  # the agent would find the key there: it does not start
            raise AgentError(f"cannot drop the model key from {home / rel}: {exc}") from exc
        changed.append(rel)
    return changed


def _mtime(path: Path) -> int:
    """The modification time of regular file ``path``; -1 for none (or a link: replaced)."""
    try:
        st = os.lstat(path)
    except OSError:
        return -1
    return st.st_mtime_ns if stat.S_ISREG(st.st_mode) else -1


def _empty(directory: Path) -> None:
    """Remove what an earlier run left in ``directory``, keeping the directory."""
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            _rmtree(child)
        else:
            child.unlink(missing_ok=True)


# -- removing it ------------------------------------------------------------------------------------------


def remove_space(settings: Settings, key: Key) -> bool:
    """Delete the key's space (its agent home and temp dir, its services' data: their containers
    stopped) and the empty directories above it, and its checkpoint memo; True if the space existed.
    The caller holds the key's lease and has snapshotted what it wants to keep."""
    checkmemo.forget(settings.home, key)
    path = key_dir(settings, key)
    if not path.exists():
        return False
    if (path / "services").is_dir():  # its services' data: their containers go first
        # lazy: cold CLI
        from baton.workspace.containers import stop_space

        stop_space(settings, path)
    _rmtree(path)
    remove_empty_parents(path.parent, settings.home / KEYS)
    return True


def repo_caches(settings: Settings) -> dict[str, Path]:
    """The repositories' shared package caches on disk, found by their mark: slug → directory (for
    ``baton du`` and the sweep; links are not followed)."""
    root = settings.home / CACHES
    found: dict[str, Path] = {}
    for dirpath, dirnames, _files in os.walk(root):
        here = Path(dirpath)
        if SHARED in dirnames and not (here / SHARED).is_symlink():
            found[here.relative_to(root).as_posix()] = here / SHARED
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(MARK))
    return dict(sorted(found.items()))


def remove_repo_caches(settings: Settings, slug: str) -> bool:
    """Delete repository ``slug``'s shared package caches (through the read-only directories Go makes)
    and the empty directories above them; True if they existed. Only when no run of the repo can be
    using them: the caller knows the repo has no session left."""
    path = cache_dir(settings, slug)
    if path.is_symlink() or not path.is_dir():
        return False
    _rmtree(path)
    remove_empty_parents(path.parent, settings.home / CACHES)
    return True


def _rmtree(path: Path) -> None:
    """``shutil.rmtree``, also through directories an agent's tools made read-only (Go's module cache)."""

    def retry(function: Callable[..., Any], name: str, _exc: object) -> None:
        parent = os.path.dirname(name)
        with contextlib.suppress(OSError):
            os.chmod(parent, stat.S_IRWXU)
            if os.path.isdir(name) and not os.path.islink(name):
                os.chmod(name, stat.S_IRWXU)
        function(name)

    shutil.rmtree(path, onerror=retry)


# -- conversations ----------------------------------------------------------------------------------------


def conversation_files(settings: Settings, key: Key, session_id: str) -> list[Path]:
    """The local files of the key's conversation ``session_id`` (transcript and leftovers): in the
    key's home, and any a run before key spaces left in the base home."""
    files: list[Path] = []
    for agent in (agent_for(key, settings), get_agent(key.agent, settings)):
        files += [*agent.transcript_files(session_id), *agent.leftover_files(session_id)]
    return files


def holder(settings: Settings, key: Key, session_id: str) -> Agent:
    """The adapter whose home holds the conversation: the key's, or the base's for one that has not
    moved in yet (a reset or a close snapshots it from there); the key's when neither has it."""
    agent = agent_for(key, settings)
    if agent.transcript_files(session_id):
        return agent
    base = get_agent(key.agent, settings)
    return base if base.transcript_files(session_id) else agent


def adopt_legacy(settings: Settings, key: Key, agent: Agent, session_id: str, cwd: Path) -> str | None:
    """Move the key's conversation from the base home into the key's home (``agent``), when only the
    base has it; what was done, for the run's note, or None when there was nothing to move. Never
    raises: a move that fails leaves the base's files where they were, and says so. Conversations that
    ran before key spaces existed are in the base home; the first run of such a key moves them in (copy,
    make them resumable with the adapter's ``after_hydrate``, then delete the base's) before the runner
    decides how to start; if that fails nothing is lost and the runner's usual path applies (hydrate
    from the store's snapshot, else recover)."""
    if agent.transcript_files(session_id):
        return None
    base = get_agent(key.agent, settings)
    files = base.transcript_files(session_id)
    if not files:
        return None
    try:
        _move_in(base, agent, [*files, *base.leftover_files(session_id)], session_id, cwd)
    except (BatonError, OSError, ValueError) as exc:
        log.warning("could not move %s's conversation into its key's home: %s", key, exc)
        return f"could not move the conversation out of the shared home {base.home} ({exc})"
    return f"moved the conversation from the shared home {base.home} into the key's own home"


def _move_in(base: Agent, agent: Agent, files: list[Path], session_id: str, cwd: Path) -> None:
    """Copy ``files`` into the key's home, make them resumable there, then delete the base's."""
    copies = copy_into(base.home, agent.home, files)
    try:
        agent.after_hydrate(session_id, cwd)
    except BaseException:
        for path in copies:
            path.unlink(missing_ok=True)
        raise
    for path in files:
        path.unlink(missing_ok=True)


def copy_into(source_home: Path, home: Path, files: list[Path]) -> list[Path]:
    """Copy ``files`` (inside ``source_home``) to the same relative paths in ``home``, unless a copy at
    least as long is there already; the copies made. On an error the copies made so far are removed.
    Both homes are agents' to write: a file that is a link, or below one, on either side is not
    copied (logged), so a transcript replaced by a link to ``baton.db`` or another key's file is not
    copied, and a directory replaced by a link to elsewhere is not where baton writes."""
    copies: list[Path] = []
    try:
        for path in files:
            rel = path.relative_to(source_home)
            if _copy_one(source_home, home, rel):
                copies.append(home / rel)
    except BaseException:
        for made in copies:
            made.unlink(missing_ok=True)
        raise
    return copies


def _copy_one(source_home: Path, home: Path, rel: Path) -> bool:
    try:
        return nofollow.copy_beneath(source_home, rel, home, rel, keep_longer=True)
    except nofollow.Unsafe as exc:
        log.warning("%s is not copied from %s: %s", rel, source_home, exc)
        return False


def copy_conversation(settings: Settings, source: Key, agent: Agent, session_id: str, cwd: Path) -> bool:
    """Give ``agent`` (the key's adapter) a copy of ``source``'s conversation ``session_id``, from the
    source key's home on this machine, else from the base home (a source that has not run since key
    spaces came); made resumable from ``cwd``. False when neither has it (the caller hydrates from the
    source's snapshot); OSError or BatonError when copying fails."""
    for owner in (agent_for(source, settings), get_agent(source.agent, settings)):
        files = owner.transcript_files(session_id)
        if files:
            if copy_into(owner.home, agent.home, files):
                agent.after_hydrate(session_id, cwd)
            return True
    return False
