"""Bound threads as people manage them (``baton forge bind/unbind/show``, the API, the dashboard):
binding an issue or PR by hand, unbinding, and a thread's whole forge state in one object.

The state is read from the store alone (:func:`state_from_store`); the operator's configuration only
adds the repository's budget (what was spent is counted against it) and the forge's web address (the
issue's and the PR's links). ``baton sessions show``, ``GET /v1/session`` and the dashboard's session
page show a key's state (:func:`key_state`) without a running forge loop.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from baton.agents import AGENTS
from baton.errors import BadInput, NotFound
from baton.forge.data.config import ForgeConfig, ForgeSettings
from baton.forge.data.model import Budget, ForgeError, ForgeKind, ForgeUnreachable, ThreadInfo
from baton.forge.data.records import Binding, BindingStatus, EventRecord, EventStatus, FeedbackKind
from baton.forge.data.tables import ForgeStore, forge_store
from baton.forge.kinds import registry
from baton.forge.kinds.configured import load_forges
from baton.forge.kinds.http import RateLimited
from baton.forge.turn.loop import ForgeLoop
from baton.forge.turn.trust import is_own
from baton.keys import parse_repo, validate_agent, validate_thread
from baton.models import Access
from baton.store.base import Transactions

DAY = 86_400.0  # the daily budget's window (as dispatch counts it)
STATUS_HEAD = "**baton** · "  # how baton's status comment starts (publish.status_text)
log = logging.getLogger("baton.forge")


def bind_thread(
    loop: ForgeLoop,
    forge: str,
    repo: str,
    number: int,
    agent: str | None = None,
    thread: str | None = None,
    actor: str = "cli",
    access: Access | None = None,
    pr: bool = False,
) -> Binding:
    """Bind the issue or PR to a thread (the forge is asked what it is; ``pr``: a PR's number, where a
    forge numbers issues and PRs apart); the stored binding when it is
    bound already as asked. BadInput for a repository that is not configured, an agent baton does not
    know (as ``baton run -a``), a key bound elsewhere, or an issue bound already to another agent or
    thread (:class:`AlreadyBound`); NotFound when the forge has no such issue or PR;
    :class:`ForgeUnreachable` when the forge refuses the token (naming its variable) or fails."""
    config = loop.repo(forge, repo)
    if config is None:
        raise BadInput(f'{forge}:{repo} is not a configured repository ([repo."{repo}"] in config.toml)')
    if agent is not None:
        validate_agent(agent, AGENTS)
    if thread is not None:
        validate_thread(thread)
    existing = loop.binding(forge, repo, number, pr)
    if existing is not None:
        existing = follow_config(loop, existing)
        differs = [
            f"{name} {have!r}"
            for name, asked, have in (("agent", agent, existing.agent), ("thread", thread, existing.thread))
            if asked is not None and asked != have
        ]
        if differs:
            raise AlreadyBound(
                f"{existing.conversation} is already bound, to {' and '.join(differs)}: "
                f"unbind it first (baton forge unbind {existing.conversation})"
            )
        return existing
    info = _thread(loop, forge, repo, number, pr)
    url = config.repo_url(loop.forge(forge))
    fork = info.is_pr and info.from_fork
    if fork and info.head_clone_url:  # a fork's PR: its code is in the fork, read there, never pushed
        url = info.head_clone_url
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
        on_pr=info.is_pr,
        # GitLab's merge request !N is a thread apart from issue #N: its conversation is written so
        sign=loop.facts(forge).ref(number, info.is_pr)[0],
        head_sha=info.head_sha,
        branch=info.head_ref if info.is_pr and (not fork or info.head_clone_url) else None,
        access=Access.READ if fork else access or config.access,
        status_comment=status_comment_of(loop, forge, repo, number, info.is_pr),
        seen_at=now,  # what came before the binding is the trigger's: the reconcile reads from here
        created_at=now,
        updated_at=now,
    )
    stored, _new = forge_store(loop.store).bind(binding, loop.which(forge, info.is_pr))
    loop.store.audit(
        "forge.bind", stored.conversation, actor, {"thread": stored.thread, "agent": stored.agent}
    )
    return stored


def status_comment_of(loop: ForgeLoop, forge: str, repo: str, number: int, pr: bool = False) -> int | None:
    """baton's status comment on the issue from an earlier binding of it (unbound, then bound again):
    kept up to date from now on, so a thread never has two. None when there is none (or the forge
    cannot say: then a new one is posted)."""
    config = loop.forge(forge)
    try:
        comments = loop.client(forge).comments(repo, number, pr=pr)
    except ForgeError as exc:
        log.warning("forge %s:%s#%d: its comments cannot be read: %s", forge, repo, number, exc)
        return None
    own = [c.id for c in comments if is_own(c.author.login, config) and c.body.startswith(STATUS_HEAD)]
    return own[-1] if own else None


def follow_config(loop: ForgeLoop, binding: Binding) -> Binding:
    """The binding moved to where its repository's configuration now says baton clones and pushes
    (``clone_url``, else the forge's ``web_url``), when that changed since it was bound — a thread bound
    under a wrong configuration follows the fix, keeping its one status comment, its PR, events and
    budgets. A PR from a fork stays in the fork. The conversation is keyed by the repository's slug: a
    new URL is a new key, so the old key's session and worktree stay where they are (audited, with
    both), and the next turn starts in the new one."""
    config, forge = loop.repo(binding.forge, binding.repo), loop.config.forges.get(binding.forge)
    fork = binding.access == Access.READ and binding.pr == binding.number  # may be read in a fork: stays
    if config is None or forge is None or fork:
        return binding
    url = config.repo_url(forge)
    if url == binding.repo_url:
        return binding
    old_url, old_slug = binding.repo_url, binding.repo_slug
    binding.repo_url, binding.repo_slug, binding.updated_at = url, parse_repo(url).slug, loop.clock()
    forge_store(loop.store).save_binding(binding)
    detail = {"from": old_url, "to": url, "old_key": f"{binding.agent} {old_slug} {binding.thread}"}
    loop.store.audit("forge.moved", binding.conversation, "baton", detail)
    log.info("forge %s: moved from %s to %s (the configuration changed)", binding.conversation, old_url, url)
    return binding


class AlreadyBound(BadInput):
    """The issue or PR is bound already, to another agent or thread than asked."""


def _thread(loop: ForgeLoop, forge: str, repo: str, number: int, pr: bool = False) -> ThreadInfo:
    """The issue or PR as the forge describes it, its failures as a person reads them."""
    try:
        return loop.client(forge).thread(repo, number, pr=pr)
    except ForgeError as exc:
        config = loop.forge(forge)
        token = f"{config.token_env} (the token of {config.user})"
        if config.app is not None:  # a GitHub App's: its words say which installation, or none
            token = f"GitHub App {config.app.app_id}'s installation and its private key"
        if exc.status == 404:
            raise NotFound(
                f"{forge}:{repo}#{number}: the forge has no issue or pull request #{number} in {repo} "
                f"(or {config.user} cannot see it)" + (f" — {exc}" if config.app is not None else "")
            ) from None
        if exc.status in (401, 403) and not isinstance(exc, RateLimited):
            raise ForgeUnreachable(
                f"{forge}:{repo}#{number}: the forge refused baton's token ({exc.status}): check "
                f"{token} — {exc}"
            ) from None
        raise ForgeUnreachable(f"{forge}:{repo}#{number}: {exc}") from None


def unbind_thread(
    loop: ForgeLoop, forge: str, repo: str, number: int, actor: str = "cli", pr: bool = False
) -> str | None:
    """Unbind the thread of ``number``: the conversation unbound, or None when none is bound (``pr`` as
    :func:`thread_state`'s)."""
    binding = loop.binding(forge, repo, number, pr)
    if binding is None:
        return None
    forge_store(loop.store).unbind(binding.forge, binding.repo, binding.number, binding.on_pr)
    loop.store.audit("forge.unbind", binding.conversation, actor, {"thread": binding.thread})
    return binding.conversation


def thread_state(
    loop: ForgeLoop, forge: str, repo: str, number: int, pr: bool = False
) -> dict[str, Any] | None:
    """The binding, its events (newest last, with who, where, what became of them), its turns and the
    budgets it spent; None when the conversation is not bound. ``pr``: ``number`` is a merge request's
    (``!N``), where a forge numbers issues and PRs apart — its own thread or the issue's whose MR it is;
    else the issue's own thread only (``#N``, never the thread of merge request ``!N``). Where one
    sequence numbers both, the thread of the issue or PR ``number``, or the issue's whose PR it is."""
    binding = loop.binding(forge, repo, number, pr)
    if binding is None:
        return None
    return state_of(loop, binding)


def state_of(loop: ForgeLoop, binding: Binding) -> dict[str, Any]:
    config = loop.repo(binding.forge, binding.repo)
    forge = loop.config.forges.get(binding.forge)
    return state_from_store(
        forge_store(loop.store), binding, config.budget if config else None, forge, loop.clock()
    )


def forge_settings(home: Path) -> ForgeSettings | None:
    """The operator's forge configuration for showing a thread; None (logged) when it cannot be read:
    a session is still shown, without its links and budget limits."""
    try:
        return load_forges(home)
    except BadInput as exc:
        log.warning("the forge configuration cannot be read: %s", exc)
        return None


def key_state(
    store: Transactions,
    agent: str,
    repo_slug: str,
    thread: str,
    config: ForgeSettings | None = None,
    last: int | None = None,
) -> dict[str, Any] | None:
    """The forge state of a key (agent, repo slug, thread) when it is bound, else None; ``config`` (the
    operator's, when it could be read) gives the budget and the links; ``last`` keeps that many of
    the newest events."""
    bindings = forge_store(store)
    binding = bindings.binding_for_key(agent, repo_slug, thread)
    if binding is None:
        return None
    repo = config.repo(binding.forge, binding.repo) if config else None
    forge = config.forges.get(binding.forge) if config else None
    return state_from_store(bindings, binding, repo.budget if repo else None, forge, last=last)


def state_from_store(
    store: ForgeStore,
    binding: Binding,
    budget: Budget | None = None,
    forge: ForgeConfig | None = None,
    now: float | None = None,
    last: int | None = None,
) -> dict[str, Any]:
    """The binding, its events (newest last, with who, where, what became of them; the ``last`` ones
    when given, ``events_total`` says how many there are), its turns, what its budgets spent (against
    ``budget``'s limits when known) and its links (when the forge is known). No comment body is in it:
    whatever the forge sent is data to show (logins, URLs, reasons), never markup."""
    records = store.forge_events(binding.forge, binding.repo, binding.number, pr=binding.on_pr)
    turns = store.forge_turns(binding.forge, binding.repo, binding.number, pr=binding.on_pr)
    now = time.time() if now is None else now
    shown = records[-last:] if last else records
    return {
        "binding": binding.to_json(),
        "needs_human": binding.status == BindingStatus.NEEDS_HUMAN,
        "links": links(binding, forge),
        # the thread's PR as its forge writes it (GitLab's merge request: !N)
        "pr_ref": registry.facts(forge.kind if forge else ForgeKind.GITHUB).ref(binding.pr, True)
        if binding.pr
        else None,
        "events_total": len(records),
        "events": [_event(e.event, e.kind.value, e.status, e.reason, e.job_id, e.identity) for e in shown],
        "turns": turns,
        "budget": {
            "per_failure": budget.per_failure if budget else None,
            "per_day": budget.per_day if budget else None,
            "turns_today": sum(1 for t in turns if t["submitted_at"] >= now - DAY),
            "failures": _failures(store, binding, records),
        },
    }


def links(binding: Binding, forge: ForgeConfig | None) -> dict[str, str | None]:
    """Where a person sees the issue and the PR on the forge (``issue`` is None for a thread that
    started on its PR); both None when the forge is not configured here."""
    if forge is None or not forge.web_url.startswith(("https://", "http://")):
        return {"issue": None, "pr": None}
    base = f"{forge.web_url}/{binding.repo}"
    issues, pulls = registry.implementation(forge.kind).web_paths
    started_on_pr = binding.on_pr or (
        not registry.facts(forge.kind).numbers_apart and binding.pr == binding.number
    )
    return {
        "issue": None if started_on_pr else f"{base}/{issues}/{binding.number}",
        "pr": f"{base}/{pulls}/{binding.pr}" if binding.pr is not None else None,
    }


def _failures(store: ForgeStore, binding: Binding, records: list[EventRecord]) -> list[dict[str, Any]]:
    """Each CI failure signature the thread saw: its failing checks' names and the turns spent on it."""
    names: dict[str, set[str]] = {}
    for record in records:
        signature = record.event.get("signature")
        if record.kind == FeedbackKind.CI_FAILURE and signature:
            checks = record.event.get("checks") or []
            names.setdefault(signature, set()).update(str(c.get("name", "")) for c in checks)
    return [
        {
            "signature": signature,
            "checks": sorted(n for n in checks if n),
            "spent": store.budget_spent(
                binding.forge, binding.repo, binding.number, signature, pr=binding.on_pr
            ),
        }
        for signature, checks in names.items()
    ]


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


def bound_threads(loop: ForgeLoop, forge: str, repo: str) -> list[Binding]:
    """The repo's bindings that are not closed (every page)."""
    found: list[Binding] = []
    after: tuple[str, str, int, bool] | None = None
    while True:
        page = forge_store(loop.store).list_bindings(forge=forge, after=after, limit=1000)
        found += [b for b in page if b.repo.lower() == repo.lower() and b.status != BindingStatus.CLOSED]
        if len(page) < 1000:
            return found
        after = (page[-1].forge, page[-1].repo, page[-1].number, page[-1].on_pr)


def by_head(loop: ForgeLoop, forge: str, repo: str, sha: str, asked: int = 20) -> Binding | None:
    """The open PR thread whose head is ``sha`` (a commit status names no PR): the one baton knows at
    that head, else the first of ``asked`` bound PRs whose head the forge says it is (kept)."""
    prs = [b for b in bound_threads(loop, forge, repo) if b.pr is not None]
    known = next((b for b in prs if b.head_sha == sha), None)
    if known is not None:
        return known
    for binding in sorted(prs, key=lambda b: b.updated_at, reverse=True)[:asked]:
        assert binding.pr is not None
        if loop.client(forge).thread(repo, binding.pr, pr=True).head_sha == sha:
            binding.head_sha, binding.updated_at = sha, loop.clock()
            forge_store(loop.store).save_binding(binding)
            return binding
    return None
