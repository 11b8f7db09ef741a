"""BATON_CONFINE against what the kernel can do: ``required`` refuses before anything is written (exit
2, HTTP 503 from /readyz), ``auto`` runs unconfined and says so once, ``doctor`` reports it; a walled
run says so on its record, and its fake agent works inside its key's space."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from baton import RunRequest, run
from baton.cli import main
from baton.errors import Unconfined
from baton.housekeeping.doctor import CheckStatus, check_confinement
from baton.runner.resolve import check_request
from baton.sandbox import confine
from baton.sandbox.walls import Support
from baton.service.health import check_ready
from baton.settings import Settings
from baton.store import open_store
from baton.testing.fake import register_fake

NO_LANDLOCK = Support(0, "this kernel has no Landlock (ENOSYS)")


@pytest.fixture(autouse=True)
def _fake() -> None:
    register_fake()


@pytest.fixture
def no_landlock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(confine, "_support", lambda: NO_LANDLOCK)


def request(src_repo: Path) -> RunRequest:
    return RunRequest(agent="fake", repo=str(src_repo), thread="t", prompt="hi")


@pytest.mark.usefixtures("no_landlock")
def test_required_without_landlock_refuses_before_anything_is_written(
    settings: Settings, src_repo: Path
) -> None:
    with pytest.raises(Unconfined, match=r"BATON_CONFINE=required.*no Landlock") as caught:
        check_request(request(src_repo), settings.with_(confine="required"))
    assert caught.value.exit_code == 2
    assert not (settings.home / "keys").exists() and not (settings.home / "worktrees").exists()


@pytest.mark.usefixtures("no_landlock")
def test_cli_required_without_landlock_exits_2_with_the_reason(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BATON_HOME", str(settings.home))
    monkeypatch.setenv("BATON_CONFINE", "required")
    with pytest.raises(SystemExit) as exited:
        main(["run", "-a", "fake", "-r", str(src_repo), "-t", "t", "hi"])
    said = capsys.readouterr().err
    assert exited.value.code == 2, said
    assert "cannot be confined" in said and "no Landlock" in said


@pytest.mark.usefixtures("no_landlock")
def test_auto_without_landlock_runs_unconfined_and_says_so_once(
    settings: Settings, src_repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    confine._warn_once.cache_clear()
    with caplog.at_level(logging.WARNING, logger="baton.sandbox.confine"):
        first = run(request(src_repo), settings=settings)
        second = run(request(src_repo), settings=settings)
    assert first.ok and second.ok and first.run.confined is False
    assert [r.getMessage() for r in caplog.records].count(
        "agents run unconfined: this kernel has no Landlock (ENOSYS) (BATON_CONFINE=auto; set it to required "
        "to refuse)"
    ) == 1


@pytest.mark.usefixtures("no_landlock")
def test_doctor_and_readyz_report_confinement(settings: Settings) -> None:
    assert check_confinement(settings.with_(confine="required")).status == CheckStatus.ERROR
    assert check_confinement(settings).status == CheckStatus.WARN
    store = open_store(settings.resolved_store_url)
    try:
        ready = check_ready(settings.with_(confine="required"), store)
        assert not ready.ready and ready.reason and "no Landlock" in ready.reason
        assert check_ready(settings, store).ready
    finally:
        store.close()


def test_here_agents_are_walled_in_and_the_record_says_so(settings: Settings, src_repo: Path) -> None:
    assert check_confinement(settings).status == CheckStatus.OK, "this machine has Landlock (ABI >= 4)"
    result = run(request(src_repo), settings=settings)
    assert result.ok and result.run.confined is True and result.to_json()["confined"] is True
    off = run(request(src_repo), settings=settings.with_(confine="off"))
    assert off.ok and off.run.confined is False
