"""The fake GitLab's REST routes: the endpoints baton's GitLab client calls (the contract's, and the
project's hooks and an MR's reviewers), each a handler taking a :class:`Call` and answering ``(status,
JSON body, headers)`` in GitLab's shapes, or raising :class:`~baton.testing.fake_gitlab_core.GitLabRefused`
with GitLab's words. Access follows GitLab's roles (a non-member of a private project gets 404; Guests
read issues, Reporters MRs and pipelines, Developers open MRs, Maintainers see hooks); paging is
GitLab's offset paging (:meth:`Call.page`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import unquote, urlencode

from baton.testing.fake_gitlab_core import GitLabRefused
from baton.testing.fake_gitlab_merge import GitLabMerge
from baton.testing.fake_gitlab_state import ACCESS, Issue, MergeRequest, Project, Token, parse_time

Reply = tuple[int, Any, dict[str, str]]  # status, JSON body (None: none), extra headers
Handler = Callable[["Call"], Reply]


class Call:
    """One API request as a route sees it: the fake, the token and its user, the path's parameters,
    the query and the body's parameters, and the request's own URL (for ``Link``)."""

    def __init__(
        self,
        fake: GitLabMerge,
        token: Token,
        params: dict[str, str],
        query: dict[str, list[str]],
        body: dict[str, Any],
        url: str,
    ) -> None:
        self.fake, self.token, self.params, self.query, self.body, self.url = (
            fake,
            token,
            params,
            query,
            body,
            url,
        )
        self.login = token.username

    def arg(self, name: str, default: str | None = None) -> str | None:
        """A parameter from the body, else the query (GitLab takes either)."""
        if name in self.body and self.body[name] is not None:
            value = self.body[name]
            return str(value).lower() if isinstance(value, bool) else str(value)
        values = self.query.get(name)
        return values[-1] if values else default

    def project(self, minimum: int = ACCESS["guest"]) -> Project:
        """The path's project, seen by a member at ``minimum`` or above (404 for others, as GitLab
        hides a private project; 403 for a member below it)."""
        project = self.fake.project(unquote(self.params["id"]))
        level = self.fake.access(project, self.login)
        if level == 0 and project.visibility == "private":
            raise GitLabRefused(404, "404 Project Not Found")
        if level < minimum:
            raise GitLabRefused(403, "403 Forbidden")
        return project

    def level(self, project: Project) -> int:
        return self.fake.access(project, self.login)

    def iid(self, name: str) -> int:
        text = self.params[name]
        if not text.isdigit():
            raise GitLabRefused(400, f"400 Bad request - {name} is invalid")
        return int(text)

    def page(self, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        """GitLab's offset paging: ``per_page`` (20 by default, at most 100) and ``page``; ``X-Page``,
        ``X-Per-Page``, ``X-Next-Page``, ``X-Prev-Page``, ``X-Total``, ``X-Total-Pages`` and a ``Link``
        (the totals and ``rel="last"`` left out when the fake says the set is too large to count)."""
        per_page = min(100, max(1, _int(self.arg("per_page"), 20)))
        page = max(1, _int(self.arg("page"), 1))
        last = max(1, -(-len(items) // per_page))
        more = page < last

        def link(n: int, rel: str) -> str:
            query = {k: v[-1] for k, v in self.query.items()}
            query.update(page=str(n), per_page=str(per_page))
            return f'<{self.url}?{urlencode(query)}>; rel="{rel}"'

        links = ([link(page - 1, "prev")] if page > 1 else []) + ([link(page + 1, "next")] if more else [])
        links.append(link(1, "first"))
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Next-Page": str(page + 1) if more else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
        }
        if not self.fake.uncounted:
            links.append(link(last, "last"))
            headers |= {"X-Total": str(len(items)), "X-Total-Pages": str(last)}
        headers["Link"] = ", ".join(links)
        return items[(page - 1) * per_page : page * per_page], headers


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        raise GitLabRefused(400, "400 Bad request - per_page, page is invalid") from None


def _sorted(
    c: Call, items: list[Any], default_order: str = "created_at", default_sort: str = "desc"
) -> list[Any]:
    order = c.arg("order_by", default_order) or default_order
    key = {"updated_at": lambda i: i.updated_at, "id": lambda i: i.id}.get(order, lambda i: i.created_at)
    return sorted(items, key=key, reverse=(c.arg("sort", default_sort) or default_sort) == "desc")


# -- who, and what the token may -----------------------------------------------------------------------------


def get_user(c: Call) -> Reply:
    return 200, c.fake.render.user_self(c.login), {}


def get_token_self(c: Call) -> Reply:
    return 200, c.fake.render.token(c.token, c.fake.clock()), {}


def list_users(c: Call) -> Reply:
    wanted = c.arg("username")
    with c.fake.lock:
        names = [n for n in c.fake.users if wanted is None or n.lower() == wanted.lower()]
        items, headers = c.page([c.fake.render.user_listed(n) for n in names])
    return 200, items, headers


def get_member(c: Call) -> Reply:
    project = c.project()
    user = c.fake.user_by_id(int(c.params["user_id"])) if c.params["user_id"].isdigit() else None
    if user is None or user.username not in project.members:
        raise GitLabRefused(404, "404 Not found")
    return 200, c.fake.render.member(project, user.username, project.members[user.username]), {}


def list_hooks(c: Call) -> Reply:
    """The project's hooks, to a Maintainer (the hook every project has with ``deliver_to`` too)."""
    project = c.project(ACCESS["maintainer"])
    with c.fake.lock:
        hooks = list(project.hooks)
        if c.fake.deliver_to and project.forked_from is None:
            hooks.append(replace(c.fake.default_hook, url=c.fake.deliver_to))
        items, headers = c.page([c.fake.render.hook(project, h, c.fake.clock()) for h in hooks])
    return 200, items, headers


def get_project(c: Call) -> Reply:
    project = c.project()
    return 200, c.fake.render.project(project, c.level(project) or None, c.fake.clock()), {}


# -- issues --------------------------------------------------------------------------------------------------


def _filtered(c: Call, items: list[Any]) -> list[Any]:
    if after := c.arg("updated_after"):
        since = parse_time(after)
        items = [i for i in items if i.updated_at >= since]  # "on or after"
    state = c.arg("state", "all")
    if state not in (None, "all"):
        items = [i for i in items if i.state == state]
    return items


def list_issues(c: Call) -> Reply:
    project = c.project()
    with c.fake.lock:
        issues = _sorted(c, _filtered(c, list(project.issues.values())))
        items, headers = c.page([c.fake.render.issue(project, i) for i in issues])
    return 200, items, headers


def get_issue(c: Call) -> Reply:
    project = c.project()
    return 200, c.fake.render.issue(project, c.fake.issue(project, c.iid("issue_iid"))), {}


# -- merge requests ------------------------------------------------------------------------------------------


def _mr_reads(c: Call) -> None:
    with c.fake.lock:
        c.fake.checking = max(0, c.fake.checking - 1)


def list_mrs(c: Call) -> Reply:
    project = c.project(ACCESS["reporter"])
    with c.fake.lock:
        mrs = [
            m
            for m in project.mrs.values()
            if c.arg("source_branch") in (None, m.source_branch)
            and c.arg("target_branch") in (None, m.target_branch)
        ]
        mrs = _sorted(c, _filtered(c, mrs))
        items, headers = c.page([c.fake.render.mr(project, m, expanded=False) for m in mrs])
    _mr_reads(c)
    return 200, items, headers


def get_mr(c: Call) -> Reply:
    project = c.project(ACCESS["reporter"])
    with c.fake.lock:
        mr = c.fake.mr(project, c.iid("merge_request_iid"))
        body = c.fake.render.mr(project, mr, expanded=True, viewer_level=c.level(project))
    _mr_reads(c)
    return 200, body, {}


def create_mr(c: Call) -> Reply:
    project = c.project(ACCESS["developer"])
    missing = [k for k in ("source_branch", "target_branch", "title") if not c.arg(k)]
    if missing:
        raise GitLabRefused(400, body={"error": f"{', '.join(missing)} is missing"})
    mr = c.fake.open_mr(
        project.path,
        c.arg("source_branch") or "",
        c.arg("title") or "",
        target_branch=c.arg("target_branch"),
        description=c.arg("description", "") or "",
        author=c.login,
        remove_source_branch=c.arg("remove_source_branch") == "true",
    )
    return 201, c.fake.render.mr(project, mr, expanded=True, viewer_level=c.level(project)), {}


def update_mr(c: Call) -> Reply:
    project = c.project(ACCESS["reporter"])
    mr = c.fake.mr(project, c.iid("merge_request_iid"))
    if c.level(project) < ACCESS["developer"] and mr.author != c.login:
        raise GitLabRefused(403, "403 Forbidden")
    state_event = c.arg("state_event")
    if state_event not in (None, "close", "reopen"):
        raise GitLabRefused(400, body={"error": "state_event does not have a valid value"})
    mr = c.fake.update_mr(
        project.path,
        mr.iid,
        by=c.login,
        title=c.arg("title"),
        description=c.arg("description"),
        state_event=state_event,
    )
    return 200, c.fake.render.mr(project, mr, expanded=True, viewer_level=c.level(project)), {}


def merge_mr(c: Call) -> Reply:
    project = c.project(ACCESS["reporter"])
    auto = c.arg("auto_merge") == "true" or c.arg("merge_when_pipeline_succeeds") == "true"
    mr = c.fake.merge_mr(
        project.path, c.iid("merge_request_iid"), by=c.login, sha=c.arg("sha"), auto_merge=auto
    )
    return 200, c.fake.render.mr(project, mr, expanded=True, viewer_level=c.level(project)), {}


def list_diffs(c: Call) -> Reply:
    project = c.project(ACCESS["reporter"])
    mr = c.fake.mr(project, c.iid("merge_request_iid"))
    items, headers = c.page(c.fake.diffs(project, mr))
    return 200, items, headers


def list_reviewers(c: Call) -> Reply:
    project = c.project(ACCESS["reporter"])
    with c.fake.lock:
        return 200, c.fake.render.reviewers(c.fake.mr(project, c.iid("merge_request_iid"))), {}


def get_approvals(c: Call) -> Reply:
    project = c.project(ACCESS["reporter"])
    return 200, c.fake.render.approvals(project, c.fake.mr(project, c.iid("merge_request_iid"))), {}


# -- notes and discussions -----------------------------------------------------------------------------------


def _noteable(c: Call) -> tuple[Project, Issue | MergeRequest, bool]:
    is_mr = "merge_request_iid" in c.params
    project = c.project(ACCESS["reporter"] if is_mr else ACCESS["guest"])
    target: Issue | MergeRequest = (
        c.fake.mr(project, c.iid("merge_request_iid")) if is_mr else c.fake.issue(project, c.iid("issue_iid"))
    )
    return project, target, is_mr


def list_notes(c: Call) -> Reply:
    project, target, _ = _noteable(c)
    with c.fake.lock:
        notes = [project.notes[n] for d in target.discussions for n in project.discussions[d].notes]
        notes = _sorted(c, notes)
        items, headers = c.page([c.fake.render.note(project, n) for n in notes])
    return 200, items, headers


def create_note(c: Call) -> Reply:
    project, target, is_mr = _noteable(c)
    body = c.arg("body")
    if not body:
        raise GitLabRefused(400, body={"error": "body is missing"})
    note = c.fake.comment(project.path, target.iid, body, author=c.login, mr=is_mr)
    return 201, c.fake.render.note(project, note), {}


def edit_note(c: Call) -> Reply:
    project, target, _ = _noteable(c)
    note_id = int(c.params["note_id"]) if c.params["note_id"].isdigit() else 0
    note = project.notes.get(note_id)
    if note is None or note.noteable_id != target.id:
        raise GitLabRefused(404, "404 Note Not Found")
    note = c.fake.edit_note(project.path, note_id, c.arg("body") or note.body, by=c.login)
    return 200, c.fake.render.note(project, note), {}


def list_discussions(c: Call) -> Reply:
    project, target, _ = _noteable(c)
    with c.fake.lock:
        items, headers = c.page(
            [c.fake.render.discussion(project, project.discussions[d]) for d in target.discussions]
        )
    return 200, items, headers


def reply_discussion(c: Call) -> Reply:
    project, target, is_mr = _noteable(c)
    body = c.arg("body")
    if not body:
        raise GitLabRefused(400, body={"error": "body is missing"})
    note = c.fake.reply(project.path, target.iid, c.params["discussion_id"], body, author=c.login, mr=is_mr)
    return 201, c.fake.render.note(project, note), {}


def resolve_discussion(c: Call) -> Reply:
    project, target, _ = _noteable(c)
    assert isinstance(target, MergeRequest)
    if c.level(project) < ACCESS["developer"] and target.author != c.login:
        raise GitLabRefused(403, "403 Forbidden")
    resolved = c.arg("resolved")
    if resolved not in ("true", "false"):
        raise GitLabRefused(400, body={"error": "resolved is missing"})
    discussion = c.fake.resolve(
        project.path, target.iid, c.params["discussion_id"], resolved == "true", by=c.login
    )
    return 200, c.fake.render.discussion(project, discussion), {}


# -- pipelines and jobs --------------------------------------------------------------------------------------


def list_pipelines(c: Call) -> Reply:
    project = c.project(ACCESS["reporter"])
    with c.fake.lock:
        found = [
            p
            for p in project.pipelines.values()
            if c.arg("sha") in (None, p.sha) and c.arg("ref") in (None, p.ref)
        ]
        found = _sorted(c, found, "id")
        items, headers = c.page([c.fake.render.pipeline(project, p) for p in found])
    return 200, items, headers


def list_jobs(c: Call) -> Reply:
    project = c.project(ACCESS["reporter"])
    pipeline = project.pipelines.get(int(c.params["pipeline_id"]) if c.params["pipeline_id"].isdigit() else 0)
    if pipeline is None:
        raise GitLabRefused(404, "404 Pipeline Not Found")
    scopes = set(c.query.get("scope[]", []) + c.query.get("scope", []))
    with c.fake.lock:
        jobs = [project.jobs[j] for j in pipeline.jobs if not scopes or project.jobs[j].status in scopes]
        items, headers = c.page([c.fake.render.job(project, j) for j in sorted(jobs, key=lambda j: -j.id)])
    return 200, items, headers


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/user", get_user),
    ("GET", "/personal_access_tokens/self", get_token_self),
    ("GET", "/users", list_users),
    ("GET", "/projects/:id", get_project),
    ("GET", "/projects/:id/members/all/:user_id", get_member),
    ("GET", "/projects/:id/hooks", list_hooks),
    ("GET", "/projects/:id/issues", list_issues),
    ("GET", "/projects/:id/issues/:issue_iid", get_issue),
    ("GET", "/projects/:id/issues/:issue_iid/notes", list_notes),
    ("POST", "/projects/:id/issues/:issue_iid/notes", create_note),
    ("PUT", "/projects/:id/issues/:issue_iid/notes/:note_id", edit_note),
    ("GET", "/projects/:id/merge_requests", list_mrs),
    ("POST", "/projects/:id/merge_requests", create_mr),
    ("GET", "/projects/:id/merge_requests/:merge_request_iid", get_mr),
    ("PUT", "/projects/:id/merge_requests/:merge_request_iid", update_mr),
    ("GET", "/projects/:id/merge_requests/:merge_request_iid/notes", list_notes),
    ("POST", "/projects/:id/merge_requests/:merge_request_iid/notes", create_note),
    ("PUT", "/projects/:id/merge_requests/:merge_request_iid/notes/:note_id", edit_note),
    ("GET", "/projects/:id/merge_requests/:merge_request_iid/discussions", list_discussions),
    (
        "POST",
        "/projects/:id/merge_requests/:merge_request_iid/discussions/:discussion_id/notes",
        reply_discussion,
    ),
    ("PUT", "/projects/:id/merge_requests/:merge_request_iid/discussions/:discussion_id", resolve_discussion),
    ("GET", "/projects/:id/merge_requests/:merge_request_iid/diffs", list_diffs),
    ("GET", "/projects/:id/merge_requests/:merge_request_iid/reviewers", list_reviewers),
    ("GET", "/projects/:id/merge_requests/:merge_request_iid/approvals", get_approvals),
    ("PUT", "/projects/:id/merge_requests/:merge_request_iid/merge", merge_mr),
    ("GET", "/projects/:id/pipelines", list_pipelines),
    ("GET", "/projects/:id/pipelines/:pipeline_id/jobs", list_jobs),
]
TRACE = "/projects/:id/jobs/:job_id/trace"  # text/plain: the API handler serves it itself
_COMPILED = [
    (method, template, re.compile("^" + re.sub(r":(\w+)", r"(?P<\1>[^/]+)", template) + "$"), handler)
    for method, template, handler in ROUTES
]
TRACE_PATTERN = re.compile(r"^/projects/(?P<id>[^/]+)/jobs/(?P<job_id>\d+)/trace$")


def route(method: str, path: str) -> tuple[str, dict[str, str], Handler] | None:
    """The route's template (GitLab's documentation's: ``/projects/:id/issues/:issue_iid``), its path
    parameters (``id`` still URL-encoded: ``acme%2Fapi``) and its handler; None when nothing matches."""
    for m, template, pattern, handler in _COMPILED:
        if m == method and (match := pattern.match(path)):
            return template, match.groupdict(), handler
    return None


def allowed(method: str, path: str) -> bool:
    """Whether any route takes ``path`` (with another method: 405 rather than 404)."""
    return any(pattern.match(path) for _, _, pattern, _ in _COMPILED)
