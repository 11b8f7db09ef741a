"""Who resumes a thread parked at a spending cap once its cap is raised (``baton budget``, ``POST
/v1/budget``): a plan's thread continues when its plan runs again (at the parked task, whose agent never
saw its instruction); a forge thread resumes from the forge, where a trusted reply (``@baton budget
+5``) raises and resumes it and its turn is published; any other thread's parked instruction runs again
(:func:`baton.runner.capped.resume_request`). In the forge room because it is the lowest room that sees
both plans and forge bindings.
"""

from __future__ import annotations

from enum import StrEnum

from baton.forge.data.tables import forge_store
from baton.plans.tables import plan_store
from baton.store.base import Transactions

PLAN_PREFIX = "plan-"  # a plan's thread: plan-<id> (baton.plans.file.Plan.thread)


class Owner(StrEnum):
    """Who resumes a parked thread."""

    RUN = "run"  # its parked instruction runs again
    PLAN = "plan"  # its plan runs again (baton plan run FILE)
    FORGE = "forge"  # a trusted reply on its forge conversation


def owner(store: Transactions, agent: str, repo: str, thread: str) -> tuple[Owner, str]:
    """Who resumes the key (``repo``: its slug), and for people where: the plan's file, the forge
    conversation, or the key."""
    if thread.startswith(PLAN_PREFIX):
        plan = plan_store(store).get_plan(thread.removeprefix(PLAN_PREFIX))
        if plan is not None and (plan.agent, plan.repo, plan.thread) == (agent, repo, thread):
            return Owner.PLAN, plan.file
    binding = forge_store(store).binding_for_key(agent, repo, thread)
    if binding is not None:
        return Owner.FORGE, binding.conversation
    return Owner.RUN, f"{agent}:{repo}:{thread}"
