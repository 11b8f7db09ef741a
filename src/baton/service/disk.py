"""Routes: disk use (``GET /v1/disk``; a fleet's, ``GET /v1/disk/fleet``; read scope) and the sweeper
(``POST /v1/sweep``, admin scope).

Both walk directories and run git, so they are plain ``def`` routes: FastAPI runs them in its thread
pool and the event loop stays free for other requests.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from baton.housekeeping.disk import usage
from baton.housekeeping.fleetdisk import fleet_disk
from baton.housekeeping.sweep import sweep_and_enforce
from baton.service.auth import Actor, require
from baton.service.records import TokenScope

router = APIRouter(prefix="/v1", tags=["housekeeping"])


@router.get("/disk", summary="Disk use per agent, repo and session; cache clones, agent homes, free space")
def get_disk(request: Request, actor: Annotated[Actor, Depends(require(TokenScope.READ))]) -> dict[str, Any]:
    """Bytes (allocated) of every session's worktree, local transcript and store snapshot, totals per
    agent and per repo, each cache clone and agent home, the whole ``BATON_HOME``, the volume's free
    space, and the configured quota and minimum free space. Per session and in total, the worktrees'
    ``rebuildable`` bytes (ignored, untracked artefacts such as ``node_modules``, listed per session in
    ``artefacts``: what a sweep prunes first) and ``unique`` bytes (the rest of their own bytes)."""
    return usage(request.app.state.store, request.app.state.settings).to_json()


@router.get("/disk/fleet", summary="Each fleet worker's volume as it last reported it, and the fleet's total")
def get_fleet_disk(
    request: Request, actor: Annotated[Actor, Depends(require(TokenScope.READ))]
) -> dict[str, Any]:
    """What ``baton du --fleet --json`` prints: every worker's latest disk report (used by kind, agent
    and repo; free and total bytes of its volume; ``stale`` when it is three report periods late) and
    the total of the fresh ones. ``workers`` is empty when no worker ever reported to this store."""
    return fleet_disk(request.app.state.store).to_json()


@router.post("/sweep", summary="Expire, purge, remove orphans, prune; then enforce the disk quota")
def post_sweep(
    request: Request,
    actor: Annotated[Actor, Depends(require(TokenScope.ADMIN))],
    dry_run: Annotated[bool, Query(description="report what would be removed; remove nothing")] = False,
    prune: Annotated[
        bool, Query(description="prune every idle key's rebuildable artefacts, not only under disk pressure")
    ] = False,
) -> dict[str, Any]:
    """One sweep now (what the service also does every ``BATON_SWEEP_INTERVAL``): the report of what
    was (or, dry, would be) removed, freed bytes by category, keys skipped because a run holds them,
    the idle keys' rebuildable artefacts pruned first (``prunings``: key, path, kind, bytes, why; listed
    by a dry run too), and the worktrees evicted to get under the quota. A real sweep is audited with
    the token's name."""
    state = request.app.state
    return sweep_and_enforce(state.store, state.settings, actor.name, dry_run=dry_run, prune=prune)
