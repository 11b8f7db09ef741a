"""Benchmark 1: a resumed turn of the REAL Claude Code CLI, through baton and directly.

All three variants resume an existing conversation against the in-process mock Anthropic API, in a
git worktree of the same small repository, with their own conversation each (so every variant's
history grows by one turn per repetition, in step with the others):

- (a) ``baton.run(RunRequest(agent="claude", ...))``, the Python API, in this process;
- (b) ``baton run -a claude -r REPO -t THREAD PROMPT``, the CLI, as a subprocess;
- baseline: ``claude -p PROMPT --output-format stream-json --verbose --resume ID`` as a subprocess,
  with ``CLAUDE_CONFIG_DIR`` set to its own directory.

Then (1g) the CLI and the baseline again with the mock holding each reply back for :data:`SLOW_REPLY`
seconds, as a real model does: what baton's start-up and bookkeeping weigh on a realistic turn.

Every turn is checked: it succeeded, kept the same session id, and the mock's reply shows the request
carried two more messages than the previous turn of that conversation (proof it really resumed).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from common import (
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
    median,
    ms,
    patched_environ,
)

from baton import Mode, RunRequest, load_settings, run
from baton.agents import get_agent
from baton.agents.claude import ClaudeAgent
from baton.settings import Settings
from baton.testing.mock_anthropic import MockAnthropic

REPS = Plan(full=21, quick=3)
SLOW_REPS = Plan(full=7, quick=2)
SLOW_REPLY = 3.0  # seconds the mock holds each reply back in 1g


def baton_cli() -> list[str]:
    beside = Path(sys.executable).parent / "baton"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("baton")
    if not found:
        raise RuntimeError("the `baton` command was not found next to this interpreter or on PATH")
    return [found]


def claude_command(settings: Settings) -> list[str]:
    """The Claude Code binary baton itself would launch (so both sides run the same one)."""
    agent = get_agent("claude", settings)
    assert isinstance(agent, ClaudeAgent)
    return agent.command


def bench_claude(root: Path, source: Path, reps: int, slow_reps: int) -> list[Row]:
    """Returns the rows for (a), (b) and (g)."""
    home = root / "baton-home"
    settings = load_settings(overrides={"home": str(home)}, environ={})
    claude = claude_command(settings)
    repo = str(source)
    prompt = "benchmark turn: reply in one line"

    # The baseline's own worktree of the same repository, made the way baton makes its own.
    direct_cache = root / "direct-cache.git"
    workdir = root / "direct-worktree"
    direct_worktree(source, direct_cache, workdir, "direct/bench")
    config_dir = root / "direct-claude-home"

    with MockAnthropic() as mock, patched_environ(mock.env()):
        api_hist, cli_hist = History("(a) baton.run"), History("(b) baton run")
        direct_hist = History("claude -p")
        # First turns (fresh), untimed: each variant gets its own conversation to resume.
        for thread, hist in (("bench-api", api_hist), ("bench-cli", cli_hist)):
            request = RunRequest(agent="claude", repo=repo, thread=thread, prompt=prompt)
            first = run(request, settings=settings)
            if not first.ok:
                raise RuntimeError(f"the first baton run failed: {first.run.error}")
            hist.check(first.run.result)
        # Same retention setting as baton's agent home, so both CLIs start from the same config.
        config_dir.mkdir(parents=True)
        shutil.copy(home / "homes" / "claude" / "settings.json", config_dir / "settings.json")
        session_id = str(uuid.uuid4())
        direct_env = {**clean_environ(), **mock.env(), "CLAUDE_CONFIG_DIR": str(config_dir)}
        cli_env = {**clean_environ(), **mock.env(), "BATON_HOME": str(home)}
        base_argv = [*claude, "-p", prompt, "--output-format", "stream-json", "--verbose"]

        def direct(args: list[str]) -> None:
            out = subprocess.run(
                [*base_argv, *args],
                cwd=workdir,
                env=direct_env,
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
            )
            last = json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {}
            if out.returncode != 0 or last.get("is_error") or last.get("session_id") != session_id:
                raise RuntimeError(f"claude -p failed ({out.returncode}): {out.stderr.strip()[-500:]}")
            direct_hist.check(last.get("result"))

        direct(["--session-id", session_id])

        def api(_rep: int) -> float:
            request = RunRequest(agent="claude", repo=repo, thread="bench-api", prompt=prompt)
            result, elapsed = clock(lambda: run(request, settings=settings))
            if not result.ok or result.run.mode != Mode.RESUME:
                raise RuntimeError(f"(a) baton.run: {result.run.outcome.value}, {result.run.error}")
            api_hist.check(result.run.result)
            return elapsed

        def cli(_rep: int) -> float:
            return cli_turn(
                [*baton_cli(), "run", "-a", "claude", "-r", repo, "-t", "bench-cli", prompt],
                cli_env,
                cli_hist,
            )

        def baseline(_rep: int) -> float:
            return clock(lambda: direct(["--resume", session_id]))[1]

        samples = interleave({"api": api, "cli": cli, "direct": baseline}, reps)
        mock.delay = SLOW_REPLY
        slow = interleave({"cli": cli, "direct": baseline}, slow_reps)

    base = median(samples["direct"])
    rows = [
        Row(
            f"1{tag} {what} resume ÷ `claude -p --resume`",
            "ratio",
            median(samples[name]),
            base,
            goal,
            reps,
            samples={"candidate": samples[name], "baseline": samples["direct"]},
            agent="claude",
        )
        # the goals: the API within 5 %, the CLI (a fresh Python process) within 10 %
        for tag, what, name, goal in (
            ("a", "`baton.run`", "api", 1.05),
            ("b", "`baton run` CLI", "cli", 1.1),
        )
    ]
    rows.append(
        Row(
            f"1g `baton run` CLI resume ÷ `claude -p --resume`, the model replying after {SLOW_REPLY:.0f} s",
            "ratio",
            median(slow["cli"]),
            median(slow["direct"]),
            1.05,
            slow_reps,
            samples={"candidate": slow["cli"], "baseline": slow["direct"]},
            agent="claude",
        )
    )
    return rows


def cli_turn(argv: list[str], env: dict[str, str], hist: History) -> float:
    """Seconds of one ``baton run`` (argv), checked: it succeeded and resumed."""
    out, elapsed = clock(
        lambda: subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    )
    if out.returncode != 0 or "mode=resume" not in out.stdout:
        raise RuntimeError(f"(b) baton run failed ({out.returncode}): {out.stdout} {out.stderr}")
    hist.check(out.stdout)
    return elapsed


def run_group(suite: Suite, repos: Repos) -> None:
    suite.step(
        "1a/1b/1g claude resume: baton.run / baton CLI / claude -p, and on a slow model",
        lambda: record(suite, repos.small.path),
    )


def record(suite: Suite, small: Path) -> None:
    found = bench_claude(suite.scratch / "b1", small, suite.pick(REPS), suite.pick(SLOW_REPS))
    suite.rows.extend(found)
    suite.notes.extend(claude_notes(found[0], found[2]))


def claude_notes(api: Row, slow: Row) -> list[str]:
    return [
        f"1a/1b: the mock model answers at once, so the baseline ({ms(api.baseline)}) is almost all "
        f"Claude Code start-up; 1g is the same CLI turn with the model replying after {SLOW_REPLY:.0f} s: "
        f"baton's start-up and bookkeeping there are {(slow.candidate - slow.baseline) * 1000:+.0f} ms "
        f"on a {ms(slow.baseline)} turn ({(slow.candidate / slow.baseline - 1) * 100:.1f} %)."
    ]


GROUP = Group("claude", "1a, 1b, 1g: a resumed Claude Code turn", run_group)
