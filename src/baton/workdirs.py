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
- Credentials: git asks ``bin/git-askpass`` (created here), which prints ``$BATON_GIT_TOKEN``; the
  token never appears in a URL, argv, git config, a log or the store.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from baton.errors import BadInput, BatonError, GitError, RemoteError
from baton.keys import Key, Repo
from baton.locks import file_lock
from baton.settings import Settings

ASKPASS = """#!/bin/sh
# baton's git credential helper: the token comes from the environment, never from argv or disk.
case "$1" in
  Username*) printf '%s\\n' "${BATON_GIT_USERNAME:-x-access-token}" ;;
  *) printf '%s\\n' "${BATON_GIT_TOKEN:-}" ;;
esac
"""


def run_git(args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run git; raise GitError with git's own message on failure."""
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
    except OSError as exc:
        raise GitError(f"cannot run git: {exc}") from exc
    if out.returncode != 0:
        message = (out.stderr.strip() or out.stdout.strip()).splitlines()
        raise GitError(f"git {args[0]} failed: {' '.join(message[-3:])}")
    return out.stdout.strip()


def branch_for(key: Key) -> str:
    return f"baton/{key.agent}/{key.thread}"


# git's words when the remote could not be reached or refused us: host, network, HTTP status, credentials.
_UNREACHABLE = re.compile(
    r"unable to access|could not resolve|connection refused|failed to connect|timed out|"
    r"network is unreachable|authentication failed|could not read (?:username|password)|"
    r"returned error: \d{3}|repository '[^']*' not found|repository not found|"
    r"could not read from remote repository|permission denied|host key verification failed|"
    r"early eof|remote end hung up",
    re.IGNORECASE,
)
# ...and its words for a URL that can never work: that is the caller's input, not the network.
_MALFORMED = re.compile(r"is not supported|bad/illegal format|malformed|invalid url|port number", re.I)


def remote_error(repo: Repo, action: str, exc: GitError) -> BatonError:
    """Translate a failed clone or fetch: :class:`RemoteError` (exit 4) when git could not reach the
    remote or was refused by it, :class:`BadInput` (exit 2) for a malformed URL or a local path that is
    no repository. The message names the URL (any ``user:password@`` removed) and quotes git."""
    words = redact(str(exc))
    url = redact(repo.url)
    if repo.local or _MALFORMED.search(words) or not _UNREACHABLE.search(words):
        return BadInput(f"cannot {action} repo {url!r}: {words}")
    return RemoteError(
        f"cannot reach repo {url!r} ({action}): {words} — check the URL, the network and the "
        "credentials (BATON_GIT_TOKEN)"
    )


def redact(text: str) -> str:
    """``text`` without the user-info part of any URL in it (git redacts it too; this is a safety net)."""
    return re.sub(r"(?<=://)[^/@\s']+@", "", text)


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

    def git_env(self, agent: str) -> dict[str, str]:
        """Environment for git and for the agent: identity per agent, credentials via askpass."""
        askpass = self.home / "bin" / "git-askpass"
        if not askpass.is_file():
            askpass.parent.mkdir(parents=True, exist_ok=True)
            tmp = askpass.with_suffix(".tmp")
            tmp.write_text(ASKPASS)
            tmp.chmod(0o700)
            tmp.replace(askpass)
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
            _remove_empty_parents(path.parent, self.home / "repos")

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
        """Return the key's worktree and whether it was (re)built now."""
        path = self.worktree_path(key)
        if (path / ".git").is_file():
            return path, False
        cache = self.ensure_cache(key.repo, key.agent)
        env = self._env(key.agent)
        with file_lock(self.home, f"repo:{key.repo.slug}"):
            run_git(["worktree", "prune"], cwd=cache)
            if path.exists():
                shutil.rmtree(path)  # a half-made directory without .git: nothing of value in it
            path.parent.mkdir(parents=True, exist_ok=True)
            if _ref_exists(cache, f"refs/heads/{branch}"):
                run_git(["worktree", "add", "--quiet", str(path), branch], cwd=cache, env=env)
            else:
                start = self._resolve_base(cache, base)
                run_git(
                    ["worktree", "add", "--quiet", "--no-track", "-b", branch, str(path), start],
                    cwd=cache,
                    env=env,
                )
            self._restore_checkpoint(key, cache, path)
        return path, True

    def _resolve_base(self, cache: Path, base: str | None) -> str:
        if base is None:
            return self.default_base(cache)
        for candidate in (f"refs/remotes/origin/{base}", base):
            if _ref_exists(cache, candidate):
                return candidate
        raise BadInput(f"base {base!r} is not a branch, tag or commit of the repository")

    def checkpoint(self, key: Key, worktree: Path) -> str | None:
        """Record the worktree's uncommitted state; returns the checkpoint commit, or None if clean.

        A clean worktree costs one ``git status`` (which uses the index's stat cache). A dirty one is
        staged into a *copy* of the worktree's own index — stat data included, so only changed files are
        re-hashed — never into the index itself."""
        dot_git = worktree / ".git"
        if not dot_git.is_file():
            return None
        ref = self.checkpoint_ref(key)
        status = run_git(
            [
                "status",
                "--porcelain",
                "-z",
                "--untracked-files=all",
                "--no-renames",
                "--ignore-submodules=all",
            ],
            cwd=worktree,
        )
        if not status:
            if self._has_checkpoint(key):
                run_git(["update-ref", "-d", ref], cwd=worktree)
            return None
        env = self._env(key.agent)
        gitdir = Path(dot_git.read_text().removeprefix("gitdir:").strip())
        with tempfile.TemporaryDirectory(prefix="baton-index-") as tmp:
            index = Path(tmp) / "index"
            idx_env = {**env, "GIT_INDEX_FILE": str(index)}
            if (gitdir / "index").is_file():
                shutil.copyfile(gitdir / "index", index)
            else:
                run_git(["read-tree", "HEAD"], cwd=worktree, env=idx_env)
            run_git(["add", "-A", "."], cwd=worktree, env=idx_env)
            tree = run_git(["write-tree"], cwd=worktree, env=idx_env)
        commit = run_git(
            ["commit-tree", tree, "-p", "HEAD", "-m", f"baton checkpoint of {key}"], cwd=worktree, env=env
        )
        run_git(["update-ref", ref, commit], cwd=worktree)
        return commit

    def _has_checkpoint(self, key: Key) -> bool:
        """Without a git process: the ref is a loose file, or a line of packed-refs after a gc."""
        cache = self.cache_path(key.repo)
        ref = self.checkpoint_ref(key)
        if (cache / ref).is_file():
            return True
        packed = cache / "packed-refs"
        return packed.is_file() and f" {ref}\n" in packed.read_text()

    def _restore_checkpoint(self, key: Key, cache: Path, worktree: Path) -> None:
        ref = self.checkpoint_ref(key)
        if not _ref_exists(cache, ref):
            return
        head = run_git(["rev-parse", "HEAD"], cwd=worktree)
        if run_git(["rev-parse", f"{ref}^"], cwd=cache) != head:
            return  # the branch moved on since: that checkpoint no longer applies
        run_git(["restore", f"--source={ref}", "--worktree", "--", ":/"], cwd=worktree)

    def remove_worktree(self, key: Key, delete_branch: bool) -> bool:
        """Remove the key's worktree (and its branch and checkpoint when asked); True if one existed."""
        path = self.worktree_path(key)
        cache = self.cache_path(key.repo)
        existed = path.exists()
        with file_lock(self.home, f"repo:{key.repo.slug}"):
            if existed:
                shutil.rmtree(path)
            if (cache / "HEAD").is_file():
                run_git(["worktree", "prune"], cwd=cache)
                if delete_branch:
                    branch = branch_for(key)
                    if _ref_exists(cache, f"refs/heads/{branch}"):
                        run_git(["branch", "-D", "--quiet", branch], cwd=cache)
                    run_git(["update-ref", "-d", self.checkpoint_ref(key)], cwd=cache)
        _remove_empty_parents(path.parent, self.home / "worktrees")
        return existed


def _ref_exists(repo: Path, ref: str) -> bool:
    out = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        cwd=repo,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    return out.returncode == 0


def _remove_empty_parents(path: Path, stop: Path) -> None:
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
