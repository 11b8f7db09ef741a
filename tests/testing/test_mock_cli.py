"""The mocks' command line (``python -m baton.testing.mock_anthropic`` and its two siblings), run as a
user runs it, in a child process: ``--help``, ``--port`` with the URL line and one line naming the
``--print-env`` command whose exports a real request follows, a busy port, Ctrl-C and SIGTERM."""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

TIMEOUT = 30


@dataclass(frozen=True)
class Mock:
    module: str  # under baton.testing
    url_var: str  # the exported variable holding the mock's base URL
    suffix: str  # what that URL adds to the server's root
    path: str  # a conversation request, under that URL
    body: dict[str, Any]
    reply: str  # what the reply to it says


MOCKS = [
    Mock(
        "mock_anthropic",
        "ANTHROPIC_BASE_URL",
        "",
        "/v1/messages",
        {"messages": [{"role": "user", "content": "hi"}]},
        "mock reply #1: received 1 messages",
    ),
    Mock(
        "mock_openai",
        "OPENAI_BASE_URL",
        "/v1",
        "/responses",
        {"input": [{"role": "user", "content": "hi"}]},
        "mock reply #1: received 1 items",
    ),
    Mock(
        "mock_gemini",
        "GOOGLE_GEMINI_BASE_URL",
        "",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        "mock reply #1: received 1 contents",
    ),
]
EACH = pytest.mark.parametrize("mock", MOCKS, ids=[m.module for m in MOCKS])


def command(mock: Mock, *args: str) -> list[str]:
    return [sys.executable, "-m", f"baton.testing.{mock.module}", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def exported(shell: str) -> dict[str, str]:
    """What ``shell`` (the lines a mock printed) sets, as bash sees it after running them."""
    out = subprocess.run(
        ["bash", "-c", f"{shell}\nenv -0"],
        env={"PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"},  # as after activate
        capture_output=True,
        text=True,
        check=True,
        timeout=TIMEOUT,
    )
    pairs = (item.split("=", 1) for item in out.stdout.split("\0") if "=" in item)
    return {name: value for name, value in pairs}


class Served:
    """A mock started as a child process; its stdout lines arrive on a queue, read by a thread."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def printed(self) -> list[str]:
        """The two lines it prints on start: its URL, and how to point an agent at it."""
        return [self.lines.get(timeout=TIMEOUT), self.lines.get(timeout=TIMEOUT)]

    def stop(self, signum: int) -> tuple[int, str]:
        """Send ``signum``; the exit code and stderr."""
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout=TIMEOUT)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        self.close()
        return code, err

    def close(self) -> None:
        """Kill the child if it still runs; close its pipes once the reader has seen the end."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)
        self.reader.join(timeout=TIMEOUT)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def served() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for server in started:
        server.close()


@EACH
def test_help_says_how_to_use_it(mock: Mock) -> None:
    out = subprocess.run(command(mock, "--help"), capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: python -m baton.testing.{mock.module} [-h] [--port N]")
    assert "--print-env" in out.stdout and "Ctrl-C" in out.stdout
    assert out.stderr == ""


@EACH
def test_port_serves_there_and_prints_a_pasteable_line(mock: Mock, served: list[Served]) -> None:
    port = free_port()
    server = Served(command(mock, "--port", str(port)))
    served.append(server)
    url, said = server.printed()
    assert url == f"http://127.0.0.1:{port}"  # the URL alone on the first line, for scripts
    assert said.startswith("# point an agent at it: eval ")
    env = exported(said.split(": ", 1)[1])  # the command it names, paste-able as printed
    time.sleep(0.5)
    assert server.lines.empty(), "one line of hints, not the whole export block"
    assert env[mock.url_var] == f"http://127.0.0.1:{port}{mock.suffix}"
    reply = httpx.post(env[mock.url_var] + mock.path, json=mock.body, timeout=TIMEOUT)
    assert reply.status_code == 200
    assert mock.reply in reply.text
    code, err = server.stop(signal.SIGTERM)
    assert (code, err) == (0, "")


@EACH
@pytest.mark.parametrize("sigint", ["inherited", "ignored"])
def test_ctrl_c_stops_it_quietly(mock: Mock, sigint: str, served: list[Served]) -> None:
    """Also when its parent ignores SIGINT (``nohup … &``, a background ``make test``): Python keeps an
    ignored SIGINT ignored unless the mock sets its handler itself."""
    argv = command(mock)
    if sigint == "ignored":
        argv = ["bash", "-c", 'trap "" INT && exec "$@"', "bash", *argv]
    server = Served(argv)
    served.append(server)
    url = server.printed()[0]
    assert url.startswith("http://127.0.0.1:")
    assert int(url.rsplit(":", 1)[1]) > 0  # a free port when none is asked for
    assert server.stop(signal.SIGINT) == (0, "")


@EACH
def test_a_busy_port_is_one_clear_line_and_exit_1(mock: Mock) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run(
            command(mock, "--port", str(port)), capture_output=True, text=True, timeout=TIMEOUT
        )
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr == (
        f"{mock.module}: port {port} on 127.0.0.1 is already in use (another mock still running?): "
        "choose another --port, or leave --port out for a free one\n"
    )


@EACH
def test_print_env_is_what_the_server_names_and_eval_takes_it(mock: Mock, served: list[Served]) -> None:
    port = free_port()
    out = subprocess.run(
        command(mock, "--port", str(port), "--print-env"), capture_output=True, text=True, timeout=TIMEOUT
    )
    assert out.returncode == 0, out.stderr
    python = shlex.join(command(mock, "--port", str(port), "--print-env"))
    env = exported(f'eval "$({python})"')
    assert env[mock.url_var] == f"http://127.0.0.1:{port}{mock.suffix}"
    server = Served(command(mock, "--port", str(port)))
    served.append(server)
    said = server.printed()[1]
    assert f"python -m baton.testing.{mock.module} --port {port} --print-env" in said


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--port", "http"], "argument --port: not a port number: 'http'"),
        (["--port", "70000"], "argument --port: not a port number (0-65535): 70000"),
        (["--print-env"], "--print-env needs --port N"),
        (["41234"], "unrecognized arguments: 41234"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], said: str) -> None:
    out = subprocess.run(command(MOCKS[0], *args), capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 2
    assert said in out.stderr and "Traceback" not in out.stderr


def test_the_codex_snippet_is_toml_pointing_plain_codex_at_the_mock() -> None:
    out = subprocess.run(
        command(MOCKS[1], "--port", "41234", "--agent", "codex", "--print-env"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    snippet = [line.removeprefix("#   ") for line in out.stdout.splitlines() if line.startswith("#   ")]
    alone = subprocess.run(
        command(MOCKS[1], "--port", "41234", "--agent", "codex", "--print-config"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert alone.returncode == 0 and alone.stdout == "\n".join(snippet) + "\n"
    config = tomllib.loads("\n".join(snippet))
    assert config["model_provider"] == "mock"
    provider = config["model_providers"]["mock"]
    assert provider["base_url"] == "http://127.0.0.1:41234/v1"
    assert provider["wire_api"] == "responses"
    env = exported(out.stdout)
    assert env[provider["env_key"]] == "mock-key"  # the key Codex sends is the one the export line sets


def printed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(MOCKS[1], *args), capture_output=True, text=True, timeout=TIMEOUT)


def test_the_openai_mock_prints_every_agent_it_serves_and_eval_takes_them_all() -> None:
    """Codex, Copilot CLI and OpenCode speak its API: each block is there, valid shell together."""
    out = printed("--port", "41236", "--print-env")
    assert out.returncode == 0, out.stderr
    env = exported(out.stdout)
    assert env["OPENAI_BASE_URL"] == env["COPILOT_PROVIDER_BASE_URL"] == "http://127.0.0.1:41236/v1"
    # Copilot with a provider of its own refuses to start without a model ("BYOK providers require an
    # explicit model"): the model is part of its lines
    assert env["COPILOT_MODEL"] == "gpt-5.5" and env["COPILOT_OFFLINE"] == "true"
    assert "--agent opencode --print-config" in out.stdout
    for agent in ("codex", "copilot", "opencode"):
        alone = printed("--port", "41236", "--agent", agent, "--print-env")
        assert alone.returncode == 0 and alone.stdout.strip() in out.stdout, agent
    assert "COPILOT" not in printed("--port", "41236", "--agent", "codex", "--print-env").stdout


def test_the_opencode_config_it_prints_points_opencode_at_it() -> None:
    out = printed("--port", "41236", "--agent", "opencode", "--print-config")
    assert out.returncode == 0, out.stderr
    config = json.loads(out.stdout)
    provider = config["provider"]["mock"]
    assert provider["options"]["baseURL"] == "http://127.0.0.1:41236/v1"
    assert config["model"] == "mock/gpt-5.5" and "gpt-5.5" in provider["models"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["--port", "1", "--print-config"],
            "--print-config needs --agent with a config file: codex or opencode",
        ),
        (["--port", "1", "--agent", "copilot", "--print-config"], "needs --agent with a config file"),
        (["--agent", "opencode", "--print-config"], "--print-config needs --port N"),
        (["--agent", "claude"], "argument --agent: invalid choice: 'claude'"),
    ],
)
def test_bad_agent_arguments_are_usage_errors(args: list[str], said: str) -> None:
    out = printed(*args)
    assert out.returncode == 2 and out.stdout == ""
    assert said in out.stderr and "Traceback" not in out.stderr


# what each vendor's refusal of a prompt over the window says (status 400 for all three)
TOO_LONG = {
    "mock_anthropic": "prompt is too long: 3000 tokens > 2000 maximum",
    "mock_openai": "context_length_exceeded",
    "mock_gemini": "The input token count (3000) exceeds the maximum number of tokens allowed (2000).",
}


@EACH
def test_item_tokens_and_max_prompt_tokens_make_it_refuse_a_prompt_over_the_window(
    mock: Mock, served: list[Served]
) -> None:
    port = free_port()
    window = ("--item-tokens", "3000", "--max-prompt-tokens", "2000")
    server = Served(command(mock, "--port", str(port), *window))
    served.append(server)
    env = exported(server.printed()[1].split(": ", 1)[1])
    reply = httpx.post(env[mock.url_var] + mock.path, json=mock.body, timeout=TIMEOUT)
    assert reply.status_code == 400
    assert TOO_LONG[mock.module] in reply.text
    server.stop(signal.SIGTERM)


@EACH
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_right_after_it_listens_stops_it_at_once(mock: Mock, signum: int) -> None:
    """Sent the moment its port takes a connection (before or while it prints): it used to miss 2-7 of
    12-15 and then sleep up to an hour. Each of 12 tries ends within seconds, exit 0."""
    for _ in range(12):
        port = free_port()
        proc = subprocess.Popen(
            command(mock, "--port", str(port)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.001)
            proc.send_signal(signum)
            code = proc.wait(timeout=5)
            assert proc.stderr is not None
            assert (code, proc.stderr.read()) == (0, "")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
