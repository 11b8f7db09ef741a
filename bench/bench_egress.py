"""Benchmark 25: what the agent's way out costs a turn (the goal: ≤ 20 ms). A resumed ``baton.run``
turn of the fake agent, walled in, ``egress = "registries"`` ÷ ``"open"``: the allow-list parsed, baton's
egress proxy listening for the run and, where the host allows one (as root here), the agent started in
its own network namespace with the proxy and the model relays listening inside it (25a); the same
without a namespace (``net_ns = off``: the proxy on the host's loopback, the walls' TCP rule) (25b).
Interleaved turns of one key (rotating order, one warm-up turn); the cost is the median of the
per-repetition differences.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from common import Group, Plan, Repos, Row, Suite, rmtree, setting_turns

REPS = Plan(full=40, quick=8)
GOAL = 0.020


def _check(result: Any, _changes: dict[str, Any]) -> str | None:
    return None if result.run.confined else "the agent was not walled in (egress needs the walls)"


def bench_egress(root: Path, reps: int) -> list[Row]:
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, net_ns in (("25a", "auto"), ("25b", "off")):
        (root / name).mkdir()
        where = "its own network namespace" if net_ns == "auto" else "no namespace (net_ns = off)"
        rows.append(
            setting_turns(
                root / name,
                f"{name} egress: a resumed baton.run turn of the fake agent, egress = registries, {where} "
                "÷ egress = open",
                reps,
                GOAL,
                ({"egress": "open", "net_ns": net_ns}, {"egress": "registries", "net_ns": net_ns}),
                _check,
            )
        )
    return rows


def run_group(suite: Suite, repos: Repos) -> None:
    def work() -> None:
        suite.rows.extend(bench_egress(suite.scratch / "b25", suite.pick(REPS)))

    suite.step("25 egress: the proxy and the agent's own network namespace vs open", work)


GROUP = Group(
    "egress",
    "25a, 25b: a turn with egress on (proxy, own network namespace or not) ÷ open (≤ 20 ms)",
    run_group,
)


if __name__ == "__main__":
    import _venv  # noqa: F401  (re-runs with .venv's interpreter when baton is missing)

    scratch = Path(tempfile.mkdtemp(prefix="baton-bench-egress-"))
    try:
        for row in bench_egress(scratch, int(sys.argv[1]) if len(sys.argv) > 1 else 40):
            assert row.overhead is not None
            sides = f"egress {row.candidate * 1000:.1f} ms, open {row.baseline * 1000:.1f} ms"
            print(f"{row.name}: {sides}, cost {row.overhead * 1000:+.1f} ms (n={row.n})")
    finally:
        rmtree(scratch)
