"""The forge room's records: webhook deliveries (:class:`DeliveryRecord`), threads bound to issues and
pull requests (:class:`Binding`), the events seen on them (:class:`EventRecord`) and their statuses and
feedback kinds. They are the forge room's alone (its loop and webhook worker write them, the service's
routes, dashboard and ``/metrics`` and the CLI above it show them), so they live here rather than on
the ground floor's :mod:`baton.models`; their tables and store roles are in :mod:`baton.forge.data.tables`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from baton.models import Access, iso


class DeliveryStatus(StrEnum):
    """How a webhook delivery was handled."""

    PENDING = "pending"  # accepted, its work runs in the background
    DONE = "done"  # acted on: the matching sessions were closed
    IGNORED = "ignored"  # nothing to do (another event, no matching session)
    FAILED = "failed"  # the work raised: ``result`` says why


@dataclass
class DeliveryRecord:
    """One webhook delivery, kept with its result so a redelivery answers the same and acts once."""

    forge: str  # github | gitea
    delivery_id: str
    event: str
    received_at: float
    status: DeliveryStatus = DeliveryStatus.PENDING
    result: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "received_at": iso(self.received_at)}


class FeedbackKind(StrEnum):
    """What a feedback turn is about; each has its own prompt template ``forge-<kind>.txt``."""

    TASK = "task"  # the first turn of a thread: the issue (title, body) a trigger named
    COMMENT = "comment"  # a new issue or PR comment from a trusted actor
    REVIEW = "review"  # a submitted review: its body and its inline comments
    CI_FAILURE = "ci_failure"  # failed checks on the PR's current head
    CONFLICT = "conflict"  # the PR cannot be merged cleanly: sync with the base and resolve
    CONTEXT = "context"  # an untrusted actor's words, quoted and attributed, in a read-only turn


class EventStatus(StrEnum):
    """Where a forge event is, in the store (``forge_events``)."""

    PENDING = "pending"  # accepted; waiting for the thread's next turn (coalesced with others)
    DISPATCHED = "dispatched"  # part of a submitted turn (``job_id``)
    HELD = "held"  # the thread needs a human: kept, not run, until a trusted comment resumes it
    DROPPED = "dropped"  # not acted on: stale, untrusted, over budget, ... (``reason``)


class BindingStatus(StrEnum):
    """Where a bound thread is."""

    ACTIVE = "active"  # feedback becomes turns
    NEEDS_HUMAN = "needs_human"  # a budget is spent or a failure repeats: a trusted comment resumes it
    CLOSED = "closed"  # the issue or PR was closed or merged: nothing more runs


@dataclass
class Binding:
    """A thread bound to a forge conversation, as the store keeps it (``forge_bindings``)."""

    forge: str
    repo: str  # forge full name
    number: int  # the issue (or the PR, for a thread that started on a PR)
    agent: str
    repo_slug: str  # baton's repo slug of the key
    thread: str  # baton's thread of the key: issue-42, pr-7
    repo_url: str  # what baton clones and pushes (no credentials in it)
    status: BindingStatus = BindingStatus.ACTIVE
    pr: int | None = None  # the PR of the thread (opened by baton for an issue, or the PR itself)
    head_sha: str | None = None  # the PR head baton last pushed or saw
    branch: str | None = None  # the thread's branch on the forge
    access: Access = Access.EDIT  # what its trusted turns run at
    status_comment: int | None = None  # the one comment baton keeps up to date
    etag: str | None = None  # the reconcile's conditional request: unchanged since
    seen_at: float = 0.0  # the reconcile looked at everything up to here (bound: the binding's time)
    note: str | None = None  # why it needs a human, what happened last
    created_at: float = 0.0
    updated_at: float = 0.0
    on_pr: bool = False  # ``number`` is a PR's (the thread started on one), not an issue's: a key with it
    sign: str = "#"  # how the conversation writes its number: ``!`` for a GitLab merge request's thread

    @property
    def seen(self) -> float:
        """Where the reconcile reads this thread from: ``seen_at``, else (a binding stored before it
        was set at binding time) when it was bound — never the forge's whole history."""
        return self.seen_at or self.created_at

    @property
    def conversation(self) -> str:
        """``forge:owner/name#N`` (``!N``: a GitLab merge request's thread, apart from issue ``#N``'s)."""
        return f"{self.forge}:{self.repo}{self.sign}{self.number}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "conversation": self.conversation}


@dataclass
class EventRecord:
    """A forge event as the store keeps it (``forge_events``): unique by (forge, repo, identity)."""

    forge: str
    repo: str
    number: int
    identity: str
    kind: FeedbackKind
    status: EventStatus
    event: dict[str, Any]  # ForgeEvent.to_json()
    received_at: float
    access: Access = Access.EDIT
    job_id: str | None = None
    reason: str | None = None  # why it was dropped or held
    id: int | None = None  # the store's row number (arrival order)
    on_pr: bool = False  # its thread's kind, with ``number``: the binding's ``on_pr``
