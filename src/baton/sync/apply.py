"""Putting a computed sync into the worktree, under the marker (:mod:`baton.sync.marker`): a failure on
the way puts everything back and re-raises. A clean result (:func:`apply`) moves the refs and writes
only the files that differ; a conflict in history handed to the agent (:func:`leave_for_agent`,
``on_conflict=agent``) runs the real ``git merge`` / ``git rebase`` in the worktree and leaves it
stopped at the conflict for the agent to finish.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from baton.errors import GitError
from baton.models import SyncHow
from baton.sync.fetch import prefetch
from baton.sync.git import SyncGit, last_words
from baton.sync.marker import add_target, begin, finish, restore
from baton.sync.plan import Plan, Step, merge_message, todo
from baton.sync.report import SyncReport, join_notes
from baton.workspace.gitcmd import checkout_changes

_MERGE_FLAGS = ["--ff", "--no-edit", "--no-verify", "--no-autostash", "--no-log", "--no-stat", "--no-squash"]
_REBASE_FLAGS = ["--quiet", "--no-autostash", "--no-update-refs", "--no-autosquash", "--no-verify"]


def apply(g: SyncGit, head: str, checkpoint: str | None, plan: Plan) -> list[str]:
    """Move the branch to the plan's commit and the worktree to its tree (only the files that
    differ), the index to the new HEAD. Returns the ignored files a tracked file replaced.

    The branch ref and the key's checkpoint ref move in one transaction; only the files that differ
    are written (:func:`~baton.workspace.gitcmd.checkout_changes`; in a partial clone their blobs are
    fetched first, in one batch, with the key's credentials); the index is reset to the new HEAD (files
    untracked before stay untracked). A conflict only in the uncommitted work is applied the same way,
    its conflict markers in the files and no operation in progress."""
    marker = begin(g, head, checkpoint, [plan.target])
    old, new = checkpoint or head, plan.tree or plan.target
    try:
        overwritten = _ignored_in_the_way(g, old, new)
        prefetch(g, old, new)
        moves = f"update refs/heads/{g.branch} {plan.target} {head}\n"
        moves += _checkpoint_move(g, plan.target, plan.target_tree, plan.tree)
        g.update_refs("baton: sync with upstream", moves)
        checkout_changes(g.wt, old, new)
        g.git("reset", "--quiet", "--mixed")
    except GitError:
        restore(g, marker)
        raise
    finish(g)
    return overwritten


def _ignored_in_the_way(g: SyncGit, old: str, new: str) -> list[str]:
    """Paths ``new`` adds where the worktree has a file git ignores (it will be replaced)."""
    listing = g.git(
        "diff-tree", "-r", "-z", "--no-renames", "--diff-filter=A", "--name-only", old, new, raw=True
    )
    return [p for p in listing.split("\0") if p and os.path.lexists(g.worktree / p)]


def _checkpoint_move(g: SyncGit, target: str, target_tree: str | None, tree: str | None) -> str:
    """The ``update-ref --stdin`` line that keeps the key's checkpoint ref on the worktree's state:
    its uncommitted work (``tree``) as a commit on ``target``, or no checkpoint when there is none."""
    ref = g.checkpoint_ref()
    if tree is None or tree == target_tree:
        return f"delete {ref}\n" if g.ref(ref) is not None else ""
    checkpoint = g.made(tree, [target], f"baton checkpoint of {g.key}\n")
    return f"update {ref} {g.defer(checkpoint, target)}\n"


def leave_for_agent(
    g: SyncGit,
    report: SyncReport,
    head: str,
    checkpoint: str | None,
    steps: list[Step],
    base_sha: str | None,
    how: SyncHow,
) -> SyncReport:
    """Run the real merge / rebase in the worktree and leave it stopped at the conflict, the
    uncommitted work first committed on the branch so that it travels through. The rebase's to-do
    list is the commits the computed one replayed (:func:`_real_rebase`)."""
    marker = begin(g, head, checkpoint, [])
    try:
        cur = head
        if checkpoint is not None:
            cur = report.wip_commit = commit_wip(g, marker, head, checkpoint, steps)
        for step in steps:
            if not _real_step(g, step, steps, cur, base_sha, how):
                report.conflict_in = step.source
                report.base_sha = step.tip if step.source == "base" else base_sha
                break
            cur = g.git("rev-parse", "HEAD")
            add_target(g, marker, cur)
    except GitError:
        restore(g, marker)
        raise
    finish(g)
    return _stopped(g, report)


def _stopped(g: SyncGit, report: SyncReport) -> SyncReport:
    """``report`` told where the real merge / rebase stopped."""
    report.in_progress = g.in_progress()
    report.head_after = g.git("rev-parse", "HEAD")
    if report.in_progress is None:  # git merged what merge-tree found conflicting
        report.result, report.conflicts, report.conflict_in = "integrated", [], None
        report.note = join_notes(report.note, "the uncommitted work was committed before the sync")
        return report
    listing = g.git("diff", "--name-only", "-z", "--diff-filter=U", raw=True)
    report.conflicts = sorted({p for p in listing.split("\0") if p}) or report.conflicts
    report.left_for_agent = True
    return report


def commit_wip(g: SyncGit, marker: dict[str, Any], head: str, checkpoint: str, steps: list[Step]) -> str:
    """Commit the uncommitted work (``checkpoint``'s tree) on the branch; the index follows."""
    message = f"baton: uncommitted work before syncing with {' and '.join(s.label for s in steps)}\n"
    wip = g.write([g.made(g.tree_of(checkpoint), [head], message)])[0]
    add_target(g, marker, wip)
    g.git("update-ref", "-m", "baton: uncommitted work before a sync", f"refs/heads/{g.branch}", wip, head)
    g.git("reset", "--quiet", "--mixed")  # the files are the commit's: the index follows
    return wip


def _real_step(
    g: SyncGit, step: Step, steps: list[Step], cur: str, base_sha: str | None, how: SyncHow
) -> bool:
    """One real ``git merge`` / ``git rebase`` in the worktree; False when it stopped at a conflict."""
    if how is SyncHow.MERGE:
        done = g.attempt("merge", *_MERGE_FLAGS, "-m", merge_message(step, g.branch), step.ref)
    else:
        done = _real_rebase(g, step, todo(g, cur, step, steps, base_sha))
    if done.returncode == 0:
        return True
    if g.in_progress() is not None:
        return False
    raise GitError(f"git {how.value} failed: {last_words(done.stderr.strip() or done.stdout)}")


def _real_rebase(g: SyncGit, step: Step, shas: list[str]) -> subprocess.CompletedProcess[str]:
    """``git rebase -i`` whose to-do list is ``shas`` (what :func:`~baton.sync.plan.plan` replayed):
    the same commits as the computed rebase, left stopped at the conflict for ``git rebase --continue``."""
    with tempfile.TemporaryDirectory(prefix="baton-sync-") as tmp:
        (Path(tmp) / "todo").write_text("".join(f"pick {sha}\n" for sha in shas) or "noop\n")
        g.env["GIT_SEQUENCE_EDITOR"] = f"cp {shlex.quote(str(Path(tmp) / 'todo'))}"
        try:
            flags = [*_REBASE_FLAGS, "--empty=drop", "--onto", step.tip, step.tip]
            return g.attempt("rebase", "--interactive", *flags)
        finally:
            g.env["GIT_SEQUENCE_EDITOR"] = "true"
