"""``baton sessions reset`` as a user runs it: it asks on a terminal, refuses a script that did not say
``--yes``, and prints one sentence naming the archive (or the result object with ``--json``)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.conftest import BATON

Cli = Callable[..., subprocess.CompletedProcess[str]]


def first_run(cli: Cli, src_repo: Path) -> tuple[list[str], Path]:
    out = cli("run", "-a", "fake", "-r", str(src_repo), "-t", "issue-7", "--json", "hello")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    worktree = Path(data["worktree"])
    (worktree / "wip.txt").write_text("uncommitted work\n")
    return ["-a", "fake", "-r", str(data["repo"]), "-t", "issue-7"], worktree


def on_a_terminal(
    baton_env: dict[str, str], args: list[str], answer: str
) -> subprocess.CompletedProcess[str]:
    """Run ``baton ARGS`` with a pseudo-terminal as stdin and type ``answer``."""
    primary, secondary = pty.openpty()
    try:
        os.write(primary, answer.encode())
        return subprocess.run(
            [*BATON, *args],
            env={**os.environ, **baton_env},
            stdin=secondary,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        os.close(primary)
        os.close(secondary)


def test_reset_without_yes_and_without_a_terminal_is_refused(cli: Cli, src_repo: Path) -> None:
    key, worktree = first_run(cli, src_repo)
    out = cli("sessions", "reset", *key, "--scope", "all")
    assert out.returncode == 2
    assert "--yes" in out.stderr and "not a terminal" in out.stderr
    assert (worktree / "wip.txt").is_file()  # nothing was touched
    assert len(json.loads(cli("sessions", "ls", "--json").stdout)) == 1


def test_reset_asks_on_a_terminal(cli: Cli, baton_env: dict[str, str], src_repo: Path) -> None:
    key, worktree = first_run(cli, src_repo)
    declined = on_a_terminal(baton_env, ["sessions", "reset", *key, "--scope", "worktree"], "n\n")
    assert declined.returncode == 1, declined.stderr
    assert "remove its worktree" in declined.stderr and "Nothing was reset" in declined.stderr
    assert (worktree / "wip.txt").is_file()
    accepted = on_a_terminal(baton_env, ["sessions", "reset", *key, "--scope", "worktree"], "y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert not worktree.exists()
    assert "refs/baton/archive/fake/" in accepted.stdout


def test_reset_prints_a_sentence_or_an_object(cli: Cli, src_repo: Path) -> None:
    key, _ = first_run(cli, src_repo)
    said = cli("sessions", "reset", *key, "--scope", "worktree", "--yes")
    assert said.returncode == 0, said.stderr
    text = " ".join(said.stdout.split())
    assert text.startswith("Reset fake:")
    assert "removed the worktree, branch baton/fake/issue-7 and its checkpoint" in text
    assert "refs/baton/archive/fake/" in text and "worktree add" in text
    assert "{" not in text  # not a dict printed as Python
    cli("run", "-a", "fake", "-r", str(src_repo), "-t", "issue-7", "again")
    data = json.loads(cli("sessions", "reset", *key, "--scope", "all", "--yes", "--json").stdout)
    assert data["scope"] == "all" and data["session"] is True and data["runs"] == 2
    assert data["archive_ref"].startswith("refs/baton/archive/fake/")
    assert Path(data["conversation_archive"]).is_file()
    assert json.loads(cli("sessions", "ls", "--json").stdout) == []
