"""What a forge's webhook delivery asks of a thread: its payload read into typed :class:`ForgeEvent`\\ s
(GitHub, and Gitea or Forgejo, which sends Gitea's payloads), or the reason it asks nothing.

:func:`read_event` is pure: no store, no forge request. The signature was checked before (in
:mod:`baton.forge.events`); a signed payload is still hostile. Every field is type-checked where it is
read, a payload missing what its event needs raises :class:`Malformed` (the route answers 400), texts
are cut to :data:`BODY_CHARS` and :data:`TITLE_CHARS` with a marker, control characters other than
newlines and tabs are dropped, and a link is kept only when it is ``http(s)``.

What each event becomes:

- a comment (``issue_comment`` created): ``comment``, a ``mention`` trigger when its text names baton
  (``@baton``, as a word, outside quoted lines, fenced code and inline code), else ``feedback``;
  identity ``comment:<id>``.
- an issue (``issues``): opened with a mention, ``task:<n>``; labelled, ``label:<n>:<label>:<updated>``
  with **the label in** ``signature``; assigned to baton's own user, ``assign:<n>:<login>:<updated>``.
  Gitea's ``label_updated`` and ``assigned`` do not say which label or assignee changed: each current
  label (or baton among the assignees) is an event, identified without the time (``label:<n>:<label>``,
  ``assign:<n>:<login>``), so a label that stays on the issue is acted on once.
- a review: GitHub's ``review:<review id>``, and an inline comment is its review's event with that one
  comment (the dispatcher fetches the rest); Gitea sends no review id, so ``review:<n>:<head>:<sha256
  of the text, 16 hex>``. An approval without words is ignored.
- a failed check run, check suite, workflow run or commit status: ``ci_failure``, one event per pull
  request it names, identity ``ci:<head>:<name>``, provisional (the dispatcher re-identifies it with
  the whole failing set). A commit status names no pull request: its ``number`` is ``0`` and the
  dispatcher finds the pull request by ``head_sha``.
- a pull request opened, reopened or pushed to that the forge says cannot merge (``mergeable`` false):
  ``conflict:<head>:<base>``.

``from_fork`` is true for a pull request whose head repository differs from its base's, is gone, or
cannot be told apart (the safe side: a fork never runs above ``read``). An issue comment on a pull
request carries no head: its ``from_fork`` is left to the dispatcher, which reads the pull request.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from baton.forge.events import Malformed
from baton.forge.model import Actor, FailedCheck, FeedbackKind, ForgeEvent, ForgeKind, ReviewComment, Trigger

BODY_CHARS = 65_536  # a comment's, review's or issue's text
TITLE_CHARS = 1_024  # a title; also names, logins, paths and links
MAX_PULL_REQUESTS = 100  # pull requests one CI event may name
MAX_LABELS = 100  # labels read from Gitea's label_updated

FAILED = frozenset({"failure", "timed_out", "action_required", "startup_failure"})
FAILED_STATUS = frozenset({"failure", "error"})
CONFLICT_ACTIONS = frozenset({"opened", "reopened", "synchronize", "synchronized"})

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SHA = re.compile(r"[0-9a-f]{7,64}")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+).+?\1")
_QUOTE = re.compile(r"\s*>")

Payload = dict[str, Any]


@dataclass(frozen=True)
class _Ctx:
    forge: str
    mention: str
    user: str


# -- typed reads ------------------------------------------------------------------------------------


def _obj(data: Payload, name: str, where: str) -> Payload:
    value = data.get(name)
    if not isinstance(value, dict):
        raise Malformed(f"{where}.{name} is missing or not an object")
    return value


def _int(data: Payload, name: str, where: str) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise Malformed(f"{where}.{name} is missing or not a positive integer")
    return value


def _str(data: Payload, name: str, where: str, *, required: bool = False, limit: int = TITLE_CHARS) -> str:
    """A string field, cleaned and cut; ``null`` or absent is ``""`` unless ``required``."""
    value = data.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise Malformed(f"{where}.{name} is missing or not a string")
    return clean(value, limit)


def _body(data: Payload, name: str, where: str) -> str:
    return _str(data, name, where, limit=BODY_CHARS)


def _sha(data: Payload, name: str, where: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not _SHA.fullmatch(value.lower()):
        raise Malformed(f"{where}.{name} is missing or not a commit hash")
    return value.lower()


def _url(data: Payload, name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or len(value) > 2_048 or not value.startswith(("https://", "http://")):
        return ""
    return "" if any(c.isspace() or ord(c) < 32 or c == "\x7f" for c in value) else value


def _at(data: Payload, *names: str) -> float:
    """The first of ``names`` that is an ISO 8601 time, in seconds since the epoch (0.0: none)."""
    for name in names:
        value = data.get(name)
        if isinstance(value, str) and len(value) <= 64:
            try:
                return datetime.fromisoformat(value).timestamp()
            except ValueError:
                continue
    return 0.0


def clean(text: str, limit: int) -> str:
    """``text`` without control characters (newlines and tabs stay), cut to ``limit`` characters with
    a marker saying how much was left out."""
    if len(text) > limit:
        more = len(text) - limit
        text = text[:limit] + f"\n[… cut: {more:,} more characters were left out]"
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _actor(data: Any, where: str, association: Any = None) -> Actor:
    if not isinstance(data, dict):
        raise Malformed(f"{where} is missing or not an object")
    login = _str(data, "login", where, required=True, limit=255)
    bot = data.get("type") == "Bot" or login.lower().endswith("[bot]") or data.get("is_bot") is True
    assoc = association if isinstance(association, str) and 0 < len(association) <= 64 else None
    return Actor(login, bot, assoc)


def _repo(p: Payload) -> str:
    name = _str(_obj(p, "repository", "payload"), "full_name", "payload.repository", required=True)
    if name.count("/") != 1 or any(c.isspace() for c in name) or len(name) > 255:
        raise Malformed("payload.repository.full_name is not an owner/name")
    return name


def _from_fork(pr: Payload, where: str) -> bool:
    head, base = _obj(pr, "head", where), _obj(pr, "base", where)
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
    for line in text.split("\n"):
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


# -- GitHub -----------------------------------------------------------------------------------------


def _action(p: Payload) -> str:
    return _str(p, "action", "payload", required=True, limit=64)


def _gh_issue_comment(p: Payload, c: _Ctx) -> list[ForgeEvent] | str:
    action = _action(p)
    if action != "created":
        return f"issue_comment action {action!r} asks nothing (only a new comment does)"
    issue, comment = _obj(p, "issue", "payload"), _obj(p, "comment", "payload")
    where = "payload.comment"
    body = _body(comment, "body", where)
    return [
        ForgeEvent(
            forge=c.forge,
            repo=_repo(p),
            number=_int(issue, "number", "payload.issue"),
            kind=FeedbackKind.COMMENT,
            identity=f"comment:{_int(comment, 'id', where)}",
            actor=_actor(comment.get("user"), f"{where}.user", comment.get("author_association")),
            trigger=Trigger.MENTION if mentions(body, c.mention) else Trigger.FEEDBACK,
            url=_url(comment, "html_url"),
            is_pr=issue.get("pull_request") is not None or p.get("is_pull") is True,
            title=_str(issue, "title", "payload.issue"),
            body=body,
            at=_at(comment, "created_at"),
        )
    ]


def _issue_event(p: Payload, c: _Ctx, **fields: Any) -> ForgeEvent:
    issue = _obj(p, "issue", "payload")
    return ForgeEvent(
        forge=c.forge,
        repo=_repo(p),
        number=_int(issue, "number", "payload.issue"),
        kind=FeedbackKind.TASK,
        actor=_actor(p.get("sender") or issue.get("user"), "payload.sender"),
        url=_url(issue, "html_url"),
        title=_str(issue, "title", "payload.issue"),
        body=_body(issue, "body", "payload.issue"),
        at=_at(issue, "updated_at", "created_at"),
        **fields,
    )


def _opened(p: Payload, c: _Ctx) -> list[ForgeEvent] | str:
    issue = _obj(p, "issue", "payload")
    if not mentions(_body(issue, "body", "payload.issue"), c.mention):
        return f"an issue opened without a mention of {c.mention}"
    number = _int(issue, "number", "payload.issue")
    return [_issue_event(p, c, identity=f"task:{number}", trigger=Trigger.MENTION)]


def _gh_issues(p: Payload, c: _Ctx) -> list[ForgeEvent] | str:
    action = _action(p)
    if action == "opened":
        return _opened(p, c)
    issue = _obj(p, "issue", "payload")
    number, updated = _int(issue, "number", "payload.issue"), _str(issue, "updated_at", "payload.issue")
    if action == "labeled":
        label = _str(_obj(p, "label", "payload"), "name", "payload.label", required=True, limit=255)
        identity = f"label:{number}:{label}:{updated}"
        return [_issue_event(p, c, identity=identity, trigger=Trigger.LABEL, signature=label)]
    if action == "assigned":
        login = _actor(p.get("assignee"), "payload.assignee").login
        if login.lower() != c.user.lower():
            return f"the issue was assigned to {login}, not to baton's user {c.user}"
        return [_issue_event(p, c, identity=f"assign:{number}:{login}:{updated}", trigger=Trigger.ASSIGN)]
    return f"issues action {action!r} asks nothing"


def _pr_fields(pr: Payload) -> dict[str, Any]:
    where = "payload.pull_request"
    return {
        "number": _int(pr, "number", where),
        "is_pr": True,
        "from_fork": _from_fork(pr, where),
        "title": _str(pr, "title", where),
    }


def _gh_review(p: Payload, c: _Ctx) -> list[ForgeEvent] | str:
    action = _action(p)
    if action != "submitted":
        return f"pull_request_review action {action!r} asks nothing"
    review, pr = _obj(p, "review", "payload"), _obj(p, "pull_request", "payload")
    where = "payload.review"
    body = _body(review, "body", where)
    if _str(review, "state", where).lower() == "approved" and not body.strip():
        return "an approval without words asks nothing"
    head = _sha(review, "commit_id", where) if review.get("commit_id") else _head(pr)
    return [
        ForgeEvent(
            forge=c.forge,
            repo=_repo(p),
            kind=FeedbackKind.REVIEW,
            identity=f"review:{_int(review, 'id', where)}",
            actor=_actor(review.get("user"), f"{where}.user", review.get("author_association")),
            url=_url(review, "html_url"),
            head_sha=head,
            body=body,
            at=_at(review, "submitted_at"),
            **_pr_fields(pr),
        )
    ]


def _head(pr: Payload) -> str:
    return _sha(_obj(pr, "head", "payload.pull_request"), "sha", "payload.pull_request.head")


def _gh_review_comment(p: Payload, c: _Ctx) -> list[ForgeEvent] | str:
    action = _action(p)
    if action != "created":
        return f"pull_request_review_comment action {action!r} asks nothing"
    comment, pr = _obj(p, "comment", "payload"), _obj(p, "pull_request", "payload")
    where = "payload.comment"
    review_id = comment.get("pull_request_review_id")
    comment_id = _int(comment, "id", where)
    if review_id is not None:
        review_id = _int(comment, "pull_request_review_id", where)
    line = next((v for v in (comment.get("line"), comment.get("original_line")) if _is_int(v)), None)
    inline = ReviewComment(
        id=comment_id,
        path=_str(comment, "path", where, required=True),
        line=line,
        diff_hunk=_body(comment, "diff_hunk", where),
        body=_body(comment, "body", where),
        url=_url(comment, "html_url"),
    )
    return [
        ForgeEvent(
            forge=c.forge,
            repo=_repo(p),
            kind=FeedbackKind.REVIEW,
            identity=f"review:{review_id}" if review_id else f"review:comment-{comment_id}",
            actor=_actor(comment.get("user"), f"{where}.user", comment.get("author_association")),
            url=_url(comment, "html_url"),
            head_sha=_sha(comment, "commit_id", where) if comment.get("commit_id") else _head(pr),
            comments=(inline,),
            at=_at(comment, "created_at"),
            **_pr_fields(pr),
        )
    ]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31


def _ci_events(
    p: Payload, c: _Ctx, prs: Any, head: str, check: FailedCheck, at: float
) -> list[ForgeEvent] | str:
    """One ``ci_failure`` per pull request the CI event names."""
    if not isinstance(prs, list):
        raise Malformed("the CI event's pull_requests is missing or not a list")
    if not prs:
        return (
            f"{check.name!r} failed on {head[:12]} but names no pull request (a branch without one, or"
            " a pull request from a fork, which GitHub leaves out: the reconcile finds those)"
        )
    repo, actor = _repo(p), _actor(p.get("sender"), "payload.sender")
    events = []
    for i, pr in enumerate(prs[:MAX_PULL_REQUESTS]):
        if not isinstance(pr, dict):
            raise Malformed(f"pull_requests[{i}] is not an object")
        events.append(
            ForgeEvent(
                forge=c.forge,
                repo=repo,
                number=_int(pr, "number", f"pull_requests[{i}]"),
                kind=FeedbackKind.CI_FAILURE,
                identity=f"ci:{head}:{check.name}",
                actor=actor,
                url=check.url,
                is_pr=True,
                head_sha=head,
                from_fork=_from_fork(pr, f"pull_requests[{i}]"),
                checks=(check,),
                at=at,
            )
        )
    return events


def _completed(p: Payload, obj: str) -> tuple[Payload, str] | str:
    action = _action(p)
    run = _obj(p, obj, "payload")
    conclusion = _str(run, "conclusion", f"payload.{obj}", limit=64)
    if action != "completed":
        return f"{obj} action {action!r} asks nothing (only a completed one can fail)"
    if conclusion not in FAILED:
        return f"{obj} concluded {conclusion or 'nothing'!r}: nothing to fix"
    return run, conclusion


def _gh_check_run(p: Payload, c: _Ctx) -> list[ForgeEvent] | str:
    done = _completed(p, "check_run")
    if isinstance(done, str):
        return done
    run, conclusion = done
    where = "payload.check_run"
    url = _url(run, "html_url") or _url(run, "details_url")
    check = FailedCheck(
        _str(run, "name", where, required=True), conclusion, url, job_id=_int(run, "id", where)
    )
    return _ci_events(
        p, c, run.get("pull_requests"), _sha(run, "head_sha", where), check, _at(run, "completed_at")
    )


def _gh_check_suite(p: Payload, c: _Ctx) -> list[ForgeEvent] | str:
    done = _completed(p, "check_suite")
    if isinstance(done, str):
        return done
    suite, conclusion = done
    where = "payload.check_suite"
    app = suite.get("app")
    name = _str(app, "name", f"{where}.app") if isinstance(app, dict) else ""
    head = _sha(suite, "head_sha", where)
    base = _url(_obj(p, "repository", "payload"), "html_url")
    url = f"{base}/commit/{head}/checks" if base else ""
    check = FailedCheck(name or "check suite", conclusion, url)
    return _ci_events(p, c, suite.get("pull_requests"), head, check, _at(suite, "updated_at"))


def _gh_workflow_run(p: Payload, c: _Ctx) -> list[ForgeEvent] | str:
    done = _completed(p, "workflow_run")
    if isinstance(done, str):
        return done
    run, conclusion = done
    where = "payload.workflow_run"
    workflow = p.get("workflow")
    name = _str(run, "name", where) or (
        _str(workflow, "name", "payload.workflow") if isinstance(workflow, dict) else ""
    )
    check = FailedCheck(name or "workflow run", conclusion, _url(run, "html_url"))
    return _ci_events(
        p, c, run.get("pull_requests"), _sha(run, "head_sha", where), check, _at(run, "updated_at")
    )


def _status(p: Payload, c: _Ctx) -> list[ForgeEvent] | str:
    """A commit status (both forges): it names a commit, not a pull request (``number`` 0)."""
    state = _str(p, "state", "payload", required=True, limit=64)
    if state not in FAILED_STATUS:
        return f"a commit status {state!r}: nothing to fix"
    head, context = _sha(p, "sha", "payload"), _str(p, "context", "payload", required=True)
    check = FailedCheck(context, state, _url(p, "target_url"), job_id=None)
    return [
        ForgeEvent(
            forge=c.forge,
            repo=_repo(p),
            number=0,
            kind=FeedbackKind.CI_FAILURE,
            identity=f"ci:{head}:{context}",
            actor=_actor(p.get("sender"), "payload.sender"),
            url=check.url,
            is_pr=True,
            head_sha=head,
            checks=(check,),
            at=_at(p, "updated_at", "created_at"),
        )
    ]


def _pull_request(p: Payload, c: _Ctx) -> list[ForgeEvent] | str:
    """Both forges: a pull request the forge says cannot merge cleanly."""
    action = _action(p)
    if action not in CONFLICT_ACTIONS:
        return f"pull_request action {action!r} asks nothing"
    pr = _obj(p, "pull_request", "payload")
    if pr.get("mergeable") is not False:
        return f"the pull request is mergeable ({pr.get('mergeable')!r}): no conflict to resolve"
    head = _head(pr)
    base = _sha(_obj(pr, "base", "payload.pull_request"), "sha", "payload.pull_request.base")
    return [
        ForgeEvent(
            forge=c.forge,
            repo=_repo(p),
            kind=FeedbackKind.CONFLICT,
            identity=f"conflict:{head}:{base}",
            actor=_actor(p.get("sender"), "payload.sender"),
            url=_url(pr, "html_url"),
            head_sha=head,
            at=_at(pr, "updated_at"),
            **_pr_fields(pr),
        )
    ]


GITHUB_EVENTS: dict[str, Callable[[Payload, _Ctx], list[ForgeEvent] | str]] = {
    "issue_comment": _gh_issue_comment,
    "issues": _gh_issues,
    "pull_request_review": _gh_review,
    "pull_request_review_comment": _gh_review_comment,
    "check_run": _gh_check_run,
    "check_suite": _gh_check_suite,
    "workflow_run": _gh_workflow_run,
    "status": _status,
    "pull_request": _pull_request,
}


# -- Gitea and Forgejo ------------------------------------------------------------------------------


def _gt_issues(p: Payload, c: _Ctx) -> list[ForgeEvent] | str:
    action = _action(p)
    if action == "opened":
        return _opened(p, c)
    if action == "label_updated":
        return _gt_labels(p, c)
    if action == "assigned":
        return _gt_assigned(p, c)
    return f"issues action {action!r} asks nothing"


def _gt_labels(p: Payload, c: _Ctx) -> list[ForgeEvent] | str:
    issue = _obj(p, "issue", "payload")
    number = _int(issue, "number", "payload.issue")
    labels = issue.get("labels") or []
    if not isinstance(labels, list):
        raise Malformed("payload.issue.labels is not a list")
    names = [_str(label, "name", "payload.issue.labels[]", required=True, limit=255)
             for label in labels[:MAX_LABELS] if isinstance(label, dict)]  # fmt: skip
    if not names:
        return "the issue's labels were cleared"
    return [
        _issue_event(p, c, identity=f"label:{number}:{name}", trigger=Trigger.LABEL, signature=name)
        for name in names
    ]


def _gt_assigned(p: Payload, c: _Ctx) -> list[ForgeEvent] | str:
    issue = _obj(p, "issue", "payload")
    number = _int(issue, "number", "payload.issue")
    assignees = issue.get("assignees") or ([issue["assignee"]] if issue.get("assignee") else [])
    if not isinstance(assignees, list):
        raise Malformed("payload.issue.assignees is not a list")
    logins = [_actor(a, "payload.issue.assignees[]").login for a in assignees[:MAX_LABELS]]
    if not any(login.lower() == c.user.lower() for login in logins):
        return f"the issue was assigned to {', '.join(logins) or 'nobody'}, not to baton's user {c.user}"
    return [_issue_event(p, c, identity=f"assign:{number}:{c.user}", trigger=Trigger.ASSIGN)]


def _gt_review(p: Payload, c: _Ctx) -> list[ForgeEvent] | str:
    """A submitted review (approved, rejected or comment): Gitea sends its type and text, no id."""
    review, pr = _obj(p, "review", "payload"), _obj(p, "pull_request", "payload")
    kind = _str(review, "type", "payload.review", limit=64)
    content = _body(review, "content", "payload.review")
    raw = str(review.get("content") or "")  # type-checked by _body; the identity hashes it as sent
    if "approved" in kind and not content.strip():
        return "an approval without words asks nothing"
    fields = _pr_fields(pr)
    head = _head(pr)
    return [
        ForgeEvent(
            forge=c.forge,
            repo=_repo(p),
            kind=FeedbackKind.REVIEW,
            identity=gitea_review_identity(fields["number"], head, raw),
            actor=_actor(p.get("sender"), "payload.sender"),
            url=_url(pr, "html_url"),
            head_sha=head,
            body=content,
            at=_at(pr, "updated_at"),
            **fields,
        )
    ]


def gitea_review_identity(number: int, head: str, content: str) -> str:
    """A Gitea review's identity: its payload has no id, so its pull request, commit and text (the
    reconcile, reading the review through the API, computes the same)."""
    digest = hashlib.sha256(clean(content, BODY_CHARS).encode()).hexdigest()[:16]
    return f"review:{number}:{head.lower()}:{digest}"


def _gt_pull_request_comment(p: Payload, c: _Ctx) -> list[ForgeEvent] | str:
    """Gitea names a review of type comment ``pull_request_comment`` in ``X-Gitea-Event`` and a plain
    comment on a pull request ``pull_request_comment`` in ``X-Gitea-Event-Type``: told by the shape."""
    return _gt_review(p, c) if "review" in p else _gh_issue_comment(p, c)


GITEA_EVENTS: dict[str, Callable[[Payload, _Ctx], list[ForgeEvent] | str]] = {
    # X-Gitea-Event names, then the finer X-Gitea-Event-Type names for the same payloads
    "issue_comment": _gh_issue_comment,  # comment.user, is_pull: the same reading as GitHub's
    "issues": _gt_issues,
    "issue_label": _gt_issues,
    "issue_assign": _gt_issues,
    "pull_request": _pull_request,
    "pull_request_sync": _pull_request,
    "pull_request_approved": _gt_review,
    "pull_request_rejected": _gt_review,
    "pull_request_comment": _gt_pull_request_comment,
    "pull_request_review_approved": _gt_review,
    "pull_request_review_rejected": _gt_review,
    "pull_request_review_comment": _gt_review,
    "status": _status,
}


def read_event(
    kind: ForgeKind,
    forge: str,
    event: str,
    payload: dict[str, Any],
    *,
    mention: str = "@baton",
    user: str = "baton",
) -> list[ForgeEvent] | str:
    """The events a delivery carries, or why it carries none (stored as the delivery's ``ignored``).
    ``user`` is baton's own login on the forge: an assignment to anyone else is ignored. Raises
    :class:`Malformed` for a payload that lacks what its event needs."""
    if not isinstance(payload, dict):
        raise Malformed("the payload is not a JSON object")
    handlers = GITHUB_EVENTS if ForgeKind(kind) is ForgeKind.GITHUB else GITEA_EVENTS
    handler = handlers.get(event)
    if handler is None:
        return f"{kind} event {event[:64]!r} asks nothing of a thread"
    return handler(payload, _Ctx(forge, mention, user))
