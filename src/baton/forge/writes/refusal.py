"""When baton's push of a thread's branch fails, what the status comment says of it (:class:`Refusal`,
from the :class:`GitError`'s ``output``): what happened in baton's words — someone else pushed to the
branch, the forge refused it (a protected branch, a rule, a hook), refused baton's credentials, could
not be reached — and git's own lines below, whole and folded (:func:`folded`: a ``<details>`` block),
never three lines of its hints cut mid-sentence. git's lines carry the forge's (a hook's ``remote:``
lines), so they are data: credentials in a URL redacted, control characters dropped, bounded by whole
lines, and fenced so no line can close the block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from baton.errors import GitError
from baton.forge.writes.gitauth import REFUSED
from baton.workspace.gitcmd import redact

MAX_LINES, MAX_CHARS = 60, 6000  # git's lines kept in the comment (whole lines, the first ones)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # a tab kept
_BEHIND = re.compile(r"\[rejected\] \((?:fetch first|non-fast-forward|stale info)\)")
_PROTECTED = re.compile(r"protected branch|GH006|pre-receive hook declined|\[remote rejected\]", re.I)
_UNREACHABLE = re.compile(
    r"unable to access|could not resolve|connection refused|failed to connect|timed out|"
    r"could not read from remote repository|remote end hung up|early eof",
    re.I,
)


@dataclass(frozen=True)
class Refusal:
    """A failed push as the thread's status comment says it."""

    said: str  # baton's words: what happened and what becomes of the work
    git: str  # git's own lines, whole (bounded, redacted, without control characters)

    @classmethod
    def of(cls, exc: GitError, branch: str) -> Refusal:
        git = _clean(exc.output or str(exc))
        return cls(_said(git, branch), git)


def _said(git: str, branch: str) -> str:
    kept = "the work is kept in baton's worktree"
    if _BEHIND.search(git):
        return (
            f"someone else pushed to `{branch}` since baton last did, and baton never overwrites their "
            f"commits: {kept}, and the thread's next turn brings theirs in and pushes both"
        )
    if REFUSED.search(git):
        return f"the forge refused baton's credentials for `{branch}` (its token or its access): {kept}"
    if _PROTECTED.search(git):
        return f"the forge refused the push to `{branch}` (a protected branch, a rule or a hook): {kept}"
    if _UNREACHABLE.search(git):
        return f"git could not reach the forge to push `{branch}`: {kept}, and the next turn pushes it"
    return f"git could not push `{branch}`: {kept}"


def _clean(output: str) -> str:
    """git's lines, whole: redacted, control characters dropped, the first :data:`MAX_LINES` (and
    :data:`MAX_CHARS`) kept, and how many were left out said."""
    lines = [_CONTROL.sub("", redact(line)).rstrip() for line in output.strip().splitlines()]
    kept: list[str] = []
    size = 0
    for line in lines[:MAX_LINES]:
        size += len(line) + 1
        if size > MAX_CHARS:
            break
        kept.append(line)
    if len(kept) < len(lines):
        kept.append(f"[{len(lines) - len(kept)} more lines of git's left out]")
    return "\n".join(kept)


def folded(git: str) -> list[str]:
    """git's lines as the status comment shows them: folded in a ``<details>`` block, in a code fence
    longer than any run of backticks in them (so no line ends it)."""
    if not git:
        return []
    longest = max((len(run) for run in re.findall(r"`+", git)), default=0)
    fence = "`" * max(3, longest + 1)
    return [
        "",
        "<details><summary>git's own words</summary>",
        "",
        fence + "text",
        git,
        fence,
        "",
        "</details>",
    ]
