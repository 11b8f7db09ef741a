"""What the forge loop came to, per repository and agent (threads started, PRs opened and what became
of them, rounds to green, mention to first push, CI failure to its fix, feedback answered, threads
waiting on a person): :func:`outcomes` computes it for ``/metrics``, ``GET /v1/forge/outcomes`` and the
dashboard alike, in one transaction of four queries however many threads, from facts recorded once
where they happen (the binding's ``created_at``, ``pr_opened_at``, ``closed_at``, ``merged``,
``waiting_since``; a turn's ``pushed`` and ``answered``). The definitions: docs/forge.md (Outcomes).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from baton.forge.data.records import BindingStatus, EventStatus, FeedbackKind
from baton.forge.data.schema import forge_bindings, forge_events, forge_turns
from baton.store.base import Transactions

Group = tuple[str, str, str]  # forge, repo, agent
Conversation = tuple[str, str, int, int]  # forge, repo, number, kind (on_pr: GitLab's MR !N apart)
Failure = tuple[float, str, str]  # received_at, head, signature
Answers = dict[Group, tuple[int, int]]  # accepted, answered
ANSWERS = ("posted", "posted before", "in the status comment")  # ``reply``: the answer reached the forge
ASKED = ("posted", "posted before")  # ``question``: the question reached the forge


def pushed_head(publish: dict[str, Any]) -> str | None:
    """The head a published turn pushed, from what the publisher reported (None: nothing pushed)."""
    head = publish.get("head")
    return str(head) if publish.get("pushed") is True and head else None


def answered(publish: dict[str, Any]) -> bool:
    """Whether a published turn answered the feedback it took: it pushed, the agent's answer was posted
    (a comment, or a section of the status comment), or its question was put on the forge (a turn that
    ended ``needs_input``) — in the publisher's own words; a post that failed is no answer."""
    said = publish.get("pushed") is True or publish.get("reply") in ANSWERS
    return said or publish.get("question") in ASKED


@dataclass(frozen=True)
class Spread:
    """A distribution: how many, their sum, median, 90th percentile (nearest rank) and largest."""

    count: int = 0
    total: float = 0.0
    median: float | None = None
    p90: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        ordered = sorted(values)
        if not ordered:
            return cls()
        p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]
        return cls(len(ordered), float(sum(ordered)), float(statistics.median(ordered)), p90, ordered[-1])

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "sum": self.total,
            "median": self.median,
            "p90": self.p90,
            "max": self.max,
        }


@dataclass
class RepoOutcomes:
    """The outcomes of one agent's threads on one repository."""

    forge: str
    repo: str
    agent: str
    threads: int = 0  # threads started (bindings)
    prs_opened: int = 0  # PRs baton opened for an issue's thread
    prs_merged: int = 0  # ... and merged
    prs_closed: int = 0  # ... and closed unmerged
    rounds: Spread = field(default_factory=Spread)  # feedback turns until green, per merged PR
    first_push: Spread = field(default_factory=Spread)  # seconds from the binding to the first push
    ci_fix: Spread = field(default_factory=Spread)  # seconds from a CI failure to the push that fixed it
    accepted: int = 0  # feedback events accepted (not dropped)
    answered: int = 0  # ... whose turn pushed, answered or asked
    waiting: Spread = field(default_factory=Spread)  # seconds each thread in needs_human has waited

    @property
    def answered_rate(self) -> float | None:
        return round(self.answered / self.accepted, 4) if self.accepted else None

    @property
    def merged_rate(self) -> float | None:
        decided = self.prs_merged + self.prs_closed
        return round(self.prs_merged / decided, 4) if decided else None

    def to_json(self) -> dict[str, Any]:
        return {
            "forge": self.forge,
            "repo": self.repo,
            "agent": self.agent,
            "threads_started": self.threads,
            "prs_opened": self.prs_opened,
            "prs_merged": self.prs_merged,
            "prs_closed_unmerged": self.prs_closed,
            "merged_rate": self.merged_rate,
            "rounds_to_green": self.rounds.to_json(),
            "first_push_seconds": self.first_push.to_json(),
            "ci_fix_seconds": self.ci_fix.to_json(),
            "feedback_accepted": self.accepted,
            "feedback_answered": self.answered,
            "answered_rate": self.answered_rate,
            "waiting": self.waiting.count,
            "waiting_seconds": self.waiting.to_json(),
        }


@dataclass(frozen=True, order=True)
class Push:
    at: float  # published_at of the turn that pushed
    head: str


@dataclass
class _Thread:
    """One binding's facts, while computing (``first_push`` and ``rounds`` counted by the database)."""

    group: Group
    status: str
    created_at: float
    updated_at: float
    pr_opened_at: float | None
    closed_at: float | None
    merged: bool
    waiting_since: float | None
    first_push: float | None  # when its first push was published
    rounds: int  # its feedback turns after the PR opened, up to the last push (see rounds_to_green)
    pushes: list[Push] = field(default_factory=list)  # read only for a thread that had a CI failure
    failures: list[Failure] = field(default_factory=list)


def outcomes(store: Transactions, now: float, since: float | None = None) -> list[RepoOutcomes]:
    """Per (forge, repo, agent), the outcomes of the threads bound at or after ``since`` (every thread:
    None), sorted; ``now`` measures the waits."""
    threads, counted = _read(store, since)
    groups: dict[Group, RepoOutcomes] = {}
    per: dict[Group, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for thread in threads.values():
        row = groups.setdefault(thread.group, RepoOutcomes(*thread.group))
        _count(row, thread, per[thread.group], now)
    for group, (accepted, answered_n) in counted.items():
        row = groups.setdefault(group, RepoOutcomes(*group))
        row.accepted, row.answered = accepted, answered_n
    for group, values in per.items():
        row = groups[group]
        row.rounds, row.first_push = Spread.of(values["rounds"]), Spread.of(values["first_push"])
        row.ci_fix, row.waiting = Spread.of(values["ci_fix"]), Spread.of(values["waiting"])
    return [groups[g] for g in sorted(groups)]


def _count(row: RepoOutcomes, thread: _Thread, values: dict[str, list[float]], now: float) -> None:
    row.threads += 1
    if thread.first_push is not None:
        values["first_push"].append(max(0.0, thread.first_push - thread.created_at))
    if thread.pr_opened_at is not None:
        row.prs_opened += 1
        if thread.merged:
            row.prs_merged += 1
            values["rounds"].append(thread.rounds)
        elif thread.closed_at is not None:
            row.prs_closed += 1
    if thread.failures:
        values["ci_fix"] += ci_fix_times(thread.failures, sorted(thread.pushes))
    if thread.status == BindingStatus.NEEDS_HUMAN.value:
        values["waiting"].append(max(0.0, now - (thread.waiting_since or thread.updated_at)))


def ci_fix_times(failures: list[Failure], pushes: list[Push]) -> list[float]:
    """Seconds from each CI failure to the push that fixed it (``pushes`` in time order): per failure
    signature, a failure starts an episode (later reports of the same signature before the fix belong
    to it); the fix is the first push after it whose head has no failure of that signature recorded.
    An episode no push has fixed yet is not counted."""
    failing = {(head, signature) for _at, head, signature in failures}
    times: list[float] = []
    by_signature: dict[str, list[float]] = defaultdict(list)
    for at, _head, signature in failures:
        by_signature[signature].append(at)
    for signature, seen in by_signature.items():
        seen.sort()
        start: float | None = seen[0]
        while start is not None:
            fix = next((p for p in pushes if p.at > start and (p.head, signature) not in failing), None)
            if fix is None:
                break
            times.append(fix.at - start)
            start = next((t for t in seen if t > fix.at), None)
    return times


# -- the queries -------------------------------------------------------------------------------------


def _read(store: Transactions, since: float | None) -> tuple[dict[Conversation, _Thread], Answers]:
    """The four queries, in one transaction; rows are unpacked as tuples (a row's attributes cost
    more than the database's work at thousands of threads)."""
    b = forge_bindings.c
    window = b.created_at >= since if since is not None else sa.true()
    threads: dict[Conversation, _Thread] = {}
    with store.transaction() as conn:
        for forge, repo, number, on_pr, agent, *facts in conn.execute(_bindings(window)):
            status, created, updated, opened, closed, merged, waiting, first_push, rounds = facts
            threads[forge, repo, number, on_pr] = _Thread(
                (forge, repo, agent), status, created, updated, opened, closed, bool(merged), waiting,
                first_push, int(rounds or 0),
            )  # fmt: skip
        for forge, repo, number, on_pr, received, identity in conn.execute(_failures(window)):
            parsed = _failure(identity)
            if parsed is not None and (thread := threads.get((forge, repo, number, on_pr))):
                thread.failures.append((received, *parsed))
        for forge, repo, number, on_pr, published, head in conn.execute(_pushes(window)):
            if (thread := threads.get((forge, repo, number, on_pr))) and thread.failures:
                thread.pushes.append(Push(published, head))
        answers = {(f, r, a): (int(n), int(yes)) for f, r, a, n, yes in conn.execute(_answers(window))}
    return threads, answers


def _bindings(window: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """A row per thread: its facts, when its first push was published, and its rounds to green — a
    merged PR's feedback turns: those submitted after baton opened the PR, up to and including the one
    that pushed last (the head that was merged: green; a PR merged as it was opened, 0)."""
    b, t = forge_bindings.c, forge_turns.c
    pushing = t.pushed.is_not(None)
    per_thread = (
        sa.select(
            t.forge,
            t.repo,
            t.number,
            t.on_pr,
            sa.func.min(sa.case((pushing, t.published_at))).label("first_push"),
            sa.func.max(sa.case((pushing, t.submitted_at))).label("last_push"),
        )
        .group_by(t.forge, t.repo, t.number, t.on_pr)
        .subquery()
    )
    p = per_thread.c
    turn = forge_turns.alias("turn")
    rounds = (
        sa.select(sa.func.count())
        .where(
            turn.c.forge == b.forge,
            turn.c.repo == b.repo,
            turn.c.number == b.number,
            turn.c.on_pr == b.on_pr,
            turn.c.submitted_at > b.pr_opened_at,
            turn.c.submitted_at <= p.last_push,
        )
        .scalar_subquery()
    )
    on_thread = sa.and_(p.forge == b.forge, p.repo == b.repo, p.number == b.number, p.on_pr == b.on_pr)
    facts = [b.status, b.created_at, b.updated_at, b.pr_opened_at, b.closed_at, b.merged, b.waiting_since]
    return (
        sa.select(
            b.forge,
            b.repo,
            b.number,
            b.on_pr,
            b.agent,
            *facts,
            p.first_push,
            sa.case((b.merged == 1, rounds)),
        )
        .select_from(forge_bindings.outerjoin(per_thread, on_thread))
        .where(window)
    )


def _failures(window: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """The CI failures of the threads, as stored for a turn (not dropped: stale, passing, ...)."""
    b, e = forge_bindings.c, forge_events.c
    on_event = sa.and_(b.forge == e.forge, b.repo == e.repo, b.number == e.number, b.on_pr == e.on_pr)
    return (
        sa.select(e.forge, e.repo, e.number, e.on_pr, e.received_at, e.identity)
        .select_from(forge_events.join(forge_bindings, on_event))
        .where(window, e.kind == FeedbackKind.CI_FAILURE.value, e.status != EventStatus.DROPPED.value)
    )


def _pushes(window: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """The pushes of the threads that had a CI failure (the others' are not needed)."""
    b, t, e = forge_bindings.c, forge_turns.c, forge_events.c
    failed = sa.exists().where(
        e.forge == t.forge,
        e.repo == t.repo,
        e.number == t.number,
        e.on_pr == t.on_pr,
        e.kind == FeedbackKind.CI_FAILURE.value,
    )
    on_turn = sa.and_(b.forge == t.forge, b.repo == t.repo, b.number == t.number, b.on_pr == t.on_pr)
    return (
        sa.select(t.forge, t.repo, t.number, t.on_pr, t.published_at, t.pushed)
        .select_from(forge_turns.join(forge_bindings, on_turn))
        .where(window, t.pushed.is_not(None), t.published_at.is_not(None), failed)
    )


def _answers(window: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """Per (forge, repo, agent): the events accepted (not dropped), and those whose turn answered."""
    b, t, e = forge_bindings.c, forge_turns.c, forge_events.c
    on_event = sa.and_(b.forge == e.forge, b.repo == e.repo, b.number == e.number, b.on_pr == e.on_pr)
    answer = sa.case((t.answered == 1, 1), else_=0)
    return (
        sa.select(b.forge, b.repo, b.agent, sa.func.count(), sa.func.coalesce(sa.func.sum(answer), 0))
        .select_from(forge_events.join(forge_bindings, on_event).outerjoin(forge_turns, t.job_id == e.job_id))
        .where(window, e.status != EventStatus.DROPPED.value)
        .group_by(b.forge, b.repo, b.agent)
    )


def _failure(identity: str) -> tuple[str, str] | None:
    """(head, signature) of a CI failure's identity ``ci:<head>:<signature>``; None for one that was
    never read whole (``ci:<head>:?``, the reconcile's before the forge was asked)."""
    kind, _, rest = identity.partition(":")
    head, _, signature = rest.partition(":")
    if kind != "ci" or not head or not signature or signature == "?":
        return None
    return head, signature
