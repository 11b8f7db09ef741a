"""A key's services started through an engine that is a script recording its argv (the real podman:
tests/environment/test_servicerun_real.py): a service the sweep stopped for idleness comes back on its
old port when that is free, on a new one only when something else holds it; one that never becomes
ready is removed, its output's tail on the error; an engine's error is said whole or cut at a line; an
engine that cannot set its default rlimits is given baton's own."""

from __future__ import annotations

import resource
import shutil
import socket
import time
from pathlib import Path

import pytest

from baton.environment import servicerun
from baton.environment.services import read_services
from baton.settings import Settings
from baton.workspace import containers, enginelimits

SERVICE = '[services.db]\nimage = "localhost/db:1"\nport_env = "PGPORT"\nready = ["true"]\n'


def fake_engine(tmp_path: Path) -> Path:
    """An engine whose container "runs" from its ``run`` to its ``rm``; ``exec`` (the ready check)
    succeeds unless a file ``unready`` exists; with a file ``rlimits``, a ``run`` without ``--ulimit``
    fails as runc does where it cannot set podman's default rlimits; every call is appended to
    ``called``."""
    engine = tmp_path / "podman"
    running, called, unready = tmp_path / "running", tmp_path / "called", tmp_path / "unready"
    engine.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {called}\n'
        'case "$1" in\n'
        f'  run) if [ -e {tmp_path}/rlimits ] && ! echo "$@" | grep -q -- --ulimit; then\n'
        "         echo 'Error: runc: error setting rlimit type 7: not permitted' >&2; exit 126; fi\n"
        f"       touch {running}; echo id ;;\n"
        f"  rm) rm -f {running} ;;\n"
        f"  container) if [ -e {running} ]; then echo true; else echo false; fi ;;\n"
        f"  exec) [ ! -e {unready} ] ;;\n"
        "  logs) printf 'starting\\nFATAL: \\033[31mno config\\033[0m\\n' ;;\n"
        "esac\n"
    )
    engine.chmod(0o755)
    return engine


@pytest.fixture
def engine_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.with_(services_engine=str(fake_engine(tmp_path)))


def test_a_service_stopped_for_idleness_comes_back_on_its_old_port(
    engine_settings: Settings, tmp_path: Path
) -> None:
    services = read_services(SERVICE)
    space = tmp_path / "space"
    space.mkdir()
    first = servicerun.start(engine_settings, space, services)
    assert first.error is None and "(started in" in (first.note or "")
    (port,) = first.ports
    stopped, errors = containers.sweep_idle(engine_settings, time.time() + 31 * 60)
    assert errors == {} and len(stopped) == 1
    [kept] = containers.states(engine_settings)
    assert kept.stopped and kept.port == port  # the container is gone, its port remembered
    assert containers.sweep_idle(engine_settings, time.time() + 62 * 60) == ([], {})  # not stopped twice
    again = servicerun.start(engine_settings, space, services)
    assert again.error is None and "(started in" in (again.note or "")
    assert again.ports == (port,) and again.env["BATON_SERVICE_PORTS"] == str(port)
    [state] = containers.states(engine_settings)
    assert not state.stopped


def test_a_stopped_service_whose_port_was_taken_meanwhile_gets_a_new_one(
    engine_settings: Settings, tmp_path: Path
) -> None:
    services = read_services(SERVICE)
    space = tmp_path / "space"
    space.mkdir()
    (port,) = servicerun.start(engine_settings, space, services).ports
    containers.sweep_idle(engine_settings, time.time() + 31 * 60)
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        began = time.monotonic()
        again = servicerun.start(engine_settings, space, services)
    assert again.error is None and again.ports != (port,)
    assert time.monotonic() - began < servicerun.OLD_PORT_WAIT  # long stopped: no wait for it


def test_a_stopped_services_state_is_forgotten_with_its_key(
    engine_settings: Settings, tmp_path: Path
) -> None:
    space = tmp_path / "space"
    space.mkdir()
    servicerun.start(engine_settings, space, read_services(SERVICE))
    containers.sweep_idle(engine_settings, time.time() + 31 * 60)
    shutil.rmtree(space)
    assert containers.sweep_idle(engine_settings, time.time(), dry_run=True) == ([], {})
    assert len(containers.states(engine_settings)) == 1  # a dry run forgets nothing
    containers.sweep_idle(engine_settings, time.time())
    assert containers.states(engine_settings) == []


def test_a_service_that_never_becomes_ready_is_removed_its_output_said(
    engine_settings: Settings, tmp_path: Path
) -> None:
    (service,) = read_services(SERVICE + "ready_timeout = 0.5\n")
    (tmp_path / "unready").touch()
    space = tmp_path / "space"
    space.mkdir()
    failed = servicerun.start(engine_settings, space, (service,))
    assert failed.error is not None and "not ready after 0.5 s" in failed.error
    assert "starting\nFATAL: \\x1b[31mno config\\x1b[0m" in failed.error  # its log, escaped
    assert failed.error.endswith("its container was removed")
    assert not (tmp_path / "running").exists()
    name = containers.container_name(space, "db")
    assert f"rm -f -t 10 {name}" in (tmp_path / "called").read_text().splitlines()[-1]
    [state] = containers.states(engine_settings)
    assert state.stopped  # its port kept for the next try, and forgotten with its key


def test_output_is_cut_at_a_line_or_a_word_and_says_so() -> None:
    lines = "\n".join(f"line {i} of the engine's error" for i in range(100))
    cut = servicerun.tail(lines, 100)
    assert cut.startswith("…\n") and cut.endswith("line 99 of the engine's error")
    assert all(line.startswith("line ") for line in cut.splitlines()[1:])  # whole lines
    assert len(cut) <= 100 + 2
    one = servicerun.tail("Error: " + "word " * 100 + "end", 50)
    assert one.startswith("…word ") and one.endswith("end") and len(one) <= 50
    assert servicerun.tail("short\n") == "short"


def test_an_engine_that_cannot_set_its_default_rlimits_is_given_batons_own(
    engine_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(enginelimits, "_needed", set())
    (tmp_path / "rlimits").touch()
    space = tmp_path / "space"
    space.mkdir()
    started = servicerun.start(engine_settings, space, read_services(SERVICE))
    assert started.error is None, started.error
    runs = [line for line in (tmp_path / "called").read_text().splitlines() if line.startswith("run ")]
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert len(runs) == 2 and f"--ulimit nofile={nofile}:{nofile} --ulimit nproc=" in runs[1]
    nproc = int(runs[1].split("nproc=")[1].split(":")[0])
    assert 0 < nproc <= enginelimits.NPROC_CAP
    servicerun.start(engine_settings, tmp_path, read_services(SERVICE))  # another key: at once
    runs = [line for line in (tmp_path / "called").read_text().splitlines() if line.startswith("run ")]
    assert len(runs) == 3 and "--ulimit" in runs[2]
