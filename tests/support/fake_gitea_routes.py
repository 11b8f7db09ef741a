"""The fake Gitea's REST routes (:mod:`tests.support.fake_gitea` serves them): each takes a :class:`Call`
and answers ``(status, body, headers)`` from the shared state in Gitea's shapes, or raises
:class:`~baton.testing.fake_forge_core.ForgeRefused` with Gitea's words.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from baton.testing.fake_forge_core import ForgeRefused
from baton.testing.fake_forge_merge import ForgeMerge
from baton.testing.fake_forge_state import ROLES, CheckRun, Issue, parse_iso
from tests.support.fake_gitea_render import MODES, GiteaRender, wip

LIMIT = 50  # Gitea's MAX_RESPONSE_ITEMS

Reply = tuple[int, Any, dict[str, str]]  # status, JSON body (None: none), extra headers


class Call:
    """One API request, as a route sees it: the state (``fake``), Gitea's shapes of it (``gitea``) and who
    posted each commit status (``creator``)."""

    def __init__(
        self,
        fake: ForgeMerge,
        gitea: GiteaRender,
        creator: Callable[[int], str],
        login: str,
        params: dict[str, str],
        query: dict[str, list[str]],
        body: Any,
        url: str,
    ) -> None:
        self.fake, self.gitea, self.creator = fake, gitea, creator
        self.login, self.params, self.query, self.body, self.url = login, params, query, body, url

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    @property
    def repo_name(self) -> str:
        return f"{self.params['owner']}/{self.params['repo']}"

    def role(self) -> str:
        return self.fake.repo(self.repo_name).permissions.get(self.login, "none")

    def require(self, role: str) -> None:
        if ROLES.index(self.role()) < ROLES.index(role):
            raise ForgeRefused(403, "user does not have the permission to do this")


def _page(c: Call, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
    """Gitea's paging: ``page`` from 1, ``limit`` cut to 50; ``X-Total-Count`` and a ``Link``."""
    limit = min(LIMIT, max(1, int(c.arg("limit", str(LIMIT)) or LIMIT)))
    page = max(1, int(c.arg("page", "1") or 1))
    last = max(1, -(-len(items) // limit))
    headers = {"X-Total-Count": str(len(items))}
    if page < last:
        query = "&".join(
            f"{quote(k)}={quote(v[-1])}" for k, v in c.query.items() if k not in ("page", "limit")
        )
        base = f"{c.url}?{query + '&' if query else ''}limit={limit}"
        headers["Link"] = f'<{base}&page={page + 1}>; rel="next",<{base}&page={last}>; rel="last"'
    return items[(page - 1) * limit : page * limit], headers


def get_repo(c: Call) -> Reply:
    return 200, c.gitea.repository(c.fake.repo(c.repo_name)), {}


def get_permission(c: Call) -> Reply:
    repo = c.fake.repo(c.repo_name)
    who = c.params["collaborator"]
    if c.role() != "admin" and c.login != who:
        raise ForgeRefused(
            403, "Only admins can query all permissions, repo admins can query all repo permissions"
        )
    if who not in c.fake.users:
        raise ForgeRefused(404, "user does not exist")
    role = repo.permissions.get(who, "none")
    mode = "owner" if who == repo.owner else MODES.get(role, "read")  # a public repository: read for anyone
    return 200, {"permission": mode, "role_name": mode, "user": c.gitea.user(who)}, {}


def list_issues(c: Call) -> Reply:
    repo = c.fake.repo(c.repo_name)
    state, since, kind = c.arg("state", "open"), c.arg("since"), c.arg("type")
    labels = set(filter(None, (c.arg("labels") or "").split(",")))
    with c.fake.lock:
        issues = [
            i
            for i in repo.issues.values()
            if state in ("all", i.state)
            and (since is None or i.updated_at >= int(parse_iso(since)))
            and (not labels or labels & set(i.labels))
            and kind in (None, "pulls" if i.pr else "issues")
        ]
        issues.sort(key=lambda i: i.number, reverse=True)
        page, headers = _page(c, issues)
        return 200, [c.gitea.issue(repo, i) for i in page], headers


def get_issue(c: Call) -> Reply:
    return (
        200,
        c.gitea.issue(c.fake.repo(c.repo_name), c.fake.issue(c.repo_name, int(c.params["index"]))),
        {},
    )


def _pull(c: Call, number: int) -> Any:
    repo, issue = c.fake.repo(c.repo_name), c.fake.issue(c.repo_name, number)
    if issue.pr is None:
        raise ForgeRefused(404, "pull request does not exist")
    count = sum(len(r.comments) for r in c.fake.reviews(c.repo_name, number))
    return c.gitea.pull(repo, issue, count)


def get_pull(c: Call) -> Reply:
    return 200, _pull(c, int(c.params["index"])), {}


def list_pulls(c: Call) -> Reply:
    state = c.arg("state", "open")
    with c.fake.lock:
        prs: list[Issue] = [p for p in c.fake.pulls(c.repo_name) if state in ("all", p.state)]
        newest = c.arg("sort") in ("recentupdate", None)
        prs.sort(key=lambda p: (p.updated_at, p.number), reverse=newest)
        page, headers = _page(c, prs)
        return 200, [_pull(c, p.number) for p in page], headers


def create_pull(c: Call) -> Reply:
    c.require("write")
    body = c.body
    title = body.get("title") or ""
    try:
        number = c.fake.open_pr(
            c.repo_name, c.login, body["head"], body["base"], title, body.get("body") or "", wip(title)
        )
    except ForgeRefused as exc:
        if "already exists" in exc.message:
            targets = f"[head_branch: {body['head']}, base_branch: {body['base']}]"
            raise ForgeRefused(409, f"pull request already exists for these targets {targets}") from None
        raise
    return 201, _pull(c, number), {}


def edit_pull(c: Call) -> Reply:
    """Its title edited (the only field baton edits: a work-in-progress prefix dropped marks it ready)."""
    c.require("write")
    number = int(c.params["index"])
    title = c.body.get("title")
    if isinstance(title, str):
        c.fake.retitle(c.repo_name, number, title, wip(title))
    return 201, _pull(c, number), {}


def merge_pull(c: Call) -> Reply:
    """Gitea's merge: refused for a work in progress (405); with ``merge_when_checks_succeed``, scheduled
    while the head's statuses have not all succeeded (kept as the PR's ``auto_merge``), else merged now."""
    c.require("write")
    number, body = int(c.params["index"]), c.body or {}
    issue = c.fake.open_pull(c.repo_name, number)
    if wip(issue.title):
        raise ForgeRefused(405, "The pull request is a work in progress and cannot be merged")
    repo = c.fake.repo(c.repo_name)
    head = repo.pr_head(issue)
    if body.get("head_commit_id") and body["head_commit_id"] != head:
        raise ForgeRefused(409, "head out of date")
    latest = {s.context: s.state for s in repo.statuses if s.sha == head}
    if body.get("merge_when_checks_succeed") and not (latest and set(latest.values()) == {"success"}):
        c.fake.enable_auto_merge(
            c.repo_name, number, c.login, str(body.get("do") or "merge"), clean_refused=False
        )
        return 200, None, {}
    c.fake.merge(c.repo_name, number, c.login, head)
    return 200, None, {}


def list_branch_protections(c: Call) -> Reply:
    """The repository's protection rules, to an admin (as Gitea): the default branch's required checks."""
    c.require("admin")
    repo = c.fake.repo(c.repo_name)
    if not repo.required_checks:
        return 200, [], {}
    at = "2024-01-01T00:00:00Z"
    rule = {
        "branch_name": repo.default_branch,
        "rule_name": repo.default_branch,
        "enable_status_check": True,
        "status_check_contexts": list(repo.required_checks),
        "enable_push": False,
        "required_approvals": 0,
        "created_at": at,
        "updated_at": at,
    }
    return 200, [rule], {}


def list_comments(c: Call) -> Reply:
    repo_name, number = c.repo_name, int(c.params["index"])
    issue, since = c.fake.issue(repo_name, number), c.arg("since")
    with c.fake.lock:
        comments = [
            x
            for x in c.fake.comments(repo_name, number)
            if since is None or x.updated_at >= int(parse_iso(since))
        ]
        repo = c.fake.repo(repo_name)
        body = [c.gitea.comment(repo, x, issue.pr is not None) for x in comments]
        return 200, body, {"X-Total-Count": str(len(body))}


def create_comment(c: Call) -> Reply:
    number = int(c.params["index"])
    issue = c.fake.issue(c.repo_name, number)
    comment_id = c.fake.comment(c.repo_name, number, c.login, c.body["body"])
    comment = next(x for x in c.fake.comments(c.repo_name, number) if x.id == comment_id)
    return 201, c.gitea.comment(c.fake.repo(c.repo_name), comment, issue.pr is not None), {}


def edit_comment(c: Call) -> Reply:
    comment_id = int(c.params["id"])
    found = [x for x in c.fake.comments(c.repo_name) if x.id == comment_id]
    if not found:
        raise ForgeRefused(404, "comment does not exist")
    if found[0].author != c.login:
        c.require("write")
    comment = c.fake.edit_comment(comment_id, c.body["body"])
    issue = c.fake.issue(c.repo_name, comment.number)
    return 200, c.gitea.comment(c.fake.repo(c.repo_name), comment, issue.pr is not None), {}


def list_reviews(c: Call) -> Reply:
    repo = c.fake.repo(c.repo_name)
    page, headers = _page(c, c.fake.reviews(c.repo_name, int(c.params["index"])))
    return 200, [c.gitea.review(repo, r) for r in page], headers


def list_review_comments(c: Call) -> Reply:
    number, review_id = int(c.params["index"]), int(c.params["id"])
    review = next((r for r in c.fake.reviews(c.repo_name, number) if r.id == review_id), None)
    if review is None:
        raise ForgeRefused(404, "review does not exist")
    repo = c.fake.repo(c.repo_name)
    return 200, [c.gitea.review_comment(repo, number, x) for x in review.comments], {}


def create_review_reply(c: Call) -> Reply:
    """A reply in an inline comment's thread (Gitea 1.27 and later; ``without_inline_threads``: 404)."""
    if c.fake.without_inline_threads:
        raise ForgeRefused(404, "Not Found")
    number, comment_id = int(c.params["index"]), int(c.params["id"])
    c.require("read")
    reply_id = c.fake.reply_to_review_comment(
        c.repo_name, number, comment_id, c.login, c.body.get("body") or ""
    )
    found = c.fake.find_review_comment(c.repo_name, reply_id)
    assert found is not None
    return 201, c.gitea.review_comment(c.fake.repo(c.repo_name), number, found[1]), {}


def resolve_review_comment(c: Call) -> Reply:
    """Resolve an inline comment's conversation (Gitea 1.27 and later; write access)."""
    found = c.fake.find_review_comment(c.repo_name, int(c.params["id"]))
    if c.fake.without_inline_threads or found is None:
        raise ForgeRefused(404, "Not Found")
    c.fake.resolve_thread(c.repo_name, found[0], found[1].in_reply_to or found[1].id, c.login)
    return 204, None, {}


def _sha(c: Call) -> str:
    ref = c.params["ref"]
    return c.fake.repo(c.repo_name).head(ref) or ref


def combined_status(c: Call) -> Reply:
    sha, repo = _sha(c), c.fake.repo(c.repo_name)
    with c.fake.lock:
        latest = {s.context: s for s in repo.statuses if s.sha == sha}
        statuses = sorted(latest.values(), key=lambda s: s.id, reverse=True)
        states = {s.state for s in statuses}
        worst = next(
            (s for s in ("error", "failure", "pending", "warning", "success") if s in states), "pending"
        )
        page, headers = _page(c, statuses)
        body = {
            "state": worst if statuses else "pending",
            "sha": sha,
            "total_count": len(statuses),
            "statuses": [c.gitea.status(repo, s, c.creator(s.id)) for s in page],
            "repository": c.gitea.repository(repo),
            "commit_url": f"{c.fake.api_url}/repos/{repo.full_name}/commits/{sha}",
            "url": f"{c.fake.api_url}/repos/{repo.full_name}/commits/{sha}/status",
        }
        return 200, body, headers


def _runs(c: Call) -> list[CheckRun]:
    return list(c.fake.repo(c.repo_name).check_runs)


def list_runs(c: Call) -> Reply:
    repo, head = c.fake.repo(c.repo_name), c.arg("head_sha")
    with c.fake.lock:
        runs = sorted(
            (r for r in _runs(c) if head in (None, r.head_sha)), key=lambda r: r.suite_id, reverse=True
        )
        page, headers = _page(c, runs)
        body = {"total_count": len(runs), "workflow_runs": [c.gitea.workflow_run(repo, r) for r in page]}
        return 200, body, headers


def list_run_jobs(c: Call) -> Reply:
    repo = c.fake.repo(c.repo_name)
    with c.fake.lock:
        jobs = [r for r in _runs(c) if r.suite_id == int(c.params["run"])]
        if not jobs:
            raise ForgeRefused(404, "run does not exist")
        page, headers = _page(c, jobs)
        return 200, {"total_count": len(jobs), "jobs": [c.gitea.job(repo, r) for r in page]}, headers


ROUTES: list[tuple[str, str, Callable[[Call], Reply]]] = [
    ("GET", "/repos/{owner}/{repo}", get_repo),
    ("GET", "/repos/{owner}/{repo}/collaborators/{collaborator}/permission", get_permission),
    ("GET", "/repos/{owner}/{repo}/issues", list_issues),
    ("GET", "/repos/{owner}/{repo}/issues/{index}", get_issue),
    ("GET", "/repos/{owner}/{repo}/pulls", list_pulls),
    ("POST", "/repos/{owner}/{repo}/pulls", create_pull),
    ("GET", "/repos/{owner}/{repo}/pulls/{index}", get_pull),
    ("PATCH", "/repos/{owner}/{repo}/pulls/{index}", edit_pull),
    ("POST", "/repos/{owner}/{repo}/pulls/{index}/merge", merge_pull),
    ("GET", "/repos/{owner}/{repo}/branch_protections", list_branch_protections),
    ("GET", "/repos/{owner}/{repo}/issues/{index}/comments", list_comments),
    ("POST", "/repos/{owner}/{repo}/issues/{index}/comments", create_comment),
    ("PATCH", "/repos/{owner}/{repo}/issues/comments/{id}", edit_comment),
    ("GET", "/repos/{owner}/{repo}/pulls/{index}/reviews", list_reviews),
    ("GET", "/repos/{owner}/{repo}/pulls/{index}/reviews/{id}/comments", list_review_comments),
    ("POST", "/repos/{owner}/{repo}/pulls/{index}/comments/{id}/replies", create_review_reply),
    ("POST", "/repos/{owner}/{repo}/pulls/comments/{id}/resolve", resolve_review_comment),
    ("GET", "/repos/{owner}/{repo}/commits/{ref}/status", combined_status),
    ("GET", "/repos/{owner}/{repo}/actions/runs", list_runs),
    ("GET", "/repos/{owner}/{repo}/actions/runs/{run}/jobs", list_run_jobs),
]


_COMPILED = [
    (method, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"), handler)
    for method, template, handler in ROUTES
]


def route(method: str, path: str) -> tuple[Callable[[Call], Reply], dict[str, str]] | None:
    for m, pattern, handler in _COMPILED:
        if m == method and (match := pattern.match(path)):
            return handler, match.groupdict()
    return None
