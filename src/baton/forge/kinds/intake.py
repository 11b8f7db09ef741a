"""Where people talk to a thread: an **intake** delivers a conversation's events and is told the thread's
replies there. The forge that holds the code is one (its webhooks in, its comments out); another (a
tracker, a chat) delivers :class:`~baton.forge.data.model.ForgeEvent`\\ s of the thread's forge
conversation whose ``source`` names it and its place (``chat:room-7``) to
:func:`baton.forge.turn.dispatch.handle`, the forge's own door: the same gates, trust and turns. It is
told at that place what the turn says (:class:`Said`), while pushes, PRs and the status comment stay
with the repository's forge. An intake is its own module or folder and one line of
:data:`baton.forge.kinds.registry.INTAKES`; how: docs/architecture.md (Adding an intake).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

FORGE = ""  # the source of an event said on the forge itself (its webhooks, the reconcile)


class Said(StrEnum):
    """What a thread tells the places its turn's events came from."""

    STARTED = "started"  # a turn took the events (progress: a chat's "working on it")
    ANSWER = "answer"  # the agent's answer, its final message
    QUESTION = "question"  # the agent (or a spending cap) asks; the thread waits for a reply there
    OUTCOME = "outcome"  # how the turn ended: the status comment's words (its run, changes, PR, cost)


@dataclass(frozen=True)
class Message:
    """One thing a thread says, ready for a person (markdown, bounded as a forge comment is)."""

    said: Said
    text: str
    conversation: str  # the thread's forge conversation: "github:acme/api#42"
    job_id: str  # the turn's
    outcome: str = ""  # the turn's, once it ended


class Intake(Protocol):
    """A place where people talk to threads, as the forge loop tells it things."""

    def tell(self, place: str, message: Message) -> str:
        """Say ``message`` at ``place`` (the intake's own address of the conversation): ``"posted"``, or
        why not. Never raises: a message that could not be said is kept in the turn's result. A turn
        published again (its publisher died) tells it again: ``(job_id, said)`` is its identity."""
        ...


def source(intake: str, place: str) -> str:
    """An event's ``source`` as an intake writes it."""
    return f"{intake}:{place}"


def split(source: str) -> tuple[str, str]:
    """``(intake, place)`` of an event's ``source``; ``(FORGE, "")`` for the forge's own."""
    intake, _, place = source.partition(":")
    return intake, place
