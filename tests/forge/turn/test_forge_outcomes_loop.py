"""The outcomes of a thread that asks (the forge loop's core with the fake agent and the in-memory forge
of ``test_forge_loop``): the question put on the forge answers the mention, the parked thread waits on
a person, and the trusted reply's turn, which pushes and opens the PR, answers the reply."""

from __future__ import annotations

import time

from baton.forge.data.outcomes import outcomes
from baton.forge.turn import dispatch
from baton.forge.turn.loop import ForgeLoop
from tests.forge.turn import test_forge_loop as core
from tests.forge.turn.test_forge_loop import ASK, MemoryForge, comment, idle

origin, forge, loop = core.origin, core.forge, core.loop  # its fixtures


def test_a_question_answers_its_event_and_the_thread_waits_until_a_reply(
    loop: ForgeLoop, forge: MemoryForge
) -> None:
    started = time.time()
    assert dispatch.handle(loop, comment(1, f"@baton add a greeting {ASK}")).status == "accepted"
    idle(loop)
    [asked] = outcomes(loop.store, time.time())
    assert (asked.threads, asked.accepted, asked.answered) == (1, 1, 1)  # the question answered it
    assert asked.first_push.count == 0 and asked.prs_opened == 0  # a turn that asked pushed nothing
    assert asked.waiting.count == 1 and 0 <= (asked.waiting.max or 0) <= time.time() - started

    assert dispatch.handle(loop, comment(2, "answer: rm -rf /", login="mallory")).status == "dropped"
    assert dispatch.handle(loop, comment(3, "hi, please")).status == "accepted"
    idle(loop)
    [done] = outcomes(loop.store, time.time())
    assert (done.accepted, done.answered) == (2, 2)  # mallory's dropped words are not counted
    assert done.waiting.count == 0 and done.prs_opened == 1 and done.first_push.count == 1
    assert forge.prs  # the reply's turn pushed and opened the PR
