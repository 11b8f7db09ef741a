"""One submitted review, one turn, where a forge has no review id (GitLab): each diff note arrives as a
note of its own (its own webhook, identity ``review:note-<id>``), so the first one the dispatcher
handles gathers the same author's other diff notes on the MR that no event holds yet
(:func:`gather`), and once it is stored, each gathered note is stored too, as answered by it
(:func:`companions`): its own webhook, or the reconcile's find of it, is then a duplicate.
"""

from __future__ import annotations

from dataclasses import replace

from baton.forge.data.model import ForgeEvent, Review

WINDOW = 600.0  # seconds before the event's note in which the author's unanswered diff notes count
PREFIX = "review:note-"


def gather(event: ForgeEvent, reviews: list[Review], known: set[str]) -> ForgeEvent:
    """The event with every inline comment of its author's unanswered diff notes (``reviews``: one per
    note) from ``WINDOW`` before it on, oldest first; its own note's text as the forge has it now."""
    mine = [
        review
        for review in reviews
        if review.author.login.casefold() == event.actor.login.casefold()
        and (f"{PREFIX}{review.id}" == event.identity or f"{PREFIX}{review.id}" not in known)
        and review.at >= event.at - WINDOW
    ]
    comments = tuple(c for review in sorted(mine, key=lambda r: (r.at, r.id)) for c in review.comments)
    head = next((r.commit for r in mine if f"{PREFIX}{r.id}" == event.identity and r.commit), None)
    return replace(event, comments=comments or event.comments, head_sha=head or event.head_sha)


def companions(event: ForgeEvent) -> list[ForgeEvent]:
    """The gathered notes as events of their own (stored as answered by ``event``'s turn)."""
    if not event.identity.startswith(PREFIX):
        return []
    return [
        replace(event, identity=f"{PREFIX}{c.id}", comments=(c,), url=c.url or event.url)
        for c in event.comments
        if f"{PREFIX}{c.id}" != event.identity
    ]
