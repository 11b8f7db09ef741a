"""Whether what baton keeps of its runs is private to its user: ``baton doctor``'s "data dir private"
line, and what ``baton doctor --fix`` tightens. baton makes the home 0700, its store and logs 0600
(:mod:`baton.files`), but never changes a home that exists: an older baton's is 0755, and an operator
may share one with a group on purpose. Doctor warns about a home with any group or other permission
(whoever it lets in reaches every prompt, result, log, transcript and credential inside), and about a
SQLite store outside the home that others can read; wider files in a private home are only noted.
``--fix`` takes the group and other permissions off the home, the SQLite store and its ``-wal`` and
``-shm`` (wherever it is), ``logs/`` and ``jobs/`` and every file in them; nothing deeper (the
worktrees, clones and agent homes are behind the home), and never through a link inside the home.
"""

from __future__ import annotations

import grp
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from baton.settings import Settings

OTHERS = 0o077  # the permissions of the group and of everyone else
LOG_DIRS = ("logs", "jobs")  # the event logs: logs/<run>.jsonl, jobs/<job>.events.jsonl


@dataclass(frozen=True)
class Wide:
    """A path that lets more than its owner in, and its permission bits."""

    path: Path
    mode: int

    @property
    def tightened(self) -> int:
        return self.mode & ~OTHERS


@dataclass(frozen=True)
class Tightened:
    """One path ``--fix`` changed (or could not change: ``error``)."""

    path: str
    was: str  # octal, as ``ls -l`` users say it: 0755
    now: str
    error: str | None = None


def store_file(settings: Settings) -> Path | None:
    """The SQLite store's database file (None for PostgreSQL or an in-memory store)."""
    url = settings.resolved_store_url
    if not url.startswith("sqlite"):
        return None
    database = sa.engine.make_url(url).database
    return Path(database).absolute() if database and database != ":memory:" else None


def wide_paths(settings: Settings) -> tuple[Wide | None, list[Wide]]:
    """The home when it is wider than 0700 (None: private, or not made yet), and the store's files, the
    log directories and the logs that are wider than baton makes them."""
    return _wide(settings.home), [w for path in _parts(settings) if (w := _wide(path, follow=False))]


def describe(settings: Settings) -> tuple[bool, str]:
    """(private, what doctor says): not private when the home lets anyone else in, or a store outside
    the home does."""
    home = settings.home
    try:
        mode = stat.S_IMODE(home.stat().st_mode)
    except OSError:
        return True, f"{home} is not made yet: baton makes it 0700, its store and logs 0600"
    wide_home, wide = wide_paths(settings)
    inside = [w for w in wide if _under(w.path, home) is not None]
    outside = [w for w in wide if w not in inside]
    fix = "`baton doctor --fix` takes the group and other permissions off"
    wider = f"{_some(inside, home)} wider than baton makes {'it' if len(inside) == 1 else 'them'}"
    if wide_home is None and not outside:
        if not inside:
            return True, f"{home} is {mode:04o}, its store and logs 0600: no other user can reach them"
        return True, f"{home} is {mode:04o}, so no other user can reach what is in it; {wider} ({fix})"
    said = []
    if wide_home is not None:
        said.append(
            f"{home} is {mode:04o}: {_who(home, mode)} can reach it, and in it every run's prompt, result "
            "and event log (the store, logs/, jobs/), the agents' transcripts and credentials"
            + (f"; {wider}" if inside else "")
        )
    said += [f"the store's {w.path} is {w.mode:04o}: {_who(w.path, w.mode)} can read it" for w in outside]
    return False, "; ".join(said) + f"; {fix} (the home 0700, the store and logs 0600)"


def tighten(settings: Settings) -> list[Tightened]:
    """Take the group and other permissions off the home, the store's files, the log directories and
    the logs (the module's docstring says why these); what was changed, in that order."""
    if not settings.home.is_dir():
        return []
    wide_home, wide = wide_paths(settings)
    done = []
    for w in [*([wide_home] if wide_home else []), *wide]:
        error = None
        try:
            os.chmod(w.path, w.tightened)
        except OSError as exc:
            error = exc.strerror or str(exc)
        done.append(Tightened(str(w.path), f"{w.mode:04o}", f"{w.tightened:04o}", error))
    return done


def _parts(settings: Settings) -> Iterator[Path]:
    """The store's files (where SQLite makes them), the log directories and the files in them."""
    database = store_file(settings)
    if database is not None:
        database = database.resolve()  # a link to a volume: SQLite writes where it points
        for suffix in ("", "-wal", "-shm"):
            yield Path(f"{database}{suffix}")
    for name in LOG_DIRS:
        folder = settings.home / name
        if folder.is_symlink():
            continue
        yield folder
        try:
            entries = list(os.scandir(folder))
        except OSError:  # not made yet, or not a directory (then _wide says nothing of it either)
            continue
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                yield Path(entry.path)


def _wide(path: Path, follow: bool = True) -> Wide | None:
    """``path`` when it lets more than its owner in; a link is followed only with ``follow`` (the home
    may be a link to a volume; in it, a link is no file of baton's)."""
    try:
        st = path.stat() if follow else path.lstat()
    except OSError:
        return None
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        return None
    mode = stat.S_IMODE(st.st_mode)
    return Wide(path, mode) if mode & OTHERS else None


def _who(path: Path, mode: int) -> str:
    """Who besides its owner the permission bits let in."""
    if not mode & 0o070:
        return "every local user"
    try:
        gid = path.stat().st_gid
        group = grp.getgrgid(gid).gr_name
    except OSError:
        group = "?"
    except KeyError:
        group = str(gid)
    return f"group {group}" + (" and every local user" if mode & 0o007 else "")


def _some(wide: list[Wide], home: Path) -> str:
    """``baton.db 0644, logs/x.jsonl 0644 and 10 more are`` (the first few, by path under the home)."""
    shown = [f"{_under(w.path, home)} {w.mode:04o}" for w in wide[:3]]
    more = len(wide) - len(shown)
    verb = "is" if len(wide) == 1 else "are"
    return ", ".join(shown) + (f" and {more} more" if more else "") + f" {verb}"


def _under(path: Path, home: Path) -> Path | None:
    """``path`` relative to the home (or to where the home's link points); None: outside it."""
    for root in (home, home.resolve()):
        if path.is_relative_to(root):
            return path.relative_to(root)
    return None
