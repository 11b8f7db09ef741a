"""Starting a thread's next turn (:func:`kick`): every event that waited, coalesced into one turn,
under a store lease of the conversation, within the thread's budgets (turns per CI failure, turns a
day; a spent one parks the thread, :func:`needs_human`, and says so once); the turn's prompt, access
and run request; the places beside the forge that its events came from hear that it started.
"""

from __future__ import annotations

import logging

from baton import tracing
from baton.asking.pending import answer_to, waiting
from baton.caps.words import parked_text
from baton.errors import BadInput, Busy
from baton.fleet import jobs
from baton.forge.data.model import ForgeEvent, Outcome
from baton.forge.data.records import Binding, BindingStatus, EventRecord, EventStatus, FeedbackKind
from baton.forge.data.tables import forge_store
from baton.forge.kinds.intake import Message, Said
from baton.forge.turn import budget, decisions, open_merge, places, prompts
from baton.forge.turn.loop import ForgeLoop
from baton.forge.turn.threads import follow_config
from baton.models import Access, JobStatus, OnConflict, OnPermission, SyncHow
from baton.runner.request import RunRequest
from baton.store.leases import key_lease

log = logging.getLogger("baton.forge")
DAY = 86_400.0
ACCESS_RANK = {Access.READ: 0, Access.EDIT: 1, Access.FULL: 2}


@tracing.traced("forge.kick")
def kick(loop: ForgeLoop, binding: Binding, finishing: str | None = None) -> Outcome | None:
    """Start the thread's next turn from every pending event, unless a turn is queued or running (other
    than ``finishing``, the one publishing now). None when nothing was started.

    Under a store lease of the conversation, so two processes never start two. An event that finds a
    turn queued or running waits (``pending``), and every event that waited is **coalesced** into the
    one next turn, started when the running turn has published (:mod:`baton.forge.writes.publish`). Budgets
    (turns per CI failure signature, turns per thread per day) are counted in the store; when one is
    spent the thread goes to ``needs_human``, and baton says so on the forge once."""
    lease = key_lease(loop.settings, loop.store, f"forge:{loop.lease_name(binding)}")
    try:
        lease.acquire(wait=10.0)
    except Busy:
        return None  # another process is kicking this thread: it sees our event too
    try:
        return _kick(loop, binding, finishing)
    finally:
        lease.release()


def _kick(loop: ForgeLoop, binding: Binding, finishing: str | None) -> Outcome | None:
    current = loop.binding(binding.forge, binding.repo, binding.number, binding.on_pr) or binding
    if current.status != BindingStatus.ACTIVE or busy(loop, current, finishing):
        return None
    waiting = forge_store(loop.store).forge_events(
        current.forge, current.repo, current.number, status=EventStatus.PENDING, pr=current.on_pr
    )
    # quoted words of untrusted actors never share a turn with instructions: that turn runs at read, so
    # instructions go first and the quoted ones wait for a turn of their own
    instructions = [record for record in waiting if record.reason != "quoted"]
    pending = instructions or waiting
    if not pending:
        return None
    spent = _over_budget(loop, current, pending)
    if spent:
        needs_human(loop, current, spent)
        forge_store(loop.store).set_forge_events(
            [e.id for e in pending if e.id is not None], EventStatus.HELD, spent
        )
        return Outcome("held", spent, binding=current.conversation)
    return _submit(loop, current, pending)


def busy(loop: ForgeLoop, binding: Binding, finishing: str | None = None) -> bool:
    """Whether a turn of the thread is queued or running (other than ``finishing``)."""
    for status in (JobStatus.QUEUED, JobStatus.RUNNING):
        found = loop.store.list_jobs(binding.agent, binding.repo_slug, binding.thread, status=status, limit=5)
        if any(job.id != finishing for job in found):
            return True
    return False


def _over_budget(loop: ForgeLoop, binding: Binding, pending: list[EventRecord]) -> str | None:
    repo = loop.repo(binding.forge, binding.repo)
    budget = repo.budget if repo else None
    if budget is None:
        return None
    today = forge_store(loop.store).forge_turns(
        binding.forge, binding.repo, binding.number, since=loop.clock() - DAY, pr=binding.on_pr
    )
    if len(today) >= budget.per_day:
        return f"the thread's daily budget of {budget.per_day} turns is spent"
    for record in pending:
        signature = record.event.get("signature")
        if record.kind != FeedbackKind.CI_FAILURE or not signature:
            continue
        spent = forge_store(loop.store).budget_spent(
            binding.forge, binding.repo, binding.number, signature, pr=binding.on_pr
        )
        if spent >= budget.per_failure:
            names = ", ".join(sorted({c["name"] for c in record.event.get("checks", [])}))
            return f"the same CI failure ({names}) came back after {spent} turns: the budget is spent"
    return None


def _submit(loop: ForgeLoop, binding: Binding, pending: list[EventRecord]) -> Outcome:
    binding = follow_config(loop, binding)  # a fixed configuration is followed before the turn
    events = [ForgeEvent.from_json(record.event) for record in pending]
    quoted = any(record.reason == "quoted" for record in pending)  # then all are (see _kick)
    access = Access.READ if quoted else _access(binding, pending)
    kind = loop.forge(binding.forge).kind
    body = prompts.render_turn(loop.settings.home, events, quoted=quoted, access=access, forge_kind=kind)
    prompt = open_merge.told(binding.note) + _answering(loop, binding, body, events)
    repo = loop.repo(binding.forge, binding.repo)
    request = RunRequest(
        agent=binding.agent,
        repo=binding.repo_url,
        thread=binding.thread,
        prompt=prompt,
        branch=binding.branch,
        base=repo.base if repo else None,
        access=access,
        timeout=repo.timeout if repo else None,
        setup=repo.setup if repo else None,
        egress=repo.egress if repo else None,
        environment=repo.environment if repo else None,
        **(repo.caps.as_fields() if repo else {}),  # each thread's spending caps (max_usd, ...)
        # people push to the PR's branch and its base moves: bring both in first; a conflict is left
        # to the agent to resolve (markers and a note), which is what a ``conflict`` turn asks for
        sync=SyncHow.MERGE,
        on_conflict=OnConflict.AGENT,
        on_permission=repo.on_permission if repo else OnPermission.REFUSE,
        on_instructions_change=repo.on_instructions_change if repo else None,
    )
    try:
        job = jobs.submit(loop.store, loop.settings, request, actor=f"forge:{binding.forge}")
    except BadInput as exc:  # the thread cannot run here (agent missing, repo gone): say so, keep events
        needs_human(loop, binding, f"baton could not start a turn: {exc}")
        return Outcome("held", str(exc), binding=binding.conversation)
    ids = [record.id for record in pending if record.id is not None]
    forge_store(loop.store).claim_forge_events(ids, job.id)
    kinds = sorted({record.kind.value for record in pending})
    forge_store(loop.store).add_forge_turn(
        job.id, binding.forge, binding.repo, binding.number, kinds, loop.clock(), pr=binding.on_pr
    )
    for record in pending:
        if record.kind == FeedbackKind.CI_FAILURE and record.event.get("signature"):
            forge_store(loop.store).spend_budget(
                binding.forge,
                binding.repo,
                binding.number,
                record.event["signature"],
                loop.clock(),
                pr=binding.on_pr,
            )
    loop.submit(job.id)
    log.info("forge %s: turn %s started from %d event(s): %s", binding.conversation, job.id, len(ids), kinds)
    _tell_started(loop, binding, events, job.id)
    return Outcome("accepted", f"turn {job.id} started", job_id=job.id, binding=binding.conversation)


def _tell_started(loop: ForgeLoop, binding: Binding, events: list[ForgeEvent], job_id: str) -> None:
    """The places beside the forge that the turn's events came from hear that it started (a chat's
    "working on it"); on the forge, the status comment says what became of it when it ends."""
    if others := places.beside_the_forge(places.places(loop, binding, events)):
        text = f"Working on it: turn {job_id} of {binding.conversation} started."
        places.tell(others, Message(Said.STARTED, text, binding.conversation, job_id))


def _answering(loop: ForgeLoop, binding: Binding, body: str, events: list[ForgeEvent]) -> str:
    """The turn's prompt: the events' ``body``, as the answer to the question the thread's last turn
    asked when it did (the same prompt ``baton answer`` gives, :mod:`baton.asking.pending`)."""
    asked = waiting(loop.store, binding.agent, binding.repo_slug, binding.thread)
    if asked is None:
        return body
    who = ", ".join(dict.fromkeys(f"@{e.actor.login}" for e in events)) or "a person"
    return answer_to(asked, budget.said(loop, asked, body, events), f"{who} on the forge")


def _access(binding: Binding, pending: list[EventRecord]) -> Access:
    """The lowest access of the turn's instructions; a thread bound at read (a PR from a fork) never
    runs above it."""
    levels = [record.access for record in pending]
    if binding.access == Access.READ:
        levels.append(Access.READ)
    return min(levels, key=lambda a: ACCESS_RANK[a])


# -- needs a human -------------------------------------------------------------------------------------


def needs_human(loop: ForgeLoop, binding: Binding, why: str) -> None:
    binding.status, binding.note, binding.updated_at = BindingStatus.NEEDS_HUMAN, why, loop.clock()
    forge_store(loop.store).save_binding(binding)
    loop.store.audit("forge.needs_human", binding.conversation, "baton", {"reason": why})
    mention = loop.forge(binding.forge).mention
    text = parked_text(  # the one notice of a thread stopped for spending, as a cap's says it
        f"baton stopped working on this on its own: {why}",
        f"a comment from someone with write access resumes it (mention {mention} or just say what to do)",
    )
    decisions.say_once(loop, binding, f"needs_human:{loop.clock():.0f}", text)
