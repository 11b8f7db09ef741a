"""What a caller asks :func:`baton.run` for, and what it gets back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from baton.models import Mode, OnConflict, Outcome, RunRecord, SessionRecord, SyncHow

EventCallback = Callable[[RunRecord, dict[str, Any]], None]


@dataclass
class RunRequest:
    """What to run: a key, an instruction and how to run it."""

    agent: str
    repo: str
    thread: str
    prompt: str
    mode: Mode = Mode.AUTO
    branch: str | None = None
    base: str | None = None
    context: str | None = None  # task context, added to full and recap prompts only
    fork_from: str | None = None  # with mode fork: the thread whose conversation to branch from
    sync: SyncHow | None = None  # bring upstream changes in before the turn (None: the setting)
    on_conflict: OnConflict | None = None  # what a conflicting sync does (None: the setting)
    base_thread: str | None = None  # a new key's branch starts from this thread's branch (stacked)
    handoff_from: str | None = None  # a new conversation that starts with a recap of this agent's one
    timeout: float | None = None
    retries: int = 0
    wait: float = 0.0
    cancel: threading.Event = field(default_factory=threading.Event)
    on_event: EventCallback | None = None  # live subscriber: every agent event as it arrives
    on_start: Callable[[RunRecord], None] | None = None


@dataclass
class RunResult:
    """The outcome of :func:`run`: the last attempt, every attempt, and the session after them."""

    run: RunRecord
    attempts: list[RunRecord]
    session: SessionRecord
    warnings: list[str] = field(default_factory=list)  # things the caller should know (printed by the CLI)

    @property
    def ok(self) -> bool:
        return self.run.outcome == Outcome.SUCCEEDED

    def to_json(self) -> dict[str, Any]:
        run = self.run
        return {
            "run_id": run.id,
            "agent": run.agent,
            "repo": run.repo,
            "thread": run.thread,
            "session_id": self.session.agent_session_id,
            "mode": run.mode.value,
            "prompt_kind": run.prompt_kind.value,
            "outcome": run.outcome.value,
            "attempt": run.attempt,
            "result": run.result,
            "error": run.error,
            "usage": run.usage,
            "cost_usd": run.cost_usd,
            "worktree": self.session.worktree,
            "branch": self.session.branch,
            "duration_s": run.duration_s,
            "note": run.note,
            "sync": run.sync,
            "warnings": self.warnings,
            "runs": [
                {"run_id": a.id, "mode": a.mode.value, "outcome": a.outcome.value} for a in self.attempts
            ],
        }
