"""One map of outcomes to exit codes (baton.errors.exit_code_of), used by ``baton run``, ``baton submit``
and ``baton sync``: a sync with upstream that conflicts exits 5 from ``baton sync`` as from ``baton run``."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from baton.errors import exit_code_of
from baton.models import Outcome
from tests.conftest import commit_file, git

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.parametrize(
    ("outcomes", "code"),
    [
        ([Outcome.SUCCEEDED], 0),
        (["succeeded"], 0),
        ([Outcome.CONFLICT], 5),
        ([Outcome.CANCELLED], 130),
        ([Outcome.FAILED], 1),
        ([Outcome.TIMED_OUT], 1),
        ([None], 1),  # a job that never said how it ended
        ([], 0),
        ([Outcome.SUCCEEDED, Outcome.CONFLICT, Outcome.CONFLICT], 5),  # the code the others share
        ([Outcome.CONFLICT, Outcome.FAILED], 1),  # they disagree
    ],
)
def test_one_map_of_outcomes_to_exit_codes(outcomes: list[str | None], code: int) -> None:
    assert exit_code_of(*outcomes) == code


def test_a_conflict_exits_5_from_baton_sync_as_from_baton_run(cli: Cli, src_repo: Path) -> None:
    key = ["-a", "fake", "-r", str(src_repo), "-t", "issue-1"]
    first = cli("run", *key, "--json", "start")
    assert first.returncode == 0, first.stderr
    worktree = Path(json.loads(first.stdout)["worktree"])
    commit_file(worktree, "README.md", "# the agent's title\n", "agent retitles")
    head = git(worktree, "rev-parse", "HEAD")
    commit_file(src_repo, "README.md", "# upstream's title\n", "upstream retitles")

    synced = cli("sync", "-r", str(src_repo), "-t", "issue-1", "--json")
    assert synced.returncode == 5, synced.stdout + synced.stderr
    assert [item["result"] for item in json.loads(synced.stdout)] == ["conflict"]
    assert git(worktree, "rev-parse", "HEAD") == head  # left as it was

    ran = cli("run", *key, "--sync", "rebase", "--json", "go on")
    assert ran.returncode == 5, ran.stdout + ran.stderr
    assert json.loads(ran.stdout)["outcome"] == "conflict"
    said = cli("sync", "-r", str(src_repo), "-t", "issue-1")
    assert said.returncode == 5 and "conflict" in said.stdout


def test_sync_how_offers_merge_and_rebase_only(cli: Cli, src_repo: Path) -> None:
    """``off`` is a turn's setting, not a way to sync now: the help does not offer it, and it is bad input."""
    shown = cli("sync", "--help")
    assert "<merge|rebase>" in shown.stdout and "off" not in shown.stdout.split("--how", 1)[1].split("\n")[0]
    refused = cli("sync", "-r", str(src_repo), "-t", "issue-1", "--how", "off")
    assert refused.returncode == 2 and "merge, rebase" in refused.stderr, refused.stderr
