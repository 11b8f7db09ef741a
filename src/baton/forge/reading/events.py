"""What a forge's webhook delivery asks of a thread: its payload read into typed :class:`ForgeEvent`\\ s
(GitHub, and Gitea or Forgejo, which sends Gitea's payloads), or why it asks nothing
(:class:`~baton.forge.reading.webhook.Ignored`, never a string to tell apart from data), through one table of
events per forge. :func:`read_event` is pure: no store, no forge request. The signature was checked
before (in :mod:`baton.forge.reading.webhook`); a signed payload is still hostile: every field is read through
:mod:`baton.forge.reading.payload` (type-checked, texts cleaned and cut with a marker, links only
``http(s)``), and a payload missing what its event needs raises :class:`Malformed` (the route answers 400).
What each event becomes, and its identity: :func:`read_event`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from baton.forge.data.model import FailedCheck, ForgeEvent, ForgeKind, ReviewComment, Trigger
from baton.forge.data.records import FeedbackKind
from baton.forge.reading import payload as read
from baton.forge.reading.payload import BODY_CHARS, Payload, mentions
from baton.forge.reading.webhook import Ignored, Malformed

MAX_PULL_REQUESTS = 100  # pull requests one CI event may name
MAX_LABELS = 100  # labels read from Gitea's label_updated

FAILED = frozenset({"failure", "timed_out", "action_required", "startup_failure"})
FAILED_STATUS = frozenset({"failure", "error"})
CONFLICT_ACTIONS = frozenset({"opened", "reopened", "synchronize", "synchronized"})

# What the loop needs a GitHub-shaped webhook (GitHub's, Gitea's) to deliver: comments, reviews, CI,
# conflicts (pushes) and closing (pull requests); ``baton forge test`` holds the webhooks to it
HOOK_EVENTS = frozenset(
    {
        "issues",
        "issue_comment",
        "pull_request",
        "pull_request_review",
        "pull_request_review_comment",
        "check_run",
        "check_suite",
        "workflow_run",
        "status",
        "delete",
        "push",
    }
)


@dataclass(frozen=True)
class _Ctx:
    forge: str
    mention: str
    user: str


# -- GitHub -----------------------------------------------------------------------------------------


def _action(p: Payload) -> str:
    return read.string(p, "action", "payload", required=True, limit=64)


def _gh_issue_comment(p: Payload, c: _Ctx) -> list[ForgeEvent] | Ignored:
    action = _action(p)
    if action != "created":
        return Ignored(f"issue_comment action {action!r} asks nothing (only a new comment does)")
    issue, comment = read.obj(p, "issue", "payload"), read.obj(p, "comment", "payload")
    where = "payload.comment"
    body = read.text(comment, "body", where)
    return [
        ForgeEvent(
            forge=c.forge,
            repo=read.repo_name(p),
            number=read.integer(issue, "number", "payload.issue"),
            kind=FeedbackKind.COMMENT,
            identity=f"comment:{read.integer(comment, 'id', where)}",
            actor=read.actor(comment.get("user"), f"{where}.user", comment.get("author_association")),
            trigger=Trigger.MENTION if mentions(body, c.mention) else Trigger.FEEDBACK,
            url=read.link(comment, "html_url"),
            is_pr=issue.get("pull_request") is not None or p.get("is_pull") is True,
            title=read.string(issue, "title", "payload.issue"),
            body=body,
            at=read.time(comment, "created_at"),
        )
    ]


def _issue_event(p: Payload, c: _Ctx, **fields: Any) -> ForgeEvent:
    issue = read.obj(p, "issue", "payload")
    return ForgeEvent(
        forge=c.forge,
        repo=read.repo_name(p),
        number=read.integer(issue, "number", "payload.issue"),
        kind=FeedbackKind.TASK,
        actor=read.actor(p.get("sender") or issue.get("user"), "payload.sender"),
        url=read.link(issue, "html_url"),
        title=read.string(issue, "title", "payload.issue"),
        body=read.text(issue, "body", "payload.issue"),
        at=read.time(issue, "updated_at", "created_at"),
        **fields,
    )


def _opened(p: Payload, c: _Ctx) -> list[ForgeEvent] | Ignored:
    issue = read.obj(p, "issue", "payload")
    if not mentions(read.text(issue, "body", "payload.issue"), c.mention):
        return Ignored(f"an issue opened without a mention of {c.mention}")
    number = read.integer(issue, "number", "payload.issue")
    return [_issue_event(p, c, identity=f"task:{number}", trigger=Trigger.MENTION)]


def _gh_issues(p: Payload, c: _Ctx) -> list[ForgeEvent] | Ignored:
    action = _action(p)
    if action == "opened":
        return _opened(p, c)
    issue = read.obj(p, "issue", "payload")
    number, updated = (
        read.integer(issue, "number", "payload.issue"),
        read.string(issue, "updated_at", "payload.issue"),
    )
    if action == "labeled":
        label = read.string(
            read.obj(p, "label", "payload"), "name", "payload.label", required=True, limit=255
        )
        identity = f"label:{number}:{label}:{updated}"
        return [_issue_event(p, c, identity=identity, trigger=Trigger.LABEL, signature=label)]
    if action == "assigned":
        login = read.actor(p.get("assignee"), "payload.assignee").login
        if login.lower() != c.user.lower():
            return Ignored(f"the issue was assigned to {login}, not to baton's user {c.user}")
        return [_issue_event(p, c, identity=f"assign:{number}:{login}:{updated}", trigger=Trigger.ASSIGN)]
    return Ignored(f"issues action {action!r} asks nothing")


def _pr_fields(pr: Payload) -> dict[str, Any]:
    where = "payload.pull_request"
    return {
        "number": read.integer(pr, "number", where),
        "is_pr": True,
        "from_fork": read.from_fork(pr, where),
        "title": read.string(pr, "title", where),
    }


def _gh_review(p: Payload, c: _Ctx) -> list[ForgeEvent] | Ignored:
    action = _action(p)
    if action != "submitted":
        return Ignored(f"pull_request_review action {action!r} asks nothing")
    review, pr = read.obj(p, "review", "payload"), read.obj(p, "pull_request", "payload")
    where = "payload.review"
    body = read.text(review, "body", where)
    if read.string(review, "state", where).lower() == "approved" and not body.strip():
        return Ignored("an approval without words asks nothing")
    head = read.sha(review, "commit_id", where) if review.get("commit_id") else _head(pr)
    return [
        ForgeEvent(
            forge=c.forge,
            repo=read.repo_name(p),
            kind=FeedbackKind.REVIEW,
            identity=f"review:{read.integer(review, 'id', where)}",
            actor=read.actor(review.get("user"), f"{where}.user", review.get("author_association")),
            url=read.link(review, "html_url"),
            head_sha=head,
            body=body,
            at=read.time(review, "submitted_at"),
            **_pr_fields(pr),
        )
    ]


def _head(pr: Payload) -> str:
    return read.sha(read.obj(pr, "head", "payload.pull_request"), "sha", "payload.pull_request.head")


def _gh_review_comment(p: Payload, c: _Ctx) -> list[ForgeEvent] | Ignored:
    action = _action(p)
    if action != "created":
        return Ignored(f"pull_request_review_comment action {action!r} asks nothing")
    comment, pr = read.obj(p, "comment", "payload"), read.obj(p, "pull_request", "payload")
    where = "payload.comment"
    review_id = comment.get("pull_request_review_id")
    comment_id = read.integer(comment, "id", where)
    if review_id is not None:
        review_id = read.integer(comment, "pull_request_review_id", where)
    line = next((v for v in (comment.get("line"), comment.get("original_line")) if read.is_int(v)), None)
    inline = ReviewComment(
        id=comment_id,
        path=read.string(comment, "path", where, required=True),
        line=line,
        diff_hunk=read.text(comment, "diff_hunk", where),
        body=read.text(comment, "body", where),
        url=read.link(comment, "html_url"),
    )
    return [
        ForgeEvent(
            forge=c.forge,
            repo=read.repo_name(p),
            kind=FeedbackKind.REVIEW,
            identity=f"review:{review_id}" if review_id else f"review:comment-{comment_id}",
            actor=read.actor(comment.get("user"), f"{where}.user", comment.get("author_association")),
            url=read.link(comment, "html_url"),
            head_sha=read.sha(comment, "commit_id", where) if comment.get("commit_id") else _head(pr),
            comments=(inline,),
            at=read.time(comment, "created_at"),
            **_pr_fields(pr),
        )
    ]


def _ci_events(
    p: Payload, c: _Ctx, prs: Any, head: str, check: FailedCheck, at: float
) -> list[ForgeEvent] | Ignored:
    """One ``ci_failure`` per pull request the CI event names."""
    if not isinstance(prs, list):
        raise Malformed("the CI event's pull_requests is missing or not a list")
    if not prs:
        return Ignored(
            f"{check.name!r} failed on {head[:12]} but names no pull request (a branch without one, or"
            " a pull request from a fork, which GitHub leaves out: the reconcile finds those)"
        )
    repo, actor = read.repo_name(p), read.actor(p.get("sender"), "payload.sender")
    events = []
    for i, pr in enumerate(prs[:MAX_PULL_REQUESTS]):
        if not isinstance(pr, dict):
            raise Malformed(f"pull_requests[{i}] is not an object")
        events.append(
            ForgeEvent(
                forge=c.forge,
                repo=repo,
                number=read.integer(pr, "number", f"pull_requests[{i}]"),
                kind=FeedbackKind.CI_FAILURE,
                identity=f"ci:{head}:{check.name}",
                actor=actor,
                url=check.url,
                is_pr=True,
                head_sha=head,
                from_fork=read.from_fork(pr, f"pull_requests[{i}]"),
                checks=(check,),
                at=at,
            )
        )
    return events


def _completed(p: Payload, obj: str) -> tuple[Payload, str] | Ignored:
    action = _action(p)
    run = read.obj(p, obj, "payload")
    conclusion = read.string(run, "conclusion", f"payload.{obj}", limit=64)
    if action != "completed":
        return Ignored(f"{obj} action {action!r} asks nothing (only a completed one can fail)")
    if conclusion not in FAILED:
        return Ignored(f"{obj} concluded {conclusion or 'nothing'!r}: nothing to fix")
    return run, conclusion


def _gh_check_run(p: Payload, c: _Ctx) -> list[ForgeEvent] | Ignored:
    done = _completed(p, "check_run")
    if isinstance(done, Ignored):
        return done
    run, conclusion = done
    where = "payload.check_run"
    url = read.link(run, "html_url") or read.link(run, "details_url")
    check = FailedCheck(
        read.string(run, "name", where, required=True), conclusion, url, job_id=read.integer(run, "id", where)
    )
    return _ci_events(
        p,
        c,
        run.get("pull_requests"),
        read.sha(run, "head_sha", where),
        check,
        read.time(run, "completed_at"),
    )


def _gh_check_suite(p: Payload, c: _Ctx) -> list[ForgeEvent] | Ignored:
    done = _completed(p, "check_suite")
    if isinstance(done, Ignored):
        return done
    suite, conclusion = done
    where = "payload.check_suite"
    app = suite.get("app")
    name = read.string(app, "name", f"{where}.app") if isinstance(app, dict) else ""
    head = read.sha(suite, "head_sha", where)
    base = read.link(read.obj(p, "repository", "payload"), "html_url")
    url = f"{base}/commit/{head}/checks" if base else ""
    check = FailedCheck(name or "check suite", conclusion, url)
    return _ci_events(p, c, suite.get("pull_requests"), head, check, read.time(suite, "updated_at"))


def _gh_workflow_run(p: Payload, c: _Ctx) -> list[ForgeEvent] | Ignored:
    done = _completed(p, "workflow_run")
    if isinstance(done, Ignored):
        return done
    run, conclusion = done
    where = "payload.workflow_run"
    workflow = p.get("workflow")
    name = read.string(run, "name", where) or (
        read.string(workflow, "name", "payload.workflow") if isinstance(workflow, dict) else ""
    )
    check = FailedCheck(name or "workflow run", conclusion, read.link(run, "html_url"))
    return _ci_events(
        p, c, run.get("pull_requests"), read.sha(run, "head_sha", where), check, read.time(run, "updated_at")
    )


def _status(p: Payload, c: _Ctx) -> list[ForgeEvent] | Ignored:
    """A commit status (both forges): it names a commit, not a pull request (``number`` 0)."""
    state = read.string(p, "state", "payload", required=True, limit=64)
    if state not in FAILED_STATUS:
        return Ignored(f"a commit status {state!r}: nothing to fix")
    head, context = read.sha(p, "sha", "payload"), read.string(p, "context", "payload", required=True)
    check = FailedCheck(context, state, read.link(p, "target_url"), job_id=None)
    return [
        ForgeEvent(
            forge=c.forge,
            repo=read.repo_name(p),
            number=0,
            kind=FeedbackKind.CI_FAILURE,
            identity=f"ci:{head}:{context}",
            actor=read.actor(p.get("sender"), "payload.sender"),
            url=check.url,
            is_pr=True,
            head_sha=head,
            checks=(check,),
            at=read.time(p, "updated_at", "created_at"),
        )
    ]


def _pull_request(p: Payload, c: _Ctx) -> list[ForgeEvent] | Ignored:
    """Both forges: a pull request the forge says cannot merge cleanly."""
    action = _action(p)
    if action not in CONFLICT_ACTIONS:
        return Ignored(f"pull_request action {action!r} asks nothing")
    pr = read.obj(p, "pull_request", "payload")
    if pr.get("mergeable") is not False:
        return Ignored(f"the pull request is mergeable ({pr.get('mergeable')!r}): no conflict to resolve")
    head = _head(pr)
    base = read.sha(read.obj(pr, "base", "payload.pull_request"), "sha", "payload.pull_request.base")
    return [
        ForgeEvent(
            forge=c.forge,
            repo=read.repo_name(p),
            kind=FeedbackKind.CONFLICT,
            identity=f"conflict:{head}:{base}",
            actor=read.actor(p.get("sender"), "payload.sender"),
            url=read.link(pr, "html_url"),
            head_sha=head,
            at=read.time(pr, "updated_at"),
            **_pr_fields(pr),
        )
    ]


GITHUB_EVENTS: dict[str, Callable[[Payload, _Ctx], list[ForgeEvent] | Ignored]] = {
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


def _gt_issues(p: Payload, c: _Ctx) -> list[ForgeEvent] | Ignored:
    action = _action(p)
    if action == "opened":
        return _opened(p, c)
    if action == "label_updated":
        return _gt_labels(p, c)
    if action == "assigned":
        return _gt_assigned(p, c)
    return Ignored(f"issues action {action!r} asks nothing")


def _gt_labels(p: Payload, c: _Ctx) -> list[ForgeEvent] | Ignored:
    issue = read.obj(p, "issue", "payload")
    number = read.integer(issue, "number", "payload.issue")
    labels = issue.get("labels") or []
    if not isinstance(labels, list):
        raise Malformed("payload.issue.labels is not a list")
    names = [read.string(label, "name", "payload.issue.labels[]", required=True, limit=255)
             for label in labels[:MAX_LABELS] if isinstance(label, dict)]  # fmt: skip
    if not names:
        return Ignored("the issue's labels were cleared")
    return [
        _issue_event(p, c, identity=f"label:{number}:{name}", trigger=Trigger.LABEL, signature=name)
        for name in names
    ]


def _gt_assigned(p: Payload, c: _Ctx) -> list[ForgeEvent] | Ignored:
    issue = read.obj(p, "issue", "payload")
    number = read.integer(issue, "number", "payload.issue")
    assignees = issue.get("assignees") or ([issue["assignee"]] if issue.get("assignee") else [])
    if not isinstance(assignees, list):
        raise Malformed("payload.issue.assignees is not a list")
    logins = [read.actor(a, "payload.issue.assignees[]").login for a in assignees[:MAX_LABELS]]
    if not any(login.lower() == c.user.lower() for login in logins):
        return Ignored(
            f"the issue was assigned to {', '.join(logins) or 'nobody'}, not to baton's user {c.user}"
        )
    return [_issue_event(p, c, identity=f"assign:{number}:{c.user}", trigger=Trigger.ASSIGN)]


def _gt_review(p: Payload, c: _Ctx) -> list[ForgeEvent] | Ignored:
    """A submitted review (approved, rejected or comment): Gitea sends its type and text, no id."""
    review, pr = read.obj(p, "review", "payload"), read.obj(p, "pull_request", "payload")
    kind = read.string(review, "type", "payload.review", limit=64)
    content = read.text(review, "content", "payload.review")
    raw = str(review.get("content") or "")  # type-checked by _body; the identity hashes it as sent
    if "approved" in kind and not content.strip():
        return Ignored("an approval without words asks nothing")
    fields = _pr_fields(pr)
    head = _head(pr)
    return [
        ForgeEvent(
            forge=c.forge,
            repo=read.repo_name(p),
            kind=FeedbackKind.REVIEW,
            identity=gitea_review_identity(fields["number"], head, raw),
            actor=read.actor(p.get("sender"), "payload.sender"),
            url=read.link(pr, "html_url"),
            head_sha=head,
            body=content,
            at=read.time(pr, "updated_at"),
            **fields,
        )
    ]


def gitea_review_identity(number: int, head: str, content: str) -> str:
    """A Gitea review's identity: its payload has no id, so its pull request, commit and text (the
    reconcile, reading the review through the API, computes the same)."""
    digest = hashlib.sha256(read.clean(content, BODY_CHARS).encode()).hexdigest()[:16]
    return f"review:{number}:{head.lower()}:{digest}"


def _gt_pull_request_comment(p: Payload, c: _Ctx) -> list[ForgeEvent] | Ignored:
    """Gitea names a review of type comment ``pull_request_comment`` in ``X-Gitea-Event`` and a plain
    comment on a pull request ``pull_request_comment`` in ``X-Gitea-Event-Type``: told by the shape."""
    return _gt_review(p, c) if "review" in p else _gh_issue_comment(p, c)


GITEA_EVENTS: dict[str, Callable[[Payload, _Ctx], list[ForgeEvent] | Ignored]] = {
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
    kind: str,
    forge: str,
    event: str,
    payload: dict[str, Any],
    *,
    mention: str = "@baton",
    user: str = "baton",
) -> list[ForgeEvent] | Ignored:
    """The events a delivery carries, or why it carries none (stored as the delivery's ``ignored``).
    ``user`` is baton's own login on the forge: an assignment to anyone else is ignored. Raises
    :class:`Malformed` for a payload that lacks what its event needs.

    What each event becomes:

    - a comment (``issue_comment`` created): ``comment``, a ``mention`` trigger when its text names
      baton (``@baton``, as a word, outside quoted lines, fenced code and inline code), else
      ``feedback``; identity ``comment:<id>``.
    - an issue (``issues``): opened with a mention, ``task:<n>``; labelled,
      ``label:<n>:<label>:<updated>`` with **the label in** ``signature``; assigned to baton's own user,
      ``assign:<n>:<login>:<updated>``. Gitea's ``label_updated`` and ``assigned`` do not say which
      label or assignee changed: each current label (or baton among the assignees) is an event,
      identified without the time (``label:<n>:<label>``, ``assign:<n>:<login>``), so a label that
      stays on the issue is acted on once.
    - a review: GitHub's ``review:<review id>``, and an inline comment is its review's event with that
      one comment (the dispatcher fetches the rest); Gitea sends no review id, so
      ``review:<n>:<head>:<sha256 of the text, 16 hex>``. An approval without words is ignored.
    - a failed check run, check suite, workflow run or commit status: ``ci_failure``, one event per
      pull request it names, identity ``ci:<head>:<name>``, provisional (the dispatcher re-identifies it
      with the whole failing set). A commit status names no pull request: its ``number`` is ``0`` and
      the dispatcher finds the pull request by ``head_sha``.
    - a pull request opened, reopened or pushed to that the forge says cannot merge (``mergeable``
      false): ``conflict:<head>:<base>``.

    ``from_fork`` is true for a pull request whose head repository differs from its base's, is gone, or
    cannot be told apart (the safe side: a fork never runs above ``read``). An issue comment on a pull
    request carries no head: its ``from_fork`` is left to the dispatcher, which reads the pull
    request."""
    if not isinstance(payload, dict):
        raise Malformed("the payload is not a JSON object")
    handlers = GITHUB_EVENTS if kind == ForgeKind.GITHUB else GITEA_EVENTS
    handler = handlers.get(event)
    if handler is None:
        return Ignored(f"{kind} event {event[:64]!r} asks nothing of a thread")
    return handler(payload, _Ctx(forge, mention, user))
