"""A refused push in the status comment (:mod:`baton.forge.writes.refusal`): baton's words by what git said,
git's own lines kept whole below — redacted, without control characters, bounded by whole lines, in a
fence no line of theirs can close. The refusal after a person's push, through the loop:
test_forge_loop.py; a protected branch on the fake GitHub: test_forge_hostile.py."""

from __future__ import annotations

import pytest

from baton.errors import GitError
from baton.forge.writes.refusal import MAX_LINES, Refusal, folded

HINT = (
    "hint: Updates were rejected because a pushed branch tip is behind its remote\n"
    "hint: counterpart. Check out this branch and integrate the remote changes\n"
    "hint: (e.g. 'git pull ...') before pushing again."
)


@pytest.mark.parametrize(
    ("output", "said"),
    [
        (f"!\tabc:refs/heads/b\t[rejected] (non-fast-forward)\nDone\n{HINT}", "someone else pushed to `b`"),
        ("!\tabc:refs/heads/b\t[remote rejected] (protected branch hook declined)", "a protected branch"),
        ("remote: GH006: Protected branch update failed for refs/heads/b.", "a protected branch"),
        ("fatal: Authentication failed for 'https://forge.example/acme/api.git/'", "credentials"),
        ("fatal: unable to access 'https://forge.example/': Could not resolve host", "could not reach"),
        ("error: something else", "git could not push `b`"),
    ],
)
def test_batons_words_by_what_git_said(output: str, said: str) -> None:
    refusal = Refusal.of(GitError("git push failed", output), "b")
    assert said in refusal.said and "the work is kept in baton's worktree" in refusal.said
    assert "hint" not in refusal.said and refusal.git == output.strip()


def test_gits_lines_are_whole_and_data() -> None:
    hostile = (
        "remote: ```\nremote: </details> @everyone \x1b[31mred\x1b[0m\nTo https://u:tok@forge.example/x.git"
    )
    refusal = Refusal.of(GitError("git push failed", f"{hostile}\n{HINT}"), "b")
    assert "tok" not in refusal.git and "\x1b" not in refusal.git
    assert "hint: counterpart. Check out this branch" in refusal.git  # whole lines, each from its start
    shown = folded(refusal.git)
    assert shown[1] == "<details><summary>git's own words</summary>" and shown[-1] == "</details>"
    fence = shown[3].removesuffix("text")
    assert fence == "````" and shown[5] == fence  # longer than any run of backticks inside
    many = GitError("git push failed", "\n".join(f"remote: line {n}" for n in range(500)))
    kept = Refusal.of(many, "b").git.splitlines()
    assert len(kept) == MAX_LINES + 1 and kept[-1] == f"[{500 - MAX_LINES} more lines of git's left out]"
    assert folded("") == []


def test_a_git_that_could_not_run_is_said_too() -> None:
    refusal = Refusal.of(GitError("cannot run git: no such file"), "b")
    assert refusal.said.startswith("git could not push `b`") and refusal.git == "cannot run git: no such file"
