"""Benchmark 1c-1f: a resumed turn of the REAL Codex CLI and Gemini CLI, through baton and directly.

Like benchmark 1 (Claude Code, bench_claude.py): every variant resumes an existing conversation of
its own (made by an untimed first turn) against the agent's in-process mock model API, in a git
worktree of the same small repository:

- ``baton.run(RunRequest(agent=..., ...))``, the Python API, opening its store per call;
- ``baton.run(..., store=store)`` with one store opened up front and reused;
- baseline: the same CLI invocation baton makes, as a plain subprocess with the agent's home in its
  own directory (``CODEX_HOME`` / ``GEMINI_CLI_HOME``) and the same settings file baton writes there:

  - Codex: ``codex exec --json --skip-git-repo-check resume <id> -- PROMPT`` — the native binary
    behind npm's ``bin/codex.js`` (what baton runs, see ``baton.agents.codex.native_codex``), with the
    environment baton gives it (``CODEX_HOME``, ``RUST_BACKTRACE=0``, npm's ``CODEX_MANAGED_*``);
  - Gemini: ``gemini --prompt=PROMPT -o stream-json -m <model baton uses> --resume <id>`` with
    ``GEMINI_CLI_HOME``, ``GEMINI_CLI_TRUST_WORKSPACE=true`` and ``GEMINI_CLI_NO_RELAUNCH=true``, in
    the directory its conversation started in (Gemini keys sessions by the exact directory).

The baseline's argv and environment are written out here and checked against what the adapter's
``launch()`` returns, so a change in what baton runs fails the benchmark instead of skewing it.

Every turn is checked: it succeeded, it was a resume (``mode=resume`` for baton), it kept the session
id, and the mock's reply shows the request carried two more history items than that conversation's
previous turn.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    TIMES,
    Group,
    History,
    Plan,
    Repos,
    Row,
    Suite,
    clean_environ,
    clock,
    direct_worktree,
    interleave,
    make_mock,
    median,
    ms,
    patched_environ,
)

from baton import Mode, RunRequest, Store, load_settings, open_store, run
from baton.agents import get_agent
from baton.agents.base import Launch
from baton.agents.codex import CodexAgent
from baton.agents.gemini import GeminiAgent
from baton.settings import Settings

PROMPT = "benchmark turn: reply in one line"
PROBE_ID = "00000000-0000-4000-8000-000000000000"  # a well-formed id to ask the adapter for its argv


@dataclass
class Direct:
    """How to run one agent CLI straight, without baton: its first turn, its resumed turns and how
    to read what it printed (session id, success, the model's reply)."""

    label: str  # the baseline's name in the row: "`codex exec resume`"
    env: dict[str, str]  # added to the clean environment
    fresh: Callable[[str], tuple[list[str], str | None]]  # prompt -> argv, pre-assigned id (or None)
    resume: Callable[[str, str], list[str]]  # session id, prompt -> argv
    parse: Callable[[str], tuple[str | None, bool, str | None]]


def check_launch(name: str, ours: list[str], launch: Launch, env: dict[str, str]) -> None:
    """The baseline must be exactly the CLI invocation baton makes (minus baton)."""
    if ours != launch.argv:
        raise RuntimeError(f"{name}: baton runs {launch.argv}, the baseline {ours}: update bench_agents.py")
    if env != launch.env:
        raise RuntimeError(f"{name}: baton sets {launch.env}, the baseline {env}: update bench_agents.py")


def codex_direct(settings: Settings, home: Path) -> Direct:
    """``codex exec --json --skip-git-repo-check --sandbox workspace-write resume <id> -`` (prompt on
    stdin, the sandbox of baton's default access level, edit), CODEX_HOME=``home``."""
    agent = CodexAgent(home, settings.codex_bin)
    command = agent.command  # the native binary baton runs, not npm's node wrapper
    exec_ = [*command, "exec", "--json", "--skip-git-repo-check", "--sandbox", "workspace-write"]
    probe = agent.launch(Mode.RESUME, PROMPT, PROBE_ID)
    managed = {k: v for k, v in probe.env.items() if k.startswith("CODEX_MANAGED_")}  # npm's, if native
    env = {**managed, "CODEX_HOME": str(home), "RUST_BACKTRACE": "0"}

    def resume(session_id: str, prompt: str) -> list[str]:
        return [*exec_, "resume", session_id, "-"]  # the prompt on stdin, as baton passes it

    check_launch("codex", resume(PROBE_ID, PROMPT), probe, env)

    def parse(stdout: str) -> tuple[str | None, bool, str | None]:
        session_id, ok, reply = None, False, None
        for event in _json_lines(stdout):
            kind = event.get("type")
            if kind == "thread.started":
                session_id = event.get("thread_id")
            elif kind == "item.completed" and (event.get("item") or {}).get("type") == "agent_message":
                reply = event["item"].get("text")
            elif kind == "turn.completed":
                ok = True
            elif kind in ("turn.failed", "error"):
                ok = False
        return session_id, ok, reply

    return Direct("`codex exec resume`", env, lambda prompt: ([*exec_, "-"], None), resume, parse)


def gemini_direct(settings: Settings, home: Path) -> Direct:
    """``gemini -o stream-json --approval-mode=auto_edit --policy=POLICY -m MODEL --resume <id>`` (the
    prompt on stdin; baton's default access level, edit, with the read-only shell policy baton writes
    into the home) with GEMINI_CLI_HOME=``home``, MODEL the one baton passes (read from its own home)."""
    ours = get_agent("gemini", settings)
    assert isinstance(ours, GeminiAgent)
    model = ours.model()
    agent = GeminiAgent(home, settings.gemini_bin)
    base = [*agent.command]
    env = {
        "GEMINI_CLI_HOME": str(home),
        "GEMINI_CLI_TRUST_WORKSPACE": "true",
        "GEMINI_CLI_NO_RELAUNCH": "true",
    }

    policy = home / ".gemini" / "baton-read-only-shell.toml"  # written by the adapter's launch below
    edit = ["--approval-mode=auto_edit", f"--policy={policy}"]

    def args(prompt: str) -> list[str]:
        return [*base, "-o", "stream-json", *edit, *(["-m", model] if model else [])]  # prompt on stdin

    def resume(session_id: str, prompt: str) -> list[str]:
        return [*args(prompt), "--resume", session_id]

    def fresh(prompt: str) -> tuple[list[str], str | None]:
        session_id = str(uuid.uuid4())
        return [*args(prompt), "--session-id", session_id], session_id

    if agent.model() != model:
        raise RuntimeError(f"gemini: the baseline's home picks model {agent.model()!r}, baton's {model!r}")
    check_launch("gemini", resume(PROBE_ID, PROMPT), agent.launch(Mode.RESUME, PROMPT, PROBE_ID), env)

    def parse(stdout: str) -> tuple[str | None, bool, str | None]:
        session_id, ok, parts = None, False, []
        for event in _json_lines(stdout):
            kind = event.get("type")
            if kind == "init":
                session_id = event.get("session_id")
            elif kind == "message" and event.get("role") == "assistant":
                parts.append(str(event.get("content") or ""))
            elif kind == "result":
                ok = event.get("status") == "success"
        return session_id, ok, "".join(parts) if parts else None

    return Direct("`gemini --resume`", env, fresh, resume, parse)


def _json_lines(stdout: str) -> list[dict[str, Any]]:
    events = []
    for line in stdout.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def copy_home_settings(agent: str, baton_home: Path, direct_home: Path) -> None:
    """The baseline starts from the settings file baton wrote into its own agent home."""
    rel = {"codex": Path("config.toml"), "gemini": Path(".gemini") / "settings.json"}[agent]
    (direct_home / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(baton_home / rel, direct_home / rel)


THREADS = {"baton": "bench-api", "baton+store": "bench-store"}  # each baton variant's own conversation


@dataclass
class Variants:
    """One agent's three timed variants: ``baton.run`` per call, with a reused store, and the CLI run
    straight (``direct``) — with the conversation each resumes and the history check of each."""

    agent: str
    repo: str
    settings: Settings
    hist: dict[str, History]
    ids: dict[str, str]  # variant -> the session id its resumed turns must keep
    direct: Direct | None = None
    env: dict[str, str] | None = None  # the direct CLI's whole environment
    workdir: Path | None = None  # the direct CLI's worktree

    def first_baton_turns(self) -> None:
        """Untimed fresh turns: each baton variant gets its own conversation to resume."""
        for name, thread in THREADS.items():
            request = RunRequest(agent=self.agent, repo=self.repo, thread=thread, prompt=PROMPT)
            first = run(request, settings=self.settings)
            if not first.ok or not first.run.session_id_out:
                raise RuntimeError(f"the first baton run of {self.agent} failed: {first.run.error}")
            self.hist[name].check(first.run.result)
            self.ids[name] = first.run.session_id_out

    def call(self, argv: list[str]) -> tuple[str | None, str | None, float]:
        """Run the CLI straight once: the session id it reported, its reply, the seconds it took."""
        assert self.direct is not None and self.env is not None
        env, workdir = self.env, self.workdir
        out, elapsed = clock(
            lambda: subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, input=PROMPT)
        )
        session_id, ok, reply = self.direct.parse(out.stdout)
        if out.returncode != 0 or not ok:
            raise RuntimeError(f"{self.direct.label} failed ({out.returncode}): {out.stderr.strip()[-500:]}")
        return session_id, reply, elapsed

    def first_direct_turn(self) -> None:
        """The untimed fresh turn of the direct CLI, whose conversation the baseline resumes."""
        assert self.direct is not None
        argv, wanted = self.direct.fresh(PROMPT)
        got, reply, _ = self.call(argv)
        if not got or (wanted and got != wanted):
            raise RuntimeError(f"the direct {self.agent} first turn reported session {got!r}, not {wanted!r}")
        self.hist["direct"].check(reply)
        self.ids["direct"] = got

    def api(self, name: str, reuse: Store | None) -> float:
        """One timed, checked resumed turn through ``baton.run``."""
        request = RunRequest(agent=self.agent, repo=self.repo, thread=THREADS[name], prompt=PROMPT)
        result, elapsed = clock(lambda: run(request, settings=self.settings, store=reuse))
        rec = result.run
        if not result.ok or rec.mode != Mode.RESUME:
            raise RuntimeError(f"{self.agent} {name}: {rec.mode.value} {rec.outcome.value}, {rec.error}")
        if rec.session_id_in != self.ids[name] or rec.session_id_out != self.ids[name]:
            raise RuntimeError(f"{self.agent} {name}: session {rec.session_id_in} -> {rec.session_id_out}")
        self.hist[name].check(rec.result)
        return elapsed

    def baseline(self, _rep: int) -> float:
        """One timed, checked resumed turn of the CLI run straight."""
        assert self.direct is not None
        direct_id = self.ids["direct"]
        got, reply, elapsed = self.call(self.direct.resume(direct_id, PROMPT))
        if got != direct_id:
            raise RuntimeError(f"{self.direct.label} resumed session {got!r}, not {direct_id!r}")
        self.hist["direct"].check(reply)
        return elapsed

    def sample(self, reps: int) -> dict[str, list[float]]:
        """Interleaved timings of the three variants, ``reps`` each."""
        store = open_store(self.settings.resolved_store_url)
        try:
            return interleave(
                {
                    "baton": lambda _rep: self.api("baton", None),
                    "baton+store": lambda _rep: self.api("baton+store", store),
                    "direct": self.baseline,
                },
                reps,
            )
        finally:
            store.close()


def bench_agent(root: Path, source: Path, agent: str, reps: int, tags: tuple[str, str]) -> list[Row]:
    """Rows ``1<tags[0]>`` (``baton.run``) and ``1<tags[1]>`` (``baton.run(store=)``) for ``agent``."""
    home = root / "baton-home"
    settings = load_settings(overrides={"home": str(home)}, environ={})
    workdir = root / "direct-worktree"
    direct_worktree(source, root / "direct-cache.git", workdir, f"direct/{agent}")
    direct_home = root / f"direct-{agent}-home"
    hist = {name: History(f"{agent} {name}") for name in ("baton", "baton+store", "direct")}
    bench = Variants(agent, str(source), settings, hist, {}, workdir=workdir)
    mock = make_mock(agent)
    with mock, patched_environ(mock.env()):
        mock.configure_home(home / "homes" / agent)
        bench.first_baton_turns()
        copy_home_settings(agent, home / "homes" / agent, direct_home)
        mock.configure_home(direct_home)
        direct = (codex_direct if agent == "codex" else gemini_direct)(settings, direct_home)
        bench.direct, bench.env = direct, {**clean_environ(), **mock.env(), **direct.env}
        bench.first_direct_turn()
        samples = bench.sample(reps)
    return _rows(samples, direct.label, agent, reps, tags)


def _rows(
    samples: dict[str, list[float]], label: str, agent: str, reps: int, tags: tuple[str, str]
) -> list[Row]:
    """Each baton variant's median as a ratio to the direct CLI's."""
    base = median(samples["direct"])
    return [
        Row(
            f"1{tag} {what} resume ÷ {label}",
            "ratio",
            median(samples[name]),
            base,
            1.1 if agent == "codex" else 1.05,  # Codex starts in 0.3 s, so its goal is 1.1x
            reps,
            samples={"candidate": samples[name], "baseline": samples["direct"]},
            agent=agent,
        )
        for tag, what, name in (
            (tags[0], "`baton.run`", "baton"),
            (tags[1], "`baton.run(store=)`", "baton+store"),
        )
    ]


def agent_group(agent: str, tags: tuple[str, str], reps: Plan, direct: str) -> Group:
    """The group of ``agent``'s two rows, ``1<tags[0]>`` and ``1<tags[1]>``, against ``direct``."""

    def run_group(suite: Suite, repos: Repos) -> None:
        title = f"1{tags[0]}/1{tags[1]} {agent} resume: baton.run / baton.run(store=) / {direct}"
        suite.step(title, lambda: record(suite, repos.small.path))

    def record(suite: Suite, small: Path) -> None:
        found = bench_agent(suite.scratch / f"b1-{agent}", small, agent, suite.pick(reps), tags)
        suite.rows.extend(found)
        api, stored = found
        suite.notes.append(agent_note(agent, tags, api, stored))

    name = {"codex": "Codex", "gemini": "Gemini"}[agent]
    return Group(agent, f"1{tags[0]}, 1{tags[1]}: a resumed {name} turn", run_group)


def agent_note(agent: str, tags: tuple[str, str], api: Row, stored: Row) -> str:
    return (
        f"1{tags[0]}/1{tags[1]} ({agent}): {ms(api.baseline)} baseline turn; baton adds "
        f"{(api.candidate - api.baseline) * 1000:+.0f} ms with a store opened per call, "
        f"{(stored.candidate - stored.baseline) * 1000:+.0f} ms with one store passed as `store=` "
        f"(differences of medians); ≤ {api.goal:g}{TIMES} leaves baton "
        f"{(api.goal - 1) * api.baseline * 1000:.0f} ms per run."
    )


CODEX = agent_group("codex", ("c", "d"), Plan(full=21, quick=3), "codex exec resume")
GEMINI = agent_group("gemini", ("e", "f"), Plan(full=15, quick=3), "gemini --resume")
