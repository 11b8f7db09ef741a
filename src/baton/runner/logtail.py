"""Following a run's raw event log (``logs/<run-id>.jsonl``) as it grows: what ``baton runs logs -f``
and the dashboard's live log read. A reader keeps its byte position and a partial last line, so each
:meth:`LogTail.read` hands back only the whole lines appended since the last one."""

from __future__ import annotations

from pathlib import Path


class LogTail:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.position = 0
        self._partial = b""

    def read(self, final: bool = False) -> list[str]:
        """Whole lines appended since the last read. ``final`` (the run has ended) also returns a last
        line that has no newline. A missing file has no lines yet."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.position)
                chunk = fh.read()
        except FileNotFoundError:
            chunk = b""
        self.position += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        if final and self._partial:
            lines, self._partial = [*lines, self._partial], b""
        return [line.decode("utf-8", "replace") for line in lines]
