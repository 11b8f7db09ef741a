"""Whether baton's pull request is ready — the merge policy's one question
(:mod:`baton.forge.writes.merge_policy` acts on the answer). Pure: :class:`PullState` is what a forge says of
the PR (read by a :class:`MergeClient`: :mod:`baton.forge.kinds.github.merge`,
:mod:`baton.forge.kinds.gitea.merge`) and :func:`not_ready` decides, by the rules in order: the PR is open; no
reviewer's latest review requests changes; an approval on the current head from a reviewer the trust policy
trusts; every required check green (when the forge names none, every check on the head; a head no check has
reported on waits, unless the repository says it has no CI). The rules in full: :func:`not_ready` and
docs/forge.md (The merge policy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from baton.forge.data.model import Actor, Review

GREEN, PENDING, RED = "green", "pending", "red"  # a check's state, as the policy reads it
_WORSE = {GREEN: 0, PENDING: 1, RED: 2}
REVIEW_STATES = ("APPROVED", "CHANGES_REQUESTED", "DISMISSED")  # the ones that change a reviewer's word
MAX_NAMED = 5  # names in a reason


@dataclass(frozen=True)
class CheckState:
    """One check run or commit status on the head, reduced to what the policy asks."""

    name: str
    state: str  # GREEN, PENDING or RED


@dataclass(frozen=True)
class PullState:
    """A pull request as the forge describes it now, for the merge policy."""

    number: int
    open: bool
    draft: bool  # GitHub's draft flag; Gitea's work-in-progress title prefix
    head_sha: str
    base_ref: str
    reviews: tuple[Review, ...]  # submitted reviews, oldest first (inline comments not read)
    checks: tuple[CheckState, ...]  # every check run and commit status on the head
    required: tuple[str, ...] | None  # the required checks' names; None: the forge names none or cannot say
    auto_merge: bool = False  # the forge's auto-merge is enabled already
    checks_unknown: str = ""  # why the head's checks could not all be read ("": they were)


@runtime_checkable
class MergeClient(Protocol):
    """What the merge policy asks of a forge. Every method raises
    :class:`~baton.forge.data.model.ForgeError` (a refusal: not transient; no answer: transient)."""

    def pull_state(self, repo: str, number: int) -> PullState: ...

    def mark_ready(self, repo: str, number: int) -> None:
        """Take the PR out of draft (GitHub) or drop its work-in-progress title prefix (Gitea)."""
        ...

    def enable_auto_merge(self, repo: str, number: int, head_sha: str) -> str:
        """Turn on the forge's own auto-merge of the PR at ``head_sha``, with a merge method the
        repository allows; the method used."""
        ...


def worst(states: list[str]) -> str:
    return max(states, key=lambda s: _WORSE.get(s, 2)) if states else GREEN


# The rules, in order:
#
# 1. the PR is open;
# 2. no reviewer's latest review requests changes (whoever they are: a request for changes always holds
#    the PR back; a dismissed review counts as none);
# 3. at least one approval **on the current head** (a push after an approval asks for another) from a
#    reviewer the trust policy trusts (:func:`baton.forge.turn.trust.judge`: the same rules as for whose words
#    start a turn; an approval from someone without ``trusted`` access, a bot not allowed, baton's own
#    user, counts for nothing);
# 4. the checks on the head: every **required** check present and green when the forge names them
#    (GitHub's branch protection and rulesets, Gitea's branch protection); when it names none or cannot
#    say, **every** check on the head green (a check still running, or failed, holds it back). A head no
#    check run or status has reported on yet is *waiting* — CI may not have started on a new head — unless
#    the repository says it has no CI (``checks = "none"``: then it has nothing to wait for).
def not_ready(pull: PullState, trusted: Callable[[Actor], bool], ci: bool = True) -> str | None:
    """Why the PR is not ready yet (the rules in the module's docstring, in order), or None when it is.
    ``trusted(actor)``: the trust policy's word on a reviewer (asked only of approvals on the head);
    ``ci``: whether the repository runs checks (False: a head with none is not waited for)."""
    if not pull.open:
        return "the pull request is not open"
    latest: dict[str, Review] = {}
    for review in pull.reviews:
        if review.state in REVIEW_STATES:
            latest[review.author.login.casefold()] = review
    asking = sorted(r.author.login for r in latest.values() if r.state == "CHANGES_REQUESTED")
    if asking:
        return f"changes are requested by {_names(asking)}"
    approvals = [r for r in latest.values() if r.state == "APPROVED" and r.commit == pull.head_sha]
    if not approvals:
        return f"no approval on the head {pull.head_sha[:12]}"
    if not any(trusted(r.author) for r in approvals):
        return (
            f"approved on the head only by {_names(sorted(r.author.login for r in approvals))}, not trusted"
        )
    return checks_not_green(pull, ci)


def checks_not_green(pull: PullState, ci: bool = True) -> str | None:
    """Why the head's checks hold the PR back, or None. ``ci``: the repository runs checks, so a head
    none has reported on waits for them (an approval may land before CI has started on a new head)."""
    if pull.checks_unknown:
        return f"the checks on the head cannot all be read: {pull.checks_unknown}"
    if ci and not pull.checks and not pull.required:
        return f"waiting for the checks: none has reported on the head {pull.head_sha[:12]} yet"
    by_name: dict[str, list[str]] = {}
    for check in pull.checks:
        by_name.setdefault(check.name, []).append(check.state)
    wanted = pull.required if pull.required else tuple(by_name)
    state = {name: worst(by_name[name]) if name in by_name else PENDING for name in wanted}
    red = sorted(name for name in wanted if state[name] == RED)
    if red:
        return f"failing: {_names(red)}"
    waiting = sorted(name for name in wanted if state[name] == PENDING)
    if waiting:
        which = "required check" if pull.required else "check"
        return f"waiting for the {which}{'s' if len(waiting) > 1 else ''} {_names(waiting)}"
    return None


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMED])
    return shown + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")
