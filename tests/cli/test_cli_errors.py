"""How the `baton` command fails: an error object on stdout with --json, text that keeps its square
brackets, a quiet exit 130 on an early Ctrl-C, help that documents flags and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from baton.errors import BatonError
from baton.models import Mode, Outcome, PromptKind, RunRecord
from baton.store import Store
from tests.conftest import BATON, wait_for

Cli = Callable[..., subprocess.CompletedProcess[str]]


def error_of(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    data = json.loads(result.stdout)
    assert set(data) == {"error"}, data
    error = data["error"]
    assert isinstance(error, dict)
    return error


def test_json_errors_are_objects_on_stdout(cli: Cli, src_repo: Path) -> None:
    bad_agent = cli("run", "-a", "nope", "-r", str(src_repo), "-t", "x", "--json", "hello")
    error = error_of(bad_agent)
    assert bad_agent.returncode == 2 and error["exit_code"] == 2 and error["type"] == "BadInput"
    assert "unknown agent" in str(error["message"])
    missing = cli("runs", "show", "0123456789", "--json")
    assert missing.returncode == 2 and error_of(missing)["type"] == "NotFound"
    usage = cli("run", "-a", "fake", "-r", str(src_repo), "-t", "x", "--mode", "sideways", "--json", "p")
    error = error_of(usage)
    assert usage.returncode == 2 and error["exit_code"] == 2 and "sideways" in str(error["message"])
    assert "sideways" in usage.stderr  # people still read the message on stderr


def test_a_bad_extra_agent_is_a_clear_error_not_a_traceback(cli: Cli) -> None:
    """BATON_AGENTS_EXTRA is read when the agents are imported; printing the error must not import them
    again (it did: a traceback of the same error, exit 1)."""
    for value, named in (("bogus", "agent 'bogus'"), ("x=", "agent 'x'")):
        for args in (("runs", "ls"), ("run", "-a", "fake", "-r", "/nowhere", "-t", "t", "p")):
            done = cli(*args, env={"BATON_AGENTS_EXTRA": value})
            assert done.returncode == 2 and "Traceback" not in done.stderr, (value, args, done.stderr)
            said = f"error: {named}: the factory must be 'module:function'"
            assert done.stderr.startswith(said), done.stderr


def test_json_after_double_dash_is_a_prompt_not_a_flag(cli: Cli, src_repo: Path) -> None:
    result = cli("run", "-a", "nope", "-r", str(src_repo), "-t", "x", "--", "--json")
    assert result.returncode == 2 and result.stdout == "" and "unknown agent" in result.stderr


def test_square_brackets_survive(cli: Cli, src_repo: Path) -> None:
    bad = cli("run", "-a", "f[oo]", "-r", str(src_repo), "-t", "x", "hello")
    assert bad.returncode == 2 and "unknown agent 'f[oo]'" in bad.stderr
    prompt = "fix [link] and [bold]this[/bold] in a[1]"
    ran = cli("run", "-a", "fake", "-r", str(src_repo), "-t", "brackets", "--json", prompt)
    run_id = json.loads(ran.stdout)["run_id"]
    shown = cli("runs", "show", run_id)
    assert shown.returncode == 0 and f"prompt: {prompt}" in shown.stdout


def test_runs_show_prints_an_error_without_the_agent_clis_noise(cli: Cli, store: Store) -> None:
    warning = "WARNING: proceeding, even though we could not create PATH aliases: Refusing to create helper"
    cause = "Error: thread/resume: no rollout found for thread id 01a1feaa (code -32600)"
    record = RunRecord("r-noisy", "codex", "x.com/a/b", "t", 1, Mode.RESUME, PromptKind.DELTA, "p")
    record.outcome, record.error = Outcome.FAILED, f"{warning}; {cause}"
    store.add_run(record)
    shown = cli("runs", "show", record.id)
    assert (
        shown.returncode == 0 and f"error: {cause}\n" in shown.stdout and "PATH aliases" not in shown.stdout
    )
    raw = json.loads(cli("runs", "show", record.id, "--json").stdout)
    assert raw["error"] == record.error  # --json gives the record as stored


def catches_sigint(pid: int) -> bool:
    """Python has installed its SIGINT handler (before that, the kernel's default ends the process,
    which no program can change): from then on a Ctrl-C is Python's to handle."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    caught = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught, 16) & (1 << (signal.SIGINT - 1)))


def test_ctrl_c_during_start_up_exits_130_quietly(baton_env: dict[str, str], src_repo: Path) -> None:
    env = {**os.environ, **baton_env, "FAKE_AGENT_DELAY": "5"}
    for delay in (0.1, 0.15, 0.2, 0.3, 0.4):  # the imports take ~0.4 s
        proc = subprocess.Popen(
            [*BATON, "run", "-a", "fake", "-r", str(src_repo), "-t", "sigint", "hello"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(partial(catches_sigint, proc.pid), timeout=30)
        time.sleep(delay)  # on purpose: the interrupt lands at a different moment of the start-up each time
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        # 130, or killed by SIGINT itself (Python's own exit for an interrupt it did not handle, in
        # the ~20 ms before baton's first line runs): a shell reports both as exit status 130
        assert proc.returncode in (130, -signal.SIGINT), (delay, stderr)
        assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, (delay, stderr)


SWALLOWED = """
import os, signal, sys, weakref
import baton.cli as cli
from baton.cli.interrupts import interrupt
signal.signal(signal.SIGINT, interrupt)  # as main() sets it
class Lock: pass
lock = Lock()
ref = weakref.ref(lock, lambda _: os.kill(os.getpid(), signal.SIGINT))
del lock  # the interrupt lands in the weakref's callback, which prints it and swallows it
cli.main(sys.argv[1:])
"""


def test_a_ctrl_c_that_an_imports_callback_swallowed_still_exits_130(
    baton_env: dict[str, str], src_repo: Path
) -> None:
    """importlib's module locks are freed by weakref callbacks, which print and drop an exception: a
    Ctrl-C landing there is remembered, not lost (the run went on to exit 0 before)."""
    args = ["run", "-a", "fake", "-r", str(src_repo), "-t", "swallowed", "hello"]
    env = {**os.environ, **baton_env, "FAKE_AGENT_DELAY": "5"}
    done = subprocess.run(
        [BATON[0], "-c", SWALLOWED, *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert "Exception ignored" in done.stderr, done.stderr  # the interrupt was swallowed there
    assert done.returncode == 130, done.stderr


def test_a_run_cancels_at_once_after_a_ctrl_c_that_was_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from baton.cli import interrupts
    from baton.cli.run import _with_cancel

    cancel = threading.Event()
    assert _with_cancel(cancel, cancel.is_set) is False
    monkeypatch.setattr(interrupts, "_interrupted", True)
    assert _with_cancel(cancel, cancel.is_set) is True


def test_help_shows_flags_as_flags_and_the_exit_codes(cli: Cli) -> None:
    run_help = cli("run", "--help", env={"COLUMNS": "100"})
    assert run_help.returncode == 0 and "--json" in run_help.stdout
    assert "<bool>" not in run_help.stdout and "BOOLEAN" not in run_help.stdout
    top = cli("--help", env={"COLUMNS": "100"}).stdout
    for code in ("0 succeeded", "2 bad input", "3 busy", "4 a git remote is unreachable", "130 cancelled"):
        assert code in " ".join(top.split()), code


def test_the_cli_offers_every_reset_scope() -> None:
    """cli/sessions.py spells the scopes out (so building the CLI imports no session layer)."""
    from typing import get_args

    from baton.cli.sessions import ScopeName
    from baton.sessions.manage import Scope

    assert list(get_args(ScopeName)) == [s.value for s in Scope]


def test_a_bad_option_value_is_said_in_batons_words(cli: Cli, src_repo: Path) -> None:
    """Typer parses options with pydantic; its words (``Value error,``, ``Input should be``) never
    reach the user: the option, what it takes, and what it was given."""
    key = ("-a", "fake", "-r", str(src_repo), "-t", "x")
    cases = [
        (
            ("run", *key, "--mode", "resum", "p"),
            "--mode takes one of auto, fresh, resume, continue, fork, recover",
        ),
        (("run", *key, "--timeout", "abc", "p"), "--timeout takes a number, not 'abc'"),
        (("runs", "ls", "--limit", "many"), "--limit takes a whole number, not 'many'"),
        (("serve", "--port", "99999"), "--port takes a number of at most 65535, not '99999'"),
        (("sessions", "reset", *key, "--scope", "some"), "--scope takes one of conversation, worktree, all"),
    ]
    for args, words in cases:
        result = cli(*args)
        assert result.returncode == 2 and words in result.stderr, result.stderr
        assert "Value error" not in result.stderr and "Input should" not in result.stderr


def test_a_repository_without_commits_is_bad_input_and_nothing_is_written(
    cli: Cli, tmp_path: Path, baton_env: dict[str, str]
) -> None:
    empty = tmp_path / "empty"
    subprocess.run(["git", "init", "-q", "-b", "main", str(empty)], check=True)
    result = cli("run", "-a", "fake", "-r", str(empty), "-t", "x", "hi")
    assert result.returncode == 2, result.stderr
    assert f"the repository {empty} has no commits yet" in result.stderr and "rev-parse" not in result.stderr
    home = Path(baton_env["BATON_HOME"])
    assert not [p for p in (home / "repos").rglob("*")], "no cache clone is kept"
    assert not (home / "worktrees").exists() or not any((home / "worktrees").rglob("*"))
    assert json.loads(cli("sessions", "ls", "--json").stdout) == []
    assert json.loads(cli("runs", "ls", "--json").stdout) == []


def _subclasses(kind: type[BatonError]) -> set[type[BatonError]]:
    return {kind} | {s for sub in kind.__subclasses__() for s in _subclasses(sub)}


def test_the_docs_list_exactly_the_exit_codes_the_cli_uses() -> None:
    """Every code the CLI can exit with (an error class's, an outcome's, a literal in a command, Click's
    usage error) is a row of docs/cli.md's exit codes table, and the table has no other row; ``--help``
    says the same."""
    import re

    import baton.runner.runids  # noqa: F401 (its error class)
    from baton.cli.common import EXIT_CODES
    from baton.errors import OUTCOME_EXIT

    root = Path(__file__).resolve().parents[2]
    documented = dict(re.findall(r"^\| `(\d+)` \| (.+) \|$", (root / "docs" / "cli.md").read_text(), re.M))
    used = {cls.exit_code for cls in _subclasses(BatonError)} | set(OUTCOME_EXIT.values()) | {2}  # 2: Click
    for path in (root / "src" / "baton" / "cli").glob("*.py"):
        for call in re.findall(r"\b(?:Exit|SystemExit|sys\.exit)\(([^()]*)\)", path.read_text()):
            used |= {int(n) for n in re.findall(r"\b\d+\b", call)}
        used |= {int(n) for n in re.findall(r'\bfail\("[^"]*", "[^"]*", (\d+)', path.read_text())}
    demo = (root / "src" / "baton" / "testing" / "demo.py").read_text()
    used |= {int(n) for n in re.findall(r"^\s+return (\d+)$", demo, re.M)}  # `baton demo`'s own codes
    assert {int(code) for code in documented} == used == set(EXIT_CODES), (sorted(documented), sorted(used))
