"""docs/environment.md's trials, run as a newcomer pastes them (the one shell block under each "Try …
offline" heading, extracted from the page itself), after what the page says to run first (``make
service-images``: deploy/fleet/images.sh for PostgreSQL and Redis, on the Debian base the container
mode's trial uses too), with podman's own configuration (no ``CONTAINERS_CONF``). Services: the real
Claude Code reaches its thread's own PostgreSQL through its Bash tool, the second turn reuses the
service, and the reset leaves no container behind. The container mode: the setup and the real Claude
Code's Bash run in the image (its Debian, not the host's), under the default egress list (its proxy
in the agent's variables)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from baton.keys import Key, parse_repo
from baton.settings import load_settings
from baton.workspace import containers, keyspace
from tests.pasted import leftovers, run_pasted  # noqa: F401 (leftovers: the fixture)
from tests.private_services import free_port
from tests.runner.test_services_real import _ours

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "environment.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)

pytestmark = pytest.mark.slow


def trial_block(heading: str) -> str:
    text = PAGE.read_text()
    start = text.index(heading)
    [block] = BLOCK.findall(text[start : text.index("\n## ", start + 1)].split("\n### ")[0])
    return str(block)


@pytest.fixture(scope="module")
def images() -> None:
    """What the page says to run first: ``make service-images`` (as root, with podman)."""
    if os.geteuid() != 0 or shutil.which("podman") is None:
        pytest.fail(
            "the trials build their images as root with podman (`make setup` installs it)", pytrace=False
        )
    made = subprocess.run(
        [str(ROOT / "deploy" / "fleet" / "images.sh"), "postgres", "redis"],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]


def ours() -> set[str]:
    return set(_ours())


def test_the_services_trial_runs_as_pasted(
    tmp_path: Path,
    leftovers: None,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    images: None,
) -> None:
    monkeypatch.delenv("CONTAINERS_CONF", raising=False)  # podman's own configuration, as a newcomer's
    script = re.sub(r"\b41239\b", str(free_port()), trial_block("### Try it offline"))
    returncode, out = run_pasted(script, tmp_path)
    assert returncode == 0, out[-6000:]
    port = re.search(r"postgresql://app:pw@127\.0\.0\.1:(\d+)/app\nconnected\n", out)
    assert port is not None, out[-6000:]  # the agent's Bash reached its thread's own database
    assert f"services: db on 127.0.0.1:{port[1]} (started in " in out, out[-6000:]
    assert f"services: db on 127.0.0.1:{port[1]} (reused)" in out, out[-6000:]
    home = next(d for d in tmp_path.glob("tmp.*") if (d / "baton.db").is_file())  # the block's BATON_HOME
    settings = load_settings(overrides={"home": str(home)}, environ={})
    space = keyspace.key_dir(settings, Key("claude", parse_repo(str(tmp_path / "work" / "shop")), "db"))
    assert "Reset claude:" in out and containers.container_name(space, "db") not in ours()  # removed


def test_the_container_mode_trial_runs_as_pasted(
    tmp_path: Path,
    leftovers: None,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    images: None,
) -> None:
    monkeypatch.delenv("CONTAINERS_CONF", raising=False)
    script = re.sub(r"\b41240\b", str(free_port()), trial_block("### Try the container mode offline"))
    returncode, out = run_pasted(script, tmp_path)
    assert returncode == 0, out[-6000:]
    ran = re.search(
        r"▶ Bash cat setup.txt /etc/debian_version && echo \$https_proxy\n(.*)\n(.*)\n(.*)\n", out
    )
    assert ran is not None, out[-6000:]
    setup, agent, proxy = (line.strip() for line in ran.groups())
    host = Path("/etc/debian_version").read_text().strip()
    assert setup == agent and agent.startswith("13.") and agent != host, out[-6000:]  # the image's Debian
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", proxy), out[-6000:]  # baton's egress proxy
    assert "environment: in the container localhost/baton-base:trixie" in out, out[-6000:]
