"""The ``baton`` MCP server: one tool, ``ask_human(question, options?)``, over stdio (newline-delimited
JSON-RPC 2.0, MCP revisions 2024-11-05 to 2025-11-25). The agent CLI starts it as
``python -I -S server.py <question-file>`` inside the agent's walls; a call writes the question to that
file (atomically, once a turn, bounded) and tells the agent to end its turn, which the runner then
records as ``needs_input``. Standard library only (no typing, no pathlib: a Claude Code turn waits for
it to start), run from its compiled form by :mod:`server_run`, and imports nothing of baton's: it holds no
secret and only writes one file.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

TYPE_CHECKING = False  # typing is not imported at run time (3 ms of every start)
if TYPE_CHECKING:
    from typing import Any

NAME = "baton"
TOOL = "ask_human"
REVISIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")  # oldest first
MAX_QUESTION = 10_000  # characters kept of a question; the rest is cut, saying so
MAX_OPTIONS, MAX_OPTION = 10, 500
SCHEMA = {
    "type": "object",
    "properties": {
        "question": {"type": "string", "description": "The question, complete enough to answer on its own."},
        "options": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Optional: the answers you would accept, if the choice is between a few.",
        },
    },
    "required": ["question"],
}
DESCRIPTION = (
    "Ask a person a question and wait for their answer. Use it when you need a decision you cannot "
    "make yourself (conflicting requirements, a choice only the owner of the work can make, missing "
    "information or access). Your turn ends when you call it; the answer arrives as your next message."
)
ASKED = (
    "Your question was sent to a person. End your turn now: do not call any more tools and do not "
    "continue the work. Their answer will be your next message."
)
AGAIN = "You already asked a question this turn; it was sent. End your turn now."


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n…({len(text) - limit} more characters cut)"


def question_of(arguments: Any) -> dict[str, Any] | str:
    """The question of a tool call's arguments, bounded, or why they are not one."""
    if not isinstance(arguments, dict):
        return "ask_human takes an object with a 'question'"
    question, options = arguments.get("question"), arguments.get("options") or []
    if not isinstance(question, str) or not question.strip():
        return "ask_human needs a non-empty 'question' (a string)"
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        return "ask_human's 'options' must be a list of strings"
    kept = [_cut(o, MAX_OPTION) for o in options[:MAX_OPTIONS]]
    return {"question": _cut(question, MAX_QUESTION), "options": kept}


def write_once(path: str, question: dict[str, Any]) -> bool:
    """Write ``question`` to ``path`` atomically unless a question is there already (one a turn)."""
    if os.path.lexists(path):
        return False
    folder, name = os.path.split(path)
    part = os.path.join(folder, f".{name}.{os.getpid()}")
    with open(part, "w", encoding="ascii") as fh:
        fh.write(json.dumps(question, ensure_ascii=True))
    os.replace(part, path)
    return True


def _call(path: str, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("name") != TOOL:
        return _text(f"unknown tool {params.get('name')!r}; this server has only {TOOL}", error=True)
    found = question_of(params.get("arguments"))
    if isinstance(found, str):
        return _text(found, error=True)
    return _text(ASKED if write_once(path, found) else AGAIN)


def _text(text: str, error: bool = False) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": error}


def _initialize(params: dict[str, Any]) -> dict[str, Any]:
    asked = params.get("protocolVersion")
    return {
        "protocolVersion": asked if asked in REVISIONS else REVISIONS[-1],
        "capabilities": {"tools": {"listChanged": False}},
        "serverInfo": {"name": NAME, "version": "1"},
        "instructions": DESCRIPTION,
    }


def answer(path: str, message: Any) -> dict[str, Any] | None:
    """The response to one JSON-RPC message (None for a notification)."""
    if not isinstance(message, dict) or "id" not in message:
        return None
    method, params = message.get("method"), message.get("params") or {}
    reply: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"]}
    if not isinstance(params, dict):
        params = {}
    if method == "initialize":
        reply["result"] = _initialize(params)
    elif method == "tools/list":
        reply["result"] = {"tools": [{"name": TOOL, "description": DESCRIPTION, "inputSchema": SCHEMA}]}
    elif method == "tools/call":
        reply["result"] = _call(path, params)
    elif method == "ping":
        reply["result"] = {}
    else:
        reply["error"] = {"code": -32601, "message": f"method not found: {method!r}"}
    return reply


def die_with_parent(every: float = 0.1) -> None:
    """End this process when the agent CLI that started it is gone (its runner killed with SIGKILL, say):
    it is reparented, and a thread that watches its parent's id ends it — at once, not when the last
    holder of its stdin closes it."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def leave_when_told() -> None:
    """End at once on SIGINT or SIGTERM, which is how an agent CLI stops its MCP servers at the end of a
    turn (Claude Code: SIGINT, a look 10 ms later, then every 50 ms): Python's own handling (a
    KeyboardInterrupt's traceback, the interpreter's teardown) would hold the turn's end ~50 ms."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: os._exit(0))


def serve(path: str) -> None:
    leave_when_told()
    die_with_parent()
    for line in sys.stdin.buffer:
        try:
            message = json.loads(line)
        except ValueError:
            response: dict[str, Any] | None = {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": -32700, "message": "parse error"},
            }
        else:
            response = answer(path, message)
        if response is not None:
            sys.stdout.write(json.dumps(response) + "\n")
            sys.stdout.flush()


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit("usage: server_run.py <question-file>")
    serve(argv[0])


if __name__ == "__main__":
    main(sys.argv[1:])
