"""Making an event ready for its turn (:func:`prepare`, the dispatcher's step after binding): a CI
failure or a conflict about a head that is no longer the PR's is dropped as stale; a CI failure is
re-read from the forge (the whole failing set of the head, with log tails) and identified by its head
and failing set; a review gets its inline comments (on GitLab, gathered from its diff notes).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from baton.forge.data.model import ForgeEvent
from baton.forge.data.records import Binding, FeedbackKind
from baton.forge.data.tables import forge_store
from baton.forge.kinds import registry
from baton.forge.turn import decisions, gathering
from baton.forge.turn.loop import ForgeLoop

STALE_KINDS = (FeedbackKind.CI_FAILURE, FeedbackKind.CONFLICT)
CHECKS_REFUSED = "the forge refused to read check runs, so CI failures are read from commit statuses only"


@dataclass(frozen=True)
class Dropped:
    """Why an event on a bound thread is not made ready for a turn: stored ``dropped`` with the reason."""

    reason: str


def prepare(loop: ForgeLoop, event: ForgeEvent, binding: Binding) -> ForgeEvent | Dropped:
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
    kind = loop.facts(event.forge)
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
        if registry.review_identity(kind.kind, binding.pr, review) == event.identity:
            return replace(
                event,
                body=review.body or event.body,
                comments=review.comments or event.comments,
                head_sha=review.commit or event.head_sha,
                url=review.url or event.url,
                actor=review.author if not event.actor.login else event.actor,
            )
    return event
