"""A forge thread's question answered off the forge (``baton answer``, ``POST /v1/answers``, the
dashboard): the thread bound to the key waits no more — it is ``active`` again at once, as a trusted
reply on the forge makes it (:func:`baton.forge.dispatch.handle`), so it is not counted as waiting and
the forge's next comment starts a turn. Each surface calls :func:`answered_elsewhere` when it takes the
answer; the answer's run is queued or run as any other, and when a submitted one ends, what waited on
the forge meanwhile starts (:func:`baton.forge.publish.after_job`).
"""

from __future__ import annotations

import time

from baton.forge.publish import ASKED, CAPPED
from baton.forge.records import BindingStatus, EventStatus
from baton.forge.tables import forge_store
from baton.store import Store


def answered_elsewhere(store: Store, agent: str, repo: str, thread: str, by: str) -> str | None:
    """The key's (``repo``: its slug) bound forge thread no longer waits for the answer ``by`` gave:
    the conversation resumed, or None when no bound thread waited on a question."""
    forge = forge_store(store)
    binding = forge.binding_for_key(agent, repo, thread)
    if binding is None or binding.status != BindingStatus.NEEDS_HUMAN or binding.note not in (ASKED, CAPPED):
        return None  # a thread stopped for another reason (a budget spent) waits for the forge's word
    binding.status, binding.note, binding.updated_at = BindingStatus.ACTIVE, None, time.time()
    forge.save_binding(binding)
    forge.reset_budgets(binding.forge, binding.repo, binding.number, pr=binding.on_pr)
    held = forge.forge_events(
        binding.forge, binding.repo, binding.number, status=EventStatus.HELD, pr=binding.on_pr
    )
    # as after a reply on the forge: what waited while the thread did is superseded by the answer
    forge.set_forge_events([e.id for e in held if e.id is not None], EventStatus.DROPPED, "superseded")
    store.audit("forge.resumed", binding.conversation, by, {"by": "an answer off the forge"})
    return binding.conversation
