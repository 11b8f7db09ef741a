"""A forge turn for a key whose holder froze between its lease renewal and its commit (issue 68), on
PostgreSQL: the person's next mention is not wedged behind it. The turn's run is told "not yet" by the
key's row, tries again within its wait, and takes the key once the server has ended the frozen
transaction (the holder's ``store_idle_timeout``) and its lease has expired; the conversation goes on."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from baton.errors import StoreUnavailable
from baton.forge.data.tables import forge_store
from baton.forge.turn import dispatch
from baton.forge.turn.loop import ForgeLoop
from baton.models import Mode, Outcome
from baton.settings import Settings, load_settings
from baton.store import open_store
from baton.store.leases import LeaseHolder
from baton.store.limits import StoreLimits
from tests.conftest import FAST, git
from tests.forge.turn.test_forge_loop import comment, idle
from tests.forge.turn.test_forge_loop import forge as forge  # the fixtures the loop is made of
from tests.forge.turn.test_forge_loop import loop as loop
from tests.forge.turn.test_forge_loop import origin as origin
from tests.store_contract import frozen_renewal

FROZEN = StoreLimits(lock=1.0, idle=1.0, statement=30.0, keepalive=30.0)  # the frozen holder's


@pytest.fixture
def settings(home: Path, pg_url: str) -> Settings:
    return load_settings(overrides={"home": str(home), "store_url": pg_url, **FAST}, environ={})


@pytest.mark.timeout(180)
def test_a_mention_is_not_wedged_behind_a_holder_frozen_mid_renewal(
    loop: ForgeLoop, settings: Settings, origin: Path
) -> None:
    assert dispatch.handle(loop, comment(1, "@baton please add a greeting")).status == "accepted"
    idle(loop)
    binding = forge_store(loop.store).get_binding("gh", "acme/api", 42)
    assert binding is not None
    key = f"fake/{binding.repo_slug}/{binding.thread}"
    frozen_store = open_store(settings.resolved_store_url, FROZEN)
    holder = LeaseHolder(frozen_store, key, ttl=0.5)  # another machine's runner of the key...
    holder.acquire(wait=0)
    with frozen_renewal(frozen_store, key) as errors:  # ...frozen between its renewal and its commit
        began = time.monotonic()
        assert dispatch.handle(loop, comment(2, "now make it louder")).status == "accepted"
        idle(loop)
        took = time.monotonic() - began
    assert "turn 2" in git(origin, "show", "baton/fake/issue-42:notes.md")
    runs = loop.store.list_runs("fake", binding.repo_slug, "issue-42")
    assert runs[0].mode == Mode.RESUME and runs[0].outcome == Outcome.SUCCEEDED, runs[0]  # one conversation
    assert took < 60, f"{took:.1f} s"
    [error] = errors
    assert isinstance(error, StoreUnavailable) and "store_idle_timeout" in str(error), error
    assert holder.renew() is False
