"""A fake Agent Client Protocol agent for fast tests (stdlib only; run with ``python -S``): newline-delimited
JSON-RPC on stdio, as ``opencode acp`` speaks it. Its conversations are JSON files in ``$FAKE_ACP_HOME``
(default ``$HOME``) ``/sessions/<id>.json``; it replies ``fake acp reply: received N messages`` (N grows
2, 4, 6 across turns, as the mocks' replies do); a ``[[acp:KIND FILE]]`` marker in a prompt makes it ask
permission for a tool and use it; ``FAKE_ACP_DELAY`` makes it think (for timeouts and cancels);
``FAKE_ACP_RESUME`` makes it advertise ``session/resume`` (:func:`capabilities`). The methods it answers:
:func:`handle`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

MARKER = re.compile(r"\[\[acp:(\w+) ([^\]]+)\]\]")
cancelled = threading.Event()
answers: dict[Any, Any] = {}
answered = threading.Condition()
next_id = [1000]
opened: set[str] = set()  # the conversations made or restored in this process: only these take a prompt


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
    sys.stdout.flush()


def store() -> Path:
    return Path(os.environ.get("FAKE_ACP_HOME") or os.environ.get("HOME") or ".") / "sessions"


def history(session: str) -> list[dict[str, str]] | None:
    """The conversation's messages; None when it has none this agent can read (unknown, or garbled)."""
    path = store() / f"{session}.json"
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, list) else None


def update(session: str, body: dict[str, Any]) -> None:
    send({"method": "session/update", "params": {"sessionId": session, "update": body}})


def ask(session: str, kind: str, title: str) -> bool:
    """Ask the client for permission (a request of ours): whether it allowed it."""
    next_id[0] += 1
    ident = next_id[0]
    options = [
        {"optionId": "allow", "name": "Allow", "kind": "allow_once"},
        {"optionId": "reject", "name": "Reject", "kind": "reject_once"},
    ]
    tool = {"toolCallId": f"call-{ident}", "title": title, "kind": kind}
    send(
        {
            "id": ident,
            "method": "session/request_permission",
            "params": {"sessionId": session, "toolCall": tool, "options": options},
        }
    )
    with answered:
        answered.wait_for(lambda: ident in answers, timeout=30)
        outcome = (answers.pop(ident, {}) or {}).get("outcome") or {}
    return outcome.get("outcome") == "selected" and outcome.get("optionId") == "allow"


def prompt(ident: Any, params: dict[str, Any]) -> None:
    """``session/prompt``: the reply, streamed in two ``agent_message_chunk`` updates, then ``end_turn``
    (``cancelled`` when ``session/cancel`` came meanwhile). A marker ``[[acp:KIND FILE]]`` in the prompt
    first asks for permission to run a tool of that kind (``edit``, ``execute``, ``read``…) and, when
    allowed, does it: writes FILE in the working directory (``edit``), or runs FILE as a shell command
    there (``execute``); a ``tool_call`` update says which."""
    session = params["sessionId"]
    text = "".join(b.get("text", "") for b in params.get("prompt", []) if isinstance(b, dict))
    past = history(session) or []
    past.append({"role": "user", "text": text})
    for kind, target in MARKER.findall(text):
        allowed = ask(session, kind, f"{kind} {target}")
        update(
            session,
            {
                "sessionUpdate": "tool_call",
                "toolCallId": f"t-{kind}",
                "title": target,
                "kind": kind,
                "status": "completed" if allowed else "failed",
            },
        )
        if allowed and kind == "edit":
            Path(target).write_text("made by the fake acp agent\n")
        elif allowed and kind == "execute":
            subprocess.run(["/bin/sh", "-c", target], check=False, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + float(os.environ.get("FAKE_ACP_DELAY", "0") or 0)
    while time.monotonic() < deadline and not cancelled.is_set():
        time.sleep(0.05)
    if cancelled.is_set():
        send({"id": ident, "result": {"stopReason": "cancelled"}})
        return
    reply = f"fake acp reply: received {len(past) + 1} messages"
    update(session, {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": reply[:10]}})
    update(session, {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": reply[10:]}})
    past.append({"role": "assistant", "text": reply})
    store().mkdir(parents=True, exist_ok=True)
    (store() / f"{session}.json").write_text(json.dumps(past))
    send(
        {
            "id": ident,
            "result": {
                "stopReason": "end_turn",
                "_meta": {"usage": {"input_tokens": 10 * len(past), "output_tokens": 5}},
            },
        }
    )


def capabilities() -> dict[str, Any]:
    """``loadSession``, and ``sessionCapabilities.resume`` when ``FAKE_ACP_RESUME`` is set (``1``: it
    has ``session/resume``; ``absent``: it advertises it all the same, and answers method not found)."""
    found: dict[str, Any] = {"loadSession": True}
    if os.environ.get("FAKE_ACP_RESUME"):
        found["sessionCapabilities"] = {"resume": {}}
    return found


def restore(method: str, ident: Any, session: str) -> None:
    """``session/load`` (the history replayed as ``session/update`` notifications) or ``session/resume``
    (none), or error ``-32002 Session not found`` (a lost conversation); a restored conversation may be
    prompted (:data:`opened`)."""
    if method == "session/resume" and os.environ.get("FAKE_ACP_RESUME") != "1":
        send({"id": ident, "error": {"code": -32601, "message": f"Method not found: {method}"}})
        return
    past = history(session)
    if past is None:
        send({"id": ident, "error": {"code": -32002, "message": f"Session not found: {session}"}})
        return
    for entry in past if method == "session/load" else []:
        kind = "user_message_chunk" if entry["role"] == "user" else "agent_message_chunk"
        update(session, {"sessionUpdate": kind, "content": {"type": "text", "text": entry["text"]}})
    opened.add(session)
    send({"id": ident, "result": None if method == "session/load" else {}})


def handle(message: dict[str, Any]) -> None:
    """One message: ``initialize`` → protocol 1, :func:`capabilities`; ``session/new`` → a new id;
    ``session/load`` and ``session/resume`` → :func:`restore`; ``session/prompt`` → :func:`prompt` (of a
    conversation made or restored here; else ``-32002``); ``session/cancel``
    ends the prompt under way; an answer to one of our own requests wakes :func:`ask`."""
    method, ident, params = message.get("method"), message.get("id"), message.get("params") or {}
    if method is None:  # an answer to one of our requests
        with answered:
            answers[ident] = message.get("result")
            answered.notify_all()
    elif method == "initialize":
        send(
            {
                "id": ident,
                "result": {"protocolVersion": 1, "agentCapabilities": capabilities(), "authMethods": []},
            }
        )
    elif method == "session/new":
        session = f"ses_{uuid.uuid4().hex[:20]}"
        opened.add(session)
        send({"id": ident, "result": {"sessionId": session}})
    elif method in ("session/load", "session/resume"):
        restore(method, ident, params.get("sessionId", ""))
    elif method == "session/prompt" and params.get("sessionId") not in opened:
        send({"id": ident, "error": {"code": -32002, "message": "Session not loaded"}})
    elif method == "session/prompt":
        threading.Thread(target=prompt, args=(ident, params), daemon=True).start()
    elif method == "session/cancel":
        cancelled.set()
    elif ident is not None:
        send({"id": ident, "error": {"code": -32601, "message": f"no method {method}"}})


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        print("0.1.0-fake-acp")
        return
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict):
            handle(message)
    time.sleep(0.05)


if __name__ == "__main__":
    main()
