"""The core guarantees, proven with the REAL Claude Code CLI against the mock Anthropic API.

The mock's replies say how many messages each request carried, so a growing count proves that a run
resumed its conversation with the full history, and a count of 2 proves a fresh start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from baton import Mode, Outcome, PromptKind, RunRequest, open_store, run
from baton.settings import Settings
from baton.testing.git_http import GitHttpServer
from baton.testing.mock_anthropic import MockAnthropic
from tests.conftest import BATON

pytestmark = [pytest.mark.slow, pytest.mark.real_claude]
Cli = Callable[..., subprocess.CompletedProcess[str]]


def go(
    settings: Settings, repo: Path, prompt: str, thread: str = "issue-1", **kw: object
) -> dict[str, object]:
    result = run(
        RunRequest(agent="claude", repo=str(repo), thread=thread, prompt=prompt, **kw),  # type: ignore[arg-type]
        settings=settings,
    )
    return result.to_json()


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def test_claude_version_is_printed(claude_bin: str) -> None:
    out = subprocess.run([claude_bin, "--version"], capture_output=True, text=True, check=True)
    print(f"real Claude Code CLI: {out.stdout.strip()} at {claude_bin}")
    assert "Claude Code" in out.stdout


def test_three_runs_one_conversation(settings: Settings, src_repo: Path, mock: MockAnthropic) -> None:
    results = [go(settings, src_repo, f"step {i}") for i in range(3)]
    assert [r["outcome"] for r in results] == ["succeeded"] * 3
    assert [r["mode"] for r in results] == ["fresh", "resume", "resume"]
    assert len({r["session_id"] for r in results}) == 1
    assert mock.message_counts() == [2, 4, 6]
    assert results[2]["result"] == "mock reply #3: received 6 messages"
    assert results[0]["worktree"] == results[2]["worktree"]
    assert Path(str(results[0]["worktree"])).is_dir()


def start(baton_env: dict[str, str], *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*BATON, *args],
        env={**os.environ, **baton_env, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, dict[str, object]]:
    stdout, stderr = proc.communicate(timeout=120)
    try:
        return proc.returncode, json.loads(stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"exit {proc.returncode}; stdout {stdout!r}; stderr {stderr!r}") from None


def test_two_threads_at_once_do_not_cross(
    baton_env: dict[str, str], src_repo: Path, mock: MockAnthropic
) -> None:
    mock.delay = 0.5
    for round_ in range(2):
        procs = {
            t: start(
                baton_env,
                "run",
                "-a",
                "claude",
                "-r",
                str(src_repo),
                "-t",
                t,
                "--json",
                f"marker-{t}-{round_}",
            )
            for t in ("alpha", "beta")
        }
        results = {t: finish(p) for t, p in procs.items()}
        assert all(code == 0 for code, _ in results.values()), results
    alpha, beta = results["alpha"][1], results["beta"][1]
    assert alpha["session_id"] != beta["session_id"]
    assert alpha["worktree"] != beta["worktree"]
    assert alpha["mode"] == beta["mode"] == "resume"
    for request in mock.requests:
        text = request.text()
        assert not ("marker-alpha" in text and "marker-beta" in text), (
            "one conversation saw the other's prompt"
        )
    # each conversation carries its own two prompts and nothing else: 4 messages on the second round
    last = {t: [r for r in mock.requests if f"marker-{t}-1" in r.text()][-1] for t in ("alpha", "beta")}
    assert [len(last[t].messages) for t in ("alpha", "beta")] == [4, 4]


def test_sigkill_mid_run_then_resume_with_interrupted_prompt(
    baton_env: dict[str, str], settings: Settings, src_repo: Path, mock: MockAnthropic
) -> None:
    assert go(settings, src_repo, "first task")["outcome"] == "succeeded"
    mock.delay = 60
    runner = start(
        baton_env,
        "run",
        "-a",
        "claude",
        "-r",
        str(src_repo),
        "-t",
        "issue-1",
        "--json",
        "interrupted-task-zebra",
    )
    wait_for(lambda: any("interrupted-task-zebra" in r.text() for r in mock.requests))
    store = open_store(settings.resolved_store_url)
    running = store.list_runs(limit=1)[0]
    assert running.outcome == Outcome.RUNNING and running.agent_pid
    time.sleep(1.5)  # mid-turn: Claude Code flushes its transcript (the prompt) shortly after sending
    os.kill(runner.pid, signal.SIGKILL)
    runner.communicate(timeout=10)
    # the agent dies with its runner (PR_SET_PDEATHSIG): nothing keeps writing the transcript
    wait_for(lambda: not Path(f"/proc/{running.agent_pid}").exists() or _zombie(running.agent_pid), 10)
    mock.delay = 0
    after = go(settings, src_repo, "carry on")
    assert after["outcome"] == "succeeded" and after["mode"] == "resume"
    assert after["prompt_kind"] == PromptKind.INTERRUPTED.value
    crashed = store.get_run(running.id)
    assert crashed is not None and crashed.outcome == Outcome.CRASHED
    last = mock.requests[-1]
    assert "interrupted-task-zebra" in last.text(), "the interrupted prompt is part of the resumed history"
    assert "interrupted" in last.text() and "carry on" in last.text()
    assert after["session_id"] == crashed.session_id_in
    store.close()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return True


def test_agent_home_deleted_hydrates_from_store(
    settings: Settings, src_repo: Path, mock: MockAnthropic
) -> None:
    first = go(settings, src_repo, "one")
    go(settings, src_repo, "two")
    import shutil

    shutil.rmtree(settings.home / "homes" / "claude")
    after = go(settings, src_repo, "three")
    assert after["mode"] == "resume" and after["outcome"] == "succeeded"
    assert after["session_id"] == first["session_id"]
    assert mock.message_counts() == [2, 4, 6]
    assert "one" in mock.requests[-1].text() and "two" in mock.requests[-1].text()


def test_transcript_gone_everywhere_recovers_with_recap(
    settings: Settings, src_repo: Path, mock: MockAnthropic
) -> None:
    first = go(settings, src_repo, "implement the parser")
    go(settings, src_repo, "add error messages")
    import shutil

    shutil.rmtree(settings.home / "homes" / "claude")
    store = open_store(settings.resolved_store_url)
    store.delete_snapshot("claude", str(first["repo"]), "issue-1")
    after = go(settings, src_repo, "write the docs")
    assert after["mode"] == Mode.RECOVER.value and after["prompt_kind"] == "recap"
    assert after["outcome"] == "succeeded"
    assert after["session_id"] != first["session_id"]
    sent = mock.requests[-1]
    assert len(sent.messages) == 2, "a recovered conversation starts fresh"
    assert "implement the parser" in sent.text() and "add error messages" in sent.text()
    assert "mock reply #2: received 4 messages" in sent.text(), "the recap carries earlier answers"
    # the next run resumes the recovered conversation
    assert go(settings, src_repo, "next")["mode"] == "resume"
    assert mock.message_counts()[-1] == 4
    store.close()


def test_agent_says_not_found_then_recover(settings: Settings, src_repo: Path, mock: MockAnthropic) -> None:
    first = go(settings, src_repo, "start")
    store = open_store(settings.resolved_store_url)
    store.delete_snapshot("claude", str(first["repo"]), "issue-1")
    transcript = next(
        (settings.home / "homes" / "claude" / "projects").glob(f"*/{first['session_id']}.jsonl")
    )
    transcript.write_bytes(b"\x00\x01\x02 not a transcript \xff")
    after = run(
        RunRequest(agent="claude", repo=str(src_repo), thread="issue-1", prompt="again"), settings=settings
    )
    assert [(a.mode, a.outcome) for a in after.attempts] == [
        (Mode.RESUME, Outcome.SESSION_LOST),
        (Mode.RECOVER, Outcome.SUCCEEDED),
    ]
    assert after.attempts[0].error and "No conversation found" in after.attempts[0].error
    assert after.session.agent_session_id != first["session_id"]
    store.close()


def test_concurrent_runs_of_one_key_never_overlap(
    baton_env: dict[str, str], cli: Cli, src_repo: Path, mock: MockAnthropic
) -> None:
    assert cli("run", "-a", "claude", "-r", str(src_repo), "-t", "k", "--json", "first").returncode == 0
    mock.delay = 2.0
    slow = start(baton_env, "run", "-a", "claude", "-r", str(src_repo), "-t", "k", "--json", "slow one")
    wait_for(lambda: any("slow one" in r.text() for r in mock.requests))
    busy = cli("run", "-a", "claude", "-r", str(src_repo), "-t", "k", "--wait", "0", "busy one")
    assert busy.returncode == 3, busy.stderr
    assert "busy" in busy.stderr
    waiter = start(
        baton_env,
        "run",
        "-a",
        "claude",
        "-r",
        str(src_repo),
        "-t",
        "k",
        "--wait",
        "60",
        "--json",
        "patient one",
    )
    code_slow, slow_result = finish(slow)
    mock.delay = 0
    code_wait, wait_result = finish(waiter)
    assert code_slow == code_wait == 0
    assert slow_result["session_id"] == wait_result["session_id"]
    # one linear conversation: 2, 4, 6 — the waiter saw the slow run's turn, nothing forked
    assert mock.message_counts() == [2, 4, 6]
    assert all("busy one" not in r.text() for r in mock.requests)
    assert "slow one" in mock.requests[-1].text()


BAD_INPUTS = [
    (["-t", "../x"], "thread"),
    (["-t", ""], "thread"),
    (["-t", "x" * 200], "thread"),
    (["-t", "-rf"], "thread"),
    (["-a", "gpt"], "unknown agent"),
    (["-r", "/nonexistent/repo"], "does not exist"),
]


@pytest.mark.parametrize(("override", "message"), BAD_INPUTS)
def test_bad_input_exit_2_nothing_written(
    cli: Cli, home: Path, src_repo: Path, override: list[str], message: str
) -> None:
    args = {"-a": "claude", "-r": str(src_repo), "-t": "ok"}
    args.update(dict(zip(override[::2], override[1::2], strict=True)))
    flat = [part for pair in args.items() for part in pair]
    result = cli("run", *flat, "do something")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not home.exists(), f"bad input wrote {list(home.rglob('*'))}"


def test_repo_url_that_does_not_exist_writes_nothing(
    cli: Cli, home: Path, tmp_path: Path, mock: MockAnthropic
) -> None:
    with GitHttpServer(root=tmp_path / "served", token="t0ken") as server:
        (tmp_path / "served").mkdir(exist_ok=True)
        result = cli(
            "run",
            "-a",
            "claude",
            "-r",
            server.url("nope.git"),
            "-t",
            "x",
            "hello",
            env={"BATON_GIT_TOKEN": "t0ken"},
        )
    assert result.returncode == 2, result.stderr
    assert "cannot clone" in result.stderr
    assert not (home / "repos").exists() or not any((home / "repos").rglob("*.git"))
    assert not (home / "worktrees").exists()
    store = open_store(f"sqlite:///{home / 'baton.db'}")
    assert store.list_sessions() == [] and store.list_runs() == []
    store.close()


def test_git_token_never_in_argv_logs_or_db(
    baton_env: dict[str, str], home: Path, tmp_path: Path, mock: MockAnthropic
) -> None:
    token = "tok-" + os.urandom(8).hex()
    source = tmp_path / "origin"
    from tests.conftest import make_repo

    make_repo(source)
    served = tmp_path / "served"
    served.mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", str(source), str(served / "app.git")], check=True)
    subprocess.run(
        ["git", "-C", str(served / "app.git"), "config", "uploadpack.allowFilter", "true"], check=True
    )
    mock.delay = 1.5
    seen_in_argv: list[str] = []
    with GitHttpServer(root=served, token=token) as server:
        proc = start(
            baton_env,
            "run",
            "-a",
            "claude",
            "-r",
            server.url("app.git"),
            "-t",
            "secret-test",
            "--json",
            "hello",
            env={"BATON_GIT_TOKEN": token},
        )
        while proc.poll() is None:
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    if token.encode() in cmdline.read_bytes():
                        seen_in_argv.append(str(cmdline))
                except OSError:
                    pass
            time.sleep(0.02)
        code, result = finish(proc)
        assert server.auth_attempts > 0, "the clone authenticated with the token"
    assert code == 0, result
    assert result["outcome"] == "succeeded"
    assert seen_in_argv == []
    leaks = [p for p in home.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
    assert leaks == [], f"token written to {leaks}"
