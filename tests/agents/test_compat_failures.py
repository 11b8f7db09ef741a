"""The resume-fidelity matrix: failure events between two turns of one conversation, for each real CLI
against its mock model server (``make compat`` runs it per release column, as tests/agents/test_compat.py;
CI the pinned column), written into docs/compat.md's second table per agent.

One key per agent lives through every event in turn (the set-up is shared: one first turn, then each
event and the turn after it), and each event's turn is judged on its own (:func:`judge`):

- ✔ ``ok``: the turn resumed the key's conversation (the same session id in and out) and its request to
  the model held the words of every earlier turn answered (the history was whole);
- ↻ ``recap``: baton recovered into a new conversation on purpose, said why on the run's note, and the
  request carried the recap (the first turn's words): the promised degraded path;
- ✘ ``fail``: anything else, with the reason.

Each cell goes into ``$BATON_COMPAT_EVENTS/<agent>.json`` for bench/compat.py, when that is set. The test
fails when a cell is not what :data:`EXPECTED` says (a ✘ fixed, as much as a ✔ lost, is a change to
record) or when a run broke the invariant :func:`never_silently_fresh` checks over the key's runs.
``BATON_COMPAT_FROM_<AGENT>`` / ``BATON_COMPAT_TO_<AGENT>`` pick the releases as in test_compat.py: the
first turn runs under FROM, every later one under TO (so in an *older* column every event also crosses
the upgrade).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import pytest

from baton import Mode, Outcome, PromptKind, RunRequest, RunResult, open_store, run
from baton.agents import AGENTS
from baton.keys import Key, make_key
from baton.models import RunRecord
from baton.settings import Settings
from baton.testing import MockModel, mock_anthropic, mock_gemini, mock_openai
from baton.testing._http import MockServer, Refusal
from baton.workspace.keyspace import agent_for, key_home
from tests.agents.test_compat import binary
from tests.conftest import BATON, MOCKS, gone, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.compat]

EVENTS = (
    "upgrade",  # the next turn under another release (the column's TO; the pinned column: the same)
    "sigkill",  # the `baton run` process killed -9 mid-turn, then the next turn
    "home_wiped",  # the key's agent home removed between turns
    "moved",  # the next turn on another machine: a second BATON_HOME on the same store
    "provider",  # the next turn against another model server (the provider's address changed)
    "race",  # two `baton run` of the key at once: one runs, the other is refused (the key's lease)
    "usage_limit",  # the turn refused by a spent quota, then the next turn after the reset
    "truncated",  # the transcript cut mid-line between turns
    "corrupted",  # garbage bytes written over the middle of the transcript between turns
)
MARK = "FIRST-TURN-MARK-q7"  # the first turn's words: every carried-on request must hold them
QUOTA = "You exceeded your current quota, please check your plan and billing details."


@dataclass(frozen=True)
class Cell:
    """One event's outcome for the matrix."""

    status: str  # ok | recap | fail | n/a
    mode: str = ""  # resume | hydrate+resume | recover | fresh | …
    session_in: str | None = None
    session_out: str | None = None
    whole: bool = False  # the turn's request held the first turn's words
    note: str = ""
    reason: str = ""  # a fail's why (and what baton did instead); an ok's detail


# What each cell is today (pinned column). A ✘ here is measured, with its reason in docs/compat.md:
# baton judges a local transcript by its size and first line (runner/decide.py, ``_damage``), so
# garbage further in, or a database cut short (OpenCode's: the header is intact), is resumed as it
# is: Codex then drops the history before the garbage, Copilot and OpenCode fail to load it.
EXPECTED: dict[str, dict[str, str]] = {agent: dict.fromkeys(EVENTS, "ok") for agent in MOCKS}
EXPECTED_NA = {"upgrade"}  # n/a in a column without an upgrade (FROM and TO the same binary)


@pytest.fixture(params=sorted(MOCKS))
def agent(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class Chain:
    """The key every event happens to, and what a turn needs: the machine (settings), the model server
    its requests reach, the environment a `baton` process is started with."""

    agent: str
    repo: Path
    settings: Settings
    model: MockModel
    env: dict[str, str]
    monkeypatch: pytest.MonkeyPatch
    thread: str = "events"
    session: str | None = None  # the key's conversation before the event
    asked: list[str] = field(default_factory=list)  # the instructions of the turns answered so far

    def request(self, prompt: str) -> RunRequest:
        return RunRequest(agent=self.agent, repo=str(self.repo), thread=self.thread, prompt=prompt)

    def turn(self, prompt: str, end: str = "TO") -> RunResult:
        settings = self.settings.with_(**{f"{self.agent}_bin": binary(self.agent, end)})
        return run(self.request(prompt), settings=settings)

    def key(self) -> Key:
        return make_key(self.agent, str(self.repo), self.thread, AGENTS)

    def transcript_files(self) -> list[Path]:
        """The files of the key's conversation, as its agent lists them."""
        assert self.session
        return agent_for(self.key(), self.settings).transcript_files(self.session)

    def transcript(self) -> Path:
        """The conversation's log: the largest of its transcript files that is one (JSON lines, or
        OpenCode's database itself: not Copilot's workspace.yaml, nor OpenCode's WAL beside it)."""
        logs = [p for p in self.transcript_files() if p.suffix in (".jsonl", ".json", ".db")]
        return max(logs, key=lambda p: p.stat().st_size)

    def transcript_holds(self, words: str) -> bool:
        """Whether any of the conversation's files holds ``words`` (a database: its bytes)."""
        return any(words in p.read_text(errors="replace") for p in self.transcript_files() if p.is_file())

    def last_run(self) -> RunRecord:
        store = open_store(self.settings.resolved_store_url)
        try:
            return store.list_runs(self.agent, limit=1)[0]
        finally:
            store.close()

    def run_record(self, run_id: str) -> RunRecord:
        store = open_store(self.settings.resolved_store_url)
        try:
            record = store.get_run(run_id)
        finally:
            store.close()
        assert record is not None, run_id
        return record

    def key_home(self) -> Path:
        return key_home(self.settings, self.key())

    def start(self, *args: str) -> subprocess.Popen[str]:
        command = [*BATON, "run", "-a", self.agent, "-r", str(self.repo), "-t", self.thread, "--json", *args]
        return subprocess.Popen(
            command,
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )


def sent(model: MockModel, words: str) -> str | None:
    """The last conversation request that held ``words``."""
    return next((t for t in reversed(model.texts()) if words in t), None)


def judge(chain: Chain, record: RunRecord, prompt: str) -> Cell:
    """The cell of a turn after an event (its instruction ``prompt``)."""
    before = chain.session
    hydrated = record.mode == Mode.RESUME and "hydrated" in str(record.note)
    mode = "hydrate+resume" if hydrated else record.mode.value
    request = sent(chain.model, prompt)
    missing = [p for p in chain.asked if request is None or p not in request]
    whole = request is not None and MARK in request
    cell = Cell("fail", mode, record.session_id_in, record.session_id_out, whole, record.note or "")
    if record.session_id_out:
        chain.session = record.session_id_out
    if record.outcome != Outcome.SUCCEEDED:
        return replace(cell, reason=f"the turn ended {record.outcome.value}: {record.error}")
    if request is None:
        return replace(cell, reason="the turn's instruction never reached the model")
    chain.asked.append(prompt)
    resumed = record.mode == Mode.RESUME and record.session_id_in == before
    if resumed and record.session_id_out == before:
        if whole and not missing:
            return replace(cell, status="ok")
        lost = ", ".join(repr(p[:40]) for p in missing)
        return replace(cell, reason=f"resumed the conversation, but its request lacked earlier turns: {lost}")
    if record.mode == Mode.RECOVER and record.prompt_kind == PromptKind.RECAP and record.note and whole:
        return replace(cell, status="recap", reason=record.note)
    return replace(
        cell, reason=f"a new conversation ({mode}, {record.prompt_kind.value}) not the key's {before}"
    )


def broken(reason: str) -> Cell:
    return Cell("fail", reason=reason)


# -- the events -------------------------------------------------------------------------------------------


def upgrade(chain: Chain) -> Cell:
    if not binary(chain.agent, "FROM") and not binary(chain.agent, "TO"):
        # the pinned column: no upgrade to cross, so no turn (it would be an ordinary resume, which
        # every later event's turn is judged on as well)
        return Cell("n/a", reason="no upgrade in this column")
    prompt = "after the upgrade: what did I say first?"
    cell = judge(chain, chain.turn(prompt).run, prompt)
    same = binary(chain.agent, "FROM") == binary(chain.agent, "TO")
    return (
        replace(cell, status="n/a", reason="no upgrade in this column")
        if same and cell.status == "ok"
        else cell
    )


def sigkill(chain: Chain) -> Cell:
    """``baton run`` killed -9 mid-turn, once the CLI has written the prompt to its transcript (as it
    has by then): the run is ``crashed``, the agent dies with it, and the next turn resumes the same
    conversation telling the agent which turn was cut short."""
    chain.model.delay = 120
    runner = chain.start("KILLED-TURN-zebra")
    try:
        wait_for(lambda: sent(chain.model, "KILLED-TURN-zebra"), 90, what="the killed turn's request")
        wait_for(lambda: chain.transcript_holds("KILLED-TURN-zebra"), 60, what="the prompt in the transcript")
        running = chain.last_run()
        assert running.outcome == Outcome.RUNNING and running.agent_pid, running
        os.kill(runner.pid, signal.SIGKILL)
    finally:
        runner.kill()
        runner.communicate(timeout=30)
        chain.model.delay = 0
    wait_for(lambda: gone(running.agent_pid or 0), 30, what="the agent to die with its runner")
    prompt = "after the kill: carry on"
    result = chain.turn(prompt)
    cell = judge(chain, result.run, prompt)
    crashed = chain.run_record(running.id)
    told = sent(chain.model, prompt) or ""
    wrong = []
    if crashed.outcome != Outcome.CRASHED:
        wrong.append(f"the killed run ended {crashed.outcome.value}, not crashed")
    if result.run.prompt_kind != PromptKind.INTERRUPTED or not all(
        words in told for words in ("KILLED-TURN-zebra", "interrupted (crashed)")
    ):
        wrong.append("resumed without telling the agent its turn was cut short")
    if result.run.session_id_in != crashed.session_id_in:
        wrong.append("the resumed conversation is not the killed run's")
    if cell.status == "ok" and wrong:
        return replace(cell, status="fail", reason="; ".join(wrong))
    return cell


def home_wiped(chain: Chain) -> Cell:
    shutil.rmtree(chain.key_home())
    prompt = "after the wipe: what did I say first?"
    return judge(chain, chain.turn(prompt).run, prompt)


def moved(chain: Chain, machine: Path) -> Cell:
    chain.settings = chain.settings.with_(home=machine, store_url=chain.settings.resolved_store_url)
    chain.env = {**chain.env, "BATON_HOME": str(machine), "BATON_STORE_URL": chain.settings.store_url}
    chain.model.configure_home(machine / "homes" / chain.agent)  # the operator's set-up of that machine
    prompt = "on the other machine: what did I say first?"
    return judge(chain, chain.turn(prompt).run, prompt)


def provider(chain: Chain, other: MockModel) -> Cell:
    for name, value in other.env().items():
        chain.monkeypatch.setenv(name, value)
    chain.env = {**chain.env, **other.env()}
    other.configure_home(chain.settings.home / "homes" / chain.agent)
    chain.model = other
    prompt = "with the other provider: what did I say first?"
    return judge(chain, chain.turn(prompt).run, prompt)


def race(chain: Chain) -> Cell:
    chain.model.delay = 120  # the winner holds the key's lease until the other run has ended
    procs = {w: chain.start("--wait", "0", f"RACER-{w} what did I say first?") for w in ("a", "b")}
    try:
        wait_for(lambda: any(p.poll() is not None for p in procs.values()), 90, what="a run to end")
        chain.model.released.set()
        outs = {w: p.communicate(timeout=180) for w, p in procs.items()}
    finally:
        chain.model.released.set()
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.communicate()
        chain.model.delay = 0
        chain.model.released.clear()
    codes = {w: procs[w].returncode for w in procs}
    ran = [w for w in procs if codes[w] == 0]
    refused = [w for w in procs if codes[w] == 3 and "busy" in outs[w][1]]
    if len(ran) != 1 or len(refused) != 1:
        detail = {w: (codes[w], outs[w][1].strip()[-200:]) for w in procs}
        return broken(f"not one run and one refusal: {detail}")
    (winner,), (loser,) = ran, refused
    if sent(chain.model, f"RACER-{loser}"):
        return broken("the refused run's instruction reached the model")
    record = chain.run_record(str(json.loads(outs[winner][0])["attempt_id"]))
    cell = judge(chain, record, f"RACER-{winner}")
    return replace(cell, reason=f"the other run exited 3: {outs[loser][1].strip().splitlines()[-1][:120]}")


def refusal(agent: str) -> Refusal:
    resets_at = int(time.time() + 3600)
    if agent == "claude":
        return mock_anthropic.usage_limit(resets_at)
    if agent == "codex":
        return mock_openai.usage_limit(resets_at)
    if agent == "gemini":
        return mock_gemini.quota_exhausted(43)
    body = {"error": {"message": QUOTA, "type": "insufficient_quota", "code": "insufficient_quota"}}
    # the ACP CLIs retry a 429 five times before they give up (~60 s by their own backoff): told to
    # retry at once, they give up as soon (the words baton reads are the same)
    return Refusal(429, body, {"retry-after": "0", "retry-after-ms": "0"})


def usage_limit(chain: Chain) -> Cell:
    if chain.agent == "claude":  # the rate_limit_event is a subscription login's (an API key's 429 has none)
        chain.monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
        chain.monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", "mock-oauth-token")
    server = cast("MockServer[Any]", chain.model)  # every mock is one (MockModel does not say so)
    server.refusal = refusal(chain.agent)
    try:
        limited = chain.turn("LIMITED-TURN-okapi")
    finally:
        server.refusal = None
    chain.session = limited.run.session_id_out or chain.session
    store = open_store(chain.settings.resolved_store_url)
    try:  # the reset has come (the test does not wait for it)
        for held in store.list_quotas():
            store.save_quota(replace(held, resets_at=time.time()))
    finally:
        store.close()
    prompt = "after the reset: carry on"
    cell = judge(chain, chain.turn(prompt).run, prompt)
    if limited.run.outcome == Outcome.RATE_LIMITED:
        return cell
    said = f"the refused turn ended {limited.run.outcome.value}, not rate_limited: {limited.run.error}"
    return replace(cell, reason="; ".join(filter(None, (cell.reason, said))))


def truncated(chain: Chain) -> Cell:
    path = chain.transcript()
    data = path.read_bytes()
    cut = data.rstrip(b"\n").rfind(b"\n") + 1  # the last line's start
    end = cut + max(1, (len(data) - cut) // 2) if path.suffix != ".db" else len(data) // 2
    path.write_bytes(data[:end])  # mid-line (a database: cut in half)
    prompt = "after the cut: what did I say first?"
    return judge(chain, chain.turn(prompt).run, prompt)


def corrupted(chain: Chain) -> Cell:
    path = chain.transcript()
    data = bytearray(path.read_bytes())
    start, size = len(data) // 3, max(1, len(data) // 3)
    data[start : start + size] = bytes((i * 37 + 11) % 256 for i in range(size))  # garbage, same length
    path.write_bytes(bytes(data))
    prompt = "after the corruption: what did I say first?"
    return judge(chain, chain.turn(prompt).run, prompt)


# -- the invariant ------------------------------------------------------------------------------------------


def never_silently_fresh(runs: list[RunRecord], model_texts: list[str]) -> list[str]:
    """Every run whose key had a conversation and that did not resume it said why (its note) and was
    given the recap (its prompt ``recap``, its request holding the first turn's words). The breaches."""
    breaches, had = [], None
    for record in sorted(runs, key=lambda r: r.started_at):
        left = record.mode != Mode.RESUME or record.session_id_in != had
        if had and left and record.mode != Mode.FORK:
            request = next(
                (t for t in model_texts if record.prompt.strip() and record.prompt.strip() in t), ""
            )
            if not record.note:
                breaches.append(f"run {record.id} ({record.mode.value}) left {had} without a note")
            if record.prompt_kind != PromptKind.RECAP or MARK not in request:
                breaches.append(f"run {record.id} ({record.mode.value}) left {had} without the recap")
        had = record.session_id_out or had
    return breaches


def report(agent: str, cells: dict[str, dict[str, Any]]) -> None:
    """The cells so far (and under ``cli`` the first turn's CLI version), for bench/compat.py:
    ``$BATON_COMPAT_EVENTS/<agent>.json`` (when it is set)."""
    where = os.environ.get("BATON_COMPAT_EVENTS", "")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        (Path(where) / f"{agent}.json").write_text(json.dumps(cells, indent=1))


# -- the test -----------------------------------------------------------------------------------------------


@pytest.fixture
def other_model(agent: str) -> Iterator[MockModel]:
    """A second model server of the agent's kind: another provider's address."""
    module, name = MOCKS[agent]
    with getattr(importlib.import_module(module), name)() as server:
        yield server


def test_failure_events(
    agent: str,
    settings: Settings,
    src_repo: Path,
    model: MockModel,
    other_model: MockModel,
    baton_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chain = Chain(agent, src_repo, settings, model, dict(baton_env), monkeypatch)
    if binary(agent, "TO"):
        chain.env[f"BATON_{agent.upper()}_BIN"] = binary(agent, "TO")
    first = chain.turn(f"{MARK} remember this", end="FROM")
    assert first.run.outcome == Outcome.SUCCEEDED, (first.run.error, first.run.note)
    chain.session = first.run.session_id_out
    chain.asked.append(MARK)
    steps: dict[str, Callable[[], Cell]] = {
        "upgrade": lambda: upgrade(chain),
        "sigkill": lambda: sigkill(chain),
        "home_wiped": lambda: home_wiped(chain),
        "moved": lambda: moved(chain, tmp_path / "machine-b"),
        "provider": lambda: provider(chain, other_model),
        "race": lambda: race(chain),
        "usage_limit": lambda: usage_limit(chain),
        "truncated": lambda: truncated(chain),
        "corrupted": lambda: corrupted(chain),
    }
    cells: dict[str, Cell] = {}
    for event, step in steps.items():
        began = time.monotonic()
        try:
            cells[event] = step()
        except Exception as exc:  # one event broken: the next ones are still measured
            cells[event] = broken(f"{type(exc).__name__}: {exc}"[:300])
        took = time.monotonic() - began
        print(f"{agent} {event}: {cells[event]} ({took:.1f} s)")
        report(agent, {"cli": {"version": first.run.cli_version}, **{e: asdict(c) for e, c in cells.items()}})
    store = open_store(chain.settings.resolved_store_url)
    try:
        runs = store.list_runs(agent, limit=200)
    finally:
        store.close()
    texts = [*model.texts(), *other_model.texts()]
    assert never_silently_fresh(runs, texts) == [], "a fresh conversation was started silently"
    expected = {e: ("n/a" if e in EXPECTED_NA and not binary(agent, "FROM") and not binary(agent, "TO")
                    else s) for e, s in EXPECTED[agent].items()}  # fmt: skip
    measured = {e: c.status for e, c in cells.items()}
    assert measured == expected, {e: asdict(c) for e, c in cells.items() if c.status != expected[e]}
