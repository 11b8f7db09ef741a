"""``baton demo``: the product in one minute, offline. In a scratch repository and ``BATON_HOME``, with the
mock Anthropic API on 127.0.0.1, it drives the REAL Claude Code CLI through three runs of one thread
(fresh, then resumed twice: the mock sees the history grow; in the second the agent edits ``calc.py``
in its walled worktree at the default access ``edit``), then deletes the thread's agent home, as a
container redeploy would, and runs again: baton hydrates the transcript from its store and the
conversation resumes with its full history, under the same session id (:func:`run_demo`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from unittest.mock import patch

from rich.console import Console

from baton.agents.claude import ClaudeAgent
from baton.errors import AgentError
from baton.keys import key_of
from baton.runner.request import RunRequest, RunResult
from baton.runner.run import run
from baton.settings import load_settings
from baton.testing.mock_anthropic import MockAnthropic, MockRequest
from baton.testing.tools import MarkerError, tool_marker
from baton.workspace.keyspace import key_home


def environ_patch(values: Mapping[str, str]) -> AbstractContextManager[dict[str, str]]:
    """Set ``values`` in this process's environment for the block (the agent inherits it); the
    environment is restored exactly afterwards (``unittest.mock.patch.dict``)."""
    return patch.dict(os.environ, values)


def make_scratch_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "demo",
        "GIT_AUTHOR_EMAIL": "demo@example.invalid",
        "GIT_COMMITTER_NAME": "demo",
        "GIT_COMMITTER_EMAIL": "demo@example.invalid",
    }
    (path / "README.md").write_text("# calculator\n\nA tiny project for the baton demo.\n")
    (path / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "initial commit"]):
        subprocess.run(["git", *args], cwd=path, env=env, check=True, stdin=subprocess.DEVNULL)
    return path


CALC = "def add(a, b):\n    return a + b\n\n\ndef subtract(a, b):\n    return a - b\n"


def _diffstat(worktree: Path) -> str:
    """``git diff --stat``'s summary line for the worktree: what the agent changed."""
    out = subprocess.run(
        ["git", "diff", "--stat"], cwd=worktree, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    lines = out.stdout.strip().splitlines()
    return lines[-1].strip() if lines else "no change"


# What a run's mode and prompt kind mean, for a reader seeing them for the first time.
MODE_WORDS = {
    "fresh": "a new conversation",
    "resume": "the same conversation",
    "recover": "a new one, with a recap",
}
PROMPT_WORDS = {"full": "task context + instruction", "delta": "only the new instruction"}


def skipped_replies(first: int, requests: Sequence[MockRequest]) -> str | None:
    """One line saying why a run's reply shows number ``first + len(requests) - 1`` when it started at
    ``first``, or None when the run made one request: a tool call and its result make two requests.
    The mock numbers its replies one per request, so the second run shows reply #3: the demo says so
    where it happens, since a newcomer would otherwise look for the missing #2."""
    if len(requests) < 2:
        return None
    last = first + len(requests) - 1
    numbers = ", ".join(f"#{n}" for n in range(first, last))
    tools: list[str] = []
    for request in requests[:-1]:
        with suppress(MarkerError):
            tools += [str(call["name"]) for call in request.tool_calls()]
    if not tools:
        return f"(no {numbers} above: this run sent the model {len(requests)} requests; #{last} was the last)"
    if len(requests) == 2:
        return (
            f"(no {numbers} above: reply {numbers} was the model's {tools[0]} tool call; "
            f"the agent ran it, and #{last} answers its result)"
        )
    return (
        f"(no {numbers} above: those replies were the model's tool calls ({', '.join(tools)}); "
        f"the agent ran them, and #{last} answers the results)"
    )


def _report(say: Callable[[str], None], result: RunResult, first: int, requests: list[MockRequest]) -> None:
    """What a run did, in words a newcomer can follow; ``requests`` are the ones it sent the mock,
    numbered from ``first``."""
    mode, kind = result.run.mode.value, result.run.prompt_kind.value
    say(
        f"  run {result.run.id[-8:]} {result.run.outcome.value}: mode [cyan]{mode}[/cyan] "
        f"({MODE_WORDS.get(mode, mode)}), prompt {kind} ({PROMPT_WORDS.get(kind, kind)})"
    )
    received = len(requests[-1].messages) if requests else "?"
    say(
        f"    Claude session {result.session.agent_session_id}; the model received {received} messages; "
        f"reply: {result.run.result!r}"
    )
    skipped = skipped_replies(first, requests)
    if skipped:
        say(f"    {skipped}")


def run_demo(console: Console, keep: bool = False) -> int:
    """The demo's runs, told as they go; the exit code. The resumed run after the wiped home shows the
    whole history (10 messages)."""
    scratch = Path(tempfile.mkdtemp(prefix="baton-demo-"))
    settings = load_settings(overrides={"home": str(scratch / "home")})
    claude = ClaudeAgent("claude", settings.home / "homes" / "claude", settings.claude_bin or None)
    try:
        command = claude.command
    except AgentError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    repo = make_scratch_repo(scratch / "calculator")
    say = console.print
    say(f"[bold]baton demo[/bold] — Claude Code {claude.version() or '?'} ({command[0]})")
    say(f"scratch repo {repo}, BATON_HOME {settings.home}\n")
    try:
        with MockAnthropic() as mock, environ_patch(mock.env()):
            say(f"a mock Anthropic API on {mock.url} stands in for the model (offline, no API key);")
            say("its replies are numbered, one per request, and say how many messages the request carried\n")

            def turn(prompt: str) -> RunResult:
                before = len(mock.conversation())
                result = run(
                    RunRequest(agent="claude", repo=str(repo), thread="issue-42", prompt=prompt),
                    settings=settings,
                )
                _report(say, result, before + 1, mock.conversation()[before:])
                return result

            say("[bold]1. Three runs on thread issue-42: a new conversation, then resumed twice[/bold]")
            first = turn("Read calc.py and tell me what it does.")
            calc = Path(first.session.worktree) / "calc.py"
            write = tool_marker("Write", file_path=str(calc), content=CALC)  # the mock model asks for it
            second = turn(f"Add a subtract function. {write}")
            say(
                f"    the agent wrote calc.py (access {second.run.access}, walled into its key: "
                f"{second.run.confined}): {_diffstat(calc.parent)}"
            )
            third = turn("Now add tests for both functions.")
            say(f"  worktree: {third.session.worktree} (branch {third.session.branch})\n")

            say("[bold]2. A redeploy wipes the agent home[/bold]")
            home = key_home(settings, key_of(third.session))  # the key's own agent home
            shutil.rmtree(home)
            say(f"  deleted {home} — the transcript is gone from local disk")
            fourth = turn("Where were we?")
            same = fourth.session.agent_session_id == first.session.agent_session_id
            counts = mock.message_counts()
            say(f"  baton restored the transcript from its store and resumed: same session id: {same}\n")
            say("[bold]What happened[/bold]")
            say(
                f"  messages the model saw, request by request (#1 to #{len(counts)}): "
                f"{' → '.join(map(str, counts))} (one conversation, growing; a fresh start would have "
                "dropped back to 2)"
            )
            ok = (
                same
                and fourth.run.mode.value == "resume"
                and counts == sorted(counts)
                and len(set(counts)) == len(counts)
                and "subtract" in calc.read_text()
            )
            say(
                "  [green]the conversation survived the redeploy[/green]"
                if ok
                else "  [red]unexpected result[/red]"
            )
            return 0 if ok else 1
    finally:
        if keep:
            say(f"\nkept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
