"""The release path, as a user of a built package meets it: ``python -m build`` makes an sdist and a
wheel that carry every template and static file, ``twine check`` passes, and the wheel installed into a
fresh virtualenv (its dependencies from the package index, nothing from this checkout) runs
``baton --version`` and the offline demo."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.project.release import Built, clean_env, fresh_venv

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # builds, and installs ~480 MB of dependencies into a new virtualenv


def _data_files() -> set[str]:
    """Every file of the package that is not Python: what a wheel must carry besides the code."""
    package = ROOT / "src" / "baton"
    return {
        str(p.relative_to(ROOT / "src"))
        for p in package.rglob("*")
        if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts
    }


def test_built_wheel_installs_into_a_fresh_venv_and_runs_the_demo(tmp_path: Path, built: Built) -> None:
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

    venv = tmp_path / "venv"
    fresh_venv(venv, str(wheel))
    env = {**clean_env(), "BATON_HOME": str(tmp_path / "home"), "HOME": str(tmp_path / "user")}
    baton = str(venv / "bin" / "baton")
    version = subprocess.run([baton, "--version"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("baton "), version.stderr
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import baton; print(baton.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert where.stdout.startswith(str(venv)), where.stdout  # the wheel's baton, not this checkout's
    demo = subprocess.run([baton, "demo"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert "same session id: True" in demo.stdout and "the conversation survived the redeploy" in demo.stdout
