"""What one run hands from step to step, as frozen values, each made by one step and only read after:
:class:`~baton.runner.resolve.Resolved` (the request checked), :class:`Context` (the run's surroundings
once the key's lease is held), :class:`Prepared` (the key made ready: worktree, session, lineage, sync),
:class:`Attempt` (which attempt this is and what came before it) and :class:`Decision` (how that attempt
starts its conversation). The mutable things a run carries are the key's
:class:`~baton.models.SessionRecord` (:attr:`Prepared.session`): the store's record, which every attempt
writes as it goes, and :attr:`Context.unstruck`, what the run learnt of its strikes (a read saved).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from baton.agents import Agent
from baton.keys import Key
from baton.models import Access, Fence, Mode, Outcome, PromptKind, RunRecord, SessionRecord
from baton.runner.quota import Breaker
from baton.runner.request import RunRequest
from baton.runner.resolve import Resolved
from baton.settings import Settings
from baton.store.base import KeyStore, Transactions
from baton.workspace.workdirs import Workdirs

if TYPE_CHECKING:
    from baton.sandbox.enclosure import Container


@dataclass(frozen=True)
class Context:
    """What every step of one run works with, fixed from the moment the key's lease is held."""

    resolved: Resolved
    settings: Settings
    store: KeyStore
    workdirs: Workdirs
    lost: threading.Event  # set when the key's lease was taken over: stop, write nothing more
    fence: Fence | None = None  # the lease's proof: the store refuses this run's writes after a takeover
    run_id: str = ""  # the run's id, on each attempt's record (a job's id, else the first attempt's)
    breaker: Breaker | None = None  # its credential's usage-quota breaker, checked before the lease
    # conversations of the key read with no strikes under this lease (only its holder writes them): a
    # turn that reached the model has nothing to clear there (:mod:`baton.runner.quarantine`)
    unstruck: set[str] = field(default_factory=set, compare=False)

    @property
    def request(self) -> RunRequest:
        return self.resolved.request

    @property
    def key(self) -> Key:
        return self.resolved.key

    @property
    def agent(self) -> Agent:
        return self.resolved.agent

    @property
    def access(self) -> Access:
        return self.resolved.access

    @property
    def tables(self) -> Transactions:
        """The store's transactions, for the rooms' own tables (caps, strikes): the runner's store is
        the whole Store; ``store`` names only what runs use."""
        return cast(Transactions, self.store)


@dataclass(frozen=True)
class ForkSource:
    """The conversation a fork branches from, looked up once before anything is written."""

    key: Key
    session_id: str
    cwd: Path  # the source's worktree: agents that key sessions by directory (Gemini) find it there


@dataclass(frozen=True)
class Decision:
    mode: Mode
    session_id: str | None  # the conversation to resume or fork
    kind: PromptKind
    reason: str = ""  # for the interrupted note: how the last turn ended
    previous: str = ""  # the interrupted instruction (the agent may not have flushed it to disk)
    note: str | None = None  # why: recorded on the run
    told: str = ""  # said before the instruction: the interrupted turn's instruction was carried elsewhere
    cut_short: tuple[str, ...] = ()  # runs whose instructions a new conversation is told whole (not recapped)
    instructions: str = ""  # said before the instruction: the agent's instruction files changed under it
    lineage: str | None = None  # a new conversation in place of the key's last: why (rollover, lost, ...)
    compact: bool = False  # the CLI compacts the conversation in place first (it outgrew the threshold)


# What every interrupted turn's message ends with: what happens to the conversation next.
KEPT = "the conversation is kept and the next run is told this turn was interrupted"


class Start(Enum):
    """Why an attempt starts."""

    FIRST = "first"  # the run's first attempt; the key's last turn had ended (or there was none)
    AFTER_INTERRUPTION = "after interruption"  # the run's first; the key's last turn did not end
    RETRY = "retry"  # a later attempt of the same run (a retryable outcome, or a lost conversation)


@dataclass(frozen=True)
class Attempt:
    """One attempt's own facts; everything else it reads from :class:`Context` and :class:`Prepared`."""

    number: int
    start: Start
    interrupted: RunRecord | None = None  # the turn cut short before this one: the prompt says so
    forced: Mode | None = None  # RECOVER once this run lost the conversation (never undone)
    lost: str | None = None  # why it was lost or quarantined: the recover attempt's note
    left_running: str | None = None  # what the turn before this one left running, stopped at its end
    cause: Outcome | None = None  # what forced RECOVER: the outcome of the attempt before it

    @property
    def first(self) -> bool:
        """The run's first attempt: it carries what preparing the key did (its note, the sync)."""
        return self.start is not Start.RETRY

    def retry(self, after: RunRecord, forced: Mode | None = None) -> Attempt:
        """The next attempt after ``after``: a retry of a retryable outcome is told it was
        interrupted; one forced to recover a lost conversation keeps what this one was told."""
        interrupted = self.interrupted if forced else after
        lost = self.lost
        if forced == Mode.RECOVER:  # why, as the recover attempt's note (a refused one says so itself)
            said = after.outcome == Outcome.CONTEXT_FULL or not after.error
            lost = after.error if said else f"the agent could not resume the conversation: {after.error}"
        left, cause = after.left_running, after.outcome if forced else self.cause
        return Attempt(self.number + 1, Start.RETRY, interrupted, forced or self.forced, lost, left, cause)


@dataclass(frozen=True)
class Prepared:
    """The key made ready for its attempts (:func:`baton.runner.prepare.prepare`)."""

    session: SessionRecord  # the key's record (mutable: see the module docstring)
    worktree: Path
    note: str | None = None  # what preparing had to do (seed, restore, undo a killed sync): first attempt
    sync: dict[str, Any] | None = None  # what syncing with upstream brought in: on the first attempt
    sync_text: str = ""  # ...and what every attempt's prompt tells the agent about it, first thing
    setup_text: str = ""  # the environment's setup ran this turn: what the prompt says was prepared
    conflicted: bool = False  # the sync conflicted and left the worktree as it was: no agent runs
    fork: ForkSource | None = None  # mode fork: the conversation it branches from
    first: Decision | None = None  # a fork's or hand-off's first attempt, decided before it was kept
    recap: str = ""  # a hand-off's recap of the other agent's conversation
    source: str = ""  # the agent a hand-off came from
    warnings: tuple[str, ...] = ()  # things the caller should know
    container: Container | None = None  # environment container: the image its setup and agent run in
