"""The release path, as a user of a built package meets it: ``python -m build`` makes an sdist and a
wheel that carry every template and static file, ``twine check`` passes, and the wheel installed into a
fresh virtualenv (its dependencies from the package index, nothing from this checkout) runs
``baton --version`` and the offline demo (the virtualenv is the run's one, its commands run right after
the plain install, before the ``server`` extra joined it: tests/project/release.py)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.project.release import Built, Installed

ROOT = Path(__file__).resolve().parents[2]
# builds, and installs ~480 MB of dependencies into a new virtualenv (pip is given 900 s: release.py)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600 + 900 + 120)]


def _data_files() -> set[str]:
    """Every file of the package that is not Python: what a wheel must carry besides the code."""
    package = ROOT / "src" / "baton"
    return {
        str(p.relative_to(ROOT / "src"))
        for p in package.rglob("*")
        if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts
    }


def test_built_wheel_installs_into_a_fresh_venv_and_runs_the_demo(built: Built, installed: Installed) -> None:
    wheel, sdist = built.wheel, built.sdist
    twine = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
        capture_output=True,
        text=True,
    )
    assert twine.returncode == 0, twine.stdout + twine.stderr
    wanted = _data_files()
    assert wanted and wanted <= set(zipfile.ZipFile(wheel).namelist())
    with tarfile.open(sdist) as tar:
        in_sdist = {"/".join(name.split("/")[2:]) for name in tar.getnames()}  # agent_baton-X/src/...
    assert wanted <= in_sdist

    plain = installed.plain  # the plain wheel (no extra) in a fresh virtualenv: what it ran there
    version, where, demo = plain["version"], plain["where"], plain["demo"]
    assert version["returncode"] == 0 and str(version["stdout"]).startswith("baton "), version["stderr"]
    venv = str(installed.bin.parent)
    assert str(where["stdout"]).startswith(venv), where  # the wheel's baton, not this checkout's
    said = str(demo["stdout"])
    assert demo["returncode"] == 0, said[-2000:] + str(demo["stderr"])[-2000:]
    assert "same session id: True" in said and "the conversation survived the redeploy" in said
