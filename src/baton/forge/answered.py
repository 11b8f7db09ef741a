"""A forge thread's question answered off the forge (``baton answer``, ``POST /v1/answers``, the
dashboard): the thread bound to the key waits no more — it is ``active`` again at once, as a trusted
reply on the forge makes it (:func:`baton.forge.dispatch.handle`), so it is not counted as waiting and
the forge's next comment starts a turn. Each surface calls :func:`answered_elsewhere` when it takes the
answer; a submitted answer's run (the API's, the dashboard's) is a turn of the forge thread, published
there as any other when it ends (:func:`baton.forge.publish.after_job`), and then what waited on the
forge meanwhile starts. ``baton answer`` runs its turn at once, off the service: the next forge turn
pushes its work.
"""

from __future__ import annotations

import time

from baton.forge.publish import ASKED, CAPPED
from baton.forge.records import BindingStatus, EventStatus, FeedbackKind
from baton.forge.tables import forge_store
from baton.store import Store


def answered_elsewhere(
    store: Store, agent: str, repo: str, thread: str, by: str, job_id: str | None = None
) -> str | None:
    """The key's (``repo``: its slug) bound forge thread no longer waits for the answer ``by`` gave:
    the conversation resumed, or None when no bound thread waited on a question. ``job_id``: the
    submitted run that carries the answer, recorded as the thread's turn (published on the forge)."""
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
    if job_id is not None:  # a person's words, as a comment on the forge would be
        kinds = [FeedbackKind.COMMENT.value]
        forge.add_forge_turn(
            job_id, binding.forge, binding.repo, binding.number, kinds, time.time(), pr=binding.on_pr
        )
    store.audit("forge.resumed", binding.conversation, by, {"by": "an answer off the forge"})
    return binding.conversation
