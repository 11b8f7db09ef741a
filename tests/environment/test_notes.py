"""The environment's line of a run's note (:func:`baton.environment.split_note`), as the dashboard shows
it apart: found wherever the runner put it among the joined notes, whole (its own "; then" and the
"; " inside its reasons kept), and the rest of the note left as it was."""

from __future__ import annotations

from baton.environment import split_note

SHARED = (
    "environment: setup from .baton/setup.sh (setup.sh) (.baton/setup.sh, the first baton looks for; the "
    "key's first setup): the preparation of 0123456789ab was ready (a hit), copied into the worktree in "
    "0.1 s: 1 result(s) copied (build); 0 file(s) and 0 link(s) relocated, 0 binary file(s) left as "
    "they are; the repository's preparations 1, hits 2"
)


def test_the_line_among_other_notes() -> None:
    assert split_note(f"hydrated from the store; {SHARED}; the agent left 2 processes") == (
        SHARED,
        "hydrated from the store; the agent left 2 processes",
    )
    assert split_note(SHARED) == (SHARED, None)


def test_what_ran_after_the_shared_part_is_the_lines_own() -> None:
    line = f"{SHARED}; then maintenance from .baton/setup.sh (setup.sh) (x; changed: uv.lock) ran in 2.5 s"
    assert split_note(f"{line}; resumed") == (line, "resumed")


def test_failures_and_no_line() -> None:
    failed = "environment: setup from .devcontainer.json (onCreateCommand.<b>x</b>) (y) did not succeed"
    assert split_note(failed) == (failed, None)
    unusable = "environment: the repository's setup cannot be used"
    assert split_note(f"recovered; {unusable}") == (unusable, "recovered")
    assert split_note("recovered after a lost session") == (None, "recovered after a lost session")
    assert split_note(None) == (None, None)
