"""``baton warm status`` and ``baton warm stop`` (``baton.cli.warmctl``), and what the warm server leaves
held in ``BATON_HOME``: nothing, so that a volume holding the home can be unmounted as soon as a warm
``baton run`` returns (it used to stay busy for the server's two idle minutes).

Real ``baton`` processes and a real server; the volume is a real ext4 file system on a loop device
(root only: skipped elsewhere).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from baton.settings import Settings
from tests.test_cli_kill_start import BATON
from tests.test_cli_warm import _no_server_left, ran_in, run_json, servers, wait_for_server  # noqa: F401


@pytest.fixture
def env(baton_env: dict[str, str]) -> dict[str, str]:
    """A ``baton`` process's environment with warm start on (the suite turns it off elsewhere)."""
    return {**os.environ, **baton_env, "BATON_WARM": "auto"}


def warm_cmd(env: dict[str, str], *args: str) -> dict[str, object]:
    done = subprocess.run(
        [*BATON, "warm", *args, "--json"], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(done.stdout)
    assert isinstance(found, dict)
    return found


def test_status_and_stop(src_repo: Path, env: dict[str, str], home: Path) -> None:
    assert warm_cmd(env, "status") == {"running": False}
    assert warm_cmd(env, "stop") == {"stopped": False, "pid": None}
    run_json(["run", "-a", "fake", "-r", str(src_repo), "-t", "ctl", "first turn"], env)
    pid = wait_for_server(home)
    status = warm_cmd(env, "status")
    assert status["running"] is True and status["pid"] == pid and status["children"] == 1  # its spare
    server = psutil.Process(pid)
    spare = server.children()[0]
    assert warm_cmd(env, "stop") == {"stopped": True, "pid": pid}
    assert not server.is_running() or server.status() == psutil.STATUS_ZOMBIE
    spare.wait(10)  # the spare left with it
    assert warm_cmd(env, "status") == {"running": False}
    said = subprocess.run([*BATON, "warm", "status"], env=env, capture_output=True, text=True, check=True)
    assert said.stdout == "no warm server runs for this home\n"


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """An ext4 file system of its own, loop-mounted on a directory; unmounted at the end whatever
    happened (lazily, if something still holds it)."""
    if os.geteuid() != 0 or not shutil.which("mkfs.ext4"):
        pytest.skip("needs root and mkfs.ext4 to mount a file system of its own")
    image, mountpoint = tmp_path / "volume.img", tmp_path / "volume"
    mountpoint.mkdir()
    with image.open("wb") as fh:
        fh.truncate(200 * 2**20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    mounted = subprocess.run(
        ["mount", "-o", "loop", str(image), str(mountpoint)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot loop-mount here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        if os.path.ismount(mountpoint):
            subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_the_home_s_volume_unmounts_as_soon_as_a_warm_run_returns(
    src_repo: Path, env: dict[str, str], volume: Path, settings: Settings
) -> None:
    home = volume / "baton-home"
    env = {**env, "BATON_HOME": str(home)}
    key = ["run", "-a", "fake", "-r", str(src_repo), "-t", "volume"]
    home.mkdir()
    given = os.open(home / "given.txt", os.O_CREAT | os.O_WRONLY)  # a descriptor its caller passed on
    try:
        # run here; starts the server, which must not inherit the descriptor on the volume
        _, first, code = run_json([*key, "first turn"], env, pass_fds=(given,))
        os.close(given)
        assert code == 0, first
        server = psutil.Process(wait_for_server(home))
        pid, served, code = run_json([*key, "a served turn"], env)
        assert code == 0 and served["mode"] == "resume", served
        umount = subprocess.run(["umount", str(volume)], capture_output=True, text=True)
        assert umount.returncode == 0, umount.stderr  # nothing of baton's holds it: not EBUSY
        server.wait(10)  # its key file went with the volume: the server left (or this times out)
    finally:
        for proc in servers(home):
            proc.terminate()
    subprocess.run(["mount", "-o", "loop", str(volume.parent / "volume.img"), str(volume)], check=True)
    assert ran_in(settings.with_(home=home), served) != pid  # the turn was really served warm
