"""``baton runs logs``: a run's event log, rendered (``baton.agents.events``) or raw, optionally followed."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from baton.cli.common import err, esc, out
from baton.models import JobStatus, Outcome, SessionStatus

if TYPE_CHECKING:
    from baton.agents.events import Entry
    from baton.models import RunRecord
    from baton.runner.runids import RunRef
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
    # lazy: cold CLI
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


def print_run_log(store: Store, ref: RunRef, follow: bool, raw: bool) -> None:
    """The log of the attempt ``ref`` names, or of every attempt of the run in turn, each under a
    header when there are several; with ``follow``, attempts that start later too, until the run ends."""
    if ref.named is not None:
        print_log(store, ref.named, follow, raw)
        return
    first = store.run_attempts(ref.id)[:1]
    if first and not raw:  # --raw: the agent's event log as it is
        print_setup(Path(first[0].log_path).parent, ref.id)
    done: set[str] = set()
    while True:
        attempts = [a for a in store.run_attempts(ref.id) if a.id not in done]
        for attempt in attempts:
            if not raw and (done or len(attempts) > 1):
                out().print(
                    f"[bold]── attempt {attempt.attempt} ({attempt.mode.value})[/bold]", highlight=False
                )
            print_log(store, attempt, follow, raw)
            done.add(attempt.id)
        if not follow or not run_going(store, ref):
            break
        time.sleep(0.2)
    if not done:
        err().print(
            f"run {ref.id} is queued: no attempt has started yet (--follow waits for it)", highlight=False
        )


def print_setup(log_dir: Path, run_id: str) -> None:
    """The output of the repository's setup that ran before the run's agent (a setup that failed is the
    attempt's own log instead): each command named, then what it printed."""
    # lazy: cold CLI
    from baton.environment import setuplog

    path = setuplog.path_of(log_dir, run_id)
    lines, _left = setuplog.read(path, limit=None)
    if not lines:
        return
    out().print(f"[bold]── the repository's setup ({esc(path.name)})[/bold]", highlight=False)
    style = {"step": STYLE["tool"], "refused": STYLE["error"], "output": "[dim]  {}[/dim]"}
    for line in lines:
        out().print(style[line.kind].format(esc(line.text)), highlight=False)


def run_going(store: Store, ref: RunRef) -> bool:
    """Whether more of the run may come: its job has not ended, or (a ``baton run``) an attempt runs or
    its key is still held by it (between a failed attempt and its retry)."""
    if ref.job is not None:
        job = store.get_job(ref.id)
        return job is not None and job.status != JobStatus.DONE
    attempts = store.run_attempts(ref.id)
    if not attempts or any(a.outcome == Outcome.RUNNING for a in attempts):
        return bool(attempts)
    last = attempts[-1]
    session = store.get_session(last.agent, last.repo, last.thread)
    newest = store.list_runs(last.agent, last.repo, last.thread, limit=1)
    return session is not None and session.status == SessionStatus.RUNNING and newest[0].run_id == ref.id


def print_entry(entry: Entry) -> None:
    style = STYLE.get(entry.kind, "")
    text = esc(entry.text)
    out().print(style.format(text) if style else text, highlight=False)


def _running(store: Store, run_id: str) -> bool:
    current = store.get_run(run_id)
    return current is not None and current.outcome == Outcome.RUNNING


def _read_lines(path: Path, follow: bool, running: Callable[[], bool]) -> Iterator[list[str]]:
    """Whole lines appended to ``path`` since the last read. With ``follow``, one more read after the
    run has ended, so the tail it wrote just before the end is never missed."""
    # lazy: cold CLI
    from baton.runner.logtail import LogTail

    tail = LogTail(path)
    while True:
        still = follow and running()
        if lines := tail.read(final=not still):
            yield lines
        if not still:
            return
        time.sleep(0.2)
