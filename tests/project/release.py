"""What the project's release tests share: the sdist and wheel ``python -m build`` makes from a copy
of the checkout (:func:`build`), a fresh virtualenv with one of them installed (:func:`fresh_venv`),
nothing from this checkout, and :func:`shared`: one directory for the whole run, xdist's workers
included, where the first worker to take its lock builds and installs and a later one reads the result
(the ``built`` and ``installed`` fixtures: one build and one install per run, not one per worker)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def clean_env() -> dict[str, str]:
    """This environment without what would make a new virtualenv import this checkout."""
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}


@contextmanager
def shared(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """``name``'s directory, the same for every xdist worker of this run (the parent of the workers'
    base temporary directories; a run without xdist: its own), held under a lock while in use. A
    worker that finds it held waits: for less than the work it would otherwise do again beside it."""
    base = tmp_path_factory.getbasetemp()
    where = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / f"release-{name}"
    where.mkdir(parents=True, exist_ok=True)
    with (where.parent / f"release-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield where


@dataclass(frozen=True)
class Built:
    wheel: Path
    sdist: Path


def build(where: Path) -> Built:
    """The sdist and the wheel, built in ``where`` from a copy of the checkout's sources (the build
    writes build/ and *.egg-info into its tree); made once: a second call finds them there."""
    dist = where / "dist"
    if (where / "built").exists():
        (wheel,) = dist.glob("*.whl")
        (sdist,) = dist.glob("*.tar.gz")
        return Built(wheel, sdist)
    skip = shutil.ignore_patterns(
        ".git", ".venv", "node_modules", "build", "dist", "*.egg-info", ".*_cache", "__pycache__"
    )
    source = where / "src"
    shutil.rmtree(source, ignore_errors=True)  # a worker's earlier attempt that failed
    shutil.rmtree(dist, ignore_errors=True)
    shutil.copytree(ROOT, source, ignore=skip, symlinks=True)
    command = [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(dist), str(source)]
    made = subprocess.run(command, capture_output=True, text=True, timeout=600, env=clean_env(), cwd=where)
    assert made.returncode == 0, made.stderr[-3000:]
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    (where / "built").touch()
    return Built(wheel, sdist)


def fresh_venv(where: Path, requirement: str) -> Path:
    """A new virtualenv at ``where`` with ``requirement`` installed (its dependencies from the package
    index, nothing from this checkout); its ``bin``."""
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(where)], check=True, timeout=120)
    return pip_install(where / "bin", requirement)


def pip_install(bin: Path, requirement: str) -> Path:
    """``requirement`` installed into the virtualenv whose ``bin`` this is; the ``bin``."""
    pip = [str(bin / "pip"), "install", "--quiet", "--disable-pip-version-check", requirement]
    installed = subprocess.run(pip, capture_output=True, text=True, timeout=900, env=clean_env())
    assert installed.returncode == 0, installed.stderr[-3000:]
    return bin


@dataclass(frozen=True)
class Installed:
    """One virtualenv for the run: the plain wheel installed first, and what it printed then
    (``plain``: each command's argv, exit code, stdout and stderr), then its ``server`` extra added
    (``bin``: what ``pip install '.[server]'`` gives)."""

    bin: Path
    plain: dict[str, dict[str, object]]


def install(where: Path, built: Built) -> Installed:
    """The run's :class:`Installed`, made in ``where`` once: a second call reads it back."""
    record = where / "installed.json"
    if record.exists():
        return Installed(where / "venv" / "bin", json.loads(record.read_text()))
    bin = fresh_venv(where / "venv", str(built.wheel))
    env = {**clean_env(), "BATON_HOME": str(where / "home"), "HOME": str(where / "user")}
    commands = {
        "version": [str(bin / "baton"), "--version"],
        "where": [str(bin / "python"), "-c", "import baton; print(baton.__file__)"],
        "demo": [str(bin / "baton"), "demo"],
    }
    plain: dict[str, dict[str, object]] = {}
    for name, argv in commands.items():
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=where, timeout=300)
        plain[name] = {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
    pip_install(bin, f"{built.wheel}[server]")
    record.write_text(json.dumps(plain))
    return Installed(bin, plain)
