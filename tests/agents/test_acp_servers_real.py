"""What an ACP agent serves during a turn, probed as a hostile neighbour would (issue 42, item 2).

OpenCode's ACP side is a client of an HTTP server it starts for itself; without a password that server
answered any local user — its configuration (a provider's ``apiKey`` included) and the worktree's files.
Each real ACP CLI runs a turn against its mock model, which holds the reply back; meanwhile every socket
the turn's processes listen on is found (``/proc``) and probed: as another uid (``nobody``), without a
password and with another one, and from another key's agent (the fake agent inside its own walls). None
reads anything, and the turn itself succeeds (the agent's own client has the turn's password).

These turns run with ``egress = "open"``, where the agent shares the host's network and its servers
are on the host's loopback: the case the password and the walls must hold. By default the agent is in
a network namespace of its own, and no one outside it reaches its servers at all.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from baton import RunRequest, RunResult, run
from baton.agents import get_agent
from baton.settings import Settings
from baton.testing._http import MockServer
from tests.conftest import wait_for

pytestmark = pytest.mark.slow

NOBODY = 65534
PYTHON = "/usr/bin/python3"  # the system's: another user cannot read the virtualenv's under /root
HOLD = 60.0  # seconds the mock holds each reply back at most: the turn runs while it is probed (then
# the test releases it: the hold costs only the probing)
PATHS = ("/config", "/file/content?path=README.md", "/session", "/provider")
# A GET of ``url`` with an optional ``user:password``: the status and the body's start, or why it failed.
PROBE = """
import base64, sys, urllib.error, urllib.request
request = urllib.request.Request(sys.argv[1])
if sys.argv[2]:
    request.add_header("Authorization", "Basic " + base64.b64encode(sys.argv[2].encode()).decode())
try:
    with urllib.request.urlopen(request, timeout=10) as answer:
        print(answer.status, answer.read(4000).decode("utf-8", "replace"))
except urllib.error.HTTPError as error:
    print(error.code, error.read(2000).decode("utf-8", "replace"))
except OSError as error:
    print("unreachable", error)
"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The turns share the host's network (see the module)."""
    return settings.with_(egress="open")


@pytest.fixture(params=["copilot", "opencode"])
def agent(request: pytest.FixtureRequest, settings: Settings) -> str:
    name = str(request.param)
    assert get_agent(name, settings).version(), f"the real {name} CLI did not answer --version"
    return name


@pytest.fixture
def probe_script() -> Iterator[Path]:
    """The probe as a file any user can read (pytest's temporary directories are the owner's only)."""
    with tempfile.TemporaryDirectory(prefix="baton-probe-") as folder:
        Path(folder).chmod(0o755)
        path = Path(folder) / "probe.py"
        path.write_text(PROBE)
        path.chmod(0o644)
        yield path


def turn_pids(home: Path) -> list[int]:
    """The processes working in a worktree under ``home``: the bridge, the agent and its children."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd").startswith(str(home / "worktrees")):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def socket_inodes(pids: list[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


def listening(pids: list[int]) -> tuple[list[tuple[str, int]], list[str]]:
    """The TCP (address, port) and Unix socket paths the processes listen on."""
    inodes = socket_inodes(pids)
    tcp = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                address, port = fields[1].split(":")
                tcp.append((address, int(port, 16)))
    unix = []
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[6] in inodes and int(fields[3], 16) & 0x10000:  # __SO_ACCEPTCON: listening
            unix.append(fields[7] if len(fields) > 7 else "(unnamed)")
    return tcp, unix


def probe(script: Path, url: str, auth: str = "", user: int | None = None) -> str:
    out = subprocess.run(
        [PYTHON, "-S", str(script), url, auth],
        capture_output=True,
        text=True,
        timeout=30,
        user=user,
        group=user,
        extra_groups=[] if user is not None else None,
        cwd="/",
    )
    return (out.stdout + out.stderr).strip()


def test_an_acp_agents_servers_serve_nobody_else(
    agent: str, model: MockServer[Any], settings: Settings, src_repo: Path, probe_script: Path
) -> None:
    model.delay = HOLD
    results: list[RunResult] = []
    turn = threading.Thread(
        target=lambda: results.append(
            run(RunRequest(agent=agent, repo=str(src_repo), thread="served", prompt="hi"), settings=settings)
        )
    )
    turn.start()
    try:
        wait_for(lambda: model.requests, timeout=120, what=f"{agent}'s first model request")
        pids = turn_pids(settings.home)
        tcp, unix = listening(pids)
        print(f"{agent} listens on TCP {tcp}, Unix {unix}")
        assert all(address in ("0100007F", "00000000000000000000000001000000") for address, _ in tcp), (
            "a server on an interface other than loopback"
        )
        said: list[str] = []
        for _, port in tcp:
            for path in PATHS:
                url = f"http://127.0.0.1:{port}{path}"
                said += [
                    probe(probe_script, url, user=NOBODY),  # another user of the machine
                    probe(probe_script, url, "opencode:" + "x" * 43, user=NOBODY),  # with a guess
                    probe(probe_script, url),  # this uid without the turn's password
                ]
        for path in unix:  # another user cannot connect to a socket of the run's (or there is none)
            said.append(probe(probe_script, f"http://unix{path}", user=NOBODY))
        if agent == "opencode":
            assert tcp, "OpenCode's own server was not found: the probe would prove nothing"
            neighbour, environ = _neighbour_probe(settings, src_repo, [p for _, p in tcp], pids)
            said.append(neighbour)
            assert neighbour.count("\n") + 1 >= len(tcp), neighbour
            print(f"the neighbour reading the turn's environments: {environ!r}")
            assert "OPENCODE_SERVER_PASSWORD" not in environ, "another key's agent read the password"
    finally:
        model.released.set()
        turn.join(timeout=300)
    print("\n".join(said))
    assert said or not tcp
    assert not any(line.startswith("200") for line in said), said
    assert all(line.startswith(("401", "unreachable")) for line in said), said
    assert not any("mock-key" in line or "apiKey" in line for line in said), "the provider's key was served"
    (result,) = results
    assert result.ok, result.run.error


def _neighbour_probe(
    settings: Settings, src_repo: Path, ports: list[int], pids: list[int]
) -> tuple[str, str]:
    """Another key's agent (the fake agent, in its own walls) asks the same server for its config, and
    tries to read the turn's processes' environments (where the password is): what it got of each."""
    commands = [
        f"{PYTHON} -S -c {shlex.quote(PROBE)} http://127.0.0.1:{port}/config '' >> probe.txt 2>&1"
        for port in ports
    ]
    commands += [f"(tr '\\0' '\\n' < /proc/{pid}/environ) >> environ.txt 2>&1" for pid in pids]
    request = RunRequest(agent="fake", repo=str(src_repo), thread="neighbour", prompt="look around")
    previous = os.environ.get("FAKE_AGENT_RUN")
    os.environ["FAKE_AGENT_RUN"] = " ; ".join(commands)
    try:
        result = run(request, settings=settings)
    finally:
        if previous is None:
            os.environ.pop("FAKE_AGENT_RUN", None)
        else:
            os.environ["FAKE_AGENT_RUN"] = previous
    assert result.ok, result.run.error
    worktree = Path(result.session.worktree)
    return (worktree / "probe.txt").read_text().strip(), (worktree / "environ.txt").read_text().strip()


def turn_password(pids: list[int]) -> str:
    """OpenCode's server password, read (as the test's own uid, outside any walls) from the turn's
    processes' environments."""
    for pid in pids:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for entry in environ:
            if entry.startswith(b"OPENCODE_SERVER_PASSWORD="):
                return entry.split(b"=", 1)[1].decode()
    return ""


def in_thread(request: RunRequest, settings: Settings) -> tuple[threading.Thread, list[RunResult]]:
    """A thread that runs ``request`` (not started yet) and the list its result goes to."""
    results: list[RunResult] = []
    return threading.Thread(target=lambda: results.append(run(request, settings=settings))), results


def more(model: MockServer[Any], than: int) -> bool:
    return len(model.requests) > than


@pytest.mark.parametrize("agent", ["opencode"])
def test_opencodes_password_is_its_turns_alone_and_never_written(
    model: MockServer[Any], settings: Settings, src_repo: Path, probe_script: Path
) -> None:
    """The password is what guards OpenCode's server (with it, its config is served), it is new for
    each turn, and it reaches no argv, no log, no file of ``BATON_HOME`` (the store included)."""
    model.delay = HOLD / 2
    seen: list[str] = []
    argvs: list[bytes] = []
    for number in range(2):
        request = RunRequest(agent="opencode", repo=str(src_repo), thread="served", prompt=f"turn {number}")
        turn, results = in_thread(request, settings)
        before = len(model.requests)
        model.released.clear()
        turn.start()
        try:
            wait_for(partial(more, model, before), timeout=120, what="OpenCode's model request")
            pids = turn_pids(settings.home)
            password = turn_password(pids)
            assert len(password) >= 40, "no password made for the turn"
            (port,) = {port for _, port in listening(pids)[0]}
            served = probe(probe_script, f"http://127.0.0.1:{port}/config", f"opencode:{password}")
            # the provider's apiKey is what the password guards: the run's token behind the gateway
            assert served.startswith("200") and '"apiKey":"baton-run-' in served, served
            assert "mock-key" not in served, "the real key is outside the walls"
            for entry in Path("/proc").iterdir():
                with contextlib.suppress(OSError):
                    argvs.append((entry / "cmdline").read_bytes())
        finally:
            model.released.set()
            turn.join(timeout=300)
        (result,) = results
        assert result.ok, result.run.error
        seen.append(password)
    assert seen[0] != seen[1], "the same password for two turns"
    for password in seen:
        secret = password.encode()
        assert not any(secret in argv for argv in argvs), "the password reached an argv"
        written = [p for p in settings.home.rglob("*") if p.is_file() and secret in p.read_bytes()]
        assert written == [], f"the password was written to {written}"
