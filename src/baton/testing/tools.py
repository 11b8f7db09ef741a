"""The tool-call marker the three mock model APIs share: ``[[tool:NAME ARGS]]`` in the text of the latest
user turn asks the mock to answer with a call of tool ``NAME`` in its API's own shape, which is how a
test makes a REAL agent CLI run a tool of its choosing, offline. Several markers make several calls in
one reply. :func:`tool_marker` writes one; :func:`find_calls` reads them all; a marker that cannot be
parsed raises :class:`MarkerError`, which each mock answers with HTTP 400, so a typo fails the run
loudly instead of quietly answering with text.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from typing import Any

TOOL_MARKER = re.compile(r"\[\[tool:(?P<name>[A-Za-z_][\w.-]*)(?P<args>.*?)\]\]", re.DOTALL)


class MarkerError(ValueError):
    """A tool marker whose arguments are neither ``key=value`` pairs nor one JSON object."""


def tool_input(args: str) -> dict[str, Any]:
    """A marker's arguments as a tool input: nothing, ``key=value`` pairs (shell-style quoting, string
    values: ``[[tool:Read file_path=README.md]]``, ``[[tool:Bash command="ls -la"]]``) or one JSON
    object (``[[tool:Read {"file_path": "README.md", "limit": 5}]]``); it cannot contain ``]]``."""
    args = args.strip()
    if args.startswith("{"):
        try:
            value = json.loads(args)
        except json.JSONDecodeError as exc:
            raise MarkerError(f"tool marker arguments are not JSON: {args!r} ({exc})") from exc
        if not isinstance(value, dict):
            raise MarkerError(f"tool marker arguments are not a JSON object: {args!r}")
        return value
    try:
        words = shlex.split(args)
    except ValueError as exc:
        raise MarkerError(f"tool marker arguments cannot be split: {args!r} ({exc})") from exc
    if any("=" not in w or w.startswith("=") for w in words):
        raise MarkerError(f"tool marker arguments are not key=value pairs: {args!r}")
    return dict(w.split("=", 1) for w in words)


def tool_marker(name: str, **args: str) -> str:
    """The marker asking the mock for a call of tool ``name`` with ``args`` (strings)."""
    pairs = "".join(f" {key}={shlex.quote(value)}" for key, value in args.items())
    return f"[[tool:{name}{pairs}]]"


def find_calls(text: str, offered: Iterable[str] = ()) -> list[tuple[str, dict[str, Any]]]:
    """Every marker in ``text``, in order, as (tool name, input), each name as :func:`resolve` finds
    it among the ``offered`` tools; raises :class:`MarkerError`."""
    names = tuple(offered)
    return [(resolve(m["name"], names), tool_input(m["args"])) for m in TOOL_MARKER.finditer(text)]


def resolve(name: str, offered: tuple[str, ...]) -> str:
    """``name`` if offered, else the one offered tool that is ``name`` qualified by its MCP server
    (``mcp__baton__ask_human``, ``baton__ask_human``, ``baton-ask_human``, ``baton_ask_human``: each
    CLI's spelling), so one marker ``[[tool:ask_human …]]`` calls baton's tool through every CLI; else
    ``name`` (the CLI then says the tool is not found)."""
    if name in offered:
        return name
    found = [o for o in offered if len(o) > len(name) and o.endswith(name) and o[-len(name) - 1] in "_-."]
    return found[0] if len(found) == 1 else name
