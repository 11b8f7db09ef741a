"""An XFS volume for the copy-on-write tests: a sparse image file, ``mkfs.xfs`` (reflink on, its
default) and a loop mount, as root. A test that asks for one fails, saying why, where it cannot be
made (not root, no ``mkfs.xfs``, no loop device): it never passes without having run."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SIZE = "320M"  # mkfs.xfs refuses volumes under 300 MB


@contextmanager
def xfs_volume(where: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("this test mounts an XFS loop volume (reflinks): run it as root", pytrace=False)
    if shutil.which("mkfs.xfs") is None:
        pytest.fail("this test needs mkfs.xfs: apt-get install xfsprogs (make setup does)", pytrace=False)
    image, mount = where / "xfs.img", where / "xfs"
    mount.mkdir(parents=True)
    with image.open("wb") as f:
        f.truncate(320 * 2**20)
    subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)], check=True)
    done = subprocess.run(["mount", "-o", "loop", str(image), str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"could not loop-mount an XFS image (as root): {done.stderr.strip()}", pytrace=False)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)
        image.unlink(missing_ok=True)


def per_test_dir(volume: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A directory of the test's own on ``volume`` (named after it), removed after it: for a fixture
    to ``yield from``."""
    path = volume / request.node.name.replace("[", "-").replace("]", "")
    path.mkdir()
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)
