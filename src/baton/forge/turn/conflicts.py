"""A moved base: the bound PRs onto a branch that was pushed to are asked whether they can still be
merged, and one that cannot becomes a ``conflict`` event (its turn merges the base and resolves).

Forges compute mergeability after a push, in the background (GitHub answers ``null`` meanwhile), and
send no event when it changes: an undecided answer is asked again a few times, seconds apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from baton import retry
from baton.forge.data.model import Actor, ForgeEvent, Outcome, ThreadInfo
from baton.forge.data.records import FeedbackKind
from baton.forge.turn import dispatch
from baton.forge.turn.loop import ForgeLoop
from baton.forge.turn.threads import bound_threads

TRIES = (0.0, 2.0, 4.0, 8.0)  # seconds before each look at an undecided PR
MAX_PRS = 50  # bound PRs of one repository looked at per push


def base_moved(
    loop: ForgeLoop, forge: str, repo: str, branch: str, sleep: Callable[[float], None] = time.sleep
) -> list[Outcome]:
    """What became of each bound, open PR onto ``branch`` that can no longer be merged."""
    client = loop.client(forge)
    undecided = [b.pr for b in bound_threads(loop, forge, repo) if b.pr is not None][:MAX_PRS]
    outcomes: list[Outcome] = []

    def look() -> list[int]:
        """Each undecided PR asked once more: those still undecided."""
        nonlocal undecided
        waiting: list[int] = []
        for number in undecided:
            info = client.thread(repo, number, pr=True)
            if info.state != "open" or info.base_ref != branch:
                continue
            if info.mergeable is None:
                waiting.append(number)
            elif info.mergeable is False and info.head_sha:
                outcomes.append(dispatch.handle(loop, conflict_event(forge, repo, info), delivery="push"))
        undecided = waiting
        return waiting

    if not undecided:
        return outcomes
    sleep(TRIES[0])
    retry.Retrying(
        retry=retry.retry_if_result(bool),  # some are still undecided
        wait=lambda state: TRIES[state.attempt_number],
        stop=retry.stop_after_attempt(len(TRIES)),
        sleep=sleep,
        retry_error_callback=lambda _state: None,  # still undecided after the last look: left as they are
    )(look)
    return outcomes


def conflict_event(forge: str, repo: str, info: ThreadInfo) -> ForgeEvent:
    return ForgeEvent(
        forge=forge,
        repo=repo,
        number=info.number,
        kind=FeedbackKind.CONFLICT,
        identity=f"conflict:{info.head_sha}:{info.base_ref}",
        actor=Actor("forge"),
        url=info.url,
        is_pr=True,
        head_sha=info.head_sha,
        from_fork=info.from_fork,
        title=info.title,
    )
