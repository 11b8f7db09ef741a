"""A forge thread's question answered off the forge (``POST /v1/answers`` and the dashboard through
:func:`baton.service.answers.submit_answer`, ``baton answer`` through the same check): the thread waits
no more at once (active, counted as waiting nowhere), a second answer while the first's run is queued
is refused at once, and what the forge said meanwhile starts when the answer's run has ended; a run
submitted on the thread's key that is no answer is said in the status comment when it ends. ``baton
answer`` at the command line: test_forge_answered_cli.py."""

from __future__ import annotations

import pytest

from baton.asking.pending import answering, waiting
from baton.errors import NotWaiting
from baton.fleet import jobs
from baton.forge.data.records import BindingStatus
from baton.forge.data.tables import forge_store
from baton.forge.turn import dispatch
from baton.forge.turn.loop import ForgeLoop
from baton.forge.writes import publish
from baton.models import JobStatus
from baton.runner.request import RunRequest
from baton.service.answers import Key3, submit_answer
from tests.forge.turn.test_forge_loop import (  # noqa: F401 (fixtures)
    ASK,
    MemoryForge,
    comment,
    forge,
    idle,
    loop,
    origin,
)


def test_an_answer_off_the_forge_clears_the_wait_and_a_second_is_refused_at_once(
    loop: ForgeLoop,  # noqa: F811 (the fixture)
    forge: MemoryForge,  # noqa: F811 (the fixture)
) -> None:
    assert dispatch.handle(loop, comment(1, f"@baton add a greeting {ASK}")).status == "accepted"
    idle(loop)
    binding = forge_store(loop.store).get_binding("gh", "acme/api", 42)
    assert binding is not None and binding.status == BindingStatus.NEEDS_HUMAN
    assert binding.note == publish.ASKED
    slug = binding.repo_slug
    # the answer's run is queued (its executor is handed it below)
    job = submit_answer(loop.store, loop.settings, Key3("fake", slug, "issue-42"), "hi", "bob", "API")
    # the forge's thread waits no more, at once: active, and counted as waiting nowhere
    binding = forge_store(loop.store).get_binding("gh", "acme/api", 42)
    assert binding is not None and binding.status == BindingStatus.ACTIVE and binding.note is None
    assert forge_store(loop.store).list_bindings(status=BindingStatus.NEEDS_HUMAN) == []
    assert next(a for a in loop.store.list_audit(50) if a["action"] == "forge.resumed")["actor"] == "bob"
    # the question still reads as asked (no run has answered it), but a second answer is refused now
    assert waiting(loop.store, "fake", slug, "issue-42") is not None
    with pytest.raises(NotWaiting, match="an answer is on its way"):
        submit_answer(
            loop.store, loop.settings, Key3("fake", slug, "issue-42"), "hello", "carol", "dashboard"
        )
    with pytest.raises(NotWaiting, match="an answer is on its way"):  # baton answer's check
        answering(loop.store, "fake", slug, "issue-42", "hello", "dave (at the command line)")
    assert len(loop.store.list_jobs(limit=10)) == 2
    # a comment on the forge meanwhile waits for the answer's run, and starts when it has ended
    assert dispatch.handle(loop, comment(5, "and add a test")).status == "coalesced"
    loop.submit(job.id)
    idle(loop)
    jobs = loop.store.list_jobs(limit=10, oldest_first=True)
    assert [j.status for j in jobs] == [JobStatus.DONE] * 3, jobs
    assert [j.outcome for j in jobs] == ["needs_input", "succeeded", "succeeded"], jobs
    assert "hi" in jobs[1].request["prompt"] and "and add a test" in jobs[2].request["prompt"]
    # the answer's run is the thread's turn, published on the forge as any other: its own answer posted
    # and the one status comment says its run
    published = forge_store(loop.store).published(job.id)
    assert published is not None and published["outcome"] == "succeeded", published
    assert any(job.id in c or (jobs[1].result or {}).get("attempt_id", "-") in c for c in forge.answers())
    assert forge_store(loop.store).unpublished_turns() == []


def test_a_run_submitted_on_a_bound_threads_key_is_said_in_its_status_comment_when_it_ends(
    loop: ForgeLoop,  # noqa: F811 (the fixture)
    forge: MemoryForge,  # noqa: F811 (the fixture)
) -> None:
    """A run of the thread's key that no forge event made (submitted to the service, not an answer)
    is a turn of the thread too: when it ends, the one status comment names it and how it ended."""
    assert dispatch.handle(loop, comment(1, "@baton add a greeting")).status == "accepted"
    idle(loop)
    binding = forge_store(loop.store).get_binding("gh", "acme/api", 42)
    assert binding is not None
    request = RunRequest(agent="fake", repo=binding.repo_url, thread="issue-42", prompt="tidy it up")
    job = jobs.submit(loop.store, loop.settings, request, actor="bob")
    loop.submit(job.id)
    idle(loop)
    [status] = forge.statuses()
    assert f"`{job.id}` — **succeeded**" in status and publish.ELSEWHERE in status, status
    assert forge_store(loop.store).published(job.id) is None  # not a forge turn: nothing pushed for it
