"""A walled process's way out under an egress allow-list: the agent's (the run's ``egress``, else the
setting's) and its setup's (``setup_egress`` and the repository's remote, for a setup of the default
branch's commit only, when the agent's is not ``open``: a setup the agent could have changed on its
branch gets no wider way out than the agent).
Each refusal is an audit row and a line of the process's log (and the run's subscriber's event),
coalesced per destination (:mod:`baton.runner.refusals`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from baton import allowlist
from baton.agents import get_agent
from baton.allowlist import Policy
from baton.errors import BatonError
from baton.runner.refusals import Refusals
from baton.runner.state import Context
from baton.sandbox.enclosure import (
    Egress,
    Refusal,
    denied_ports,
    loopback_entries,
    model_endpoints,
    netns_applies,
    own_ports,
    service_endpoints,
)


def agent_policy(ctx: Context) -> Policy:
    """The agent's allow-list: the run's own, else the setting's; ``remote`` is the host of the key's
    repository's remote."""
    return allowlist.with_remote(allowlist.parse(ctx.request.egress or ctx.settings.egress), ctx.key.repo.url)


def setup_policy(ctx: Context, trusted: bool) -> Policy:
    """The setup's allow-list: the agent's when what runs is not ``trusted`` (not the default branch's:
    the agent could have written it, so it goes no wider than the agent), or when the agent's is
    ``open``; else ``setup_egress`` and the host of the repository's remote (an HTTP(S) one: the proxy
    carries HTTP). Never the agent's model APIs (:func:`open_way` with ``models`` False)."""
    if not trusted or agent_policy(ctx).open:
        return agent_policy(ctx)
    policy = allowlist.parse(ctx.settings.setup_egress, "setting 'setup_egress'")
    return allowlist.with_remote(policy, ctx.key.repo.url, always=True)


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
    process is ``confined`` (walled in, or in a container) and the host allows one; ``models``: the
    agent's model APIs reachable too."""
    if policy.open:
        return None

    def tell(where: tuple[str, int, str], refusal: Refusal, count: int, last: float) -> None:
        host, port, method = where
        detail = {"host": host, "port": port, "method": method, "run_id": run_id}
        detail.update(count=count, last=last)
        with contextlib.suppress(BatonError):  # the note below still says it
            why = {**detail, "reason": refusal.reason}
            ctx.store.audit("egress.refused", str(ctx.key), f"run:{run_id}", why)
        note({"type": "baton.egress_refused", **detail, "reason": refusal.reason})

    refused = Refusals[tuple[str, int, str], Refusal](tell, others=("*", 0, "*"))
    namespaced = confined and netns_applies(ctx.settings.net_ns)
    operators = get_agent(ctx.key.agent, ctx.settings)
    endpoints = model_endpoints(env, operators.endpoints()) if models else []
    endpoints += service_endpoints(env)  # the key's services on the host's loopback, relayed too
    endpoints += loopback_entries(policy)  # and an entry the operator wrote for the host's loopback
    through = allowlist.upstream_of(ctx.settings.egress_upstream)
    denied = denied_ports(ctx.settings)

    def on_refused(refusal: Refusal) -> None:
        refused((refusal.host, refusal.port, refusal.method), refusal)

    way = Egress.open(policy, namespaced, endpoints, denied, on_refused, own_ports(env), through)
    way.on_close = refused.flush  # each destination's last count, once the process has ended
    return way
