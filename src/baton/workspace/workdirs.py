"""Workdirs: one shared cache clone per repo and one worktree per key at a stable path.

- Cache: ``repos/<slug>.git``, bare; a partial clone (``--filter=blob:none``) for remote URLs, a local
  clone (hard-linked objects) for local paths; fetched under a per-repo lock into
  ``refs/remotes/origin/*`` so fetches never touch the branches worktrees have checked out.
- Worktree: ``worktrees/<agent>/<slug>/<thread>`` on ``baton/<agent>/<thread>``. The path never
  changes, because agents key their transcripts by directory. An existing worktree is reused as is
  (no fetch: the fast path); a lost one is rebuilt on its branch and its last checkpoint re-applied.
- Checkpoint: the worktree's uncommitted state (tracked and untracked, respecting .gitignore) as a
  commit on top of HEAD, under ``refs/baton/checkpoints/<agent>/<thread>`` in the cache, built with a
  throw-away index so the worktree's own index is untouched.
- Shared checkpoint: ``refs/baton/shared/<agent>/<thread>`` in the cache names the key's state as the
  store last had it from or gave to this home (:mod:`baton.workspace.portable`): a store record naming another
  commit means another machine has run the key since. The bundles that carry a checkpoint between
  machines are made and fetched here; deciding when is :mod:`baton.workspace.portable`'s job.
- Credentials: git asks ``bin/git-askpass`` (created here), which prints ``$BATON_GIT_TOKEN``; the
  token never appears in a URL, argv, git config, a log or the store. (The fetches of a sync before a
  turn send it up front instead, as an ``http.<url>.extraHeader`` in that git process's environment:
  one HTTP round trip fewer; see :mod:`baton.sync.fetch`.)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from baton.errors import BadInput, GitError
from baton.files import atomic_write_text
from baton.keys import Key, Repo
from baton.settings import Settings
from baton.workspace.gitcmd import (
    checkout_changes,
    commit_of,
    ref_exists,
    remote_error,
    run_git,
    worktree_status,
    worktree_tree,
)
from baton.workspace.locks import file_lock

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


@dataclass
class Workdirs:
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

    def git_env(self, agent: str) -> dict[str, str]:
        """Environment for git and for the agent: identity per agent, credentials via askpass."""
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
        }

    def _env(self, agent: str) -> dict[str, str]:
        return {**os.environ, **self.git_env(agent)}

    # -- cache clones -------------------------------------------------------------------------------

    def ensure_cache(self, repo: Repo, agent: str, fetch: bool = True) -> Path:
        """Clone the repo into the cache if needed, else fetch it (under the repo's lock)."""
        path = self.cache_path(repo)
        env = self._env(agent)
        with file_lock(self.home, f"repo:{repo.slug}"):
            if not (path / "HEAD").is_file():
                self._clone(repo, path, env)
            elif fetch:
                self._fetch(repo, path, env, "--prune")
        return path

    def _fetch(self, repo: Repo, cache: Path, env: dict[str, str], *flags: str) -> None:
        try:
            run_git(["fetch", *flags, "--quiet", "origin"], cwd=cache, env=env)
        except GitError as exc:
            raise remote_error(repo, "fetch", exc) from exc

    def _clone(self, repo: Repo, path: Path, env: dict[str, str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
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
        ``fetch=False``: the caller has just fetched the cache."""
        path = self.worktree_path(key)
        if (path / ".git").is_file():
            return Worktree(path, built=False)
        cache = self.ensure_cache(key.repo, key.agent, fetch=fetch)
        env = self._env(key.agent)
        with file_lock(self.home, f"repo:{key.repo.slug}"):
            run_git(["worktree", "prune"], cwd=cache)
            if path.exists():
                shutil.rmtree(path)  # a half-made directory without .git: nothing of value in it
            path.parent.mkdir(parents=True, exist_ok=True)
            if ref_exists(cache, f"refs/heads/{branch}"):
                run_git(["worktree", "add", "--quiet", str(path), branch], cwd=cache, env=env)
                made = Worktree(path, built=True)
            else:
                start = run_git(["rev-parse", f"{self._resolve_base(cache, base)}^{{commit}}"], cwd=cache)
                run_git(
                    ["worktree", "add", "--quiet", "--no-track", "-b", branch, str(path), start],
                    cwd=cache,
                    env=env,
                )
                made = Worktree(path, built=True, new_branch=branch, start=start)
            self._restore_checkpoint(key, cache, path)
        return made

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
            if made.new_branch and made.start:
                ref = f"refs/heads/{made.new_branch}"
                if commit_of(cache, ref) == made.start:
                    run_git(["update-ref", "-d", ref, made.start], cwd=cache)
        remove_empty_parents(made.path.parent, self.home / "worktrees")

    def _resolve_base(self, cache: Path, base: str | None) -> str:
        if base is None:
            return self.default_base(cache)
        for candidate in (f"refs/remotes/origin/{base}", base):
            if ref_exists(cache, candidate):
                return candidate
        raise BadInput(f"base {base!r} is not a branch, tag or commit of the repository")

    def checkpoint(self, key: Key, worktree: Path) -> str | None:
        """Record the worktree's uncommitted state; returns the checkpoint commit, or None if clean.

        A clean worktree costs one ``git status`` (which uses the index's stat cache). A dirty one is
        staged into a *copy* of the worktree's own index — stat data included, so only changed files are
        re-hashed — never into the index itself."""
        if not (worktree / ".git").is_file():
            return None
        ref = self.checkpoint_ref(key)
        status = worktree_status(worktree)
        if not status:
            if self._has_checkpoint(key):
                run_git(["update-ref", "-d", ref], cwd=worktree)
            return None
        env = self._env(key.agent)
        tree = worktree_tree(worktree, env, status)
        previous = self.read_ref(self.cache_path(key.repo), ref)
        if previous is not None and self._same_checkpoint(worktree, previous, tree):
            return previous  # unchanged since: the same commit, so nothing new to share
        commit = run_git(
            ["commit-tree", tree, "-p", "HEAD", "-m", f"baton checkpoint of {key}"], cwd=worktree, env=env
        )
        run_git(["update-ref", ref, commit], cwd=worktree)
        return commit

    @staticmethod
    def _same_checkpoint(worktree: Path, commit: str, tree: str) -> bool:
        """Whether checkpoint ``commit`` already holds ``tree`` on top of the worktree's HEAD."""
        try:
            found = run_git(["rev-parse", "HEAD", f"{commit}^{{tree}}", f"{commit}^"], cwd=worktree).split()
        except GitError:
            return False
        return found[1:] == [tree, found[0]]

    def _has_checkpoint(self, key: Key) -> bool:
        return self.read_ref(self.cache_path(key.repo), self.checkpoint_ref(key)) is not None

    @staticmethod
    def read_ref(cache: Path, ref: str) -> str | None:
        """The commit ``ref`` names, without a git process: a loose file, or a line of packed-refs after
        a gc. None when there is no such ref."""
        try:
            return (cache / ref).read_text().strip() or None
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            pass
        try:
            packed = (cache / "packed-refs").read_text()
        except FileNotFoundError:
            return None
        at = packed.find(f" {ref}\n")
        return packed[packed.rfind("\n", 0, at) + 1 : at] if at >= 0 else None

    def catch_up(self, key: Key, branch: str, since: tuple[str, str] | None = None) -> None:
        """Bring the key's existing worktree to ``branch``'s tip with the key's checkpoint re-applied,
        after :mod:`~baton.workspace.portable` moved them to what another machine left. Files git would track
        that
        are not in that state are removed (the caller archived them first); ignored ones (build outputs,
        dependencies) stay, as they would on a branch switch.

        ``since``: (HEAD, state) — the worktree is known to be on ``branch`` at that HEAD holding that
        state (its checkpoint commit, or HEAD when clean): then only the files that differ are written."""
        path = self.worktree_path(key)
        env = self._env(key.agent)
        tip = commit_of(path, f"refs/heads/{branch}")
        if tip is None:
            raise GitError(f"branch {branch!r} is missing")
        cache = self.cache_path(key.repo)
        checkpoint = self.read_ref(cache, self.checkpoint_ref(key))
        state = checkpoint if checkpoint and commit_of(cache, f"{checkpoint}^") == tip else tip
        if since is not None and self._on_branch(path, branch):
            if since[0] != tip:
                run_git(["reset", "--quiet", "--mixed"], cwd=path, env=env)  # the index to the new tip
            checkout_changes(path, since[1], state)
            return
        if not self._on_branch(path, branch):
            run_git(["checkout", "--force", "--quiet", branch], cwd=path, env=env)
        run_git(["reset", "--hard", "--quiet", "HEAD"], cwd=path, env=env)
        run_git(["clean", "-d", "--force", "--quiet"], cwd=path, env=env)
        if state != tip:
            checkout_changes(path, tip, state)

    @staticmethod
    def _on_branch(worktree: Path, branch: str) -> bool:
        """Whether the worktree's HEAD is ``branch`` (read from its HEAD file, no git process)."""
        gitdir = Path((worktree / ".git").read_text().removeprefix("gitdir:").strip())
        return (gitdir / "HEAD").read_text().strip() == f"ref: refs/heads/{branch}"

    def head_commit(self, key: Key, worktree: Path) -> str | None:
        """The commit the key's worktree has checked out: its HEAD file and the cache's ref, read
        without a git process when they are plain (git's answer otherwise)."""
        try:
            gitdir = Path((worktree / ".git").read_text().removeprefix("gitdir:").strip())
            head = (gitdir / "HEAD").read_text().strip()
        except OSError:
            return None
        if head.startswith("ref: refs/heads/"):
            found = self.read_ref(self.cache_path(key.repo), head.removeprefix("ref: "))
            if found is not None:
                return found
        return commit_of(worktree, "HEAD")

    def _restore_checkpoint(self, key: Key, cache: Path, worktree: Path) -> None:
        ref = self.checkpoint_ref(key)
        if not ref_exists(cache, ref):
            return
        head = run_git(["rev-parse", "HEAD"], cwd=worktree)
        if run_git(["rev-parse", f"{ref}^"], cwd=cache) != head:
            return  # the branch moved on since: that checkpoint no longer applies
        checkout_changes(worktree, head, ref)  # a fresh checkout of HEAD: only what differs

    def remove_worktree(self, key: Key, branch: str | None = None) -> bool:
        """Remove the key's worktree (and ``branch`` and the checkpoint, when a branch is given); True if a
        worktree existed. Removes work without keeping it: archive first (:mod:`baton.workspace.archives`)."""
        existed = self.remove_worktree_dir(key)
        if branch is not None:
            self.delete_branch(key.repo, branch)
            self.drop_checkpoint(key)
        return existed

    def remove_worktree_dir(self, key: Key) -> bool:
        """Delete the key's worktree directory and git's record of it; True if it existed."""
        path = self.worktree_path(key)
        cache = self.cache_path(key.repo)
        existed = path.exists()
        with file_lock(self.home, f"repo:{key.repo.slug}"):
            if existed:
                shutil.rmtree(path)
            if (cache / "HEAD").is_file():
                run_git(["worktree", "prune"], cwd=cache)
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
        """Delete the key's checkpoint ref (and its shared one); True if there was a checkpoint."""
        cache = self.cache_path(key.repo)
        if not (cache / "HEAD").is_file():
            return False
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


def remove_empty_parents(path: Path, stop: Path) -> None:
    """Remove ``path`` and its parents while they are empty, up to (not including) ``stop``."""
    while path != stop and stop in path.parents:
        try:
            path.rmdir()
        except OSError:
            return
        path = path.parent


def disk_usage(path: Path) -> int:
    """Bytes under ``path`` (hard links counted once), 0 when it does not exist."""
    total = 0
    seen: set[tuple[int, int]] = set()
    if not path.exists():
        return 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total
