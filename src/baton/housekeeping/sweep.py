"""Expiry and orphans (being built)."""

from __future__ import annotations

import threading

from baton.settings import Settings


def sweep_periodically(settings: Settings, stop: threading.Event) -> None:
    """The service's sweeper thread: sweep every ``sweep_interval`` seconds until ``stop``."""
    stop.wait()
