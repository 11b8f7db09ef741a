"""What a forge thread's status comment says of a turn whose environment was not prepared: the
repository's setup failed or was stopped at ``setup_timeout`` (the run's error, as
:mod:`baton.runner.setuprun` writes it), or it could not be prepared at all (an unusable setup file, a
prepared tree that failed). In its own words: what failed, which command, that the agent did not run and
the next turn tries again; the output's last lines folded in a code fence nothing in them can close,
bounded, with the secrets of baton's environment blanked. The command's name and the output are the
repository's: data, never markup.
"""

from __future__ import annotations

from baton.environment import SetupFailure, parse
from baton.forge.turn.prompts import fenced
from baton.forge.writes.agent_answer import shown

__all__ = ["SetupFailure", "parse", "status_lines"]

MAX_WHAT = 300  # characters of "<source>: <command> <how>"
MAX_TAIL = 4000  # characters of the output's tail (the runner keeps no more)
ENVIRONMENT = "environment: "  # how the runner's other errors of preparing start


def _code(text: str) -> str:
    """``text`` as one inline code span: on one line, no backtick to close it, bounded."""
    flat = " ".join(text.replace("`", "'").split())
    return f"`{flat[:MAX_WHAT]}{'…' if len(flat) > MAX_WHAT else ''}`"


def status_lines(error: str | None) -> list[str] | None:
    """The status comment's lines for a turn whose environment was not prepared; None for any other."""
    failure = parse(error)
    if failure is None:
        if not error or not error.startswith(ENVIRONMENT):
            return None
        why = _code(error[len(ENVIRONMENT) :])
        return [
            f"- **the repository's environment could not be prepared**: {why} — the agent did not run; "
            "the thread's next turn tries again"
        ]
    head = (
        "the repository's setup was stopped at its time limit (`setup_timeout`)"
        if failure.timed_out
        else "the repository's setup failed"
    )
    lines = [
        f"- **{head}**: {_code(failure.what)} — the agent did not run; the thread's next turn runs the "
        "setup again"
    ]
    if not failure.tail.strip():
        return [*lines, "- the setup printed nothing"]
    tail = shown(failure.tail)[-MAX_TAIL:]
    return [
        *lines,
        "",
        "<details><summary>the setup's last lines of output</summary>",
        "",
        fenced(tail, "text"),
        "",
        "</details>",
    ]
