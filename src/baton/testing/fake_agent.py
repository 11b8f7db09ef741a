"""A fast stand-in for the Claude Code CLI, for unit tests (stdlib only; run with ``python -S``). It
honours the flags baton uses and parses its argv as Claude Code does (:func:`parse_args`; without a
positional prompt it reads stdin), runs the ``SessionStart`` hooks of ``--settings`` so a prompt read as
an option is caught by the fast tests too (:func:`run_hooks`), keeps transcripts where Claude does,
writes the prompt before "thinking" (a kill mid-turn leaves it on disk, as the real CLI does), and
answers ``fake reply: received N messages`` where N grows 2, 4, 6 across resumed turns, like the mock
model. Faults come from ``FAKE_AGENT_*`` variables (:func:`main`).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

TYPE_CHECKING = False  # the typing module is not imported at run time: it costs 3 ms a start
if TYPE_CHECKING:
    import subprocess
    from typing import Any, NoReturn

VERSION = "2.1.0-fake"
NOT_FOUND = "No conversation found with session ID"
# what Anthropic's API says of a history it cannot take (a resume of it fails at once, every time)
REFUSED = {
    "type": "error",
    "error": {"type": "invalid_request_error", "message": "messages.1.content.0: unexpected `tool_use_id`"},
}


def run_command(command: list[str] | str, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run``, imported only when a tool or hook runs (the import costs 7 ms a start)."""
    import subprocess

    return subprocess.run(command, **kwargs)


def new_uuid() -> str:
    """A random (version 4) UUID, without the uuid module (2.7 ms a start)."""
    raw = bytearray(os.urandom(16))
    raw[6], raw[8] = (raw[6] & 0x0F) | 0x40, (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def load(path: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("subtype") == "compact_boundary":
            entries = []  # compacted: the history resumed starts at its summary
        if isinstance(entry, dict) and entry.get("type") in ("user", "assistant"):
            entries.append(entry)
    return entries


def fail(session_id: str, message: str, code: int = 1) -> NoReturn:
    emit(
        {
            "type": "result",
            "subtype": "error_during_execution",
            "is_error": True,
            "session_id": session_id,
            "errors": [message],
        }
    )
    sys.stderr.write(message + "\n")
    sys.exit(code)


def should_fail() -> bool:
    if os.environ.get("FAKE_AGENT_FAIL"):
        return True
    first = int(os.environ.get("FAKE_AGENT_FAIL_FIRST", "0") or 0)
    state = os.environ.get("FAKE_AGENT_STATE") or os.environ.get("HOME")  # walled in: its key home
    if first and state:
        counter = Path(state) / "runs"
        done = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(done + 1))
        return done < first
    return False


def limited(session_id: str) -> None:
    """Meet a spent usage limit until ``FAKE_AGENT_LIMIT_UNTIL`` (see :func:`main`)."""
    until = int(float(os.environ.get("FAKE_AGENT_LIMIT_UNTIL", "0") or 0))  # whole seconds, as resetsAt
    if time.time() >= until:
        return
    says = os.environ.get("FAKE_AGENT_LIMIT_SAYS", "")
    info = {
        "status": "rejected",
        "resetsAt": (says if says == "garbled" else int(float(says))) if says else until,
        "rateLimitType": "five_hour",
        "isUsingOverage": False,
    }
    emit({"type": "rate_limit_event", "rate_limit_info": info, "session_id": session_id})
    text = "You've hit your 5-hour limit · resets 11:03pm (UTC)"
    emit(
        {
            "type": "assistant",
            "session_id": session_id,
            "error": "rate_limit",
            "message": {"content": [{"type": "text", "text": text}]},
        }
    )
    emit(
        {
            "type": "result",
            "subtype": "success",
            "is_error": True,
            "api_error_status": 429,
            "session_id": session_id,
            "result": text,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
    )
    sys.exit(1)


def per_message() -> int:
    """Prompt tokens each message of the history counts (``FAKE_AGENT_TOKENS``; 10 by default)."""
    return int(os.environ.get("FAKE_AGENT_TOKENS", "10") or 10)


def too_long(session_id: str, count: int) -> None:
    """Refuse a conversation longer than ``FAKE_AGENT_WINDOW`` tokens as Claude Code relays Anthropic's
    HTTP 400 ``prompt is too long`` (a synthetic assistant message, the error result with
    ``terminal_reason: prompt_too_long``, exit 1), measured against the mock model."""
    window = int(os.environ.get("FAKE_AGENT_WINDOW", "0") or 0)
    if not window or per_message() * count <= window:
        return
    text = "Prompt is too long"
    message = {"model": "<synthetic>", "content": [{"type": "text", "text": text}]}
    emit({"type": "assistant", "session_id": session_id, "error": "invalid_request", "message": message})
    emit(
        {
            "type": "result",
            "subtype": "success",
            "is_error": True,
            "api_error_status": 400,
            "terminal_reason": "prompt_too_long",
            "session_id": session_id,
            "result": text,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
    )
    sys.exit(1)


MODEL = "claude-fake"  # the model its init event names: a claude-* model's window (200,000 tokens)


def compact(
    prompt: str, transcript: Path | None, session_id: str, cwd: str, history: list[dict[str, Any]]
) -> None:
    """``/compact`` on a resumed conversation, as Claude Code 2.1 does it headlessly: a ``status``
    ``compacting``, the history replaced by one summary message in the same transcript (after a
    ``compact_boundary`` line), ``compact_result: success``, a ``compact_boundary`` event with the tokens
    before and after, a result without an answer; exit 0. ``FAKE_AGENT_COMPACT_FAILS``: it fails as
    Claude Code does when the summary request is refused (``compact_result: failed``)."""
    if transcript is None or prompt.strip() != "/compact":
        return
    emit({"type": "system", "subtype": "status", "status": "compacting", "session_id": session_id})
    if os.environ.get("FAKE_AGENT_COMPACT_FAILS"):
        failed = {"compact_result": "failed", "compact_error": "exhausted"}
        emit({"type": "system", "subtype": "status", "status": None, **failed, "session_id": session_id})
        fail(session_id, "Error: compaction failed")
    before, after = per_message() * (len(history) + 1), per_message()
    boundary = {"type": "system", "subtype": "compact_boundary", "sessionId": session_id, "cwd": cwd}
    summary = record(
        "user", None, session_id, cwd, f"Summary of the conversation so far ({len(history)} messages)"
    )
    append(transcript, boundary, summary)
    done = {"status": None, "compact_result": "success", "session_id": session_id}
    emit({"type": "system", "subtype": "status", **done})
    meta = {"trigger": "manual", "pre_tokens": before, "post_tokens": after}
    emit(
        {"type": "system", "subtype": "compact_boundary", "session_id": session_id, "compact_metadata": meta}
    )
    emit(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "num_turns": 0,
            "session_id": session_id,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
    )
    sys.exit(0)


VALUED = ("--session-id", "--resume", "--output-format", "--settings", "--mcp-config")
ASK = re.compile(r"\[\[tool:ask_human (\{.*?\})\]\]", re.DOTALL)  # a marker the fake answers as a model would


def ask_human(config: str | None, prompt: str) -> str | None:
    """When ``prompt`` holds ``[[tool:ask_human {JSON}]]``: call the tool as Claude Code does — start the
    ``baton`` MCP server ``--mcp-config`` names, initialize, list its tools, call ``ask_human`` with the
    JSON — and return the tool's text (None without a marker or a server)."""
    found = ASK.search(prompt)
    servers = json.loads(config).get("mcpServers", {}) if config else {}
    server = servers.get("baton")
    if found is None or not isinstance(server, dict):
        return None
    calls = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "ask_human", "arguments": json.loads(found[1])},
        },
    ]
    lines = "".join(json.dumps(c) + "\n" for c in calls)
    done = run_command(
        [server["command"], *server.get("args", [])], input=lines, capture_output=True, text=True
    )
    time.sleep(float(os.environ.get("FAKE_AGENT_AFTER_ASK", "0") or 0))  # going on after asking
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return str(answers[-1]["result"]["content"][0]["text"]) if len(answers) == 3 else done.stderr


def parse_args(argv: list[str]) -> dict[str, Any]:
    """Claude Code's reading of an argv: ``--flag value`` or ``--flag=value`` for valued flags,
    booleans, and the first positional argument as the prompt."""
    args: dict[str, Any] = {"continue": False, "fork": False, "print": False}
    i = 0
    while i < len(argv):
        flag, _, inline = argv[i].partition("=") if argv[i].startswith("--") else (argv[i], "", "")
        if flag in VALUED:
            if not inline and "=" not in argv[i]:
                i += 1
                inline = argv[i] if i < len(argv) else ""
            args[flag[2:]] = inline
        elif flag in ("-p", "--print"):
            args["print"] = True
        elif flag == "--continue":
            args["continue"] = True
        elif flag == "--fork-session":
            args["fork"] = True
        elif flag == "--version":
            args["version"] = True
        elif not flag.startswith("-") and "prompt" not in args:
            args["prompt"] = argv[i]
        i += 1
    return args


def run_hooks(settings: str | None) -> None:
    """Run ``hooks.SessionStart[*].hooks[*].command`` of a ``--settings`` JSON, as Claude does."""
    if not settings:
        return
    hooks = json.loads(settings).get("hooks", {}).get("SessionStart", [])
    for group in hooks:
        for hook in group.get("hooks", []):
            if hook.get("type") == "command":
                run_command(hook["command"], shell=True, check=False)


def choose_session(
    args: dict[str, Any], home: Path, project: Path
) -> tuple[str, list[dict[str, Any]], Path | None]:
    """The session id this run writes to and the history it resumes, as Claude picks them for
    ``--resume [--fork-session]``, ``--continue`` (the newest transcript of the cwd) or a new one."""
    resume = args.get("resume")
    if resume:
        found = sorted((home / "projects").glob(f"*/{resume}.jsonl"))
        if not found or not any(
            line.startswith("{") for line in found[0].read_text(errors="replace").splitlines()
        ):
            fail(resume, f"{NOT_FOUND}: {resume}")  # as Claude Code does for an empty or binary file
        history = load(found[0])
        if args["fork"]:
            return args.get("session-id") or new_uuid(), history, None
        if os.environ.get("FAKE_AGENT_RESUME_FAIL"):  # a history the model's API refuses
            fail(resume, f"API Error: 400 {json.dumps(REFUSED)}")
        return resume, history, found[0]  # as Claude does: it appends to the transcript it resumed
    if args["continue"]:
        candidates = (
            sorted(project.glob("*.jsonl"), key=lambda p: p.stat().st_mtime) if project.is_dir() else []
        )
        if not candidates:
            return new_uuid(), [], None
        return candidates[-1].stem, load(candidates[-1]), candidates[-1]
    session_id: str = args.get("session-id") or new_uuid()
    if (home / "projects").is_dir() and list((home / "projects").glob(f"*/{session_id}.jsonl")):
        fail(session_id, f"Session ID {session_id} is already in use.")
    return session_id, [], None


def record(kind: str, parent: str | None, session_id: str, cwd: str, content: str) -> dict[str, Any]:
    """A transcript line as Claude writes it for a user prompt or an assistant reply."""
    return {
        "type": kind,
        "uuid": new_uuid(),
        "parentUuid": parent,
        "sessionId": session_id,
        "cwd": cwd,
        "timestamp": time.time(),
        "message": {"role": kind, "content": content},
    }


def append(transcript: Path, *entries: dict[str, Any]) -> None:
    with transcript.open("a") as fh:
        for entry in entries:
            fh.write(json.dumps(entry) + "\n")


def main(argv: list[str]) -> None:
    """One turn: the flags baton uses (``-p``, ``--output-format stream-json``, ``--verbose``,
    ``--session-id``, ``--resume``, ``--fork-session``, ``--continue``, ``--version``), the transcript
    at ``$CLAUDE_CONFIG_DIR/projects/<mangled cwd>/<id>.jsonl``. Faults, from the environment:

    - ``FAKE_AGENT_DELAY``: seconds to think before replying;
    - ``FAKE_AGENT_FAIL``: reply with an error result and exit 1;
    - ``FAKE_AGENT_RESUME_FAIL``: a resume fails at once, before the prompt is written, as a history
      the model's API refuses does (a poisoned conversation); a new one goes through;
    - ``FAKE_AGENT_FAIL_FIRST`` = N: fail the first N runs, counted in ``FAKE_AGENT_STATE`` (a directory;
      default ``$HOME``, the key's home under baton);
    - ``FAKE_AGENT_NO_VERSION``: leave the version out of the ``init`` event (as Codex and Gemini do);
    - ``FAKE_AGENT_SAY`` = TEXT: reply with TEXT instead of the count of messages;
    - ``FAKE_AGENT_EXIT``: exit with this code after replying (a crash without a result line);
    - ``FAKE_AGENT_WRITE`` = NAME: append a line naming the turn's prompt to the file NAME in the
      working directory (an agent that edits its worktree);
    - ``FAKE_AGENT_RUN`` = COMMAND: run it with ``/bin/sh -c`` in the working directory before replying,
      and wait for it, as a real agent's shell tool would (a test's processes that try to outlive the
      run);
    - ``FAKE_AGENT_RETRIES`` = N: before replying, report N failed connections to the model API 0.3 s
      apart, as Claude Code's ``api_retry`` events do (``"error_status": null``);
    - a prompt holding ``[[tool:ask_human {JSON}]]`` calls baton's ``ask_human`` through the MCP server
      ``--mcp-config`` gives it (:func:`ask_human`), as a model asking a person would, then sleeps
      ``FAKE_AGENT_AFTER_ASK`` seconds (an agent that does not end its turn when told to);
    - ``FAKE_AGENT_TOKENS`` = N: the prompt tokens each message of the history counts in the usage it
      reports (10 by default); ``FAKE_AGENT_WINDOW`` = N: refuse a conversation counting more as
      Claude Code relays a prompt too long for the model's window (:func:`too_long`);
    - ``/compact`` as the prompt of a resumed conversation compacts it (:func:`compact`);
    - ``FAKE_AGENT_LIMIT_UNTIL`` = EPOCH: until then, meet a spent five-hour usage limit as Claude Code
      does under a subscription login (a rejected ``rate_limit_event`` with ``resetsAt``, the 429 error
      result, exit 1); ``FAKE_AGENT_LIMIT_SAYS`` = EPOCH or ``garbled``: the ``resetsAt`` it reports
      instead (a phantom limit says a reset that passes while it still refuses).
    """
    args = parse_args(argv)
    if args.get("version"):
        print(f"{VERSION} (Claude Code)")
        return
    if "prompt" not in args:  # as `claude -p` does without a positional prompt
        args["prompt"] = sys.stdin.buffer.read().decode("utf-8", "replace")
    run_hooks(args.get("settings"))
    home = Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude")
    cwd = os.getcwd()
    project = home / "projects" / re.sub(r"[^A-Za-z0-9]", "-", cwd)
    session_id, history, resumed = choose_session(args, home, project)
    project.mkdir(parents=True, exist_ok=True)
    transcript = resumed or project / f"{session_id}.jsonl"
    if args["fork"] and history:
        transcript.write_text("")  # a fork starts a fresh file holding a copy of the history
        append(transcript, *({**entry, "sessionId": session_id} for entry in history))
    init = {"type": "system", "subtype": "init", "session_id": session_id, "cwd": cwd, "model": MODEL}
    if not os.environ.get("FAKE_AGENT_NO_VERSION"):  # as a CLI whose events never say its version
        init["claude_code_version"] = VERSION
    emit(init)
    compact(args.get("prompt", ""), resumed, session_id, cwd, history)
    parent = history[-1]["uuid"] if history else None
    user = record("user", parent, session_id, cwd, args.get("prompt", ""))
    append(transcript, user)
    time.sleep(float(os.environ.get("FAKE_AGENT_DELAY", "0") or 0))
    for attempt in range(1, int(os.environ.get("FAKE_AGENT_RETRIES", "0") or 0) + 1):
        emit(
            {
                "type": "system",
                "subtype": "api_retry",
                "attempt": attempt,
                "error_status": None,
                "error": "unknown",
            }
        )
        time.sleep(0.3)
    limited(session_id)
    too_long(session_id, len(history) + 2)
    if should_fail():
        fail(session_id, "fake failure (FAKE_AGENT_FAIL)")
    if os.environ.get("FAKE_AGENT_RUN"):  # the test's command, as a tool call (stdout: not the event stream)
        run_command(["/bin/sh", "-c", os.environ["FAKE_AGENT_RUN"]], stdout=sys.stderr, check=False)
    if os.environ.get("FAKE_AGENT_WRITE"):
        with open(os.environ["FAKE_AGENT_WRITE"], "a", encoding="utf-8") as notes:
            notes.write(f"turn {len(history) // 2 + 1}: {args.get('prompt', '').splitlines()[0][:80]}\n")
    count = len(history) + 2
    asked = ask_human(args.get("mcp-config"), args.get("prompt", ""))
    says = os.environ.get("FAKE_AGENT_SAY") or f"fake reply: received {count} messages"
    reply = record(
        "assistant", user["uuid"], session_id, cwd, says + (f"; asked a person: {asked}" if asked else "")
    )
    append(transcript, reply)
    usage = {"input_tokens": per_message() * count, "output_tokens": 5}
    emit({"type": "assistant", "session_id": session_id, "message": {**reply["message"], "usage": usage}})
    if os.environ.get("FAKE_AGENT_EXIT"):
        sys.exit(int(os.environ["FAKE_AGENT_EXIT"]))
    emit(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "session_id": session_id,
            "result": reply["message"]["content"],
            "total_cost_usd": 0.0001 * count,
            "usage": usage,
        }
    )


if __name__ == "__main__":
    main(sys.argv[1:])
