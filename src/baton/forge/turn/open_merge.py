"""Whether a thread's worktree holds a merge baton must not conclude: the publish step's check before it
commits (:mod:`baton.forge.writes.publish`). A ``conflict`` turn starts with the base merged into the worktree
and stopped at its conflicts (``on_conflict=agent``); an agent that ends the turn without resolving them
(it gave up, ran out of turns, or — at ``edit`` — could not run ``git commit``) leaves the merge open,
and committing what is there with ``git add -A`` would conclude it **with the markers** and push them as
a success. :func:`open_merge` answers the paths with a marker left (none: the merge may be concluded); a
thread's note keeps them (:data:`OPEN`), so the next turn is told before its instructions (:func:`told`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from baton.errors import GitError
from baton.workspace.gitcmd import WorktreeGit, worktree_tree

OPEN = "a merge conflict is still open"  # the start of a thread's note while one is
_MARKER = re.compile(r"^(?P<path>.+):(?P<line>\d+): leftover conflict marker$")
MAX_NAMED = 20  # paths named in a note or a comment


@dataclass(frozen=True)
class OpenMerge:
    """A merge whose conflicts are not all resolved: the files with a marker left, and the paths git
    still lists as unmerged."""

    markers: dict[str, int]  # path → conflict marker lines left in it
    unmerged: tuple[str, ...]

    def where(self) -> str:
        paths = sorted(self.markers)
        shown = ", ".join(
            f"`{path.replace('`', '')}` ({_lines(self.markers[path])})" for path in paths[:MAX_NAMED]
        )
        more = f" and {len(paths) - MAX_NAMED} more" if len(paths) > MAX_NAMED else ""
        return shown + more

    def note(self) -> str:
        return f"{OPEN} in {self.where()}: nothing was committed or pushed"


def _lines(count: int) -> str:
    return f"{count} marker line{'s' if count != 1 else ''}"


def open_merge(wt: WorktreeGit, env: dict[str, str], pushed: str | None) -> OpenMerge | None:
    """The merge in ``wt`` that must not be concluded, or None (no merge, or every conflict resolved).
    ``pushed``: the head baton last pushed (a merge commit the agent made after it is checked too).

    The merge being concluded is looked at as its commit would be:

    - the merge: one in progress (``MERGE_HEAD``), or a merge commit the agent made itself (at ``full``)
      that baton has not pushed yet; its parents are what each side had;
    - the tree the commit would have: the worktree as it is, staged into a copy of its index (the real
      index is the agent's and stays as git left it, its unmerged entries included, so the next turn
      sees the conflict as git reports it);
    - a conflict marker left over: a line ``git diff --check`` calls a "leftover conflict marker"
      against **every** parent (a marker-looking line one side already had is that side's content, not
      the merge's);
    - the paths git still lists as unmerged (``git ls-files -u``) are named too, so the status comment
      and the next turn say where; at ``edit`` the agent cannot stage its resolution (the index is
      behind the walls), so an unmerged path without a marker left counts as resolved by the agent,
      and baton stages it."""
    head = wt.commit_of("HEAD")
    if head is None:
        return None
    merging = wt.commit_of("MERGE_HEAD")
    if merging is not None:
        parents = [head, merging]
    elif head != pushed:
        parents = wt.run(["rev-list", "--parents", "--max-count=1", head], env=env).split()[1:]
        if len(parents) < 2:
            return None
    else:
        return None
    tree = worktree_tree(wt, env)
    left: set[tuple[str, int]] | None = None
    for parent in parents:
        found = _markers(wt, env, parent, tree)
        left = found if left is None else left & found
    markers: dict[str, int] = {}
    for path, _line in left or set():
        markers[path] = markers.get(path, 0) + 1
    if not markers:
        return None
    listing = wt.run(["ls-files", "-u", "-z"], env=env, raw=True)
    unmerged = sorted({entry.split("\t", 1)[1] for entry in listing.split("\0") if "\t" in entry})
    return OpenMerge(markers, tuple(unmerged))


def _markers(wt: WorktreeGit, env: dict[str, str], parent: str, tree: str) -> set[tuple[str, int]]:
    """The (path, line) of every conflict marker ``tree`` adds to ``parent``."""
    done = wt.call(
        ["-c", "core.quotePath=false", "diff", "--check", "--no-ext-diff", "--no-renames", parent, tree],
        env=env,
        text=True,
        errors="replace",
    )
    if done.returncode not in (0, 2):  # 2: it found something to say
        raise GitError(f"git diff --check failed: {done.stderr.strip()[:300]}")
    found: set[tuple[str, int]] = set()
    for line in done.stdout.splitlines():
        match = _MARKER.match(line)
        if match:
            found.add((match["path"], int(match["line"])))
    return found


def told(note: str | None) -> str:
    """What the next turn is told first when the thread's last turn left a merge open (else "")."""
    if not note or not note.startswith(OPEN):
        return ""
    return (
        f"Before anything else: your last turn ended with the merge not concluded — {note}. The merge "
        "is still in progress in your worktree; resolve every conflict marker first (baton concludes the "
        "merge after your turn once none is left).\n\n"
    )
