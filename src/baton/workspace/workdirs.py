"""Workdirs: one shared cache clone per repo and one worktree per key at a stable path
(:class:`Workdirs`): the cache ``repos/<slug>.git`` (bare; a partial clone for a URL), the worktree
``worktrees/<agent>/<slug>/<thread>`` on ``baton/<agent>/<thread>``, reused as is when it exists and
else rebuilt on its branch with its last checkpoint re-applied (:meth:`Workdirs.prepare_worktree`), and
the key's checkpoint and shared refs in the cache. baton's git in a worktree runs only through
:meth:`Workdirs.worktree_git`, and git's credentials come from ``bin/git-askpass``, which prints
``$BATON_GIT_TOKEN``: the token never appears in a URL, argv, git config, a log or the store.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from baton.errors import BadInput, GitError
from baton.files import atomic_write_bytes, atomic_write_text, make_private_dir
from baton.keys import Key, Repo
from baton.settings import Settings
from baton.workspace import badrefs, checkpoints, credentials, gitlinks, nofollow, wtpaths
from baton.workspace.cow import gitindex, pristine
from baton.workspace.du import disk_usage
from baton.workspace.gitcmd import (
    WorktreeGit,
    checkout_changes,
    commit_of,
    parallel_checkout,
    ref_exists,
    remote_error,
    run_git,
)
from baton.workspace.locks import file_lock
from baton.workspace.wtpaths import remove_empty_parents

log = logging.getLogger("baton.workspace")

# run_git moved to baton.workspace.gitcmd; still exported here for the callers that import it from this module
__all__ = ["ASKPASS", "Workdirs", "Worktree", "branch_for", "disk_usage", "remove_empty_parents", "run_git"]

ASKPASS = """#!/bin/sh
# baton's git credential helper: the token comes from the environment, never from argv or disk.
case "$1" in
  Username*) printf '%s\\n' "${BATON_GIT_USERNAME:-x-access-token}" ;;
  *) printf '%s\\n' "${BATON_GIT_TOKEN:-}" ;;
esac
"""


def branch_for(key: Key) -> str:
    return f"baton/{key.agent}/{key.thread}"


@dataclass(frozen=True)
class Worktree:
    """What :meth:`Workdirs.prepare_worktree` found or made: enough to undo exactly what it made."""

    path: Path
    built: bool  # the worktree directory was (re)built by this call (False: it existed and was reused)
    new_branch: str | None = None  # the branch this call created; None when the branch already existed
    start: str | None = None  # the commit that new branch was created at
    note: str | None = None  # what the run should be told (a broken worktree salvaged and rebuilt)


@dataclass
class Workdirs:
    """The cache clones and worktrees of one ``BATON_HOME``.

    - Cache: ``repos/<slug>.git``, bare; a partial clone (``--filter=blob:none``) for remote URLs, a
      local clone (hard-linked objects) for local paths; fetched under a per-repo lock into
      ``refs/remotes/origin/*`` so fetches never touch the branches worktrees have checked out.
    - Worktree: ``worktrees/<agent>/<slug>/<thread>`` on ``baton/<agent>/<thread>``. The path never
      changes, because agents key their transcripts by directory. An existing worktree is reused as is
      (no fetch: the fast path); a lost one is rebuilt on its branch and its last checkpoint
      re-applied. A new one is a reflinked copy of a pristine checkout where the volume clones files
      (:mod:`baton.workspace.cow.pristine`), else ``git worktree add``; what may be found at the path
      before a rebuild is :mod:`baton.workspace.wtpaths`'s. baton's git there never follows the
      agent-writable ``.git`` file or ``commondir``: it runs through :meth:`worktree_git`
      (:mod:`baton.workspace.gitlinks`), and a worktree whose admin dir is lost is checkpointed from
      the cache clone itself and rebuilt (:meth:`prepare_worktree`); a file or link found at a
      worktree's path is moved under ``archive/`` (never deleted, never followed).
    - Checkpoint: the worktree's uncommitted state (tracked and untracked, respecting .gitignore) as a
      commit on top of HEAD, under ``refs/baton/checkpoints/<agent>/<thread>`` in the cache, built
      with a throw-away index so the worktree's own index is untouched
      (:mod:`baton.workspace.checkpoints`).
    - Parked: ``refs/baton/parked/<agent>/<thread>`` names the commit where the key's worktree was
      detached from its branch because another key of this home writes that branch now
      (:mod:`baton.workspace.parking`, :mod:`baton.sync.sharing`); kept when the worktree is removed
      with its checkpoint, so that a rebuild re-applies that checkpoint on the branch's new tip.
    - Shared checkpoint: ``refs/baton/shared/<agent>/<thread>`` in the cache names the key's state as
      the store last had it from or gave to this home (:mod:`baton.workspace.portable`): a store record
      naming another commit means another machine has run the key since. The bundles that carry a
      checkpoint between machines, and when they go, are :mod:`baton.workspace.portable`'s.
    - Credentials: git asks ``bin/git-askpass`` (created here: :data:`ASKPASS`), which prints
      ``$BATON_GIT_TOKEN``. (The fetches of a sync before a turn send it up front instead, as an
      ``http.<url>.extraHeader`` in that git process's environment: one HTTP round trip fewer; see
      :mod:`baton.sync.fetch`.)
    """

    settings: Settings

    @property
    def home(self) -> Path:
        return self.settings.home

    def cache_path(self, repo: Repo) -> Path:
        return self.home / "repos" / f"{repo.slug}.git"

    def worktree_path(self, key: Key) -> Path:
        return self.home / "worktrees" / key.agent / key.repo.slug / key.thread

    def checkpoint_ref(self, key: Key) -> str:
        return f"refs/baton/checkpoints/{key.agent}/{key.thread}"

    def shared_ref(self, key: Key) -> str:
        return f"refs/baton/shared/{key.agent}/{key.thread}"

    def parked_ref(self, key: Key) -> str:
        """Where the key's worktree was parked off its branch for another key
        (:mod:`~baton.workspace.parking`)."""
        return f"refs/baton/parked/{key.agent}/{key.thread}"

    def git_env(self, agent: str, url: str | None = None) -> dict[str, str]:
        """Environment for git and for the agent: identity per agent, credentials via askpass; with the
        remote's ``url``, baton's own git gets the credentials a source gives for it
        (:mod:`baton.workspace.credentials`: a GitHub App's token), never the agent."""
        askpass = self.home / "bin" / "git-askpass"
        if not askpass.is_file():
            atomic_write_text(askpass, ASKPASS, mode=0o700)
        name = self.settings.git_user_name.format(agent=agent)
        email = self.settings.git_user_email.format(agent=agent)
        return {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
            "GIT_ASKPASS": str(askpass),
            "GIT_TERMINAL_PROMPT": "0",
            **(credentials.env_for(url) if url else {}),
        }

    def process_env(self, agent: str, url: str | None = None) -> dict[str, str]:
        """The environment of baton's own git processes for ``agent``'s keys (with the remote ``url``'s
        credentials, when a source gives them)."""
        return {**os.environ, **self.git_env(agent, url)}

    # -- cache clones -------------------------------------------------------------------------------

    def ensure_cache(self, repo: Repo, agent: str, fetch: bool = True) -> Path:
        """Clone the repo into the cache if needed, else fetch it (under the repo's lock)."""
        path = self.cache_path(repo)
        env = self.process_env(agent, repo.url)
        with file_lock(self.home, f"repo:{repo.slug}"):
            if not (path / "HEAD").is_file():
                self._clone(repo, path, env)
                return path
            gitlinks.drop_unfinished(path, self.home / "worktrees")
            gitlinks.drop_alternates(path)
            if fetch:
                self._fetch(repo, path, env, "--prune")
        return path

    def _fetch(self, repo: Repo, cache: Path, env: dict[str, str], *flags: str) -> None:
        """``git fetch`` into the cache (a ref naming no object healed first: :mod:`badrefs`)."""
        try:
            badrefs.fetch_healing(
                cache, lambda: run_git(["fetch", *flags, "--quiet", "origin"], cwd=cache, env=env)
            )
        except GitError as exc:
            raise remote_error(repo, "fetch", exc) from exc

    def _clone(self, repo: Repo, path: Path, env: dict[str, str]) -> None:
        make_private_dir(path.parent)  # BATON_HOME 0700 too, when this clone is the first thing in it
        tmp = Path(tempfile.mkdtemp(prefix=".clone-", dir=path.parent))
        try:
            args = ["clone", "--bare", "--quiet"]
            if not repo.local:
                args.append("--filter=blob:none")
            try:
                run_git([*args, "--", repo.url, str(tmp)], env=env)
            except GitError as exc:
                raise remote_error(repo, "clone", exc) from exc
            run_git(["config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"], cwd=tmp)
            self._fetch(repo, tmp, env)
            _require_commits(tmp, repo)  # before the clone is kept: nothing is written for an empty repo
            tmp.replace(path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            remove_empty_parents(path.parent, self.home / "repos")

    def default_base(self, cache: Path) -> str:
        head = run_git(["symbolic-ref", "--short", "HEAD"], cwd=cache)
        remote = f"refs/remotes/origin/{head}"
        try:
            run_git(["rev-parse", "--verify", "--quiet", remote], cwd=cache)
            return remote
        except GitError:
            return f"refs/heads/{head}"

    # -- worktrees ----------------------------------------------------------------------------------

    def ensure_worktree(self, key: Key, branch: str, base: str | None) -> tuple[Path, bool]:
        """Return the key's worktree and whether it was (re)built now (:meth:`prepare_worktree`)."""
        made = self.prepare_worktree(key, branch, base)
        return made.path, made.built

    def prepare_worktree(self, key: Key, branch: str, base: str | None, fetch: bool = True) -> Worktree:
        """The key's worktree at its stable path on ``branch``: reused when it exists, else (re)built —
        on the branch if it exists (with its last checkpoint re-applied), else on a new branch from
        ``base``. The result says what this call made, so :meth:`discard_new_worktree` can undo it.
        ``fetch=False``: the caller has just fetched the cache. A worktree whose admin dir is lost
        (broken) is first checkpointed from the cache clone itself, then rebuilt (``note`` says so)."""
        path = self.worktree_path(key)
        wt = self.worktree_git(key)
        if wt is not None:
            gitlinks.ensure_head(wt, branch)
            return Worktree(path, built=False)
        cache = self.ensure_cache(key.repo, key.agent, fetch=fetch)
        env = self.process_env(key.agent, key.repo.url)  # a partial clone fetches blobs on checkout
        with file_lock(self.home, f"repo:{key.repo.slug}"):
            note = self._salvage(key, cache, branch, env)
            # a half-made directory without .git, salvaged just now, or not a directory at all
            note = _joined(note, self._clear(key))
            pristine.clear_stages(path)  # a killed copy-on-write build's leftovers: never trusted
            run_git(["worktree", "prune"], cwd=cache)
            gitlinks.drop(cache, key)  # a stale one would claim the branch
            path.parent.mkdir(parents=True, exist_ok=True)
            made, wt, head = self._add_worktree(key, cache, branch, base, env)
            note = _joined(note, self._restore_checkpoint(key, wt, head))
        return dataclasses.replace(made, note=note)

    def _add_worktree(
        self, key: Key, cache: Path, branch: str, base: str | None, env: dict[str, str]
    ) -> tuple[Worktree, WorktreeGit, str]:
        """Make the key's worktree on ``branch`` (created when missing: from the remote's branch of that
        name, a person's PR, as a fresh clone has it; else from ``base``): a reflinked copy
        of a pristine checkout where the file system allows it (:mod:`baton.workspace.cow.pristine`),
        else ``git worktree add``. Returns what was made, its git and the commit checked out."""
        path = self.worktree_path(key)
        made = Worktree(path, built=True)
        commit = commit_of(cache, f"refs/heads/{branch}")
        if commit is None:
            commit = _remote_head(cache, branch) or run_git(
                ["rev-parse", f"{self._resolve_base(cache, base)}^{{commit}}"], cwd=cache
            )
            run_git(["branch", "--no-track", branch, commit], cwd=cache, env=env)
            made = Worktree(path, built=True, new_branch=branch, start=commit)
        adopt = False
        if self.settings.reflink != "off" and pristine.usable(cache, path.parent):
            try:
                return made, pristine.make_worktree(cache, path, key, branch, commit, env), commit
            except pristine.NoPristine:
                adopt = True  # checked out now; the pristine checkout made from it in the background
            except pristine.CowUnavailable as exc:
                log.warning("%s; made with git worktree add instead", exc)
        before = gitlinks.names(cache)
        run_git([*parallel_checkout(), "worktree", "add", "--quiet", str(path), branch], cwd=cache, env=env)
        wt = gitlinks.claim(cache, before, path, key)
        _settle_index(wt, len(commit) // 2)
        if adopt:
            pristine.adopt_later(cache, commit, path, env)
        return made, wt, commit

    def worktree_git(self, key: Key) -> WorktreeGit | None:
        """The git of the key's worktree, its links to its admin dir repaired (see
        :mod:`baton.workspace.gitlinks`); None when there is no worktree or it is broken (no admin dir
        of its own). The only way baton runs git in a worktree. Not to be called holding the repo's lock."""
        path, cache = self.worktree_path(key), self.cache_path(key.repo)
        if not gitlinks.is_real_dir(path):
            return None
        admin = gitlinks.find(cache, key)
        if admin is None and gitlinks.names(cache):
            with file_lock(self.home, f"repo:{key.repo.slug}"):
                admin = gitlinks.adopt(cache, path, key)
        return None if admin is None else gitlinks.repair(WorktreeGit(path, admin, cache))

    def salvage_broken(self, key: Key, branch: str) -> str | None:
        """Checkpoint a broken worktree's files on ``branch``'s tip and remove it (:meth:`_salvage`),
        for a caller about to move the branch; a note for the run, None when it was not broken."""
        path, cache = self.worktree_path(key), self.cache_path(key.repo)
        if not os.path.lexists(path) or self.worktree_git(key) is not None:
            return None
        with file_lock(self.home, f"repo:{key.repo.slug}"):
            note = _joined(self._salvage(key, cache, branch, self.process_env(key.agent)), self._clear(key))
            run_git(["worktree", "prune"], cwd=cache)
            gitlinks.drop(cache, key)
        return note

    def _salvage(self, key: Key, cache: Path, branch: str, env: dict[str, str]) -> str | None:
        """A broken worktree's files as the key's checkpoint (:func:`wtpaths.salvage`)."""
        return wtpaths.salvage(cache, self.worktree_path(key), key, branch, self.checkpoint_ref(key), env)

    def _clear(self, key: Key) -> str | None:
        """Empty the key's worktree path before a rebuild (:func:`wtpaths.clear`)."""
        return wtpaths.clear(self.home, key, self.worktree_path(key))

    def discard_new_worktree(self, key: Key, made: Worktree) -> None:
        """Undo :meth:`prepare_worktree` when the run finds, after it, that it cannot go on: remove the
        worktree it built, and the branch it created while that still points where it was created (a
        commit made since is never thrown away). A reused worktree and a pre-existing branch are kept."""
        if not made.built:
            return
        cache = self.cache_path(key.repo)
        with file_lock(self.home, f"repo:{key.repo.slug}"):
            shutil.rmtree(made.path, ignore_errors=True)
            run_git(["worktree", "prune"], cwd=cache)
            gitlinks.drop(cache, key)
            if made.new_branch and made.start:
                ref = f"refs/heads/{made.new_branch}"
                if commit_of(cache, ref) == made.start:
                    run_git(["update-ref", "-d", ref, made.start], cwd=cache)
        remove_empty_parents(made.path.parent, self.home / "worktrees")

    def _resolve_base(self, cache: Path, base: str | None) -> str:
        if base is None:
            ref = self.default_base(cache)
            if not ref_exists(cache, ref):  # the clone has commits, but not on its default branch
                name = ref.removeprefix("refs/remotes/origin/").removeprefix("refs/heads/")
                raise BadInput(
                    f"the repository's default branch {name!r} has no commits: commit, or give --base"
                )
            return ref
        for candidate in (f"refs/remotes/origin/{base}", base):
            if ref_exists(cache, candidate):
                return candidate
        raise BadInput(f"base {base!r} is not a branch, tag or commit of the repository")

    def checkpoint(self, key: Key, worktree: Path | None = None) -> str | None:
        """Record the key's worktree's uncommitted state; the checkpoint commit, or None if clean or
        there is no usable worktree (:func:`~baton.workspace.checkpoints.take`). ``worktree``: always
        the key's own (its callers name it)."""
        return checkpoints.take(self, key)

    @staticmethod
    def read_ref(cache: Path, ref: str) -> str | None:
        """The commit ``ref`` names in ``cache``, without a git process (:func:`nofollow.read_ref`)."""
        return nofollow.read_ref(cache, ref)

    def catch_up(
        self,
        key: Key,
        branch: str,
        since: tuple[str, str] | None = None,
        target: tuple[str, str] | None = None,
    ) -> None:
        """Bring the key's existing worktree to ``branch``'s tip with the key's checkpoint re-applied,
        after :mod:`~baton.workspace.portable` moved them (:func:`~baton.workspace.checkpoints.catch_up`)."""
        checkpoints.catch_up(self, key, branch, since, target)

    def head_commit(self, key: Key, worktree: Path | None = None) -> str | None:
        """The commit the key's worktree has checked out: its HEAD file and the cache's ref, read
        without a git process when they are plain (git's answer otherwise). ``worktree``: always the
        key's own."""
        wt = self.worktree_git(key)
        head = None if wt is None else wt.head()
        if wt is None or head is None:
            return None
        if head.startswith("ref: refs/heads/"):
            found = self.read_ref(self.cache_path(key.repo), head.removeprefix("ref: "))
            if found is not None:
                return found
        return wt.commit_of("HEAD")

    def _restore_checkpoint(self, key: Key, wt: WorktreeGit, head: str) -> str | None:
        """Re-apply the key's checkpoint to its worktree, a fresh checkout of ``head``: as it is when it
        sits on ``head``; on top of ``head`` when it was taken where the worktree was parked (another key
        of this home wrote the shared branch on while it was parked and then removed: closed, evicted;
        :func:`~baton.workspace.checkpoints.reapply`); else not (the key's own history moved on since,
        so it no longer applies). A note when it was re-applied on a new tip, or could not be."""
        checkpoint = self.read_ref(wt.common, self.checkpoint_ref(key))
        parked = self.read_ref(wt.common, self.parked_ref(key))
        parent = commit_of(wt.common, f"{checkpoint}^") if checkpoint else None
        note = None
        if checkpoint is not None and parent == head:
            checkout_changes(wt, head, checkpoint)  # a fresh checkout of HEAD: only what differs
        elif checkpoint is not None and parent is not None and parent == parked:
            note = checkpoints.reapply(self, key, wt, head, checkpoint, parent)
        # else none, or the key's own history moved on since: that checkpoint no longer applies
        if parked is not None:  # rebuilt on its branch: parked no more
            run_git(["update-ref", "-d", self.parked_ref(key), parked], cwd=wt.common)
        return note

    def remove_worktree(self, key: Key, branch: str | None = None) -> bool:
        """Remove the key's worktree (and ``branch`` and the checkpoint, when a branch is given); True if a
        worktree existed. Removes work without keeping it: archive first (:mod:`baton.workspace.archives`)."""
        existed = self.remove_worktree_dir(key)
        if branch is not None:
            self.delete_branch(key.repo, branch)
            self.drop_checkpoint(key)
        return existed

    def remove_worktree_dir(self, key: Key) -> bool:
        """Delete the key's worktree directory (anything else at its path is archived: :meth:`_clear`) and
        git's record of it; True if something was there."""
        path = self.worktree_path(key)
        cache = self.cache_path(key.repo)
        existed = os.path.lexists(path)
        with file_lock(self.home, f"repo:{key.repo.slug}"):
            self._clear(key)
            if (cache / "HEAD").is_file():
                run_git(["worktree", "prune"], cwd=cache)
                gitlinks.drop(cache, key)  # pruned unless its gitdir was made to name something else
        remove_empty_parents(path.parent, self.home / "worktrees")
        return existed

    def delete_branch(self, repo: Repo, branch: str, expected: str | None = None) -> bool:
        """Delete ``branch`` from the cache (only while it is at ``expected``, when given); True if it
        existed. git refuses while a worktree has it checked out."""
        cache = self.cache_path(repo)
        ref = f"refs/heads/{branch}"
        tip = commit_of(cache, ref) if (cache / "HEAD").is_file() else None
        if tip is None:
            return False
        with file_lock(self.home, f"repo:{repo.slug}"):
            run_git(["update-ref", "-d", ref, expected or tip], cwd=cache)
        return True

    def drop_checkpoint(self, key: Key) -> bool:
        """Delete the key's checkpoint ref (and its shared and parked ones); True if there was a
        checkpoint."""
        cache = self.cache_path(key.repo)
        if not (cache / "HEAD").is_file():
            return False
        if commit_of(cache, self.parked_ref(key)) is not None:
            run_git(["update-ref", "-d", self.parked_ref(key)], cwd=cache)
        if commit_of(cache, self.shared_ref(key)) is not None:
            run_git(["update-ref", "-d", self.shared_ref(key)], cwd=cache)
        if commit_of(cache, self.checkpoint_ref(key)) is None:
            return False
        run_git(["update-ref", "-d", self.checkpoint_ref(key)], cwd=cache)
        return True

    def branch_worktrees(self, repo: Repo, branch: str) -> list[Path]:
        """The worktrees of the repo's cache that have ``branch`` checked out (existing directories)."""
        cache = self.cache_path(repo)
        if not (cache / "HEAD").is_file():
            return []
        listing = run_git(["worktree", "list", "--porcelain", "-z"], cwd=cache)
        paths = []
        for block in listing.split("\0\0"):
            fields = dict(f.partition(" ")[::2] for f in block.split("\0") if f)
            if fields.get("branch") == f"refs/heads/{branch}" and Path(fields["worktree"]).exists():
                paths.append(Path(fields["worktree"]))
        return paths


def _settle_index(wt: WorktreeGit, oid_size: int) -> None:
    """Settle the racily clean entries of a checkout just made (:func:`gitindex.backdate`), so that
    git's next ``status`` does not re-read every file; when it cannot, git re-reads them, as before."""
    index = wt.admin / "index"
    try:
        st = os.lstat(index)
        settled, moved = gitindex.backdate(nofollow.read_regular(index), wt.path, st.st_mtime_ns, oid_size)
        if moved:
            atomic_write_bytes(index, settled, mode=stat.S_IMODE(st.st_mode))
    except (OSError, ValueError) as exc:
        log.debug("the index of %s stays as git wrote it: %s", wt.path, exc)


def _remote_head(cache: Path, branch: str) -> str | None:
    """The commit the remote's ``branch`` is at, as the cache last fetched it (None: the remote has no
    such branch). A bare clone copies the remote's branches as its own, a fetch only into
    ``refs/remotes/origin/*``: a branch made after the clone is there, and starts there."""
    return commit_of(cache, f"refs/remotes/origin/{branch}")


def _joined(*notes: str | None) -> str | None:
    return "; ".join(n for n in notes if n) or None


def _require_commits(clone: Path, repo: Repo) -> None:
    """BadInput for a repository without a single commit: nothing to start a worktree from (else
    git's own ``ambiguous argument 'refs/heads/main^{commit}'``, exit 1)."""
    if not run_git(["for-each-ref", "--count=1", "--format=%(refname)", "refs/heads"], cwd=clone):
        where = repo.url if repo.local else repo.slug  # a URL is the user's; the slug is safe to print
        raise BadInput(f"the repository {where} has no commits yet: make a first commit, then run again")
