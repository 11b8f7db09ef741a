"""A signed delivery's feedback: which configured forge it came from, the events it carries
(:func:`baton.forge.intake.read_event`), and acting on them with retries (the service's webhook worker
calls :func:`act` in the background; the acknowledgement never waits for a forge).

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

from baton.forge import dispatch, intake
from baton.forge.config import ForgeConfig, ForgeSettings
from baton.forge.conflicts import base_moved
from baton.forge.loop import ForgeLoop
from baton.forge.model import BindingStatus, ForgeError, ForgeEvent, ForgeKind

log = logging.getLogger("baton.forge")
BACKOFF = (1.0, 2.0, 4.0, 8.0)  # seconds between attempts at an event while the forge fails
MARKERS = ("closed:", "pushed:")  # what read() returns for work that is not an event


def forge_of(config: ForgeSettings, kind: ForgeKind, payload: dict[str, Any]) -> ForgeConfig | None:
    """The configured forge of ``kind`` a payload comes from (by its repository's URL when several
    are: github.com and a GitHub Enterprise Server)."""
    repository = payload.get("repository")
    url = repository.get("html_url") if isinstance(repository, dict) else None
    return config.forge_of_kind(kind, url if isinstance(url, str) else None)


def read(
    config: ForgeSettings, kind: ForgeKind, event: str, payload: dict[str, Any]
) -> list[ForgeEvent] | str:
    """The feedback events of a delivery, or why it has none (raises intake's ``Malformed``)."""
    forge = forge_of(config, kind, payload)
    if forge is None:
        return f"no {kind.value} forge is configured for this delivery"
    closed = _closed(forge, event, payload) or _base_moved(forge, event, payload)
    if closed is not None:
        return closed
    return intake.read_event(kind, forge.name, event, payload, mention=forge.mention, user=forge.user)


def _closed(forge: ForgeConfig, event: str, payload: dict[str, Any]) -> str | None:
    """An issue or PR closed: a marker the worker turns into closing its binding."""
    if event not in ("issues", "pull_request") or payload.get("action") != "closed":
        return None
    item = payload.get("issue") if event == "issues" else payload.get("pull_request")
    repository = payload.get("repository")
    number = item.get("number") if isinstance(item, dict) else None
    name = repository.get("full_name") if isinstance(repository, dict) else None
    if not isinstance(number, int) or not isinstance(name, str):
        return None
    return f"closed:{forge.name}:{name}#{number}"


def _base_moved(forge: ForgeConfig, event: str, payload: dict[str, Any]) -> str | None:
    """A push to a branch (not a deletion): a marker the worker turns into checking whether the bound
    PRs onto that branch can still be merged (a moved base is how a PR comes to conflict, and the
    forge sends no event when its mergeability changes)."""
    if event != "push" or payload.get("deleted") is True:
        return None
    sender = payload.get("sender")
    login = sender.get("login") if isinstance(sender, dict) else None
    if isinstance(login, str) and login.casefold().removesuffix("[bot]") == forge.user.casefold():
        return None  # baton's own push to a thread's branch moves no base it works on
    ref, repository = payload.get("ref"), payload.get("repository")
    name = repository.get("full_name") if isinstance(repository, dict) else None
    if not isinstance(ref, str) or not ref.startswith("refs/heads/") or not isinstance(name, str):
        return None
    return f"pushed:{forge.name}:{name}:{ref.removeprefix('refs/heads/')}"


def act_on_marker(loop: ForgeLoop, marker: str) -> dict[str, Any]:
    """Act on a marker: ``closed:`` closes the binding it names (nothing more runs for it),
    ``pushed:`` checks the PRs onto the branch it names (:func:`baton.forge.conflicts.base_moved`)."""
    if marker.startswith("pushed:"):
        forge_name, _, rest = marker.removeprefix("pushed:").partition(":")
        repo, _, branch = rest.partition(":")
        return {"checked": [o.to_json() for o in base_moved(loop, forge_name, repo, branch)]}
    conversation = marker.removeprefix("closed:")
    forge, _, rest = conversation.partition(":")
    repo, _, number = rest.rpartition("#")
    binding = loop.store.get_binding(forge, repo, int(number))
    if binding is None or binding.status == BindingStatus.CLOSED:
        return {"ignored": f"{conversation} is not an open bound thread"}
    binding.status, binding.note, binding.updated_at = (
        BindingStatus.CLOSED,
        "closed on the forge",
        loop.clock(),
    )
    loop.store.save_binding(binding)
    loop.store.audit("forge.closed", binding.conversation, f"forge:{forge}", {})
    return {"closed": binding.conversation}


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
        for pause in (*BACKOFF, None):
            try:
                outcomes.append(
                    {"identity": event.identity, **dispatch.handle(loop, event, delivery).to_json()}
                )
                break
            except ForgeError as exc:
                if pause is None or not exc.transient:
                    errors.append(f"{event.identity}: {exc}")
                    log.warning("forge delivery %s: %s failed: %s", delivery, event.identity, exc)
                    break
                sleep(pause)
    result: dict[str, Any] = {"forge": outcomes}
    if errors:
        result["error"] = "; ".join(errors) + " (the next reconcile looks again)"
    return result
