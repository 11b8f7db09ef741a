"""``baton budget`` on the fake agent: a thread parked at its cap is shown (each cap, spend, raises), a
hostile amount is refused with nothing written, and a raise resumes the thread: its parked instruction
runs once. ``baton run`` says the thread is parked and exits 7."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from baton.agents import AGENTS
from baton.caps.model import Scope
from baton.caps.tables import cap_store
from baton.keys import make_key
from baton.settings import Settings
from baton.store import open_store

Cli = Callable[..., subprocess.CompletedProcess[str]]
WRITE = {"FAKE_AGENT_WRITE": "turns.txt"}  # the fake agent notes each turn's prompt in its worktree


def key(repo: Path) -> list[str]:
    return ["-a", "fake", "-r", str(repo), "-t", "t1"]


def test_a_raise_resumes_the_parked_thread_and_runs_its_instruction_once(
    cli: Cli, cli_here: Cli, settings: Settings, src_repo: Path
) -> None:
    first = cli("run", *key(src_repo), "--max-turns", "1", "first-instruction", env=WRITE)
    assert first.returncode == 0, first.stderr
    capped = cli("run", *key(src_repo), "--max-turns", "1", "second-instruction", env=WRITE)
    assert capped.returncode == 7, capped.stderr
    assert "parked at a spending cap" in capped.stdout and "--turns +1" in capped.stdout
    slug = make_key("fake", str(src_repo), "t1", AGENTS).repo.slug
    notes = settings.home / "worktrees" / "fake" / slug / "t1" / "turns.txt"
    assert len(notes.read_text().splitlines()) == 1
    shown = json.loads(cli_here("budget", *key(src_repo), "--json").stdout)
    [turns] = [c for c in shown["caps"] if c["measure"] == "turns"]
    assert (turns["limit"], turns["spent"], turns["reached"]) == (1.0, 1.0, True)
    for bad in ("-1", "nan", "1e309", "+abc", "inf", "+1e3"):
        refused = cli_here("budget", *key(src_repo), "--turns", bad)
        assert refused.returncode == 2 and "--turns must be" in refused.stderr, (bad, refused.stderr)
    store = open_store(settings.resolved_store_url)
    try:
        assert cap_store(store).raises(Scope.THREAD, f"fake:{slug}:t1") == []  # nothing written
    finally:
        store.close()
    raised = cli("budget", *key(src_repo), "--turns", "+1", env=WRITE)  # a raise runs the turn
    assert raised.returncode == 0, raised.stderr
    assert "fake reply" in raised.stdout
    ran = notes.read_text().splitlines()
    assert len(ran) == 2 and "second-instruction" in ran[1], ran
    again = cli_here("budget", *key(src_repo), "--json")
    assert [c["raised"] for c in json.loads(again.stdout)["caps"] if c["measure"] == "turns"] == [1.0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--repo-wide"], "--repo-wide needs --repo"),
        (["--token", "nobody"], "no API token 'nobody'"),
        ([], "name the thread"),
    ],
)
def test_budget_names_whose_caps(cli_here: Cli, args: list[str], says: str) -> None:
    done = cli_here("budget", *args)
    assert done.returncode == 2 and says in done.stderr, done.stderr
