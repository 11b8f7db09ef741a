"""The prompt of a feedback turn: the forge events coalesced into it, each rendered with its kind's
template (``forge-<kind>.txt``, shipped in the package and overridable in ``$BATON_HOME/templates/``, like
the runner's), in the order they arrived, each naming who, where and the link. Only a template is ever
parsed (``string.Template.safe_substitute``): what came from the forge is a value, substituted once, so a
``$HOME`` or ``${x}`` in a comment reaches the agent as written; an untrusted actor's words go through
the ``context`` template, quoted line by line (:func:`quote`). Everything is bounded (the constants
below: a review's comments, a diff hunk, a CI failure's checks and log tails, the whole prompt), cut
with a marker. The templates' placeholders: docs/forge.md (Feedback and its prompts).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from string import Template

from baton.forge.data.model import FailedCheck, ForgeEvent, ForgeKind, ReviewComment, Trigger
from baton.forge.data.records import FeedbackKind
from baton.forge.kinds.intake import split
from baton.forge.kinds.registry import facts
from baton.forge.reading.payload import BODY_CHARS, clean
from baton.forge.turn import accounts
from baton.models import Access

PROMPT_CHARS = 1_000_000
REVIEW_COMMENTS = 200
REVIEW_CHARS = 200_000
HUNK_LINES = 20
HUNK_CHARS = 4_000
CHECKS = 50
STEPS = 30
ANNOTATIONS = 50
ANNOTATION_CHARS = 1_000
LOG_CHARS = 16_384
LINE_CHARS = 1_024  # a login, a title, a path, a name: one line each

_BACKTICKS = re.compile(r"`+")

_NO_BODY = {FeedbackKind.REVIEW: "(The review has no summary of its own.)"}

# how a conflict turn ends, by what its access lets the agent do (``$finish``): at ``edit`` the walls
# keep git's index and refs read-only, so it cannot commit; baton concludes the merge for it
_FINISH = {
    Access.READ: "You cannot change files at this access level: say how each conflict should be "
    "resolved (which side, or how to combine them), and a person or a later turn applies it.",
    Access.EDIT: "Edit the conflicting files until no conflict marker (<<<<<<<, =======, >>>>>>>) is left "
    "and both sides' intent is kept. Do not run git add or git commit (you cannot at this access "
    "level): baton concludes the merge with your files after your turn, and only when no marker is "
    "left. Then run the tests that cover what you resolved, and say what you did.",
    Access.FULL: "Resolve the conflicts keeping the intent of both sides, then `git add` the files and "
    "`git commit --no-edit` to conclude the merge (baton commits what you leave uncommitted, and never "
    "concludes a merge with a conflict marker left). Run the tests that cover what you resolved, and "
    "say what you did.",
}

_CONCLUSIONS = {
    "failure": "failed",
    "timed_out": "timed out",
    "startup_failure": "failed to start",
    "cancelled": "was cancelled",
    "error": "errored",
}


def load_template(kind: FeedbackKind, home: Path) -> Template:
    """``forge-<kind>.txt`` from ``$BATON_HOME/templates/``, else the package's."""
    name = f"forge-{kind.value}.txt"
    override = home / "templates" / name
    if override.is_file():
        return Template(override.read_text())
    return Template(resources.files("baton").joinpath("templates", name).read_text())


def render_turn(
    home: Path,
    events: list[ForgeEvent],
    *,
    quoted: bool = False,
    access: Access = Access.EDIT,
    forge_kind: str = ForgeKind.GITHUB,
) -> str:
    """One prompt for a turn of coalesced events (arrival order). ``quoted``: the turn runs read-only
    for an untrusted actor, and every event is presented as quoted context, not as an instruction.
    ``access``: the turn's, so that it is asked only what it can do. A turn with a review's inline
    comments ends asking for the agent's account of each (:func:`baton.forge.turn.accounts.request`), which
    baton posts in each comment's thread; a quoted turn is asked none. ``forge_kind``: the forge's, which
    names a pull request as it does (GitLab's merge request ``!N``)."""
    if not events:
        raise ValueError("a turn needs at least one event")
    ids = () if quoted else accounts.inline_ids(events)[0]
    ask = accounts.request(ids) if ids else ""
    parts: list[str] = []
    room = PROMPT_CHARS - (len(ask) + 7 if ask else 0)
    for number, event in enumerate(events, 1):
        part = render_event(home, event, quoted=quoted, access=access, forge_kind=forge_kind)
        if len(part) > room:
            parts.append(cut(part, max(room, 0), "this event was cut: the prompt is full"))
            if left := len(events) - number:
                parts.append(f"[… {left:,} more events of this turn were left out: the prompt is full]")
            break
        parts.append(part)
        room -= len(part) + 7  # and its separator
    text = "\n\n---\n\n".join(parts)
    if ask:
        text += f"\n\n---\n\n{ask}"
    if len(events) > 1:
        preface = (
            f"{len(events)} things happened on the forge since your last turn, in the order they arrived."
        )
        text = f"{preface}\n\n{text}"
    return text


def render_event(
    home: Path,
    event: ForgeEvent,
    *,
    quoted: bool = False,
    access: Access = Access.EDIT,
    forge_kind: str = ForgeKind.GITHUB,
) -> str:
    """One event with its kind's template (the ``context`` one when ``quoted``)."""
    where = _where(event, forge_kind)
    values = {
        "who": _who(event),
        "where": where,
        "url": _line(event.url) or "no link given",
        "title": _line(event.title) or "(untitled)",
        "body": _text(event.body) or _NO_BODY.get(event.kind, "(no text)"),
        "head": event.head_sha[:12] if event.head_sha else "(unknown)",
        "how": _how(event),
        "finish": _FINISH[access],
    }
    if quoted or event.kind is FeedbackKind.CONTEXT:
        values["url"] = _line(event.url) or where
        values["quoted"] = quote(_material(event))
        kind = FeedbackKind.CONTEXT
    else:
        kind = event.kind
        if kind is FeedbackKind.REVIEW:
            values["comments"] = review_comments(event)
        if kind is FeedbackKind.CI_FAILURE:
            values["checks"] = failed_checks(event)
    # only the template is parsed: each value is substituted once, as it is
    return load_template(kind, home).safe_substitute(values).strip()


def quote(text: str) -> str:
    """Every line of ``text`` prefixed with ``> ``, whatever breaks it: a line break of any kind
    (``str.splitlines``) starts a new quoted line, so no line escapes the quote. An untrusted actor's
    words (``quoted=True``, or a ``context`` event) come here through the ``context`` template:
    attributed, said not to be an instruction."""
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines()) or ">"


def cut(text: str, limit: int, what: str) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n\n[… {what}: {len(text) - limit:,} more characters were left out]"


# -- the parts --------------------------------------------------------------------------------------


def _line(text: str | None) -> str:
    return " ".join(clean(text or "", LINE_CHARS).split())


def _text(text: str) -> str:
    # room for the marker of a text intake cut already
    return clean(text, BODY_CHARS + 100).strip()


def _who(event: ForgeEvent) -> str:
    actor = event.actor
    notes = [actor.association.lower()] if actor.association and actor.association != "NONE" else []
    if actor.bot:
        notes.append("a bot")
    login = _line(actor.login) or "someone"
    return f"{login} ({', '.join(notes)})" if notes else login


def _where(event: ForgeEvent, forge_kind: str) -> str:
    repo = _line(event.repo)
    if event.number <= 0:  # a commit status whose pull request is not known yet: its commit says
        return repo
    kind = facts(forge_kind)
    said = f"{repo} {kind.pr_noun if event.is_pr else 'issue'} {kind.ref(event.number, event.is_pr)}"
    intake, place = split(event.source)
    return f"{said} (said in {_line(intake)}: {_line(place)})" if intake else said


def _how(event: ForgeEvent) -> str:
    if event.trigger is Trigger.LABEL:
        return f'added the label "{_line(event.signature)}"'
    if event.trigger is Trigger.ASSIGN:
        return "assigned it to you"
    if event.trigger is Trigger.MENTION:
        return "mentioned you"
    return "asked you"


def _material(event: ForgeEvent) -> str:
    """What an event says, for the context template to quote."""
    if event.kind is FeedbackKind.TASK:
        return f"{_line(event.title)}\n\n{_text(event.body)}".strip()
    if event.kind is FeedbackKind.REVIEW:
        return f"{_text(event.body)}\n\n{review_comments(event) if event.comments else ''}".strip()
    if event.kind is FeedbackKind.CI_FAILURE:
        return failed_checks(event)
    if event.kind is FeedbackKind.CONFLICT:
        return "The pull request cannot be merged cleanly into its base branch."
    return _text(event.body)


def fenced(text: str, info: str = "") -> str:
    """``text`` in a code fence longer than any run of backticks inside it (so nothing closes it)."""
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def _tail(text: str, lines: int, chars: int) -> tuple[str, bool]:
    """The last ``lines`` lines and ``chars`` characters of ``text``, and whether any were left out."""
    kept = text.splitlines()[-lines:]
    tail = "\n".join(kept)
    if len(tail) > chars:
        tail = tail[-chars:].partition("\n")[2] or tail[-chars:]
    return tail, tail != text.rstrip("\n")


def _inline(number: int, comment: ReviewComment) -> str:
    place = _line(comment.path) + (f":{comment.line}" if comment.line else "")
    link = f" ({_line(comment.url)})" if comment.url else ""
    parts = [f"Inline comment {number} (id {comment.id}) — {place}{link}:"]
    if comment.diff_hunk.strip():
        hunk, short = _tail(clean(comment.diff_hunk[-4 * HUNK_CHARS :], BODY_CHARS), HUNK_LINES, HUNK_CHARS)
        parts.append(("(the end of the diff hunk)\n" if short else "") + fenced(hunk, "diff"))
    parts.append(_text(comment.body) or "(no text)")
    return "\n".join(parts)


def review_comments(event: ForgeEvent) -> str:
    """A review's inline comments, bounded in number and size: at most :data:`REVIEW_COMMENTS` comments
    and :data:`REVIEW_CHARS` characters of them, saying how many were left out and linking the review;
    a diff hunk shows its last :data:`HUNK_LINES` lines."""
    if not event.comments:
        return "(No inline comments.)"
    parts: list[str] = []
    size = 0
    for number, comment in enumerate(event.comments[:REVIEW_COMMENTS], 1):
        part = _inline(number, comment)
        if size + len(part) > REVIEW_CHARS and parts:
            break
        parts.append(cut(part, REVIEW_CHARS, "this comment was cut"))
        size += len(part)
    left = len(event.comments) - len(parts)
    if left:
        parts.append(
            f"[… {left:,} more inline comments (of {len(event.comments):,}) were left out; read them all on"
            f" the review: {_line(event.url) or 'the pull request'}]"
        )
    return "\n\n".join(parts)


def _check(check: FailedCheck) -> str:
    name, url = _line(check.name) or "(unnamed check)", _line(check.url)
    if check.conclusion == "action_required":
        return (
            f"- {name}: waiting for a human's approval to run (action_required) — not a failure to fix,"
            f" nothing for you to do about it. {url}"
        ).rstrip()
    # say where the whole log is only when the forge said so: no "(no link)" and then "it is linked"
    where = f"the whole log: {url}" if url else "the forge gave no link to its log"
    lines = [f"- {name}: {_CONCLUSIONS.get(check.conclusion, _line(check.conclusion))} — {where}"]
    if check.steps:
        steps = [_line(s) for s in check.steps[:STEPS]]
        more = f" (and {len(check.steps) - STEPS:,} more)" if len(check.steps) > STEPS else ""
        lines.append(f"  failing steps: {'; '.join(steps)}{more}")
    if check.annotations:
        lines.append("  annotations:")
        lines += [f"    {_line(a)[:ANNOTATION_CHARS]}" for a in check.annotations[:ANNOTATIONS]]
        if len(check.annotations) > ANNOTATIONS:
            lines.append(f"    [… {len(check.annotations) - ANNOTATIONS:,} more annotations]")
    if check.log_tail.strip():
        tail, short = _tail(clean(check.log_tail[-4 * LOG_CHARS :], BODY_CHARS), 10_000, LOG_CHARS)
        lines.append(
            "  the end of its log"
            + (" (its earlier lines are in the whole log)" if short and url else " (cut)" if short else "")
            + ":"
        )
        lines.append(fenced(tail))
    return "\n".join(lines)


def failed_checks(event: ForgeEvent) -> str:
    """A CI failure's checks, bounded: :data:`CHECKS` checks with their steps, annotations and the last
    :data:`LOG_CHARS` characters of each log (the whole log is linked, never pasted)."""
    if not event.checks:
        return "(The forge named no failing check.)"
    parts = [_check(check) for check in event.checks[:CHECKS]]
    if len(event.checks) > CHECKS:
        parts.append(
            f"[… {len(event.checks) - CHECKS:,} more failing checks; see {_line(event.url) or 'the forge'}]"
        )
    return "\n\n".join(parts)
