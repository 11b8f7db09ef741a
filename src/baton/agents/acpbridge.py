"""The ACP bridge: one turn of an Agent Client Protocol agent run as baton runs every agent CLI — one process
per turn, the prompt on stdin, one JSON event per line on stdout — so the runner can start, wall, contain,
time out and kill it like any other (:mod:`baton.runner.process`). The adapter (:mod:`baton.agents.acp`)
starts this bridge as the agent; the bridge starts the ACP agent as its child, in the same walls and
process group, talks JSON-RPC with it over its stdio (:func:`turn`), answers its permission requests from
the run's access level (:func:`decide`), and says a failure in one line, never a traceback
(:func:`entry`). Standard library only, run with ``python -S`` inside the walls; not the
``agent-client-protocol`` SDK (asyncio and pydantic, ~0.3 s of imports a turn, for a handful of methods).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
import traceback
from typing import Any

PROTOCOL_VERSION = 1
RESUME, LOAD = "session/resume", "session/load"  # the two ways to restore a conversation (:func:`restore`)
# a resume refused with these (JSON-RPC's method not found, invalid params) is retried as a load
NOT_RESUMED = (-32601, -32602)
CANCEL_GRACE = 3.0  # seconds the agent has to end a cancelled turn
# the agent's last stderr lines, said with "the agent exited": an agent that stops during initialize says
# why only there (Copilot CLI: "BYOK providers require an explicit model"), and the run's error would
# otherwise be "initialize: the agent exited"
STDERR_TAIL = 5
# what a load replays of the history; the agent's state (its commands, its mode, its usage) is sent when
# the agent pleases, before the load's answer or after it (Copilot CLI, measured), and is never history
HISTORY = frozenset(
    {"user_message_chunk", "agent_message_chunk", "agent_thought_chunk", "tool_call", "tool_call_update"}
    | {"plan"}
)
ASK_TOOL = "ask_human"  # baton's MCP tool (baton.asking.server), allowed at every access level
ALLOWED = {  # the tool kinds each access level allows (ACP's ToolKind)
    "read": {"read", "search", "fetch", "think"},
    "edit": {"read", "search", "fetch", "think", "edit", "delete", "move"},
}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class Peer:
    """The JSON-RPC connection to the agent: requests out (answered in order of arrival), requests and
    notifications in (handled on the reader thread)."""

    def __init__(self, proc: subprocess.Popen[bytes], access: str) -> None:
        self.proc, self.access = proc, access
        self.next_id = 0
        self.waiting: dict[int, queue.Queue[dict[str, Any]]] = {}
        self.lock = threading.Lock()
        self.session = ""
        self.replaying = False  # what a restore sends (a load: the history) is not this turn's
        self.replayed = 0
        self.restored = ""  # how an existing conversation was restored (RESUME or LOAD)
        self.restore_ms = 0  # and how long the agent took to answer it
        self.said: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        self.relay = threading.Thread(target=self._relay, daemon=True)
        self.relay.start()
        threading.Thread(target=self._read, daemon=True).start()

    def _relay(self) -> None:
        """The agent's stderr, line by line, on to the bridge's (the run's log keeps all of it); the last
        non-blank lines kept for :meth:`exited`."""
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.buffer.write(raw)
                sys.stderr.buffer.flush()
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self.said.append(line[:500])

    def exited(self) -> str:
        """Why no answer will come: the agent exited, how, and its last words on stderr."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(1)
        self.relay.join(1)  # its last lines are written as it exits
        code = self.proc.returncode
        how = "" if code is None else f" (exit code {code})" if code >= 0 else f" (signal {-code})"
        tail = " | ".join(self.said)
        return f"the agent exited{how}" + (f"; its stderr ended: {tail}" if tail else "")

    def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps({"jsonrpc": "2.0", **message}) + "\n").encode()
        with self.lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send a request, wait for its answer: the whole response (``result`` or ``error``)."""
        with self.lock:
            self.next_id += 1
            ident = self.next_id
            box: queue.Queue[dict[str, Any]] = queue.Queue(1)
            self.waiting[ident] = box
        self.send({"id": ident, "method": method, "params": params})
        return box.get()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                emit({"type": "acp.stdout", "line": raw.decode("utf-8", "replace").rstrip("\n")[:2000]})
                continue
            if isinstance(message, dict):
                self._dispatch(message)
        if self.waiting:  # the agent is gone: no answer will come
            said = self.exited()
            for box in list(self.waiting.values()):
                box.put({"error": {"code": -32000, "message": said}})

    def _dispatch(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        if method is None:
            ident = message.get("id")
            box = self.waiting.pop(ident, None) if isinstance(ident, int) else None
            if box is not None:
                box.put(message)
        elif "id" in message:
            self._answer(message)
        elif method == "session/update":
            params = message.get("params")
            update = params.get("update") if isinstance(params, dict) else None
            if not isinstance(update, dict):
                return
            if self.replaying and update.get("sessionUpdate") in HISTORY:
                self.replayed += 1
            else:
                emit({"type": "acp.update", "update": update})

    def _answer(self, request: dict[str, Any]) -> None:
        if request.get("method") != "session/request_permission":
            error = {"code": -32601, "message": f"baton does not offer {request.get('method')!r}"}
            self.send({"id": request["id"], "error": error})
            return
        outcome, said = decide(self.access, _dict(request.get("params")))
        emit({"type": "acp.permission", **said})
        self.send({"id": request["id"], "result": {"outcome": outcome}})


def decide(access: str, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The answer to a permission request at ``access`` (ACP's outcome) and what to record of it: read
    allows reads only, edit reads and edits, full everything (:data:`ALLOWED`)."""
    tool = _dict(params.get("toolCall"))
    kind = tool.get("kind") if isinstance(tool.get("kind"), str) else "other"
    allow = access == "full" or kind in ALLOWED.get(access, set()) or asks(tool)
    options = [o for o in params.get("options") or [] if isinstance(o, dict)]
    wanted = ("allow_once", "allow_always") if allow else ("reject_once", "reject_always")
    chosen = next((o for w in wanted for o in options if o.get("kind") == w), None)
    said = {"tool": str(tool.get("title") or kind)[:200], "kind": kind, "allowed": allow, "access": access}
    if chosen is None:
        return {"outcome": "cancelled"}, said
    return {"outcome": "selected", "optionId": chosen.get("optionId")}, said


def asks(tool: dict[str, Any]) -> bool:
    """Whether a permission request is for baton's own ``ask_human`` (allowed at every access level:
    it only writes the question down): its title names it, and it is no edit or command."""
    title = tool.get("title")
    kind = tool.get("kind") or "other"
    return isinstance(title, str) and ASK_TOOL in title and kind not in ("edit", "delete", "move", "execute")


def known(peer: Peer, info: dict[str, Any], session: str) -> bool:
    """Whether the agent still lists ``session`` (an agent whose load errors do not say "not found",
    as OpenCode's generic ``-32603``): False when it does not, or cannot list (the load's error then
    stands for a lost conversation)."""
    if "list" not in _dict(_dict(info.get("agentCapabilities")).get("sessionCapabilities")):
        return False
    listed = _dict(peer.call("session/list", {}).get("result")).get("sessions")
    return isinstance(listed, list) and any(_dict(s).get("sessionId") == session for s in listed)


def listed(peer: Peer, info: dict[str, Any], session: str, cwd: str) -> bool:
    """Whether the agent lists ``session`` among those of ``cwd`` (True when it cannot list)."""
    if "list" not in _dict(_dict(info.get("agentCapabilities")).get("sessionCapabilities")):
        return True
    listed = _dict(peer.call("session/list", {"cwd": cwd}).get("result")).get("sessions")
    return isinstance(listed, list) and any(_dict(s).get("sessionId") == session for s in listed)


def restore(
    peer: Peer, info: dict[str, Any], session: str, cwd: str, servers: list[Any], resume: bool = True
) -> tuple[str, dict[str, Any]]:
    """``session/resume`` of ``session`` where the agent advertises it (``agentCapabilities.
    sessionCapabilities.resume``: the conversation restored without its history sent back), else
    ``session/load`` (the history replayed as ``session/update`` notifications, only counted); also
    ``session/load`` when the resume is refused as a method the agent does not have or parameters it
    does not take (:data:`NOT_RESUMED`: an agent that advertises more than it has), and when not
    ``resume`` (the adapter's choice). The method used and its whole answer. What either sends
    meanwhile is not this turn's (only counted)."""
    params = {"sessionId": session, "cwd": cwd, "mcpServers": servers}
    peer.replaying = True
    try:
        if resume and "resume" in _dict(_dict(info.get("agentCapabilities")).get("sessionCapabilities")):
            resumed = peer.call(RESUME, params)
            if _dict(resumed.get("error")).get("code") not in NOT_RESUMED:
                return RESUME, resumed
        return LOAD, peer.call(LOAD, params)
    finally:
        peer.replaying = False


def turn(
    peer: Peer,
    session: str | None,
    cwd: str,
    prompt: str,
    bound: bool = False,
    servers: list[Any] | None = None,
    resume: bool = True,
) -> int:
    """One turn; the exit code: 0 when it ends ``end_turn``, 2 for a lost conversation, else 1.

    1. ``initialize`` (protocol version 1, no file-system or terminal capabilities: the agent uses its
       own tools, inside the walls);
    2. ``session/new`` with the working directory and ``servers`` (ACP's stdio ``McpServer`` objects),
       or :func:`restore` of ``session``: ``session/resume`` where the agent has it (and ``resume``),
       else ``session/load``; a restore the agent refuses prints
       ``{"type": "acp.error", "session_not_found": true, …}`` when it does not list the conversation,
       and so does, before any restore, a conversation that an agent binding conversations to their
       directory (``bound``) lists for another directory only (it would load it, then fail every prompt);
    3. ``session/prompt`` with the prompt (read from stdin, never argv), every ``session/update`` printed
       as ``{"type": "acp.update", "update": …}``, and each ``session/request_permission`` answered by
       :func:`decide` (printed as ``acp.permission``: nothing waits on a person; any other request from
       the agent is refused, method not found);
    4. ``{"type": "acp.result", "stop_reason": …, "session_id": …}``.

    Between 2 and 3, ``{"type": "acp.session", "session_id": …, "restored": "session/resume" |
    "session/load" | "", "replayed": N, "restore_ms": N, "agent": <its initialize answer>}``.
    """
    started = peer.call(
        "initialize",
        {
            "protocolVersion": PROTOCOL_VERSION,
            "clientCapabilities": {"fs": {"readTextFile": False, "writeTextFile": False}, "terminal": False},
            "clientInfo": {"name": "baton", "version": "1"},
        },
    )
    if "error" in started:
        emit({"type": "acp.error", "step": "initialize", "error": started["error"]})
        return 1
    info = _dict(started.get("result"))
    if session:
        if bound and not listed(peer, info, session, cwd) and known(peer, info, session):
            # bound to another directory (a move to another BATON_HOME that could not be rebound): the
            # agent would load it, then fail every prompt (and list it here once loaded): a lost
            # conversation, recovered with a recap
            said = f"the conversation {session} is bound to another directory than {cwd}"
            emit({"type": "acp.error", "step": "session restore", "session_not_found": True, "error": said})
            return 2
        began = time.monotonic()
        method, loaded = restore(peer, info, session, cwd, servers or [], resume)
        peer.restore_ms = round((time.monotonic() - began) * 1000)
        if "error" in loaded:
            lost = not known(peer, info, session)
            error = {"type": "acp.error", "step": method, "session_not_found": lost}
            emit({**error, "error": loaded["error"]})
            return 2 if lost else 1
        peer.session, peer.restored = session, method
    else:
        made = peer.call("session/new", {"cwd": cwd, "mcpServers": servers or []})
        result = made.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("sessionId"), str):
            emit({"type": "acp.error", "step": "session/new", "error": made.get("error")})
            return 1
        peer.session = result["sessionId"]
    restored = {"restored": peer.restored, "replayed": peer.replayed, "restore_ms": peer.restore_ms}
    emit({"type": "acp.session", "session_id": peer.session, **restored, "agent": info})
    answered = peer.call(
        "session/prompt", {"sessionId": peer.session, "prompt": [{"type": "text", "text": prompt}]}
    )
    result = _dict(answered.get("result"))
    if "error" in answered:
        emit({"type": "acp.error", "step": "session/prompt", "error": answered["error"]})
        return 1
    stop = result.get("stopReason")
    emit(
        {
            "type": "acp.result",
            "stop_reason": stop,
            "session_id": peer.session,
            "usage": result.get("usage"),
            "meta": result.get("_meta"),
        }
    )
    return 0 if stop == "end_turn" else 1


def options(argv: list[str]) -> tuple[dict[str, str], list[str]] | None:
    """``acpbridge --access LEVEL --cwd DIR [--session ID] [--bound 1] [--secret-env NAME] [--mcp JSON]
    [--restore load] -- AGENT ARGV…``: the options and the agent's argv; None (said on stderr) when they
    are not that."""
    args = {
        "--access": "read",
        "--cwd": os.getcwd(),
        "--session": "",
        "--bound": "",
        "--secret-env": "",
        "--mcp": "[]",
        "--restore": "",
    }
    while argv and argv[0] != "--":
        if argv[0] not in args or len(argv) < 2:
            sys.stderr.write(f"acpbridge: unknown or incomplete option {argv[0]!r}\n")
            return None
        args[argv[0]], argv = argv[1], argv[2:]
    if not argv[1:]:
        sys.stderr.write("acpbridge: no agent command after --\n")
        return None
    return args, argv[1:]


def start(command: list[str], secret_env: str, access: str) -> Peer | str:
    """The agent started and read, or why it could not be. ``secret_env``: the variable that gets a
    password made here, for this turn only (so it is in no argv, log or file, nor in baton's memory)."""
    env = dict(os.environ)
    if secret_env:
        env[secret_env] = secrets.token_urlsafe(32)
    try:
        proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
    except OSError as exc:
        return f"cannot start {os.path.basename(command[0])}: {reason(exc)}"
    try:
        return Peer(proc, access)
    except RuntimeError as exc:  # no thread to read the agent with
        proc.kill()
        proc.wait()
        return f"cannot read {os.path.basename(command[0])}: {reason(exc)}"


def main(argv: list[str]) -> int:
    """One turn (see the module docstring and :func:`options`); the prompt on stdin. ``--bound``: the
    agent binds a conversation to its directory (a load it does not list for ``--cwd`` is lost);
    ``--secret-env``: the agent's variable for the password of the HTTP server it starts for itself;
    ``--restore load``: a conversation is loaded even where the agent offers ``session/resume``."""
    parsed = options(argv)
    if parsed is None:
        return 2
    args, command = parsed
    prompt = sys.stdin.buffer.read().decode("utf-8", "replace")
    peer = start(command, args["--secret-env"], args["--access"])
    if isinstance(peer, str):
        return fail("start", peer)
    proc = peer.proc

    # baton's timeout or cancel: session/cancel, a moment (CANCEL_GRACE) for the agent to stop the turn,
    # then the agent is ended
    def stop(_signum: int, _frame: object) -> None:
        if peer.session:
            with contextlib.suppress(OSError):
                peer.send({"method": "session/cancel", "params": {"sessionId": peer.session}})
        try:
            threading.Timer(CANCEL_GRACE, proc.kill).start()
        except RuntimeError:  # no thread for the grace: end it now
            proc.kill()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        servers = json.loads(args["--mcp"])
        resume = args["--restore"] != "load"
        code = turn(
            peer, args["--session"] or None, args["--cwd"], prompt, bool(args["--bound"]), servers, resume
        )
    finally:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(CANCEL_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
    return code


def reason(exc: BaseException) -> str:
    """Why a process or thread could not start, in words: EAGAIN (or Python's "can't start new thread")
    is the run's process limit."""
    if isinstance(exc, BlockingIOError) or "can't start new thread" in str(exc):
        return "the run may start no more processes or threads (its process limit, BATON_RUN_PIDS)"
    return f"{exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)


def fail(step: str, said: str) -> int:
    """One line on stderr and one error event, never a traceback (the run's log shows both)."""
    sys.stderr.write(f"acpbridge: {said}\n")
    with contextlib.suppress(OSError):
        emit({"type": "acp.error", "step": step, "error": said})
    return 1


def entry(argv: list[str]) -> int:
    """:func:`main`, whose unforeseen failure is one line naming where, not a traceback in the run's log."""
    try:
        return main(argv)
    except Exception as exc:  # the last word of a process whose stderr is the run's log
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" (acpbridge.py line {frames[-1].lineno})" if frames else ""
        return fail("bridge", f"{type(exc).__name__}: {reason(exc)}{where}")


if __name__ == "__main__":
    sys.exit(entry(sys.argv[1:]))
