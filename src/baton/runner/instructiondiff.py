"""What changed in an agent's instruction files between two scans (:mod:`baton.runner.instructions`):
the files changed, added and removed, and for the prompt a unified diff (difflib) of each, bounded per
file and in all. A file whose text was not kept says why instead: binary or not UTF-8, too long to
keep, a symbolic link (named, never followed). The texts are the agent's to write: the diff is fenced
with more backticks than any run of them inside it, and never holds more than the room it is given.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PER_FILE = 12_000  # characters of one file's diff in a prompt at most

Entries = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Change:
    """The instruction files that differ between two scans, and what a prompt says of them."""

    changed: tuple[str, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    text: str  # for the agent: which files, and the bounded diff

    @property
    def summary(self) -> str:
        """For the run's note: ``changed: CLAUDE.md; added: .mcp.json``."""
        parts = [
            f"{what}: {', '.join(paths[:10])}{f' (+{len(paths) - 10} more)' if len(paths) > 10 else ''}"
            for what, paths in (("changed", self.changed), ("added", self.added), ("removed", self.removed))
            if paths
        ]
        return "; ".join(parts)


def same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two entries of one path hold the same thing (kind, digest, a link's target, a long
    file's size)."""
    keys = ("kind", "sha256", "target")
    if any(a.get(k) != b.get(k) for k in keys):
        return False
    return a.get("kind") != "big" or a.get("size") == b.get("size")


def describe(before: Entries, after: Entries, room: int) -> Change | None:
    """The change from ``before`` to ``after`` (None when there is none), its text within ``room``
    characters of diff."""
    changed = tuple(sorted(p for p in set(before) & set(after) if not same(before[p], after[p])))
    added = tuple(sorted(set(after) - set(before)))
    removed = tuple(sorted(set(before) - set(after)))
    if not (changed or added or removed):
        return None
    lines = [
        "Your instruction files in the working directory changed since this conversation last saw them "
        "(its earlier turns went by what they said then); what they say now holds."
    ]
    for what, paths in (("Changed", changed), ("Added", added), ("Removed", removed)):
        if paths:
            lines.append(f"{what}: {', '.join(paths)}")
    blocks, left = [], room
    for path in (*changed, *added):
        block = _block(path, before.get(path), after[path], min(left, PER_FILE))
        left -= len(block)
        blocks.append(block)
    diff = "\n".join(b for b in blocks if b)
    if diff:
        fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", diff)), default=0))
        lines.append(f"What changed, from what you saw to what is there now:\n{fence}diff\n{diff}\n{fence}")
    return Change(changed, added, removed, "\n".join(lines))


def _block(path: str, old: Mapping[str, Any] | None, new: Mapping[str, Any], room: int) -> str:
    """One file's part of the diff: a unified diff, or a line saying why there is none."""
    if room <= 0:
        return f"# {path}: (its diff does not fit in this prompt; read the file)"
    said = _why_not(path, new)
    if said:
        return said[:room]
    old_text = old.get("text") if old is not None and old.get("kind") == "text" else None
    if old is not None and not isinstance(old_text, str):
        why = _why_not(path, old) or f"# {path}: (its earlier text was not kept)"
        header = why.replace(path + ":", path + ": before:", 1) + "\n"
    else:
        header = ""
    text_a = old_text if isinstance(old_text, str) else ""
    text_b = str(new.get("text"))
    diff = list(
        difflib.unified_diff(
            text_a.splitlines(keepends=True),
            text_b.splitlines(keepends=True),
            "/dev/null" if old is None else f"a/{path}",
            f"b/{path}",
            n=3,
        )
    )
    cut = bool(new.get("cut") or (old is not None and old.get("cut")))
    if not diff:
        return f"# {path}: (changed beyond the first 64 KiB kept of it: read the file)"
    note = f"# {path}: (only its first 64 KiB are compared)\n" if cut else ""
    return _bounded(header + note + "".join(_ended(line) for line in diff), room)


def _why_not(path: str, entry: Mapping[str, Any]) -> str | None:
    """Why ``entry`` has no text to diff, as a line; None when it has one."""
    kind = entry.get("kind")
    if kind == "link":
        target = str(entry.get("target") or "?")
        return f"# {path}: a symbolic link to {target!r} (not followed)"
    if kind == "binary":
        return f"# {path}: binary or not UTF-8 ({entry.get('size', 0)} bytes): not shown"
    if kind == "big":
        return f"# {path}: {entry.get('size', 0)} bytes, too long to compare whole: not shown"
    if kind != "text":
        return f"# {path}: not a regular file: not read"
    if entry.get("config"):
        return f"# {path}: configuration, whose text baton does not keep (it may hold credentials): read it"
    if not isinstance(entry.get("text"), str):
        return f"# {path}: too much instruction text to keep it all: not shown"
    return None


def _ended(line: str) -> str:
    return line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"


def _bounded(text: str, room: int) -> str:
    """``text`` within ``room`` characters, cut at a line, saying how many lines were left out."""
    if len(text) <= room:
        return text.rstrip("\n")
    lines, kept, size = text.splitlines(keepends=True), [], 0
    for line in lines:
        if size + len(line) > room - 60:
            break
        kept.append(line)
        size += len(line)
    return "".join(kept) + f"… ({len(lines) - len(kept)} more lines of this diff not shown: read the file)"
