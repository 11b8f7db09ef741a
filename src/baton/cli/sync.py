"""``baton sync``: bring upstream into a thread's worktrees now, between turns, and move the threads
stacked on it (onto its new tip, or onto the default branch once it was merged)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from baton.cli.common import JsonOpt, RepoOpt, ThreadOpt, cli_store, emit_json, esc, out
from baton.errors import exit_code_of
from baton.models import Outcome, SyncHow


class How(StrEnum):
    """What ``--how`` offers: a sync now is a merge or a rebase (``off``, a turn's default, syncs nothing)."""

    MERGE = "merge"  # merge the remote branch and the moved base
    REBASE = "rebase"  # replay the key's own commits onto them


# a key's sync result -> the outcome its exit code is that of (anything else, "failed": failed)
OUTCOMES = {
    "integrated": Outcome.SUCCEEDED,
    "unchanged": Outcome.SUCCEEDED,
    "skipped": Outcome.SUCCEEDED,
    "conflict": Outcome.CONFLICT,
}


def sync_cmd(
    repo: RepoOpt,
    thread: ThreadOpt,
    how: Annotated[How, typer.Option(help="merge or rebase")] = How.REBASE,
    merged: Annotated[
        bool,
        typer.Option(
            "--merged",
            help="the thread's PR was merged: restack its downstream threads onto the default branch",
        ),
    ] = False,
    wait: Annotated[float, typer.Option(help="wait up to S seconds for a key that is running")] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Sync every key of THREAD with upstream (a conflict leaves a worktree as it was), then its stacked
    threads; each key's next turn is told what came in. Exit 5 when a key conflicted (as `baton run`
    does), 1 when any failed."""
    # lazy: cold CLI
    from baton.keys import parse_repo
    from baton.sync.upstream import sync_thread

    with cli_store() as (settings, store):
        slug = parse_repo(repo).slug
        done = [s.to_json() for s in sync_thread(settings, store, slug, thread, SyncHow(how), merged, wait)]
    if as_json:
        emit_json(done)
    else:
        for item in done:
            said = (
                item["result"]
                if item["summary"] == item["result"]
                else f"{item['result']} — {item['summary']}"
            )
            out().print(esc(f"{item['key']}: {said}"), highlight=False)
    raise typer.Exit(exit_code_of(*(OUTCOMES.get(str(item["result"]), Outcome.FAILED) for item in done)))
