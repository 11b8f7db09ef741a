"""A thread parked at a cap: its last turn ended ``needs_input`` before its agent started (or was
stopped at a model request by baton's model gateway), the question baton's (it carries the reached cap:
:func:`baton.caps.words.question`) and the turn's instruction kept on the run. :func:`parked` finds it;
:func:`resume_prompt` is what the turn that resumes it runs: the capped turn's instruction, once, and
whatever a person said meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass

from baton.caps.model import RUN_CAPS, Caps, Reached
from baton.models import Outcome, RunRecord
from baton.store.base import RunStore


@dataclass(frozen=True)
class Parked:
    """The run that parked at a cap, the cap, and the caps its request carried (a resume keeps them)."""

    run: RunRecord
    reached: Reached
    run_caps: Caps


def of_run(run: RunRecord) -> Parked | None:
    """``run`` as a parked turn, or None when it is not one (an agent's question, any other ending)."""
    question = run.question if run.outcome == Outcome.NEEDS_INPUT else None
    if not isinstance(question, dict):
        return None
    reached = Reached.from_json(question.get("cap"))
    return Parked(run, reached, Caps.from_json(question.get(RUN_CAPS))) if reached else None


def parked(store: RunStore, agent: str, repo: str, thread: str) -> Parked | None:
    """The turn the key (``repo`` is its slug) is parked on at a cap, or None."""
    session = store.get_session(agent, repo, thread)
    if session is None or session.last_outcome != Outcome.NEEDS_INPUT:
        return None
    last = store.list_runs(agent, repo, thread, limit=1)
    return of_run(last[0]) if last else None


def resume_prompt(found: Parked, said: str | None = None, by: str = "") -> str:
    """The resuming turn's prompt: the capped turn's instruction and, when a person answered the
    thread while it waited (``said``, by ``by``), their words after it, quoted as data."""
    if not said or not said.strip():
        return found.run.prompt
    quoted = "\n".join(f"> {line}" for line in said.replace("\x00", "\ufffd").splitlines() or [""])
    return f"{found.run.prompt}\n\nWhile this thread waited at its spending cap, {by} said:\n\n{quoted}\n"
