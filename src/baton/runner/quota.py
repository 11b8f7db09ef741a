"""Usage limits as a state: one breaker per credential, across the fleet. A turn whose agent met a spent
quota (:mod:`baton.agents.limits`, ``exhausted``) ends ``rate_limited`` and trips the breaker of the
credential it ran with (:func:`trip`): a row in the store keyed by a hash of the credential, never the
secret (:func:`credential`). Before any run starts, on any machine, one store read (:func:`check`)
refuses it while that breaker holds (:class:`~baton.errors.QuotaHeld`, nothing written), so a queue of
runs for a spent credential waits instead of turning into failures; the first turn that goes through
after the reset closes it (:func:`clear`). A transient limit trips nothing: the turn failed, and is
retried with backoff like any failure.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from baton.agents.base import Agent
from baton.agents.limits import Limit, LimitKind
from baton.errors import QuotaHeld
from baton.models import QuotaRecord, QuotaState
from baton.settings import Settings
from baton.store.base import QuotaStore

PHANTOM_CAP = 4 * 3600.0  # seconds at most between tries of a credential still refused after its reset
PAST_WAIT = 60.0  # seconds to wait when the agent's reset time is already past


def credential(agent: Agent, env: Mapping[str, str]) -> tuple[str, str]:
    """The breaker's key for the credential ``agent`` runs with in ``env`` and a label for people: the
    one the agent says it uses (:meth:`~baton.agents.base.Agent.credential`: its variable, its config's
    key, its login file), hashed with the agent's model address; never the secret itself."""
    url = agent.model_url(env) or ""
    found = agent.credential(env)
    if found is None:
        return _labelled(agent.name, "no credential", f"{url}\0{agent.name}")
    source, secret = found
    return _labelled(agent.name, source, f"{url}\0{secret}")


def _labelled(agent: str, source: str, secret: str) -> tuple[str, str]:
    digest = hashlib.sha256(b"baton-quota\0" + secret.encode("utf-8", "surrogateescape")).hexdigest()
    return digest[:32], f"{agent} {source} #{digest[:6]}"


def check(store: QuotaStore, key: str, label: str, now: float | None = None) -> QuotaRecord | None:
    """Raise :class:`QuotaHeld` while the breaker of ``key`` holds; else its record (None: it never met
    a limit), which :func:`clear` closes after a turn that went through."""
    record = store.quota(key)
    now = time.time() if now is None else now
    if record is not None and record.held(now):
        assert record.resets_at is not None
        raise QuotaHeld(held_message(record, now), record.resets_at, key)
    return record


def held_message(record: QuotaRecord, now: float) -> str:
    """Why a run of a held credential does not start, and when it may."""
    assert record.resets_at is not None
    said = f": {record.detail}" if record.detail else ""
    return (
        f"the usage quota of {record.label} is spent{said}; it resets at {when(record.resets_at, now)}, "
        "and runs of this credential wait until then (nothing was started)"
    )


def when(at: float, now: float) -> str:
    """``2026-11-25 15:00 UTC (in 2 h 13 min)``."""
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{stamp} (in {span(max(0.0, at - now))})"


def span(seconds: float) -> str:
    """``2 h 13 min``, ``45 s``."""
    seconds = round(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    shown = " ".join(p for p in parts if p)
    return shown or f"{secs} s"


def plan_reset(
    limit: Limit, previous: QuotaRecord | None, settings: Settings, now: float
) -> tuple[float, int, str]:
    """When runs of a credential that met ``limit`` may start again: (resets_at, refusals in a row,
    how that was decided, for the breaker's detail):

    - the reset the agent said, plus nothing (the jitter is the waiting threads', :func:`jitter`);
    - none said: ``quota_wait`` (15 min by default);
    - one in the past (a skewed clock, a garbled field): one minute;
    - one further than ``quota_max_wait`` (8 days; a weekly window fits): that long at most, and the
      breaker's detail says that the agent's own time was not believed;
    - still refused at or after the reset (a phantom limit): ``quota_wait`` doubled for each refusal
      in a row, at most :data:`PHANTOM_CAP`, and the detail says so.
    """
    said, notes = limit.resets_at, []
    if said is None:
        at = now + settings.quota_wait
        notes.append(f"no reset time given: waiting {span(settings.quota_wait)} (BATON_QUOTA_WAIT)")
    elif said <= now:
        at = now + PAST_WAIT
        notes.append(f"the reset time given is past ({when(said, said)}): trying again in {span(PAST_WAIT)}")
    elif said > now + settings.quota_max_wait:
        at = now + settings.quota_max_wait
        notes.append(
            f"the reset time given ({when(said, now)}) is further than BATON_QUOTA_MAX_WAIT: "
            f"not believed; trying again in {span(settings.quota_max_wait)}"
        )
    else:
        at = said
    refusals = 0
    after_reset = previous is not None and previous.resets_at is not None and previous.resets_at <= now
    if previous is not None and previous.state == QuotaState.EXHAUSTED and after_reset:
        refusals = previous.refusals + 1
        backoff = min(PHANTOM_CAP, settings.quota_wait * 2 ** (refusals - 1))
        if at < now + backoff:
            at = now + backoff
        notes.append(
            f"still refused after its reset ({refusals} time{'s' * (refusals > 1)} in a row): backing off "
            f"{span(backoff)} (at most {span(PHANTOM_CAP)})"
        )
    return at, refusals, "; ".join(notes)


def trip(
    store: QuotaStore,
    key: str,
    label: str,
    agent: str,
    limit: Limit,
    run_id: str,
    settings: Settings,
    previous: QuotaRecord | None,
) -> QuotaRecord:
    """Hold every run of credential ``key`` until the reset :func:`plan_reset` decides; the record."""
    now = time.time()
    at, refusals, how = plan_reset(limit, previous, settings, now)
    detail = "; ".join(part for part in (limit.detail, how) if part)
    record = QuotaRecord(
        credential=key,
        agent=agent,
        label=label,
        state=QuotaState.EXHAUSTED,
        resets_at=at,
        scope=limit.scope,
        detail=detail[:1000],
        refusals=refusals,
        tripped_at=now,
        run_id=run_id,
        updated_at=now,
    )
    store.save_quota(record)
    return record


def clear(store: QuotaStore, key: str, previous: QuotaRecord | None, started: float) -> None:
    """After a turn of credential ``key`` went through: close its breaker if it was open (one write, only
    then)."""
    if previous is not None and previous.state == QuotaState.EXHAUSTED:
        store.clear_quota(key, started)


def jitter(resets_at: float, now: float, rng: random.Random | None = None) -> float:
    """When a thread waiting for ``resets_at`` starts again: a little after it, spread so that a
    thousand waiting threads do not all start in the same second (up to a tenth of the wait, between
    5 s and 5 min)."""
    wait = max(0.0, resets_at - now)
    spread = min(300.0, max(5.0, wait / 10))
    return resets_at + (rng or random).uniform(1.0, spread)


@dataclass
class Breaker:
    """One run's view of its credential's breaker: checked before the run starts, tripped or closed by
    how its turns end."""

    key: str
    label: str
    previous: QuotaRecord | None

    @classmethod
    def check(cls, store: QuotaStore, agent: Agent, env: Mapping[str, str]) -> Breaker:
        """Raise :class:`QuotaHeld` while the breaker of ``agent``'s credential in ``env`` holds."""
        key, label = credential(agent, env)
        return cls(key, label, check(store, key, label))

    def after(
        self, store: QuotaStore, limit: Limit | None, run_id: str, started: float, settings: Settings
    ) -> QuotaRecord | None:
        """A turn ended: trip the breaker on a spent quota (the record: its ``resets_at`` is the run's),
        close it when the turn went through (``limit`` None)."""
        if limit is None:
            clear(store, self.key, self.previous, started)
            self.previous = None
            return None
        if limit.kind != LimitKind.EXHAUSTED:
            return None
        agent = self.label.split(" ", 1)[0]
        record = trip(store, self.key, self.label, agent, limit, run_id, settings, self.previous)
        self.previous = record
        return record
