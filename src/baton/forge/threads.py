"""Bound threads as people manage them (``baton forge bind/unbind/show``, the API, the dashboard):
binding an issue or PR by hand, unbinding, and a thread's whole forge state in one object."""

from __future__ import annotations

from typing import Any

from baton.errors import BadInput
from baton.forge.loop import ForgeLoop
from baton.forge.model import Binding, BindingStatus, EventStatus
from baton.keys import parse_repo, validate_thread
from baton.models import Access


def bind_thread(
    loop: ForgeLoop,
    forge: str,
    repo: str,
    number: int,
    agent: str | None = None,
    thread: str | None = None,
    actor: str = "cli",
    access: Access | None = None,
) -> Binding:
    """Bind the issue or PR to a thread (the forge is asked what it is); the stored binding when it is
    bound already. BadInput for a repository that is not configured, or a key bound elsewhere."""
    config = loop.repo(forge, repo)
    if config is None:
        raise BadInput(f'{forge}:{repo} is not a configured repository ([repo."{repo}"] in config.toml)')
    existing = loop.store.get_binding(forge, repo, number)
    if existing is not None:
        return existing
    info = loop.client(forge).thread(repo, number)
    url = config.repo_url(loop.forge(forge))
    now = loop.clock()
    binding = Binding(
        forge=forge,
        repo=repo,
        number=number,
        agent=agent or config.agent,
        repo_slug=parse_repo(url).slug,
        thread=validate_thread(thread or f"{'pr' if info.is_pr else 'issue'}-{number}"),
        repo_url=url,
        pr=number if info.is_pr else None,
        head_sha=info.head_sha,
        branch=info.head_ref if info.is_pr and not info.from_fork else None,
        access=Access.READ if info.from_fork else access or config.access,
        created_at=now,
        updated_at=now,
    )
    stored, _new = loop.store.bind(binding)
    loop.store.audit(
        "forge.bind", stored.conversation, actor, {"thread": stored.thread, "agent": stored.agent}
    )
    return stored


def unbind_thread(loop: ForgeLoop, forge: str, repo: str, number: int, actor: str = "cli") -> bool:
    binding = loop.store.get_binding(forge, repo, number)
    if binding is None:
        return False
    loop.store.unbind(binding.forge, binding.repo, binding.number)
    loop.store.audit("forge.unbind", binding.conversation, actor, {"thread": binding.thread})
    return True


def thread_state(loop: ForgeLoop, forge: str, repo: str, number: int) -> dict[str, Any] | None:
    """The binding, its events (newest last, with who, where, what became of them), its turns and the
    budgets it spent; None when the conversation is not bound."""
    binding = loop.store.get_binding(forge, repo, number)
    if binding is None:
        return None
    return state_of(loop, binding)


def state_of(loop: ForgeLoop, binding: Binding) -> dict[str, Any]:
    events = loop.store.forge_events(binding.forge, binding.repo, binding.number)
    turns = loop.store.forge_turns(binding.forge, binding.repo, binding.number)
    config = loop.repo(binding.forge, binding.repo)
    return {
        "binding": binding.to_json(),
        "needs_human": binding.status == BindingStatus.NEEDS_HUMAN,
        "events": [_event(e.event, e.kind.value, e.status, e.reason, e.job_id, e.identity) for e in events],
        "turns": turns,
        "budget": {
            "per_failure": config.budget.per_failure if config else None,
            "per_day": config.budget.per_day if config else None,
        },
    }


def _event(
    data: dict[str, Any], kind: str, status: EventStatus, reason: str | None, job: str | None, identity: str
) -> dict[str, Any]:
    actor = data.get("actor") or {}
    return {
        "identity": identity,
        "kind": kind,
        "status": status.value,
        "reason": reason,
        "run_id": job,
        "actor": actor.get("login"),
        "url": data.get("url"),
        "at": data.get("at"),
    }
