"""The git one sync runs in one worktree (:class:`SyncGit`): its paths, its environment, the commands,
and the commits a sync writes by hand. It is isolated from the user's git configuration where that
changes what happens (:data:`ISOLATE`), runs every command through the worktree's
:class:`~baton.workspace.gitcmd.WorktreeGit` (never through the agent's pointers), reads what needs no
git process (a ref, HEAD, what is in progress) from the files, never through a link (the gitdir is the
agent's to write), and writes its commits (merges, rebased copies, throw-away commits, the checkpoint)
in batches (:meth:`SyncGit.defer`, :meth:`SyncGit.write`).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from baton.errors import GitError
from baton.keys import Key
from baton.workspace import nofollow
from baton.workspace.gitcmd import WorktreeGit
from baton.workspace.workdirs import Workdirs

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
SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")


class SyncGit:
    """One sync of one worktree: paths, environment and the git helpers it needs."""

    def __init__(self, workdirs: Workdirs, key: Key, wt: WorktreeGit, branch: str) -> None:
        self.workdirs, self.key, self.wt, self.branch = workdirs, key, wt, branch
        self.worktree, self.gitdir, self.cache = wt.path, wt.admin, wt.common
        self.git_env = workdirs.git_env(key.agent, key.repo.url)  # the remote's credentials: baton's git
        self.env = {**os.environ, **self.git_env, **_EDITORS}
        self.index_before: bytes | None = None  # the index file before the sync touched anything
        self.pending: list[bytes] = []  # commit objects made here, written with the next hash-object

    # -- running git -----------------------------------------------------------------------------------

    def git(self, *args: str, stdin: str | None = None, raw: bool = False) -> str:
        self.flush()
        return self.wt.run([*ISOLATE, *args], env=self.env, stdin=stdin, raw=raw)

    def attempt(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run git and return what happened, for the commands whose exit code says "conflict"."""
        self.flush()
        return self.wt.call([*ISOLATE, *args], env=self.env, text=True)

    def cat(self, queries: list[str]) -> list[tuple[str, bytes]]:
        """``git cat-file --batch``: per query its object id ("" when missing) and its content."""
        self.flush()
        done = self.wt.call(
            ["cat-file", "--batch"], env=self.env, input="".join(f"{q}\n" for q in queries).encode()
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

    def tree_of(self, commit: str) -> str:
        return self.cat([f"{commit}^{{tree}}"])[0][0]

    def update_refs(self, why: str, moves: str) -> None:
        """Apply ``update-ref --stdin`` lines ``moves`` in one transaction, ``why`` in the reflog."""
        self.git("update-ref", "-m", why, "--stdin", stdin=moves)

    # -- reading files, no git process -------------------------------------------------------------------

    def ref(self, name: str) -> str | None:
        return self.workdirs.read_ref(self.cache, name)

    def head_ref(self) -> str | None:
        """The branch the worktree's HEAD names (read from its file), None when detached."""
        head = self.wt.head() or ""
        return head.removeprefix("ref: ") if head.startswith("ref: ") else None

    def in_progress(self) -> str | None:
        return next((what for name, what in IN_PROGRESS.items() if (self.gitdir / name).exists()), None)

    def checkpoint_ref(self) -> str:
        return self.workdirs.checkpoint_ref(self.key)

    # -- commits written by hand -------------------------------------------------------------------------

    def ident(self) -> str:
        """The key's committer, now, as a commit header has it."""
        name = _clean_ident(self.git_env["GIT_COMMITTER_NAME"])
        email = _clean_ident(self.git_env["GIT_COMMITTER_EMAIL"])
        offset = time.localtime().tm_gmtoff // 60
        sign = "-" if offset < 0 else "+"
        return f"{name} <{email}> {int(time.time())} {sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"

    def made(self, tree: str, parents: Sequence[str], message: str) -> bytes:
        """A commit by the key's agent, now (author and committer)."""
        ident = self.ident()
        return commit_object(tree, parents, ident, ident, message)

    def defer(self, body: bytes, like: str) -> str:
        """Queue commit ``body`` to be written with the next object write (or before the next git
        command, which may need it); its id now (:func:`object_id`, ``like``: an id of the repo). The
        queue is written by the next ``hash-object`` (:meth:`write`, which checks git's ids against ours)."""
        self.pending.append(body)
        return object_id(body, like)

    def flush(self) -> None:
        if self.pending:
            self.write([])

    def write(self, bodies: Sequence[bytes]) -> list[str]:
        """Write the queued commit objects and ``bodies`` (one ``hash-object`` for all); the ids of
        ``bodies``. A commit may name a parent written in the same call: :func:`object_id` computes ids
        as git does (checked here)."""
        data = [*self.pending, *bodies]
        self.pending = []
        with tempfile.TemporaryDirectory(prefix="baton-sync-") as tmp:
            paths = []
            for i, body in enumerate(data):
                (Path(tmp) / str(i)).write_bytes(body)
                paths.append(f"{tmp}/{i}\n")
            args = [*ISOLATE, "hash-object", "-t", "commit", "-w", "--stdin-paths"]
            out = self.wt.run(args, env=self.env, stdin="".join(paths)).split()
        if out != [object_id(body, out[0]) for body in data]:
            raise GitError("git hash-object gave commit ids other than expected")
        return out[len(out) - len(bodies) :]


def commit_object(
    tree: str,
    parents: Sequence[str],
    author: bytes | str,
    committer: str,
    message: bytes | str,
    extra: bytes = b"",
) -> bytes:
    """A commit object's bytes as git writes them (``extra``: further header lines, e.g. an encoding)."""
    head = f"tree {tree}\n" + "".join(f"parent {p}\n" for p in parents)
    return b"".join(
        [
            head.encode(),
            b"author " + _bytes(author) + b"\n",
            f"committer {committer}\n".encode(),
            extra,
            b"\n",
            _bytes(message),
        ]
    )


def object_id(body: bytes, like: str, kind: bytes = b"commit") -> str:
    """The id git gives object ``body`` (SHA-1, or SHA-256 in a repository whose ids are that long)."""
    algorithm = hashlib.sha256 if len(like) == 64 else hashlib.sha1
    return algorithm(kind + b" %d\0" % len(body) + body).hexdigest()


def last_words(text: str, lines: int = 3) -> str:
    """The end of git's message (its last lines, joined), for an error that quotes it."""
    return " ".join(text.strip().splitlines()[-lines:])


def read_text(path: Path) -> str | None:
    """A small file's text; None when it is missing, a link or unreadable."""
    return nofollow.read_text(path)


def read_bytes(path: Path) -> bytes | None:
    """A file's bytes, never through a link; None when it is missing or not a regular file."""
    try:
        return nofollow.read_regular(path)
    except (FileNotFoundError, nofollow.Unsafe):
        return None


def _bytes(text: bytes | str) -> bytes:
    return text if isinstance(text, bytes) else text.encode()


def _clean_ident(text: str) -> str:
    """A name or e-mail as git writes it into a commit: without the characters that would break it."""
    return re.sub(r"[<>\n\r\0]", "", text).strip(" .,:;'\"") or "baton"
