"""A key's services through real podman, with podman's own configuration (no ``CONTAINERS_CONF``): on
this project's test machine (root without CAP_SYS_RESOURCE) podman's default rlimits fail every start,
and baton starts them anyway with rlimits it can set. A service the sweep stopped comes back on its
port; one that never becomes ready is removed, its output said; a missing image is named, with what to
do. The image is a tiny one imported from this host's own binaries (socat, sh), so no registry and no
build is needed: its service echoes on ``$PORT`` of 127.0.0.1.

Needs root and podman (``make setup`` installs it); fails, never skips, without.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.environment import servicerun
from baton.environment.services import Service, read_services
from baton.settings import Settings
from baton.workspace import containers, enginelimits

SERVICE_FIXTURES = {"tiny_image": "image"}  # podman as root, like the image's own test
TINY = "localhost/baton-test-echo:1"
# the image's command, in the image's own shell: an echo server on the port baton gives it
ECHO = '["/bin/sh", "-c", "exec socat TCP-LISTEN:$PORT,bind=127.0.0.1,reuseaddr,fork EXEC:/bin/cat"]'
PARTS = ("/usr/bin/socat", "/bin/sh", "/bin/cat", "/bin/sleep", "/bin/true", "/bin/false")


@pytest.fixture(scope="module")
def tiny_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """:data:`TINY`, imported from this host's binaries and the libraries ``ldd`` names for them."""
    if os.geteuid() != 0:
        pytest.fail("this test runs podman as root", pytrace=False)
    if shutil.which("podman") is None:
        pytest.fail("podman is missing: `make setup` installs it as root (apt-get install podman runc)")
    if subprocess.run(["podman", "image", "exists", TINY]).returncode != 0:
        archive = tmp_path_factory.mktemp("tiny") / "root.tar"
        with tarfile.open(archive, "w") as tar:
            for path in {p for part in PARTS for p in (part, *_libraries(part))}:
                tar.add(os.path.realpath(path), arcname=path.lstrip("/"))
        change = f"CMD {ECHO}"
        subprocess.run(["podman", "import", "--change", change, str(archive), TINY], check=True)
    return TINY


def _libraries(binary: str) -> list[str]:
    done = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True)
    return [word for word in done.stdout.split() if word.startswith("/")]


@pytest.fixture
def podman(tiny_image: str, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[Settings]:
    """Settings whose services run in podman as it comes, without the fleet's containers.conf."""
    monkeypatch.delenv("CONTAINERS_CONF", raising=False)
    monkeypatch.setattr(enginelimits, "_needed", set())  # found anew by each test
    yield settings.with_(services_engine="podman")
    for state in containers.states(settings):
        subprocess.run(["podman", "rm", "-f", "-t", "0", state.container], capture_output=True, check=False)


def echo(extra: str = "") -> tuple[Service, ...]:
    return read_services(f'[services.echo]\nimage = "{TINY}"\nport_env = "PORT"\n{extra}')


def answers(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"ping\n")
        return sock.recv(100).decode()


def test_a_service_starts_where_podmans_default_rlimits_fail(podman: Settings, tmp_path: Path) -> None:
    began = time.monotonic()
    started = servicerun.start(podman, tmp_path, echo())
    print(f"first start: {time.monotonic() - began:.2f} s; {started.note}")
    assert started.error is None, started.error
    (port,) = started.ports
    assert answers(port) == "ping\n"
    began = time.monotonic()
    again = servicerun.start(podman, tmp_path / "other", echo())  # the engine's need remembered
    print(f"second key's start: {time.monotonic() - began:.2f} s; {again.note}")
    assert again.error is None and answers(again.ports[0]) == "ping\n"


def test_a_service_stopped_for_idleness_comes_back_on_its_port(podman: Settings, tmp_path: Path) -> None:
    (port,) = servicerun.start(podman, tmp_path, echo()).ports
    stopped, errors = containers.sweep_idle(podman, time.time() + 31 * 60)
    assert errors == {} and len(stopped) == 1
    gone = subprocess.run(["podman", "container", "exists", stopped[0]])
    assert gone.returncode == 1
    again = servicerun.start(podman, tmp_path, echo())
    assert again.error is None and again.ports == (port,) and answers(port) == "ping\n"


def test_a_service_never_ready_is_removed_and_its_output_said(podman: Settings, tmp_path: Path) -> None:
    services = echo('ready = ["/bin/false"]\nready_timeout = 2\n')
    failed = servicerun.start(podman, tmp_path, services)
    assert failed.error is not None and "not ready after 2 s" in failed.error
    assert "its container was removed" in failed.error
    name = containers.container_name(tmp_path, "echo")
    assert subprocess.run(["podman", "container", "exists", name]).returncode == 1


def test_a_missing_image_is_named_with_what_to_do(podman: Settings, tmp_path: Path) -> None:
    image = "localhost/baton-test-missing:1"
    services = read_services(f'[services.db]\nimage = "{image}"\nport_env = "PORT"\n')
    failed = servicerun.start(podman, tmp_path, services)
    print(failed.error)
    assert failed.error is not None
    assert f"the image {image} is not among podman's images and could not be pulled" in failed.error
    pulled = subprocess.run(["podman", "pull", image], capture_output=True, text=True, check=False)
    last = pulled.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and image in last
    assert last in failed.error.splitlines()  # podman's own last words, whole
    assert f"\nBuild it on this host (`podman build -t {image} ...`)" in failed.error
    assert f"`podman pull {image}`" in failed.error and "services_engine = off" in failed.error
