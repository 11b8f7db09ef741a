"""A turn's question and the answer that resumes its thread. The agent's ``ask_human`` call (the MCP
server of :mod:`baton.asking.server`) writes the question into the key's temp dir; the runner gives each
turn the server (:func:`server`), clears the file before the agent starts and reads it back after
(:func:`take`), bounded and checked like any input from the agent; a person's answer becomes the next
turn's prompt (:func:`answer_prompt`), which says what was asked and who answered.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baton.agents.base import McpServer
from baton.asking import server as _server
from baton.workspace.nofollow import read_regular

FILE = "baton-question.json"  # in the key's temp dir (the agent's TMPDIR, inside its walls)
MAX_FILE = 256 * 1024  # a question file larger than this was not written by the server: ignored
MAX_ANSWER = 100_000  # characters of a person's answer a turn takes
ASK_GRACE = 60.0  # seconds an agent has to end its turn after asking, before baton ends it


@dataclass(frozen=True)
class Question:
    """What the agent asked: the question and, if it offered a choice, the options."""

    text: str
    options: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "options": list(self.options)}

    @classmethod
    def from_json(cls, data: Any) -> Question | None:
        """The question a stored value holds, or None when it holds none."""
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            return None
        options = data.get("options") or []
        return cls(data["text"], tuple(o for o in options if isinstance(o, str)))

    def shown(self) -> str:
        """The question with its options, as a person reads it (plain text)."""
        options = "".join(f"\n  {n}. {o}" for n, o in enumerate(self.options, 1))
        return self.text + (f"\nOptions:{options}" if options else "")


def path(tmp: Path) -> Path:
    """Where a turn's question is written, in the key's temp dir ``tmp``."""
    return tmp / FILE


def server(tmp: Path) -> McpServer:
    """The ``baton`` MCP server for a turn of the key whose temp dir is ``tmp``: baton's Python running
    the server's file isolated (``-I -S``: no site, no user paths, no baton package import)."""
    program = Path(_server.__file__).with_name("server_run.py")  # the module compiled: imported above
    return McpServer(_server.NAME, sys.executable, ("-I", "-S", str(program), str(path(tmp))))


def overdue(tmp: Path, now: float | None = None) -> str | None:
    """Why the turn must stop now: its agent asked a person more than :data:`ASK_GRACE` seconds ago and
    has not ended its turn (the tool told it to); None otherwise. A stat, asked every 0.1 s while it
    runs."""
    try:
        asked = path(tmp).lstat().st_mtime
    except OSError:
        return None
    waited = (time.time() if now is None else now) - asked
    if waited <= ASK_GRACE:
        return None
    return f"the agent asked a person {waited:.0f} s ago and went on instead of ending its turn: stopped"


def clear(tmp: Path) -> None:
    """Remove an earlier turn's question, before the agent starts."""
    path(tmp).unlink(missing_ok=True)


def take(tmp: Path) -> Question | None:
    """The question this turn's agent asked (the file removed), or None. A file that is not a question
    the server could have written (too large, not JSON, a link) counts as none."""
    found = path(tmp)
    try:
        if found.lstat().st_size > MAX_FILE:
            return None
        raw = read_regular(found)  # never through a link the agent swapped in: baton reads it, not the agent
        data = json.loads(raw) if len(raw) <= MAX_FILE else None
    except (OSError, ValueError):
        return None
    finally:
        found.unlink(missing_ok=True)
    asked = _server.question_of(data)
    if isinstance(asked, str):
        return None
    return Question(asked["question"], tuple(asked["options"]))


def refused(permissions: list[str], access: str) -> Question:
    """The question a turn puts to a person when its agent asked for ``permissions`` above the run's
    ``access`` and was refused (``on_permission = "ask"``): the answer is words for the agent, never a
    grant (what a thread may do is baton's configuration)."""
    asked = "; ".join(permissions[:5]) + (
        f"; and {len(permissions) - 5} more" if len(permissions) > 5 else ""
    )
    return Question(
        f"The agent asked for permission to use {asked}, which this thread's access ({access}) does not "
        "allow, and was refused. How should it go on? (Your answer reaches the agent as words; it does not "
        "change what the thread may do.)"
    )


def answer_prompt(question: Question, answer: str, by: str) -> str:
    """The next turn's prompt: what the agent asked and ``by``'s answer (quoted as data)."""
    if len(answer) > MAX_ANSWER:
        answer = answer[:MAX_ANSWER] + f"\n…({len(answer) - MAX_ANSWER} more characters cut)"
    return (
        f"You asked a person a question and your turn ended. The question was:\n\n{_quote(question.shown())}"
        f"\n\n{by} answered:\n\n{_quote(answer)}\n\nContinue the work with this answer."
    )


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" for line in text.replace("\x00", "\ufffd").splitlines() or [""])
