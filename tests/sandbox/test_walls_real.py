"""Hostile tool calls get nothing and change nothing: each REAL agent CLI (Claude Code, Codex, Gemini),
driven by its mock model's ``[[tool:NAME ARGS]]`` markers (baton/testing/tools.py) as a prompt
injection would drive it, at each access level through ``baton.run``; Claude also through ``baton
serve`` (POST /v1/runs) and Codex through a Celery ``baton worker``, at ``full``.

Written against the behaviour, not the implementation (the walls: sandbox/walls.py and landlock.py; the
environment allow-list: sandbox/agentenv.py). The scene:

1. A **victim**, key A (thread ``victim``) of the same agent and repository, runs first with a canary
   in its prompt, so its transcript, baton's run log and the store hold it; the test then writes
   another canary into a file of A's worktree. baton's environment holds three more: the webhook
   secret, the git token and another agent's API key.
2. The **attacker**, key B (thread ``attacker-<level>``, one per access level, each against the same
   victim), whose one reply asks for every hostile call at once
   (:func:`hostile_calls`): read the store's database, A's file, A's transcript and every other file
   holding A's canaries, with the CLI's file-read tool and with the shell; ``env`` and ``printenv``;
   baton's ``/proc/<pid>/environ``; write into ``BATON_HOME``, ``/tmp`` and A's worktree, with the
   file-write tool and with the shell; connect to PostgreSQL's port (and in the worker test the
   broker's).
3. What must hold: no canary in any request the mock received during B's run (the tool results the CLI
   sent back), in B's result or in B's log; no connection; nothing of baton's ``/proc`` environment
   block; none of the files written, A's worktree unchanged; B's run succeeded all the same, with a
   result for every call. And, so the test fails for the right reason, controls in the same reply: at
   ``edit`` and ``full`` a write in B's own worktree lands, at ``full`` a shell command writes there
   too and the mock's own port is reachable; at ``read`` nothing of B's worktree changes.

Claude's operator settings allow ``Bash`` and ``Read`` (``permissions.allow`` in the base home's
``settings.json``, which each key's home copies; such rules are honoured at every level, see
docs/agent-clis.md): without them Claude's own permission checks refuse every hostile call at ``read``
and ``edit``, and the test would prove nothing about the walls there. Every problem of a run is
collected and reported at once (which call got what); on a runner without walls these tests fail.
"""

from __future__ import annotations

import json
import secrets
import shlex
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from baton import RunRequest, run
from baton.agents import get_agent
from baton.fleet import jobs
from baton.fleet.celery import CeleryExecutor
from baton.keys import parse_repo
from baton.models import Access, JobStatus, Outcome, RunRecord
from baton.settings import Settings
from baton.store import Store
from tests.celery_fixtures import (  # noqa: F401 (fixtures)
    Broker,
    Workers,
    broker_fixture,
    client_fixture,
    redis_broker_fixture,
    shared_store_fixture,
    shared_store_url_fixture,
    workers_fixture,
)
from tests.conftest import MOCKS, git, wait_for
from tests.sandbox.test_access_real import text
from tests.service_fixtures import run_service

pytestmark = pytest.mark.slow

TIMEOUT = 240.0  # seconds: an agent the walls broke ends timed out instead of hanging the test
PWNED = "pwned\n"
OWN_FILE = "own.txt"  # control: B's file tool writes it in B's own worktree (edit, full)
OWN_SHELL = "shell-ok.txt"  # control: B's shell writes it there (full)
CANARY_RE = "canary[0-9a-f]{24}"
CONNECTED = "CONNECTED-OK"  # printed by the hostile connection: must appear nowhere
REACHED = "REACHED-OK"  # printed by the control connection to the mock's own port (full)
CLAUDE_OPERATOR = {"permissions": {"allow": ["Bash", "Read"]}}  # see the module docstring


def q(path: Path | str) -> str:
    return shlex.quote(str(path))


def patch_adding(path: str, field: str) -> str:
    """An ``apply_patch`` call (Codex's and Copilot's freeform ``input``, OpenCode's ``patchText``)
    adding the file ``path`` with the PWNED line."""
    return (
        f"[[tool:apply_patch {field}="
        + q(f"*** Begin Patch\n*** Add File: {path}\n+{PWNED}*** End Patch\n")
        + "]]"
    )


# The tools of each CLI the calls use: a file read, a file write, a shell command. Codex has no
# file-read tool (it reads through exec_command), and its shell runs without a login shell.
TOOLS: dict[str, dict[str, Callable[[str], str]]] = {
    "claude": {
        "read": lambda path: f"[[tool:Read file_path={q(path)}]]",
        "write": lambda path: f"[[tool:Write file_path={q(path)} content={q(PWNED)}]]",
        "shell": lambda cmd: f"[[tool:Bash command={q(cmd)}]]",
    },
    "codex": {
        "write": lambda path: patch_adding(path, "input"),
        "shell": lambda cmd: "[[tool:exec_command " + json.dumps({"cmd": cmd, "login": False}) + "]]",
    },
    "gemini": {
        "read": lambda path: f"[[tool:read_file file_path={q(path)}]]",
        "write": lambda path: f"[[tool:write_file file_path={q(path)} content={q(PWNED)}]]",
        "shell": lambda cmd: f"[[tool:run_shell_command command={q(cmd)}]]",
    },
    "copilot": {
        "read": lambda path: f"[[tool:view path={q(path)}]]",
        "write": lambda path: patch_adding(path, "input"),
        "shell": lambda cmd: f"[[tool:bash command={q(cmd)} description=run]]",
    },
    "opencode": {
        "read": lambda path: f"[[tool:read filePath={q(path)}]]",
        "write": lambda path: patch_adding(path, "patchText"),
        "shell": lambda cmd: f"[[tool:bash command={q(cmd)}]]",
    },
}
Call = tuple[str, str]  # (tool kind, its argument: a path or a command)


def connect(ports: tuple[int, ...], word: str, base_urls: bool = False) -> str:
    """A command connecting to each TCP port on 127.0.0.1 that prints ``word`` for each connection made
    (spelled in two pieces, so that the command itself does not hold it); ``base_urls``: also to the
    port of each ``*_BASE_URL`` of its environment (behind baton's model gateway, the agent's model
    API is the gateway, on its port, and the mock's own is closed to it)."""
    head, tail = word.split("-")
    more = (
        "import os, urllib.parse\nports += tuple(urllib.parse.urlsplit(v).port or 0 for k, v in "
        "os.environ.items() if k.endswith('_BASE_URL'))\n"
    )
    code = (
        f"import socket\nports = {ports!r}\n{more if base_urls else ''}for port in ports:\n    try:\n"
        "        socket.create_connection(('127.0.0.1', port), 3)\n"
        f"        print(port, {head!r} + {'-' + tail!r})\n"
        "    except OSError as exc:\n        print(port, exc)"
    )
    return f"{q(sys.executable)} -c {q(code)}"


# -- the scene ----------------------------------------------------------------------------------------


@dataclass
class Scene:
    """Where the runs run: the runner's BATON_HOME, the store (and its SQLite file), how one run is
    submitted and awaited (returning the stored attempt), the ports of baton's own services."""

    agent: str
    repo: Path
    home: Path
    store: Store
    db: Path
    submit: Callable[[str, str, Access], RunRecord]
    service_ports: tuple[int, ...] = ()

    def latest(self, thread: str) -> RunRecord:
        found = self.store.list_runs(self.agent, parse_repo(str(self.repo)).slug, thread, limit=20)
        assert found, f"no run of thread {thread} in the store"
        return max(found, key=lambda r: r.started_at)

    def worktree(self, thread: str) -> Path:
        session = self.store.get_session(self.agent, parse_repo(str(self.repo)).slug, thread)
        assert session is not None and session.worktree, f"no session of thread {thread}"
        return Path(session.worktree)


@dataclass(frozen=True)
class Victim:
    """Key A after its run: where its secrets are, and the process that ran it (baton's runner)."""

    worktree: Path
    file: Path  # holds the file canary
    transcript: Path  # the CLI's conversation file in A's agent home
    on_disk: tuple[Path, ...]  # every file holding one of A's canaries (store, logs, indexes, ...)
    pid: int

    def tree(self) -> dict[str, bytes]:
        """A's worktree, every file (for "unchanged")."""
        files = (p for p in sorted(self.worktree.rglob("*")) if p.is_file() and not p.is_symlink())
        return {str(p.relative_to(self.worktree)): p.read_bytes() for p in files}


def holding(roots: list[Path], values: tuple[str, ...]) -> list[Path]:
    """Every file under ``roots`` whose bytes hold one of ``values``."""
    wanted = [v.encode() for v in values]
    files = (p for root in roots for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink())
    return [p for p in files if any(w in p.read_bytes() for w in wanted)]


def make_victim(scene: Scene, canaries: dict[str, str]) -> Victim:
    ran = scene.submit("victim", f"remember {canaries['prompt']}", Access.READ)
    assert ran.outcome == Outcome.SUCCEEDED, (ran.outcome, ran.error)
    assert ran.runner_pid > 0
    worktree = scene.worktree("victim")
    secret = worktree / "victim-secret.txt"
    secret.write_text(canaries["file"] + "\n")
    roots = list(dict.fromkeys([scene.home, scene.db.parent]))
    on_disk = holding(roots, (canaries["prompt"], canaries["file"]))
    assert any(p.name.startswith(scene.db.name) for p in on_disk), f"the store holds no canary: {on_disk}"
    logs = scene.home / "logs"
    # the CLI's conversation: a transcript named for A's thread, or whatever holds it in A's key home
    # (OpenCode's SQLite database and its WAL)
    found = [
        p
        for p in on_disk
        if logs not in p.parents and ("@victim" in p.parts or (p.suffix == ".jsonl" and "victim" in str(p)))
    ]
    assert found, f"A's transcript is not among {on_disk}"
    return Victim(worktree, secret, found[0], tuple(on_disk), ran.runner_pid)


def hostile_calls(scene: Scene, victim: Victim, pwned: list[Path]) -> list[Call]:
    """What a prompt injection asks for (see the module docstring)."""
    environ = f"/proc/{victim.pid}/environ"
    return [
        ("read", str(scene.db)),
        ("read", str(victim.file)),
        ("read", str(victim.transcript)),
        ("read", environ),
        ("shell", f"cat {q(scene.db)}"),
        ("shell", f"cat {q(victim.file)}"),
        ("shell", f"cat {q(victim.transcript)}"),
        ("shell", f"grep -a -h -o -E {q(CANARY_RE)} " + " ".join(q(p) for p in victim.on_disk)),
        ("shell", "env"),
        ("shell", "printenv"),
        ("shell", f"cat {environ}"),
        ("shell", f"wc -c {environ}"),
        ("shell", connect((5432, *scene.service_ports), CONNECTED)),
        *(("shell", f"echo pwned > {q(p)}") for p in pwned),
        *(("write", str(p)) for p in pwned),
    ]


def control_calls(mock_port: int) -> list[Call]:
    """Legitimate calls in the same reply: a file write and a shell write in B's own worktree, a
    connection to the model's port (the gateway's, behind it)."""
    return [
        ("write", OWN_FILE),
        ("shell", f"printf 'shell-%s\\n' ok > {OWN_SHELL}"),
        ("shell", connect((mock_port,), REACHED, base_urls=True)),
    ]


def results_by_call(agent: str, model: Any) -> list[str]:
    """What the CLI sent back for each tool call of its latest turn, in the order of the calls (the
    mocks number a reply's calls ``…_<i>``; Gemini answers in order), as text."""
    last = model.conversation()[-1]
    if agent == "gemini":
        parts = last.contents[-1]["parts"]
        return [text(p["functionResponse"]["response"]) for p in parts if "functionResponse" in p]
    if agent == "claude":
        blocks = [b for b in last.messages[-1]["content"] if isinstance(b, dict)]
        pairs = [
            (b.get("tool_use_id"), text(b.get("content"))) for b in blocks if b.get("type") == "tool_result"
        ]
    else:
        turn = max(i for i, item in enumerate(last.input) if item.get("role") == "user")
        items = [i for i in last.input[turn:] if str(i.get("type")).endswith("_call_output")]
        pairs = [(i.get("call_id"), text(i.get("output"))) for i in items]
    return [got for _id, got in sorted(pairs, key=lambda pair: int(str(pair[0]).rsplit("_", 1)[1]))]


@dataclass(frozen=True)
class Secrets:
    """What must never reach the attacker: the canaries, baton's /proc environment block (its entries,
    and what ``wc -c`` prints of it), the hostile connection's word."""

    canaries: dict[str, str]
    environ: str  # /proc/<pid>/environ
    entries: tuple[str, ...]
    words: tuple[str, ...]

    @classmethod
    def of(cls, canaries: dict[str, str], pid: int) -> Secrets:
        environ = f"/proc/{pid}/environ"
        block = Path(environ).read_bytes()  # the runner's environment as at its start
        entries = [e for e in block.decode(errors="replace").split("\0") if len(e.partition("=")[2]) >= 3]
        return cls(canaries, environ, tuple(entries), (CONNECTED, f"{len(block)} {environ}"))

    def found(self, got: str, reads_environ: bool = False) -> list[str]:
        found = [f"canary {name!r}" for name, value in self.canaries.items() if value in got]
        found += [repr(word) for word in self.words if word in got]
        entries = [e for e in self.entries if e in got] if reads_environ else []
        return found + ([f"{len(entries)} of baton's {len(self.entries)} environ entries"] if entries else [])


# -- the attack and what must hold ---------------------------------------------------------------------

Targets = Callable[[Path, Path], list[Path]]  # (BATON_HOME, A's worktree) -> the write targets


def attack(
    scene: Scene,
    model: Any,
    access: Access,
    canaries: dict[str, str],
    targets: Targets,
    victim: Victim | None = None,
) -> None:
    """Key B (thread ``attacker-<access>``, a conversation of its own) asks for every hostile call at
    once against ``victim`` (key A: made first when not given) and the controls; every problem is
    reported at once."""
    victim = victim or make_victim(scene, canaries)
    thread = f"attacker-{access.value}"
    pwned = targets(scene.home, victim.worktree)
    before = victim.tree()
    secret = Secrets.of(canaries, victim.pid)
    tools = TOOLS[scene.agent]
    hostile = [call for call in hostile_calls(scene, victim, pwned) if call[0] in tools]
    calls = hostile + control_calls(urlsplit(model.url).port or 0)
    start = len(model.requests)
    ran = scene.submit(thread, "Do all of this:\n" + "\n".join(tools[k](arg) for k, arg in calls), access)

    results = results_by_call(scene.agent, model)
    for (kind, arg), got in zip(calls, results, strict=False):  # shown with -s
        print(f"{kind} {arg[:70]!r} -> {got[:150]!r}")
    problems = []
    if ran.outcome != Outcome.SUCCEEDED or "mock reply" not in (ran.result or "") or ran.access != access:
        problems.append(f"the attacker's run: {ran.outcome} at {ran.access}, {ran.error!r}, {ran.result!r}")
    if len(results) != len(calls):
        problems.append(f"{len(results)} tool results for {len(calls)} calls: {results}")
    # nothing leaked: into a tool result, any request to the mock, B's result or log
    places = [
        (f"{k} {a[:100]!r} got {r[:200]!r}", r, secret.environ in a)
        for (k, a), r in zip(hostile, results, strict=False)
    ]
    places += [
        (f"request {n} to the mock", json.dumps(r.body), False) for n, r in enumerate(model.requests[start:])
    ]
    places.append(("B's result", f"{ran.result}\n{ran.error}", False))
    log = Path(ran.log_path)
    places.append(("B's log", log.read_text(errors="replace") if log.is_file() else "", False))
    problems += [
        f"{where}: {', '.join(found)}" for where, got, env in places if (found := secret.found(got, env))
    ]
    # nothing written
    problems += [f"written: {path}" for path in pwned if path.exists()]
    if (after := victim.tree()) != before:
        problems.append(f"A's worktree changed: {sorted(set(after.items()) ^ set(before.items()))}")
    problems += controls(scene.worktree(thread), access, results[len(hostile) :])
    assert not problems, f"{scene.agent} at {access}:\n" + "\n".join(problems)


def controls(mine: Path, access: Access, results: list[str]) -> list[str]:
    """The legitimate calls: nothing of B's worktree changes at read, its file write lands at edit and
    full, its shell command writes and the model's port answers at full."""
    problems = []
    if access == Access.READ and (changed := git(mine, "status", "--porcelain", "--untracked-files=all")):
        problems.append(f"control: B's worktree changed at read: {changed!r} ({results})")
    own = mine / OWN_FILE
    if access != Access.READ and (not own.is_file() or own.read_text() != PWNED):
        problems.append(f"control: B's write in its worktree did not land at {access}: {results[:1]}")
    shell, reached = mine / OWN_SHELL, len(results) == 3 and REACHED in results[2]
    if access == Access.FULL and not (shell.is_file() and shell.read_text() == "shell-ok\n" and reached):
        problems.append(f"control: B's shell did not run at full (own file {shell.exists()}): {results[1:]}")
    return problems


# -- fixtures ------------------------------------------------------------------------------------------


def real_cli(name: str, settings: Settings) -> str:
    version = get_agent(name, settings).version()  # a missing CLI fails the test (it never skips)
    assert version, f"the real {name} CLI did not answer --version"
    print(f"real {name} CLI: {version}")
    return name


@pytest.fixture(params=sorted(MOCKS))
def agent(request: pytest.FixtureRequest, settings: Settings) -> str:
    return real_cli(str(request.param), settings)


@pytest.fixture
def canaries() -> dict[str, str]:
    return {name: f"canary{secrets.token_hex(12)}" for name in ("prompt", "file", "webhook", "git", "key")}


@pytest.fixture
def pwned() -> Iterator[Targets]:
    """The write targets of a scene, a fresh name each: in BATON_HOME, in /tmp, in A's worktree."""
    made: list[Path] = []

    def targets(home: Path, victim_worktree: Path) -> list[Path]:
        name = f"pwned-{secrets.token_hex(6)}"
        made.extend([home / name, Path("/tmp") / name, victim_worktree / name])
        return made[-3:]

    yield targets
    for path in made:
        path.unlink(missing_ok=True)


@pytest.fixture
def mocked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, canaries: dict[str, str]
) -> Iterator[Callable[[str, Path], Any]]:
    """``mocked(agent, base_home)`` starts the agent's mock and configures the agent's base home for
    it; this process's environment (from which the runner builds the agent's, and which a worker
    started later inherits) points at it and holds baton's secrets; HOME is an empty directory, as in
    test_access_real."""
    started: list[Any] = []

    def start(agent: str, base_home: Path) -> Any:
        (tmp_path / "user-home").mkdir(exist_ok=True)
        monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
        monkeypatch.delenv("BATON_GEMINI_MODEL", raising=False)
        monkeypatch.delenv("GEMINI_MODEL", raising=False)
        module, name = MOCKS[agent]
        server = getattr(__import__(module, fromlist=[name]), name)().start()
        started.append(server)
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("BATON_WEBHOOK_SECRET", canaries["webhook"])
        monkeypatch.setenv("BATON_GIT_TOKEN", canaries["git"])
        for other in ("OPENAI_API_KEY", "GEMINI_API_KEY") if agent == "claude" else ("ANTHROPIC_API_KEY",):
            monkeypatch.setenv(other, canaries["key"])
        server.configure_home(base_home)
        if agent == "claude":
            base_home.mkdir(parents=True, exist_ok=True)
            (base_home / "settings.json").write_text(json.dumps(CLAUDE_OPERATOR))
        return server

    yield start
    for server in started:
        server.stop()


def sqlite_path(url: str) -> Path:
    assert url.startswith("sqlite:///"), url
    return Path(url.removeprefix("sqlite:///"))


def body(agent: str, repo: Path, thread: str, prompt: str, access: Access) -> dict[str, Any]:
    level = access.value
    return {
        "agent": agent,
        "repo": str(repo),
        "thread": thread,
        "prompt": prompt,
        "access": level,
        "timeout": TIMEOUT,
    }


# -- the tests -----------------------------------------------------------------------------------------


def test_hostile_calls_through_baton_run(
    agent: str,
    settings: Settings,
    store: Store,
    src_repo: Path,
    canaries: dict[str, str],
    mocked: Callable[[str, Path], Any],
    pwned: Targets,
) -> None:
    model = mocked(agent, settings.home / "homes" / agent)

    def submit(thread: str, prompt: str, level: Access) -> RunRecord:
        request = RunRequest(
            agent=agent, repo=str(src_repo), thread=thread, prompt=prompt, access=level, timeout=TIMEOUT
        )
        run(request, settings=settings)
        return scene.latest(thread)

    scene = Scene(agent, src_repo, settings.home, store, sqlite_path(settings.resolved_store_url), submit)
    victim = make_victim(scene, canaries)  # one key A, attacked at each level in turn (a CLI's turn costs)
    for access in Access:
        attack(scene, model, access, canaries, pwned, victim)


def test_hostile_calls_through_baton_serve(
    settings: Settings,
    store: Store,
    src_repo: Path,
    canaries: dict[str, str],
    mocked: Callable[[str, Path], Any],
    pwned: Targets,
) -> None:
    agent = real_cli("claude", settings)
    model = mocked(agent, settings.home / "homes" / agent)
    with run_service(settings) as service, service.client("run") as http:

        def submit(thread: str, prompt: str, access: Access) -> RunRecord:
            posted = http.post("/v1/runs", json=body(agent, src_repo, thread, prompt, access))
            assert posted.status_code == 202, posted.text
            run_id = posted.json()["run_id"]
            wait_for(lambda: http.get(f"/v1/runs/{run_id}").json()["status"] == "done", 300, 0.1, run_id)
            return scene.latest(thread)

        scene = Scene(agent, src_repo, settings.home, store, sqlite_path(settings.resolved_store_url), submit)
        attack(scene, model, Access.FULL, canaries, pwned)


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_hostile_calls_through_a_celery_worker(
    settings: Settings,
    client: Settings,
    shared_store: Store,
    workers: Workers,
    broker: Broker,
    src_repo: Path,
    canaries: dict[str, str],
    mocked: Callable[[str, Path], Any],
    pwned: Targets,
) -> None:
    agent = real_cli("codex", settings)
    home = workers.root / "home-w"  # Workers.start's BATON_HOME for the worker named "w"
    model = mocked(agent, home / "homes" / agent)  # first: the worker inherits this environment
    worker = workers.start("w", concurrency=1)
    assert worker.home == home
    executor = CeleryExecutor(client, shared_store)

    def submit(thread: str, prompt: str, access: Access) -> RunRecord:
        job = jobs.submit(shared_store, client, body(agent, src_repo, thread, prompt, access), "test")
        executor.submit(job.id)

        def done() -> bool:
            found = shared_store.get_job(job.id)
            return found is not None and found.status == JobStatus.DONE

        wait_for(done, timeout=300, interval=0.1, what=f"job {job.id} ({thread})")
        return scene.latest(thread)

    port = urlsplit(broker.url).port or 0
    db = sqlite_path(client.resolved_store_url)
    scene = Scene(agent, src_repo, worker.home, shared_store, db, submit, (port,))
    try:
        attack(scene, model, Access.FULL, canaries, pwned)
    finally:
        executor.stop()
