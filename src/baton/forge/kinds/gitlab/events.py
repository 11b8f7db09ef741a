"""What a GitLab webhook delivery asks (``POST /webhooks/gitlab``): its payload read once into the forge
room's typed parts (:class:`~baton.forge.reading.delivery.Delivery`: feedback events, a cleanup, an issue or
MR closed, a branch pushed to, an MR that may be ready) by :data:`GITLAB_READER`, the GitLab sibling of
:class:`baton.forge.reading.delivery.Reader`. The shapes are those of GitLab's "Webhook events" documentation
(``Note Hook``, ``Issue Hook``, ``Merge Request Hook``, ``Pipeline Hook``, ``Push Hook``); the token was
checked before (:func:`baton.forge.reading.webhook.token_verified`). A payload is hostile even when its token
is right: every field is read through :mod:`baton.forge.reading.payload`; one its event needs but lacks raises
:class:`~baton.forge.reading.webhook.Malformed` (the route's 400). Identities: docs/forge.md (Setting up
GitLab).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from baton.forge.data.config import ForgeConfig, ForgeSettings, MergePolicy
from baton.forge.data.model import Actor, FailedCheck, ForgeEvent, ForgeKind, ReviewComment, Trigger
from baton.forge.data.records import FeedbackKind
from baton.forge.kinds.gitlab.facts import HOOK, is_bot_login
from baton.forge.reading import payload as read
from baton.forge.reading.delivery import BasePushed, Closed, Delivery, PartReaders, Settled, admitted, joined
from baton.forge.reading.payload import Payload, mentions
from baton.forge.reading.webhook import Forge, Ignored, Malformed, Target, branch_name, repo_slugs

ZERO_SHA = "0" * 40  # a push's ``after`` when it deleted the branch
MAX_CHANGED = 100  # labels or assignees read from one change
MAX_PATH = 255 * 21  # a project's full path: up to 20 groups and a name
_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(?:/[A-Za-z0-9_][A-Za-z0-9._-]*)+")
CONFLICTED = frozenset({"conflict", "cannot_be_merged"})
CONFLICT_ACTIONS = frozenset({"open", "reopen", "update"})


def actor(user: Any, where: str) -> Actor:
    """Who a payload's ``user`` is: GitLab names them by ``username``; its bots by their names
    (:func:`baton.forge.kinds.gitlab.facts.is_bot_login`, as the client judges them)."""
    if not isinstance(user, dict):
        raise Malformed(f"{where} is missing or not an object")
    login = read.string(user, "username", where, required=True, limit=255)
    return Actor(login, bot=user.get("bot") is True or is_bot_login(login))


def project_path(p: Payload) -> str:
    """The project's full path (``group/subgroup/name``)."""
    name = read.string(
        read.obj(p, "project", "payload"), "path_with_namespace", "payload.project", required=True
    )
    if len(name) > MAX_PATH or not _PATH.fullmatch(name) or ".." in name:
        raise Malformed("payload.project.path_with_namespace is not a project's full path")
    return name


def project_slugs(project: Any, where: str) -> tuple[str, ...]:
    """A project's repository slugs, from GitLab's names of its URLs."""
    if not isinstance(project, dict):
        raise Malformed(f"{where} is missing or not an object")
    urls = {"clone_url": project.get("git_http_url"), "ssh_url": project.get("git_ssh_url")}
    return repo_slugs({**urls, "html_url": project.get("web_url")}, where)


@dataclass(frozen=True)
class _Ctx:
    forge: str
    mention: str
    user: str


def _mr_fields(mr: Payload, where: str) -> dict[str, Any]:
    last = mr.get("last_commit")
    head = read.sha(last, "id", f"{where}.last_commit") if isinstance(last, dict) and last.get("id") else None
    source, target = mr.get("source_project_id"), mr.get("target_project_id")
    return {
        "number": read.integer(mr, "iid", where),
        "is_pr": True,
        "head_sha": head,
        "from_fork": not (read.is_int(source) and source == target),
        "title": read.string(mr, "title", where),
    }


# -- notes --------------------------------------------------------------------------------------------


def _note(p: Payload, c: _Ctx) -> list[ForgeEvent] | Ignored:
    note = read.obj(p, "object_attributes", "payload")
    where = "payload.object_attributes"
    if note.get("system") is True:
        return Ignored("a system note (GitLab's record of a change) asks nothing")
    kind = read.string(note, "noteable_type", where, limit=64)
    if kind not in ("Issue", "MergeRequest"):
        return Ignored(f"a note on a {kind or 'thing'} asks nothing of a thread")
    body, note_id = read.text(note, "note", where), read.integer(note, "id", where)
    common: dict[str, Any] = {
        "forge": c.forge,
        "repo": project_path(p),
        "actor": actor(p.get("user"), "payload.user"),
        "url": read.link(note, "url"),
        "body": body,
        "at": read.time(note, "created_at"),
    }
    if kind == "Issue":
        issue = read.obj(p, "issue", "payload")
        number, title = (
            read.integer(issue, "iid", "payload.issue"),
            read.string(issue, "title", "payload.issue"),
        )
        fields: dict[str, Any] = {"number": number, "is_pr": False, "title": title}
    else:
        fields = _mr_fields(read.obj(p, "merge_request", "payload"), "payload.merge_request")
    position = note.get("position")
    if kind == "MergeRequest" and isinstance(position, dict) and note.get("type") == "DiffNote":
        inline = _inline(note_id, position, body, common["url"])
        head = _position_head(position) or fields["head_sha"]
        review = {**fields, "head_sha": head, "body": "", "comments": (inline,)}
        return [ForgeEvent(**common | review, kind=FeedbackKind.REVIEW, identity=f"review:note-{note_id}")]
    trigger = Trigger.MENTION if mentions(body, c.mention) else Trigger.FEEDBACK
    return [
        ForgeEvent(
            **common, **fields, kind=FeedbackKind.COMMENT, identity=f"comment:{note_id}", trigger=trigger
        )
    ]


def _inline(note_id: int, position: Payload, body: str, url: str) -> ReviewComment:
    where = "payload.object_attributes.position"
    path = read.string(position, "new_path", where) or read.string(position, "old_path", where, required=True)
    line = next((v for v in (position.get("new_line"), position.get("old_line")) if read.is_int(v)), None)
    return ReviewComment(id=note_id, path=path, line=line, diff_hunk="", body=body, url=url)


def _position_head(position: Payload) -> str | None:
    value = position.get("head_sha")
    return read.sha(position, "head_sha", "payload.object_attributes.position") if value else None


# -- issues ---------------------------------------------------------------------------------------------


def _issue(p: Payload, c: _Ctx) -> list[ForgeEvent] | Ignored:
    issue = read.obj(p, "object_attributes", "payload")
    where = "payload.object_attributes"
    action = read.string(issue, "action", where, limit=64)
    number = read.integer(issue, "iid", where)
    updated = read.string(issue, "updated_at", where, limit=64)

    def event(identity: str, trigger: Trigger, signature: str | None = None) -> ForgeEvent:
        return ForgeEvent(
            forge=c.forge,
            repo=project_path(p),
            number=number,
            kind=FeedbackKind.TASK,
            identity=identity,
            actor=actor(p.get("user"), "payload.user"),
            trigger=trigger,
            url=read.link(issue, "url"),
            title=read.string(issue, "title", where),
            body=read.text(issue, "description", where),
            signature=signature,
            at=read.time(issue, "updated_at", "created_at"),
        )

    if action == "open":
        if not mentions(read.text(issue, "description", where), c.mention):
            return Ignored(f"an issue opened without a mention of {c.mention}")
        return [event(f"task:{number}", Trigger.MENTION)]
    if action != "update":
        return Ignored(f"issue action {action or 'none'!r} asks nothing")
    labels = _added(p, "labels", "title")
    assigned = [login for login in _added(p, "assignees", "username") if login.lower() == c.user.lower()]
    found = [event(f"label:{number}:{label}:{updated}", Trigger.LABEL, label) for label in labels]
    found += [event(f"assign:{number}:{login}:{updated}", Trigger.ASSIGN) for login in assigned]
    return found or Ignored("an issue update that adds no label and assigns no one to baton")


def _added(p: Payload, name: str, key: str) -> list[str]:
    """What an update added to the issue's ``name`` (labels by title, assignees by username)."""
    changes = p.get("changes")
    change = changes.get(name) if isinstance(changes, dict) else None
    if not isinstance(change, dict):
        return []
    lists = [change.get("previous") or [], change.get("current") or []]
    if not all(isinstance(items, list) for items in lists):
        raise Malformed(f"payload.changes.{name} is not previous and current lists")
    where = f"payload.changes.{name}[]"
    before, after = (
        [
            read.string(item, key, where, required=True)
            for item in items[:MAX_CHANGED]
            if isinstance(item, dict)
        ]
        for items in lists
    )
    known = {value.casefold() for value in before}
    return [value for value in after if value.casefold() not in known]


# -- merge requests and pipelines -----------------------------------------------------------------------


def _merge_request(p: Payload, c: _Ctx) -> list[ForgeEvent] | Ignored:
    """An MR GitLab says cannot merge (its ``detailed_merge_status`` or ``merge_status``)."""
    mr, where = read.obj(p, "object_attributes", "payload"), "payload.object_attributes"
    action = read.string(mr, "action", where, limit=64)
    if action not in CONFLICT_ACTIONS:
        return Ignored(f"merge request action {action or 'none'!r} asks nothing")
    status = {str(mr.get("detailed_merge_status") or ""), str(mr.get("merge_status") or "")}
    if not status & CONFLICTED:
        return Ignored("the merge request is not in conflict")
    fields = _mr_fields(mr, where)
    if fields["head_sha"] is None:
        raise Malformed(f"{where}.last_commit.id is missing")
    base = read.string(mr, "target_branch", where, required=True)
    return [
        ForgeEvent(
            forge=c.forge,
            repo=project_path(p),
            kind=FeedbackKind.CONFLICT,
            identity=f"conflict:{fields['head_sha']}:{base}",
            actor=actor(p.get("user"), "payload.user"),
            url=read.link(mr, "url"),
            at=read.time(mr, "updated_at"),
            **fields,
        )
    ]


def _pipeline(p: Payload, c: _Ctx) -> list[ForgeEvent] | Ignored:
    """A failed pipeline: one ``ci_failure`` for its merge request (or, for a branch pipeline, for the
    bound MR at its commit: ``number`` 0), with its failed jobs; the dispatcher re-reads the whole set."""
    run, where = read.obj(p, "object_attributes", "payload"), "payload.object_attributes"
    status = read.string(run, "status", where, limit=64)
    if status != "failed":
        return Ignored(f"a pipeline {status or 'without a status'!r}: nothing to fix")
    head, pipeline = read.sha(run, "sha", where), read.integer(run, "id", where)
    url = read.link(run, "url")
    listed = p.get("builds")
    builds: list[Any] = listed if isinstance(listed, list) else []
    checks = tuple(
        FailedCheck(
            f"{read.string(b, 'stage', 'payload.builds[]')} / {read.string(b, 'name', 'payload.builds[]')}",
            "failure",
            url,
            job_id=read.integer(b, "id", "payload.builds[]"),
        )
        for b in builds[:MAX_CHANGED]
        if isinstance(b, dict) and b.get("status") == "failed" and b.get("allow_failure") is not True
    ) or (FailedCheck("pipeline", "failure", url),)
    mr = p.get("merge_request")
    number = read.integer(mr, "iid", "payload.merge_request") if isinstance(mr, dict) else 0
    return [
        ForgeEvent(
            forge=c.forge,
            repo=project_path(p),
            number=number,
            kind=FeedbackKind.CI_FAILURE,
            identity=f"ci:{head}:{pipeline}",
            actor=actor(p.get("user"), "payload.user"),
            url=url,
            is_pr=True,
            head_sha=head,
            checks=checks,
            at=read.time(run, "finished_at", "created_at"),
        )
    ]


EVENTS: dict[str, Callable[[Payload, _Ctx], list[ForgeEvent] | Ignored]] = {
    "Note Hook": _note,
    "Confidential Note Hook": _note,
    "Issue Hook": _issue,
    "Confidential Issue Hook": _issue,
    "Merge Request Hook": _merge_request,
    "Pipeline Hook": _pipeline,
}


def read_event(
    forge: str, event: str, payload: dict[str, Any], *, mention: str = "@baton", user: str = "baton"
) -> list[ForgeEvent] | Ignored:
    """The feedback events a GitLab delivery carries, or why none. What each becomes:

    - a note on an issue or MR: ``comment:<note id>`` (a ``mention`` trigger when it names baton); a
      diff note (``DiffNote`` with a position) on an MR: a ``review`` with that one inline comment,
      ``review:note-<note id>`` (the dispatcher gathers the same author's other new diff notes: one
      submitted review, one turn). System notes are ignored.
    - an issue opened with the mention, ``task:<iid>``; an update adding a label,
      ``label:<iid>:<label>:<updated_at>`` (the label in ``signature``); one adding baton's user to
      the assignees, ``assign:<iid>:<login>:<updated_at>``.
    - an MR opened, reopened or updated that GitLab says cannot merge: ``conflict:<head>:<target>``.
    - a failed pipeline: ``ci:<sha>:<pipeline id>`` for its MR (``number`` 0 for a branch pipeline),
      provisional: the dispatcher re-reads the failing jobs and identifies the failing set."""
    if not isinstance(payload, dict):
        raise Malformed("the payload is not a JSON object")
    handler = EVENTS.get(event)
    if handler is None:
        return Ignored(f"gitlab event {event[:64]!r} asks nothing of a thread")
    return handler(payload, _Ctx(forge, mention, user))


# -- the delivery's other parts -------------------------------------------------------------------------


def _target(event: str, p: Payload) -> Target | Ignored:
    """A branch gone: a push deleting it, or its MR closed or merged (in the source project)."""
    if event == "Push Hook":
        ref = read.string(p, "ref", "payload", required=True)
        if read.string(p, "after", "payload") != ZERO_SHA or not ref.startswith("refs/heads/"):
            return Ignored("a push that does not delete a branch")
        return Target(project_slugs(p.get("project"), "payload.project"), branch_name(ref))
    if event == "Merge Request Hook":
        mr = read.obj(p, "object_attributes", "payload")
        action = read.string(mr, "action", "payload.object_attributes", limit=64)
        if action not in ("close", "merge"):
            return Ignored(f"merge request action {action or 'none'!r} does not clean up")
        source = mr.get("source")
        branch = branch_name(read.string(mr, "source_branch", "payload.object_attributes", required=True))
        return Target(project_slugs(source, "payload.object_attributes.source"), branch, action == "merge")
    return Ignored(f"event {event[:64]!r} does not clean up")


def _closed(forge: ForgeConfig, event: str, p: Payload) -> Closed | None:
    item = p.get("object_attributes")
    if event not in ("Issue Hook", "Merge Request Hook") or not isinstance(item, dict):
        return None
    if item.get("action") not in ("close", "merge"):
        return None
    number = item.get("iid")
    if type(number) is not int or not 0 < number < 2**63:
        return None
    merged = event == "Merge Request Hook" and item.get("action") == "merge"
    return Closed(forge.name, project_path(p), number, merged, pr=event == "Merge Request Hook")


def _pushed(forge: ForgeConfig, event: str, p: Payload) -> BasePushed | None:
    if event != "Push Hook" or p.get("after") == ZERO_SHA:
        return None
    login = p.get("user_username")
    if isinstance(login, str) and login.casefold() == forge.user.casefold():
        return None  # baton's own push to a thread's branch moves no base it works on
    ref = p.get("ref")
    if not isinstance(ref, str) or not ref.startswith("refs/heads/"):
        return None
    return BasePushed(forge.name, project_path(p), branch_name(ref))


def _settled(config: ForgeSettings, forge: ForgeConfig, event: str, p: Payload) -> Settled | None:
    """An MR approved, or a pipeline that succeeded, where the merge policy is on."""
    repo = project_path(p)
    found = config.repo(forge.name, repo)
    if found is None or found.merge is MergePolicy.OFF:
        return None
    item = p.get("object_attributes") if isinstance(p.get("object_attributes"), dict) else {}
    assert isinstance(item, dict)
    if event == "Merge Request Hook" and item.get("action") in ("approved", "approval"):
        number = item.get("iid")
        return Settled(forge.name, repo, (number,)) if type(number) is int and number > 0 else None
    if event == "Pipeline Hook" and item.get("status") == "success" and isinstance(item.get("sha"), str):
        return Settled(forge.name, repo, head_sha=read.sha(item, "sha", "payload.object_attributes"))
    return None


@dataclass(frozen=True)
class GitLabReader:
    """GitLab's reading of its deliveries (the interface of :class:`baton.forge.reading.delivery.Reader`)."""

    forge: Forge = HOOK
    kind: ForgeKind = ForgeKind.GITLAB

    @property
    def parts(self) -> PartReaders:
        return {}

    def read(self, config: ForgeSettings | None, event: str, payload: dict[str, Any]) -> Delivery | Ignored:
        target = _target(event, payload)
        cleanup = target if isinstance(target, Target) else None
        found = self.feedback(config, event, payload) if config is not None else Delivery()
        return joined(cleanup, target, found)

    def feedback(self, config: ForgeSettings, event: str, payload: dict[str, Any]) -> Delivery | Ignored:
        project = payload.get("project")
        web = project.get("web_url") if isinstance(project, dict) else None
        forge = config.forge_of_kind(self.kind, web if isinstance(web, str) else None)
        if forge is None:
            return Ignored("no gitlab forge is configured for this delivery")
        closed = _closed(forge, event, payload)
        pushed = None if closed else _pushed(forge, event, payload)
        if closed or pushed:
            return Delivery(closed=closed, pushed=pushed)
        events = admitted(
            config, forge, read_event(forge.name, event, payload, mention=forge.mention, user=forge.user)
        )
        settled = _settled(config, forge, event, payload)
        if isinstance(events, Ignored):
            return Delivery(settled=settled) if settled else events
        return Delivery(events=tuple(events), settled=settled)


GITLAB_READER = GitLabReader()
