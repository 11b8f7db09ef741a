"""One preparation per repository and set of inputs, shared by every thread whose worktree has them. A
key's first setup (no stamp for its worktree) takes the prepared tree of its setup's inputs
(:mod:`baton.environment.prepared`; :func:`share` says which tree a commit gets), under its lock so
concurrent threads wait for one preparation: when it has none yet, the commit is checked out there
and its plan runs in it (:func:`baton.runner.setuprun.run_all`, in the walls the agent would get
there, with the tree's own home and temp dir, under ``setup_egress`` only when the commit is on the
default branch: else the agent could have written it, and it gets the agent's egress); then its
results are copied into the key's worktree and relocated (:func:`baton.environment.results.give`).
What the key's branch changed beyond that is the caller's: its maintenance or its setup, in its own
worktree. Counted per repository: preparations and hits."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baton.environment import prepared as trees
from baton.environment import results
from baton.environment.discover import Unreadable, discover
from baton.environment.plan import SetupPlan
from baton.errors import BatonError, Busy
from baton.models import Outcome
from baton.runner.setuprun import run_all, shared_room
from baton.runner.state import Context, Prepared
from baton.sandbox.enclosure import GitParts
from baton.workspace import keyspace
from baton.workspace.gitcmd import is_ancestor

WAIT_MARGIN = 120.0  # beyond setup_timeout, how long a turn waits for another's preparation


@dataclass
class Shared:
    """What sharing did: the plan that ran in the prepared tree (as a stamp), what was said, a failure."""

    stamp: dict[str, Any] = field(default_factory=dict)  # {} : nothing was shared
    note: str = ""
    error: tuple[Outcome, str] | None = None
    ran: bool = False  # the preparation ran this turn (else it was ready: a hit)


def plan_stamp(plan: SetupPlan) -> dict[str, Any]:
    """What a stamp says of a plan (its preparation key, the setup's key, its source and inputs)."""
    return {
        "key": plan.key,
        "text_key": plan.text_key,
        "source": plan.source,
        "inputs": [list(i) for i in plan.inputs],
    }


def share(ctx: Context, prepared: Prepared, plan: SetupPlan, log: Path) -> Shared:
    """Give the key's worktree the results of the preparation of its inputs (``plan``, found in it), made
    now if there is none. A commit on the repository's default branch prepares for its inputs, shared
    by every commit with the same ones (a README-only commit's thread is a hit); a commit off it (an
    agent's branch, which may have changed what its setup runs beyond those inputs) takes such a
    preparation when one is ready, and is otherwise prepared for itself alone, by its commit."""
    commit = ctx.workdirs.head_commit(ctx.key)
    if commit is None:
        return Shared()
    cache = ctx.workdirs.cache_path(ctx.key.repo)
    trusted = is_ancestor(cache, commit, ctx.workdirs.default_base(cache))  # else: the agent's egress
    shared = _take(ctx, prepared, _by_inputs(ctx, prepared, plan), commit, log, make=trusted, expect=plan.key)
    if shared is None:
        by_commit = trees.PreparedTree.of(
            ctx.settings.home, ctx.key.repo.slug, trees.prepared_id(commit, _configured(ctx, prepared))
        )
        shared = _take(ctx, prepared, by_commit, commit, log, make=True, expect=None)
    return shared or Shared()


def _configured(ctx: Context, prepared: Prepared) -> str:
    """What besides its inputs a preparation is of: the configured setup, and a container's image (a
    container's preparation is its image's: never one made on the host, nor in another image)."""
    image = f"\0image {prepared.container.identity}" if prepared.container is not None else ""
    return (ctx.request.setup or "") + image


def _by_inputs(ctx: Context, prepared: Prepared, plan: SetupPlan) -> trees.PreparedTree:
    configured = _configured(ctx, prepared)
    return trees.PreparedTree.of(ctx.settings.home, ctx.key.repo.slug, trees.inputs_id(plan.key, configured))


def swap(ctx: Context, prepared: Prepared, plan: SetupPlan, stamp: dict[str, Any]) -> Shared:
    """A key whose inputs changed since its last setup, when the preparation of its new ones is ready
    (another thread's): the worktree's old results (``stamp``'s) removed and the tree's given, so its
    environment is exactly that preparation's, a dependency dropped from a lock file gone too (which a
    maintenance that only installs would leave). Nothing shared when there is no such tree ready, or
    another turn holds it: the caller runs the maintenance."""
    tree, commit = _by_inputs(ctx, prepared, plan), ctx.workdirs.head_commit(ctx.key)
    if commit is None or not tree.ready():
        return Shared()
    try:
        with tree.locked(ctx.settings.home, 0.0):
            if not tree.ready():
                return Shared()
            files = results.tracked(ctx.workdirs.cache_path(ctx.key.repo), commit)
            removed = results.remove(prepared.worktree, [str(p) for p in stamp.get("results") or []], files)
            given = results.give(tree.tree, prepared.worktree, list(tree.meta().get("results") or []))
            _give_home(ctx, tree, prepared.worktree)
            trees.used(tree, hit=True)
            meta = tree.meta()
    except Busy:
        return Shared()
    except (BatonError, OSError) as exc:
        return Shared(error=(Outcome.FAILED, f"environment: the repository's prepared tree: {exc}"))
    counts = trees.count(ctx.settings.home, ctx.key.repo.slug, "hits")
    note = (
        f"the preparation of the same inputs at {str(meta.get('commit'))[:12]} was ready (a hit): the "
        f"worktree's environment replaced by it ({len(removed)} old result(s) removed: "
        f"{', '.join(removed[:4]) or 'none'}); {given.summary()}; the repository's preparations "
        f"{counts.get('preparations', 0)}, hits {counts.get('hits', 0)}"
    )
    return Shared({**(meta.get("plan") or {}), "results": given.copied}, note)


def _take(
    ctx: Context,
    prepared: Prepared,
    tree: trees.PreparedTree,
    commit: str,
    log: Path,
    make: bool,
    expect: str | None,
) -> Shared | None:
    """The results of ``tree`` given to the key's worktree, the tree prepared first when it is not and
    ``make`` allows it (None when it does not); ``expect``: the preparation key the tree must have."""
    home, slug = ctx.settings.home, ctx.key.repo.slug
    timeout = ctx.settings.setup_timeout + WAIT_MARGIN if ctx.settings.setup_timeout else None
    started = time.monotonic()
    try:
        with tree.locked(home, timeout):
            shared = Shared(tree.meta().get("plan") or {})
            if not shared.stamp:
                if not make:
                    return None
                shared = _prepare(ctx, tree, commit, log, prepared, expect)
                if not shared.stamp:
                    return shared
            made = time.monotonic()
            given = results.give(tree.tree, prepared.worktree, list(tree.meta().get("results") or []))
            personal = _give_home(ctx, tree, prepared.worktree)
            trees.used(tree, hit=not shared.ran)
            shared.stamp = {**shared.stamp, "results": given.copied}  # the setup's, never the agent's work
            at = str(tree.meta().get("commit") or commit)
    except Busy:
        why = f"another turn has been preparing the repository at {commit[:12]} for over {timeout:g} s"
        return Shared(error=(Outcome.FAILED, f"environment: {why}"))
    except (BatonError, OSError) as exc:
        return Shared(error=(Outcome.FAILED, f"environment: the repository's prepared tree: {exc}"))
    counts = trees.count(home, slug, "preparations" if shared.ran else "hits")
    how = f"ran in {made - started:.1f} s" if shared.ran else "was ready (a hit)"
    of = commit[:12] if at == commit else f"the same inputs at {at[:12]}"
    into_home = f"; into the agent's home: {personal.summary()}" if personal is not None else ""
    shared.note = (
        f"the preparation of {of} {how}, copied into the worktree in "
        f"{time.monotonic() - made:.1f} s: {given.summary()}{into_home}; the repository's preparations "
        f"{counts.get('preparations', 0)}, hits {counts.get('hits', 0)}"
    )
    return shared


def _prepare(
    ctx: Context, tree: trees.PreparedTree, commit: str, log: Path, prepared: Prepared, expect: str | None
) -> Shared:
    """The commit checked out in ``tree`` and its plan run there (the caller holds the tree's lock);
    nothing shared when the commit has no setup or not the ``expect`` ed one (the key's worktree differs
    from its commit: it runs its own), a failure when it did not succeed (the tree removed)."""
    cache = ctx.workdirs.cache_path(ctx.key.repo)
    admin = trees.make(tree, ctx.settings.home, cache, commit, ctx.workdirs.git_env(ctx.key.agent))
    try:
        image = prepared.container.identity if prepared.container is not None else None
        plan = discover(tree.tree, ctx.request.setup, image)
    except Unreadable:
        plan = None
    if plan is None or (expect is not None and plan.key != expect):  # the key's worktree runs its own
        trees.reset(tree, ctx.settings.home, cache)
        return Shared()
    git = GitParts(admin, cache, None)
    trusted = is_ancestor(cache, commit, ctx.workdirs.default_base(cache))  # else: the agent's egress
    room = shared_room(
        ctx, tree.tree, tree.home, tree.tmp, git, prepared.services, prepared.container, trusted
    )
    failed = run_all(ctx, room, plan, plan.commands, log)
    if failed is not None:  # its home stays: what it downloaded is there for the next try
        trees.reset(tree, ctx.settings.home, cache)
        return Shared(error=failed)
    found = results.find(tree.tree, results.tracked(cache, commit))
    now = time.time()
    tree.write_meta(
        {
            "plan": plan_stamp(plan),
            "commit": commit,
            "results": found,
            "home_results": results.in_home(tree.home),
            "made_at": now,
            "used_at": now,
            "hits": 0,
        }
    )
    return Shared(plan_stamp(plan), ran=True)


def _give_home(ctx: Context, tree: trees.PreparedTree, worktree: Path) -> results.Given | None:
    """What the preparation installed under its home (:data:`baton.environment.results.HOME_RESULTS`:
    ``pip --user``, ``go install``) given to the key's agent home the same way, relocated from the
    tree's home to the agent's and from the tree to the worktree; None when it installed none there."""
    home = keyspace.key_home(ctx.settings, ctx.key)
    found = [str(p) for p in tree.meta().get("home_results") or []]
    if not found or not home.is_dir():
        return None
    given = results.give(tree.home, home, found)
    for rel in given.copied:
        results.relocate(home / rel, os.fsencode(tree.tree), os.fsencode(worktree), given)
    return given
