"""baton.sandbox.walls, the policy, with real processes in a fake BATON_HOME laid out as baton lays it
out (a bare cache clone, two keys' linked worktrees on their branches): a confined agent reads the
system and its key, writes only its key's parts, commits with git in its worktree, cannot touch the
store, the logs or another key, cannot reach a denied port or signal baton, and nor can anything it
starts. Plus the pure parts: the ports, the URLs, the installations, the split around BATON_HOME.

Like tests/sandbox/test_landlock.py these fail, never skip, where the kernel lacks Landlock (unless
``BATON_TEST_NO_LANDLOCK=1``)."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from baton.errors import BadInput
from baton.runner.process import RunLog, run_process
from baton.sandbox import walls
from baton.sandbox.walls import Walls, git_parts, installation, rules, ruleset, support, tcp_ports, url_port
from baton.settings import Settings
from tests.conftest import GIT_ID
from tests.sandbox.test_landlock import require_landlock


@pytest.fixture(autouse=True)
def abi() -> int:
    return require_landlock()


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT_ID}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@dataclass(frozen=True)
class Layout:
    home: Path
    cache: Path
    mine: Path  # the key's worktree (thread t1)
    other: Path  # another key's worktree (thread t2), same agent and repo
    walls: Walls


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """BATON_HOME with a store, a log, a cache clone and two keys' worktrees (``baton/fake/t1|t2``)."""
    source = tmp_path / "source"
    source.mkdir()
    git("init", "-q", "-b", "main", cwd=source)
    (source / "README").write_text("hello\n")
    git("add", ".", cwd=source)
    git("commit", "-qm", "init", cwd=source)
    home = tmp_path / "home"
    cache = home / "repos" / "source.git"
    cache.parent.mkdir(parents=True)
    git("clone", "--bare", "-q", str(source), str(cache), cwd=tmp_path)
    trees = {}
    for thread in ("t1", "t2"):
        trees[thread] = home / "worktrees" / "fake" / "source" / thread
        trees[thread].parent.mkdir(parents=True, exist_ok=True)
        git("worktree", "add", "-q", "-b", f"baton/fake/{thread}", str(trees[thread]), "main", cwd=cache)
    (trees["t2"] / "secret.txt").write_text("t2's work\n")
    (home / "baton.db").write_text("the store\n")
    (home / "logs").mkdir()
    (home / "logs" / "run.jsonl").write_text("a transcript\n")
    spec = Walls(
        home=home,
        worktree=trees["t1"],
        git=git_parts(trees["t1"]),
        agent_home=home / "homes" / "fake" / "t1",
        tmp=home / "tmp" / "t1",
        path=os.environ.get("PATH", ""),
        commands=(Path(shutil.which("git") or "/usr/bin/git"),),
    )
    return Layout(home, cache, trees["t1"], trees["t2"], spec)


def confined(spec: Walls, script: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``sh -c script`` walled in by ``spec``, in its worktree, with its home and temp dir."""
    env = {**os.environ, **GIT_ID, "HOME": str(spec.agent_home), "TMPDIR": str(spec.tmp)}
    proc = ruleset(spec).spawn(
        lambda: subprocess.Popen(
            ["sh", "-c", script],
            cwd=cwd or spec.worktree,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    )
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def refused(spec: Walls, script: str) -> bool:
    """Whether ``script`` fails under the walls with a permission error."""
    done = confined(spec, script)
    return done.returncode != 0 and ("denied" in done.stderr or "not permitted" in done.stderr)


# -- files ----------------------------------------------------------------------------------------------


def test_the_rest_of_baton_home_is_out_of_reach(layout: Layout) -> None:
    spec, home = layout.walls, layout.home
    for path in (home / "baton.db", home / "logs" / "run.jsonl", layout.other / "secret.txt"):
        assert refused(spec, f"cat {path}"), path
        assert path.read_text()  # and it is there: the walls, not a missing file, said no
    assert refused(spec, f"ls {home}")
    assert refused(spec, f"ls {home / 'worktrees' / 'fake' / 'source'}")


def test_the_agent_writes_only_its_own_parts(layout: Layout, tmp_path: Path) -> None:
    spec = layout.walls
    done = confined(spec, 'echo w > mine.txt && echo t > "$TMPDIR/t" && echo h > "$HOME/h" && echo ok')
    assert done.stdout == "ok\n", done.stderr
    assert (
        (spec.worktree / "mine.txt").is_file()
        and (spec.tmp / "t").is_file()
        and (spec.agent_home / "h").is_file()
    )
    outside = [
        tmp_path / "outside",
        layout.home / "baton.db",
        layout.home / "new-file",
        layout.other / "evil.txt",
        layout.cache / "config",
        layout.cache / "hooks" / "post-checkout",
        layout.cache / "refs" / "heads" / "main",
    ]
    for path in outside:
        assert refused(spec, f"echo x >> {path}"), path
    assert not (tmp_path / "outside").exists() and not (layout.other / "evil.txt").exists()
    assert (layout.home / "baton.db").read_text() == "the store\n"


def test_git_commits_in_the_linked_worktree(layout: Layout) -> None:
    spec = layout.walls
    script = (
        "echo change >> README && echo new > new.txt && git add -A && git commit -qm 'agent work' "
        "&& git status --short && git log --oneline"
    )
    done = confined(spec, script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].endswith("agent work")
    assert git("log", "-1", "--format=%s", "baton/fake/t1", cwd=layout.cache) == "agent work"
    assert git("log", "-1", "--format=%s", "baton/fake/t2", cwd=layout.cache) == "init"
    assert git("status", "--short", cwd=layout.mine) == ""
    # what stays out of reach: another key's files, the shared config (a hook or an alias there would
    # run in baton's own git commands), another branch's worktree through git
    assert refused(spec, f"echo x > {layout.other}/README")
    assert refused(spec, "git config core.hooksPath /tmp")
    assert refused(spec, f"git -C {layout.other} commit --allow-empty -qm intruder")
    assert git("log", "-1", "--format=%s", "baton/fake/t2", cwd=layout.cache) == "init"


def test_a_grandchild_is_walled_in_too(layout: Layout) -> None:
    spec = layout.walls
    assert refused(spec, f"sh -c 'sh -c \"cat {layout.home / 'baton.db'}\"'")
    assert refused(spec, f"sh -c 'kill -0 {os.getpid()}'")


def test_a_symlink_into_baton_home_gives_nothing(layout: Layout, tmp_path: Path) -> None:
    """An allowed directory that holds a link to BATON_HOME (or BATON_HOME itself) is split around it."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "tool.txt").write_text("a tool\n")
    (shared / "link").symlink_to(layout.home)
    spec = replace(layout.walls, read=(tmp_path,))  # tmp_path contains BATON_HOME
    done = confined(spec, f"cat {shared}/tool.txt && cat {tmp_path}/source/README")
    assert done.stdout == "a tool\nhello\n", done.stderr
    assert refused(spec, f"cat {shared}/link/baton.db")
    assert refused(spec, f"cat {layout.home}/baton.db")


def test_devices_and_temp(layout: Layout) -> None:
    spec = layout.walls
    done = confined(spec, "echo x > /dev/null && head -c 4 /dev/urandom | wc -c && echo ok")
    assert done.stdout.split() == ["4", "ok"], done.stderr
    assert refused(spec, "echo x > /tmp/baton-walls-test")
    if os.path.isdir("/dev/shm"):
        assert refused(spec, "echo x > /dev/shm/baton-walls-test")
    disks = [
        e.path for e in os.scandir("/dev") if stat.S_ISBLK(os.stat(e.path, follow_symlinks=False).st_mode)
    ]
    if disks:
        assert refused(spec, f"head -c 1 {disks[0]}")


def test_baton_environment_is_not_readable(layout: Layout) -> None:
    """/proc/<baton>/environ holds baton's secrets: Landlock's ptrace rule refuses it, and a root agent
    has lost CAP_SYS_ADMIN and CAP_PERFMON, which would let it through (measured on Linux 6.18)."""
    spec = layout.walls
    assert refused(spec, f"cat /proc/{os.getpid()}/environ")
    assert confined(spec, "cat /proc/self/environ | tr '\\0' '\\n' | grep -c ^HOME=").stdout == "1\n"


def test_a_python_agent_runs(layout: Layout) -> None:
    """This Python (its prefix and base prefix) and baton's own package are readable: the fake agent."""
    done = confined(layout.walls, f"{sys.executable} -c 'import baton.sandbox.landlock; print(1 + 1)'")
    assert done.stdout == "2\n", done.stderr


# -- network ----------------------------------------------------------------------------------------------


@pytest.fixture
def listeners() -> Iterator[tuple[int, int]]:
    socks = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    try:
        yield socks[0].getsockname()[1], socks[1].getsockname()[1]
    finally:
        for sock in socks:
            sock.close()


def test_only_the_allowed_ports_connect(abi: int, layout: Layout, listeners: tuple[int, int]) -> None:
    if abi < 4:
        pytest.fail(f"Landlock ABI {abi} has no network rules (4 needed)")
    allowed, denied = listeners
    settings = Settings(home=layout.home, store_url=f"postgresql+psycopg://u@127.0.0.1:{denied}/db")
    ports = tcp_ports(settings, {"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{allowed}"})
    assert allowed in ports and denied not in ports
    spec = replace(layout.walls, ports=ports)
    code = (
        "import socket, sys\n"
        "for port in sys.argv[1:]:\n"
        "    try: socket.create_connection(('127.0.0.1', int(port)), timeout=5).close(); print('ok')\n"
        "    except OSError as exc: print(type(exc).__name__)\n"
    )
    done = confined(spec, f'{sys.executable} -c "{code}" {allowed} {denied}')
    assert done.stdout.split() == ["ok", "PermissionError"], done.stderr


def test_the_ports() -> None:
    settings = Settings(
        home=Path("/nonexistent"),
        store_url="postgresql+psycopg://baton:pw@db.internal/baton",
        broker_url="amqp://guest@mq//",
        redis_url="redis://cache:6380/0",
        agent_ports="8080, 3000",
    )
    env = {
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:41001",
        "GOOGLE_GEMINI_BASE_URL": "https://gemini.example",
        "HTTPS_PROXY": "http://proxy:3128",
        "no_proxy": "localhost:1234",
        "OTHER": "http://x:9999",
    }
    ports = tcp_ports(settings, env, urls=["http://git.example:3001/acme/api.git"])
    assert ports == {80, 443, 22, 9418, 41001, 3128, 8080, 3000, 3001}
    assert walls.denied_ports(settings) == {5432, 5672, 6380}
    # a denied port is never allowed, whoever asks for it
    assert 5432 not in tcp_ports(settings.with_(agent_ports="5432"), {"OPENAI_BASE_URL": "http://h:5672"})
    with pytest.raises(BadInput, match="agent_ports"):
        tcp_ports(settings.with_(agent_ports="80,http"), {})
    assert walls.denied_ports(Settings(home=Path("/x"))) == frozenset()  # SQLite: no port


@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("postgresql+psycopg://u:p@h/db", 5432),
        ("postgresql://h:6543/db", 6543),
        ("rediss://h", 6379),
        ("amqps://h", 5671),
        ("https://h", 443),
        ("ssh://git@h/x.git", 22),
        ("sqlite:////var/lib/baton.db", None),
        ("http://h:99999", None),
        ("not a url", None),
    ],
)
def test_url_port(url: str, port: int | None) -> None:
    assert url_port(url) == port


# -- the policy's pieces --------------------------------------------------------------------------------


def test_git_parts(layout: Layout, tmp_path: Path) -> None:
    parts = git_parts(layout.mine)
    assert parts is not None
    assert (
        parts.common == layout.cache.resolve() and parts.gitdir == layout.cache.resolve() / "worktrees" / "t1"
    )
    assert parts.branch == "refs/heads/baton/fake/t1"
    assert parts.writable()[2:] == [
        parts.common / "refs/heads/baton/fake",
        parts.common / "logs/refs/heads/baton/fake",
    ]
    assert git_parts(tmp_path) is None


def test_installation(tmp_path: Path) -> None:
    package = tmp_path / "lib" / "node_modules" / "@acme" / "cli"
    (package / "bin").mkdir(parents=True)
    (package / "node_modules" / "dep").mkdir(parents=True)
    (package / "bin" / "cli.js").write_text("")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "acme").symlink_to(package / "bin" / "cli.js")
    assert installation(tmp_path / "bin" / "acme") == (tmp_path / "lib" / "node_modules").resolve()
    (tmp_path / "bin" / "native").write_text("")
    assert installation(tmp_path / "bin" / "native") == tmp_path.resolve()  # <prefix>/bin + <prefix>/lib
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "x").write_text("")
    assert installation(tmp_path / "tools" / "x") == (tmp_path / "tools").resolve()


def test_rules_never_name_baton_home_but_the_keys_parts(layout: Layout, tmp_path: Path) -> None:
    spec = replace(
        layout.walls, read=(tmp_path,), path=f"{layout.home / 'bin2'}:{os.environ.get('PATH', '')}"
    )
    (layout.home / "bin2").mkdir()
    walls.prepare(spec)
    found = rules(spec)
    home = str(layout.home.resolve())
    inside = {path for path, _ in found.paths if path == home or path.startswith(home + "/")}
    parts = git_parts(layout.mine)
    assert parts is not None
    assert inside == {
        str(layout.mine.resolve()),
        str(spec.agent_home.resolve()),
        str(spec.tmp.resolve()),
        str(parts.common),
        str(parts.gitdir),
        *(str(p) for p in parts.writable()[1:]),
    }
    granted = {path for path, _ in found.paths}
    assert str(tmp_path.resolve()) not in granted and str((tmp_path / "source").resolve()) in granted
    assert "/" not in granted and str(Path.home().resolve()) not in granted  # too broad from PATH


def test_support() -> None:
    found = support()
    assert found.ok and found.reason is None and found.abi >= 1
    assert (found.missing == ()) == (found.abi >= 6)


def test_home_missing_parts_are_made(layout: Layout) -> None:
    spec = layout.walls
    assert not spec.agent_home.exists() and not spec.tmp.exists()
    walls.prepare(spec)
    assert spec.agent_home.is_dir() and stat.S_IMODE(spec.tmp.stat().st_mode) == 0o700
    assert (layout.cache / "logs" / "refs" / "heads" / "baton" / "fake").is_dir()


def test_ports_are_walls_input_not_environment(layout: Layout) -> None:
    """The walls take the ports they are given (the runner computes them with :func:`tcp_ports`)."""
    assert rules(layout.walls).ports == frozenset()
    assert rules(replace(layout.walls, ports=frozenset({443, 0}))).ports == {443}


def test_run_process_starts_the_agent_inside_the_walls(layout: Layout) -> None:
    """The runner's own start (its process group, setpriv's parent-death signal, the prompt on stdin, the
    pumps) with ``spawn=ruleset(walls).spawn``: the agent reads its prompt, writes its worktree, and
    the store stays out of reach."""
    spec = layout.walls
    walls.prepare(spec)
    lines: list[str] = []
    script = f'read prompt; echo "got $prompt" > prompt.txt; cat {layout.home / "baton.db"} || echo refused'
    with RunLog(spec.tmp / "log.jsonl") as log:
        result = run_process(
            ["sh", "-c", script],
            {**os.environ, "HOME": str(spec.agent_home)},
            spec.worktree,
            log,
            lines.append,
            on_start=lambda _pid: None,
            heartbeat=lambda: True,
            heartbeat_every=60,
            timeout=60,
            cancel=threading.Event(),
            kill_grace=1,
            stdin=b"hello\n",
            spawn=ruleset(spec).spawn,
        )
    assert result.exit_code == 0, result.stderr
    assert lines == ["refused"] and "Permission denied" in result.stderr
    assert (spec.worktree / "prompt.txt").read_text() == "got hello\n"
