"""From a forge event to the next turn of its thread's conversation. :func:`handle` takes one
:class:`~baton.forge.data.model.ForgeEvent` (from a webhook or the reconcile) through the gates in order
(a configured repository, the trust policy, a bound thread or a trigger that binds it, stale, the
store's dedupe, ``needs_human``) and records what it decided in the audit log once per event. Along
the flow: an event bound is made ready (:mod:`baton.forge.turn.ready`), stored, and the thread's next
turn started from every event that waited (:mod:`baton.forge.turn.start`). The gates and their order:
:func:`handle`; what people see of them: docs/forge.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from baton import tracing
from baton.errors import BadInput
from baton.forge.data.config import RepoConfig
from baton.forge.data.model import Decision, ForgeEvent, Outcome, Trigger
from baton.forge.data.records import Binding, BindingStatus, EventRecord, EventStatus, FeedbackKind
from baton.forge.data.tables import forge_store
from baton.forge.turn import budget, decisions, gathering
from baton.forge.turn.loop import ForgeLoop
from baton.forge.turn.ready import Dropped, prepare
from baton.forge.turn.start import kick
from baton.forge.turn.threads import bind_thread, by_head
from baton.forge.turn.trust import is_own, judge
from baton.models import Access


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
    bound = loop.binding(event.forge, event.repo, event.number, event.is_pr) if event.number else None
    if _known(loop, bound, event):  # found again (a redelivery, the reconcile's look-back): nothing to ask
        return Outcome("duplicate", f"{event.identity} was acted on already")
    decision = judge(event, repo, forge, lambda login: loop.permission(event.forge, event.repo, login))
    if not decision.accepted:
        if not is_own(event.actor.login, forge):  # baton's own words are no refusal: not audited
            decisions.refuse(loop, event, decision, delivery, bound)
        return Outcome("dropped", decision.reason)
    if event.number == 0:  # a commit status: its PR is the one at its head
        found = by_head(loop, event.forge, event.repo, event.head_sha or "") if event.head_sha else None
        if found is None or found.pr is None:
            return Outcome("ignored", f"no bound pull request of {event.repo} is at {event.head_sha}")
        event = replace(event, number=found.pr)
        bound = loop.binding(event.forge, event.repo, event.number, event.is_pr)
    binding = bound or _bind(loop, event, repo, decision, delivery)
    if isinstance(binding, Unbound):
        return Outcome("ignored", binding.reason)
    if binding.status == BindingStatus.CLOSED:
        return Outcome("ignored", f"{binding.conversation} is closed", binding=binding.conversation)
    ready = prepare(loop, event, binding)
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


def _known(loop: ForgeLoop, binding: Binding | None, event: ForgeEvent) -> bool:
    """Whether the event is stored already on its bound thread: then it is a duplicate before the
    forge is asked anything (a permission, a review's inline comments) — the store's unique key still
    decides for the events that race past this."""
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
