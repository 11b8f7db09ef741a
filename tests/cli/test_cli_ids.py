"""Run ids: what tables show is unique and accepted by every command; an ambiguous id is an error that
lists the candidates."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from baton.models import Mode, Outcome, PromptKind, RunRecord
from baton.runner.runids import Ambiguous, resolve_run, short_ids
from baton.settings import Settings
from baton.store import open_store

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.slow  # many `baton` processes: over 3 s of CPU
def test_every_shown_id_works(cli: Cli, cli_here: Cli, src_repo: Path) -> None:
    made = [
        json.loads(cli("run", "-a", "fake", "-r", str(src_repo), "-t", f"t{i}", "--json", "hi").stdout)
        for i in range(3)
    ]
    table = cli_here("runs", "ls", env={"COLUMNS": "80"}).stdout
    rows = table.splitlines()[1:]  # after the header
    shown = [line.split()[0] for line in rows if line.strip()]
    assert len(shown) == 3 and len(set(shown)) == 3, table
    for short, run in zip(shown, reversed(made), strict=True):
        one = cli_here("runs", "show", short, "--json")
        assert one.returncode == 0, one.stderr
        assert json.loads(one.stdout)["run_id"] == run["run_id"]
        assert cli_here("runs", "logs", short).returncode == 0
    human = cli("run", "-a", "fake", "-r", str(src_repo), "-t", "t0", "hello again")
    said = re.search(r"run (\S+)", human.stdout)
    assert said, human.stdout
    assert cli_here("runs", "show", said.group(1)).returncode == 0


def test_an_ambiguous_prefix_lists_the_candidates(cli: Cli, cli_here: Cli, src_repo: Path) -> None:
    runs = [cli("run", "-a", "fake", "-r", str(src_repo), "-t", f"a{i}", "--json", "hi") for i in range(2)]
    ids = [json.loads(r.stdout)["run_id"] for r in runs]
    common = next(i for i in range(len(ids[0])) if ids[0][i] != ids[1][i])
    result = cli_here("runs", "show", ids[0][:common])
    assert result.returncode == 2
    assert "ambiguous: 2 runs match" in result.stderr
    assert all(i in result.stderr for i in ids)


def record(run_id: str) -> RunRecord:
    return RunRecord(
        id=run_id,
        agent="fake",
        repo="local/x",
        thread="t",
        attempt=1,
        mode=Mode.FRESH,
        prompt_kind=PromptKind.FULL,
        prompt="p",
        outcome=Outcome.SUCCEEDED,
        started_at=float(int(run_id[:12], 16)) / 1000,
        log_path="/nonexistent",
    )


def test_a_shared_tail_widens_to_the_full_id(settings: Settings) -> None:
    store = open_store(settings.resolved_store_url)
    try:
        for run_id in ("019000000000aaaa1111", "019000000001aaaa1111", "019000000002cccc2222"):
            store.add_run(record(run_id))
        shown = short_ids(store, ["019000000000aaaa1111", "019000000002cccc2222"])
        assert shown == {"019000000000aaaa1111": "019000000000aaaa1111", "019000000002cccc2222": "cccc2222"}
        assert resolve_run(store, "cccc2222").id == "019000000002cccc2222"
        assert resolve_run(store, "019000000000").id == "019000000000aaaa1111"  # a unique prefix
    finally:
        store.close()


def test_a_shared_prefix_is_ambiguous(settings: Settings) -> None:
    store = open_store(settings.resolved_store_url)
    try:
        for run_id in ("019000000000aaaa1111", "019000000001bbbb1111", "019000000002cccc2222"):
            store.add_run(record(run_id))
        with pytest.raises(Ambiguous, match="ambiguous: 3 runs match '01900000000'"):
            resolve_run(store, "01900000000")
    finally:
        store.close()
