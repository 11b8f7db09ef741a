"""The in-process executor (being built)."""

from __future__ import annotations

from baton.settings import Settings
from baton.store import Store


class LocalExecutor:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings, self.store = settings, store

    def start(self) -> None:
        pass

    def submit(self, job_id: str) -> None:
        raise NotImplementedError

    def cancel(self, job_id: str) -> bool:
        raise NotImplementedError

    def queue_depth(self) -> int:
        return 0

    def stop(self) -> None:
        pass
