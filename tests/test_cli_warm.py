"""The warm server (``baton.cli.warm``): ``baton run`` handed to a pre-imported process of its home.

Real ``baton`` processes (``python -m baton.cli``) and a real server: the first run starts it, later
ones are served by a child of it, with the client's working directory, environment, umask, streams
and exit code; a client in another context (resource limits, Python variables) is declined and runs
the command itself; a connection without the key is closed before anything is forked; a walled agent
can neither read the key nor connect to the server's abstract socket; SIGINT cancels a served run and
so does the client's death; kill -9 at random moments of a served start-up loses nothing; the server
holds nothing open in the home, leaves with its key file and cleans up after itself. The door under
a flood and impostors on the server's name: ``tests/test_warmgate.py``; ``baton warm`` and the home's
volume: ``tests/test_warmctl.py``.
"""

from __future__ import annotations

import _socket
import contextlib
import json
import os
import random
import resource
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from baton.cli import warm, warmctl, warmserver
from baton.errors import Busy, exit_code_of
from baton.keys import parse_repo
from baton.models import Outcome, RunRecord
from baton.sandbox import landlock
from baton.settings import Settings
from baton.store import open_store
from baton.testing.mock_anthropic import MockAnthropic
from baton.testing.tools import tool_marker
from tests.test_cli_kill_start import BATON, runs_of, start
from tests.test_walls import Layout, confined, layout, refused  # noqa: F401 - layout: a fixture


@pytest.fixture
def env(baton_env: dict[str, str]) -> dict[str, str]:
    """A ``baton`` process's environment with warm start on (the suite turns it off elsewhere)."""
    return {**os.environ, **baton_env, "BATON_WARM": "auto"}


@pytest.fixture(autouse=True)
def _no_server_left(home: Path) -> Iterator[None]:
    yield
    for proc in servers(home):
        proc.terminate()
        try:
            proc.wait(10)
        except psutil.TimeoutExpired:  # a server that ignores SIGTERM: say what it was doing, then kill it
            found = stuck(proc)
            proc.kill()
            pytest.fail(f"the warm server did not leave on SIGTERM within 10 s: {found}")


def stuck(proc: psutil.Process) -> str:
    """What a process that did not exit is doing: its state, kernel stack, threads and children."""
    found = []
    for name in ("status", "wchan", "stack"):
        with contextlib.suppress(OSError):
            found.append(Path(f"/proc/{proc.pid}/{name}").read_text()[:1500])
    with contextlib.suppress(psutil.Error):
        found.append(f"threads {proc.num_threads()}, children {[c.cmdline() for c in proc.children()]}")
    return " | ".join(found)


def servers(home: Path) -> list[psutil.Process]:
    """The warm servers of ``home`` (not their children, forks with the same command line)."""
    found = {}
    for proc in psutil.process_iter(["cmdline", "ppid"]):
        cmdline = proc.info["cmdline"] or []
        if "baton.cli.warmserver" in cmdline and str(home) in cmdline:
            found[proc.pid] = proc
    return [proc for proc in found.values() if proc.info["ppid"] not in found]


def run_json(args: list[str], env: dict[str, str], **kwargs: object) -> tuple[int, dict[str, object], int]:
    """``baton run ARGS --json``: its pid, its result and its exit code."""
    proc = start([*args, "--json"], env, **kwargs)
    out, err = proc.communicate(timeout=120)
    result = json.loads(out) if out.strip() else {"stderr": err}
    assert isinstance(result, dict), (out, err)
    return proc.pid, result, proc.returncode


def record(settings: Settings, result: dict[str, object]) -> RunRecord:
    """The store's record of a run's (last) attempt: which process ran it (``runner_pid``), its log."""
    store = open_store(settings.resolved_store_url)
    try:
        found = store.get_run(str(result["attempt_id"]))
    finally:
        store.close()
    assert found is not None, result
    return found


def ran_in(settings: Settings, result: dict[str, object]) -> int:
    return record(settings, result).runner_pid


def first_turn(src_repo: Path, thread: str, env: dict[str, str], home: Path) -> list[str]:
    """The key's ``baton run`` words, after its first turn (run here, starting the server) and once
    the server is up."""
    key = ["run", "-a", "fake", "-r", str(src_repo), "-t", thread]
    _, first, code = run_json([*key, "first turn"], env)
    assert code == 0, first
    wait_for_server(home)
    return key


def wait_for_server(home: Path) -> int:
    """The pid of ``home``'s warm server, once it listens."""
    deadline = time.monotonic() + 60
    while (server := warmctl.find_server(str(home))) is None:
        assert time.monotonic() < deadline, "the first run started no warm server"
        time.sleep(0.05)
    return server.pid


def key_of(home: Path) -> bytes:
    return Path(warm.key_path(str(home))).read_bytes()


def test_the_first_run_starts_the_server_and_the_next_is_served_by_it(
    src_repo: Path, env: dict[str, str], home: Path, settings: Settings
) -> None:
    key = ["run", "-a", "fake", "-r", str(src_repo), "-t", "warm"]
    pid, first, code = run_json([*key, "first turn"], env)
    assert code == 0 and first["mode"] == "fresh"
    assert ran_in(settings, first) == pid  # no server yet: this process ran it, and started one
    wait_for_server(home)
    run_dir = home / "run"
    assert run_dir.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in run_dir.iterdir()] == [f"warm-{warm.tag()}.key"]  # no socket or lock file
    assert all(p.stat().st_mode & 0o077 == 0 for p in run_dir.iterdir())  # the key: the user's

    # the client's working directory (a relative repo), environment and umask reach the run
    pid, second, code = run_json(
        ["run", "-a", "fake", "-r", ".", "-t", "warm", "second turn"], env, cwd=src_repo, umask=0o077
    )
    assert code == 0 and second["outcome"] == "succeeded", second
    assert ran_in(settings, second) != pid  # served: a child of the server ran it
    assert second["mode"] == "resume" and second["session_id"] == first["session_id"]
    assert (
        Path(record(settings, second).log_path).stat().st_mode & 0o077 == 0
    )  # made under the client's umask

    failing = {**env, "FAKE_AGENT_FAIL": "1"}
    pid, third, code = run_json([*key, "third turn"], failing)
    assert ran_in(settings, third) != pid and third["outcome"] == "failed"
    assert code == exit_code_of("failed") != 0

    # people's output: the same lines as a run in its own process
    served = start([*key, "fourth turn"], env)
    outs = [served.communicate(timeout=120)]
    plain = start([*key, "fifth turn"], {**env, "BATON_WARM": "off"})  # one after the other: one key
    outs.append(plain.communicate(timeout=120))
    shapes = [[line.split()[0] for line in out.splitlines()] for out, _ in outs]
    assert served.returncode == plain.returncode == 0 and shapes[0] == shapes[1]
    assert shapes[0][:2] == ["succeeded", "worktree:"]


@pytest.mark.slow  # the real Claude Code CLI
def test_the_real_claude_cli_resumes_and_uses_its_tools_in_a_served_run(
    src_repo: Path, env: dict[str, str], home: Path, settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "user-home").mkdir()  # as the agents' allow-list has it: no ~/.bashrc of this machine
    with MockAnthropic() as mock:
        env = {**env, **mock.env(), "HOME": str(tmp_path / "user-home")}
        key = ["run", "-a", "claude", "-r", str(src_repo), "-t", "real"]
        _, first, code = run_json([*key, "first turn"], env)
        assert code == 0, first
        wait_for_server(home)
        write = tool_marker("Write", file_path="made.txt", content="made by the agent\n")
        pid, second, code = run_json([*key, f"write it {write}"], env)
        assert code == 0 and ran_in(settings, second) != pid, second
        assert second["mode"] == "resume" and second["session_id"] == first["session_id"]
        assert mock.history_counts()[-2:] == [4, 6]  # the served turn carried the conversation (+ tool)
    assert (Path(str(second["worktree"])) / "made.txt").read_text() == "made by the agent\n"


def test_runs_at_once_are_served_at_once_and_one_key_stays_one_run_at_a_time(
    src_repo: Path, env: dict[str, str], home: Path, settings: Settings
) -> None:
    for thread in ("one", "two"):
        run_json(["run", "-a", "fake", "-r", str(src_repo), "-t", thread, "first turn"], env)
    wait_for_server(home)
    slow = {**env, "FAKE_AGENT_DELAY": "2"}
    both = [
        start(["run", "-a", "fake", "-r", str(src_repo), "-t", t, "--json", "at once"], slow)
        for t in ("one", "two")
    ]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in both]
    assert [p.returncode for p in both] == [0, 0] and all(r["outcome"] == "succeeded" for r in results)
    assert {ran_in(settings, r) for r in results}.isdisjoint({p.pid for p in both})  # both served
    same = [
        start(["run", "-a", "fake", "-r", str(src_repo), "-t", "one", "--json", "same key"], slow)
        for _ in range(2)
    ]
    said = [p.communicate(timeout=120) for p in same]
    codes = sorted(p.returncode for p in same)
    assert codes[0] == 0 and codes[1] == Busy.exit_code, said  # the key's lease, as without the server
    assert "busy" in said[[p.returncode for p in same].index(Busy.exit_code)][1].lower()


def test_a_long_prompt_and_hostile_bytes_travel_whole(
    src_repo: Path, env: dict[str, str], home: Path, settings: Settings
) -> None:
    key = first_turn(src_repo, "bytes", env, home)
    prompt = "x" * 100_000 + " \t--json ; $(rm -rf /) é ✓"
    pid, result, code = run_json([*key, prompt], {**env, "ODD": "\udcfe value"})  # an undecodable byte
    assert code == 0 and ran_in(settings, result) != pid
    assert record(settings, result).prompt == prompt
    # a prompt that is no text is refused as a plain run refuses it: same message, same exit code
    said = [
        start([*key, "bad \udcff"], {**env, "BATON_WARM": w}).communicate(timeout=60) for w in ("auto", "off")
    ]
    assert said[0] == said[1] and "not valid UTF-8" in said[0][1]


def test_a_piped_prompt_file_reaches_the_served_run(
    src_repo: Path, env: dict[str, str], home: Path, settings: Settings
) -> None:
    """``--prompt-file -``: the served child reads the client's standard input, handed over with it."""
    key = first_turn(src_repo, "piped", env, home)
    prompt = "from a pipe é ✓ --json $(x)\n" + "z" * 300_000  # more than a pipe holds at once
    proc = subprocess.Popen(
        [*BATON, *key, "--json", "--prompt-file", "-"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    out, err = proc.communicate(prompt.encode(), timeout=120)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert ran_in(settings, result) != proc.pid and result["mode"] == "resume"  # served, same conversation
    assert record(settings, result).prompt == prompt
    # nothing piped in: refused as a plain run refuses it
    said = [
        subprocess.run(
            [*BATON, *key, "--prompt-file", "-"],
            env={**env, "BATON_WARM": warm_setting},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        for warm_setting in ("auto", "off")
    ]
    assert [s.returncode for s in said] == [2, 2] and said[0].stderr == said[1].stderr
    assert "the prompt from stdin is empty" in said[0].stderr


def test_a_client_in_another_context_runs_the_command_itself(
    src_repo: Path, env: dict[str, str], home: Path, settings: Settings
) -> None:
    key = first_turn(src_repo, "ctx", env, home)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def fewer_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 512), hard))

    for how in ({"preexec_fn": fewer_files}, {"env": {**env, "PYTHONHASHSEED": "7"}}):
        pid, result, code = run_json([*key, "a turn"], how.pop("env", env), **how)  # type: ignore[arg-type]
        assert code == 0 and ran_in(settings, result) == pid, how  # declined: it ran in its own process
    assert len(servers(home)) == 1  # and did not start a second server


def request_with(home: Path, key: bytes, name: str | None = None) -> bytes:
    """What the server of ``home`` (at ``name``: its address) answers a request of ``baton run --help``
    proven with ``key`` (empty: the connection was closed unanswered); the client never says ``G``, so
    nothing runs."""
    conn = warm.connect(name or warm.address(str(home)))
    try:
        if not warm._proven(conn, key):
            return b""
        assert warm._send_request(conn, ["run", "--help"])
        return warm._read_line(conn) or b""
    except ConnectionResetError:
        return b""
    finally:
        conn.close()


def test_a_connection_without_the_key_is_closed_before_anything_is_forked(
    env: dict[str, str], home: Path
) -> None:
    warm.start_server(env)
    server = psutil.Process(wait_for_server(home))
    key = key_of(home)
    (spare,) = spares(server)
    for wrong in (b"\0" * 32, bytes([key[0] ^ 1]) + key[1:]):
        conn = warm.connect(warm.address(str(home)))
        try:
            conn.sendall(wrong[: warm.HALF])
            heard = conn.recv(100)  # the door closes it: the second half is never said
        finally:
            conn.close()
        assert heard == b"", wrong
    assert spares(server) == [spare]  # nothing forked, the spare still waiting for a proven one
    assert request_with(home, b"\0" * 32) == b""
    assert request_with(home, key) == b"A"  # the right key (and no G: nothing ran)


def test_another_installation_is_declined_and_one_python_is_one_installation(
    env: dict[str, str], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warm.start_server(env)
    wait_for_server(home)
    key = key_of(home)
    tags = {
        subprocess.run(
            [str(Path(sys.executable).parent / name), "-c", "from baton.cli import warm; print(warm.tag())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for name in ("python", "python3")
        if (Path(sys.executable).parent / name).exists()
    }
    assert len(tags) == 1  # bin/python and bin/python3 (the baton script's) find one server
    other = ["1", "/elsewhere", *warm.installation()[2:]]  # another virtualenv
    name = warm.address(str(home))  # the server's, before this process passes for another installation
    monkeypatch.setattr(warm, "installation", lambda: other)
    assert request_with(home, key, name) == b"Danother installation of baton"


def test_a_walled_agent_can_neither_read_the_key_nor_reach_the_server(layout: Layout) -> None:  # noqa: F811
    home = layout.home
    warm.start_server({**os.environ, "BATON_HOME": str(home)})
    try:
        walled_probe(layout, psutil.Process(wait_for_server(home)))
    finally:
        warmctl.stop_server(str(home))


def walled_probe(layout: Layout, server: psutil.Process) -> None:  # noqa: F811
    if landlock.abi() < 6:
        pytest.skip("this kernel's Landlock cannot scope abstract UNIX sockets (ABI 6, Linux 6.12)")
    home = layout.home
    key_path = warm.key_path(str(home))
    assert refused(layout.walls, f"cat {key_path}")
    assert Path(key_path).stat().st_size == 32  # there, and the walls said no
    # 1,500 connections from inside the walls (Landlock's abstract-socket scope): not one gets through
    probe = (
        "import socket\n"
        "said = set()\n"
        "for _ in range(1500):\n"
        "    conn = socket.socket(socket.AF_UNIX)\n"
        "    try:\n"
        f"        conn.connect({warm.address(str(home))!r})\n"
        "        said.add('connected')\n"
        "    except OSError as exc:\n"
        "        said.add(type(exc).__name__)\n"
        "    conn.close()\n"
        "print(sorted(said))\n"
    )
    done = confined(layout.walls, f"{sys.executable} -c {shlex.quote(probe)}")
    assert done.stdout == "['PermissionError']\n", done.stderr
    assert len(spares(server)) == 1  # and the server forked nothing for them
    # outside the walls the same socket answers (the walls, not a dead server, said no)
    assert request_with(home, key_of(home)) == b"A"


def agent_running(settings: Settings, repo: Path, thread: str) -> None:
    deadline = time.monotonic() + 60
    store = open_store(settings.resolved_store_url)
    try:
        while True:
            runs = store.list_runs("fake", parse_repo(str(repo)).slug, thread, limit=10)
            if any(r.outcome == Outcome.RUNNING and r.agent_pid for r in runs):
                return
            assert time.monotonic() < deadline, "the agent never started"
            time.sleep(0.05)
    finally:
        store.close()


@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_a_served_run_is_cancelled_by_ctrl_c_and_by_its_client_s_death(
    src_repo: Path, env: dict[str, str], home: Path, settings: Settings, how: str
) -> None:
    key = first_turn(src_repo, f"cancel-{how}", env, home)
    proc = start([*key, "a long turn"], {**env, "FAKE_AGENT_DELAY": "60"})
    agent_running(settings, src_repo, f"cancel-{how}")
    proc.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
    proc.communicate(timeout=60)
    if how == "sigint":
        assert proc.returncode == exit_code_of("cancelled")
    deadline = time.monotonic() + 30
    while Outcome.RUNNING in (outcomes := runs_of(settings, src_repo, f"cancel-{how}")):
        assert time.monotonic() < deadline, outcomes
        time.sleep(0.1)
    assert outcomes.count(Outcome.CANCELLED) == 1, outcomes  # recorded at once, not left to a later run
    pid, after, code = run_json([*key, "the next turn"], env)
    assert code == 0 and after["mode"] == "resume" and ran_in(settings, after) != pid


@pytest.mark.slow  # 20 `baton run` processes
def test_kill_9_during_a_served_start_up_loses_nothing(
    src_repo: Path, env: dict[str, str], home: Path, settings: Settings
) -> None:
    thread = "kill-warm"
    key = ["run", "-a", "fake", "-r", str(src_repo), "-t", thread]
    _, first, _ = run_json([*key, "first turn"], env)
    wait_for_server(home)
    t0 = time.monotonic()
    run_json([*key, "calibration turn"], env)
    window = time.monotonic() - t0
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    for i in range(10):
        delay = rng.uniform(0, window)
        proc = start([*key, f"killed turn {i}"], env)
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        # the served child may still be cancelling: this run waits for the key (not served: --wait)
        done = subprocess.run(
            [*BATON, *key, "--wait", "60", "--json", f"turn {i} after the kill"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        after = json.loads(done.stdout)
        assert after["outcome"] == "succeeded", (seed, delay, after, done.stderr)
        assert after["mode"] == "resume" and after["session_id"] == first["session_id"], (seed, delay)
    outcomes = runs_of(settings, src_repo, thread)
    assert Outcome.RUNNING not in outcomes, (seed, outcomes)
    assert set(outcomes) <= {Outcome.SUCCEEDED, Outcome.CRASHED, Outcome.CANCELLED}, (seed, outcomes)


def test_a_served_run_outlives_its_killed_server(
    src_repo: Path, env: dict[str, str], home: Path, settings: Settings
) -> None:
    key = first_turn(src_repo, "orphan", env, home)
    proc = start([*key, "--json", "a turn"], {**env, "FAKE_AGENT_DELAY": "2"})
    agent_running(settings, src_repo, "orphan")
    for server in servers(home):
        server.kill()  # kill -9: its children are processes of their own
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and json.loads(out)["outcome"] == "succeeded", err
    pid, after, code = run_json([*key, "the next turn"], env)  # no server: run here, and start one
    assert code == 0 and ran_in(settings, after) == pid
    wait_for_server(home)


def spares(server: psutil.Process) -> list[psutil.Process]:
    """The server's live children: with no run under way, the one waiting for the next connection."""
    found = []
    for child in server.children():
        with contextlib.suppress(psutil.Error):
            if child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
    return found


def spare_of(server: psutil.Process, not_pid: int = 0) -> psutil.Process:
    """The one live child of the server waiting for a connection (not ``not_pid``), waited for."""
    deadline = time.monotonic() + 10
    while len(found := [p for p in spares(server) if p.pid != not_pid]) != 1:
        assert time.monotonic() < deadline, server.children()
        time.sleep(0.05)
    return found[0]


def held_under(pid: int, root: Path) -> list[str]:
    """What process ``pid`` holds open under ``root``: its descriptors, working directory, maps."""
    found = [os.readlink(f"/proc/{pid}/cwd")]
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            found.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    found += [line.split(maxsplit=5)[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()]
    return [path for path in found if path.startswith(f"{root}/") or path == str(root)]


def test_a_spare_child_waits_ahead_and_nothing_holds_the_home_while_idle(
    src_repo: Path, env: dict[str, str], home: Path, settings: Settings
) -> None:
    key = first_turn(src_repo, "spare", env, home)
    (server,) = servers(home)
    waiting = spare_of(server)  # forked ahead of the first connection
    pid, served, code = run_json([*key, "a served turn"], env)
    assert code == 0 and ran_in(settings, served) == waiting.pid != pid  # the spare served it
    after = spare_of(server, not_pid=waiting.pid)  # the next one, forked once the first was handed its own
    waiting.wait(10)
    # idle, neither holds a descriptor, a working directory or a mapping in the home: its volume is free
    assert held_under(server.pid, home) == [] and held_under(after.pid, home) == []
    server.terminate()
    server.wait(10)
    after.wait(10)  # its channel from the server closed: it left


def test_the_spare_of_a_killed_server_leaves_and_a_new_server_takes_the_name(
    src_repo: Path, env: dict[str, str], home: Path, settings: Settings
) -> None:
    key = first_turn(src_repo, "orphan-spare", env, home)
    (server,) = servers(home)
    waiting = spare_of(server)
    server.kill()  # no clean-up: the key file stays where it was
    waiting.wait(10)  # its channel from the server closed: it left (and held no listener: the name is free)
    pid, after, code = run_json([*key, "no server now"], env)
    assert code == 0 and ran_in(settings, after) == pid  # nobody answered: run here
    assert wait_for_server(home) != server.pid  # ...and a new server started, on the same name


def test_warm_off_in_the_config_file_stops_the_server_after_the_run_it_serves(
    src_repo: Path, env: dict[str, str], home: Path, settings: Settings
) -> None:
    key = first_turn(src_repo, "off", env, home)
    (server,) = servers(home)
    (home / "config.toml").write_text('warm = "off"\n')
    env = {k: v for k, v in env.items() if k != "BATON_WARM"}  # the environment would win over the file
    pid, served, code = run_json([*key, "served, then the server goes"], env)
    assert code == 0 and ran_in(settings, served) != pid
    server.wait(10)  # gone (not this test's child: no exit code to read)
    pid, plain, code = run_json([*key, "run here, no server started"], env)
    assert code == 0 and ran_in(settings, plain) == pid
    time.sleep(1)
    assert servers(home) == []


def test_the_server_leaves_with_its_key_file_and_cleans_up_on_sigterm(
    env: dict[str, str], home: Path
) -> None:
    warm.start_server(env)
    server = psutil.Process(wait_for_server(home))
    os.unlink(warm.key_path(str(home)))  # BATON_HOME removed or unmounted, or another server took over
    assert server.wait(10) == 0
    warm.start_server(env)
    server = psutil.Process(wait_for_server(home))
    warm.start_server(env)  # a second one finds the name taken and leaves at once
    time.sleep(1)
    assert len(servers(home)) == 1
    server.terminate()
    server.wait(10)
    assert not os.path.exists(warm.key_path(str(home))) and warmctl.find_server(str(home)) is None


def test_changed_code_is_noticed(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("x = 1\n")
    seen = {str(module): (module.stat().st_mtime_ns, module.stat().st_size)}
    assert not warmserver.changed(seen)
    module.write_text("x = 22\n")
    assert warmserver.changed(seen)
    module.unlink()
    assert warmserver.changed(seen)


def test_garbage_before_and_after_the_proof_never_stops_the_server(env: dict[str, str], home: Path) -> None:
    warm.start_server(env)
    wait_for_server(home)
    key = key_of(home)
    for proof, garbage in (
        (b"", b""),
        (b"", b"\xff" * 40),  # no proof: the door closes it
        (key[: warm.HALF], b""),  # proven, then nothing: the child gives up on it
        (key[: warm.HALF], b"\xff\xff\xff\xff"),
        (key[: warm.HALF], b"\0\0\0\x05{]]]]"),
        (key[: warm.HALF], b"\0\0\0\x02[]"),
    ):
        conn = warm.connect(warm.address(str(home)))
        try:
            conn.sendall(proof + garbage)
            conn.shutdown(_socket.SHUT_WR)
            try:
                answer = conn.recv(100)
            except ConnectionResetError:  # it closed with bytes unread
                answer = b""
        finally:
            conn.close()
        assert answer == (key[warm.HALF :] if proof else b""), (proof, garbage)  # then silence
    streams = ["utf-8", "strict"] * 3
    for env_names, encoding, answer in (
        (["A=B"], "utf-8", b"Da malformed environment"),  # a name no environment can hold
        (["A"], "no-such-codec", b"Dmalformed standard streams"),
        (["A\0B"], "utf-8", b""),  # a NUL: not a request at all
    ):
        head = [*warm.installation(), "18", "utf-8", "surrogateescape"]
        body = warm.encode([*head, encoding, *streams[1:], "1", "run", "1", env_names[0], "value"])
        conn = warm.connect(warm.address(str(home)))
        try:
            assert warm._proven(conn, key)
            fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2, 0))
            conn.sendmsg([len(body).to_bytes(4, "big")], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
            conn.sendall(body)
            try:
                said = warm._read_line(conn) or b""
            except ConnectionResetError:
                said = b""
            assert said == answer, env_names
        finally:
            conn.close()
    assert request_with(home, key) == b"A"


def test_the_rehearsal_of_a_run_writes_nothing(tmp_path: Path) -> None:
    from baton.cli import warmup

    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('access = "read"\n')  # read, as a server's home would have it
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    warmup.warm_caches()
    warmup.rehearse(str(home))
    warmup.rehearse(str(home))  # a spare's second pass
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
