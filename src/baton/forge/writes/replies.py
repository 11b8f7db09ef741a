"""Every inline comment of a review answered where it was made: after a review turn publishes, baton
replies in each comment's thread with the agent's account of it (:mod:`baton.forge.turn.accounts`) —
**Done**, **Answered** or **Declined** with its words, or that it left the comment out, or that its
account could not be read and where the whole answer is (:func:`reply_text`) — attributed like the
answer, once each (a re-published turn finds its replies first), none with ``reply = "none"``; replies
a forge refuses go in one comment on the PR. With ``resolve_threads = true`` the threads accounted
``done`` are resolved, best effort. baton's own replies never trigger a turn. The details: docs/forge.md
(Replies in each inline comment's thread).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from baton.forge.data.config import Reply
from baton.forge.data.model import ForgeError, ForgeEvent, ReviewComment
from baton.forge.data.records import Binding, FeedbackKind
from baton.forge.data.tables import forge_store
from baton.forge.kinds.inline import InlineThreads
from baton.forge.turn import accounts
from baton.forge.turn.accounts import Account, Entry, Unreadable, Verdict
from baton.forge.turn.loop import ForgeLoop
from baton.forge.turn.trust import is_own
from baton.forge.writes import agent_answer
from baton.models import JobRecord

log = logging.getLogger("baton.forge")


@dataclass(frozen=True)
class Turn:
    """What a review turn's replies are about: its inline comments (id order), those past the cap."""

    comments: dict[int, ReviewComment]
    beyond: tuple[ReviewComment, ...]


def review_turn(loop: ForgeLoop, job: JobRecord) -> Turn | None:
    """The inline comments of ``job``'s review events; None when it has none to answer (no review, or
    a turn of quoted context: an untrusted reviewer's words are no one's request for an account)."""
    records = forge_store(loop.store).events_of_job(job.id)
    if not records or any(record.reason == "quoted" for record in records):
        return None
    events = [ForgeEvent.from_json(record.event) for record in records]
    ids, _ = accounts.inline_ids(events)
    if not ids:
        return None
    every = {c.id: c for e in events if e.kind is FeedbackKind.REVIEW for c in e.comments}
    chosen = set(ids)
    return Turn({i: every[i] for i in ids}, tuple(c for i, c in every.items() if i not in chosen))


def answer_threads(
    loop: ForgeLoop, binding: Binding, job: JobRecord, result: dict[str, Any], again: bool = False
) -> dict[str, Any] | None:
    """Reply in each inline comment's thread of a review turn, and resolve the ``done`` ones where the
    repository says so; what was done (kept with the turn), or None when the turn has no threads to
    answer or the repository's ``reply`` is ``none``."""
    repo = loop.repo(binding.forge, binding.repo)
    reply = repo.reply if repo is not None else Reply.COMMENT
    turn = review_turn(loop, job) if binding.pr is not None and reply is not Reply.NONE else None
    if turn is None or binding.pr is None:
        return None
    client = loop.client(binding.forge)
    if not isinstance(client, InlineThreads):
        return {"account": "not read", "replied": 0, "why": "this forge's client cannot reply in threads"}
    account = accounts.parse(agent_answer.answer_of(job), tuple(turn.comments))
    said: dict[str, Any] = {
        "account": "read" if isinstance(account, Account) else f"unreadable: {account.reason}"
    }
    if isinstance(account, Account) and account.unknown:
        said["unknown_ids"] = account.unknown
    before = _replied(loop, binding, job, client) if again else set()
    head = str(result["head"]) if result.get("pushed") and result.get("head") else None
    public = loop.settings.public_url
    texts = {
        comment_id: reply_text(binding, job, comment_id, _said(account, comment_id), head, reply, public)
        for comment_id in turn.comments
    }
    failed = _post_all(client, binding, texts, before, said)
    _overflow(loop, binding, job, turn, texts, failed, again, said)
    if repo is not None and repo.resolve_threads and isinstance(account, Account):
        done = [i for i, e in account.entries.items() if e.verdict is Verdict.DONE and i not in failed]
        _resolve(client, binding, done, said)
    return said


def _said(account: Account | Unreadable, comment_id: int) -> Entry | Unreadable | None:
    return account if isinstance(account, Unreadable) else account.entries.get(comment_id)


def _post_all(
    client: InlineThreads, binding: Binding, texts: dict[int, str], before: set[int], said: dict[str, Any]
) -> dict[int, str]:
    """Each reply posted (those found from before skipped); the ones the forge refused, with why."""
    assert binding.pr is not None
    failed: dict[int, str] = {}
    posted = 0
    for comment_id, text in texts.items():
        if comment_id in before:
            continue
        try:
            client.reply_inline(binding.repo, binding.pr, comment_id, text)
            posted += 1
        except ForgeError as exc:
            failed[comment_id] = str(exc)
    said.update(replied=posted, before=len(before & texts.keys()))
    if failed:
        said["not_threaded"] = len(failed)
        log.warning(
            "forge %s: %d inline replies could not be threaded (%s): one comment on the PR holds them",
            binding.conversation,
            len(failed),
            next(iter(failed.values())),
        )
    return failed


def _resolve(client: InlineThreads, binding: Binding, done: list[int], said: dict[str, Any]) -> None:
    assert binding.pr is not None
    if not done:
        said["resolved"] = 0
        return
    try:
        said["resolved"] = len(client.resolve_inline(binding.repo, binding.pr, done))
    except ForgeError as exc:
        said.update(resolved=0, resolve_refused=str(exc)[:500])
        log.warning(  # once for the turn, however many threads it would have resolved
            "forge %s: the forge refused to resolve %d review threads (%s): they stay replied and open",
            binding.conversation,
            len(done),
            exc,
        )


# -- what is said ---------------------------------------------------------------------------------------


def mark(binding: Binding, job: JobRecord, comment_id: int) -> str:
    """How baton's reply to ``comment_id`` in ``job``'s turn starts: a hidden marker naming the comment,
    then the answer's attribution (up to its closing ``</sub>``)."""
    return f"<!-- baton: reply to {int(comment_id)} -->\n{agent_answer.attribution(binding, job)}"


OVERFLOW = "<!-- baton: replies not threaded -->\n"


def reply_text(
    binding: Binding,
    job: JobRecord,
    comment_id: int,
    said: Entry | Unreadable | None,
    head: str | None,
    reply: Reply,
    public_url: str = "",
) -> str:
    """baton's reply in the thread of inline comment ``comment_id``: the agent's account of it
    (``said``; ``head``: the commit baton pushed this turn, if any), that it gave none (None), or that
    its answer could not be read (:class:`Unreadable`), saying where the whole answer is (``reply``)."""
    words = _words(binding, job, said, head, reply, public_url)
    return f"{mark(binding, job, comment_id)}</sub>\n\n{words}\n"


def _words(
    binding: Binding,
    job: JobRecord,
    said: Entry | Unreadable | None,
    head: str | None,
    reply: Reply,
    public_url: str,
) -> str:
    if isinstance(said, Entry):
        return agent_answer.shown(_entry_words(said, head))
    where = _where(binding, job, reply, public_url)
    if agent_answer.answer_of(job) is None:
        return where
    if said is None:
        return f"The agent did not account for this comment in its answer. {where}"
    return (
        f"The agent's answer did not account for each comment in a form baton reads ({said.reason}). {where}"
    )


def _entry_words(entry: Entry, head: str | None) -> str:
    if entry.verdict is Verdict.DONE:
        commit = entry.commit or head
        what = f"**Done** in `{commit[:12]}`" if commit else "**Done** (nothing new was pushed this turn)"
    elif entry.verdict is Verdict.ANSWERED:
        what = "**Answered**"
    else:
        what = "**Declined**" if entry.text else "**Declined** (no reason given)."
    return f"{what}: {entry.text}" if entry.text else what


def _where(binding: Binding, job: JobRecord, reply: Reply, public_url: str) -> str:
    """Where the agent's whole answer is, as a sentence: the thread's conversation is the issue's for a
    thread that started on an issue (``#42`` links it), else this pull request's."""
    public = public_url.rstrip("/")
    dashboard = f" ([the run on baton's dashboard]({public}/runs/{job.id}))" if public else ""
    on = "this pull request" if binding.number == binding.pr else f"#{binding.number}"
    if agent_answer.answer_of(job) is None:
        return (
            f"The agent ended its turn without an answer: baton's status comment on {on} says how{dashboard}."
        )
    if reply is Reply.STATUS:
        return f"Its answer is in baton's status comment on {on}, shortened{dashboard}."
    return f"Its whole answer is baton's comment after this turn on {on}{dashboard}."


# -- what could not be threaded ---------------------------------------------------------------------------


def _overflow(
    loop: ForgeLoop,
    binding: Binding,
    job: JobRecord,
    turn: Turn,
    texts: dict[int, str],
    failed: dict[int, str],
    again: bool,
    said: dict[str, Any],
) -> None:
    """One comment on the PR for the replies the forge refused and the comments past the cap."""
    assert binding.pr is not None
    if not failed and not turn.beyond:
        return
    head = f"{OVERFLOW}{agent_answer.attribution(binding, job)}"
    if again and _posted_before(loop, binding, job, head):
        said["overflow"] = "posted before"
        return
    lines = [f"{head}</sub>", ""]
    if failed:
        why = next(iter(failed.values()))[:300]
        lines += [f"baton could not reply in these inline comments' threads ({why}); its replies:", ""]
        for comment_id in failed:
            words = texts[comment_id].split("</sub>\n\n", 1)[-1].strip()
            lines.append(f"- {_link(turn.comments[comment_id])}: {words}")
    if turn.beyond:
        links = ", ".join(_link(c) for c in turn.beyond[:50])
        lines += [
            "",
            f"{len(turn.beyond):,} more inline comments were not answered in their threads (baton answers"
            f" {accounts.MAX_THREADS} a turn); the agent's answer covers the turn: {links}",
        ]
    text = "\n".join(lines)
    if len(text) > agent_answer.MAX_CHARS:
        text = (
            text[: agent_answer.MAX_CHARS] + f"\n\n*… {len(text) - agent_answer.MAX_CHARS:,} more characters*"
        )
    try:
        loop.client(binding.forge).post_comment(binding.repo, binding.pr, text + "\n", pr=True)
        said["overflow"] = "posted"
    except ForgeError as exc:
        log.warning("forge %s: the replies' comment was not posted: %s", binding.conversation, exc)
        said["overflow"] = f"failed: {exc}"


def _link(comment: ReviewComment) -> str:
    place = f"{comment.path}:{comment.line}" if comment.line else comment.path or f"comment {comment.id}"
    place = place.replace("]", "").replace("[", "").replace("\n", " ")[:200]
    return f"[{place}]({comment.url})" if comment.url.startswith(("https://", "http://")) else f"`{place}`"


# -- posted before --------------------------------------------------------------------------------------


def _replied(loop: ForgeLoop, binding: Binding, job: JobRecord, client: InlineThreads) -> set[int]:
    """The inline comments baton replied to in ``job``'s turn already (its publisher died after):
    asked only when a turn is published again."""
    assert binding.pr is not None
    forge = loop.forge(binding.forge)
    try:
        found = client.inline_comments(binding.repo, binding.pr, since=job.started_at)
    except ForgeError:
        return set()  # cannot tell: reply again (twice at worst, never lost)
    attribution = agent_answer.attribution(binding, job)
    replied = set()
    for comment in found:
        first, _, rest = comment.body.partition("\n")
        if is_own(comment.author.login, forge) and rest.startswith(attribution):
            number = first.removeprefix("<!-- baton: reply to ").removesuffix(" -->")
            if number.isdigit():
                replied.add(int(number))
    return replied


def _posted_before(loop: ForgeLoop, binding: Binding, job: JobRecord, head: str) -> bool:
    assert binding.pr is not None
    forge = loop.forge(binding.forge)
    try:
        said = loop.client(binding.forge).comments(binding.repo, binding.pr, since=job.started_at, pr=True)
    except ForgeError:
        return False
    return any(is_own(c.author.login, forge) and c.body.startswith(head) for c in said)
