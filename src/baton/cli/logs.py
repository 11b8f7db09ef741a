"""``baton runs logs``: a run's event log, rendered (``baton.agents.events``) or raw, optionally followed."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from baton.cli.common import esc, out

if TYPE_CHECKING:
    from baton.agents.events import Entry
    from baton.models import RunRecord
    from baton.store.base import Store

STYLE = {
    "text": "",
    "tool": "[cyan]▶ {}[/cyan]",
    "output": "[dim]  {}[/dim]",
    "error": "[red]✗ {}[/red]",
    "info": "[dim]· {}[/dim]",
    "done": "[green]■ {}[/green]",
}


def print_log(store: Store, record: RunRecord, follow: bool, raw: bool) -> None:
    """Print the log from the start; with ``follow``, keep printing until the run has ended."""
    from baton.agents.events import LogRenderer

    renderer = LogRenderer(record.agent)
    for lines in _read_lines(Path(record.log_path), follow, lambda: _running(store, record.id)):
        if raw:
            sys.stdout.write("".join(f"{line}\n" for line in lines))
            sys.stdout.flush()
        else:
            for entry in renderer.feed(lines):
                print_entry(entry)
    for entry in renderer.flush():
        print_entry(entry)


def print_entry(entry: Entry) -> None:
    style = STYLE.get(entry.kind, "")
    text = esc(entry.text)
    out().print(style.format(text) if style else text, highlight=False)


def _running(store: Store, run_id: str) -> bool:
    from baton.models import Outcome

    current = store.get_run(run_id)
    return current is not None and current.outcome == Outcome.RUNNING


def _read_lines(path: Path, follow: bool, running: Callable[[], bool]) -> Iterator[list[str]]:
    """Whole lines appended to ``path`` since the last read. With ``follow``, one more read after the
    run has ended, so the tail it wrote just before the end is never missed."""
    from baton.runner.logtail import LogTail

    tail = LogTail(path)
    while True:
        still = follow and running()
        if lines := tail.read(final=not still):
            yield lines
        if not still:
            return
        time.sleep(0.2)
