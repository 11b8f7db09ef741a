"""The fake forge's state: plain records, kept in memory under one lock by
:class:`~baton.testing.fake_forge.FakeForge`.

Issues and pull requests share one number sequence per repository (a pull request *is* an issue with a
``pr`` part, as on GitHub); ids of comments, reviews, review comments, check runs and statuses come from
one counter per fake, so they never collide. Times are seconds since the epoch from the fake's clock;
``updated_at`` moves on every change to an issue or pull request, its comments and reviews included.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# GitHub's collaborator roles, weakest first; ``permission`` (the legacy field) maps maintain to write
# and triage to read
ROLES = ("none", "read", "triage", "write", "maintain", "admin")
LEGACY_PERMISSION = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "triage": "read",
    "read": "read",
}


def iso(at: float) -> str:
    """GitHub's timestamp format: ``2026-11-25T05:47:55Z`` (whole seconds, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def parse_iso(text: str) -> float:
    """The seconds of an ISO 8601 UTC time (``…Z`` or ``…+00:00``), as GitHub's ``since`` takes it."""
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class User:
    login: str
    id: int
    type: str = "User"  # User | Bot
    token: str = ""  # what this user authenticates with (API Bearer, git Basic password)


@dataclass
class PullPart:
    """What makes an issue a pull request."""

    head_ref: str
    base_ref: str
    draft: bool = False
    mergeable: bool | None = True  # None: GitHub has not computed it yet
    merged: bool = False
    merged_at: float | None = None
    head_sha_at_close: str | None = None  # the head a closed PR keeps after its branch is deleted
    head_repo: str | None = None  # a fork's full name: the PR's head lives there (None: this repo)
    auto_merge: str | None = None  # the merge method the forge's auto-merge waits to use (None: off)
    auto_merge_by: str | None = None  # who enabled it


@dataclass
class Issue:
    number: int
    id: int
    title: str
    body: str
    author: str
    created_at: float
    updated_at: float
    state: str = "open"  # open | closed
    labels: list[str] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)
    closed_at: float | None = None
    pr: PullPart | None = None
    comments: list[int] = field(default_factory=list)  # IssueComment ids, in order
    reviews: list[int] = field(default_factory=list)  # Review ids, in order


@dataclass
class IssueComment:
    id: int
    repo: str  # full name
    number: int
    author: str
    body: str
    created_at: float
    updated_at: float


@dataclass
class ReviewComment:
    id: int
    review_id: int
    path: str
    line: int | None
    body: str
    diff_hunk: str
    commit_id: str
    author: str
    created_at: float
    in_reply_to: int | None = None  # a reply: the id of its thread's first comment


@dataclass
class Review:
    id: int
    repo: str
    number: int
    author: str
    body: str
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED
    commit_id: str
    submitted_at: float
    comments: list[ReviewComment] = field(default_factory=list)


@dataclass
class Annotation:
    path: str
    start_line: int
    message: str
    end_line: int | None = None
    annotation_level: str = "failure"  # notice | warning | failure
    title: str | None = None
    raw_details: str | None = None


@dataclass
class CheckRun:
    """A check run, which is also the Actions job of the same id (as on GitHub): its log is the job's."""

    id: int
    repo: str
    head_sha: str
    name: str
    status: str  # queued | in_progress | completed
    conclusion: str | None  # success, failure, neutral, cancelled, skipped, timed_out, action_required, …
    started_at: float
    completed_at: float | None
    suite_id: int
    title: str | None = None
    summary: str | None = None
    annotations: list[Annotation] = field(default_factory=list)
    log: bytes | Path = b""  # a Path keeps a huge log on disk

    def log_size(self) -> int:
        return self.log.stat().st_size if isinstance(self.log, Path) else len(self.log)

    def log_slice(self, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of the log."""
        if isinstance(self.log, Path):
            with self.log.open("rb") as f:
                f.seek(start)
                return f.read(max(0, end - start))
        return self.log[start:end]


@dataclass
class Status:
    id: int
    repo: str
    sha: str
    context: str
    state: str  # error | failure | pending | success
    description: str | None
    target_url: str | None
    created_at: float


@dataclass
class Push:
    """A branch update baton (or anyone) pushed over git."""

    repo: str
    branch: str
    old: str | None  # None: a new branch
    new: str | None  # None: a deleted branch
    login: str


@dataclass
class Repo:
    owner: str
    name: str
    id: int
    path: Path  # the bare repository on disk
    default_branch: str = "main"
    created_at: float = 0.0
    permissions: dict[str, str] = field(default_factory=dict)  # login -> role
    next_number: int = 1
    issues: dict[int, Issue] = field(default_factory=dict)
    check_runs: list[CheckRun] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    fork_of: str | None = None  # the full name of the repository this one is a fork of
    check_runs_refused: bool = False  # a fine-grained token on a private repository: check runs are 403
    required_checks: list[str] = field(default_factory=list)  # the default branch's protection requires
    allow_auto_merge: bool = True  # the repository's "Allow auto-merge" setting
    required_approvals: int = 0  # the default branch's protection requires this many approvals

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def git(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(
            ["git", "-C", str(self.path), *args], capture_output=True, text=True, check=False
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} in {self.full_name}: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def git_env(self, env: dict[str, str], *args: str) -> str:
        """:meth:`git` with ``env`` added to this process's environment (a commit's identity)."""
        proc = subprocess.run(
            ["git", "-C", str(self.path), *args],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **env},
        )
        if proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} in {self.full_name}: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def branches(self) -> dict[str, str]:
        """Every branch and the commit at its head, read from the ref files themselves (git's "files"
        ref store: ``packed-refs``, then loose refs over them): a subprocess per read made a review of
        10,000 comments take a minute."""
        heads: dict[str, str] = {}
        packed = self.path / "packed-refs"
        if packed.exists():
            for line in packed.read_text().splitlines():
                sha, _, ref = line.partition(" ")
                if ref.startswith("refs/heads/") and len(sha) == 40:
                    heads[ref.removeprefix("refs/heads/")] = sha
        loose = self.path / "refs" / "heads"
        for file in loose.rglob("*"):
            if file.is_file() and not file.name.endswith(".lock"):
                sha = file.read_text().strip()
                if len(sha) == 40:
                    heads[file.relative_to(loose).as_posix()] = sha
        return heads

    def head(self, branch: str) -> str | None:
        return self.branches().get(branch)

    def ahead(self, base: str, head: str) -> int:
        """Commits on ``head`` that ``base`` does not have."""
        return int(self.git("rev-list", "--count", f"{base}..{head}"))

    def protect(self, branch: str, *, allow_push: bool = False) -> None:
        """A pre-receive hook refusing pushes to ``branch`` (only force pushes, with ``allow_push``)."""
        hooks = self.path / "hooks"
        hooks.mkdir(exist_ok=True)
        with (hooks / "protected").open("a") as f:
            f.write(f"refs/heads/{branch} {'force' if allow_push else 'all'}\n")
        hook = hooks / "pre-receive"
        hook.write_text(_PRE_RECEIVE)
        hook.chmod(0o755)

    def report_pushes_to(self, url: str) -> None:
        """A post-receive hook POSTing each push's ``old new ref`` lines to ``url``, from inside it."""
        hook = self.path / "hooks" / "post-receive"
        hook.parent.mkdir(exist_ok=True)
        hook.write_text(_POST_RECEIVE.format(python=sys.executable, url=url))
        hook.chmod(0o755)

    def ref(self, name: str) -> str | None:
        """The commit a full ref name (``refs/pull/7/head``) points at, loose or packed."""
        loose = self.path / name
        if loose.is_file():
            return loose.read_text().strip() or None
        packed = self.path / "packed-refs"
        if packed.exists():
            for line in packed.read_text().splitlines():
                sha, _, ref = line.partition(" ")
                if ref == name:
                    return sha
        return None

    def pr_head(self, issue: Issue) -> str:
        """A PR's head commit now: its branch's (so a push moves it); a fork's PR, the copy GitHub keeps
        in this repository (``refs/pull/N/head``); a closed PR, the one it closed with."""
        assert issue.pr is not None
        if issue.pr.head_repo is not None:
            sha = self.ref(f"refs/pull/{issue.number}/head")
        else:
            sha = self.head(issue.pr.head_ref)
        return sha or issue.pr.head_sha_at_close or "0" * 40


def init_bare(path: Path, branch: str, files: dict[str, str], author: str, at: float) -> None:
    """A bare repository at ``path`` whose ``branch`` holds one commit of ``files``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        "GIT_AUTHOR_NAME": author,
        "GIT_AUTHOR_EMAIL": f"{author}@users.noreply.fake",
        "GIT_COMMITTER_NAME": author,
        "GIT_COMMITTER_EMAIL": f"{author}@users.noreply.fake",
        "GIT_AUTHOR_DATE": f"@{int(at)} +0000",
        "GIT_COMMITTER_DATE": f"@{int(at)} +0000",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
    }

    def git(*args: str, stdin: str | None = None) -> str:
        proc = subprocess.run(
            ["git", "-C", str(path), *args], input=stdin, capture_output=True, text=True, env=env, check=True
        )
        return proc.stdout.strip()

    subprocess.run(
        ["git", "init", "-q", "--bare", f"--initial-branch={branch}", str(path)], check=True, env=env
    )
    git("config", "uploadpack.allowFilter", "true")
    entries = []
    for name, content in sorted(files.items()):
        blob = git("hash-object", "-w", "--stdin", stdin=content)
        entries.append((name, blob))
    tree = _tree(git, entries)
    commit = git("commit-tree", tree, "-m", "Initial commit")
    git("update-ref", f"refs/heads/{branch}", commit)


def _tree(git: Callable[..., str], entries: list[tuple[str, str]]) -> str:
    """A tree object of ``entries`` (paths with ``/`` become subtrees)."""
    here: list[str] = []
    below: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for name, blob in entries:
        top, sep, rest = name.partition("/")
        if sep:
            below[top].append((rest, blob))
        else:
            here.append(f"100644 blob {blob}\t{name}")
    for sub, items in below.items():
        here.append(f"040000 tree {_tree(git, items)}\t{sub}")
    listing = "".join(f"{line}\n" for line in sorted(here, key=lambda s: s.split("\t")[1]))
    return git("mktree", stdin=listing)


_PRE_RECEIVE = r"""#!/bin/sh
# the fake forge's branch protection: hooks/protected lists "<ref> all|force"
status=0
while read -r old new ref; do
    rule=$(awk -v ref="$ref" '$1 == ref { print $2 }' "$(dirname "$0")/protected")
    [ -z "$rule" ] && continue
    if [ "$rule" = all ]; then
        echo "error: GH006: Protected branch update failed for $ref." >&2
        echo "error: Changes must be made through a pull request." >&2
        status=1
    elif [ "$old" != 0000000000000000000000000000000000000000 ] && \
        ! git merge-base --is-ancestor "$old" "$new" 2>/dev/null; then
        echo "error: GH006: Protected branch update failed for $ref." >&2
        echo "error: Cannot force-push to this branch" >&2
        status=1
    fi
done
exit $status
"""


# the fake forge hears of a push from inside it: git waits for this hook before it answers the pusher
_POST_RECEIVE = """#!{python} -IS
import os, sys, urllib.request
data = sys.stdin.buffer.read()
headers = {{"X-Fake-Forge-User": os.environ.get("REMOTE_USER", "")}}
request = urllib.request.Request("{url}", data=data, headers=headers, method="POST")
try:
    urllib.request.urlopen(request, timeout=60).read()
except Exception as exc:
    print(f"fake forge did not hear of the push: {{exc}}", file=sys.stderr)
"""
