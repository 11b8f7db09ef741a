"""Sync with upstream before a turn: bring into the key's branch what people pushed to it on the remote
and what moved on its base, by merge or by rebase, keeping the agent's uncommitted work uncommitted.

Design:

- **Cheap when nothing moved.** The common case is a turn where nothing came in, so that path spawns
  no git process at all: for a local repository the remote's refs are read from its files (a fetch
  runs only when one of the two refs we follow differs from ours); a remote one is fetched for those
  two refs alone (``+refs/heads/<name>*`` globs: protocol v2 asks the server for those prefixes only,
  and a branch never pushed is no error). The triple (HEAD, remote branch, base) last found fully
  integrated is remembered in the worktree's gitdir (``baton-sync-seen``); the same triple again, or
  the same tips with a HEAD that descends from that one through loose commits (the agent committed;
  read here without git), is "unchanged". Otherwise one ``rev-list`` decides.
- **Computed before touched.** The integration is done in git's object store first, never in the
  worktree: merges with ``git merge-tree --write-tree``; a rebase as a series of cherry-picks, each
  the ``merge-tree`` of the picked commit and a throw-away commit of the new tree made on the picked
  commit's parent, so that parent is their merge-base (git 2.39 has neither ``merge-tree
  --merge-base`` nor ``git replay``); the uncommitted work re-applied the same way (the checkpoint and
  a throw-away commit of the new tree, both on the old HEAD). Commits are written by one
  ``hash-object`` per step, their ids computed here too. A conflict found there leaves the worktree
  exactly as it was (its index bytes too), which is what ``on_conflict=stop`` asks.
- **Applied with a marker.** Only a clean result (or a conflict handed to the agent) touches the
  worktree, and first ``baton-sync.json`` and a copy of the index are written to the worktree's gitdir.
  A sync killed mid-way leaves the marker behind; :func:`recover_interrupted_sync` then puts back the
  branch, HEAD, every tracked and untracked file (from the checkpoint) and the index (from its copy).
  Applying is: move the branch ref and the key's checkpoint ref (one transaction), write only the
  files that differ (:func:`checkout_changes`; in a partial clone their blobs are fetched first, in one
  batch, with the key's credentials), reset the index to the new HEAD (files untracked before stay
  untracked).
- **Conflicts for the agent** (``on_conflict=agent``): in history, the uncommitted work is first
  committed on the branch (so it travels through the operation), then the real ``git merge`` /
  ``git rebase`` runs in the worktree and is left stopped at the conflict for the agent to finish;
  only in the uncommitted work, the new HEAD is applied with the conflict markers written in those
  files and no operation in progress.
- **Isolated from the user's git configuration** where it changes what happens: no hooks, no
  signing, no autostash, no rerere, no ``update-refs``, no editor, no auto-gc.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from baton.errors import GitError
from baton.files import atomic_write_bytes, atomic_write_text
from baton.gitcmd import checkout_changes, remote_error, run_git
from baton.keys import Key
from baton.locks import file_lock
from baton.models import OnConflict as OnConflict  # the request's choices, re-exported
from baton.models import SyncHow as SyncHow
from baton.workdirs import Workdirs

MAX_COMMITS = 20
MAX_FILES = 50
MARKER = "baton-sync.json"
INDEX_COPY = "baton-sync.index"
SEEN = "baton-sync-seen"
# Conflict-marker labels of re-applied uncommitted work: pseudo-refs in the worktree's gitdir, so that
# the markers read "<<<<<<< SYNCED_HEAD" / ">>>>>>> UNCOMMITTED_HEAD" rather than two commit ids.
LABELS = ("SYNCED_HEAD", "UNCOMMITTED_HEAD")
# What a merge, rebase, cherry-pick, revert or bisect leaves in a gitdir while it is in progress.
IN_PROGRESS = {
    "MERGE_HEAD": "merge",
    "rebase-merge": "rebase",
    "rebase-apply": "rebase",
    "CHERRY_PICK_HEAD": "cherry-pick",
    "REVERT_HEAD": "revert",
    "BISECT_LOG": "bisect",
    "sequencer": "cherry-pick or revert",  # a series stopped between two of its commits
}
_LEFTOVERS = ("MERGE_HEAD", "MERGE_MSG", "MERGE_MODE", "AUTO_MERGE", "CHERRY_PICK_HEAD", "REVERT_HEAD")
_STATE_DIRS = ("rebase-merge", "rebase-apply", "sequencer")
# The user's configuration must not change what a sync does: no hooks, signing, stashing, rerere,
# rebase extras, editor or background gc.
ISOLATE = [
    *("-c", "core.hooksPath=/dev/null", "-c", "commit.gpgSign=false", "-c", "tag.gpgSign=false"),
    *("-c", "merge.autoStash=false", "-c", "rebase.autoStash=false", "-c", "rebase.updateRefs=false"),
    *("-c", "rebase.autoSquash=false", "-c", "rerere.enabled=false", "-c", "merge.verifySignatures=false"),
    *("-c", "merge.log=false", "-c", "gc.auto=0", "-c", "maintenance.auto=false"),
    *("-c", "advice.fetchShowForcedUpdates=false"),
    *("-c", "fetch.showForcedUpdates=false", "-c", "fetch.writeCommitGraph=false", "-c", "core.editor=true"),
]
_EDITORS = {"GIT_EDITOR": "true", "GIT_SEQUENCE_EDITOR": "true", "GIT_MERGE_AUTOEDIT": "no"}
_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")


@dataclass
class Incoming:
    """What came in from one source."""

    source: str  # "branch" (people pushed to the key's branch on the remote) or "base"
    ref: str  # for people: "origin/baton/claude/issue-1", "origin/main", "baton/claude/A"
    count: int  # number of incoming commits
    commits: list[str]  # "<short sha> <subject>", newest first, at most 20
    files: list[str]  # files the incoming commits changed, at most 50 (sorted)

    @classmethod
    def from_json(cls, data: Any) -> Incoming | None:
        if not isinstance(data, dict):
            return None
        source, ref, count = data.get("source"), data.get("ref"), data.get("count")
        commits, files = data.get("commits", []), data.get("files", [])
        if not (isinstance(source, str) and isinstance(ref, str) and type(count) is int):
            return None
        if not (_strings(commits) and _strings(files)):
            return None
        return cls(source, ref, count, list(commits), list(files))


@dataclass
class SyncReport:
    """What a sync did (or found), for the session's record, the run's notes and the agent's prompt."""

    how: str  # "merge" | "rebase" ("off" when sync is off)
    result: str  # "unchanged" | "integrated" | "conflict" | "skipped"
    incoming: list[Incoming] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # conflicting files
    conflict_in: str | None = None  # "branch" | "base" | "uncommitted" (the uncommitted work vs what came in)
    left_for_agent: bool = False  # conflict markers left in the worktree (on_conflict=agent)
    in_progress: str | None = None  # "merge" | "rebase" when a git operation is left for the agent
    note: str | None = None  # why skipped, or anything a person should know
    head_before: str | None = None
    head_after: str | None = None
    base_sha: str | None = None  # the base commit the branch is based on now (once the agent finishes)
    branch: str | None = None  # the key's branch
    wip_commit: str | None = None  # the commit the uncommitted work became before a conflict for the agent

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> SyncReport | None:
        """The report ``to_json`` made; None for anything malformed."""
        if not isinstance(data, dict):
            return None
        how, result = data.get("how"), data.get("result")
        if not (isinstance(how, str) and isinstance(result, str)):
            return None
        incoming = [Incoming.from_json(item) for item in _list(data.get("incoming"))]
        conflicts = data.get("conflicts", [])
        if any(item is None for item in incoming) or not _strings(conflicts):
            return None
        texts = {
            name: data.get(name)
            for name in ("conflict_in", "in_progress", "note", "head_before", "head_after", "base_sha")
        }
        texts.update(branch=data.get("branch"), wip_commit=data.get("wip_commit"))
        if any(value is not None and not isinstance(value, str) for value in texts.values()):
            return None
        left = data.get("left_for_agent", False)
        if not isinstance(left, bool):
            return None
        found = [item for item in incoming if item is not None]
        return cls(how, result, found, list(conflicts), left_for_agent=left, **texts)

    def summary(self) -> str:
        """One line: "rebased onto origin/main (2 commits, 3 files)", "conflict in a.txt, b.txt", ..."""
        if self.result == "skipped":
            return f"sync skipped: {self.note}" if self.note else "sync skipped"
        if self.result == "unchanged":
            return "unchanged"
        if self.result == "conflict":
            where = _where(self)
            tail = "; left for the agent" if self.left_for_agent else ""
            return f"conflict in {_names(self.conflicts)}" + (f" ({where}{tail})" if where or tail else "")
        verb = "merged" if self.how == SyncHow.MERGE else "rebased onto"
        parts = [f"{i.ref} ({_plural(i.count, 'commit')}, {_files(i.files)})" for i in self.incoming]
        return f"{verb} {' and '.join(parts)}" if parts else verb

    def prompt_text(self) -> str:
        """A few lines for the agent's prompt: what came in and, on a conflict, what to do."""
        if self.result == "unchanged":
            return ""
        if self.result == "skipped":
            return (
                f"Baton did not sync your branch with upstream before this turn: {self.note}"
                if self.note
                else ""
            )
        lines = [f"Upstream moved since your branch{_named(self.branch)} was last synced:"]
        for item in self.incoming:
            lines.append(f"- {item.ref}: {_plural(item.count, 'new commit')}" + _listing(item))
        lines.extend(_outcome(self))
        return "\n".join(lines)


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
    """Bring into the key's worktree what came in on its branch on the remote and on its base (see the
    module's docstring). ``base_ref``: the full ref of the base (None: the repo's default branch);
    ``base_sha``: the commit the branch was last based on (None: the merge-base). Raises GitError for
    a git failure that is not a conflict, after putting the worktree back as it was."""
    how, on_conflict = SyncHow(how), OnConflict(on_conflict)
    if how is SyncHow.OFF:
        return SyncReport(str(how), "skipped", note="sync is off", base_sha=base_sha, branch=branch)
    if not (worktree / ".git").is_file():
        return SyncReport(str(how), "skipped", note=f"there is no worktree at {worktree}", branch=branch)
    s = _Sync(workdirs, key, worktree, branch)
    recovered = recover_interrupted_sync(workdirs, key, worktree)
    report = SyncReport(str(how), "skipped", base_sha=base_sha, branch=branch, note=recovered)
    why = s.why_skip()
    base_ref = s.full_base(base_ref)
    if why is None and base_ref is None:
        why = "its base branch does not exist"
    if why is not None:
        report.note = _join(recovered, why)
        return report
    assert base_ref is not None
    if fetch:
        s.fetch(base_ref)
    return s.sync(report, base_ref, base_sha, how, on_conflict)


def recover_interrupted_sync(workdirs: Workdirs, key: Key, worktree: Path) -> str | None:
    """Undo a sync that was killed mid-way (its marker is still there): the branch, HEAD, every file
    and the index back to what they were before it. Returns a note (None: nothing to recover).

    Call it before anything else touches the worktree (the runner: before every turn, synced or not):
    a marker found later than that could hide work done since, and is then only dropped."""
    if not (worktree / ".git").is_file():
        return None
    s = _Sync(workdirs, key, worktree, "")
    marker = s.read_marker()
    if marker is None:
        return None
    if not marker:  # unreadable: a marker is written atomically, so this is not ours
        s.finish()
        return "a malformed sync marker was removed; nothing was restored"
    s.branch = marker["branch"]
    if not s.interrupted(marker):
        s.finish()
        return "a stale sync marker was removed (the branch has moved since); nothing was restored"
    s.restore(marker)
    return f"an interrupted sync was undone: {s.branch} is back at {marker['head_before'][:12]}" + (
        " with its uncommitted work" if marker.get("checkpoint") else ""
    )


# -- the work ----------------------------------------------------------------------------------------


@dataclass
class _Step:
    source: str  # "branch" | "base"
    ref: str  # the full ref
    tip: str  # its commit

    @property
    def label(self) -> str:
        return _short_ref(self.ref)


@dataclass
class _Plan:
    """The integration computed in the object store: the new HEAD, the worktree's new tree (None: the
    new HEAD's, no uncommitted work) and the first conflict, if any."""

    target: str
    tree: str | None = None
    conflict_in: str | None = None
    conflicts: list[str] = field(default_factory=list)
    target_tree: str | None = None  # None: not known


@dataclass
class _Commit:
    """A commit to replay: its tree, its parent's tree and what of it a rebased copy keeps."""

    sha: str
    tree: str
    parent: str | None  # the first parent (None: a root commit)
    parent_tree: str
    author: bytes
    extra: bytes  # the encoding header, if any
    message: bytes


class _Sync:
    """One sync of one worktree: paths, environment and the git helpers it needs."""

    def __init__(self, workdirs: Workdirs, key: Key, worktree: Path, branch: str) -> None:
        self.workdirs, self.key, self.worktree, self.branch = workdirs, key, worktree, branch
        text = (worktree / ".git").read_text().removeprefix("gitdir:").strip()
        self.gitdir = worktree / text if not os.path.isabs(text) else Path(text)
        self.cache = workdirs.cache_path(key.repo)
        self.git_env = workdirs.git_env(key.agent)
        self.env = {**os.environ, **self.git_env, **_EDITORS}
        self.index_before: bytes | None = None
        self.pending: list[bytes] = []  # commit objects made here, written with the next hash-object

    # -- small helpers ---------------------------------------------------------------------------------

    def git(self, *args: str, stdin: str | None = None, raw: bool = False) -> str:
        self.flush()
        return run_git([*ISOLATE, *args], cwd=self.worktree, env=self.env, stdin=stdin, raw=raw)

    def attempt(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run git and return what happened, for the commands whose exit code says "conflict"."""
        self.flush()
        return subprocess.run(
            ["git", *ISOLATE, *args],
            cwd=self.worktree,
            env=self.env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )

    def ref(self, name: str) -> str | None:
        return self.workdirs.read_ref(self.cache, name)

    def head_ref(self) -> str | None:
        """The branch the worktree's HEAD names (read from its file), None when detached."""
        head = (self.gitdir / "HEAD").read_text().strip()
        return head.removeprefix("ref: ") if head.startswith("ref: ") else None

    def in_progress(self) -> str | None:
        return next((what for name, what in IN_PROGRESS.items() if (self.gitdir / name).exists()), None)

    def why_skip(self) -> str | None:
        busy = self.in_progress()
        if busy is not None:
            return f"a {busy} is in progress in the worktree (finish or abort it first)"
        head = self.head_ref()
        if head != f"refs/heads/{self.branch}":
            where = f"on {head.removeprefix('refs/heads/')}" if head else "detached"
            return f"the worktree is not on {self.branch} (its HEAD is {where})"
        return None

    def full_base(self, base_ref: str | None) -> str | None:
        """The base's full ref, when it exists (read from files, no git process)."""
        if base_ref is None:
            head = (self.cache / "HEAD").read_text().strip().removeprefix("ref: refs/heads/")
            base_ref = head
        candidates = [base_ref] if base_ref.startswith("refs/") else []
        candidates += [f"refs/remotes/origin/{base_ref}", f"refs/heads/{base_ref}"]
        return next((ref for ref in candidates if self.ref(ref) is not None), None)

    # -- fetch -----------------------------------------------------------------------------------------

    def fetch(self, base_ref: str) -> None:
        """Fetch the key's branch and (when it is a remote branch) the base — only when they moved."""
        names = [self.branch]
        if base_ref.startswith("refs/remotes/origin/"):
            names.append(base_ref.removeprefix("refs/remotes/origin/"))
        repo = self.key.repo
        if repo.local:
            theirs = _peek_local(Path(repo.url), names)
            if theirs is not None and all(theirs[n] == self.ref(f"refs/remotes/origin/{n}") for n in names):
                return
        specs = [f"+refs/heads/{name}*:refs/remotes/origin/{name}*" for name in names]
        flags = ["--quiet", "--prune", "--no-tags", "--no-write-fetch-head", "--no-auto-gc"]
        with file_lock(self.workdirs.home, f"repo:{repo.slug}"):
            try:
                run_git(
                    [*ISOLATE, "fetch", *flags, "--no-recurse-submodules", "origin", *specs],
                    cwd=self.cache,
                    env={**os.environ, **self.git_env},
                )
            except GitError as exc:
                raise remote_error(repo, "fetch", exc) from exc

    # -- deciding --------------------------------------------------------------------------------------

    def sync(
        self, report: SyncReport, base_ref: str, base_sha: str | None, how: SyncHow, on_conflict: OnConflict
    ) -> SyncReport:
        head = self.ref(f"refs/heads/{self.branch}")
        base = self.ref(base_ref)
        remote_ref = f"refs/remotes/origin/{self.branch}"
        remote = self.ref(remote_ref)
        if head is None or base is None:
            report.note = _join(report.note, "the branch or its base is missing")
            return report
        report.head_before = report.head_after = head
        seen = f"{how} {head} {remote or '-'} {base}\n"
        last = _read(self.gitdir / SEEN)
        if last == seen:
            report.result, report.base_sha = "unchanged", base
            return report
        if not self.moved(how, head, remote, base, last):
            atomic_write_text(self.gitdir / SEEN, seen)
            report.result, report.base_sha = "unchanged", base
            return report
        steps = []
        if remote is not None:
            steps.append(_Step("branch", remote_ref, remote))
        steps.append(_Step("base", base_ref, base))
        report.incoming = [found for step in steps if (found := self.incoming(head, step, how)) is not None]
        steps = [step for step in steps if any(i.source == step.source for i in report.incoming)]
        if not steps:
            atomic_write_text(self.gitdir / SEEN, seen)
            report.result, report.base_sha = "unchanged", base
            return report
        report.base_sha = base
        return self.integrate(report, head, steps, base_sha, how, on_conflict)

    def moved(self, how: SyncHow, head: str, remote: str | None, base: str, last: str | None) -> bool:
        """Whether the remote branch or the base has a commit HEAD lacks: no when they are what they
        were at the last check that found nothing and HEAD descends from that check's HEAD (the agent
        committed since: its new commits are loose objects, read here), else one git process asks."""
        how_then, _, rest = (last or "").partition(" ")
        old_head, _, tips_then = rest.partition(" ")
        same_tips = how_then == how and tips_then == f"{remote or '-'} {base}\n"
        if same_tips and _descends(self.cache / "objects", head, old_head):
            return False
        tips = [tip for tip in (remote, base) if tip is not None and tip != head]
        return bool(tips) and bool(self.git("rev-list", "--max-count=1", *tips, "--not", head))

    def incoming(self, head: str, step: _Step, how: SyncHow) -> Incoming | None:
        """What ``step`` brings in: None when nothing. In a rebase, commits of the remote branch whose
        change the local branch already has (the pre-rebase copies of its own commits) do not count."""
        if step.source == "branch" and how is SyncHow.REBASE:
            revs = ["--cherry-pick", "--left-only", "--no-merges", f"{step.tip}...{head}"]
        else:
            revs = [step.tip, "--not", head]
        listing = self.git("log", "-z", "--format=%h %s", *revs, raw=True)
        commits = [line for line in listing.split("\0") if line]
        if not commits:
            return None
        diff = ["diff", "--name-only", "-z", "--no-renames"]
        done = self.attempt(*diff, f"{head}...{step.tip}")  # from the merge-base
        files = done.stdout if done.returncode == 0 else self.git(*diff, head, step.tip, raw=True)
        names = sorted({name for name in files.split("\0") if name})
        return Incoming(step.source, step.label, len(commits), commits[:MAX_COMMITS], names[:MAX_FILES])

    def integrate(
        self,
        report: SyncReport,
        head: str,
        steps: list[_Step],
        base_sha: str | None,
        how: SyncHow,
        on_conflict: OnConflict,
    ) -> SyncReport:
        # the checkpoint's `git status` refreshes the index (stat data, its untracked cache): the bytes
        # before it are what a conflict or a failure puts back
        self.index_before = _read_bytes(self.gitdir / "index")
        try:
            checkpoint = self.workdirs.checkpoint(self.key, self.worktree)
            plan = self.plan(head, steps, base_sha, how, checkpoint, labels=on_conflict is OnConflict.AGENT)
        except GitError:
            self.put_back_index()
            raise
        if plan.conflict_in is not None:
            report.result, report.conflict_in, report.conflicts = "conflict", plan.conflict_in, plan.conflicts
            if on_conflict is OnConflict.STOP:
                self.put_back_index()
                report.base_sha = base_sha
                return report
            if plan.conflict_in != "uncommitted":
                return self.leave_for_agent(report, head, checkpoint, steps, base_sha, how)
            report.left_for_agent = True
        else:
            report.result = "integrated"
        overwritten = self.apply(head, checkpoint, plan)
        if overwritten:
            report.note = _join(report.note, f"ignored files replaced by tracked ones: {_names(overwritten)}")
        report.head_after = plan.target
        return report

    # -- computing in the object store -------------------------------------------------------------------

    def plan(
        self,
        head: str,
        steps: list[_Step],
        base_sha: str | None,
        how: SyncHow,
        checkpoint: str | None,
        labels: bool,
    ) -> _Plan:
        cur, cur_tree = head, None
        for step in steps:
            if how is SyncHow.MERGE:
                new, new_tree, conflicts = self.merge(cur, step)
            else:
                new, new_tree, conflicts = self.rebase(cur, step.tip, self.todo(cur, step, steps, base_sha))
            if conflicts:
                return _Plan(cur, conflict_in=step.source, conflicts=conflicts)
            cur, cur_tree = new, new_tree
        if checkpoint is None:
            return _Plan(cur, target_tree=cur_tree)
        cur_tree = cur_tree or self.cat([f"{cur}^{{tree}}"])[0][0]
        tree, conflicts = self.reapply(head, cur_tree, checkpoint, labels)
        return _Plan(cur, tree, "uncommitted" if conflicts else None, conflicts, target_tree=cur_tree)

    def based_on(self, cur: str, base_sha: str | None) -> bool:
        """Whether the branch's own commits start at ``base_sha`` (it is in the branch's history); else
        they start at the merge-base with the base's tip."""
        return bool(base_sha and _SHA.fullmatch(base_sha) and self.is_ancestor(base_sha, cur))

    def is_ancestor(self, older: str, newer: str) -> bool:
        done = self.attempt("merge-base", "--is-ancestor", older, newer)
        if done.returncode > 1:
            raise GitError(f"git merge-base failed: {done.stderr.strip()}")
        return done.returncode == 0

    def merge_tree(self, ours: str, theirs: str) -> tuple[str, list[str]]:
        """The merged tree and the conflicting files (a conflict still yields a tree, with markers)."""
        done = self.attempt("merge-tree", "--write-tree", "--name-only", "-z", "--no-messages", ours, theirs)
        if done.returncode > 1:
            raise GitError(f"git merge-tree failed: {' '.join(done.stderr.strip().splitlines()[-3:])}")
        fields = done.stdout.split("\0")
        conflicts = sorted({name for name in fields[1:] if name}) if done.returncode == 1 else []
        return fields[0].strip(), conflicts

    def merge(self, cur: str, step: _Step) -> tuple[str, str | None, list[str]]:
        """Merge ``step`` into ``cur``: the merge commit (a fast-forward: the tip), its tree (None: not
        known here) and the conflicting files."""
        if self.is_ancestor(cur, step.tip):
            return step.tip, None, []  # a fast-forward
        tree, conflicts = self.merge_tree(cur, step.tip)
        if conflicts:
            return cur, None, conflicts
        message = _merge_message(step, self.branch)
        ident = self.ident()
        body = f"tree {tree}\nparent {cur}\nparent {step.tip}\nauthor {ident}\ncommitter {ident}\n\n{message}"
        return self.defer(body, cur), tree, []

    def todo(self, cur: str, step: _Step, steps: list[_Step], base_sha: str | None) -> list[str]:
        """The commits a rebase of ``cur`` onto ``step`` replays, oldest first: the branch's own commits
        (merges left out, as ``git rebase`` does), less those whose change the new base already has.
        Onto the remote branch: not the base's commits (they would be copied onto a remote branch that
        lacks them; the base step brings them). Onto the base: from ``base_sha`` (or the merge-base)."""
        if step.source == "branch":
            others = [f"^{s.tip}" for s in steps if s.source == "base"]
        else:  # the symmetric difference already starts at the merge-base
            others = [f"^{base_sha}"] if self.based_on(cur, base_sha) else []
        revs = ["--reverse", "--topo-order", "--no-merges", "--right-only", "--cherry-pick"]
        return self.git("rev-list", *revs, f"{step.tip}...{cur}", *others).split()

    def rebase(self, cur: str, onto: str, todo: list[str]) -> tuple[str, str | None, list[str]]:
        """Replay ``todo`` onto ``onto`` as ``git rebase`` would (commits that become empty dropped): the
        new tip, its tree (None: not known here) and the conflicting files.

        Each pick is the merge-tree of the commit and a throw-away commit of the new tree whose parent is
        the commit's parent: their merge-base is that parent, so it is a cherry-pick."""
        if not todo:
            return onto, None, []
        commits, onto_tree = self.commits(todo, onto)
        new, new_tree = onto, onto_tree
        for commit in commits:
            if commit.parent:
                ours, theirs = self.write([_synthetic(new_tree, [commit.parent], "ours")])[0], commit.sha
            else:  # a root commit: a throw-away parent with the empty tree for both
                base = _synthetic(commit.parent_tree, [], "base")
                base_id = _object_id(base, new)
                made = [
                    base,
                    _synthetic(new_tree, [base_id], "ours"),
                    _synthetic(commit.tree, [base_id], "theirs"),
                ]
                ours, theirs = self.write(made)[1:]
            tree, conflicts = self.merge_tree(ours, theirs)
            if conflicts:
                return cur, None, conflicts
            if tree == new_tree and commit.tree != commit.parent_tree:
                continue  # its change is already there: dropped, as git rebase drops it
            new, new_tree = self.defer(self.replayed(commit, tree, new), new), tree
        return new, new_tree, []

    def commits(self, shas: list[str], onto: str) -> tuple[list[_Commit], str]:
        """The commits to replay (one ``cat-file --batch``) and the tree of ``onto``."""
        queries = [f"{onto}^{{tree}}"] + [q for sha in shas for q in (sha, f"{sha}^^{{tree}}")]
        objects = self.cat(queries)
        onto_tree = objects[0][0]
        found = []
        for i, sha in enumerate(shas):
            raw = objects[1 + 2 * i][1]
            parent_tree = objects[2 + 2 * i][0] or _empty_tree(sha)
            found.append(_parse_commit(sha, raw, parent_tree))
        return found, onto_tree

    def cat(self, queries: list[str]) -> list[tuple[str, bytes]]:
        """``git cat-file --batch``: per query its object id ("" when missing) and its content."""
        self.flush()
        done = subprocess.run(
            ["git", "cat-file", "--batch"],
            cwd=self.worktree,
            input="".join(f"{q}\n" for q in queries).encode(),
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise GitError(f"git cat-file failed: {done.stderr.decode(errors='replace').strip()}")
        out, at, found = done.stdout, 0, []
        for _ in queries:
            end = out.index(b"\n", at)
            header = out[at:end].decode().split()
            if header[-1] == "missing":
                found.append(("", b""))
                at = end + 1
                continue
            size = int(header[2])
            found.append((header[0], out[end + 1 : end + 1 + size]))
            at = end + 1 + size + 1
        return found

    def reapply(self, head: str, new_tree: str, checkpoint: str, labels: bool) -> tuple[str, list[str]]:
        """The uncommitted work (``checkpoint``, a commit on ``head``) re-applied on ``new_tree``: the
        resulting tree and the conflicting files (their conflict markers are in the tree). The merge-tree
        of the checkpoint and a throw-away commit of ``new_tree`` on ``head``: their merge-base is
        ``head``."""
        ours, theirs = self.write([_synthetic(new_tree, [head], "ours")])[0], checkpoint
        if not labels:
            return self.merge_tree(ours, theirs)
        for name, oid in zip(LABELS, (ours, theirs), strict=True):
            atomic_write_text(self.gitdir / name, f"{oid}\n")
        try:
            return self.merge_tree(*LABELS)
        except GitError:  # a git that will not read these pseudo-refs: commit ids as the labels
            return self.merge_tree(ours, theirs)
        finally:
            for name in LABELS:
                (self.gitdir / name).unlink(missing_ok=True)

    def replayed(self, commit: _Commit, tree: str, parent: str) -> bytes:
        head = f"tree {tree}\nparent {parent}\n".encode() + b"author " + commit.author + b"\n"
        return head + f"committer {self.ident()}\n".encode() + commit.extra + b"\n" + commit.message

    def ident(self) -> str:
        name = _clean_ident(self.git_env["GIT_COMMITTER_NAME"])
        email = _clean_ident(self.git_env["GIT_COMMITTER_EMAIL"])
        offset = time.localtime().tm_gmtoff // 60
        sign = "-" if offset < 0 else "+"
        return f"{name} <{email}> {int(time.time())} {sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"

    def defer(self, body: bytes | str, like: str) -> str:
        """Queue commit ``body`` to be written with the next object write (or before the next git
        command, which may need it); its id now (:func:`_object_id`, ``like``: an id of the repo)."""
        data = body if isinstance(body, bytes) else body.encode()
        self.pending.append(data)
        return _object_id(data, like)

    def flush(self) -> None:
        if self.pending:
            self.write([])

    def write(self, bodies: Sequence[bytes | str]) -> list[str]:
        """Write the queued commit objects and ``bodies`` (one ``hash-object`` for all); the ids of
        ``bodies``. A commit may name a parent written in the same call: :func:`_object_id` computes ids
        as git does (checked here)."""
        data = [*self.pending, *(b if isinstance(b, bytes) else b.encode() for b in bodies)]
        self.pending = []
        with tempfile.TemporaryDirectory(prefix="baton-sync-") as tmp:
            paths = []
            for i, body in enumerate(data):
                (Path(tmp) / str(i)).write_bytes(body)
                paths.append(f"{tmp}/{i}\n")
            args = [*ISOLATE, "hash-object", "-t", "commit", "-w", "--stdin-paths"]
            out = run_git(args, cwd=self.worktree, env=self.env, stdin="".join(paths)).split()
        if out != [_object_id(body, out[0]) for body in data]:
            raise GitError("git hash-object gave commit ids other than expected")
        return out[len(out) - len(bodies) :]

    # -- touching the worktree -----------------------------------------------------------------------

    def begin(self, head: str, checkpoint: str | None, targets: list[str]) -> dict[str, Any]:
        """Write the marker (after a copy of the index) before anything in the worktree changes."""
        if self.index_before is not None:
            atomic_write_bytes(self.gitdir / INDEX_COPY, self.index_before)
        marker = {
            "version": 1,
            "branch": self.branch,
            "head_before": head,
            "checkpoint": checkpoint,
            "index": self.index_before is not None,
            "targets": targets,
            "pid": os.getpid(),
            "started": time.time(),
        }
        atomic_write_text(self.gitdir / MARKER, json.dumps(marker))
        return marker

    def put_back_index(self) -> None:
        if self.index_before is not None and _read_bytes(self.gitdir / "index") != self.index_before:
            atomic_write_bytes(self.gitdir / "index", self.index_before)

    def add_target(self, marker: dict[str, Any], commit: str) -> None:
        """Name in the marker a commit the branch is about to point to (recovery recognises it)."""
        marker["targets"].append(commit)
        atomic_write_text(self.gitdir / MARKER, json.dumps(marker))

    def finish(self) -> None:
        for name in (MARKER, INDEX_COPY, *LABELS):
            (self.gitdir / name).unlink(missing_ok=True)

    def apply(self, head: str, checkpoint: str | None, plan: _Plan) -> list[str]:
        """Move the branch to the plan's commit and the worktree to its tree (only the files that
        differ), the index to the new HEAD. Returns the ignored files a tracked file replaced."""
        marker = self.begin(head, checkpoint, [plan.target])
        old, new = checkpoint or head, plan.tree or plan.target
        try:
            overwritten = self.ignored_in_the_way(old, new)
            self.prefetch(old, new)
            moves = f"update refs/heads/{self.branch} {plan.target} {head}\n"
            moves += self.checkpoint_move(plan.target, plan.target_tree, plan.tree)
            self.git("update-ref", "-m", "baton: sync with upstream", "--stdin", stdin=moves)
            checkout_changes(self.worktree, old, new)
            self.git("reset", "--quiet", "--mixed")
        except GitError:
            self.restore(marker)
            raise
        self.finish()
        return overwritten

    def prefetch(self, old: str, new: str) -> None:
        """In a partial clone, fetch in one batch, with the key's credentials, the blobs of ``new`` the
        cache lacks: :func:`checkout_changes` would have git fetch them one by one without them."""
        if "partialclone" not in (_read(self.cache / "config") or "").lower():
            return
        listing = self.git("rev-list", "--objects", "--no-object-names", "--missing=print", new, "--not", old)
        missing = [line[1:] for line in listing.split() if line.startswith("?")]
        if not missing:
            return
        flags = ["--no-tags", "--no-write-fetch-head", "--recurse-submodules=no", "--filter=blob:none"]
        try:
            run_git(
                [
                    *ISOLATE,
                    "-c",
                    "fetch.negotiationAlgorithm=noop",
                    "fetch",
                    "--quiet",
                    *flags,
                    "--stdin",
                    "origin",
                ],
                cwd=self.cache,
                env={**os.environ, **self.git_env},
                stdin="".join(f"{oid}\n" for oid in missing),
            )
        except GitError as exc:
            raise remote_error(self.key.repo, "fetch", exc) from exc

    def ignored_in_the_way(self, old: str, new: str) -> list[str]:
        """Paths ``new`` adds where the worktree has a file git ignores (it will be replaced)."""
        listing = self.git(
            "diff-tree", "-r", "-z", "--no-renames", "--diff-filter=A", "--name-only", old, new, raw=True
        )
        return [p for p in listing.split("\0") if p and os.path.lexists(self.worktree / p)]

    def checkpoint_move(self, target: str, target_tree: str | None, tree: str | None) -> str:
        """The ``update-ref --stdin`` line that keeps the key's checkpoint ref on the worktree's state:
        its uncommitted work (``tree``) as a commit on ``target``, or no checkpoint when there is none."""
        ref = self.workdirs.checkpoint_ref(self.key)
        if tree is None or tree == target_tree:
            return f"delete {ref}\n" if self.ref(ref) is not None else ""
        ident = self.ident()
        body = f"tree {tree}\nparent {target}\nauthor {ident}\ncommitter {ident}\n\n"
        body += f"baton checkpoint of {self.key}\n"
        return f"update {ref} {self.defer(body, target)}\n"

    def leave_for_agent(
        self,
        report: SyncReport,
        head: str,
        checkpoint: str | None,
        steps: list[_Step],
        base_sha: str | None,
        how: SyncHow,
    ) -> SyncReport:
        """Run the real merge / rebase in the worktree and leave it stopped at the conflict, the
        uncommitted work first committed on the branch so that it travels through."""
        marker = self.begin(head, checkpoint, [])
        try:
            cur = head
            if checkpoint is not None:
                cur = self.commit_wip(marker, head, checkpoint, steps)
                report.wip_commit = cur
            for step in steps:
                if not self.real_step(step, steps, cur, base_sha, how):
                    report.conflict_in = step.source
                    report.base_sha = step.tip if step.source == "base" else base_sha
                    break
                cur = self.git("rev-parse", "HEAD")
                self.add_target(marker, cur)
        except GitError:
            self.restore(marker)
            raise
        self.finish()
        report.in_progress = self.in_progress()
        report.head_after = self.git("rev-parse", "HEAD")
        if report.in_progress is None:  # git merged what merge-tree found conflicting
            report.result, report.conflicts, report.conflict_in = "integrated", [], None
            report.note = _join(report.note, "the uncommitted work was committed before the sync")
            return report
        listing = self.git("diff", "--name-only", "-z", "--diff-filter=U", raw=True)
        report.conflicts = sorted({p for p in listing.split("\0") if p}) or report.conflicts
        report.left_for_agent = True
        return report

    def commit_wip(self, marker: dict[str, Any], head: str, checkpoint: str, steps: list[_Step]) -> str:
        tree = self.cat([f"{checkpoint}^{{tree}}"])[0][0]
        ident = self.ident()
        message = f"baton: uncommitted work before syncing with {' and '.join(s.label for s in steps)}\n"
        wip = self.write([f"tree {tree}\nparent {head}\nauthor {ident}\ncommitter {ident}\n\n{message}"])[0]
        self.add_target(marker, wip)
        self.git(
            "update-ref",
            "-m",
            "baton: uncommitted work before a sync",
            f"refs/heads/{self.branch}",
            wip,
            head,
        )
        self.git("reset", "--quiet", "--mixed")  # the files are the commit's: the index follows
        return wip

    def real_step(
        self, step: _Step, steps: list[_Step], cur: str, base_sha: str | None, how: SyncHow
    ) -> bool:
        """One real ``git merge`` / ``git rebase`` in the worktree; False when it stopped at a conflict."""
        if how is SyncHow.MERGE:
            flags = [
                "--ff",
                "--no-edit",
                "--no-verify",
                "--no-autostash",
                "--no-log",
                "--no-stat",
                "--no-squash",
            ]
            done = self.attempt("merge", *flags, "-m", _merge_message(step, self.branch), step.ref)
        else:
            done = self.real_rebase(step, self.todo(cur, step, steps, base_sha))
        if done.returncode == 0:
            return True
        if self.in_progress() is not None:
            return False
        words = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise GitError(f"git {'merge' if how is SyncHow.MERGE else 'rebase'} failed: {' '.join(words[-3:])}")

    def real_rebase(self, step: _Step, todo: list[str]) -> subprocess.CompletedProcess[str]:
        """``git rebase -i`` whose to-do list is ``todo`` (what :meth:`plan` replayed): the same commits
        as the computed rebase, left stopped at the conflict for ``git rebase --continue``."""
        flags = [
            "--quiet",
            "--no-autostash",
            "--no-update-refs",
            "--no-autosquash",
            "--no-verify",
            "--empty=drop",
        ]
        with tempfile.TemporaryDirectory(prefix="baton-sync-") as tmp:
            (Path(tmp) / "todo").write_text("".join(f"pick {sha}\n" for sha in todo) or "noop\n")
            editor = f"cp {shlex.quote(str(Path(tmp) / 'todo'))}"
            self.env["GIT_SEQUENCE_EDITOR"] = editor
            try:
                return self.attempt("rebase", "--interactive", *flags, "--onto", step.tip, step.tip)
            finally:
                self.env["GIT_SEQUENCE_EDITOR"] = "true"

    # -- putting it back -------------------------------------------------------------------------------

    def read_marker(self) -> dict[str, Any] | None:
        """The marker: None when there is none, {} when it cannot be read."""
        try:
            data = json.loads((self.gitdir / MARKER).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}
        ok = (
            isinstance(data, dict)
            and isinstance(data.get("branch"), str)
            and isinstance(data.get("targets"), list)
        )
        ok = (
            ok
            and isinstance(data.get("head_before"), str)
            and _SHA.fullmatch(data["head_before"]) is not None
        )
        return data if ok else {}

    def interrupted(self, marker: dict[str, Any]) -> bool:
        """Whether the worktree is where a killed sync could have left it (else the marker is stale):
        an operation in progress, HEAD detached (a rebase), or the branch where the sync had put it."""
        head = self.head_ref()
        if self.in_progress() is not None or head is None:
            return True
        if head != f"refs/heads/{self.branch}":
            return False
        return self.ref(head) in {marker["head_before"], *marker["targets"]}

    def restore(self, marker: dict[str, Any]) -> None:
        """The branch, HEAD, files and index as they were when ``marker`` was written."""
        head, checkpoint = marker["head_before"], marker.get("checkpoint")
        self.clear_operation()
        self.git("symbolic-ref", "HEAD", f"refs/heads/{self.branch}")
        ref = self.workdirs.checkpoint_ref(self.key)
        moves = f"update refs/heads/{self.branch} {head}\n"
        moves += f"update {ref} {checkpoint}\n" if checkpoint else f"delete {ref}\n"
        self.git("update-ref", "-m", "baton: undo an interrupted sync", "--stdin", stdin=moves)
        self.git("reset", "--hard", "--quiet", head)
        if checkpoint:
            checkout_changes(self.worktree, head, checkpoint)
        self.remove_leftovers(checkpoint or head)
        if marker.get("index") and (self.gitdir / INDEX_COPY).is_file():
            os.replace(self.gitdir / INDEX_COPY, self.gitdir / "index")
        self.finish()

    def clear_operation(self) -> None:
        """Forget a merge or rebase left half-done (its files only; the worktree is reset after)."""
        lock = self.gitdir / "index.lock"
        deadline = time.monotonic() + 2.0
        while lock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # a git process of the killed sync may still be finishing
        lock.unlink(missing_ok=True)
        for name in _LEFTOVERS:
            (self.gitdir / name).unlink(missing_ok=True)
        for name in _STATE_DIRS:
            shutil.rmtree(self.gitdir / name, ignore_errors=True)

    def remove_leftovers(self, state: str) -> None:
        """Delete the untracked files that ``state`` (the worktree before the sync) did not have: the
        files a killed checkout wrote before it could record them in the index."""
        untracked = self.git("ls-files", "--others", "--exclude-standard", "-z", raw=True).split("\0")
        kept = set(self.git("ls-tree", "-r", "--name-only", "-z", state, raw=True).split("\0"))
        for name in untracked:
            if not name or name.endswith("/") or name in kept:
                continue
            path = self.worktree / name
            path.unlink(missing_ok=True)
            parent = path.parent
            while parent != self.worktree and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent


# -- pure helpers ------------------------------------------------------------------------------------


def _peek_local(path: Path, names: list[str]) -> dict[str, str | None] | None:
    """The commits branches ``names`` point to in the local repository at ``path``, read from its files
    (loose refs, then packed-refs); None when its layout is one this does not read (a linked worktree,
    reftable, a symbolic ref): then git fetches."""
    gitdir = path / ".git" if (path / ".git").is_dir() else path
    if not (gitdir / "HEAD").is_file() or (gitdir / "reftable").exists() or (gitdir / "commondir").exists():
        return None
    try:
        packed = (gitdir / "packed-refs").read_text()
    except FileNotFoundError:
        packed = ""
    except OSError:
        return None
    found: dict[str, str | None] = {}
    for name in names:
        ref = f"refs/heads/{name}"
        try:
            value: str | None = (gitdir / ref).read_text().strip()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            at = packed.find(f" {ref}\n")
            value = packed[packed.rfind("\n", 0, at) + 1 : at] if at >= 0 else None
        except OSError:
            return None
        if value is not None and not _SHA.fullmatch(value):
            return None
        found[name] = value
    return found


def _descends(objects: Path, new: str, old: str, limit: int = 64) -> bool:
    """Whether commit ``old`` is ``new`` or an ancestor of it, found by reading loose commit objects
    only (at most ``limit``); False also when that does not tell (a packed commit): then git decides."""
    todo, visited = [new], set[str]()
    while todo and len(visited) < limit:
        sha = todo.pop()
        if sha == old:
            return True
        if sha in visited or not _SHA.fullmatch(sha):
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


def _synthetic(tree: str, parents: list[str], what: str) -> bytes:
    """A throw-away commit of ``tree``: the merge-tree of two of them sharing one parent is a 3-way merge
    with that parent's tree as the base, which is what a cherry-pick is."""
    lines = [f"tree {tree}", *(f"parent {p}" for p in parents)]
    lines += ["author baton <baton@localhost> 0 +0000", "committer baton <baton@localhost> 0 +0000"]
    return ("\n".join(lines) + f"\n\nbaton sync: {what}\n").encode()


def _object_id(body: bytes, like: str) -> str:
    """The id git gives commit ``body`` (SHA-1, or SHA-256 in a repository whose ids are that long)."""
    algorithm = hashlib.sha256 if len(like) == 64 else hashlib.sha1
    return algorithm(b"commit %d\0" % len(body) + body).hexdigest()


def _empty_tree(like: str) -> str:
    algorithm = hashlib.sha256 if len(like) == 64 else hashlib.sha1
    return algorithm(b"tree 0\0").hexdigest()


def _parse_commit(sha: str, raw: bytes, parent_tree: str) -> _Commit:
    header, _, message = raw.partition(b"\n\n")
    tree, author, extra, parent = "", b"", b"", None
    for line in header.split(b"\n"):
        if line.startswith(b"tree "):
            tree = line[5:].decode()
        elif line.startswith(b"parent ") and parent is None:
            parent = line[7:].decode()
        elif line.startswith(b"author "):
            author = line[7:]
        elif line.startswith(b"encoding "):
            extra = line + b"\n"
    if not tree or not author:
        raise GitError(f"commit {sha[:12]} cannot be read")
    return _Commit(sha, tree, parent, parent_tree, author, extra, message)


def _clean_ident(text: str) -> str:
    """A name or e-mail as git writes it into a commit: without the characters that would break it."""
    return re.sub(r"[<>\n\r\0]", "", text).strip(" .,:;'\"") or "baton"


def _merge_message(step: _Step, branch: str) -> str:
    what = "changes pushed to" if step.source == "branch" else "the base"
    return f"Merge {step.label} into {branch}\n\nbaton: synced with {what} {step.label} before a turn.\n"


def _short_ref(ref: str) -> str:
    for prefix in ("refs/remotes/", "refs/heads/", "refs/tags/", "refs/"):
        if ref.startswith(prefix):
            return ref.removeprefix(prefix)
    return ref


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _join(*notes: str | None) -> str | None:
    found = [n for n in notes if n]
    return "; ".join(found) if found else None


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _files(files: list[str]) -> str:
    return _plural(len(files), "file") if len(files) < MAX_FILES else f"{MAX_FILES}+ files"


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _named(branch: str | None) -> str:
    return f" {branch}" if branch else ""


def _where(report: SyncReport) -> str:
    if report.conflict_in == "uncommitted":
        return "with the uncommitted work"
    source = next((i.ref for i in report.incoming if i.source == report.conflict_in), None)
    return f"with {source}" if source else ""


def _listing(item: Incoming) -> str:
    more = f" (and {item.count - len(item.commits)} more)" if item.count > len(item.commits) else ""
    commits = "; ".join(item.commits[:5]) + (" ..." if len(item.commits) > 5 else "")
    files = _names(item.files, 10)
    return f": {commits}{more}" + (f"; files: {files}" if files else "")


def _outcome(report: SyncReport) -> list[str]:
    """The lines of :meth:`SyncReport.prompt_text` after the list of what came in."""
    if report.result == "integrated":
        done = (
            "merged into your branch"
            if report.how == SyncHow.MERGE
            else "your commits now sit on top of them"
        )
        keep = " Your uncommitted changes are still uncommitted." if report.wip_commit is None else ""
        return [f"Baton brought that in before this turn: {done}.{keep}"]
    files = _names(report.conflicts, 20)
    if not report.left_for_agent:
        where = _where(report) or "with what came in"
        return [
            f"It was NOT integrated: it conflicts {where} in {files}. "
            "Your worktree was left exactly as it was."
        ]
    if report.conflict_in == "uncommitted":
        return [
            "The new commits are in your branch, but re-applying your uncommitted changes on top of them "
            f"conflicted in {files}. The conflict markers are in those files: the side marked "
            "<<<<<<< SYNCED_HEAD is the synced branch, the side marked >>>>>>> UNCOMMITTED_HEAD your "
            "uncommitted change. No git operation is in progress: edit the files to resolve them."
        ]
    lines = []
    if report.wip_commit:
        lines.append(
            "Your uncommitted work was first committed on your branch as "
            f'"baton: uncommitted work before syncing with ..." ({report.wip_commit[:12]}) so that it '
            "travels through."
        )
    source = next((i.ref for i in report.incoming if i.source == report.conflict_in), "what came in")
    if report.in_progress == "merge":
        lines.append(
            f"Baton started merging {source} and the merge stopped at a conflict in {files}. Resolve the "
            "conflict markers in those files, then `git add` them and `git commit --no-edit` to finish it."
        )
    else:
        lines.append(
            f"Baton started rebasing your commits onto {source} and the rebase stopped at a conflicting "
            f"commit in {files}. Resolve the conflict markers in those files, `git add` them, then "
            "`GIT_EDITOR=true git rebase --continue` (repeat for each commit that stops; without "
            "GIT_EDITOR=true git opens an editor)."
        )
    later = [i.ref for i in report.incoming if i.source != report.conflict_in and i.source == "base"]
    if report.conflict_in == "branch" and later:
        lines.append(f"{later[0]} is brought in at the next sync, once that is finished.")
    return lines
