"""What the CLI prints with, without Typer: the consoles, Rich escaping, tables, JSON, ages; and the
tables of more than one command (sessions).

Apart from :mod:`baton.cli.common` (which Typer's option types make cost ~70 ms more to import) so the
fast paths of :mod:`baton.cli.fast` print exactly what the Typer commands print.
"""

from __future__ import annotations

import json
import re
import sys
import time
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from rich.console import Console
    from rich.table import Table

    from baton.models import SessionRecord


@cache
def out() -> Console:
    """The console for results (stdout)."""
    # lazy: cold CLI
    from rich.console import Console

    return Console(soft_wrap=True)


@cache
def err() -> Console:
    """The console for progress, warnings and errors (stderr)."""
    # lazy: cold CLI
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def say(text: str, to_err: bool = False) -> None:
    """One line of plain text (never markup or an emoji code) on stdout, or stderr with ``to_err``:
    through Rich on a terminal, written as it is to a pipe, where Rich would add nothing but its
    import (~40 ms at the end of every ``baton run`` a dispatcher starts)."""
    stream = sys.stderr if to_err else sys.stdout
    if stream.isatty():
        (err() if to_err else out()).print(text, highlight=False, markup=False, emoji=False)
    else:
        stream.write(text + "\n")


def esc(value: object) -> str:
    """``value`` as text Rich prints literally: ``[claude]`` stays ``[claude]``, never markup."""
    # lazy: cold CLI
    from rich.markup import escape

    return escape(str(value))


def new_table(*columns: str, title: str | None = None) -> Table:
    """Every table the CLI prints, in one style: no box, two spaces between columns, a bold header
    (and a title above, left); a cell too long for its column wraps in it instead of being cut to
    ``…``. Print it with :func:`print_table`."""
    # lazy: cold CLI
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold", title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def natural(wide: bool) -> bool:
    """Whether tables print one line a row, every cell whole (each column as wide as its widest
    cell): with ``--wide``, and whenever stdout is not a terminal (a pipe, a file: what ``grep``,
    ``awk`` or ``less -S`` read), as ``gh`` and ``kubectl`` do. Only a terminal wraps cells."""
    if wide:
        return True
    isatty = getattr(out().file, "isatty", None)
    try:
        return not (isatty is not None and isatty())
    except ValueError:  # a closed stream
        return True


def print_table(table: Table, wide: bool = False) -> None:
    """Print a table: at natural width, one line a row, no cell wrapped or cut, with ``wide`` or
    when stdout is not a terminal (:func:`natural`); else at the terminal's width, with cells wrapped
    between words (:func:`wrap_between_words`)."""
    console = out()
    if not natural(wide):
        console.print(wrap_between_words(table))
        return
    # lazy: cold CLI
    from rich.segment import Segments

    # laid out with no width limit, as ``console.print`` would lay it out (``soft_wrap``: nothing
    # cropped); not by setting ``console.width``, which Rich ignores on a ``TERM=dumb`` terminal
    options = console.options.update(max_width=UNBOUNDED, no_wrap=True, overflow="ignore")
    console.print(Segments(console.render(table, options)))


UNBOUNDED = 1_000_000  # columns: a width no row reaches


def wrap_between_words(table: Table) -> Table:
    """``table`` with column widths for a terminal too narrow for it, set so that cells wrap between
    words: each column at least as wide as its longest word, the room left shared by how much more
    each would take. Rich on its own narrows the widest columns first and folds a header, an id or a
    size inside a word (``transcrip``/``ts``) even where every word could stay whole. When even the
    longest words do not fit, only the columns with the longest words are narrowed below them (a
    worker's long name folds, the short words stay whole)."""
    # lazy: cold CLI
    from rich.measure import Measurement

    console = out()
    options = console.options.update(max_width=UNBOUNDED)
    spans = []
    for column in table.columns:
        sizes = [Measurement.get(console, options, cell) for cell in (column.header, *column.cells)]
        spans.append((max(s.minimum for s in sizes), max(s.maximum for s in sizes)))
    room = console.width - 2 * (len(spans) - 1)  # two spaces between columns (``new_table``)
    if sum(hi for _, hi in spans) <= room or room < len(spans):
        return table  # it fits as it is; or not even one character a column: Rich's own layout
    cap = max(lo for lo, _ in spans)
    while sum(min(lo, cap) for lo, _ in spans) > room:
        cap -= 1
    least = [min(lo, cap) for lo, _ in spans]
    slack = [hi - lo for lo, (_, hi) in zip(least, spans, strict=True)]
    left = room - sum(least)
    widths = [lo + left * more // sum(slack) for lo, more in zip(least, slack, strict=True)]
    for i, more in enumerate(slack):  # what the rounding down left, to the first columns that take it
        widths[i] += max(min(room - sum(widths), least[i] + more - widths[i]), 0)
    for column, width in zip(table.columns, widths, strict=True):
        column.width = width
    return table


# printable ASCII but ":" (Rich reads ``:name:`` as an emoji): one column per character, no markup
PLAIN = re.compile(r"[ -9;-~]*\Z")


def print_rows(columns: list[str], rows: list[list[str]], wide: bool = False) -> None:
    """Print a table of plain text cells (not escaped), as :func:`new_table` and :func:`print_table`
    would. When it fits the width (or it prints at :func:`natural` width) and every cell is
    :data:`PLAIN`, Rich would give each column the width of its widest cell and put two spaces
    between columns: that is written here directly, since Rich's table layout costs ~1 ms a row
    (100 ms for 100 sessions) for the same bytes. Anything else (a cell to wrap, wide characters)
    goes through Rich."""
    console = out()
    widths = [max([len(column), *(len(row[i]) for row in rows)]) for i, column in enumerate(columns)]
    fits = natural(wide) or sum(widths) + 2 * (len(widths) - 1) <= console.width
    if fits and all(PLAIN.match(cell) for row in [columns, *rows] for cell in row):

        def line(cells: list[str]) -> str:
            return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

        plain = {"markup": False, "highlight": False, "emoji": False}
        console.print(line(columns), style="bold", **plain)  # type: ignore[arg-type]
        # the rows unstyled, as Rich would print them, but written a thousand lines at a time: Rich
        # makes a segment of every line first (``sessions ls --all``: 100,000 rows, ~100 MiB)
        for start in range(0, len(rows), 1000):
            console.file.write("".join(line(row) + "\n" for row in rows[start : start + 1000]))
        return
    table = new_table(*columns)
    for row in rows:
        table.add_row(*map(esc, row))
    print_table(table, wide)


def print_fields(data: dict[str, Any]) -> None:
    """A record as ``name: value`` lines for people (``--json`` gives it for scripts)."""
    for name, value in data.items():
        out().print(f"[bold]{esc(name)}[/bold]: {esc(field_text(value))}", highlight=False)


def field_text(value: Any) -> str:
    """A value as a person reads it, never a Python repr: ``-`` for none, ``yes``/``no``, a float to
    6 significant digits, ``a=1, b.c=2`` for a mapping (a nested one's keys dotted), ``a, b`` for a list."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_flat(v)}" for k, v in _dotted(value)) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(map(_flat, value)) or "-"
    return str(value)


def _dotted(mapping: dict[Any, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """A mapping's items, a nested mapping's keys joined with dots (``context.tokens``)."""
    items: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        items += _dotted(value, f"{name}.") if isinstance(value, dict) and value else [(name, value)]
    return items


def _flat(value: Any) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def ago(ts: float | None) -> str:
    """A timestamp as a short age for tables: ``12s ago``, ``5m ago``, ``in 29d``."""
    if not ts:
        return "-"
    delta = time.time() - ts
    span = abs(delta)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if span >= size or unit == "s":
            text = f"{int(span // size)}{unit}"
            break
    return f"{text} ago" if delta >= 0 else f"in {text}"


def session_rows(rows: Iterable[SessionRecord], wide: bool) -> tuple[list[str], list[list[str]]]:
    """Sessions as :func:`print_rows` takes them: at 80 columns by default; ``wide`` adds the session
    id, attempts, expiry, worktree."""
    columns = ["agent", "repo", "thread", "status", "last outcome", "last used"]
    if wide:
        columns += ["session", "attempts", "expires", "worktree"]
    cells = []
    for s in rows:
        row = [
            s.agent,
            s.repo,
            s.thread,
            s.status.value,
            s.last_outcome.value if s.last_outcome else "-",
            ago(s.last_used_at),
        ]
        if wide:
            row += [s.agent_session_id or "-", str(s.attempts), ago(s.expires_at), s.worktree]
        cells.append(row)
    return columns, cells
