"""The release path, as a user of a built package meets it: ``python -m build`` makes an sdist and a
wheel that carry every template and static file, ``twine check`` passes, and the wheel installed into a
fresh virtualenv (its dependencies from the package index, nothing from this checkout) runs
``baton --version`` and the offline demo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

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


def _clean_env() -> dict[str, str]:
    """This environment without what would make the new virtualenv import this checkout."""
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}


def _source(to: Path) -> Path:
    """A copy of the checkout's sources (the build writes build/ and *.egg-info into its tree)."""
    skip = shutil.ignore_patterns(
        ".git", ".venv", "node_modules", "build", "dist", "*.egg-info", ".*_cache", "__pycache__"
    )
    shutil.copytree(ROOT, to, ignore=skip, symlinks=True)
    return to


def test_built_wheel_installs_into_a_fresh_venv_and_runs_the_demo(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    source = _source(tmp_path / "src")
    build = [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(dist), str(source)]
    built = subprocess.run(build, capture_output=True, text=True, timeout=600, env=_clean_env(), cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
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
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(wheel)]
    installed = subprocess.run(install, capture_output=True, text=True, timeout=900, env=_clean_env())
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {**_clean_env(), "BATON_HOME": str(tmp_path / "home"), "HOME": str(tmp_path / "user")}
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
