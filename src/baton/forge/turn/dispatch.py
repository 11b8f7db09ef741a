"""From a forge event to the next turn of its thread's conversation. :func:`handle` takes one
:class:`~baton.forge.data.model.ForgeEvent` (from a webhook or the reconcile) through the gates in order
(a configured repository, the trust policy, a bound thread or a trigger that binds it, stale, the
store's dedupe, ``needs_human``) and records what it decided in the audit log once per event;
:func:`kick` starts the thread's next turn from every event that waited, coalesced, within the
thread's budgets. The gates and their order: :func:`handle`; what people see of them: docs/forge.md.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace

from baton import tracing
from baton.asking.pending import answer_to, waiting
from baton.caps.words import parked_text
from baton.errors import BadInput, Busy
from baton.fleet import jobs
from baton.forge.data.config import RepoConfig
from baton.forge.data.model import Decision, ForgeEvent, Outcome, Trigger
from baton.forge.data.records import Binding, BindingStatus, EventRecord, EventStatus, FeedbackKind
from baton.forge.data.tables import forge_store
from baton.forge.kinds import registry
from baton.forge.kinds.intake import Message, Said
from baton.forge.turn import budget, decisions, gathering, open_merge, places, prompts
from baton.forge.turn.loop import ForgeLoop
from baton.forge.turn.threads import bind_thread, by_head, follow_config
from baton.forge.turn.trust import is_own, judge
from baton.models import Access, JobStatus, OnConflict, OnPermission, SyncHow
from baton.runner.request import RunRequest
from baton.store.leases import key_lease

log = logging.getLogger("baton.forge")
DAY = 86_400.0
STALE_KINDS = (FeedbackKind.CI_FAILURE, FeedbackKind.CONFLICT)
ACCESS_RANK = {Access.READ: 0, Access.EDIT: 1, Access.FULL: 2}
CHECKS_REFUSED = "the forge refused to read check runs, so CI failures are read from commit statuses only"


@tracing.traced("forge.dispatch")
def handle(loop: ForgeLoop, event: ForgeEvent, delivery: str | None = None) -> Outcome:
    """Act on one event; what was done, for the delivery's record. Raises :class:`ForgeError` when the
    forge could not be asked (the caller retries; nothing was stored).

    The gates, in order:

    1. the repository is configured, and a label or assignment is one of its triggers
       (:meth:`~baton.forge.data.config.RepoConfig.refuses`; else ``ignored``, bound or not);
    2. the trust policy (:func:`baton.forge.turn.trust.judge`, code, never the prompt) accepts the actor: as
       an instruction, or as quoted context at ``read`` access — else ``dropped``;
    3. the conversation is bound, or the event is a trigger (mention, label, assignment) that binds it
       now — an issue's thread is ``issue-N``, a PR's ``pr-N`` on the PR's own branch;
    4. a CI failure or conflict about a head that is no longer the PR's head is ``dropped`` as stale; a
       CI failure is re-read from the forge (the whole failing set of the head, with log tails) and
       identified by ``(head, failing set)``; a review gets its inline comments;
    5. the event is stored, unique by its identity: a redelivery, a second webhook or the reconcile's
       find of the same event is a ``duplicate`` — across restarts and machines (the store's unique key
       decides);
    6. a thread that needs a human keeps the event ``held``, unless it is a trusted comment, which
       resumes it.

    The decision is audited (``forge.accepted`` / ``forge.refused`` with the reason) **once per
    event**: when the event is first stored under its identity (a refused one is kept as ``dropped``),
    so a redelivery, a second webhook or the reconcile's find of it adds no row. An accepted event that
    is not acted on (not a trigger, no bound thread) is not audited, and neither are baton's own
    comments (refused by rule): they are no one's attempt to steer it."""
    repo = _configured(loop, event)
    if isinstance(repo, Outcome):
        return repo
    forge = loop.forge(event.forge)
    if _known(loop, event):  # found again (a redelivery, the reconcile's look-back): nothing to ask
        return Outcome("duplicate", f"{event.identity} was acted on already")
    decision = judge(event, repo, forge, lambda login: loop.permission(event.forge, event.repo, login))
    if not decision.accepted:
        if not is_own(event.actor.login, forge):  # baton's own words are no refusal: not audited
            decisions.refuse(loop, event, decision, delivery)
        return Outcome("dropped", decision.reason)
    if event.number == 0:  # a commit status: its PR is the one at its head
        found = by_head(loop, event.forge, event.repo, event.head_sha or "") if event.head_sha else None
        if found is None or found.pr is None:
            return Outcome("ignored", f"no bound pull request of {event.repo} is at {event.head_sha}")
        event = replace(event, number=found.pr)
    found = forge_store(loop.store).get_binding(
        event.forge, event.repo, event.number, loop.which(event.forge, event.is_pr)
    )
    binding = found or _bind(loop, event, repo, decision, delivery)
    if isinstance(binding, Unbound):
        return Outcome("ignored", binding.reason)
    if binding.status == BindingStatus.CLOSED:
        return Outcome("ignored", f"{binding.conversation} is closed", binding=binding.conversation)
    ready = _prepare(loop, event, binding)
    if isinstance(ready, Dropped):
        return _store(loop, event, binding, decision, EventStatus.DROPPED, ready.reason, delivery)
    return _accept(loop, ready, binding, decision, delivery)


def _configured(loop: ForgeLoop, event: ForgeEvent) -> RepoConfig | Outcome:
    """The event's repository, or why it is ignored: not configured, or a label or assignment that is
    no trigger of it (no event, bound or not: ``~bug`` never re-runs an issue bound by ``~baton``)."""
    repo = loop.repo(event.forge, event.repo)
    if repo is None:
        return Outcome("ignored", f"{event.forge}:{event.repo} is not a configured repository")
    refused = repo.refuses(event.trigger, event.signature)
    return repo if refused is None else Outcome("ignored", refused)


def _known(loop: ForgeLoop, event: ForgeEvent) -> bool:
    """Whether the event is stored already on its bound thread: then it is a duplicate before the
    forge is asked anything (a permission, a review's inline comments) — the store's unique key still
    decides for the events that race past this."""
    binding = (
        forge_store(loop.store).get_binding(
            event.forge, event.repo, event.number, loop.which(event.forge, event.is_pr)
        )
        if event.number
        else None
    )
    if binding is None:
        return False
    stored = forge_store(loop.store).forge_events(
        binding.forge, binding.repo, binding.number, pr=binding.on_pr
    )
    return any(record.identity == event.identity for record in stored)


def _accept(
    loop: ForgeLoop, event: ForgeEvent, binding: Binding, decision: Decision, delivery: str | None
) -> Outcome:
    resumes = event.kind == FeedbackKind.COMMENT and not decision.quoted
    if binding.status == BindingStatus.NEEDS_HUMAN and not resumes:
        return _store(loop, event, binding, decision, EventStatus.HELD, "the thread needs a human", delivery)
    # a trusted `@baton budget +5` on a thread that waits on nothing raises its cap and runs no turn
    only = resumes and binding.status == BindingStatus.ACTIVE and budget.is_command(loop, event)
    status, why = (EventStatus.DROPPED, budget.RAISED) if only else (EventStatus.PENDING, decision.reason)
    stored = _store(loop, event, binding, decision, status, why, delivery)
    if stored.status == "duplicate":
        return stored
    for companion in gathering.companions(event):  # one review's other notes: answered by this turn
        _store(loop, companion, binding, decision, EventStatus.DROPPED, f"in the turn of {event.identity}")
    if resumes:  # stored once: a trusted `@baton budget +5` raises the thread's spending cap once
        budget.raised(loop, binding, event)
    if only:
        return replace(stored, status="accepted")
    if binding.status == BindingStatus.NEEDS_HUMAN:
        _resume(loop, binding, event)
    started = kick(loop, binding)
    if started is None:
        return replace(stored, status="coalesced", reason="a turn of the thread is under way: it runs next")
    return started


def _store(
    loop: ForgeLoop,
    event: ForgeEvent,
    binding: Binding,
    decision: Decision,
    status: EventStatus,
    why: str,
    delivery: str | None = None,
) -> Outcome:
    """The event stored once by its identity (a duplicate otherwise), and its trust decision audited
    then — once per event, however many deliveries and reconciles bring it."""
    record = EventRecord(
        forge=event.forge,
        repo=event.repo,
        number=binding.number,
        on_pr=binding.on_pr,
        identity=event.identity,
        kind=event.kind,
        status=status,
        event=event.to_json(),
        received_at=loop.clock(),
        access=(decision.access or Access.READ) if not decision.quoted else Access.READ,
        reason=why if status != EventStatus.PENDING else ("quoted" if decision.quoted else None),
    )
    if forge_store(loop.store).add_forge_event(record) is None:
        return Outcome("duplicate", f"{event.identity} was acted on already", binding=binding.conversation)
    decisions.audit(loop, event, decision, delivery)
    names = {EventStatus.PENDING: "accepted", EventStatus.HELD: "held", EventStatus.DROPPED: "dropped"}
    return Outcome(names.get(status, status.value), why, binding=binding.conversation)


# -- binding a conversation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Unbound:
    """Why an event on an unbound conversation binds no thread: the event is ``ignored``."""

    reason: str


def _bind(
    loop: ForgeLoop, event: ForgeEvent, repo: RepoConfig, decision: Decision, delivery: str | None
) -> Binding | Unbound:
    """A trigger binds its issue or PR to a new thread; anything else on an unbound one is ignored. A
    trigger that cannot bind is said where it was asked, audited and kept (:func:`decisions.unbindable`)."""
    if event.trigger == Trigger.FEEDBACK:
        return Unbound(
            f"{event.forge}:{event.repo}#{event.number} is not bound to a thread, and this is no trigger"
        )
    if decision.quoted:
        return Unbound(f"{event.actor.login} is not trusted: only a trusted actor starts a thread")
    trigger = repo.trigger(event.trigger)
    if trigger is None:
        return Unbound(f"the {event.trigger.value} trigger is not enabled for {event.repo}")
    try:
        return bind_thread(
            loop,
            event.forge,
            event.repo,
            event.number,
            trigger.agent,
            actor=decisions.who(event),
            access=trigger.access,
            pr=event.is_pr,
        )
    except BadInput as exc:  # a key or (GitLab) a number taken: said, never a failed delivery
        decisions.unbindable(loop, event, str(exc), delivery)
        return Unbound(str(exc))


# -- making an event ready -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Dropped:
    """Why an event on a bound thread is not made ready for a turn: stored ``dropped`` with the reason."""

    reason: str


def _prepare(loop: ForgeLoop, event: ForgeEvent, binding: Binding) -> ForgeEvent | Dropped:
    """The event as a turn needs it (re-read from the forge), or why it is dropped."""
    client = loop.client(event.forge)
    if event.kind in STALE_KINDS and binding.pr is not None:
        now = client.thread(event.repo, binding.pr, pr=True)
        head = now.head_sha
        if head and binding.head_sha != head:
            binding.head_sha, binding.updated_at = head, loop.clock()
            forge_store(loop.store).save_binding(binding)
        if event.head_sha and head and event.head_sha != head:
            return Dropped(f"stale: about {event.head_sha[:12]}, but the PR's head is now {head[:12]}")
        if event.kind == FeedbackKind.CONFLICT and now.mergeable is not False:
            # the payload's word is not taken: Gitea says false while it computes, and of any WIP PR
            return Dropped("the forge says the PR can be merged (or has not decided yet)")
    if event.kind == FeedbackKind.CI_FAILURE:
        return _ci(loop, event, binding)
    if event.kind == FeedbackKind.REVIEW and binding.pr is not None:
        return _review(loop, event, binding)
    return event


def _ci(loop: ForgeLoop, event: ForgeEvent, binding: Binding) -> ForgeEvent | Dropped:
    sha = event.head_sha or binding.head_sha
    if not sha:
        return Dropped("a CI failure without a head commit")
    client = loop.client(event.forge)
    failing = client.failed_checks(event.repo, sha)
    refused = getattr(client, "refused_checks", {}).get(event.repo)
    if refused:
        decisions.note_once(loop, binding, "check-runs-refused", f"{CHECKS_REFUSED}: {refused[0]}")
    if not failing:
        return Dropped(f"no check of {sha[:12]} fails now")
    names = sorted({c.name for c in failing})
    signature = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
    waiting = [c for c in failing if c.conclusion == "action_required"]
    if len(waiting) == len(failing):
        decisions.say_once(loop, binding, f"approval:{sha}", _approval_text(sha, names))
        return Dropped(f"CI on {sha[:12]} waits for a maintainer's approval (said on the PR)")
    return replace(
        event, identity=f"ci:{sha}:{signature}", head_sha=sha, checks=tuple(failing), signature=signature
    )


def _approval_text(sha: str, names: list[str]) -> str:
    return (
        f"CI on `{sha[:12]}` is waiting for a maintainer's approval before it runs "
        f"({', '.join(names)}). baton does not wait on it silently: approve the run, and baton picks up "
        "its result."
    )


def _review(loop: ForgeLoop, event: ForgeEvent, binding: Binding) -> ForgeEvent:
    """A review with all its inline comments (a webhook of one inline comment names only that one)."""
    assert binding.pr is not None
    kind = loop.forge(event.forge).kind
    since = event.at - gathering.WINDOW if kind.numbers_apart and event.at else None
    reviews = loop.client(event.forge).reviews(event.repo, binding.pr, since=since)
    if kind.numbers_apart:  # GitLab: a note each, no review id; the author's unanswered ones gathered
        known = {
            r.identity
            for r in forge_store(loop.store).forge_events(
                binding.forge, binding.repo, binding.number, pr=binding.on_pr
            )
        }
        return gathering.gather(event, reviews, known)
    for review in reviews:
        if registry.review_identity(kind, binding.pr, review) == event.identity:
            return replace(
                event,
                body=review.body or event.body,
                comments=review.comments or event.comments,
                head_sha=review.commit or event.head_sha,
                url=review.url or event.url,
                actor=review.author if not event.actor.login else event.actor,
            )
    return event


# -- starting the next turn ----------------------------------------------------------------------------


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
    which = loop.which(binding.forge, binding.on_pr)
    current = (
        forge_store(loop.store).get_binding(binding.forge, binding.repo, binding.number, which) or binding
    )
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
        _needs_human(loop, current, spent)
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
        _needs_human(loop, binding, f"baton could not start a turn: {exc}")
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


def _needs_human(loop: ForgeLoop, binding: Binding, why: str) -> None:
    binding.status, binding.note, binding.updated_at = BindingStatus.NEEDS_HUMAN, why, loop.clock()
    forge_store(loop.store).save_binding(binding)
    loop.store.audit("forge.needs_human", binding.conversation, "baton", {"reason": why})
    mention = loop.forge(binding.forge).mention
    text = parked_text(  # the one notice of a thread stopped for spending, as a cap's says it
        f"baton stopped working on this on its own: {why}",
        f"a comment from someone with write access resumes it (mention {mention} or just say what to do)",
    )
    decisions.say_once(loop, binding, f"needs_human:{loop.clock():.0f}", text)


def _resume(loop: ForgeLoop, binding: Binding, event: ForgeEvent) -> None:
    binding.status, binding.note, binding.updated_at = BindingStatus.ACTIVE, None, loop.clock()
    forge_store(loop.store).save_binding(binding)
    forge_store(loop.store).reset_budgets(binding.forge, binding.repo, binding.number, pr=binding.on_pr)
    held = forge_store(loop.store).forge_events(
        binding.forge, binding.repo, binding.number, status=EventStatus.HELD, pr=binding.on_pr
    )
    # what waited while the thread needed a human is stale by now: the person's comment says what next
    forge_store(loop.store).set_forge_events(
        [e.id for e in held if e.id is not None], EventStatus.DROPPED, "superseded"
    )
    loop.store.audit("forge.resumed", binding.conversation, decisions.who(event), {"by": event.identity})
