"""The question a thread waits on: its key's last turn ended ``needs_input`` and no turn has run since
(:func:`waiting`), and the turn that answers it (:func:`answering`), which every surface (the CLI's
``baton answer``, the API, the dashboard) makes the same way: the same key, resuming its conversation,
the question and the answer as the prompt (:func:`answer_to`), refused at once while a run of the key
is queued or running (:func:`under_way`: an answer on its way), and by the runner unless the thread
still waits on that question (``RunRequest.answers``), so one answer resumes it. A thread parked at a
spending cap waits on baton's question (:mod:`baton.caps.parked`): its answer resumes the capped turn's
instruction with the answer after it, and the cap is checked again first, so only a raise lets it run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from baton.asking.questions import Question, answer_prompt
from baton.caps.parked import of_run, resume_prompt
from baton.errors import BadInput, NotWaiting
from baton.models import JobRecord, JobStatus, Outcome, RunRecord, SessionStatus, iso
from baton.store.base import RunLookup, RunStore


@dataclass(frozen=True)
class Waiting:
    """A thread waiting for a person: the run that asked and what it asked."""

    run: RunRecord
    question: Question

    @property
    def asked_at(self) -> float:
        return self.run.ended_at or self.run.started_at

    def to_json(self) -> dict[str, Any]:
        return {**self.question.to_json(), "run_id": self.run.run_id, "asked_at": iso(self.asked_at)}


def waiting(store: RunStore, agent: str, repo: str, thread: str) -> Waiting | None:
    """The question the key (``repo`` is its slug) waits on, or None when it waits on none."""
    session = store.get_session(agent, repo, thread)
    if (
        session is None
        or session.status == SessionStatus.RUNNING
        or session.last_outcome != Outcome.NEEDS_INPUT
    ):
        return None
    last = store.list_runs(agent, repo, thread, limit=1)
    if not last or last[0].outcome != Outcome.NEEDS_INPUT:
        return None
    question = Question.from_json(last[0].question)
    return Waiting(last[0], question) if question is not None else None


@dataclass(frozen=True)
class Answer:
    """The turn that answers a question: its prompt, and the run whose question it answers (the
    request's ``answers``: the runner refuses it unless the thread still waits on that run)."""

    prompt: str
    answers: str


def under_way(store: RunLookup, agent: str, repo: str, thread: str) -> JobRecord | None:
    """A submitted run of the key that is queued or running (an answer on its way, or another turn):
    while there is one, the thread does not wait for an answer."""
    for status in (JobStatus.QUEUED, JobStatus.RUNNING):
        found = store.list_jobs(agent, repo, thread, status=status, limit=1)
        if found:
            return found[0]
    return None


def answering(store: RunLookup, agent: str, repo: str, thread: str, answer: str, by: str) -> Answer:
    """The turn that answers the key's question; NotWaiting when it waits on none or a run of the key
    is queued or running (:func:`under_way`), BadInput for an empty answer (nothing is written)."""
    if not answer.strip():
        raise BadInput("the answer is empty")
    found = waiting(store, agent, repo, thread)
    if found is None:
        raise NotWaiting(
            f"{agent}:{repo}:{thread} is not waiting for an answer (its last turn asked nothing)"
        )
    busy = under_way(store, agent, repo, thread)
    if busy is not None:
        raise NotWaiting(
            f"{agent}:{repo}:{thread} has a run {busy.status.value} already (run {busy.id}): an answer is "
            "on its way, and the thread is not waiting"
        )
    return Answer(answer_to(found, answer, by), found.run.run_id)


def answer_to(found: Waiting, answer: str, by: str) -> str:
    """The prompt that carries ``by``'s ``answer`` to what ``found`` waits on: the agent's question and
    the answer; or, parked at a cap, the capped turn's instruction with the answer after it."""
    capped = of_run(found.run)
    if capped is not None:
        return resume_prompt(capped, answer, by)
    return answer_prompt(found.question, answer, by)
