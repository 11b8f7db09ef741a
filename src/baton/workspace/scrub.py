"""What a repository's setup made, taken out of the commits a push would carry. The setup's results
(``.venv``, ``node_modules``, ``build``: the paths its commit did not track) are kept out of git for
every thread (:mod:`baton.workspace.excluded`), but an agent can still force them in (``git add -f``,
or a commit made before they were excluded). :func:`scrub` rewrites the branch's new commits (those
neither the base nor the forge has yet) without those paths, each keeping its author, committer,
dates and message, so the same commits always become the same rewritten ones; then the worktree's
branch is moved to the rewritten tip with its files untouched (``git reset --mixed``): what the setup
made stays in the worktree, untracked, and the agent's own work is all still committed. A commit
that touched nothing of them is kept as it is (merges of people's pushes keep their ids)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

from baton.workspace.gitcmd import WorktreeGit

SAFE = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"]
# author and committer of a commit, read back as git's own variables (``--date=raw``: "<unix> <tz>")
_WHO = ("AUTHOR_NAME", "AUTHOR_EMAIL", "AUTHOR_DATE", "COMMITTER_NAME", "COMMITTER_EMAIL", "COMMITTER_DATE")
_FORMAT = "%an%x00%ae%x00%ad%x00%cn%x00%ce%x00%cd"


@dataclass(frozen=True)
class Scrubbed:
    """The branch's tip after :func:`scrub`, and the commits that were rewritten."""

    head: str
    rewritten: int
    paths: tuple[str, ...]  # the results the rewritten commits had added or changed

    def said(self) -> str:
        return (
            f"{self.rewritten} commit(s) rewritten without what the repository's setup made "
            f"({', '.join(self.paths[:4])}{', …' if len(self.paths) > 4 else ''}): it stays in the worktree"
        )


def scrub(
    wt: WorktreeGit, env: Mapping[str, str], head: str, known: list[str], results: list[str]
) -> Scrubbed | None:
    """The branch at ``head`` without ``results`` in the commits ``known`` (the base, what the forge
    has) does not reach; None when none of them touches one (nothing is rewritten)."""
    specs = [f":(literal){path}" for path in results if path and not path.startswith("/")]
    if not specs:
        return None
    fresh = ["--not", *known] if known else []
    touched = wt.run([*SAFE, "log", "--format=%H", head, *fresh, "--", *specs], env=env).split()
    if not touched:
        return None
    order = wt.run([*SAFE, "rev-list", "--reverse", "--topo-order", "--parents", head, *fresh], env=env)
    mapping: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="baton-scrub-") as tmp:
        index = {**env, "GIT_INDEX_FILE": os.path.join(tmp, "index")}
        for line in order.splitlines():
            commit, *parents = line.split()
            mapping[commit] = _rewrite(wt, index, commit, [mapping.get(p, p) for p in parents], specs)
    paths = wt.run([*SAFE, "diff", "--name-only", "--no-renames", head, mapping[head], "--"], env=env)
    wt.run([*SAFE, "reset", "--quiet", "--mixed", mapping[head]], env=env)  # files untouched
    tops = sorted({p.split("/", 1)[0] for p in paths.splitlines() if p})
    return Scrubbed(mapping[head], len([c for c, n in mapping.items() if c != n]), tuple(tops))


def _rewrite(wt: WorktreeGit, env: dict[str, str], commit: str, parents: list[str], specs: list[str]) -> str:
    """``commit`` without ``specs``, on ``parents`` (its own, rewritten); itself when that changes
    nothing."""
    wt.run([*SAFE, "read-tree", commit], env=env)
    wt.run([*SAFE, "rm", "-r", "-f", "--cached", "--ignore-unmatch", "--quiet", "--", *specs], env=env)
    tree = wt.run([*SAFE, "write-tree"], env=env)
    was_tree = wt.run([*SAFE, "rev-parse", f"{commit}^{{tree}}"], env=env)
    was_parents = wt.run([*SAFE, "rev-list", "--parents", "-n", "1", commit], env=env).split()[1:]
    if tree == was_tree and parents == was_parents:
        return commit
    who = wt.run([*SAFE, "log", "-1", "--date=raw", f"--format={_FORMAT}", commit], env=env).split("\0")
    raw = wt.run([*SAFE, "cat-file", "commit", commit], env=env, raw=True)
    message = raw.split("\n\n", 1)[1] if "\n\n" in raw else ""
    named = {f"GIT_{name}": value for name, value in zip(_WHO, who, strict=True)}
    args = ["commit-tree", tree, *[a for p in parents for a in ("-p", p)], "-F", "-"]
    return wt.run([*SAFE, *args], env={**env, **named}, stdin=message)
