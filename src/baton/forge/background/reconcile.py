"""The reconcile: what webhooks missed, found by asking the forge (GitHub does not redeliver a failed
delivery; a service that was down missed them all). :func:`reconcile` makes one pass per configured
repository: one request for the issues and PRs updated since its threads were last looked at (less
:data:`SKEW`), the new comments, reviews, closes and conflicts of the bound ones and the mentions on the
others, and one conditional request per bound, open PR's head checks. Everything found goes through
:func:`baton.forge.turn.dispatch.handle`, the webhooks' own path, so a webhook and a reconcile of one event
make one turn. What a pass asks and its measured cost: docs/forge.md (Webhooks and the reconcile).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from baton import tracing
from baton.errors import Fenced
from baton.forge.data.model import (
    Actor,
    Comment,
    ForgeError,
    ForgeEvent,
    Review,
    ThreadInfo,
    Trigger,
)
from baton.forge.data.records import Binding, BindingStatus, FeedbackKind
from baton.forge.data.tables import forge_store
from baton.forge.kinds import registry
from baton.forge.reading.payload import mentions
from baton.forge.turn import dispatch
from baton.forge.turn.closing import close_thread
from baton.forge.turn.conflicts import conflict_event
from baton.forge.turn.loop import ForgeLoop
from baton.forge.turn.threads import bound_threads
from baton.forge.writes import merge_policy

log = logging.getLogger("baton.forge")
SKEW = 120.0  # seconds looked back beyond the last pass (clocks differ; the forge's index lags)
FIRST_LOOK = 86_400.0  # a repository with no bound thread: triggers of the last day are found
CHECKS_AT_ONCE = 8  # conditional check requests in flight at once
Key = tuple[int, bool]  # a binding's number and kind (GitLab's issue #3 and MR !3 are two threads)


@dataclass
class Report:
    """What one pass did."""

    repos: int = 0
    threads: int = 0
    found: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "repos": self.repos,
            "threads": self.threads,
            "found": self.found,
            "outcomes": dict(self.outcomes),
            "errors": self.errors,
        }


@tracing.traced("forge.reconcile")
def reconcile(loop: ForgeLoop, still: Callable[[], bool] = lambda: True) -> Report:
    """One pass over every configured repository; a forge that fails is reported, the others go on.

    Per repository (a failure to read one thread, or one PR's checks, is reported and the pass goes on;
    what it read is recorded, and what it could not is read again by the next pass):

    - **one** request lists the issues and PRs updated since the oldest of the repo's bound threads was
      last looked at, or bound (a new binding's first pass starts at its binding time, never at the
      project's beginning; every page; nothing updated: one request for the whole repository);
    - for each updated thread that is bound: its new comments and submitted reviews become events, a
      closed or merged one closes its binding, a PR the forge cannot merge becomes a ``conflict`` event
      (a PR the list does not describe — GitHub's issue list gives no head or mergeability — is read
      whole); for an updated thread that is not bound, its new comments are read for a trigger;
    - for each bound, open PR: **one** conditional request for its head's checks (GitHub answers 304
      when nothing changed, which costs no rate limit); a change is read as a ``ci_failure`` event.

    ``still``: whether this process still holds the duty ``forge`` (:mod:`baton.store.duties`); asked
    before each write, and a pass whose duty moved to another replica stops there (:class:`Fenced`).

    "Since" is :data:`SKEW` seconds before the last pass (the forge's clock and index lag behind
    baton's), so a thread touched in that window (often by baton's own status comment) is read again;
    what that finds is known on the thread already and answered ``duplicate`` from the store, before
    the forge is asked a permission or a review's inline comments."""
    report = Report()
    for (forge, _), config in list(loop.config.repos.items()):
        repo = config.name
        try:
            _repo(loop, forge, repo, report, still)
        except ForgeError as exc:
            report.errors.append(f"{forge}:{repo}: {exc}")
            log.warning("forge reconcile of %s:%s: %s", forge, repo, exc)
    return report


def _repo(loop: ForgeLoop, forge: str, repo: str, report: Report, still: Callable[[], bool]) -> None:
    started = loop.clock()
    client = loop.client(forge)
    bindings = bound_threads(loop, forge, repo)
    report.repos += 1
    report.threads += len(bindings)
    apart = loop.facts(forge).numbers_apart  # GitLab: issue #3 and MR !3 are two threads
    by_number = {(apart and b.on_pr, b.number): b for b in bindings} | {
        (apart, b.pr): b for b in bindings if b.pr is not None
    }
    since = min((b.seen for b in bindings), default=started - FIRST_LOOK) - SKEW
    unread: set[Key] = set()  # bindings a read failed for: not marked seen, so the next pass reads them
    touched: set[Key] = set()  # bound PRs updated or whose checks changed: the merge policy looks
    for info in client.updated_since(repo, since):
        _fenced(still)  # a thread's reading may close its binding
        binding = by_number.get((apart and info.is_pr, info.number))
        if binding is not None and info.number == binding.pr and info.state == "open":
            touched.add(_key(binding))
        try:
            events = (
                _bound(loop, forge, repo, info, binding)
                if binding
                else _triggers(loop, forge, repo, info, since)
            )
        except ForgeError as exc:  # one thread's failure is that thread's: the pass goes on
            _failed(report, f"{forge}:{repo}#{info.number}", exc)
            if binding is not None:
                unread.add(_key(binding))
            continue
        _handle(loop, events, report, still)
    prs = [b for b in bindings if b.pr is not None and b.head_sha and b.status != BindingStatus.CLOSED]
    # a round trip each (~100 ms to github.com): a few at once, so 1,000 PRs stay well within the pass
    with ThreadPoolExecutor(CHECKS_AT_ONCE, thread_name_prefix="baton-reconcile") as pool:
        found = list(pool.map(lambda binding: _checks_of(loop, forge, binding), prs))
    for pr, answer in zip(prs, found, strict=True):
        if isinstance(answer, ForgeError):
            _failed(report, f"{forge}:{repo}#{pr.pr} (checks)", answer)
            unread.add(_key(pr))
            continue
        if answer:
            touched.add(_key(pr))
        _handle(loop, answer, report, still)
    _fenced(still)
    _merge_policy(loop, forge, repo, touched, report)
    seen = [(b.number, b.etag, b.on_pr) for b in bindings if _key(b) not in unread]
    forge_store(loop.store).mark_seen(forge, repo, seen, started)


def _key(binding: Binding) -> Key:
    return binding.number, binding.on_pr


def _merge_policy(loop: ForgeLoop, forge: str, repo: str, touched: set[Key], report: Report) -> None:
    """The merge policy's look at each PR the pass found updated or with changed checks (nothing is
    asked of the forge for a repository whose ``merge`` is off, or a head done already)."""
    for number, pr in sorted(touched):
        binding = loop.binding(forge, repo, number, pr)  # as the events left it
        if binding is None:
            continue
        done = merge_policy.consider(loop, binding, "reconcile")
        if done.get("error"):
            report.errors.append(f"{forge}:{repo}#{binding.pr} (merge policy): {done['error']}")
        elif done.get("merge") == "ready":
            report.outcomes["merge_policy"] += 1


def _failed(report: Report, what: str, exc: ForgeError) -> None:
    report.errors.append(f"{what}: {exc}")
    log.warning("forge reconcile of %s: %s", what, exc)


def _checks_of(loop: ForgeLoop, forge: str, binding: Binding) -> list[ForgeEvent] | ForgeError:
    try:
        return _checks(loop, forge, binding)
    except ForgeError as exc:
        return exc


def _fenced(still: Callable[[], bool]) -> None:
    if not still():
        raise Fenced("the forge duty moved to another replica: this reconcile pass stops")


def _handle(loop: ForgeLoop, events: list[ForgeEvent], report: Report, still: Callable[[], bool]) -> None:
    for event in events:
        _fenced(still)
        report.found += 1
        try:
            outcome = dispatch.handle(loop, event, delivery="reconcile")
        except ForgeError as exc:
            report.errors.append(f"{event.identity}: {exc}")
            continue
        report.outcomes[outcome.status] += 1


# -- what changed on a thread ---------------------------------------------------------------------------


def _bound(loop: ForgeLoop, forge: str, repo: str, info: ThreadInfo, binding: Binding) -> list[ForgeEvent]:
    client = loop.client(forge)
    if info.state == "closed":
        close_thread(loop, binding, "merged" if info.merged else "closed on the forge", "reconcile")
        if info.merged:  # kept apart from the note: the close may be read after the PR's
            forge_store(loop.store).mark_merged(forge, repo, info.number, loop.which(forge, info.is_pr))
        return []
    if info.is_pr and info.head_sha is None:
        # GitHub's issue list says nothing of a PR's head or mergeability: the pull request does (a
        # person's push, or a base that moved, found without their webhooks)
        info = client.thread(repo, info.number, pr=True)
    if info.is_pr and info.head_sha and info.head_sha != binding.head_sha:
        binding.head_sha, binding.etag = info.head_sha, None  # a push: its checks are new
    comments = client.comments(repo, info.number, binding.seen - SKEW, pr=info.is_pr)
    events = [comment_event(loop, forge, repo, info, c) for c in comments if not _own(loop, forge, c)]
    if info.is_pr:
        kind = loop.forge(forge).kind
        events += [
            review_event(kind, forge, repo, info, r)
            for r in client.reviews(repo, info.number, since=binding.seen - SKEW)
            if r.body.strip() or r.comments
        ]
        if info.mergeable is False and info.head_sha:
            events.append(conflict_event(forge, repo, info))
    return events


def _triggers(loop: ForgeLoop, forge: str, repo: str, info: ThreadInfo, since: float) -> list[ForgeEvent]:
    """Mentions on an unbound thread that a webhook should have delivered."""
    mention = loop.forge(forge).mention
    comments = loop.client(forge).comments(repo, info.number, since, pr=info.is_pr)
    return [
        comment_event(loop, forge, repo, info, c)
        for c in comments
        if mentions(c.body, mention) and not _own(loop, forge, c)
    ]


def _own(loop: ForgeLoop, forge: str, comment: Comment) -> bool:
    """baton's own comments (its status comment): never a trigger, so not even looked at again."""
    own = loop.forge(forge).user.casefold().removesuffix("[bot]")
    return comment.author.login.casefold().removesuffix("[bot]") == own


def comment_event(loop: ForgeLoop, forge: str, repo: str, info: ThreadInfo, comment: Comment) -> ForgeEvent:
    mention = loop.forge(forge).mention
    return ForgeEvent(
        forge=forge,
        repo=repo,
        number=info.number,
        kind=FeedbackKind.COMMENT,
        identity=f"comment:{comment.id}",
        actor=comment.author,
        trigger=Trigger.MENTION if mentions(comment.body, mention) else Trigger.FEEDBACK,
        url=comment.url,
        is_pr=info.is_pr,
        head_sha=info.head_sha,
        from_fork=info.from_fork,
        title=info.title,
        body=comment.body,
        at=comment.at,
    )


def review_event(kind: str, forge: str, repo: str, info: ThreadInfo, review: Review) -> ForgeEvent:
    return ForgeEvent(
        forge=forge,
        repo=repo,
        number=info.number,
        kind=FeedbackKind.REVIEW,
        identity=registry.review_identity(kind, info.number, review),
        actor=review.author,
        url=review.url,
        is_pr=True,
        head_sha=review.commit,
        from_fork=info.from_fork,
        title=info.title,
        body=review.body,
        comments=review.comments,
        at=review.at,
    )


def _checks(loop: ForgeLoop, forge: str, binding: Binding) -> list[ForgeEvent]:
    assert binding.head_sha is not None and binding.pr is not None
    changed = loop.client(forge).checks_changed(binding.repo, binding.head_sha, binding.etag)
    binding.etag = changed.etag
    if not changed.changed:
        return []
    return [
        ForgeEvent(
            forge=forge,
            repo=binding.repo,
            number=binding.pr,
            kind=FeedbackKind.CI_FAILURE,
            identity=f"ci:{binding.head_sha}:?",
            actor=Actor("forge"),
            is_pr=True,
            head_sha=binding.head_sha,
        )
    ]
