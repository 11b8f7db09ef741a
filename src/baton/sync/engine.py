"""Sync with upstream before a turn: bring into the key's branch what people pushed to it on the remote
and what moved on its base, by merge or by rebase, keeping the agent's uncommitted work uncommitted.
This module holds the entry points (:func:`sync_worktree`, :func:`recover_interrupted_sync`) and the
decisions (whether to sync at all, whether anything moved: :func:`_moved`, cheap when nothing did);
each step has a module of its own (fetch, plan, apply, marker, report, over :mod:`baton.sync.git`):
computed in git's object store before the worktree is touched, and applied under a marker that undoes
a sync killed mid-way (how they fit: docs/architecture.md, "Sync with upstream").
"""

from __future__ import annotations

import zlib
from pathlib import Path

from baton.errors import GitError
from baton.files import atomic_write_text
from baton.keys import Key
from baton.models import OnConflict as OnConflict  # the request's choices, re-exported
from baton.models import SyncHow as SyncHow
from baton.sync import fetch as sync_fetch
from baton.sync.apply import apply, leave_for_agent
from baton.sync.git import SHA, SyncGit, read_bytes, read_text
from baton.sync.marker import finish, interrupted, put_back_index, read_marker, restore
from baton.sync.plan import Step, plan
from baton.sync.report import MAX_COMMITS, MAX_FILES, join_notes, list_names
from baton.sync.report import Incoming as Incoming
from baton.sync.report import SyncReport as SyncReport
from baton.workspace.workdirs import Workdirs

__all__ = ["Incoming", "OnConflict", "SyncHow", "SyncReport", "recover_interrupted_sync", "sync_worktree"]

SEEN = "baton-sync-seen"


def sync_worktree(
    workdirs: Workdirs,
    key: Key,
    worktree: Path,
    branch: str,
    base_ref: str | None,
    base_sha: str | None,
    how: SyncHow,
    on_conflict: OnConflict,
    fetch: bool = True,
) -> SyncReport:
    """Bring into the key's worktree what came in on its branch on the remote and on its base: fetched,
    computed in the object store, then applied (or, on a conflict, stopped or left to the agent).
    ``base_ref``: the full ref of the base (None: the repo's default branch); ``base_sha``: the commit
    the branch was last based on (None: the merge-base). Raises GitError for a git failure that is not
    a conflict, after putting the worktree back as it was."""
    how, on_conflict = SyncHow(how), OnConflict(on_conflict)
    if how is SyncHow.OFF:
        return SyncReport(str(how), "skipped", note="sync is off", base_sha=base_sha, branch=branch)
    wt = workdirs.worktree_git(key)
    if wt is None:
        return SyncReport(str(how), "skipped", note=f"there is no worktree at {worktree}", branch=branch)
    g = SyncGit(workdirs, key, wt, branch)
    recovered = recover_interrupted_sync(workdirs, key, worktree)
    report = SyncReport(str(how), "skipped", base_sha=base_sha, branch=branch, note=recovered)
    why = _why_skip(g)
    full_ref = _full_base(g, base_ref)
    if why is None and full_ref is None:
        why = "its base branch does not exist"
    if why is not None or full_ref is None:
        report.note = join_notes(recovered, why)
        return report
    if fetch:
        sync_fetch.fetch(g, full_ref)
    return _sync(g, report, full_ref, base_sha, how, on_conflict)


def recover_interrupted_sync(workdirs: Workdirs, key: Key, worktree: Path) -> str | None:
    """Undo a sync that was killed mid-way (its marker is still there): the branch, HEAD, every file
    and the index back to what they were before it. Returns a note (None: nothing to recover).

    Call it before anything else touches the worktree (the runner: before every turn, synced or not):
    a marker found later than that could hide work done since, and is then only dropped."""
    wt = workdirs.worktree_git(key)
    if wt is None:
        return None
    g = SyncGit(workdirs, key, wt, "")
    marker = read_marker(g)
    if marker is None:
        return None
    if not marker:  # unreadable: a marker is written atomically, so this is not ours
        finish(g)
        return "a malformed sync marker was removed; nothing was restored"
    g.branch = marker["branch"]
    if not interrupted(g, marker):
        finish(g)
        return "a stale sync marker was removed (the branch has moved since); nothing was restored"
    restore(g, marker)
    return f"an interrupted sync was undone: {g.branch} is back at {marker['head_before'][:12]}" + (
        " with its uncommitted work" if marker.get("checkpoint") else ""
    )


# -- before: whether to sync at all -------------------------------------------------------------------


def _why_skip(g: SyncGit) -> str | None:
    busy = g.in_progress()
    if busy is not None:
        return f"a {busy} is in progress in the worktree (finish or abort it first)"
    head = g.head_ref()
    if head != f"refs/heads/{g.branch}":
        where = f"on {head.removeprefix('refs/heads/')}" if head else "detached"
        return f"the worktree is not on {g.branch} (its HEAD is {where})"
    return None


def _full_base(g: SyncGit, base_ref: str | None) -> str | None:
    """The base's full ref, when it exists (read from files, no git process): a full ref as it is, a name
    as the remote's branch, the cache's branch or a tag (a tag never moves: only the key's own branch
    can bring something in)."""
    if base_ref is None:
        base_ref = (g.cache / "HEAD").read_text().strip().removeprefix("ref: refs/heads/")
    candidates = [base_ref] if base_ref.startswith("refs/") else []
    candidates += [f"refs/remotes/origin/{base_ref}", f"refs/heads/{base_ref}", f"refs/tags/{base_ref}"]
    return next((ref for ref in candidates if g.ref(ref) is not None), None)


# -- deciding what came in ---------------------------------------------------------------------------


def _sync(
    g: SyncGit, report: SyncReport, base_ref: str, base_sha: str | None, how: SyncHow, on_conflict: OnConflict
) -> SyncReport:
    head = g.ref(f"refs/heads/{g.branch}")
    base = g.ref(base_ref)
    remote_ref = f"refs/remotes/origin/{g.branch}"
    remote = g.ref(remote_ref)
    if head is None or base is None:
        report.note = join_notes(report.note, "the branch or its base is missing")
        return report
    report.head_before = report.head_after = head
    report.base_sha = base
    seen = f"{how} {head} {remote or '-'} {base}\n"
    last = read_text(g.gitdir / SEEN)
    if last == seen:
        report.result = "unchanged"
        return report
    steps = [Step("branch", remote_ref, remote)] if remote is not None else []
    steps.append(Step("base", base_ref, base))
    if _moved(g, how, head, remote, base, last):
        report.incoming = [found for step in steps if (found := _incoming(g, head, step, how)) is not None]
        steps = [step for step in steps if any(i.source == step.source for i in report.incoming)]
        if steps:
            return _integrate(g, report, head, steps, base_sha, how, on_conflict)
    atomic_write_text(g.gitdir / SEEN, seen)
    report.result = "unchanged"
    return report


def _moved(g: SyncGit, how: SyncHow, head: str, remote: str | None, base: str, last: str | None) -> bool:
    """Whether the remote branch or the base has a commit HEAD lacks: no when they are what they
    were at the last check that found nothing and HEAD descends from that check's HEAD (the agent
    committed since: its new commits are loose objects, read here), else one git process asks. That
    last check is remembered in the worktree's gitdir (:data:`SEEN`: the triple HEAD, remote branch and
    base last found fully integrated), so a turn where nothing came in spawns no git process for a
    local remote (and one fetch for a remote one)."""
    how_then, _, rest = (last or "").partition(" ")
    old_head, _, tips_then = rest.partition(" ")
    same_tips = how_then == how and tips_then == f"{remote or '-'} {base}\n"
    if same_tips and _descends(g.cache / "objects", head, old_head):
        return False
    tips = [tip for tip in (remote, base) if tip is not None and tip != head]
    return bool(tips) and bool(g.git("rev-list", "--max-count=1", *tips, "--not", head))


def _incoming(g: SyncGit, head: str, step: Step, how: SyncHow) -> Incoming | None:
    """What ``step`` brings in: None when nothing. In a rebase, commits of the remote branch whose
    change the local branch already has (the pre-rebase copies of its own commits) do not count."""
    if step.source == "branch" and how is SyncHow.REBASE:
        revs = ["--cherry-pick", "--left-only", "--no-merges", f"{step.tip}...{head}"]
    else:
        revs = [step.tip, "--not", head]
    listing = g.git("log", "-z", "--format=%h %s", *revs, raw=True)
    commits = [line for line in listing.split("\0") if line]
    if not commits:
        return None
    diff = ["diff", "--name-only", "-z", "--no-renames"]
    done = g.attempt(*diff, f"{head}...{step.tip}")  # from the merge-base
    files = done.stdout if done.returncode == 0 else g.git(*diff, head, step.tip, raw=True)
    names = sorted({name for name in files.split("\0") if name})
    return Incoming(step.source, step.label, len(commits), commits[:MAX_COMMITS], names[:MAX_FILES])


def _descends(objects: Path, new: str, old: str, limit: int = 64) -> bool:
    """Whether commit ``old`` is ``new`` or an ancestor of it, found by reading loose commit objects
    only (at most ``limit``); False also when that does not tell (a packed commit): then git decides."""
    todo, visited = [new], set[str]()
    while todo and len(visited) < limit:
        sha = todo.pop()
        if sha == old:
            return True
        if sha in visited or not SHA.fullmatch(sha):
            continue
        visited.add(sha)
        try:
            data = zlib.decompress((objects / sha[:2] / sha[2:]).read_bytes())
        except (OSError, zlib.error):
            return False
        header, _, body = data.partition(b"\0")
        if not header.startswith(b"commit "):
            return False
        for line in body.split(b"\n"):
            if not line.startswith((b"tree ", b"parent ")):
                break
            if line.startswith(b"parent "):
                todo.append(line[7:].decode("ascii", "replace"))
    return False


# -- integrating -------------------------------------------------------------------------------------


def _integrate(
    g: SyncGit,
    report: SyncReport,
    head: str,
    steps: list[Step],
    base_sha: str | None,
    how: SyncHow,
    on_conflict: OnConflict,
) -> SyncReport:
    # the checkpoint's `git status` refreshes the index (stat data, its untracked cache): the bytes
    # before it are what a conflict or a failure puts back
    g.index_before = read_bytes(g.gitdir / "index")
    try:
        checkpoint = g.workdirs.checkpoint(g.key, g.worktree)
        found = plan(g, head, steps, base_sha, how, checkpoint, labels=on_conflict is OnConflict.AGENT)
    except GitError:
        put_back_index(g)
        raise
    if found.conflict_in is not None:
        report.result, report.conflict_in, report.conflicts = "conflict", found.conflict_in, found.conflicts
        if on_conflict is OnConflict.STOP:
            put_back_index(g)
            report.base_sha = base_sha
            return report
        if found.conflict_in != "uncommitted":
            return leave_for_agent(g, report, head, checkpoint, steps, base_sha, how)
        report.left_for_agent = True
    else:
        report.result = "integrated"
    overwritten = apply(g, head, checkpoint, found)
    if overwritten:
        report.note = join_notes(
            report.note, f"ignored files replaced by tracked ones: {list_names(overwritten)}"
        )
    report.head_after = found.target
    return report
