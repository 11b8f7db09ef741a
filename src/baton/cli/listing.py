"""Paged listings (``baton sessions ls``, ``baton runs ls``), as ``gh ... list`` pages them:
:data:`DEFAULT_LIMIT` rows, most recent first, unless ``--limit N`` or ``--all``; a note on stderr of
how many more there are (stdout stays the table or the JSON a script reads); and with ``--all
--json`` each record written as it is read from the store's keyset pages (:mod:`baton.store.sql_listing`),
so the memory is one page's, the text ``json.dumps(..., indent=2)``'s to the byte. No Typer here:
:mod:`baton.cli.fast` prints through these functions too.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from baton.models import SessionRecord

DEFAULT_LIMIT = 30  # rows a listing shows unless told otherwise (gh's default)
FLUSH_EVERY = 64 * 1024  # characters of JSON gathered before a write


def page_limit(limit: int | None, every: bool) -> int | None:
    """The rows to show: ``limit``, or :data:`DEFAULT_LIMIT`; None (all of them) with ``--all``."""
    # lazy: cold CLI
    from baton.errors import BadInput

    if every and limit is not None:
        raise BadInput("--limit and --all: give one of them")
    if limit is not None and limit < 1:
        raise BadInput(f"--limit must be at least 1, not {limit}")
    return None if every else (limit or DEFAULT_LIMIT)


def json_chunks(items: Iterable[Any]) -> Iterator[str]:
    """``json.dumps(list(items), indent=2, default=str)`` in pieces, one item at a time."""
    first = True
    for item in items:
        text = json.dumps(item, indent=2, default=str).replace("\n", "\n  ")
        yield ("[\n  " if first else ",\n  ") + text
        first = False
    yield "[]" if first else "\n]"


def emit_json_list(items: Iterable[Any]) -> int:
    """Write ``items`` to stdout as one JSON array (a line of its own), gathering about
    :data:`FLUSH_EVERY` characters per write; how many items were written."""
    count, pending, size = 0, [], 0
    for chunk in json_chunks(items):
        count += 1
        pending.append(chunk)
        size += len(chunk)
        if size >= FLUSH_EVERY:
            sys.stdout.write("".join(pending))
            pending, size = [], 0
    sys.stdout.write("".join(pending) + "\n")
    return count - 1  # the last chunk closes the array


def emit_json_with(head: dict[str, Any], name: str, items: Iterable[Any]) -> None:
    """Write ``{**head, name: list(items)}`` as :func:`emit_json_list` writes a list: ``items`` one
    at a time, the text ``json.dumps(..., indent=2)``'s."""
    text = json.dumps(head, indent=2, default=str)
    opening = (text[:-2] + ",\n") if head else "{\n"  # the head's members, its closing brace cut
    sys.stdout.write(opening + f"  {json.dumps(name)}: ")
    pending, size = [], 0
    for chunk in json_chunks(items):
        pending.append(chunk.replace("\n", "\n  "))
        size += len(chunk)
        if size >= FLUSH_EVERY:
            sys.stdout.write("".join(pending))
            pending, size = [], 0
    sys.stdout.write("".join(pending) + "\n}\n")


def more_note(shown: int, total: int, noun: str, order: str) -> str | None:
    """The line saying what the page left out, or None when it shows everything."""
    if total <= shown:
        return None
    return (
        f"Showing {shown:,} of {total:,} {noun}, {order}: "
        f"--limit N shows more, --all every one ({total - shown:,} more)."
    )


def say_more(shown: int, total: int, noun: str, order: str) -> None:
    """Print :func:`more_note` on stderr (a pipe reading stdout gets only the rows)."""
    note = more_note(shown, total, noun, order)
    if note is not None:
        # lazy: cold CLI
        from baton.cli.render import say

        say(note, to_err=True)


SESSIONS_ORDER = "most recently used first"


class SessionLister(Protocol):
    """What a sessions listing reads: the SQL store, or the fast path's :mod:`baton.cli.fast.lite`."""

    def list_sessions(
        self, agent: str | None = None, repo: str | None = None, *, limit: int | None = None
    ) -> list[SessionRecord]: ...
    def iter_sessions(self, agent: str | None = None, repo: str | None = None) -> Iterator[SessionRecord]: ...
    def count_sessions(self, agent: str | None = None, repo: str | None = None) -> int: ...


def list_sessions_page(
    store: SessionLister, agent: str | None, repo: str | None, limit: int | None, as_json: bool, wide: bool
) -> None:
    """Print one page of sessions (``limit``; every one, read a page at a time, for None) as a table
    or JSON, and the note of how many more there are."""
    # lazy: cold CLI
    from baton.cli.render import print_rows, session_rows

    if limit is None:
        rows: Iterable[SessionRecord] = store.iter_sessions(agent=agent, repo=repo)
    else:
        rows = store.list_sessions(agent=agent, repo=repo, limit=limit)
    if as_json:
        shown = emit_json_list(s.to_json() for s in rows)
    else:
        columns, cells = session_rows(rows, wide)  # cells only: the records of a page go as read
        print_rows(columns, cells, wide)
        shown = len(cells)
    if limit is not None and shown == limit:
        say_more(shown, store.count_sessions(agent=agent, repo=repo), "sessions", SESSIONS_ORDER)
