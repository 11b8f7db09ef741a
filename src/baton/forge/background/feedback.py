"""Acting on a signed delivery's feedback (read by :mod:`baton.forge.reading.delivery`): its events, with
retries, an issue or PR closed, a branch pushed to (the webhook worker,
:mod:`baton.forge.background.delivery_pool`, calls these in the background; the acknowledgement never waits
for a forge).

The delivery's own id keeps it from being acted on twice (the service's deliveries table); each event's
identity keeps one event from making two turns however many deliveries carry it (the dispatcher). A
forge that fails while an event is handled (a 500, a timeout) is retried with backoff; when it keeps
failing the delivery ends ``failed`` with the forge's words, and the next reconcile finds the event —
nothing is lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from baton import retry
from baton.forge.data.model import ForgeError, ForgeEvent
from baton.forge.data.records import BindingStatus
from baton.forge.data.tables import forge_store
from baton.forge.reading.delivery import BasePushed, Closed, Settled
from baton.forge.turn import dispatch
from baton.forge.turn.closing import close_thread
from baton.forge.turn.conflicts import base_moved
from baton.forge.turn.loop import ForgeLoop
from baton.forge.writes import merge_policy

log = logging.getLogger("baton.forge")
# seconds between attempts at an event while the forge fails: 1, 2, 4, 8 (five attempts)
FIRST_PAUSE, LAST_PAUSE, ATTEMPTS = 1.0, 8.0, 5


def act_on_pushed(loop: ForgeLoop, pushed: BasePushed) -> dict[str, Any]:
    """A branch pushed to: check the PRs onto it (:func:`baton.forge.turn.conflicts.base_moved`)."""
    return {"checked": [o.to_json() for o in base_moved(loop, pushed.forge, pushed.repo, pushed.branch)]}


def act_on_closed(loop: ForgeLoop, closed: Closed) -> dict[str, Any]:
    """An issue or PR closed: close the binding it names and stop its turns
    (:func:`baton.forge.turn.closing.close_thread`: nothing more runs for it, its work stays checkpointed)."""
    which = loop.which(closed.forge, closed.pr)
    binding = forge_store(loop.store).get_binding(closed.forge, closed.repo, closed.number, which)
    if binding is not None and closed.merged:  # an outcome, also after the close closed it
        forge_store(loop.store).mark_merged(closed.forge, closed.repo, closed.number, which)
    if binding is None or binding.status == BindingStatus.CLOSED:
        return {"ignored": f"{closed.forge}:{closed.repo}#{closed.number} is not an open bound thread"}
    return close_thread(
        loop, binding, "merged" if closed.merged else "closed on the forge", f"forge:{closed.forge}"
    )


def act_on_settled(loop: ForgeLoop, settled: Settled) -> dict[str, Any]:
    """A review submitted or a check succeeded: the merge policy looks at the PRs it names
    (:func:`baton.forge.writes.merge_policy.act_on_settled`)."""
    return merge_policy.act_on_settled(loop, settled)


def act(
    loop: ForgeLoop,
    events: list[ForgeEvent],
    delivery: str,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Handle each event (retrying while the forge fails); the delivery's result."""
    outcomes: list[dict[str, Any]] = []
    errors: list[str] = []
    for event in events:
        try:
            handled = retry.Retrying(
                retry=retry.retry_if_exception(lambda exc: isinstance(exc, ForgeError) and exc.transient),
                wait=retry.growing(FIRST_PAUSE, LAST_PAUSE),
                stop=retry.stop_after_attempt(ATTEMPTS),
                sleep=sleep,
                reraise=True,
            )(dispatch.handle, loop, event, delivery)
        except ForgeError as exc:
            errors.append(f"{event.identity}: {exc}")
            log.warning("forge delivery %s: %s failed: %s", delivery, event.identity, exc)
            continue
        outcomes.append({"identity": event.identity, **handled.to_json()})
    result: dict[str, Any] = {"forge": outcomes}
    if errors:
        result["error"] = "; ".join(errors) + " (the next reconcile looks again)"
    return result
