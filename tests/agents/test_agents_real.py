"""The core guarantees, proven with each REAL agent CLI (Claude Code, Codex, Gemini) against its mock
model server on 127.0.0.1.

Each mock reports how many history items every conversation request carried: Claude's first turn
sends 2 messages, Codex's 4 input items, Gemini's 1 content, and every resumed turn adds 2. Counts that
grow by 2 prove that a run resumed its conversation with the full history; the first-turn count again
proves a fresh start.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from baton import Mode, Outcome, RunRequest, open_store, run
from baton.agents import Agent, Turn, get_agent
from baton.agents.codex_config import merge_toml
from baton.errors import BadInput
from baton.runner.process import RunLog, run_process
from baton.settings import Settings
from baton.testing import MockModel
from baton.testing.git_http import GitHttpServer
from baton.testing.mock_openai import MockOpenAI
from baton.testing.mock_openai_agents import OPENCODE_CONFIG
from tests.conftest import BATON, FAMILIES, FIRST, MOCKS, make_repo, once, shared_conversation, wait_for
from tests.private_services import free_port

pytestmark = pytest.mark.slow
Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(params=sorted(MOCKS))
def agent(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def go(settings: Settings, agent: str, repo: Path, prompt: str, thread: str = "issue-1") -> dict[str, object]:
    result = run(RunRequest(agent=agent, repo=str(repo), thread=thread, prompt=prompt), settings=settings)
    return result.to_json()


def wipe_homes(settings: Settings, agent: str) -> None:
    """What a redeploy on a disk that is not persistent does: the agent's base home and its keys' homes."""
    shutil.rmtree(settings.home / "homes" / agent)
    shutil.rmtree(settings.home / "keys" / agent)


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
    stdout, stderr = proc.communicate(timeout=180)
    try:
        return proc.returncode, json.loads(stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"exit {proc.returncode}; stdout {stdout!r}; stderr {stderr!r}") from None


def test_cli_version(agent: str, settings: Settings) -> None:
    version = get_agent(agent, settings).version()
    print(f"real {agent} CLI: {version}")
    assert version and version[0].isdigit()


@dataclasses.dataclass(frozen=True)
class Conversation:
    """What one conversation of six turns did (:func:`hostile`): each turn's result and, after it, the
    model's last request text and the history counts of all its requests so far."""

    prompts: list[str]
    results: list[dict[str, object]]
    last_texts: list[str]
    counts: list[list[int]]
    hooked: bool  # the hook payload's marker file exists: a prompt was read as an option


def hook_prompt(marker: Path) -> str:
    """Read as Claude's ``--settings``, this prompt runs ``touch marker`` (remote code execution)."""
    hooks = {"SessionStart": [{"hooks": [{"type": "command", "command": f"touch {marker}"}]}]}
    return "--settings=" + json.dumps({"hooks": hooks}, separators=(",", ":"))


@pytest.fixture
def hostile(
    agent: str, conversations: dict[object, object], tmp_path_factory: pytest.TempPathFactory
) -> Conversation:
    """One conversation per agent, shared by the tests that only read what it did (a real CLI's turn
    costs seconds, OpenCode's ~10): a fresh turn and five resumed ones whose prompts start like options
    or commands."""

    def drive() -> Conversation:
        with shared_conversation(agent, "hostile", tmp_path_factory) as (settings, repo, server):
            marker = settings.home.parent / "pwned"
            hook = hook_prompt(marker)
            prompts = [hook, hook, "-p hello", "-- --resume x", "/clear the cache", "?why"]
            results, last_texts, counts = [], [], []
            for prompt in prompts:
                results.append(go(settings, agent, repo, prompt))
                last_texts.append(server.texts()[-1] if server.texts() else "")
                counts.append(server.history_counts())
        return Conversation(prompts, results, last_texts, counts, marker.exists())

    return once(conversations, tmp_path_factory, f"hostile-{agent}", drive)


def test_three_runs_one_conversation(agent: str, hostile: Conversation) -> None:
    """Its first three turns (:func:`hostile`): one conversation, resumed with its whole history."""
    results = hostile.results[:3]
    assert [r["outcome"] for r in results] == ["succeeded"] * 3, results
    assert [r["mode"] for r in results] == ["fresh", "resume", "resume"]
    assert len({r["session_id"] for r in results}) == 1 and results[0]["session_id"]
    first = FIRST[agent]
    assert hostile.counts[2] == [first, first + 2, first + 4]
    assert f"received {first + 4}" in str(results[2]["result"])
    assert results[0]["worktree"] == results[2]["worktree"]


# Where each CLI is told its model's address (Codex: the base home's provider table, as configured).
BASE_URL = {
    "claude": "ANTHROPIC_BASE_URL",
    "gemini": "GOOGLE_GEMINI_BASE_URL",
    "copilot": "COPILOT_PROVIDER_BASE_URL",
}
GRACE = (
    1.0  # BATON_UNREACHABLE_GRACE for these runs (20 by default; the logic: tests/agents/test_modelwatch.py)
)
# Copilot's retry notices do not tell a refused connection from a server error, so baton shows them and
# lets it give up by itself: after five retries, ~28 s, naming the provider's address. OpenCode says
# nothing while it retries (~75 s): its silence after the prompt counts, and baton probes after the grace
# (76 s before, ~GRACE + 3 s since).
# Behind baton's model gateway (the default) every CLI sees the gateway's 502s, and baton names the model
# API the gateway could not reach; a CLI that keeps its own credential gives up in its own words.
GIVES_UP: dict[str, tuple[str, float]] = {}


def test_an_unreachable_model_fails_within_the_grace_naming_its_address(
    agent: str, settings: Settings, src_repo: Path, model: MockModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each CLI retries for minutes (Claude ~3, Codex for ever); baton reads its retries as they stream
    and ends the turn `failed`, naming the address and the cause, soon after the grace."""
    url = f"http://127.0.0.1:{free_port()}"
    if agent in ("codex", "copilot", "opencode"):
        url += "/v1"
    if agent == "codex":
        merge_toml(
            settings.home / "homes" / agent / "config.toml", {"model_providers": {"mock": {"base_url": url}}}
        )
    elif agent == "opencode":  # its provider's address is in its config
        config = settings.home / "homes" / agent / OPENCODE_CONFIG
        config.write_text(config.read_text().replace(model.url + "/v1", url))  # type: ignore[attr-defined]
    else:
        monkeypatch.setenv(BASE_URL[agent], url)
    started = time.monotonic()
    result = run(
        RunRequest(agent=agent, repo=str(src_repo), thread="down", prompt="hello?"),
        settings=settings.with_(unreachable_grace=GRACE),
    )
    took = time.monotonic() - started
    print(f"{agent}: {result.run.outcome} after {took:.1f} s: {result.run.error}")
    assert result.run.outcome == Outcome.FAILED, result.run.error
    said, bound = GIVES_UP.get(agent, ("the model API at {url} could not be reached: connection refused", 0))
    assert str(result.run.error).startswith(said.format(url=url)) and url in str(result.run.error)
    # a bound, not a pace: well inside each CLI's own retrying (OpenCode's ~75 s, Claude's ~3 min), with a
    # slow machine's margin (OpenCode's start alone took 17 s on a loaded CI machine)
    assert took < (bound or GRACE + 40), (
        "the first retry comes within seconds (Codex's and Gemini's after ~3.5 s)"
    )
    log = Path(result.run.log_path).read_text()
    assert '"type": "baton.ended"' in log
    assert '"type": "baton.model"' in log, "its retries (OpenCode: its wait for the model), shown live"


def test_codex_takes_openai_base_url_like_the_other_clis_base_urls(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No provider table of the operator's: ``OPENAI_BASE_URL`` is enough, as ``ANTHROPIC_BASE_URL`` is
    for Claude; over HTTP at once (Codex's built-in provider would try WebSockets five times first)."""
    with MockOpenAI() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "mock-key")
        results = [
            run(
                RunRequest(agent="codex", repo=str(src_repo), thread="base-url", prompt=f"step {i}"), settings
            )
            for i in range(2)
        ]
        assert [r.run.outcome for r in results] == [Outcome.SUCCEEDED] * 2, [r.run.error for r in results]
        first, second = server.history_counts()  # Codex's default model sends more than the mock's 4
        assert second == first + 2, "the second turn resumed the first's thread"
    log = Path(results[0].run.log_path).read_text()
    assert "Reconnecting" not in log and "WebSocket" not in log, log
    assert "model_provider" not in (settings.home / "homes" / "codex" / "config.toml").read_text()


# two keys' conversations live in two keys' homes, whatever the CLI (OpenCode's every XDG directory: in its
# key's home, tests/agents/test_acp.py): one per family
@pytest.mark.parametrize("agent", FAMILIES)
def test_two_threads_at_once_do_not_cross(
    agent: str, baton_env: dict[str, str], src_repo: Path, model: MockModel
) -> None:
    model.delay = 0.5
    results: dict[str, tuple[int, dict[str, object]]] = {}
    for round_ in range(2):
        procs = {
            t: start(
                baton_env, "run", "-a", agent, "-r", str(src_repo), "-t", t, "--json", f"marker-{t}-{round_}"
            )
            for t in ("alpha", "beta")
        }
        results = {t: finish(p) for t, p in procs.items()}
        assert all(code == 0 for code, _ in results.values()), results
    alpha, beta = results["alpha"][1], results["beta"][1]
    assert alpha["session_id"] != beta["session_id"]
    assert alpha["worktree"] != beta["worktree"]
    assert alpha["mode"] == beta["mode"] == "resume"
    texts = model.texts()
    assert not any("marker-alpha" in t and "marker-beta" in t for t in texts), (
        "one conversation saw the other's"
    )
    counts = model.history_counts()
    for thread in ("alpha", "beta"):
        last = max(i for i, t in enumerate(texts) if f"marker-{thread}-1" in t)
        assert f"marker-{thread}-0" in texts[last]
        assert counts[last] == FIRST[agent] + 2


# with no transcript and no snapshot left, the recovery is baton's (a recap on a fresh turn): one per family
@pytest.mark.parametrize("agent", FAMILIES)
def test_transcript_gone_everywhere_recovers_with_recap(
    agent: str, settings: Settings, src_repo: Path, model: MockModel
) -> None:
    first = go(settings, agent, src_repo, "implement the parser")
    go(settings, agent, src_repo, "add error messages")
    wipe_homes(settings, agent)
    model.configure_home(settings.home / "homes" / agent)
    store = open_store(settings.resolved_store_url)
    store.delete_snapshot(agent, str(first["repo"]), "issue-1")
    store.close()
    after = go(settings, agent, src_repo, "write the docs")
    assert after["mode"] == Mode.RECOVER.value and after["prompt_kind"] == "recap"
    assert after["outcome"] == "succeeded"
    assert after["session_id"] != first["session_id"]
    assert model.history_counts()[-1] == FIRST[agent], "a recovered conversation starts fresh"
    sent = model.texts()[-1]
    assert "implement the parser" in sent and "add error messages" in sent and "write the docs" in sent
    assert f"received {FIRST[agent] + 2}" in sent, "the recap carries earlier answers"
    assert go(settings, agent, src_repo, "next")["mode"] == "resume"
    assert model.history_counts()[-1] == FIRST[agent] + 2


# Each CLI's words, measured on the pinned releases, when asked to resume a conversation it does not have
# (an id it never made, in a directory with none): a lost conversation, which the runner recovers at once
# with a recap. Gemini answers so in a directory with no session at all (with one: "Invalid session
# identifier", tests/agents/test_gemini.py); OpenCode's load error says nothing of the id, and the bridge
# knows it is lost because session/list does not list it either.
REFUSED = {
    "claude": "No conversation found with session ID: {id}",
    "codex": "no rollout found for thread id {id}",
    "gemini": "No previous sessions found for this project.",
    "copilot": "Resource not found: Session {id} not found",
    "opencode": "Internal error: OpenCode service failure",
}


def test_a_conversation_the_cli_does_not_have_is_lost_in_its_own_words(
    agent: str, settings: Settings, model: MockModel, tmp_path: Path
) -> None:
    cli = get_agent(agent, settings)
    cli.prepare_home(settings.ttl_days)
    cwd = tmp_path / "nowhere"
    cwd.mkdir()
    missing = f"ses_{uuid.uuid4().hex[:26]}" if agent == "opencode" else str(uuid.uuid4())
    launch = cli.launch(Mode.RESUME, "hello", missing)
    done = subprocess.run(
        launch.argv,
        cwd=cwd,
        env={**os.environ, **launch.env},
        input=launch.stdin,
        capture_output=True,
        timeout=180,
    )
    turn, stderr = Turn(), done.stderr.decode()
    for line in done.stdout.decode().splitlines():
        cli.read_event(line, turn)
    said = "\n".join([*turn.errors, stderr])
    assert cli.classify(done.returncode, turn, stderr) == Outcome.SESSION_LOST, said
    assert REFUSED[agent].format(id=missing) in said, said
    assert model.history_counts() == [], "refused before the model was asked"


@pytest.fixture
def started(baton_env: dict[str, str]) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """:func:`start`, with every process it started stopped at the end even when the test failed (a run
    left going would fail the next test on this worker with its ResourceWarnings)."""
    procs: list[subprocess.Popen[str]] = []

    def go(*args: str) -> subprocess.Popen[str]:
        procs.append(start(baton_env, *args))
        return procs[-1]

    yield go
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


# The key's lease is baton's, whatever the CLI: the cheapest to start here; every CLI meets a busy key
# (refused, exit 3, its conversation carried on whole) in the compat matrix's race event
# (tests/agents/test_compat_failures.py).
@pytest.mark.parametrize("agent", ["codex"])
def test_concurrent_runs_of_one_key_never_overlap(
    agent: str,
    cli: Cli,
    home: Path,
    src_repo: Path,
    model: MockModel,
    started: Callable[..., subprocess.Popen[str]],
) -> None:
    assert cli("run", "-a", agent, "-r", str(src_repo), "-t", "k", "--json", "first").returncode == 0
    model.delay = 120  # the slow turn is held until the waiter has started on the key (released below)
    slow = started("run", "-a", agent, "-r", str(src_repo), "-t", "k", "--json", "slow one")
    wait_for(lambda: any("slow one" in t for t in model.texts()))
    busy = cli("run", "-a", agent, "-r", str(src_repo), "-t", "k", "--wait", "0", "busy one")
    assert busy.returncode == 3, busy.stderr
    assert "busy" in busy.stderr
    waiter = started(
        "run",
        "-a",
        agent,
        "-r",
        str(src_repo),
        "-t",
        "k",
        "--wait",
        "120",
        "--json",
        "patient one",
    )
    # it opens the store just before it asks for the key's lease, which the slow run holds until its
    # turn's reply and its own ending (a snapshot, a checkpoint) are done
    wait_for(lambda: opened(waiter.pid, home / "baton.db"), what="the waiter to open the store")
    assert waiter.poll() is None and not any("patient one" in t for t in model.texts())
    model.released.set()
    code_slow, slow_result = finish(slow)
    code_wait, wait_result = finish(waiter)
    assert code_slow == code_wait == 0
    assert slow_result["session_id"] == wait_result["session_id"]
    # one linear conversation — the waiter saw the slow run's turn, nothing forked
    first = FIRST[agent]
    assert model.history_counts() == [first, first + 2, first + 4]
    assert not any("busy one" in t for t in model.texts())
    assert "slow one" in model.texts()[-1]


def opened(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open."""
    try:
        return any(os.readlink(fd) == os.path.realpath(path) for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:  # a descriptor closed while it was read
        return False


BAD_INPUTS = [
    (["-t", "../x"], "thread"),
    (["-t", ""], "thread"),
    (["-t", "x" * 200], "thread"),
    (["-t", "-rf"], "thread"),
    (["-r", "/nonexistent/repo"], "does not exist"),
]


@pytest.mark.parametrize(("override", "message"), BAD_INPUTS)
def test_bad_input_exit_2_nothing_written(
    agent: str, cli: Cli, home: Path, src_repo: Path, override: list[str], message: str
) -> None:
    args = {"-a": agent, "-r": str(src_repo), "-t": "ok"}
    args.update(dict(zip(override[::2], override[1::2], strict=True)))
    result = cli("run", *[part for pair in args.items() for part in pair], "do something")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not home.exists(), f"bad input wrote {list(home.rglob('*'))}"


def test_unknown_agent_exit_2(cli: Cli, home: Path, src_repo: Path) -> None:
    result = cli("run", "-a", "gpt", "-r", str(src_repo), "-t", "ok", "x")
    assert result.returncode == 2 and "unknown agent" in result.stderr
    assert not home.exists()


def test_repo_url_that_does_not_exist_writes_nothing(cli: Cli, home: Path, tmp_path: Path) -> None:
    (tmp_path / "served").mkdir()
    with GitHttpServer(root=tmp_path / "served", token="t0ken") as server:
        result = cli(
            "run",
            "-a",
            "claude",
            "-r",
            server.url("nope.git"),
            "-t",
            "x",
            "hello",
            env={"BATON_GIT_TOKEN": "t0ken", "ANTHROPIC_API_KEY": "never-used"},  # the agent never starts
        )
    assert result.returncode == 4, result.stderr  # a remote that cannot be reached
    assert "cannot reach repo" in result.stderr and "not found" in result.stderr
    assert not (home / "repos").exists() or not any((home / "repos").rglob("*.git"))
    assert not (home / "worktrees").exists()
    store = open_store(f"sqlite:///{home / 'baton.db'}")
    assert store.list_sessions() == [] and store.list_runs() == []
    store.close()


@pytest.mark.parametrize("agent", FAMILIES)  # the token is baton's (its askpass): one per family
def test_git_token_never_in_argv_logs_or_db(
    agent: str, baton_env: dict[str, str], home: Path, tmp_path: Path, model: MockModel
) -> None:
    token = "tok-" + os.urandom(8).hex()
    make_repo(tmp_path / "origin")
    served = tmp_path / "served"
    served.mkdir()
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(tmp_path / "origin"), str(served / "app.git")], check=True
    )
    subprocess.run(
        ["git", "-C", str(served / "app.git"), "config", "uploadpack.allowFilter", "true"], check=True
    )
    model.delay = 1.5
    seen_in_argv: list[str] = []
    with GitHttpServer(root=served, token=token) as server:
        proc = start(
            baton_env,
            "run",
            "-a",
            agent,
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
            time.sleep(0.02)  # the sampling period of this scan: no condition, it looks while git runs
        code, result = finish(proc)
        assert server.auth_attempts > 0, "the clone authenticated with the token"
    assert code == 0 and result["outcome"] == "succeeded", result
    assert seen_in_argv == []
    leaks = [p for p in home.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
    assert leaks == [], f"token written to {leaks}"


# -- prompts are never options, and any length arrives ----------------------------------------------


def test_hostile_prompts_reach_the_model_as_text(agent: str, hostile: Conversation) -> None:
    """A fresh turn and five resumed (delta) turns whose prompts start like options or commands
    (:func:`hostile`): none runs anything, each reaches the model verbatim (``/`` and, for Gemini, ``?``
    behind ``Instruction: ``), and the conversation keeps every turn."""
    for number, (prompt, result) in enumerate(zip(hostile.prompts, hostile.results, strict=True)):
        assert result["outcome"] == "succeeded", result
        assert result["mode"] == ("fresh" if number == 0 else "resume")
        assert prompt in hostile.last_texts[number], f"the model did not get {prompt!r}"
    assert not hostile.hooked, "a prompt was read as an option and its hook ran"
    first = FIRST[agent]
    assert hostile.counts[-1] == [first + 2 * i for i in range(len(hostile.prompts))]


def test_long_prompts_reach_the_model_whole(
    agent: str, settings: Settings, src_repo: Path, model: MockModel, tmp_path: Path
) -> None:
    """300 KB on a fresh turn, 2 MB on a resumed one, each beginning with the hook payload: they reach
    the model byte for byte, where one argv string would stop at 128 KiB. What a CLI cannot take is
    refused up front (BadInput, exit 2) and the largest it takes arrives whole: Codex takes at most
    1,048,576 characters, Gemini 256,000 bytes (it gives no reply beyond ~262,000 characters).
    Gemini under heavy load at times ends a long-prompt turn early (:class:`EndedEarly`): the scenario
    then runs again, in a new conversation, up to three times more, and must once pass whole (under
    four workers on two cores both the first and the second ended early, four seconds apart)."""
    adapter = get_agent(agent, settings)
    adapter.prepare_home(settings.ttl_days)
    model.configure_home(adapter.home)
    for attempt in range(1, GEMINI_ATTEMPTS + 1):
        try:
            long_prompt_turns(adapter, model, src_repo, tmp_path / f"attempt-{attempt}")
            return
        except EndedEarly:
            if agent != "gemini" or attempt == GEMINI_ATTEMPTS:
                raise


GEMINI_ATTEMPTS = 4  # each ending early (:class:`EndedEarly`); any other failure fails at once


def long_prompt_turns(adapter: Agent, model: MockModel, src_repo: Path, tmp: Path) -> None:
    """:func:`test_long_prompts_reach_the_model_whole`'s two turns, asserted on what the model got."""
    tmp.mkdir()
    agent, marker, counted = adapter.name, tmp / "pwned", len(model.history_counts())
    body = "log line with ünïcödé and a tab\t\n"
    big = hook_prompt(marker) + "\n" + body * (2_000_000 // len(body))
    first = hook_prompt(marker) + "\n" + body * (300_000 // len(body))
    limit = {"codex": 1_048_576, "gemini": 256_000 // 2}.get(agent)  # Gemini: bytes; ü is 2 of them
    if limit:
        with pytest.raises(BadInput, match="takes at most"):
            adapter.launch(Mode.RESUME, big, str(uuid.uuid4()))
        big = big[:limit]
        first = first[: min(len(first), limit)]
    turn = drive(adapter, Mode.FRESH, first, None, src_repo, tmp)
    assert prompt_in(first, model.texts()[-1]) and turn.session_id
    drive(adapter, Mode.RESUME, big, turn.session_id, src_repo, tmp)
    assert prompt_in(big, model.texts()[-1])
    assert model.history_counts()[counted:] == [FIRST[agent], FIRST[agent] + 2]
    assert not marker.exists()


def prompt_in(prompt: str, text: str) -> bool:
    return prompt in text or prompt.rstrip() in text  # a CLI may trim the trailing white space


def drive(adapter: Agent, mode: Mode, prompt: str, session: str | None, cwd: Path, tmp: Path) -> Turn:
    """One turn of the real CLI, as the runner starts it (argv, environment, prompt on stdin)."""
    launch = adapter.launch(mode, prompt, session)
    assert all(len(arg.encode()) < 4096 for arg in launch.argv), "the prompt is not in argv"
    turn = Turn()

    def on_line(line: str) -> None:
        adapter.read_event(line, turn)

    with RunLog(tmp / "log.jsonl") as log:
        result = run_process(
            launch.argv,
            {**os.environ, **launch.env},
            cwd,
            log,
            on_line,
            on_start=lambda pid: None,
            heartbeat=lambda: True,
            heartbeat_every=60,
            timeout=180,
            cancel=threading.Event(),
            kill_grace=1,
            stdin=launch.stdin,
        )
    if adapter.classify(result.exit_code, turn, result.stderr) == Outcome.SUCCEEDED:
        return turn
    # all of how the process ended (exit code, timeout, what was reaped, a callback's error) and its last
    # events: a failure must say which it was (a string: pytest cuts a repr short)
    ended = dataclasses.replace(result, stderr=result.stderr[-2000:])
    events = [line[:300] for line in (tmp / "log.jsonl").read_text(errors="replace").splitlines()[-6:]]
    said = f"{mode} {turn} {ended} {events}"
    if result.exit_code == 0 and turn.result is None and not turn.errors:
        raise EndedEarly(said)
    raise AssertionError(f"the turn did not succeed: {said}")


class EndedEarly(AssertionError):
    """The CLI exited 0 with neither a result nor an error event. Gemini does at times under heavy
    load, right after its ``init`` and user ``message`` events (seen 1 in 14 long-prompt scenarios at a
    load of 5 on 2 cores, never alone in 80): baton records such a turn as failed
    (docs/agent-clis.md)."""
