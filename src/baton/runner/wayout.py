"""A walled process's way out under an egress allow-list: the agent's (the run's ``egress``, else the
setting's) and its setup's (``setup_egress`` and the repository's remote, applied only when the agent's
is not ``open``: a setup the agent could change on its branch gets no wider way out than the agent).
Each refusal is an audit row and a line of the process's log (and the run's subscriber's event),
coalesced per destination (:class:`Refusals`): a burst of refusals never pushes other audit rows out.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from baton import allowlist
from baton.agents import get_agent
from baton.allowlist import Policy, Rule
from baton.errors import BatonError
from baton.runner.state import Context
from baton.sandbox.enclosure import (
    Egress,
    Refusal,
    denied_ports,
    model_endpoints,
    netns_applies,
    own_ports,
    service_endpoints,
)


def agent_policy(ctx: Context) -> Policy:
    """The agent's allow-list: the run's own, else the setting's."""
    return allowlist.parse(ctx.request.egress or ctx.settings.egress)


def setup_policy(ctx: Context) -> Policy:
    """The setup's allow-list: ``open`` when the agent's is; else ``setup_egress`` and the host of the
    repository's remote (an HTTP(S) one: the proxy carries HTTP), never the agent's model APIs."""
    if agent_policy(ctx).open:
        return agent_policy(ctx)
    policy = allowlist.parse(ctx.settings.setup_egress, "setting 'setup_egress'")
    parts = urlsplit(ctx.key.repo.url) if "://" in ctx.key.repo.url else None
    if policy.open or parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return policy
    remote = Rule(parts.hostname.lower(), (parts.port,) if parts.port else allowlist.WEB_PORTS)
    return Policy(False, (*policy.rules, remote), policy.text)


def open_way(
    ctx: Context,
    run_id: str,
    policy: Policy,
    env: dict[str, str],
    confined: bool,
    note: Callable[[dict[str, Any]], None],
    models: bool = True,
) -> Egress | None:
    """The way out under ``policy``; None when it is ``open``. Its own network namespace where the
    process is walled in and the host allows one; ``models``: the agent's model APIs reachable too."""
    if policy.open:
        return None

    def tell(refusal: Refusal, count: int, last: float) -> None:
        detail: dict[str, Any] = {"host": refusal.host, "port": refusal.port, "method": refusal.method}
        detail.update(run_id=run_id, count=count, last=last)
        with contextlib.suppress(BatonError):  # the note below still says it
            why = {**detail, "reason": refusal.reason}
            ctx.store.audit("egress.refused", str(ctx.key), f"run:{run_id}", why)
        note({"type": "baton.egress_refused", **detail, "reason": refusal.reason})

    refused = Refusals(tell)
    namespaced = confined and netns_applies(ctx.settings.net_ns)
    operators = get_agent(ctx.key.agent, ctx.settings)
    endpoints = model_endpoints(env, operators.endpoints()) if models else []
    endpoints += service_endpoints(env)  # the key's services on the host's loopback, relayed too
    through = allowlist.upstream_of(ctx.settings.egress_upstream)
    denied = denied_ports(ctx.settings)
    way = Egress.open(policy, namespaced, endpoints, denied, refused, own_ports(env), through)
    way.on_close = refused.flush  # each destination's last count, once the process has ended
    return way


@dataclass
class Refusals:
    """A run's refusals by destination (host, port, method), told through ``tell`` with their count and
    the time of the last: the first of each at once, then the 10th, the 100th, ..., and at the end
    (:meth:`flush`) each count not told yet; past :data:`DESTINATIONS` destinations the rest share one
    count. A refused burst (an agent's loop: 300 in 0.2 s) costs a few audit rows, never the others."""

    tell: Callable[[Refusal, int, float], None]
    seen: dict[tuple[str, int, str], tuple[int, float, Refusal]] = field(default_factory=dict)
    told: dict[tuple[str, int, str], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, refusal: Refusal) -> None:
        where, now = (refusal.host, refusal.port, refusal.method), time.time()
        with self.lock:
            if where not in self.seen and len(self.seen) >= DESTINATIONS:
                where = OTHERS
            count = self.seen.get(where, (0, 0.0, refusal))[0] + 1
            self.seen[where] = (count, now, refusal)
            due = str(count).rstrip("0") == "1"  # 1, 10, 100, ...
            if due:
                self.told[where] = count
        if due:
            self.tell(refusal, count, now)

    def flush(self) -> None:
        """Tell each destination's count that has not been told yet (its last refusal's)."""
        with self.lock:
            left = [(c, t, r) for where, (c, t, r) in self.seen.items() if self.told.get(where) != c]
            self.told.update({where: c for where, (c, _t, _r) in self.seen.items()})
        for count, last, refusal in left:
            self.tell(refusal, count, last)


DESTINATIONS = 64
OTHERS = ("*", 0, "*")  # the destinations past the first DESTINATIONS of a run
