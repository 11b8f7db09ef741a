"""``baton doctor``'s "data dir private": a home others can reach is named (a warning, with its mode and
the fix), ``baton doctor --fix`` makes it 0700 and its store and logs 0600; nothing else changes it."""

from __future__ import annotations

import grp
import json
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from baton import Outcome, RunRequest, run
from baton.housekeeping.doctor import CheckStatus, check_private
from baton.housekeeping.privacy import tighten
from baton.settings import Settings

Cli = Callable[..., subprocess.CompletedProcess[str]]

pytestmark = pytest.mark.usefixtures("umask_022")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def old_home(settings: Settings, src_repo: Path) -> Path:
    """A home as an older baton left it under umask 022: the home and logs/ 0755, the store and the
    logs 0644."""
    result = run(RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="x"), settings=settings)
    assert result.run.outcome == Outcome.SUCCEEDED
    home = settings.home
    for path in (home, home / "logs"):
        path.chmod(0o755)
    for path in [home / "baton.db", *(home / "logs").iterdir()]:
        path.chmod(0o644)
    return home


def test_doctor_warns_about_a_0755_home_and_fix_makes_it_0700(cli_here: Cli, old_home: Path) -> None:
    said = cli_here("doctor", "--json")
    check = {c["name"]: c for c in json.loads(said.stdout)["checks"]}["data dir private"]
    assert check["status"] == "warn"
    assert f"{old_home} is 0755" in check["detail"] and "every local user can reach it" in check["detail"]
    assert "baton.db 0644" in check["detail"] and "`baton doctor --fix`" in check["detail"]
    assert mode(old_home) == 0o755, "doctor alone changes nothing"

    fixed = cli_here("doctor", "--fix", "--json")
    report = json.loads(fixed.stdout)
    changed = {Path(t["path"]): (t["was"], t["now"], t["error"]) for t in report["fixed"]}
    logs = list((old_home / "logs").glob("*.jsonl"))
    assert changed[old_home] == ("0755", "0700", None)
    assert changed[old_home / "baton.db"] == ("0644", "0600", None)
    assert changed[old_home / "logs"] == ("0755", "0700", None)
    assert logs and all(changed[log] == ("0644", "0600", None) for log in logs)
    assert (mode(old_home), mode(old_home / "baton.db"), mode(old_home / "logs")) == (0o700, 0o600, 0o700)
    assert {mode(log) for log in logs} == {0o600}
    check = {c["name"]: c for c in report["checks"]}["data dir private"]
    assert check["status"] == "ok" and "no other user can reach them" in check["detail"]

    again = cli_here("doctor", "--fix")
    assert "fixed" not in again.stdout and "ok    data dir private" in again.stdout


def test_a_group_shared_home_is_named_with_its_group(settings: Settings, old_home: Path) -> None:
    old_home.chmod(0o750)
    check = check_private(settings)
    assert check.status == CheckStatus.WARN
    group = grp.getgrgid(old_home.stat().st_gid).gr_name
    assert check.detail.startswith(f"{old_home} is 0750: group {group} can reach it, and in it every run's")


def test_a_private_home_with_older_wide_files_is_ok_and_they_are_noted(
    settings: Settings, old_home: Path
) -> None:
    old_home.chmod(0o700)
    check = check_private(settings)
    assert check.status == CheckStatus.OK
    assert "no other user can reach what is in it" in check.detail and "baton.db 0644" in check.detail
    assert {Path(t.path) for t in tighten(settings)} >= {old_home / "baton.db", old_home / "logs"}
    assert mode(old_home) == 0o700 and "wider" not in check_private(settings).detail


def test_a_store_outside_the_home_that_others_can_read_is_a_warning(
    settings: Settings, tmp_path: Path
) -> None:
    store = tmp_path / "elsewhere" / "baton.db"
    store.parent.mkdir()
    store.write_bytes(b"")
    store.chmod(0o644)
    settings.home.mkdir(mode=0o700)
    settings = settings.with_(store_url=f"sqlite:///{store}")
    check = check_private(settings)
    assert check.status == CheckStatus.WARN and f"the store's {store} is 0644" in check.detail
    assert [(Path(t.path), t.now) for t in tighten(settings)] == [(store, "0600")]
    assert check_private(settings).status == CheckStatus.OK


def test_a_home_not_made_yet_is_fine(settings: Settings) -> None:
    check = check_private(settings)
    assert check.status == CheckStatus.OK and "not made yet: baton makes it 0700" in check.detail
    assert tighten(settings) == [] and not settings.home.exists()
