"""Executors run submitted jobs (:class:`baton.models.JobRecord`). The API only stores a job as
``queued`` and calls :meth:`Executor.submit`; an in-process pool (:mod:`baton.fleet.local`) runs
it, or, when a broker is configured (``BATON_BROKER_URL``), Celery workers on any machine do
(:mod:`baton.fleet.celery`), without the API changing. :func:`make_executor` picks one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from baton.fleet.local import LocalExecutor

if TYPE_CHECKING:
    from baton.settings import Settings
    from baton.store import Store


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

    def stop(self) -> None:
        """Stop taking jobs and wait for the running ones (bounded)."""
        ...


def make_executor(settings: Settings, store: Store) -> Executor:
    """Celery workers when a broker is configured, else the in-process pool."""
    if settings.broker_url:
        # lazy: the celery extra
        from baton.fleet.celery import CeleryExecutor

        return CeleryExecutor(settings, store)

    return LocalExecutor(settings, store)


def check_executor(settings: Settings) -> None:
    """Fail now (BadInput) when the configured executor cannot work: a broker URL of another kind, or
    the celery extra missing. Nothing is connected."""
    if settings.broker_url:
        # lazy: the celery extra
        from baton.fleet.celery import make_app

        make_app(settings)
