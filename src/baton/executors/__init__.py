"""Executors run submitted jobs (:class:`baton.models.JobRecord`). The API only stores a job as
``queued`` and calls :meth:`Executor.submit`; an in-process pool (:mod:`baton.executors.local`) runs it
now, a Celery queue later, without the API changing."""

from __future__ import annotations

from typing import Protocol


class Executor(Protocol):
    def start(self) -> None:
        """Begin taking jobs: the queued ones already stored first (a restart loses nothing)."""
        ...

    def submit(self, job_id: str) -> None:
        """A job was stored ``queued``: run it when a slot is free and no earlier job of its key is
        queued or running (runs of one key start in submission order)."""
        ...

    def cancel(self, job_id: str) -> bool:
        """Stop a queued or running job (the agent's group is killed, outcome ``cancelled``, the
        conversation kept); False when it already ended or is unknown."""
        ...

    def queue_depth(self) -> int: ...

    def stop(self) -> None:
        """Stop taking jobs and wait for the running ones (bounded)."""
        ...
