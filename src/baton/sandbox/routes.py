"""What baton's model gateway lends the model credential for: the model API's own calls, per API, with
their methods. An agent's token reaches generation, token counting and the models list; every other
call of the vendor's API (files, batches, the organisation, admin keys, fine-tuning) is refused (403,
audited), so a prompt-injected agent cannot use the operator's key for more than its turn needs.

A path is judged relative to the upstream's base URL (whose own path, ``/v1`` or a team gateway's
``/anthropic``, is the operator's), after a refusal of anything that could climb out of it: a ``.`` or
``..`` segment, an empty one, a backslash, or a percent-encoded dot, slash or backslash (which a server
behind may decode into one).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from baton.agents.base import ModelApi

__all__ = ["refusal"]

_V1 = r"(?:/v1)?"  # a base URL of ``https://api.openai.com/v1`` or of ``https://api.openai.com``
_GEMINI = r"/v1(?:beta|alpha)?"
_GENERATE = "generateContent|streamGenerateContent|countTokens"
_CALLS: dict[ModelApi, tuple[tuple[str, re.Pattern[str]], ...]] = {
    ModelApi.ANTHROPIC: (
        ("POST", re.compile(rf"{_V1}/messages(?:/count_tokens)?")),
        ("GET", re.compile(rf"{_V1}/models(?:/[^/]+)?")),
    ),
    ModelApi.OPENAI: (
        ("POST", re.compile(rf"{_V1}/responses(?:/compact)?")),
        ("POST", re.compile(rf"{_V1}/chat/completions")),
        ("GET", re.compile(rf"{_V1}/models(?:/[^/]+)?")),
    ),
    ModelApi.GEMINI: (
        (
            "POST",
            re.compile(rf"{_GEMINI}/models/[^/:]+:(?:{_GENERATE})"),
        ),
        ("GET", re.compile(rf"{_GEMINI}/models(?:/[^/:]+)?")),
    ),
}
_CLIMBS = re.compile(r"%(?:2e|2f|5c)|\\", re.IGNORECASE)


def refusal(api: ModelApi, method: str, path: str) -> str | None:
    """Why the gateway refuses ``method`` on ``path`` (relative to the upstream's base) for ``api``;
    None for one of the API's model calls."""
    if _CLIMBS.search(path) or any(s in ("", ".", "..") for s in path.split("/")[1:]):
        return f"baton's model gateway refuses a path that could leave the model API's base: {path[:200]!r}"
    wanted = unquote(path)  # a model's name may come encoded (":" as %3A)
    head = "GET" if method == "HEAD" else method
    if any(head == m and pattern.fullmatch(wanted) for m, pattern in _CALLS[api]):
        return None
    return (
        f"baton's model gateway lends the model key only for the model's own calls ({api.value}'s "
        f"generation, token counts and models list), not {method} {path[:200]}"
    )
