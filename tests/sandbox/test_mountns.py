"""The agent's own mount namespace (baton.sandbox.mountns): real processes, walled in through
``baton.run`` (the fake agent, whose ``FAKE_AGENT_RUN`` command stands for its shell tool) and through
the real Claude Code CLI against its mock model.

A pathname UNIX socket outside the walls — PostgreSQL's, and one this test listens on in a temp dir —
does not exist for the agent (``connect`` answers ENOENT), while its worktree, temp dir and git work;
with ``BATON_MOUNT_NS=off`` the same connect reaches the socket (Landlock ABI < 9 does not check it),
which proves the test can fail.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton import Outcome, RunRequest, RunResult, run
from baton.models import Access
from baton.sandbox import confine, mountns
from baton.sandbox.walls import Walls
from baton.settings import Settings, load_settings
from baton.testing import MockModel
from baton.testing.tools import tool_marker
from tests.conftest import FAST, MOCKS

pytestmark = pytest.mark.slow

POSTGRES = "/var/run/postgresql/.s.PGSQL.5432"
# Connects to each path given; prints "<path> connected" or "<path> <errno name>".
PROBE = (
    "import errno, socket, sys\n"
    "for path in sys.argv[1:]:\n"
    "    s = socket.socket(socket.AF_UNIX)\n"
    "    try:\n"
    "        s.connect(path)\n"
    "        print(path, 'connected')\n"
    "    except OSError as exc:\n"
    "        print(path, errno.errorcode[exc.errno])\n"
)


@pytest.fixture(autouse=True)
def _allowed() -> None:
    assert mountns.probe() is None, f"this host should allow mount namespaces: {mountns.probe()}"


@pytest.fixture
def listening(tmp_path: Path) -> Iterator[str]:
    """A UNIX socket listening in a temp dir outside the walls (outside BATON_HOME too)."""
    (tmp_path / "sockets").mkdir()
    path = str(tmp_path / "sockets" / "service.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(16)
    yield path
    server.close()


def sockets(listening: str) -> list[str]:
    return [listening, *([POSTGRES] if os.path.exists(POSTGRES) else [])]


def probe_command(paths: list[str]) -> str:
    return shlex.join([sys.executable, "-c", PROBE, *paths])


def mode_settings(home: Path, mode: str) -> Settings:
    return load_settings(overrides={"home": str(home), **FAST, "mount_ns": mode}, environ={})


def ask(settings: Settings, repo: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> RunResult:
    monkeypatch.setenv("FAKE_AGENT_RUN", command)
    request = RunRequest(agent="fake", repo=str(repo), thread="ns", prompt="work", access=Access.FULL)
    result = run(request, settings=settings)
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    assert result.run.confined
    return result


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_a_walled_agent_reaches_no_socket_outside_its_walls(
    mode: str, home: Path, src_repo: Path, listening: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = sockets(listening)
    work = "; ".join(
        [
            f"{probe_command(paths)} > probes.txt",
            'echo kept > "$TMPDIR/t" && cat "$TMPDIR/t" >> probes.txt',
            "git add probes.txt && git commit -qm probes && echo committed >> probes.txt",
            f"test -e {shlex.quote(str(home / 'baton.db'))} || echo no-store >> probes.txt",
        ]
    )
    cwd = os.getcwd()
    result = ask(mode_settings(home, mode), src_repo, monkeypatch, work)
    lines = (Path(result.session.worktree) / "probes.txt").read_text().splitlines()
    expected = "ENOENT" if mode == "auto" else "connected"
    assert lines[: len(paths)] == [f"{path} {expected}" for path in paths], lines
    # stat() is not walled by Landlock: only the namespace hides that the store exists
    assert lines[len(paths) :] == ["kept", "committed", *(["no-store"] if mode == "auto" else [])], lines
    assert os.path.exists(listening) and os.getcwd() == cwd, "the runner's own view is the host's"


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_the_shared_clones_alternates_are_no_agents_to_write(
    mode: str, home: Path, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent at ``full`` (it may write the cache clone's ``objects/``) tries to point every key's
    git at objects elsewhere: in its mount namespace ``objects/info`` is read-only (its write fails, and
    its commit still works); without one the walls let the write through, and baton removes the file
    before its own git reads the clone (the next turn's preparation, any repair of the worktree)."""
    info = '"$(git rev-parse --git-common-dir)/objects/info"'
    work = "; ".join(
        [
            f"echo /tmp > {info}/alternates 2> /dev/null && echo wrote > alt.txt || echo refused > alt.txt",
            "git add alt.txt && git commit -qm alt && echo committed >> alt.txt",
        ]
    )
    settings = mode_settings(home, mode)
    result = ask(settings, src_repo, monkeypatch, work)
    worktree = Path(result.session.worktree)
    said = (worktree / "alt.txt").read_text().split()
    assert said == ["refused" if mode == "auto" else "wrote", "committed"], said
    cache = next((home / "repos").rglob("*.git"))
    again = ask(settings, src_repo, monkeypatch, "true")
    assert again.run.outcome == Outcome.SUCCEEDED
    assert not (cache / "objects" / "info" / "alternates").exists()


def test_the_namespace_holds_only_the_walls_paths(home: Path, tmp_path: Path, listening: str) -> None:
    """Straight through :class:`mountns.Spawner`: the agent sees its worktree at its own path, the
    system, its CLI; not BATON_HOME's other parts, /var, /tmp's other files; the runner's thread that
    started it keeps the host's view."""
    worktree = home / "worktrees" / "fake" / "repo" / "t1"
    worktree.mkdir(parents=True)
    (home / "worktrees" / "fake" / "repo" / "t2").mkdir()
    spec = Walls(
        home=home,
        worktree=worktree,
        agent_home=home / "keys" / "t1" / "home",
        tmp=home / "keys" / "t1" / "tmp",
        path=os.environ["PATH"],
        commands=(Path(sys.executable),),
    )
    spawn = mountns.walled(spec)[1]
    assert not any(
        b == str(home) or b.startswith(str(home) + "/worktrees/fake/repo/t2") for b in spawn.layout.binds
    )
    script = (
        f"for p in /usr/bin/git /etc/passwd /proc/self/status {worktree} /bin/sh /dev/null "
        f"{worktree.parent / 't2'} /var {tmp_path / 'sockets'} {home / 'keys'} /root/.bashrc; do "
        'if test -e "$p"; then echo "$p there"; else echo "$p gone"; fi; done; pwd'
    )
    proc = spawn(
        lambda: subprocess.Popen(
            ["sh", "-c", script],
            cwd=worktree,
            env={"PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE,
            text=True,
        )
    )
    out, _ = proc.communicate(timeout=30)
    seen = dict(line.rsplit(" ", 1) for line in out.splitlines()[:-1])
    there = ["/usr/bin/git", "/etc/passwd", "/proc/self/status", str(worktree), "/bin/sh", "/dev/null"]
    assert {p: seen[p] for p in there} == dict.fromkeys(there, "there"), out
    gone = [str(worktree.parent / "t2"), "/var", str(tmp_path / "sockets"), "/root/.bashrc"]
    assert {p: seen[p] for p in gone} == dict.fromkeys(gone, "gone"), out
    assert seen[str(home / "keys")] == "there"  # on the way to the key's home and temp dir
    assert out.splitlines()[-1] == str(worktree) and proc.returncode == 0
    assert os.path.exists(listening) and Path("/var").is_dir()


def test_links_on_the_way_to_a_path_dir_are_recreated(home: Path, tmp_path: Path) -> None:
    """A ``PATH`` entry through a link (nvm's ``current``): the walls grant its target, the namespace
    recreates the link, so the tool is found by the name the agent's ``PATH`` gives."""
    (tmp_path / "versions" / "v1" / "bin").mkdir(parents=True)
    tool = tmp_path / "versions" / "v1" / "bin" / "tool"
    tool.write_text("#!/bin/sh\necho tool ran\n")
    tool.chmod(0o755)
    (tmp_path / "current").symlink_to("versions/v1")
    worktree = home / "worktrees" / "fake" / "repo" / "t1"
    worktree.mkdir(parents=True)
    path = f"{tmp_path / 'current' / 'bin'}:/usr/bin:/bin"
    spec = Walls(home=home, worktree=worktree, agent_home=home / "h", tmp=home / "t", path=path)
    _, spawn = mountns.walled(spec)
    assert (str(tmp_path / "current"), "versions/v1") in spawn.layout.links
    proc = spawn(
        lambda: subprocess.Popen(
            ["sh", "-c", "tool"], cwd=worktree, env={"PATH": path}, stdout=subprocess.PIPE
        )
    )
    assert proc.communicate(timeout=30)[0] == b"tool ran\n" and proc.returncode == 0


def test_a_namespace_that_cannot_be_built_starts_nothing(home: Path, tmp_path: Path) -> None:
    """A bind that fails (its source gone since the layout was made) fails the start with the reason;
    the runner keeps its own view, and nothing is left mounted on the host."""
    worktree = home / "worktrees" / "fake" / "repo" / "t1"
    worktree.mkdir(parents=True)
    spec = Walls(home=home, worktree=worktree, agent_home=home / "h", tmp=home / "t", path="/usr/bin:/bin")
    built, spawn = mountns.walled(spec)
    gone = tmp_path / "gone"
    gone.mkdir()
    spawn.layout = dataclasses.replace(spawn.layout, binds=(*spawn.layout.binds, str(gone)))
    gone.rmdir()
    before, cwd = Path("/proc/self/mountinfo").read_text(), os.getcwd()
    with pytest.raises(OSError, match=f"the agent's mount namespace: binding {gone}"):
        spawn(lambda: subprocess.Popen(["/bin/true"], cwd=worktree))
    assert Path("/proc/self/mountinfo").read_text() == before and os.getcwd() == cwd
    assert list((home / mountns.BASE).iterdir()) == []  # the mount point is empty on the host
    assert built.fd == -1  # the ruleset is closed all the same


def test_doctor_says_which_applies(home: Path) -> None:
    assert "pathname UNIX sockets hidden (the agent's own mount namespace)" in (
        confine.describe(mode_settings(home, "auto")).detail
    )
    off = confine.describe(mode_settings(home, "off")).detail
    assert "pathname UNIX sockets not walled (BATON_MOUNT_NS=off;" in off


@pytest.fixture
def claude(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MockModel]:
    (tmp_path / "user-home").mkdir()  # as test_access_real: the CLI's shells skip this machine's ~/.bashrc
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    module, name = MOCKS["claude"]
    with getattr(importlib.import_module(module), name)() as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        server.configure_home(settings.home / "homes" / "claude")
        yield server


def test_the_real_claude_cli_cannot_reach_postgres(
    home: Path, src_repo: Path, listening: str, claude: MockModel
) -> None:
    """Claude Code at ``full``, its Bash tool asked for ``psql`` (or a Python connect where there is
    no psql) on the host's PostgreSQL socket and this test's: refused in its namespace, reached with
    ``BATON_MOUNT_NS=off``."""
    psql = os.path.exists("/usr/bin/psql") and os.path.exists(POSTGRES)
    command = ("psql -h /var/run/postgresql -c 'select 1' test; " if psql else "") + probe_command(
        [listening]
    )
    outputs = {}
    for mode in ("auto", "off"):
        request = RunRequest(
            agent="claude",
            repo=str(src_repo),
            thread=f"psql-{mode}",
            prompt=f"query it {tool_marker('Bash', command=command)}",
            access=Access.FULL,
        )
        result = run(request, settings=mode_settings(home, mode))
        assert result.run.outcome == Outcome.SUCCEEDED and result.run.confined, result.run.error
        last = claude.conversation()[-1]  # type: ignore[attr-defined]
        blocks = [
            b for b in last.messages[-1]["content"] if isinstance(b, dict) and b.get("type") == "tool_result"
        ]
        outputs[mode] = str(blocks[0].get("content"))
    print(outputs)
    assert f"{listening} ENOENT" in outputs["auto"], outputs["auto"]
    assert f"{listening} connected" in outputs["off"], outputs["off"]
    if psql:
        assert "No such file or directory" in outputs["auto"] and "(1 row)" not in outputs["auto"]
        assert "(1 row)" in outputs["off"], outputs["off"]
