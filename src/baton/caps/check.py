"""The one decision whether a turn may start: each scope's caps (the thread's, its repository's, the API
token's that submitted the run), raised by what was raised since, against what the scope has spent
(:mod:`baton.caps.spend`). A turn may start while every cap is above its spend; at or past one it does
not (:func:`reached`, the runner parks the thread). A turn that crosses a tokens cap behind baton's
model gateway is stopped at its next model request (the same decision, with the tokens the gateway has
read so far), and so is one that crosses a USD cap where ``model_prices`` prices its models
(:mod:`baton.caps.prices`); one that crosses any other cap ends as it ends, and the next turn parks.
:func:`standing` is the same reading, every cap of a scope, for people.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from baton.caps.model import Caps, Measure, Reached, Scope
from baton.caps.spend import Spend, spent
from baton.caps.tables import cap_store
from baton.store.base import Transactions


@dataclass(frozen=True)
class Holds:
    """The caps a turn of one key is held to, per scope."""

    thread: str  # agent:repo:thread
    repo: str  # the repo's slug
    thread_caps: Caps
    repo_caps: Caps
    token: str | None = None  # the API token that submitted the run (its caps are stored), if one did

    def scopes(self, store: Transactions) -> list[tuple[Scope, str, Caps]]:
        found = [(Scope.THREAD, self.thread, self.thread_caps), (Scope.REPO, self.repo, self.repo_caps)]
        if self.token is not None:
            found.append((Scope.TOKEN, self.token, cap_store(store).stored_caps(Scope.TOKEN, self.token)))
        return found


@dataclass(frozen=True)
class Standing:
    """One cap of a scope as it stands: configured, raised since, spent."""

    scope: Scope
    subject: str
    measure: Measure
    cap: float | None  # configured (None: no cap)
    raised: float  # the sum of its raises
    spent: float

    @property
    def limit(self) -> float | None:
        return None if self.cap is None else self.cap + self.raised

    @property
    def reached(self) -> bool:
        return self.limit is not None and self.spent >= self.limit

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope.value,
            "subject": self.subject,
            "measure": self.measure.value,
            "cap": self.cap,
            "raised": self.raised,
            "limit": self.limit,
            "spent": self.spent,
            "reached": self.reached,
        }


@dataclass(frozen=True)
class Running:
    """What a turn that is running has spent so far, as baton's model gateway read its replies: their
    tokens, and their cost priced by ``model_prices`` (None: unknown, a model with no price)."""

    tokens: float
    usd: float | None = None

    def of(self, measure: Measure) -> float | None:
        """The turn's spend in ``measure``; None for one that is not held as the turn spends."""
        return self.tokens if measure == Measure.TOKENS else self.usd if measure == Measure.USD else None


def reached(store: Transactions, holds: Holds, running: Running | None = None) -> Reached | None:
    """The first cap (thread, then repository, then token; USD, tokens, minutes, turns) whose spend has
    reached it with its raises; None when the turn may start. Only scopes with a cap are queried.
    ``running``: what a turn that is running has spent so far (:class:`Running`); only the tokens caps,
    and the USD caps when its cost is known, are held to then, each as the scope's spend plus the
    turn's (its minutes and its count were held to as it started)."""
    return reached_of(standings(store, holds, running), running)


def standings(store: Transactions, holds: Holds, running: Running | None = None) -> list[list[Standing]]:
    """Each scope's :func:`standing` that :func:`reached` holds ``running`` to (one query a scope with a
    cap): kept by a running turn's gateway to admit its requests between two replies without a query."""
    held = [] if running is None else [m for m in Measure if running.of(m) is not None]
    found = []
    for scope, subject, caps in holds.scopes(store):
        if not caps.set() or (running is not None and all(caps.get(m) is None for m in held)):
            continue
        found.append(standing(store, scope, subject, caps))
    return found


def reached_of(found: list[list[Standing]], running: Running | None = None) -> Reached | None:
    """:func:`reached` on standings already read (:func:`standings`)."""
    for scope in found:
        for each in scope:
            if running is not None:
                turn = running.of(each.measure)
                if turn is None:
                    continue
                each = replace(each, spent=each.spent + turn)
            if each.reached:
                assert each.limit is not None
                return Reached(each.scope, each.subject, each.measure, each.spent, each.limit)
    return None


def standing(store: Transactions, scope: Scope, subject: str, caps: Caps) -> list[Standing]:
    """Every measure of the scope: its cap, raises and spend (one query: :func:`baton.caps.spend.spent`)."""
    spend: Spend = spent(store, scope, subject)
    return [Standing(scope, subject, m, caps.get(m), spend.raised_of(m), spend.get(m)) for m in Measure]
