"""A run's refusals, coalesced per destination, so that a refused burst (an agent's loop: 300 in 0.2 s)
costs a few audit rows and never pushes the audit log's others out: the egress proxy's
(:mod:`baton.runner.wayout`: host, port, method) and the model gateway's (:class:`Passes
<baton.runner.attempt.Passes>`: method, path). Each destination is told at its 1st, 10th, 100th, ...
refusal and, at the end (:meth:`Refusals.flush`), with a count not told yet; past :data:`DESTINATIONS`
destinations the rest share one key, so a run that varies its target without end stays bounded too."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["DESTINATIONS", "Refusals"]

DESTINATIONS = 64
Where = TypeVar("Where", bound=Hashable)  # a destination
What = TypeVar("What")  # a refusal


@dataclass
class Refusals(Generic[Where, What]):
    """Refusals by destination (``where``), told through ``tell(where, what, count, last)``: the
    destination (``others`` for those past :data:`DESTINATIONS`), the last refusal's ``what``, the
    count so far and the time of the last."""

    tell: Callable[[Where, What, int, float], None]
    others: Where
    seen: dict[Where, tuple[int, float, What]] = field(default_factory=dict)
    told: dict[Where, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, where: Where, what: What) -> None:
        now = time.time()
        with self.lock:
            if where not in self.seen and len(self.seen) >= DESTINATIONS:
                where = self.others
            count = self.seen[where][0] + 1 if where in self.seen else 1
            self.seen[where] = (count, now, what)
            due = str(count).rstrip("0") == "1"  # 1, 10, 100, ...
            if due:
                self.told[where] = count
        if due:
            self.tell(where, what, count, now)

    def flush(self) -> None:
        """Tell each destination's count that has not been told yet (with its last refusal)."""
        with self.lock:
            left = [(w, c, t, r) for w, (c, t, r) in self.seen.items() if self.told.get(w) != c]
            self.told.update({w: c for w, c, _t, _r in left})
        for where, count, last, what in left:
            self.tell(where, what, count, last)
