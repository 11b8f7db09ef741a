"""A forge thread's question answered off the forge (``baton answer``, ``POST /v1/answers``, the
dashboard): the thread bound to the key waits no more — it is ``active`` again at once, as a trusted
reply on the forge makes it (:func:`baton.forge.turn.dispatch.handle`), so it is not counted as waiting and
the forge's next comment starts a turn. Each surface calls :func:`answered_elsewhere` when it takes the
answer; a submitted answer's run (the API's, the dashboard's) is a turn of the forge thread, published
there as any other when it ends (:func:`baton.forge.writes.publish.after_job`), and then what waited on the
forge meanwhile starts. ``baton answer`` runs its turn at once, off the service: when it has ended,
:func:`ran_elsewhere` edits the thread's status comment (it no longer says the thread waits for an
answer), and the next forge turn pushes its work.
"""

from __future__ import annotations

import logging
import time

from baton.errors import BatonError
from baton.forge.data.model import ForgeError
from baton.forge.data.records import BindingStatus, EventStatus, FeedbackKind
from baton.forge.data.tables import forge_store
from baton.forge.kinds.configured import load_forges
from baton.forge.writes import publish
from baton.forge.writes.publish import ASKED, CAPPED
from baton.models import JobRecord
from baton.settings import Settings
from baton.store import Store

log = logging.getLogger("baton.forge")


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


def ran_elsewhere(settings: Settings, store: Store, agent: str, repo: str, thread: str) -> str | None:
    """After a run of the key (``repo``: its slug) that no forge event made and no executor published
    (``baton answer`` at the command line): its bound thread's status comment says how the key's last
    run ended (:func:`baton.forge.writes.publish.told_elsewhere`). What the forge's write did, or None when
    the key is bound to no thread. Never raises: a forge that cannot be reached from here (its token not
    in this environment) is said in what it returns; the thread's next turn writes the comment anyway."""
    binding = forge_store(store).binding_for_key(agent, repo, thread)
    runs = store.list_runs(agent, repo, thread, limit=1)
    if binding is None or not runs:
        return None
    run = runs[0]
    job = JobRecord(
        id=run.run_id,
        agent=agent,
        repo=repo,
        thread=thread,
        request={},
        outcome=run.outcome.value,
        result={"cost_usd": run.cost_usd} if run.cost_usd is not None else None,
        error=run.error,
    )
    try:
        loop = publish.compose(settings, store, load_forges(settings.home), lambda _job: None)
    except (BatonError, ForgeError) as exc:
        return f"failed: {exc}"
    try:
        return publish.told_elsewhere(loop, binding, job)
    except (BatonError, ForgeError) as exc:  # the forge's token is not in this environment
        log.warning("forge %s: the status comment was not edited: %s", binding.conversation, exc)
        return f"failed: {exc}"
    finally:
        loop.close()
