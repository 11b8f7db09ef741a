"""What a turn costs the store: the calls a resumed fake-agent turn makes, counted through a proxy, held
to the budget measured on 2026-11-26 (26 before the session read, the strikes' clear and the runs' look
back were folded into one read each and a run's start into one write; 22 after). A new call on every
turn is a cost: fold it in or raise the budget here on purpose."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from baton import Mode, Outcome, RunRequest, Store, open_store, run
from baton.settings import Settings

BUDGET = 22  # store calls of a resumed, clean, successful turn


class Counting:
    """The store, every public method call counted by name — but the keep-alives, whose number is the
    turn's length over the heartbeat (0.2 s in the tests): the lease's renewals and the run's
    ``heartbeat_at``."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.calls = inner, Counter[str]()

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.inner, name)
        if name.startswith("_") or not callable(found):
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            beat = name == "update_run" and set(kwargs) <= {"fence", "heartbeat_at"}
            if name != "renew_lease" and not beat:
                self.calls[name] += 1
            return found(*args, **kwargs)

        return counted


def turn(settings: Settings, repo: Path, store: Any) -> tuple[Mode, Outcome]:
    request = RunRequest(agent="fake", repo=str(repo), thread="t1", prompt="go on")
    record = run(request, settings=settings, store=store).run
    return record.mode, record.outcome


def test_a_resumed_turn_stays_within_its_store_calls(settings: Settings, src_repo: Path) -> None:
    store = open_store(settings.resolved_store_url)
    try:
        assert turn(settings, src_repo, store) == (Mode.FRESH, Outcome.SUCCEEDED)  # the key is made
        assert turn(settings, src_repo, store) == (Mode.RESUME, Outcome.SUCCEEDED)  # its first snapshot
        counting = Counting(store)
        assert turn(settings, src_repo, counting) == (Mode.RESUME, Outcome.SUCCEEDED)
    finally:
        store.close()
    calls = counting.calls
    assert sum(calls.values()) <= BUDGET, calls
    assert calls["get_session"] == 1, calls  # read once under the lease, for the branch and the turn
    assert calls["list_runs"] == 3, calls  # the dead runs, the last run, the window's and format's look back
    # the strikes read (a read transaction now); nothing to clear on a conversation without strikes
    assert calls["transaction"] + calls["reading"] == 1, calls
