"""The `baton` command as a user runs it (separate processes, the fake agent): JSON shapes, exit codes,
sessions and runs commands, export/import to another home."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from baton import Mode, RunRequest
from baton.errors import BadInput
from baton.settings import Settings
from tests.conftest import wait_for

Cli = Callable[..., subprocess.CompletedProcess[str]]
RUN_KEYS = {
    "run_id",
    "agent",
    "repo",
    "thread",
    "session_id",
    "mode",
    "outcome",
    "attempt",
    "result",
    "usage",
    "worktree",
    "duration_s",
}
SESSION_KEYS = {
    "agent",
    "repo",
    "thread",
    "session_id",
    "status",
    "attempts",
    "worktree",
    "last_used_at",
    "expires_at",
}


def run_json(
    cli: Cli, repo: Path, *extra: str, thread: str = "issue-7", env: dict[str, str] | None = None
) -> tuple[int, dict[str, object]]:
    out = cli("run", "-a", "fake", "-r", str(repo), "-t", thread, "--json", *extra, env=env)
    assert out.stdout, out.stderr
    return out.returncode, json.loads(out.stdout)


@pytest.mark.slow  # many `baton` processes: over 3 s of CPU
def test_run_json_and_exit_codes(cli: Cli, src_repo: Path, tmp_path: Path) -> None:
    code, first = run_json(cli, src_repo, "hello")
    assert code == 0
    assert first.keys() >= RUN_KEYS
    assert first["outcome"] == "succeeded" and first["mode"] == "fresh" and first["attempt"] == 1
    assert first["result"] == "fake reply: received 2 messages"
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text("from a file")
    code, second = run_json(cli, src_repo, "--prompt-file", str(prompt_file))
    assert code == 0 and second["mode"] == "resume" and second["session_id"] == first["session_id"]
    code, failed = run_json(cli, src_repo, "x", env={"FAKE_AGENT_FAIL": "1"})
    assert code == 1 and failed["outcome"] == "failed"
    code, timed = run_json(cli, src_repo, "--timeout", "0.3", "x", env={"FAKE_AGENT_DELAY": "20"})
    assert code == 1 and timed["outcome"] == "timed_out"


def test_human_output(cli: Cli, src_repo: Path) -> None:
    out = cli("run", "-a", "fake", "-r", str(src_repo), "-t", "h", "hello")
    assert out.returncode == 0
    assert "succeeded" in out.stdout and "fake reply: received 2 messages" in out.stdout


def test_bad_cli_input(cli: Cli, src_repo: Path, home: Path) -> None:
    both = cli("run", "-a", "fake", "-r", str(src_repo), "-t", "x", "--prompt-file", "/nonexistent", "p")
    assert both.returncode == 2 and "not both" in both.stderr
    missing = cli("run", "-a", "fake", "-r", str(src_repo), "-t", "x", "--prompt-file", "/nonexistent")
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    mode = cli("run", "-a", "fake", "-r", str(src_repo), "-t", "x", "--mode", "sideways", "p")
    assert mode.returncode == 2
    assert not home.exists()
    show = cli("sessions", "show", "-a", "fake", "-r", "github.com/a/b", "-t", "nothing")
    assert show.returncode == 2 and "no session" in show.stderr


@pytest.mark.slow  # many `baton` processes: over 3 s of CPU
def test_sessions_ls_show_and_runs(cli: Cli, src_repo: Path) -> None:
    _, first = run_json(cli, src_repo, "a", thread="one")
    run_json(cli, src_repo, "b", thread="two")
    listed = json.loads(cli("sessions", "ls", "--json").stdout)
    assert [s["thread"] for s in listed] == ["two", "one"]
    assert all(s.keys() >= SESSION_KEYS for s in listed)
    assert listed[1]["session_id"] == first["session_id"] and listed[1]["attempts"] == 1
    shown = json.loads(
        cli("sessions", "show", "-a", "fake", "-r", str(first["repo"]), "-t", "one", "--json").stdout
    )
    assert shown["session_id"] == first["session_id"] and len(shown["runs"]) == 1
    runs = json.loads(cli("runs", "ls", "--json", "--thread", "one").stdout)
    assert [r["run_id"] for r in runs] == [first["run_id"]]
    one = json.loads(cli("runs", "show", str(first["run_id"])[:14], "--json").stdout)
    assert one["outcome"] == "succeeded" and one["prompt"] == "a"
    logs = cli("runs", "logs", "--raw", str(first["run_id"]))
    events = [json.loads(line) for line in logs.stdout.splitlines()]
    assert events[0]["type"] == "system" and events[-1]["type"] == "result"
    assert cli("runs", "show", "nope").returncode == 2
    table = cli("sessions", "ls")
    assert table.returncode == 0 and "fake" in table.stdout


@pytest.mark.slow  # many `baton` processes: over 3 s of CPU
def test_logs_follow_waits_for_the_end(cli: Cli, baton_env: dict[str, str], src_repo: Path) -> None:
    import os
    import sys

    env = {**os.environ, **baton_env, "FAKE_AGENT_DELAY": "1.5"}
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "baton.cli",
            "run",
            "-a",
            "fake",
            "-r",
            str(src_repo),
            "-t",
            "f",
            "--json",
            "slow",
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    listed: list[dict[str, str]] = []

    def run_listed() -> bool:
        listed[:] = json.loads(cli("runs", "ls", "--json").stdout or "[]")
        return bool(listed)

    wait_for(run_listed, timeout=60, interval=0.1, what="the run to be listed by `baton runs ls`")
    run_id = listed[0]["run_id"]
    follow = cli("runs", "logs", "-f", "--raw", run_id)
    runner.communicate(timeout=30)
    assert follow.returncode == 0
    assert json.loads(follow.stdout.splitlines()[-1])["type"] == "result"


@pytest.mark.slow  # many `baton` processes: over 3 s of CPU
def test_reset_scopes(cli: Cli, src_repo: Path, home: Path) -> None:
    _, first = run_json(cli, src_repo, "a")
    key = ["-a", "fake", "-r", str(first["repo"]), "-t", "issue-7"]
    conv = json.loads(cli("sessions", "reset", *key, "--scope", "conversation", "--yes", "--json").stdout)
    assert conv["transcript_files"] == 1
    _, after = run_json(cli, src_repo, "b")
    assert after["mode"] == "fresh" and after["session_id"] != first["session_id"]
    wt = json.loads(cli("sessions", "reset", *key, "--scope", "worktree", "--yes", "--json").stdout)
    assert wt["worktree"] is True and not Path(str(first["worktree"])).exists()
    _, again = run_json(cli, src_repo, "c")
    assert again["mode"] == "resume" and Path(str(again["worktree"])).is_dir()
    everything = json.loads(cli("sessions", "reset", *key, "--scope", "all", "--yes", "--json").stdout)
    assert everything["runs"] == 3
    assert json.loads(cli("sessions", "ls", "--json").stdout) == []
    assert not list((home / "logs").glob("*.jsonl"))


@pytest.mark.slow  # many `baton` processes: over 3 s of CPU
def test_export_import_moves_a_session_to_another_home(cli: Cli, src_repo: Path, tmp_path: Path) -> None:
    _, first = run_json(cli, src_repo, "remember the number 41")
    export = tmp_path / "session.json"
    key = ["-a", "fake", "-r", str(first["repo"]), "-t", "issue-7"]
    assert cli("sessions", "export", *key, "-o", str(export)).returncode == 0
    other = {"BATON_HOME": str(tmp_path / "other-home")}
    imported = cli("sessions", "import", str(export), env=other)
    assert imported.returncode == 0, imported.stderr
    again = cli("sessions", "import", str(export), env=other)
    assert again.returncode == 2 and "already exists" in again.stderr
    code, moved = run_json(cli, src_repo, "what was the number?", env=other)
    assert code == 0 and moved["mode"] == "resume" and moved["session_id"] == first["session_id"]
    assert moved["result"] == "fake reply: received 4 messages"
    assert str(tmp_path / "other-home") in str(moved["worktree"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    assert cli("sessions", "import", str(bad), env=other).returncode == 2


def test_unsupported_mode_is_bad_input(
    src_repo: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every real agent takes every mode, Codex's fork included: an adapter without one is refused
    before anything is written."""
    from baton.agents import get_agent
    from baton.runner.run import check_request

    codex = type(get_agent("codex", settings))
    monkeypatch.setattr(codex, "capabilities", dataclasses.replace(codex.capabilities, fork=False))
    request = RunRequest(
        agent="codex", repo=str(src_repo), thread="x", prompt="p", mode=Mode.FORK, fork_from="y"
    )
    with pytest.raises(BadInput, match="agent 'codex' cannot run in mode 'fork'"):
        check_request(request, settings)
    assert not settings.home.exists()


def test_agents_json_lists_capabilities(cli: Cli) -> None:
    rows = {r["agent"]: r for r in json.loads(cli("agents", "--json").stdout)}
    assert set(rows) == {"claude", "codex", "gemini", "copilot", "opencode", "fake"}
    assert all(rows[a]["capabilities"]["fork"] is True for a in ("claude", "codex", "gemini"))
    assert not any(rows[a]["capabilities"]["fork"] for a in ("copilot", "opencode")), "ACP agents: no fork"
    assert all(r["installed"] and r["version"] for r in rows.values()), rows
    assert rows["claude"]["home"].endswith("homes/claude")


def test_version_short_help_and_a_bare_baton(cli: Cli) -> None:
    """`baton --version` prints the package's version; `-h` is `--help` everywhere; a bare `baton`
    prints its help and exits 0, not an error."""
    from importlib.metadata import version

    shown = cli("--version")
    assert (shown.returncode, shown.stdout) == (0, f"baton {version('agent-baton')}\n")
    for args in ((), ("-h",), ("--help",)):
        helped = cli(*args)
        assert helped.returncode == 0 and helped.stdout.startswith("Usage: baton [OPTIONS] COMMAND"), args
        assert "error" not in helped.stderr.lower(), args
    sub = cli("runs", "ls", "-h")
    assert sub.returncode == 0 and sub.stdout.startswith("Usage: baton runs ls")
