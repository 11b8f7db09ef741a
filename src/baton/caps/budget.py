"""What ``baton budget`` and ``GET``/``POST /v1/budget`` do with the caps room: each cap of a scope as it
stands (:func:`show`), and raises (:func:`raise_caps`), every amount read strictly before the first is
written, each raise a row of its own and audited (``caps.raised``). Where a scope's cap comes from is
:func:`configured`'s: the settings for a thread and a repository (a thread parked at a run's own cap
shows that one), the stored caps for an API token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from baton.caps.check import Standing, standing
from baton.caps.model import Caps, Measure, Scope, parse_raise, split_thread
from baton.caps.parked import Parked
from baton.caps.tables import Raise, cap_store
from baton.settings import Settings
from baton.store.base import AuditStore, Transactions


class BudgetStore(Transactions, AuditStore, Protocol):
    """What raising needs of the store: its transactions, and the audit log."""


@dataclass(frozen=True)
class Target:
    """Whose caps: a scope and its subject (agent:repo:thread, a repo's slug, a token's name)."""

    scope: Scope
    subject: str

    def describe(self) -> str:
        if self.scope == Scope.THREAD:
            return "thread " + ":".join(split_thread(self.subject))
        return f"{self.scope.value} {self.subject}"


def configured(settings: Settings, store: Transactions, target: Target, found: Parked | None = None) -> Caps:
    """The caps ``target`` is held to before its raises: a thread's and a repository's from the settings
    (a thread parked at its run's own cap: the smaller of the two), a token's as stored."""
    s = settings
    if target.scope == Scope.THREAD:
        caps = Caps(s.max_usd, s.max_tokens, s.max_minutes, s.max_turns)
        return caps.tightest(found.run_caps) if found is not None else caps
    if target.scope == Scope.REPO:
        return Caps(s.repo_max_usd, s.repo_max_tokens, s.repo_max_minutes, s.repo_max_turns)
    return cap_store(store).stored_caps(Scope.TOKEN, target.subject)


def parse_changes(given: dict[Measure, str | float | None]) -> dict[Measure, float]:
    """The raises asked for, each read strictly (BadInput for any bad one: nothing is written)."""
    return {m: parse_raise(m, value, f"--{m.value}") for m, value in given.items() if value is not None}


def raise_caps(store: BudgetStore, target: Target, changes: dict[Measure, float], by: str) -> list[Raise]:
    """Record each raise of ``target``'s caps, audited with ``by`` (parsed already: :func:`parse_changes`)."""
    made = [cap_store(store).add_raise(target.scope, target.subject, m, n, by) for m, n in changes.items()]
    if made:
        detail = {"scope": target.scope.value, "raised": {r.measure.value: r.amount for r in made}}
        store.audit("caps.raised", target.subject, by, detail)
    return made


def show(
    settings: Settings, store: Transactions, target: Target, found: Parked | None = None
) -> list[Standing]:
    """Each measure of ``target``: its cap, its raises, its spend (and whether it is reached)."""
    return standing(store, target.scope, target.subject, configured(settings, store, target, found))
