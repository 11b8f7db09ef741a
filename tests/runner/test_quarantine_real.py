"""Quarantine with the real Claude Code CLI on the mock Anthropic API: a conversation whose history the
API refuses (HTTP 400 ``invalid_request_error`` for every request that carries it) fails at once on
each resume; at the second in a row it is quarantined and the same run goes on in a new conversation
with a recap, which the model receives whole; ``sessions show`` and ``/metrics``' gauge say so, and
the old id is never resumed again."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from baton.service.diskcache import DiskCache
from baton.service.metrics import StoreCollector
from baton.settings import load_settings
from baton.store import open_store
from baton.testing.mock_anthropic import MockAnthropic, poisoned_history

pytestmark = pytest.mark.slow
Cli = Callable[..., subprocess.CompletedProcess[str]]


def turn(cli: Cli, repo: Path, prompt: str) -> dict[str, Any]:
    done = cli("run", "-a", "claude", "-r", str(repo), "-t", "issue-9", "--json", prompt)
    assert done.stdout, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_claude_whose_history_the_api_refuses_is_quarantined_then_recovered(
    cli: Cli,
    src_repo: Path,
    mock: MockAnthropic,
    claude_bin: str,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = turn(cli, src_repo, "Remember the word heron.")
    assert first["outcome"] == "succeeded", first
    poisoned = first["session_id"]
    mock.refusal = poisoned_history()

    struck = turn(cli, src_repo, "Second instruction.")
    assert (struck["outcome"], struck["mode"]) == ("failed", "resume"), struck
    assert struck["usage"].get("output_tokens", 0) == 0 and struck["duration_s"] < 20, struck
    recovered = turn(cli, src_repo, "Third instruction.")
    assert [(a["mode"], a["outcome"]) for a in recovered["attempts"]] == [
        ("resume", "failed"),
        ("recover", "succeeded"),
    ], recovered
    assert recovered["session_id"] not in (None, poisoned)
    assert f"conversation {poisoned} is quarantined" in (recovered["note"] or "")
    told = mock.requests[-1]
    assert len(told.messages) <= 2 and "heron" in told.text() and "Third instruction." in told.text()

    key = ["-a", "claude", "-r", str(src_repo), "-t", "issue-9"]
    shown = json.loads(cli("sessions", "show", *key, "--json").stdout)
    (quarantined,) = shown["lineage"]["quarantined"]
    assert quarantined["session_id"] == poisoned and quarantined["strikes"] == 2
    monkeypatch.setenv("BATON_HOME", str(home))
    store = open_store(load_settings().resolved_store_url)
    try:
        gauges = {
            s.labels["agent"]: s.value
            for family in StoreCollector(store, DiskCache(store, load_settings())).collect()
            if family.name == "baton_sessions_quarantined"
            for s in family.samples
        }
    finally:
        store.close()
    assert gauges == {"claude": 1}

    mock.refusal = None
    later = turn(cli, src_repo, "Fourth instruction.")
    assert (later["mode"], later["outcome"]) == ("resume", "succeeded")
    assert later["session_id"] == recovered["session_id"]
    resumed = mock.requests[-1]  # the new conversation's history, not the old one's
    assert len(resumed.messages) > 2 and "Third instruction." in resumed.text()
