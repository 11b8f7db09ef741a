"""What a walled agent sees of the machine's processes and secrets (issue 42): in its own mount
namespace, ``/proc`` is a fresh procfs with ``hidepid=ptraceable`` (baton.sandbox.mountns), so
``ls /proc`` and ``/proc/*/cmdline`` show its own run's processes only, and ``/etc/shadow`` (with
the other :data:`baton.sandbox.hostsecrets.SECRETS`) is an empty file there, or refused by Landlock
without one.

The scene: two processes hold a canary in their argv while the agent runs — a *bystander* started by
this test unconfined (a concurrent ``baton run`` with its prompt, a database's command line) and
*another agent*, started behind the walls of another key (its own Landlock domain and mount namespace,
as a concurrent run's tool command). The agent's shell tool starts a child of its own whose argv holds
a word that its command does not spell (``own-4''2-child``: Gemini refuses ``$(...)``; the child ends
by itself: Copilot refuses ``kill $!``), then lists ``/proc``, prints every ``/proc/<pid>/cmdline``,
asks for both canary processes by pid, and reads ``/etc/shadow`` and ``/etc/gshadow``. What must
hold: neither canary nor any line of the shadow files in what it saw, its own child there. With
``BATON_MOUNT_NS=off`` (the fake agent) the canaries *are* seen: the test can fail (and it fails with
the procfs mounted without ``hidepid``, or without the masks: both tried). Through the fake agent
(``FAKE_AGENT_RUN``) and each of the five real CLIs against its mock, at ``full``.

``/proc/net`` is the network namespace's whatever the procfs: the test asserts the documented gap
(docs/security.md), that a socket this test listens on is listed in ``/proc/net/unix`` by its path.
"""

from __future__ import annotations

import os
import secrets
import shlex
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from baton import Outcome, RunRequest, run
from baton.models import Access
from baton.sandbox import confine, hostsecrets, mountns, walls
from baton.settings import Settings, load_settings
from tests.conftest import FAMILIES, FAST
from tests.sandbox import test_walls_real
from tests.sandbox.test_walls_real import TOOLS, real_cli, results_by_call

# test_walls_real's fixtures, by the names pytest finds them under here
canaries = test_walls_real.canaries
start_mock = test_walls_real.mocked

pytestmark = pytest.mark.slow

OWN = "own-42-child"  # in the agent's child's argv; its command spells it own-4''2-child
TIMEOUT = 240.0
SHELL_AT_READ = {"claude", "codex"}  # the CLIs whose shell runs at read (Claude: the operator allows Bash)


@dataclass(frozen=True)
class Scene:
    """The processes that hold canaries in their argv, the socket listened on, the shadow lines."""

    canaries: dict[str, str]  # bystander, agent: the canary in that process's argv
    pids: dict[str, int]
    socket_path: str
    shadow: tuple[str, ...]  # every line of /etc/shadow and /etc/gshadow with a password field

    def command(self) -> str:
        """The agent's tool command (see the module docstring): one line, no canary spelled."""
        own = f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(5)' own-4''2-child"
        by_pid = " ".join(f"/proc/{pid}/cmdline" for pid in self.pids.values())
        return (
            f"{own} & sleep 1; echo pids:; ls /proc | grep -c '^[0-9]'; "
            "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done; "
            f"cat {by_pid}; echo; cat /etc/shadow /etc/gshadow; grep -c . /proc/net/unix; "
            f"grep -o {shlex.quote(self.socket_path)} /proc/net/unix"
        )

    def argv_leaks(self, seen: str) -> list[str]:
        return [f"the {name}'s argv" for name, canary in self.canaries.items() if canary in seen]

    def shadow_leaks(self, seen: str) -> list[str]:
        return [f"a line of the shadow files ({line[:12]}...)" for line in self.shadow if line in seen]

    def leaks(self, seen: str) -> list[str]:
        """What the agent must not have seen, among ``seen``."""
        return self.argv_leaks(seen) + self.shadow_leaks(seen)


def shadow_lines() -> tuple[str, ...]:
    lines = [
        line
        for path in ("/etc/shadow", "/etc/gshadow")
        if os.path.exists(path)
        for line in Path(path).read_text().splitlines()
    ]
    return tuple(line for line in lines if line.count(":") >= 2 and len(line) > 8)


def other_agent(home: Path, canary: str) -> subprocess.Popen[bytes]:
    """A process behind another key's walls (its own Landlock domain and mount namespace)."""
    worktree = home / "worktrees" / "fake" / "other" / "t"
    worktree.mkdir(parents=True, exist_ok=True)
    spec = walls.Walls(
        home=home, worktree=worktree, agent_home=home / "other-h", tmp=home / "other-t", path="/usr/bin:/bin"
    )
    _, spawn = mountns.walled(spec)
    script = "import time; time.sleep(600)"
    return spawn(lambda: subprocess.Popen([sys.executable, "-c", script, canary], cwd=worktree))


@pytest.fixture
def scene(home: Path, tmp_path: Path) -> Iterator[Scene]:
    assert mountns.proc_probe() is None, f"this host should allow a fresh procfs: {mountns.proc_probe()}"
    words = {name: f"canary{secrets.token_hex(12)}" for name in ("bystander", "other agent")}
    started = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", words["bystander"]]),
        other_agent(home, words["other agent"]),
    ]
    (tmp_path / "sock").mkdir()
    path = str(tmp_path / "sock" / f"listening-{secrets.token_hex(4)}.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    try:
        shadow = shadow_lines()
        assert shadow, "this test runs as root on a host with /etc/shadow"
        yield Scene(words, dict(zip(words, (p.pid for p in started), strict=True)), path, shadow)
    finally:
        server.close()
        for proc in started:
            proc.kill()
            proc.wait()


def check(scene: Scene, seen: str, hidden: bool = True) -> list[str]:
    """Problems with what the agent saw: a leak, or its own child missing, or the documented gap
    not as documented (its /proc/net/unix lists the test's socket)."""
    problems = scene.leaks(seen) if hidden else []
    if not hidden and not all(canary in seen for canary in scene.canaries.values()):
        problems.append("without the namespace the canaries should be seen (the probe is broken)")
    if OWN not in seen:
        problems.append("its own child's argv is missing")
    if scene.socket_path not in seen:
        problems.append("/proc/net/unix did not list the test's socket (docs/security.md says it does)")
    return problems


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_the_fake_agent_sees_only_its_own_processes(
    mode: str, home: Path, src_repo: Path, scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(overrides={"home": str(home), **FAST, "mount_ns": mode}, environ={})
    monkeypatch.setenv("FAKE_AGENT_RUN", f"({scene.command()}) > seen.txt 2>&1")
    request = RunRequest(agent="fake", repo=str(src_repo), thread="procs", prompt="look", access=Access.FULL)
    result = run(request, settings=settings)
    assert result.run.outcome == Outcome.SUCCEEDED and result.run.confined, result.run.error
    seen = (Path(result.session.worktree) / "seen.txt").read_text()
    problems = check(scene, seen, hidden=mode == "auto")
    if mode == "off":  # Landlock alone still refuses the shadow files (/etc granted child by child)
        problems += scene.shadow_leaks(seen)
        problems += [] if "/etc/shadow: Permission denied" in seen else ["/etc/shadow was not refused"]
    else:
        pids = int(seen.split("pids:", 1)[1].split()[0])
        problems += [] if pids <= 8 else [f"{pids} processes listed in /proc (its own are a few)"]
    assert not problems, f"{problems}\n{seen[:3000]}"


def test_a_host_without_a_fresh_procfs_binds_its_own(home: Path) -> None:
    """Where :func:`mountns.proc_probe` fails (a container's masked /proc), /proc is the host's,
    bound: the agent still starts; /proc/self works; and doctor says the processes are visible."""
    worktree = home / "wt"
    worktree.mkdir(parents=True)
    spec = walls.Walls(
        home=home, worktree=worktree, agent_home=home / "h", tmp=home / "t", path="/usr/bin:/bin"
    )
    found = walls.rules(spec, masked=True)
    bound, fresh = mountns.layout(spec, found, proc=False), mountns.layout(spec, found, proc=True)
    assert "/proc" in bound.binds and not bound.proc
    assert "/proc" not in fresh.binds and fresh.proc and "/proc" in fresh.dirs
    assert "/etc/shadow" in fresh.masks and "/etc/shadow" in bound.masks


def test_doctor_says_what_agents_see(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def detail(mode: str) -> str:
        settings = load_settings(overrides={"home": str(home), **FAST, "mount_ns": mode}, environ={})
        return confine.describe(settings).detail

    assert "processes: only their own run's (a procfs with hidepid=ptraceable" in detail("auto")
    monkeypatch.setattr(mountns, "proc_probe", lambda: "procfs: Operation not permitted")
    said = detail("auto")
    assert "processes: every process's command line visible (no fresh procfs: procfs" in said, said
    assert "every process's command line visible (BATON_MOUNT_NS=off" in detail("off")


# -- the real CLIs ------------------------------------------------------------------------------------


# One CLI per family at full (the process namespace is baton's, around whatever the CLI runs); at read
# those that reach /proc at all: Gemini at read refuses its shell ("denied by policy") and any path
# outside the workspace to its file tools (measured), so it proves nothing there.
CASES = [(agent, Access.FULL) for agent in FAMILIES]
CASES += [(agent, Access.READ) for agent in FAMILIES if agent != "gemini"]


@pytest.mark.parametrize(("agent", "access"), CASES, ids=lambda v: str(getattr(v, "value", v)))
def test_a_real_cli_sees_only_its_own_processes(
    agent: str,
    access: Access,
    settings: Settings,
    src_repo: Path,
    scene: Scene,
    request: pytest.FixtureRequest,
) -> None:
    """Each real CLI at ``read`` and ``full``, its shell tool asked for the scene's command by its
    mock; at ``read``, where the CLI refuses its shell (Gemini, Copilot, OpenCode), its file-read tool
    asked for the canary processes' ``/proc/<pid>/cmdline`` and the shadow files, and, to show that
    it reads ``/proc`` at all, ``/proc/self/status``."""
    real_cli(agent, settings)
    mocked: Callable[[str, Path], Any] = request.getfixturevalue("start_mock")
    model = mocked(agent, settings.home / "homes" / agent)
    reads = access == Access.READ and agent not in SHELL_AT_READ
    if reads:
        paths = [f"/proc/{pid}/cmdline" for pid in scene.pids.values()]
        paths += ["/etc/shadow", "/etc/gshadow", "/proc/self/status"]
        prompt = "Look around:\n" + "\n".join(TOOLS[agent]["read"](path) for path in paths)
    else:
        prompt = "Look around:\n" + TOOLS[agent]["shell"](scene.command())
    asked = RunRequest(
        agent=agent, repo=str(src_repo), thread="procs", prompt=prompt, access=access, timeout=TIMEOUT
    )
    result = run(asked, settings=settings)
    assert result.run.outcome == Outcome.SUCCEEDED and result.run.confined, result.run.error
    results = results_by_call(agent, model)
    assert len(results) == (5 if reads else 1), results
    seen = "\n".join(results)
    if reads:
        problems = scene.leaks(seen)
        problems += [] if "PPid:" in results[-1] else ["/proc/self/status was not read"]
    else:
        problems = check(scene, seen)
    problems += [
        f"a leak in request {n} to the mock" for n, r in enumerate(model.requests) if scene.leaks(str(r.body))
    ]
    assert not problems, f"{agent}: {problems}\n{seen[:3000]}"


@pytest.mark.parametrize(
    ("options", "hides"),
    [("rw", False), ("rw,hidepid=invisible", False), ("rw,hidepid=ptraceable", True), ("rw,hidepid=4", True)],
)
def test_doctor_reads_the_hosts_proc_options(tmp_path: Path, options: str, hides: bool) -> None:
    """Without a namespace, what the agent sees is the host's /proc: ``hidepid=ptraceable`` there hides
    the others (``invisible`` does not: every agent is baton's uid)."""
    info = tmp_path / "mountinfo"
    info.write_text(
        "21 27 0:20 / /sys rw,nosuid - sysfs sysfs rw\n"
        f"22 27 0:21 / /proc rw,relatime - proc proc {options}\n"
        "23 22 0:22 / /proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw\n"
    )
    assert mountns.host_hides(str(info)) is hides
    assert mountns.host_hides(str(tmp_path / "none")) is False


def test_sparing_grants_a_directory_but_its_secrets(tmp_path: Path) -> None:
    """Without a namespace, Landlock grants /etc child by child: every child but a secret, into a
    directory that holds one, links left out (the kernel checks their target, walled as before)."""
    etc = tmp_path / "etc"
    (etc / "ssl" / "private").mkdir(parents=True)
    (etc / "ssl" / "certs").mkdir()
    for name in ("passwd", "shadow", "hosts"):
        (etc / name).write_text(name)
    (etc / "mtab").symlink_to("/proc/self/mounts")
    spared = [str(etc / "shadow"), str(etc / "ssl" / "private")]
    found = sorted(hostsecrets.sparing(str(etc), spared))
    assert found == [str(etc / "hosts"), str(etc / "passwd"), str(etc / "ssl" / "certs")]
    assert hostsecrets.sparing(str(etc / "ssl" / "certs"), spared) == [str(etc / "ssl" / "certs")]
    assert hostsecrets.sparing(str(etc / "shadow"), spared) == []
