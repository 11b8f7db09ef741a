"""What the project's release tests share: the sdist and wheel ``python -m build`` makes from a copy
of the checkout (:func:`build`; the ``built`` fixture makes them once per session) and a fresh
virtualenv with one of them installed (:func:`fresh_venv`), nothing from this checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def clean_env() -> dict[str, str]:
    """This environment without what would make a new virtualenv import this checkout."""
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}


@dataclass(frozen=True)
class Built:
    wheel: Path
    sdist: Path


def build(where: Path) -> Built:
    """The sdist and the wheel, built in ``where`` from a copy of the checkout's sources (the build
    writes build/ and *.egg-info into its tree)."""
    skip = shutil.ignore_patterns(
        ".git", ".venv", "node_modules", "build", "dist", "*.egg-info", ".*_cache", "__pycache__"
    )
    source = where / "src"
    shutil.copytree(ROOT, source, ignore=skip, symlinks=True)
    dist = where / "dist"
    command = [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(dist), str(source)]
    made = subprocess.run(command, capture_output=True, text=True, timeout=600, env=clean_env(), cwd=where)
    assert made.returncode == 0, made.stderr[-3000:]
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    return Built(wheel, sdist)


def fresh_venv(where: Path, requirement: str) -> Path:
    """A new virtualenv at ``where`` with ``requirement`` installed (its dependencies from the package
    index, nothing from this checkout); its ``bin``."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    pip = [str(where / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", requirement]
    installed = subprocess.run(pip, capture_output=True, text=True, timeout=900, env=clean_env())
    assert installed.returncode == 0, installed.stderr[-3000:]
    return where / "bin"
