"""Every error baton raises on purpose derives from :class:`BatonError`; and the exit code of an outcome.
Messages are written for the person at the terminal, and each class carries the CLI exit code it maps
to (the codes and their meanings: docs/cli.md, "Exit codes"), so the CLI turns any ``BatonError`` into a
clean message and a meaningful code without a lookup table. Work that ran and ended some way (a run, a
queued run, a sync) exits with :func:`exit_code_of` its outcome: the one map of outcomes to codes.
Third-party errors are translated at the boundary with ``raise X from exc``.
"""

from __future__ import annotations

import re
from typing import Any

from baton.models import Outcome

# how a run (or a sync) ended -> the exit code; any other outcome exits 1
OUTCOME_EXIT: dict[str, int] = {
    Outcome.SUCCEEDED: 0,
    Outcome.CONFLICT: 5,
    Outcome.NEEDS_INPUT: 7,  # the agent asked a person: `baton answer` resumes the thread
    Outcome.RATE_LIMITED: 75,  # EX_TEMPFAIL: try again later (when the quota resets)
    Outcome.CANCELLED: 130,
}


def exit_code_of(*outcomes: str | None) -> int:
    """The exit code of an outcome (``None``: unknown, 1), or of several together: 0 when all
    succeeded, else the code the others share, else 1."""
    codes = {OUTCOME_EXIT.get(outcome or "", 1) for outcome in outcomes} - {0}
    if len(codes) > 1:
        return 1
    return codes.pop() if codes else 0


class BatonError(Exception):
    """Base class: a user-facing message and an exit code."""

    exit_code = 1


class BadInput(BatonError):
    """The caller asked for something malformed or impossible; nothing was written."""

    exit_code = 2


class NotFound(BadInput):
    """A session, run, file or local repository the caller named does not exist."""


class NotWaiting(BadInput):
    """An answer to a thread that waits on no question (its last turn asked nothing)."""


class Busy(BatonError):
    """Another runner holds the key's lease and the wait ran out."""

    exit_code = 3


class BranchBusy(Busy):
    """Another key's run writes the same branch of the same repository (it holds the branch's lease)
    and the wait ran out: one writer per branch, across machines."""


class BranchConflict(BatonError):
    """Two keys of one machine share a branch, and the one about to write it cannot take it: its own
    worktree, parked while the other key wrote the branch, cannot be brought onto the branch's new tip
    (its uncommitted work conflicts with the new commits, or it holds commits the branch lacks), or
    another worktree holds the branch in a state baton does not take over (a merge or rebase in
    progress, or a worktree of no key on that branch). The agent did not start; nothing was changed."""

    exit_code = 5


class Fenced(Busy):
    """A write by a runner whose lease was taken over (its fencing token is older than the store's):
    refused, and the runner stops."""


class QuotaHeld(BatonError):
    """The credential's usage quota is spent (its breaker holds, :mod:`baton.runner.quota`): the run
    was not started, nothing was written. ``resets_at``: when runs of it may start again."""

    exit_code = 75

    def __init__(self, message: str, resets_at: float, credential: str) -> None:
        super().__init__(message)
        self.resets_at = resets_at
        self.credential = credential


class GitError(BatonError):
    """A git command failed; the message carries git's own words (never a credential), ``output``
    everything it printed (whole, unredacted: its reader redacts what it shows)."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


class AgentError(BatonError):
    """The agent CLI could not be started or behaved in a way baton cannot use."""


class Unconfined(BatonError):
    """``BATON_CONFINE=required``, and this machine cannot wall an agent in (no Landlock): no agent is
    started."""

    exit_code = 2


class StoreError(BatonError):
    """The store could not be opened, migrated or written."""


class StoreUnavailable(StoreError):
    """The store (or the Redis that grants its leases) could not be reached: a server down, restarting,
    or cut off from this machine. The same call may succeed once it is back; the end of a turn waits for
    it a bounded time (setting ``store_outage_wait``, :mod:`baton.runner.outage`)."""


class StoreBusy(StoreUnavailable):
    """A statement waited its bound for a lock another connection holds, or ran past its time limit
    (settings ``store_lock_timeout``, ``store_statement_timeout``): the holder may be a process frozen
    mid-transaction, whose transaction the store ends within ``store_idle_timeout``. Tried again as a
    store that was away (:mod:`baton.store.limits`)."""


class RemoteError(GitError):
    """A remote repository could not be reached: the network, the URL's host or the credentials."""

    exit_code = 4


class DiskFull(BatonError):
    """No space left on the device that holds ``BATON_HOME`` (or the worktrees)."""


class CannotListen(BatonError):
    """``baton serve`` cannot listen on its address: the port is in use, or not allowed."""

    exit_code = 6


class Cancelled(BatonError):
    """Cancelled before the work started (while waiting for a busy key); nothing was written."""

    exit_code = 130


# What a value must be, by the kind of pydantic error that refused it (Typer 0.29 parses options with
# pydantic, and the API's bodies are pydantic models): the words baton prints instead of pydantic's.
_TAKES = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "text",
    "greater_than": "a number more than {gt}",
    "greater_than_equal": "a number of at least {ge}",
    "less_than": "a number less than {lt}",
    "less_than_equal": "a number of at most {le}",
    "string_too_long": "at most {max_length} characters",
    "literal_error": "one of {expected}",
    "enum": "one of {expected}",
    "dict_type": "a JSON object",
    "model_type": "a JSON object",
    "model_attributes_type": "a JSON object",
}


def invalid_value(name: str, error: dict[str, Any]) -> str:
    """One of pydantic's validation errors (an item of ``ValidationError.errors()``) in baton's words:
    the option or field ``name``, what it takes, and what it was given."""
    kind, ctx, given = error.get("type", ""), error.get("ctx") or {}, error.get("input")
    if kind == "missing":
        return f"{name} is required"
    if kind == "extra_forbidden":
        return f"{name} is not an option of this request"
    if kind == "json_invalid":
        return f"{name} is not valid JSON ({ctx.get('error', 'unreadable')})"
    takes = _TAKES.get(kind, "")
    if kind == "value_error":  # a validator's own words, such as Typer's for an enum's choices
        said = str(ctx.get("error", error.get("msg", "")))
        choices = re.fullmatch(r".* is not one of (.*?)\.?", said, re.DOTALL)
        if choices is None:
            return f"{name}: {said}"
        takes = "one of " + choices.group(1).replace("'", "")
    shown = repr(given) if len(repr(given)) <= 60 else repr(given)[:57] + "..."
    if not takes:
        return f"{name} is invalid: {shown}"
    return f"{name} takes {takes.format(**ctx)}, not {shown}"
