"""Whichever command makes BATON_HOME first makes it 0700 under the usual umask (022): a run, a
listing (the store), ``baton agents`` (the version cache), ``baton homes link``, ``baton doctor``."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Cli = Callable[..., subprocess.CompletedProcess[str]]

pytestmark = pytest.mark.usefixtures("umask_022")


@pytest.mark.parametrize(
    "args",
    [
        ["run", "-a", "fake", "-r", "{repo}", "-t", "t1", "do it"],
        ["sessions", "ls"],
        ["agents"],
        ["homes", "link"],
        ["doctor", "--json"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_the_first_command_makes_the_home_0700(
    cli: Cli, tmp_path: Path, src_repo: Path, args: list[str]
) -> None:
    home = tmp_path / "new" / "baton-home"
    user = tmp_path / "user"  # `homes link` moves this HOME's agent directories into BATON_HOME
    user.mkdir()
    done = cli(*(a.format(repo=src_repo) for a in args), env={"BATON_HOME": str(home), "HOME": str(user)})
    assert done.returncode in (0, 1), done.stdout + done.stderr  # doctor: 1 when no agent CLI is found here
    assert home.is_dir(), f"{args[0]} wrote nothing: {done.stdout}"
    assert [stat.S_IMODE(p.stat().st_mode) for p in (home.parent, home)] == [0o700, 0o700]
