"""A key whose environment is ``container``: the image its repository's devcontainer.json names (or
builds from its Dockerfile, once per content: :mod:`baton.environment.image`) made ready before the
turn, and kept on :class:`~baton.runner.state.Prepared`, so its setup's commands and its agent start
in it (:meth:`baton.sandbox.enclosure.Enclosure.command`). Imported only for such a run: the host's
run path loads none of it.
"""

from __future__ import annotations

import dataclasses
import time

from baton.environment.discover import Unreadable
from baton.environment.image import read_image
from baton.errors import AgentError
from baton.models import Outcome, RunRecord
from baton.runner.attempt import record_unstarted
from baton.runner.state import Context, Prepared
from baton.sandbox.enclosure import container_for


def inside(ctx: Context, prepared: Prepared) -> tuple[Prepared, RunRecord | None]:
    """``prepared`` with its container, said on its note; or the turn recorded ``failed`` with why
    (no devcontainer, no image, a build that failed): the agent never runs on the host in its place."""
    started = time.monotonic()
    try:
        spec = read_image(prepared.worktree)
        timeout = ctx.settings.setup_timeout or None
        box, built = container_for(
            ctx.settings.container_engine,
            spec.tag,
            spec.env,
            spec.dockerfile,
            spec.context,
            spec.args,
            timeout,
        )
    except (Unreadable, AgentError) as exc:
        error = f"environment container: {exc}"
        return prepared, record_unstarted(ctx, prepared, Outcome.FAILED, error, "environment: container")
    how = f"built from {spec.source}'s Dockerfile in {time.monotonic() - started:.1f} s" if built else "ready"
    aside = f"; set aside: {'; '.join(spec.set_aside)}" if spec.set_aside else ""
    said = f"environment: in the container {spec.tag} ({how}){aside}"
    note = "; ".join(filter(None, [prepared.note, said]))
    return dataclasses.replace(prepared, container=box, note=note), None
