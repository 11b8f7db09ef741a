"""The agent's account of a review's inline comments: what a review turn's prompt asks it to end its
answer with (:func:`request`), and the strict reading of it (:func:`parse`) — one home for the format,
``<id>: done|answered|declined [<commit>] — <text>`` lines in a fenced ``baton-replies`` block (the
format and why: the comment above :data:`INFO`). Read strictly: the last block counts, and a line not
of the form makes the whole account :class:`Unreadable` (the turn falls back to the whole answer);
only the turn's own comment ids count; texts are cut at :data:`TEXT_CHARS` and posted as written,
never read as anything. :mod:`baton.forge.writes.replies` posts each line in its comment's thread.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from baton.forge.data.model import ForgeEvent
from baton.forge.data.records import FeedbackKind

# The format is a fenced block whose info string is ``baton-replies``, one line per inline comment::
#
#     ```baton-replies
#     123: done — renamed the helper and its callers
#     124: done 4f2a9c1 — the test covers it now
#     125: answered — the timeout is in seconds (config.py says so)
#     126: declined — changing the signature would break the public API
#     ```
#
# ``<id>: <verdict> [<commit>] — <text>``: the verdict is ``done``, ``answered`` or ``declined``; a ``done``
# may name the commit (7 to 40 hex digits, at least one a digit) the agent made itself; the dash may be
# an em dash, an en dash, ``-`` or ``:``, and a line may start with a list bullet. Chosen because a model
# writes it reliably (a fenced block with a name, like a diff or a code example) and a person reads it as
# it is in the answer comment.
#
# Read strictly: the **last** such block of the answer counts; every non-blank line of it must have the
# form, or the whole account is :class:`Unreadable` (and the turn falls back to the whole answer) — a
# half-read account would answer some threads with a guess. Only the ids of the turn's own inline
# comments count: an unknown id is ignored (counted), a repeated id keeps its first line. Each text is
# cut at :data:`TEXT_CHARS`. The text is the agent's: it is posted as written (through
# :func:`baton.forge.writes.agent_answer.shown`), never read as anything.
INFO = "baton-replies"  # the fenced block's info string
MAX_THREADS = 100  # inline comments a turn answers in their threads; beyond, one comment says so
TEXT_CHARS = 2_000  # one account's text, cut with a marker
MAX_LINES = 10_000  # lines of a block read at most: a longer block is unreadable

_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*" + re.escape(INFO) + r"[ \t]*", re.IGNORECASE)
_LINE = re.compile(
    # possessive (*+): no two quantifiers may trade the same spaces (a line of 1 MB of them is linear)
    r"(?:[-*+]\s++)?#?(?P<id>\d{1,19})(?:\s*+[:.)])?\s*+(?P<verdict>done|answered|declined)\b(?P<rest>.*)",
    re.IGNORECASE,
)
_COMMIT = re.compile(r"\s++(?:in\s++)?`?(?P<sha>[0-9a-f]{7,40})`?(?=\s|$)", re.IGNORECASE)
_DASHES = "\u2014\u2013-:"  # an em dash, an en dash, a hyphen, a colon


class Verdict(StrEnum):
    """What the agent did about one inline comment."""

    DONE = "done"  # changed what it asks for
    ANSWERED = "answered"  # answered a question, or said why no change is needed
    DECLINED = "declined"  # did not do what it asks, saying why


@dataclass(frozen=True)
class Entry:
    """One line of the account."""

    verdict: Verdict
    text: str
    commit: str | None = None  # the commit a ``done`` names, lowercased


@dataclass(frozen=True)
class Account:
    """The account as read: an entry per known id that has a line; ``unknown`` lines ignored."""

    entries: dict[int, Entry] = field(default_factory=dict)
    unknown: int = 0


@dataclass(frozen=True)
class Unreadable:
    """Why the answer holds no account baton can read: the turn falls back to the whole answer."""

    reason: str


def inline_ids(events: Iterable[ForgeEvent]) -> tuple[tuple[int, ...], int]:
    """The ids of the inline comments of a turn's review events, in order, each once, at most
    :data:`MAX_THREADS`; and how many more there were."""
    seen: dict[int, None] = {}
    for event in events:
        if event.kind is FeedbackKind.REVIEW:
            seen.update((c.id, None) for c in event.comments)
    ids = tuple(seen)
    return ids[:MAX_THREADS], max(0, len(ids) - MAX_THREADS)


def request(ids: Sequence[int]) -> str:
    """What the prompt asks of a turn with inline comments ``ids``: the account, and its form."""
    listed = ", ".join(str(i) for i in ids)
    return (
        "When you are done, end your answer with an account of each review comment above, one line per"
        f" comment id ({listed}), in a fenced block named {INFO}, exactly in this form (baton posts each"
        " line as a reply in that comment's thread):\n\n"
        f"```{INFO}\n"
        "<id>: done — what you changed\n"
        "<id>: answered — your answer, when it asked a question or needs no change\n"
        "<id>: declined — why you did not do what it asks\n"
        "```\n\n"
        "Nothing else inside the block. After `done` you may name the commit if you made one yourself"
        " (`<id>: done 4f2a9c1 — ...`); otherwise baton names the commit it pushes for you."
    )


def parse(answer: str | None, ids: Sequence[int]) -> Account | Unreadable:
    """The account in ``answer`` for the inline comments ``ids``, or why there is none to read."""
    if not answer or not answer.strip():
        return Unreadable("the agent said nothing")
    block = _last_block(answer.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    if isinstance(block, Unreadable):
        return block
    known, entries, unknown = set(ids), dict[int, Entry](), 0
    for number, line in enumerate(block, 1):
        if not line.strip():
            continue
        read = _entry(line.strip())
        if read is None:
            return Unreadable(
                f"line {number} of the {INFO} block is not '<id>: done|answered|declined — text'"
            )
        comment_id, entry = read
        if comment_id not in known:
            unknown += 1
        elif comment_id not in entries:
            entries[comment_id] = entry
    return Account(entries, unknown)


def _last_block(lines: list[str]) -> list[str] | Unreadable:
    """The lines inside the last ``baton-replies`` fence."""
    opening = None
    for index in range(len(lines) - 1, -1, -1):
        if (match := _OPEN.fullmatch(lines[index])) is not None:
            opening = index, match.group(1)
            break
    if opening is None:
        return Unreadable(f"the answer has no {INFO} block")
    start, fence = opening
    close = re.compile(r" {0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}[ \t]*")
    for index in range(start + 1, min(len(lines), start + 2 + MAX_LINES)):
        if close.fullmatch(lines[index]):
            return lines[start + 1 : index]
    return Unreadable(f"the {INFO} block is not closed (or longer than {MAX_LINES:,} lines)")


def _entry(line: str) -> tuple[int, Entry] | None:
    match = _LINE.fullmatch(line)
    if match is None:
        return None
    verdict, rest, commit = Verdict(match.group("verdict").lower()), match.group("rest"), None
    if verdict is Verdict.DONE and (found := _COMMIT.match(rest)) and any(c.isdigit() for c in found["sha"]):
        commit, rest = found["sha"].lower(), rest[found.end() :]
    if rest and not rest[0].isspace() and rest[0] not in _DASHES:
        return None  # "done/answered", "done.": not one verdict
    text = rest.strip()
    text = (text.lstrip("-") if text.startswith("-") else text[1:] if text[:1] in _DASHES else text).strip()
    if len(text) > TEXT_CHARS:
        text = text[:TEXT_CHARS] + f" … ({len(text) - TEXT_CHARS:,} more characters in the agent's answer)"
    return int(match.group("id")), Entry(verdict, text, commit)
