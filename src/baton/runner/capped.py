"""Spending caps in the runner (:mod:`baton.caps`): before each turn, the key's thread, its repository
and the API token that submitted the run are held to their caps (:func:`park`); a thread at one does
not start its agent: the turn is recorded ``needs_input`` with baton's question (what was spent of which
cap, how to raise it) and its instruction kept, which the turn that resumes it runs. Behind baton's
model gateway, a turn whose tokens cross a cap, or whose cost does where ``model_prices`` prices its
models, is stopped at its next model request (:class:`WireHold`) and ends parked the same way. A turn
that crosses another cap ends as it ends; :func:`crossed` says so on its result, and the next turn
parks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from baton.caps import words
from baton.caps.model import Caps, Measure, Reached, Scope, thread_subject
from baton.caps.parked import parked, resume_prompt
from baton.errors import BatonError
from baton.keys import Key
from baton.models import RunRecord
from baton.runner.attempt import record_parked
from baton.runner.request import RunRequest
from baton.runner.state import Attempt, Context, Prepared
from baton.settings import Settings
from baton.store.base import RunStore, Transactions

if TYPE_CHECKING:
    from baton.caps.check import Holds, Standing


def run_caps(request: RunRequest) -> Caps:
    """The thread caps a run's own request carries (none set: an empty :class:`Caps`)."""
    return Caps(request.max_usd, request.max_tokens, request.max_minutes, request.max_turns)


def holds(settings: Settings, store: Transactions, key: Key, request: RunRequest) -> Holds:
    """The caps a turn of ``request`` on ``key`` is held to: the thread's (the settings' and the run's
    own, the smaller of each), its repository's (the settings'), the submitting API token's (stored)."""
    # lazy: cold CLI
    from baton.caps.budget import Target, configured  # (SQLAlchemy: only once a store is opened)
    from baton.caps.check import Holds

    subject = thread_subject(key.agent, key.repo.slug, key.thread)
    thread = configured(settings, store, Target(Scope.THREAD, subject)).tightest(run_caps(request))
    repo = configured(settings, store, Target(Scope.REPO, key.repo.slug))
    return Holds(subject, key.repo.slug, thread, repo, request.submitted_by)


def blocking(settings: Settings, store: Transactions, key: Key, request: RunRequest) -> Reached | None:
    """The cap a turn of ``request`` would park at now, or None (:func:`baton.caps.check.reached`)."""
    # lazy: cold CLI
    from baton.caps.check import reached

    return reached(store, holds(settings, store, key, request))


def park(ctx: Context, prepared: Prepared, attempt: Attempt) -> RunRecord | None:
    """The parked turn when a cap of the key is reached (its agent not started), else None."""
    found = blocking(ctx.settings, ctx.tables, ctx.key, ctx.request)
    if found is None:
        return None
    return record_parked(ctx, prepared, attempt, words.question(found, run_caps(ctx.request)))


class WireHold:
    """A running turn held to its caps as baton's model gateway reads its replies: :meth:`spend` is
    asked with the run's usage so far and its counts per model after each reply (the key's spend and
    the turn's tokens, and its cost where ``model_prices`` prices every model, against the same
    decision: :func:`baton.caps.check.reached`), and says why the turn's next model request is
    refused; :meth:`question` is the parked turn's question once it has. A store that cannot say now
    lets the turn go on (its next reply, and the next turn, check again)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.held = holds(ctx.settings, ctx.tables, ctx.key, ctx.request)
        self.reached: Reached | None = None
        self.unpriced_said = False  # the run's events said its cost is unknown
        self.standings: list[list[Standing]] | None = None  # read at the last reply: what admit holds to

    def spend(
        self, total: dict[str, int], models: dict[str, dict[str, int]], note: Callable[[dict[str, Any]], None]
    ) -> str | None:
        # lazy: cold CLI
        from baton.caps import prices
        from baton.caps.check import Running, reached_of, standings
        from baton.caps.spend import TOKENS

        tokens = float(sum(total.get(name, 0) for name in TOKENS))
        price_list = self.ctx.settings.model_price_list
        usd = prices.cost(price_list, models)
        with contextlib.suppress(BatonError):
            if usd is None and not self.unpriced_said and self._usd_capped():
                self.unpriced_said = True
                note(_unpriced(prices.unpriced(price_list, models)))
            running = Running(tokens, usd)
            self.standings = standings(self.ctx.tables, self.held, running)
            self.reached = self.reached or reached_of(self.standings, running)
        if self.reached is None:
            return None
        return (
            f"baton stopped this turn: {words.spent_words(self.reached)}; the thread waits until it is raised"
        )

    def admit(self, total: dict[str, int], models: dict[str, dict[str, int]]) -> str | None:
        """Why a model request is refused before it is forwarded: the run's usage so far with the
        requests in flight (estimated) added reaches a cap (:meth:`spend`'s decision, which this does
        not keep: the requests in flight may spend less). None: it goes; also when the store cannot
        say now (the reply's check holds)."""
        # lazy: cold CLI
        from baton.caps import prices
        from baton.caps.check import Running, reached_of, standings
        from baton.caps.spend import TOKENS

        tokens = float(sum(total.get(name, 0) for name in TOKENS))
        found = None
        with contextlib.suppress(BatonError):
            usd = prices.cost(self.ctx.settings.model_price_list, models)
            running = Running(tokens, usd)
            if self.standings is None:  # no reply yet: read once, then held to until the next reply
                self.standings = standings(self.ctx.tables, self.held, running)
            found = reached_of(self.standings, running)
        if found is None:
            return None
        return (
            f"baton refused this model request: with the turn's requests in flight, "
            f"{words.spent_words(found)}"
        )

    def _usd_capped(self) -> bool:
        return any(caps.get(Measure.USD) is not None for _, _, caps in self.held.scopes(self.ctx.tables))

    def question(self) -> dict[str, Any] | None:
        """The question of a turn stopped past its cap: a parked turn's (:func:`words.question`)."""
        return None if self.reached is None else words.question(self.reached, run_caps(self.ctx.request))


def _unpriced(models: list[str]) -> dict[str, Any]:
    named = ", ".join(m or "(a reply that named none)" for m in models[:5])
    return {
        "type": "baton.cost_unknown",
        "models": models[:5],
        "detail": f"model_prices gives no price for {named}: this turn's USD caps are held at its end, "
        "from the cost its agent reports",
    }


def crossed(ctx: Context, last: RunRecord) -> list[str]:
    """A warning when the turn that just ended left a cap reached (the next turn parks); none when it
    parked itself, or the store cannot say now (the next turn checks again)."""
    if last.question is not None:
        return []
    found: Reached | None = None
    with contextlib.suppress(BatonError):
        found = blocking(ctx.settings, ctx.tables, ctx.key, ctx.request)
    if found is None:
        return []
    return [f"{words.spent_words(found)}: the next turn of the thread parks until it is raised"]


def resume_request(store: RunStore, agent: str, repo: str, thread: str) -> RunRequest | None:
    """The request that resumes the key (``repo``: its slug) parked at a cap: the capped turn's
    instruction (:func:`baton.caps.parked.resume_prompt`), the thread caps its request carried, and
    ``answers`` naming the parked run, so two raises at once resume it once (the runner refuses the
    other: the thread has moved on); None when the key is not parked at a cap."""
    found = parked(store, agent, repo, thread)
    session = store.get_session(agent, repo, thread) if found else None
    if found is None or session is None:
        return None
    return RunRequest(
        agent=agent,
        repo=session.repo_url,
        thread=thread,
        prompt=resume_prompt(found),
        access=found.run.access,
        answers=found.run.run_id,  # refused unless the thread still waits there: one raise resumes it once
        **found.run_caps.as_fields(),
    )
