"""Reading what a repository's setup ran and printed before a run's agent
(``logs/<run id>-setup.jsonl``: baton's own notes, one JSON object a line starting
``{"type": "baton.``, between the lines the setup printed), for ``baton runs logs`` and the
dashboard's run page alike."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

MAX = 512 * 1024  # bytes of a setup's log read for a page; the rest is counted


@dataclass(frozen=True)
class Line:
    """One line of a setup's log: a ``step`` (a command it ran), a ``refused`` connection, or
    ``output`` (what the setup printed)."""

    kind: str
    text: str


def path_of(log_dir: Path, run_id: str) -> Path:
    return log_dir / f"{run_id}-setup.jsonl"


def read(path: Path, limit: int | None = MAX) -> tuple[list[Line], int]:
    """The log's lines (none when there is no log) and the bytes past ``limit`` (None: all of it) left
    unread."""
    try:
        with path.open("rb") as fh:
            data = fh.read(-1 if limit is None else limit)
            left = max(0, path.stat().st_size - len(data))
    except OSError:
        return [], 0
    return [_line(text) for text in data.decode("utf-8", "replace").splitlines()], left


def _line(text: str) -> Line:
    event = _event(text)
    if event is None:
        return Line("output", text)
    if event.get("type") == "baton.setup":
        return Line("step", f"setup: {event.get('command')} ({event.get('source')})")
    if event.get("type") == "baton.egress_refused":
        return Line("refused", f"refused {event.get('host')}:{event.get('port')}: {event.get('reason')}")
    return Line("output", text)


def _event(line: str) -> dict[str, object] | None:
    """A line that is baton's own note, else None (a line the setup printed)."""
    if not line.startswith('{"type": "baton.'):
        return None
    try:
        found = json.loads(line)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None
