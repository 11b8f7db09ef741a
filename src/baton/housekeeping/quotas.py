"""The usage-quota breakers as people see them: ``baton quota``, ``doctor``, the API, the dashboard.

A breaker (:class:`~baton.models.QuotaRecord`, one per credential, :mod:`baton.runner.quota`) is
``exhausted`` from the moment a run of its credential meets a spent quota until a turn goes through
after the reset; it *holds* (refuses runs) only until ``resets_at``. Between the reset and the next
turn it is ``exhausted`` yet no longer held: the next run tries, and closes it or trips it again.

:func:`quota_views` is what every surface lists; :func:`clear_breaker` closes one by hand — for a
person who knows the quota was raised or the plan changed — audited like every other admin write.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from baton.errors import BadInput, NotFound
from baton.models import QuotaRecord, QuotaState
from baton.runner.quota import when
from baton.store.base import AuditStore, QuotaStore

SHOWN = 10  # candidates an "ambiguous" message lists


@dataclass(frozen=True)
class QuotaView:
    """One credential's breaker, and what it means now."""

    record: QuotaRecord
    held: bool  # runs of this credential wait now
    resets_in: float | None  # seconds until resets_at (0 once past; None: no reset known)

    @property
    def state(self) -> str:
        """``exhausted``, ``exhausted (reset passed)`` or ``ok``."""
        if self.record.state != QuotaState.EXHAUSTED:
            return self.record.state.value
        return self.record.state.value if self.held else f"{self.record.state.value} (reset passed)"

    def resets(self, now: float) -> str:
        """``2026-11-25 15:00:00 UTC (in 2 h 13 min)``, ``… (passed)``, or ``—``."""
        at = self.record.resets_at
        if at is None or self.record.state != QuotaState.EXHAUSTED:
            return "—"
        return when(at, now) if at > now else f"{stamp(at)} (passed)"

    def to_json(self) -> dict[str, Any]:
        return {
            **self.record.to_json(),
            "held": self.held,
            "resets_in_s": None if self.resets_in is None else round(self.resets_in, 1),
        }


def stamp(at: float) -> str:
    """``2026-11-25 15:00:00 UTC``."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def view(record: QuotaRecord, now: float) -> QuotaView:
    resets_in = None if record.resets_at is None else max(0.0, record.resets_at - now)
    return QuotaView(record, record.held(now), resets_in)


def quota_views(store: QuotaStore, now: float | None = None) -> list[QuotaView]:
    """Every credential's breaker (held ones first, then by reset; the store's order)."""
    now = time.time() if now is None else now
    return [view(r, now) for r in store.list_quotas()]


def held_lines(store: QuotaStore, now: float | None = None) -> list[str]:
    """One sentence per held credential: ``usage quota of <label> spent, resets at …``."""
    now = time.time() if now is None else now
    return [
        f"usage quota of {v.record.label} spent, resets at {v.resets(now)}"
        for v in quota_views(store, now)
        if v.held
    ]


class QuotaAdmin(QuotaStore, AuditStore, Protocol):
    """What closing a breaker by hand needs: the breakers and the audit log."""


def find_breaker(store: QuotaStore, ref: str) -> QuotaRecord:
    """The one breaker ``ref`` names: its credential hash (or a prefix of it), or its label (or a
    prefix of it, as ``claude ANTHROPIC_API_KEY`` or ``claude ANTHROPIC_API_KEY #3fa2``); NotFound for
    none, BadInput listing the candidates for several."""
    ref = ref.strip()
    if not ref:
        raise BadInput("name a credential: its label (as `baton quota` shows it) or its hash, or a prefix")
    records = store.list_quotas()
    exact = [r for r in records if ref in (r.credential, r.label)]
    found = exact or [r for r in records if r.credential.startswith(ref) or r.label.startswith(ref)]
    if not found:
        raise NotFound(f"no usage-quota breaker {ref!r} (`baton quota` lists them)")
    if len(found) > 1:
        names = ", ".join(repr(r.label) for r in found[:SHOWN])
        more = f" and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
        raise BadInput(
            f"{ref!r} names {len(found)} breakers: {names}{more}; give more of the label or the hash"
        )
    return found[0]


@dataclass(frozen=True)
class Cleared:
    """A breaker closed by hand: as it was, as it is, and whether it was open (exhausted)."""

    before: QuotaView
    after: QuotaView
    closed: bool

    def to_json(self) -> dict[str, Any]:
        return {
            **self.after.to_json(),
            "was": self.before.state,
            "was_held": self.before.held,
            "closed": self.closed,
        }


def clear_breaker(store: QuotaAdmin, ref: str, actor: str, now: float | None = None) -> Cleared:
    """Close the breaker ``ref`` names (:func:`find_breaker`) by hand: runs of its credential start
    again at once. Audited (``quota-clear``, with what it was) whether or not it was open."""
    now = time.time() if now is None else now
    record = find_breaker(store, ref)
    before = view(record, now)
    closed = store.clear_quota(record.credential, now)
    store.audit(
        "quota-clear",
        record.label,
        actor,
        {
            "credential": record.credential,
            "agent": record.agent,
            "was": before.state,
            "held": before.held,
            "resets_at": before.to_json()["resets_at"],
            "closed": closed,
        },
    )
    after = store.quota(record.credential) or record
    return Cleared(before, view(after, now), closed)
