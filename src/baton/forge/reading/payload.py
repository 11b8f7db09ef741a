"""Typed, bounded reads of a forge's webhook payload, which is hostile even when signed: each read
checks the field's type and raises :class:`~baton.forge.reading.webhook.Malformed` (naming the field) when a
required one is missing or wrong; texts lose their control characters (newlines and tabs stay) and are
cut, with a marker, to :data:`BODY_CHARS` or :data:`TITLE_CHARS`; a link is kept only when it is
``http(s)`` without spaces. And :func:`mentions`: whether a text names baton (``@baton``) as a word, as
a forge would link it, outside quotes and code. :mod:`baton.forge.reading.events` reads events with these."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from baton.forge.data.model import Actor
from baton.forge.reading.webhook import Malformed

BODY_CHARS = 65_536  # a comment's, review's or issue's text
TITLE_CHARS = 1_024  # a title; also names, paths and the like

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SHA = re.compile(r"[0-9a-f]{7,64}")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+).+?\1")
_QUOTE = re.compile(r"\s*>")

Payload = dict[str, Any]


def obj(data: Payload, name: str, where: str) -> Payload:
    value = data.get(name)
    if not isinstance(value, dict):
        raise Malformed(f"{where}.{name} is missing or not an object")
    return value


def integer(data: Payload, name: str, where: str) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise Malformed(f"{where}.{name} is missing or not a positive integer")
    return value


def string(data: Payload, name: str, where: str, *, required: bool = False, limit: int = TITLE_CHARS) -> str:
    """A string field, cleaned and cut; ``null`` or absent is ``""`` unless ``required``."""
    value = data.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise Malformed(f"{where}.{name} is missing or not a string")
    return clean(value, limit)


def text(data: Payload, name: str, where: str) -> str:
    return string(data, name, where, limit=BODY_CHARS)


def sha(data: Payload, name: str, where: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not _SHA.fullmatch(value.lower()):
        raise Malformed(f"{where}.{name} is missing or not a commit hash")
    return value.lower()


def link(data: Payload, name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or len(value) > 2_048 or not value.startswith(("https://", "http://")):
        return ""
    return "" if any(c.isspace() or ord(c) < 32 or c == "\x7f" for c in value) else value


def time(data: Payload, *names: str) -> float:
    """The first of ``names`` that is an ISO 8601 time, in seconds since the epoch (0.0: none); also
    GitLab's older webhook spelling, ``2024-05-01 12:00:00 UTC``."""
    for name in names:
        value = data.get(name)
        if isinstance(value, str) and len(value) <= 64:
            try:
                return datetime.fromisoformat(value.replace(" UTC", "+00:00")).timestamp()
            except ValueError:
                continue
    return 0.0


def is_int(value: Any) -> bool:
    """A line number or the like: a positive integer (not a bool) of a sane size."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31


def clean(text: str, limit: int) -> str:
    """``text`` without control characters (newlines and tabs stay), cut to ``limit`` characters with
    a marker saying how much was left out."""
    if len(text) > limit:
        more = len(text) - limit
        text = text[:limit] + f"\n[… cut: {more:,} more characters were left out]"
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def actor(data: Any, where: str, association: Any = None) -> Actor:
    if not isinstance(data, dict):
        raise Malformed(f"{where} is missing or not an object")
    login = string(data, "login", where, required=True, limit=255)
    bot = data.get("type") == "Bot" or login.lower().endswith("[bot]") or data.get("is_bot") is True
    assoc = association if isinstance(association, str) and 0 < len(association) <= 64 else None
    return Actor(login, bot, assoc)


def repo_name(p: Payload) -> str:
    name = string(obj(p, "repository", "payload"), "full_name", "payload.repository", required=True)
    if name.count("/") != 1 or any(c.isspace() for c in name) or len(name) > 255:
        raise Malformed("payload.repository.full_name is not an owner/name")
    return name


def from_fork(pr: Payload, where: str) -> bool:
    head, base = obj(pr, "head", where), obj(pr, "base", where)
    head_repo, base_repo = head.get("repo"), base.get("repo")
    if not isinstance(head_repo, dict) or not isinstance(base_repo, dict):
        return True  # the head repository is gone (or unnamed): treated as a fork
    names = head_repo.get("full_name"), base_repo.get("full_name")
    if all(isinstance(n, str) for n in names):
        return str(names[0]).lower() != str(names[1]).lower()
    ids = head_repo.get("id", head.get("repo_id")), base_repo.get("id", base.get("repo_id"))
    if all(isinstance(i, int) for i in ids):
        return ids[0] != ids[1]
    return True


# -- mentions ---------------------------------------------------------------------------------------


def mentions(text: str, mention: str) -> bool:
    """``mention`` (``@baton``) named as a word in ``text``, case-insensitively: not inside an e-mail
    address or a longer name (``@batonbot``, ``@baton-ci``, ``@baton/team``), a quoted line (``>``), a
    fenced code block or inline code."""
    name = mention.strip().removeprefix("@")
    if not name:
        return False
    word = re.compile(rf"(?<![\w.+\-/@`])@{re.escape(name)}(?![\w\-/@]|\.\w)", re.IGNORECASE)
    fence: str | None = None
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        opening = _FENCE.match(line)
        if fence is not None:
            if (
                opening
                and opening[1][0] == fence[0]
                and len(opening[1]) >= len(fence)
                and not line.strip(" " + fence[0])
            ):
                fence = None
            continue
        if opening:
            fence = opening[1]
            continue
        if _QUOTE.match(line):
            continue
        if word.search(_INLINE_CODE.sub(" ", line)):
            return True
    return False
