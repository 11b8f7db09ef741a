"""A key's worktree as a diff: what its agent changed since the commit its branch is based on, committed
or not, for a reader (``GET /v1/session/diff``, the ``diff`` resource of baton's MCP server). Read only:
git's optional locks are off (no index refresh is written), its admin dir is found by the key's name and
not repaired (:func:`baton.workspace.readonly.readonly_git`), and no diff driver or text conversion the
worktree's attributes could name is run. New files git does not ignore are in the diff too, added
"intent to add" to a copy of the index in a temporary directory (the worktree's own is not touched),
and listed by name; the diff is cut at :data:`MAX_DIFF` characters, saying so.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from baton.keys import Key
from baton.settings import Settings
from baton.workspace import nofollow
from baton.workspace.readonly import readonly_git

MAX_DIFF = 200_000  # characters of a diff shown; its stat says what the rest holds
MAX_UNTRACKED = 500  # untracked paths listed
READ = ["--no-optional-locks", "-c", "core.quotePath=false"]
DIFF = ["diff", "--no-ext-diff", "--no-textconv", "--no-color", "--find-renames"]


@dataclass(frozen=True)
class WorktreeDiff:
    base: str  # the commit compared with (the branch's base, else HEAD)
    head: str | None  # the worktree's checked-out commit
    stat: str
    diff: str
    untracked: list[str]
    truncated: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def worktree_diff(settings: Settings, key: Key, base: str | None) -> WorktreeDiff | None:
    """The worktree's changes since ``base`` (a commit; HEAD when None or unknown there), None when the
    key has no worktree on this machine (or its index is not a regular file)."""
    wt = readonly_git(settings, key)
    if wt is None:
        return None
    head = wt.commit_of("HEAD")
    since = (wt.commit_of(base) if base else None) or head or "HEAD"

    with tempfile.TemporaryDirectory(prefix="baton-diff-") as scratch:
        index = Path(scratch) / "index"
        try:  # the agent may write its admin dir: its index is read as a regular file, not through a link
            index.write_bytes(nofollow.read_regular(wt.admin / "index"))
        except FileNotFoundError:
            pass  # no index yet: git reads none
        except OSError:
            return None
        env = {**os.environ, "GIT_INDEX_FILE": str(index), "GIT_LITERAL_PATHSPECS": "1"}

        def out(args: list[str]) -> str:
            done = wt.call([*READ, *args], env=env)
            return bytes(done.stdout).decode("utf-8", "replace") if done.returncode == 0 else ""

        untracked = [p for p in out(["ls-files", "-z", "--others", "--exclude-standard"]).split("\0") if p]
        if untracked:
            out(["add", "--intent-to-add", "--ignore-errors", "--", *untracked[:MAX_UNTRACKED]])
        diff = out([*DIFF, since, "--"])
        stat = out([*DIFF, "--stat", since, "--"]).rstrip()
    truncated = len(diff) > MAX_DIFF or len(untracked) > MAX_UNTRACKED
    return WorktreeDiff(since, head, stat, diff[:MAX_DIFF], untracked[:MAX_UNTRACKED], truncated)
