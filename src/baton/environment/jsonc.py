"""JSON with comments, as devcontainer.json is written (the spec's "jsonc": VS Code's reader): ``//``
and ``/* */`` comments and trailing commas are allowed. They are removed outside strings, character by
character (a ``//`` inside a URL string is kept), and the rest is read by :func:`json.loads`."""

from __future__ import annotations

import json
import re
from typing import Any

_TRAILING = re.compile(r",(\s*[\]}])")


def loads(text: str) -> Any:
    """The value of JSONC ``text``; :class:`ValueError` when it is not (comments and commas aside) JSON."""
    return json.loads(_without_trailing_commas(_without_comments(text)))


def _without_comments(text: str) -> str:
    out: list[str] = []
    i, n, in_string = 0, len(text), False
    while i < n:
        char = text[i]
        if in_string:
            out.append(char)
            if char == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ValueError("a /* comment is never closed")
            out.append(" ")
            i = end + 2
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)


def _without_trailing_commas(text: str) -> str:
    """Commas before a closing bracket, outside strings (strings are skipped by splitting on them)."""
    parts = re.split(r'("(?:\\.|[^"\\])*")', text)
    return "".join(p if i % 2 else _TRAILING.sub(r"\1", p) for i, p in enumerate(parts))
