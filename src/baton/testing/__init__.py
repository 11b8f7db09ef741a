"""Offline test harness: mock model servers (one per agent's API), the fake agent, the fake GitHub and
GitLab and an authenticated git smart-HTTP server, used by the test suite, the demo and the benchmarks,
and what the docs tell a user to start (what only tests use is in ``tests/support``). Every mock
implements :class:`MockModel`, so one test can drive any agent the same way: its replies (and
:meth:`MockModel.history_counts`) reveal how much history each request carried, which is how a test
proves that a conversation resumed rather than started over. Also here: the offline demo
(:mod:`demo`), which drives the runner.

May import: the ground floor, agents and (the demo) the runner.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar, Protocol


class MockModel(Protocol):
    delay: float  # seconds to hold each reply back (a slow model, for kill-mid-run tests)
    released: threading.Event  # ...or until this is set (a test done with the held turn ends the hold)
    ITEM_TOKENS: ClassVar[int]  # prompt tokens a history item counts by default
    item_tokens: int | None  # ...when set instead: a small conversation reported as a large one
    max_prompt_tokens: int | None  # a longer prompt is refused as the vendor refuses one over the window
    refused_too_long: int  # conversation requests refused so

    def env(self) -> dict[str, str]:
        """Environment that points the agent CLI at this server, with the CLI's own traffic off."""
        ...

    def configure_home(self, home: Path) -> None:
        """Write what the agent's home needs to use this server (Codex reads its provider from
        config.toml), keeping anything already there."""
        ...

    def history_counts(self) -> list[int]:
        """For each conversation request (not routing or title calls): history items it carried."""
        ...

    def texts(self) -> list[str]:
        """For each conversation request: all the text it carried."""
        ...
