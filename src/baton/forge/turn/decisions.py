"""What the dispatcher keeps of its decisions besides turns: the audit log's one row per event
(:func:`audit`, :func:`refuse`: a refused event is kept ``dropped`` under its identity, so the store's
unique key makes its refusal audited once however often it arrives), and what baton says or notes on a
thread once (:func:`say_once`: a comment posted on the forge; :func:`note_once`: a note ``baton forge
show`` lists, nothing posted; :func:`unbindable`: a trigger that cannot bind), once per identity."""

from __future__ import annotations

import logging
from dataclasses import replace

from baton.forge.data.model import Decision, ForgeError, ForgeEvent
from baton.forge.data.records import Binding, EventRecord, EventStatus, FeedbackKind
from baton.forge.data.tables import forge_store
from baton.forge.turn.loop import ForgeLoop
from baton.models import Access

log = logging.getLogger("baton.forge")


def say_once(loop: ForgeLoop, binding: Binding, identity: str, text: str) -> None:
    """A comment baton posts once per identity (stored as a dropped event: the store's key is the once)."""
    marker = EventRecord(
        forge=binding.forge,
        repo=binding.repo,
        number=binding.number,
        on_pr=binding.on_pr,
        identity=f"said:{identity}",
        kind=FeedbackKind.COMMENT,
        status=EventStatus.DROPPED,
        event={},
        received_at=loop.clock(),
        reason="baton's own comment",
    )
    if forge_store(loop.store).add_forge_event(marker) is None:
        return
    try:
        on_pr = binding.pr is not None or binding.on_pr
        loop.client(binding.forge).post_comment(binding.repo, binding.pr or binding.number, text, pr=on_pr)
    except ForgeError as exc:
        log.warning("forge %s: could not comment: %s", binding.conversation, exc)


def note_once(loop: ForgeLoop, binding: Binding, identity: str, why: str) -> None:
    """A note on the thread, once (``baton forge show`` lists it among the events; nothing is posted)."""
    forge_store(loop.store).add_forge_event(
        EventRecord(
            forge=binding.forge,
            repo=binding.repo,
            number=binding.number,
            on_pr=binding.on_pr,
            identity=f"note:{identity}",
            kind=FeedbackKind.CI_FAILURE,
            status=EventStatus.DROPPED,
            event={},
            received_at=loop.clock(),
            reason=why[:1000],
        )
    )


def refuse(
    loop: ForgeLoop, event: ForgeEvent, decision: Decision, delivery: str | None, bound: Binding | None
) -> None:
    """A refused event, kept (dropped, with the reason: ``baton forge show`` lists it, on ``bound``, the
    thread of its issue or PR if there is one) and audited once per identity: a redelivery or the
    reconcile's find of it is no second refusal."""
    record = EventRecord(
        forge=event.forge,
        repo=event.repo,
        number=bound.number if bound else event.number,  # a PR's event is its issue's thread's
        on_pr=bound.on_pr if bound else event.is_pr,
        identity=event.identity,
        kind=event.kind,
        status=EventStatus.DROPPED,
        event=event.to_json(),
        received_at=loop.clock(),
        access=Access.READ,
        reason=decision.reason,
    )
    if forge_store(loop.store).add_forge_event(record) is not None:
        audit(loop, event, decision, delivery)


def unbindable(loop: ForgeLoop, event: ForgeEvent, reason: str, delivery: str | None) -> None:
    """A trusted trigger that cannot bind its issue or PR (its thread's key bound elsewhere): kept
    ``dropped`` with the reason on the thread holding the number (``baton forge show`` lists it; its
    words are not kept there), audited ``forge.refused``, and said where it was asked — each once per
    event, by the store's key."""
    holder = loop.binding(event.forge, event.repo, event.number, event.is_pr)
    record = EventRecord(
        forge=event.forge,
        repo=event.repo,
        number=holder.number if holder else event.number,
        on_pr=holder.on_pr if holder else event.is_pr,
        identity=event.identity,
        kind=event.kind,
        status=EventStatus.DROPPED,
        event=replace(event, body="", comments=()).to_json(),  # never the other thread's words
        received_at=loop.clock(),
        access=Access.READ,
        reason=reason[:1000],
    )
    if forge_store(loop.store).add_forge_event(record) is None:
        return
    audit(loop, event, Decision(False, None, False, reason), delivery)
    kind = loop.facts(event.forge)
    text = f"baton cannot take this {kind.pr_noun if event.is_pr else 'issue'}'s request: {reason}"
    try:
        loop.client(event.forge).post_comment(event.repo, event.number, text, pr=event.is_pr)
    except ForgeError as exc:
        log.warning("forge %s:%s#%d: could not say why: %s", event.forge, event.repo, event.number, exc)


def audit(loop: ForgeLoop, event: ForgeEvent, decision: Decision, delivery: str | None) -> None:
    detail = {
        "identity": event.identity,
        "kind": event.kind.value,
        "trigger": event.trigger.value,
        "reason": decision.reason,
        "access": decision.access.value if decision.access else None,
        "quoted": decision.quoted,
        "delivery": delivery,
        "url": event.url,
    }
    action = "forge.accepted" if decision.accepted else "forge.refused"
    ref = loop.facts(event.forge).ref(event.number, event.is_pr)  # GitLab's MR: !N, not issue #N
    loop.store.audit(action, f"{event.forge}:{event.repo}{ref}", who(event), detail)


def who(event: ForgeEvent) -> str:
    return f"forge:{event.forge}:{event.actor.login}"
