"""What a repository's setups made (``.venv``, ``node_modules``, ``build``: the results its stamps name)
kept out of git for every key of the repository, whatever the repository's ``.gitignore`` says: listed
in the cache clone's ``info/exclude``, which every worktree of it reads and no agent can write (the
walls keep the common dir read-only but for its objects and the key's branch). So baton's checkpoints
never carry a prepared environment (7-10 MB each, a repository shipped without ``.gitignore``), and an
agent's own ``git add -A`` does not commit one. baton's lines are a block of their own; the operator's
lines beside it are kept. A path that git's exclude syntax would read as more than itself (a glob, a
negation, a line break) is left out rather than escaped: only a plain path is excluded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from baton.files import atomic_write_text
from baton.workspace import nofollow
from baton.workspace.locks import file_lock

BEGIN = "# baton: what the repository's setups made (never the agent's work); kept by baton"
END = "# baton: end"
_PLAIN = re.compile(r"[A-Za-z0-9._+@=,-]+(/[A-Za-z0-9._+@=,-]+)*")


def exclude(home: Path, cache: Path, slug: str, paths: Iterable[str]) -> list[str]:
    """Add ``paths`` (relative to a worktree) to the cache clone's exclude block; those added."""
    wanted = sorted({p.strip("/") for p in paths if _PLAIN.fullmatch(p.strip("/")) and ".." not in p})
    if not wanted:
        return []
    target = cache / "info" / "exclude"
    with file_lock(home, f"exclude:{slug}", timeout=30):
        text = nofollow.read_text(target) or ""
        before, block, after = _split(text)
        have = {line.removeprefix("/") for line in block}
        added = [p for p in wanted if p not in have]
        if not added:
            return []
        lines = sorted({*block, *(f"/{p}" for p in added)})
        body = "".join(f"{line}\n" for line in [*before, BEGIN, *lines, END, *after])
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, body)
    return added


def _split(text: str) -> tuple[list[str], list[str], list[str]]:
    """The exclude file's lines before baton's block, in it, and after it."""
    lines = text.splitlines()
    if BEGIN not in lines or END not in lines[lines.index(BEGIN) :]:
        return lines, [], []
    start = lines.index(BEGIN)
    end = lines.index(END, start)
    return lines[:start], lines[start + 1 : end], lines[end + 1 :]
