"""What ``baton doctor -r REPO`` says of a repository's environment, without running anything: the
files :func:`~baton.environment.discover.discover` reads are taken from a commit of the cache clone
(``git ls-tree`` and ``git cat-file``, never a checkout of the rest) into a private temporary
directory, as the commit has them (a link stays a link, a directory a directory), so the plan found
is the one a thread starting there would get, refused for the same reasons. Their contents are data:
nothing is run, nothing is followed.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from baton.environment import BATON_INPUTS, BATON_MAINTAIN, SOURCES, named
from baton.environment.discover import MAX_FILE, Unreadable, discover, is_lock_path
from baton.environment.plan import SetupPlan
from baton.environment.testcmd import FILES, HEAD, test_command
from baton.workspace import nofollow
from baton.workspace.gitcmd import run_git

LARGEST_INPUT = 256 << 20  # a lock file larger than this is not read (it is named, not hashed)


@dataclass(frozen=True)
class Survey:
    """A commit's setup as a thread would find it: the plan (or why it cannot be used) and the test
    command its instruction files name."""

    commit: str
    plan: SetupPlan | None
    error: str | None = None  # the setup exists but cannot be used (a link, malformed, too large)
    tests: tuple[str, str] | None = None  # (the file, the command)


def survey(cache: Path, commit: str, configured: str | None, env: dict[str, str] | None = None) -> Survey:
    """The setup ``commit`` of the cache clone has (``configured``: the setup that overrides it)."""
    with tempfile.TemporaryDirectory(prefix="baton-survey-") as tmp:
        root = Path(tmp)
        materialize(cache, commit, root, env)
        tests = test_command(root)
        try:
            return Survey(commit, discover(root, configured), tests=tests)
        except Unreadable as exc:
            return Survey(commit, None, str(exc), tests)


def materialize(cache: Path, commit: str, root: Path, env: dict[str, str] | None = None) -> None:
    """Write the files discover and the test command read, as ``commit`` has them, under ``root``."""
    paths = [*SOURCES, BATON_MAINTAIN, BATON_INPUTS, *FILES]
    entries = _entries(cache, commit, paths, env)
    listed = _entries(cache, commit, [], env, recursive=True)  # a monorepo's web/package-lock.json too
    entries += [e for e in listed if is_lock_path(e[3]) and e[3] not in paths]
    _write(cache, entries, root, _limit, env)
    more = _named(root)
    if more:  # what .baton/inputs names, files and directories whole, as the commit has them
        _write(cache, _entries(cache, commit, more, env, recursive=True), root, _limit, env)


def _named(root: Path) -> list[str]:
    """What a ``.baton/inputs`` written under ``root`` names (none when it is missing or bad: discover
    then says why, reading it again)."""
    try:
        return named.names(
            nofollow.read_beneath(root, BATON_INPUTS)[: named.LIMIT].decode("utf-8", "replace")
        )
    except (OSError, named.BadNames):
        return []


def materialize_paths(
    cache: Path, commit: str, root: Path, paths: list[str], limit: int, env: dict[str, str] | None = None
) -> None:
    """Write ``paths`` as ``commit`` has them under ``root``, each at most ``limit`` bytes (a reader
    that refuses larger ones is given one byte past it); a path the commit lacks is not written."""
    if paths:
        _write(cache, _entries(cache, commit, paths, env), root, lambda _path: limit + 1, env)


def _write(
    cache: Path,
    entries: list[tuple[str, str, str, str]],
    root: Path,
    limit: Callable[[str], int],
    env: dict[str, str] | None,
) -> None:
    for mode, kind, oid, path in entries:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == "120000":
            os.symlink("(a link in the repository: never followed)", target)
        elif kind != "blob":
            target.mkdir(exist_ok=True)
        else:
            _write_blob(cache, oid, target, limit(path), env)


def _limit(path: str) -> int:
    """How much of a file is read: a setup file one byte past its limit (so discover refuses it as
    too large), an instruction file its head, a lock file whole (bounded)."""
    if path in FILES:
        return HEAD
    return MAX_FILE + 1 if path in SOURCES or path == BATON_MAINTAIN else LARGEST_INPUT


def _entries(
    cache: Path, commit: str, paths: list[str], env: dict[str, str] | None, recursive: bool = False
) -> list[tuple[str, str, str, str]]:
    """``git ls-tree`` of ``paths`` in ``commit`` (none: its root; ``recursive``: the files under a
    directory too): (mode, type, object, path)."""
    args = ["ls-tree", "-z", "--full-tree", *(["-r"] if recursive else []), commit, "--", *paths]
    out = run_git(args, cwd=cache, env=env, raw=True)
    found = []
    for line in out.split("\0"):
        head, _, path = line.partition("\t")
        parts = head.split()
        if len(parts) == 3 and path and ".." not in Path(path).parts and not path.startswith("/"):
            found.append((parts[0], parts[1], parts[2], path))
    return found


def _write_blob(cache: Path, oid: str, target: Path, limit: int, env: dict[str, str] | None) -> None:
    """The blob's first ``limit`` bytes (a lock file over it is left empty: named, not hashed)."""
    base = ["git", "-C", str(cache), "cat-file"]
    sized = subprocess.run([*base, "-s", oid], env=env, capture_output=True, stdin=subprocess.DEVNULL)
    if sized.returncode != 0:
        raise OSError(f"git cat-file -s {oid}: {sized.stderr.decode(errors='replace').strip()[-300:]}")
    size = int(sized.stdout)
    if size > limit and limit == LARGEST_INPUT:
        target.write_bytes(b"")
        return
    with subprocess.Popen(
        [*base, "blob", oid], env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    ) as proc:
        assert proc.stdout is not None
        data = proc.stdout.read(limit)
        proc.kill()
    target.write_bytes(data)
