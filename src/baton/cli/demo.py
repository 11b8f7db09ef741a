"""``baton demo``: the offline demo (the work is in :mod:`baton.testing.demo`)."""

from __future__ import annotations

import typer

from baton.cli.common import out


def demo_cmd() -> None:
    """Offline demo: the real Claude CLI against a local mock model, through a simulated redeploy."""
    # lazy: cold CLI
    from baton.testing.demo import run_demo

    raise typer.Exit(run_demo(out()))
