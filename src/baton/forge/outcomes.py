"""What the forge loop came to, per repository and agent: threads started, the PRs baton opened and what
became of them, rounds of feedback to green, how long from a mention to the first push and from a CI
failure to the push that fixed it, how many accepted feedback events were answered, and the threads
waiting on a person. :func:`outcomes` computes it for ``/metrics``, ``GET /v1/forge/outcomes`` and the
dashboard's overview alike, from facts the forge room records once, where they happen:

- a thread started: its binding (``created_at``, the mention, label or assignment that bound it);
- its PR opened: ``forge_bindings.pr_opened_at``, set by the publisher when it opens the PR;
- closed, merged: ``closed_at``, kept by the store when a save moves the binding to ``closed``;
  ``merged``, set when the forge says the PR was merged (the reconcile, the ``closed`` webhook), never
  undone (the issue's close and the PR's may come in either order);
- waiting on a person: ``waiting_since``, kept by the store while the binding stays in ``needs_human``;
- a push: ``forge_turns.pushed``, the head a turn pushed, at its ``published_at`` (just after the push);
- answered: ``forge_turns.answered``, a turn that pushed, posted the agent's answer or asked a question
  (:func:`answered`, from what the publisher reports).

Everything is read in one transaction by a fixed set of four queries (bindings; turns; CI failures;
events by answer, counted by the database) and computed here: the cost is one row per thread, one per
turn and one per CI failure, never a query per thread. The definitions, exactly: docs/forge.md
(Outcomes).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from baton.forge.records import BindingStatus, EventStatus, FeedbackKind
from baton.forge.schema import forge_bindings, forge_events, forge_turns
from baton.store.base import Transactions

Group = tuple[str, str, str]  # forge, repo, agent
Conversation = tuple[str, str, int]  # forge, repo, number
Turn = tuple[float, float | None, str | None]  # submitted_at, published_at, the head it pushed
Failure = tuple[float, str, str]  # received_at, head, signature
Answers = dict[Group, tuple[int, int]]  # accepted, answered
ANSWERS = ("posted", "posted before", "in the status comment")  # what ``reply`` says of a posted answer


def pushed_head(publish: dict[str, Any]) -> str | None:
    """The head a published turn pushed, from what the publisher reported (None: nothing pushed)."""
    head = publish.get("head")
    return str(head) if publish.get("pushed") is True and head else None


def answered(publish: dict[str, Any]) -> bool:
    """Whether a published turn answered the feedback it took: it pushed, the agent's answer was posted
    (a comment, or a section of the status comment), or it asked a question (``question``)."""
    return publish.get("pushed") is True or publish.get("reply") in ANSWERS or bool(publish.get("question"))


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
    """One binding's facts and its turns, while computing."""

    group: Group
    status: str
    created_at: float
    updated_at: float
    pr_opened_at: float | None
    closed_at: float | None
    merged: bool
    waiting_since: float | None
    turns: list[Turn] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    def pushes(self) -> list[Push]:
        return sorted(Push(published, head) for _s, published, head in self.turns if head and published)


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
    pushes = thread.pushes()
    if pushes:
        values["first_push"].append(max(0.0, pushes[0].at - thread.created_at))
    if thread.pr_opened_at is not None:
        row.prs_opened += 1
        if thread.merged:
            row.prs_merged += 1
            values["rounds"].append(rounds_to_green(thread.pr_opened_at, thread.turns))
        elif thread.closed_at is not None:
            row.prs_closed += 1
    values["ci_fix"] += ci_fix_times(thread.failures, pushes)
    if thread.status == BindingStatus.NEEDS_HUMAN.value:
        values["waiting"].append(max(0.0, now - (thread.waiting_since or thread.updated_at)))


def rounds_to_green(pr_opened_at: float, turns: list[Turn]) -> int:
    """The feedback turns of a merged PR until its last push (the head that was merged: green): the
    turns submitted after baton opened the PR, up to and including the one that pushed last. A PR merged
    as it was opened: 0."""
    last = max((submitted for submitted, _p, head in turns if head), default=None)
    if last is None:
        return 0
    return sum(1 for submitted, _p, _h in turns if pr_opened_at < submitted <= last)


def ci_fix_times(failures: list[Failure], pushes: list[Push]) -> list[float]:
    """Seconds from each CI failure to the push that fixed it: per failure signature, a failure starts
    an episode (later reports of the same signature before the fix belong to it); the fix is the first
    push after it whose head has no failure of that signature recorded. An episode no push has fixed
    yet is not counted."""
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
    """The four queries, in one transaction."""
    b, t, e = forge_bindings.c, forge_turns.c, forge_events.c
    window = b.created_at >= since if since is not None else sa.true()
    joined = sa.and_(b.forge == t.forge, b.repo == t.repo, b.number == t.number)
    on_event = sa.and_(b.forge == e.forge, b.repo == e.repo, b.number == e.number)
    bindings = sa.select(
        b.forge, b.repo, b.number, b.agent, b.status, b.created_at, b.updated_at,
        b.pr_opened_at, b.closed_at, b.merged, b.waiting_since,
    ).where(window)  # fmt: skip
    turns = (
        sa.select(t.forge, t.repo, t.number, t.submitted_at, t.published_at, t.pushed)
        .select_from(forge_turns.join(forge_bindings, joined))
        .where(window)
    )
    failures = (
        sa.select(e.forge, e.repo, e.number, e.received_at, e.identity)
        .select_from(forge_events.join(forge_bindings, on_event))
        .where(window, e.kind == FeedbackKind.CI_FAILURE.value, e.status != EventStatus.DROPPED.value)
    )
    answer = sa.case((t.answered == 1, 1), else_=0)
    counted = (
        sa.select(b.forge, b.repo, b.agent, sa.func.count(), sa.func.coalesce(sa.func.sum(answer), 0))
        .select_from(forge_events.join(forge_bindings, on_event).outerjoin(forge_turns, t.job_id == e.job_id))
        .where(window, e.status != EventStatus.DROPPED.value)
        .group_by(b.forge, b.repo, b.agent)
    )
    threads: dict[Conversation, _Thread] = {}
    with store.transaction() as conn:
        for r in conn.execute(bindings):
            threads[r.forge, r.repo, r.number] = _Thread(
                (r.forge, r.repo, r.agent), r.status, r.created_at, r.updated_at, r.pr_opened_at,
                r.closed_at, bool(r.merged), r.waiting_since,
            )  # fmt: skip
        for t_row in conn.execute(turns):
            if (thread := threads.get((t_row.forge, t_row.repo, t_row.number))) is not None:
                thread.turns.append((t_row.submitted_at, t_row.published_at, t_row.pushed))
        for e_row in conn.execute(failures):
            parsed = _failure(e_row.identity)
            if parsed is not None and (thread := threads.get((e_row.forge, e_row.repo, e_row.number))):
                thread.failures.append((e_row.received_at, *parsed))
        answers = {(f, repo, a): (int(n), int(yes)) for f, repo, a, n, yes in conn.execute(counted)}
    return threads, answers


def _failure(identity: str) -> tuple[str, str] | None:
    """(head, signature) of a CI failure's identity ``ci:<head>:<signature>``; None for one that was
    never read whole (``ci:<head>:?``, the reconcile's before the forge was asked)."""
    kind, _, rest = identity.partition(":")
    head, _, signature = rest.partition(":")
    if kind != "ci" or not head or not signature or signature == "?":
        return None
    return head, signature
