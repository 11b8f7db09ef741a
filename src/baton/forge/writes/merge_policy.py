"""The merge policy, acted on (opt-in per repository: ``merge = "off" | "ready" | "auto"``): when the PR
baton opened for an issue's thread is approved and green on its current head
(:func:`baton.forge.kinds.readiness.not_ready`), it is marked ready for review, and with ``auto`` the forge's
own auto-merge is enabled. :func:`consider` is asked after an approving review or a green check
(:func:`act_on_settled`), after each published turn and by the reconcile; never while a turn is queued
or running or an event waits for one (no turn starts while it acts); each step is taken once per head
(``merge:<step>:<head>`` on the thread, audited ``forge.ready`` / ``forge.auto_merge``), a refusal said
once and never raised, a forge that does not answer asked again, and a quiet thread costs no request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from baton.errors import BatonError, Busy
from baton.forge.data.config import Checks, MergePolicy, RepoConfig
from baton.forge.data.model import Actor, ForgeError, ForgeEvent
from baton.forge.data.records import Binding, BindingStatus, EventRecord, EventStatus, FeedbackKind
from baton.forge.data.tables import forge_store
from baton.forge.kinds import registry
from baton.forge.kinds.readiness import MergeClient, PullState, not_ready
from baton.forge.kinds.registry import merge_client
from baton.forge.reading.delivery import Settled
from baton.forge.turn import start
from baton.forge.turn.loop import ForgeLoop
from baton.forge.turn.threads import by_head
from baton.forge.turn.trust import judge
from baton.models import Access
from baton.store.leases import key_lease

log = logging.getLogger("baton.forge")
READY, AUTO = "ready", "auto_merge"  # the steps, in order; their audit rows are forge.<step>
WAITING = "an event of the thread waits for its turn: its push may move the head"


def act_on_settled(loop: ForgeLoop, settled: Settled) -> dict[str, Any]:
    """The PRs a settled delivery names (or the one at its head), each considered."""
    store = forge_store(loop.store)
    which = loop.which(settled.forge, True)
    found = [store.get_binding(settled.forge, settled.repo, n, which) for n in settled.numbers]
    if not settled.numbers and settled.head_sha:
        found = [by_head(loop, settled.forge, settled.repo, settled.head_sha)]
    done = [consider(loop, b, "a review or a check") for b in found if b is not None]
    return {"merge": done} if done else {"merge": "no bound pull request"}


def consider(loop: ForgeLoop, binding: Binding, why: str, finishing: str | None = None) -> dict[str, Any]:
    """Take the next steps of the repository's merge policy for the thread's PR, if it is ready; what
    was done or why nothing (never raises: a forge's failure is said in what it returns). ``finishing``:
    the turn being published now (:mod:`baton.forge.writes.publish` asks again after each turn).

    It acts holding the lease :func:`baton.forge.turn.start.kick` starts a turn under, and asks again
    under it whether a turn is queued or running or an event waits for one: no turn starts while the
    PR is marked ready or handed to the forge's auto-merge, and none is under way when it is. An event
    whose turn could not start meanwhile is started when it is done."""
    config = loop.repo(binding.forge, binding.repo)
    skip = _skip(loop, binding, config, finishing)
    if skip or config is None:
        if skip == WAITING:  # its turn starts (kicked twice at worst: a kick starts one turn)
            start.kick(loop, binding, finishing)
        return {"merge": skip or "not configured"}
    lease = key_lease(loop.settings, loop.store, f"forge-merge:{loop.lease_name(binding)}")
    try:
        lease.acquire(wait=0.0)
    except Busy:
        return {"merge": "another process is looking at it"}
    turns = key_lease(loop.settings, loop.store, f"forge:{loop.lease_name(binding)}")  # kick's own
    try:
        turns.acquire(wait=10.0)
    except Busy:
        lease.release()
        return {"merge": "a turn of the thread is being started"}
    try:
        skip = _skip(loop, binding, config, finishing)  # again, now that no turn can start
        if skip:
            return {"merge": skip}
        return _consider(loop, binding, config, why)
    except (ForgeError, BatonError) as exc:  # no answer: asked again by the next event or reconcile
        log.warning("forge %s: the merge policy could not read the PR: %s", binding.conversation, exc)
        return {"merge": "error", "error": str(exc)}
    finally:
        turns.release()
        lease.release()
        if _waiting(loop, binding):  # its kick found the lease held: it starts now
            start.kick(loop, binding, finishing)


def _waiting(loop: ForgeLoop, binding: Binding) -> bool:
    """Whether an event of the thread waits for its turn (stored ``pending``, not started yet)."""
    store = forge_store(loop.store)
    pending = store.forge_events(
        binding.forge, binding.repo, binding.number, status=EventStatus.PENDING, pr=binding.on_pr
    )
    return bool(pending)


def _skip(
    loop: ForgeLoop, binding: Binding, config: RepoConfig | None, finishing: str | None = None
) -> str | None:
    """Why the thread's PR is not considered at all (no forge request): None when it is."""
    if config is None or config.merge is MergePolicy.OFF:
        return "off"
    if binding.pr is None or binding.pr == binding.number or binding.access == Access.READ:
        return "not a pull request baton opened"
    if binding.status == BindingStatus.CLOSED:
        return "the thread is closed"
    if start.busy(loop, binding, finishing):
        return "a turn of the thread is under way: its push moves the head"
    if _waiting(loop, binding):
        return WAITING
    if binding.head_sha and all(_recorded(loop, binding, step, binding.head_sha) for step in _steps(config)):
        return "done for this head"
    return None


def _steps(config: RepoConfig) -> tuple[str, ...]:
    return (READY, AUTO) if config.merge is MergePolicy.AUTO else (READY,)


def _consider(loop: ForgeLoop, binding: Binding, config: RepoConfig, why: str) -> dict[str, Any]:
    assert binding.pr is not None
    client = merge_client(loop.client(binding.forge))
    pull = client.pull_state(binding.repo, binding.pr)
    todo = [s for s in _steps(config) if not _recorded(loop, binding, s, pull.head_sha) and _wanted(s, pull)]
    if not pull.head_sha or not todo:
        return {"merge": "nothing to do", "head": pull.head_sha}
    ci = config.checks is not Checks.NONE
    reason = not_ready(pull, _trusted(loop, binding, config), ci) or _unread(loop, binding, pull)
    if reason is not None:
        return {"merge": "not ready", "why": reason, "head": pull.head_sha}
    done: dict[str, Any] = {"merge": "ready", "head": pull.head_sha}
    for step in todo:
        said = _step(loop, binding, client, pull, step, why)
        done[step] = said
        if said.startswith("refused"):
            break  # a PR still in draft cannot be auto-merged
    return done


def _unread(loop: ForgeLoop, binding: Binding, pull: PullState) -> str | None:
    """An approval on the head that says something is an instruction, a turn of its own: until its
    event is on the thread (its turn then holds the policy back, and the policy looks again when it is
    published), the PR is not ready — the forge's list may show it before its webhook is read."""
    assert binding.pr is not None
    kind = loop.forge(binding.forge).kind
    stored = {
        r.identity
        for r in forge_store(loop.store).forge_events(
            binding.forge, binding.repo, binding.number, pr=binding.on_pr
        )
    }
    for review in pull.reviews:
        if review.state != "APPROVED" or review.commit != pull.head_sha or not review.body.strip():
            continue
        if registry.review_identity(kind, binding.pr, review) not in stored:
            return f"the approval of {review.author.login} says something: its turn comes first"
    return None


def _wanted(step: str, pull: PullState) -> bool:
    return pull.draft if step == READY else not pull.auto_merge


def _step(
    loop: ForgeLoop, binding: Binding, client: MergeClient, pull: PullState, step: str, why: str
) -> str:
    """One step, taken, recorded and audited; "done …" or "refused: <the forge's words>". A forge that
    does not answer raises (nothing recorded: the step is asked again)."""
    assert binding.pr is not None
    detail: dict[str, Any] = {"pr": binding.pr, "head": pull.head_sha, "after": why}
    try:
        if step == READY:
            client.mark_ready(binding.repo, binding.pr)
            said = "done: marked ready for review"
        else:
            method = client.enable_auto_merge(binding.repo, binding.pr, pull.head_sha)
            detail["method"] = method
            said = f"done: the forge's auto-merge enabled ({method})"
    except ForgeError as exc:
        if exc.transient:
            raise
        said = f"refused: {exc}"
        detail["refused"] = str(exc)
        log.warning("forge %s: %s refused by the forge: %s", binding.conversation, step, exc)
    if _record(loop, binding, step, pull.head_sha, said):
        loop.store.audit(f"forge.{step}", binding.conversation, "baton", detail)
    return said


def _identity(step: str, head: str) -> str:
    return f"merge:{step}:{head}"


def _recorded(loop: ForgeLoop, binding: Binding, step: str, head: str) -> bool:
    identity = _identity(step, head)
    stored = forge_store(loop.store).forge_events(
        binding.forge, binding.repo, binding.number, pr=binding.on_pr
    )
    return any(record.identity == identity for record in stored)


def _record(loop: ForgeLoop, binding: Binding, step: str, head: str, said: str) -> bool:
    """The step kept on the thread (``baton forge show`` lists it, with what the forge said); False
    when it was recorded already."""
    record = EventRecord(
        forge=binding.forge,
        repo=binding.repo,
        number=binding.number,
        on_pr=binding.on_pr,
        identity=_identity(step, head),
        kind=FeedbackKind.REVIEW,
        status=EventStatus.DROPPED,
        event={},
        received_at=loop.clock(),
        reason=f"merge policy: {said}"[:1000],
    )
    return forge_store(loop.store).add_forge_event(record) is not None


def _trusted(loop: ForgeLoop, binding: Binding, config: RepoConfig) -> Callable[[Actor], bool]:
    """The trust policy's word on a reviewer, as on anyone whose words would start a turn."""
    forge = loop.forge(binding.forge)

    def trusted(actor: Actor) -> bool:
        event = ForgeEvent(
            binding.forge, binding.repo, binding.pr or binding.number, FeedbackKind.REVIEW, "approval", actor
        )
        decision = judge(
            event, config, forge, lambda login: loop.permission(binding.forge, binding.repo, login)
        )
        return decision.accepted and not decision.quoted

    return trusted
