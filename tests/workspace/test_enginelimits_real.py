"""An agent's container (``environment = "container"``) through real podman with podman's own
configuration (no ``CONTAINERS_CONF``): on this project's test machine (root without CAP_SYS_RESOURCE)
podman's default rlimits fail every container, and baton's probe finds it once, so the agent's
``podman run`` carries rlimits the runtime can set. The image is the tiny one the services' real test
imports from this host's binaries (tests/environment/test_servicerun_real.py).

Needs root and podman (``make setup`` installs it); fails, never skips, without.
"""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

import pytest

from baton.sandbox.cgroups import Limits
from baton.sandbox.enclosure import container_for
from baton.workspace import enginelimits
from tests.environment.test_servicerun_real import TINY, tiny_image  # noqa: F401 (the fixture)
from tests.sandbox.test_container import walls

SERVICE_FIXTURES = {"tiny_image": "image"}  # podman as root, like the image's own test


def test_an_agents_container_runs_where_podmans_default_rlimits_fail(
    tiny_image: str,  # noqa: F811 (the fixture)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CONTAINERS_CONF", raising=False)
    monkeypatch.setattr(enginelimits, "_needed", set())
    monkeypatch.setattr(enginelimits, "_probed", set())
    box, built = container_for("podman", tiny_image, {})
    assert not built and box.ulimits == tuple(enginelimits.flags())  # found by the probe, here
    assert container_for("podman", tiny_image, {})[0].ulimits == box.ulimits  # once per process
    home = tmp_path / "home"
    argv, env = box.command(
        "baton-test-limits", ["/bin/cat", "/proc/self/limits"], {}, home / "wt/k1", walls(home), Limits()
    )
    try:
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )
    finally:
        box.remove("baton-test-limits")
    assert done.returncode == 0, done.stderr
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    [line] = [line for line in done.stdout.splitlines() if line.startswith("Max open files")]
    assert line.split()[3:5] == [str(nofile), str(nofile)]
