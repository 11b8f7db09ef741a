"""What a sync fetches: the two refs it follows, only when they moved, and in a partial clone the blobs
the worktree is about to need.

- **No git process when nothing moved locally.** For a local repository the remote's refs are read from
  its files (:func:`peek_local`); a fetch runs only when one of the two refs we follow differs from
  ours. A remote one is fetched for those two refs alone (``+refs/heads/<name>*`` globs: protocol v2
  asks the server for those prefixes only, and a branch never pushed is no error).
- **Partial clones**: :func:`prefetch` fetches the blobs a checkout is about to need in one batch, with
  the key's credentials (git would fetch them one by one, without them).
"""

from __future__ import annotations

import os
from pathlib import Path

from baton.errors import GitError
from baton.gitcmd import remote_error, run_git
from baton.locks import file_lock
from baton.sync_git import ISOLATE, SHA, SyncGit, read_text


def fetch(g: SyncGit, base_ref: str) -> None:
    """Fetch the key's branch and (when it is a remote branch) the base — only when they moved."""
    names = [g.branch]
    if base_ref.startswith("refs/remotes/origin/"):
        names.append(base_ref.removeprefix("refs/remotes/origin/"))
    if g.key.repo.local:
        theirs = peek_local(Path(g.key.repo.url), names)
        if theirs is not None and all(theirs[n] == g.ref(f"refs/remotes/origin/{n}") for n in names):
            return
    specs = [f"+refs/heads/{name}*:refs/remotes/origin/{name}*" for name in names]
    flags = ["--quiet", "--prune", "--no-tags", "--no-write-fetch-head", "--no-auto-gc"]
    with file_lock(g.workdirs.home, f"repo:{g.key.repo.slug}"):
        _fetch(g, [*flags, "--no-recurse-submodules", "origin", *specs])


def prefetch(g: SyncGit, old: str, new: str) -> None:
    """In a partial clone, fetch in one batch, with the key's credentials, the blobs of ``new`` the
    cache lacks: :func:`~baton.gitcmd.checkout_changes` would have git fetch them one by one without."""
    if "partialclone" not in (read_text(g.cache / "config") or "").lower():
        return
    listing = g.git("rev-list", "--objects", "--no-object-names", "--missing=print", new, "--not", old)
    missing = [line[1:] for line in listing.split() if line.startswith("?")]
    if not missing:
        return
    flags = ["--quiet", "--no-tags", "--no-write-fetch-head", "--recurse-submodules=no", "--filter=blob:none"]
    stdin = "".join(f"{oid}\n" for oid in missing)
    _fetch(g, [*flags, "--stdin", "origin"], stdin, config=["-c", "fetch.negotiationAlgorithm=noop"])


def _fetch(g: SyncGit, args: list[str], stdin: str | None = None, config: list[str] | None = None) -> None:
    """``git fetch args`` in the cache, with the key's credentials; a failure as a RemoteError/BadInput."""
    env = {**os.environ, **g.git_env}
    try:
        run_git([*ISOLATE, *(config or []), "fetch", *args], cwd=g.cache, env=env, stdin=stdin)
    except GitError as exc:
        raise remote_error(g.key.repo, "fetch", exc) from exc


def peek_local(path: Path, names: list[str]) -> dict[str, str | None] | None:
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
        if value is not None and not SHA.fullmatch(value):
            return None
        found[name] = value
    return found
