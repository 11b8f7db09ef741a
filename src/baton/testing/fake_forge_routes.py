"""The fake forge's REST routes: one handler per GitHub operation baton (or a person trying the offline
tour with ``curl``) calls, each taking a :class:`Call` and returning ``(status, JSON body, headers)``.
Paths, parameters and shapes are GitHub's (the server checks them against the description); refusals
raise :class:`~baton.testing.fake_forge_core.ForgeRefused` with GitHub's words. Reads: the repository,
its webhooks, a permission, issues, pull requests, comments, reviews, check runs and annotations, a
job's logs (302 to a download URL), the combined status, a pull request's inline comments. Writes: a
pull request (422 as GitHub), a comment and its edit, a reply in an inline comment's thread; and, to
drive the fake from outside its process, an issue, labels, assignees, a review, a commit status, a
check run, and a merge (the PR closed merged, ``pull_request.closed`` sent).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlencode

from baton.testing.fake_forge_core import ForgeRefused
from baton.testing.fake_forge_state import ROLES, parse_iso
from baton.testing.fake_forge_threads import ForgeThreads

Reply = tuple[int, Any, dict[str, str]]  # status, JSON body (None: none), extra headers
Handler = Callable[["Call"], Reply]


class Call:
    """One API request, as a route handler sees it."""

    def __init__(
        self,
        fake: ForgeThreads,
        login: str,
        params: dict[str, str],
        query: dict[str, list[str]],
        body: Any,
        url: str,
    ) -> None:
        self.fake, self.login, self.params, self.query, self.body, self.url = (
            fake,
            login,
            params,
            query,
            body,
            url,
        )

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
            raise ForgeRefused(403, "Resource not accessible by personal access token")

    def page(self, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        """One page of ``items`` (``per_page`` ≤ 100, default 30) and its ``Link`` header."""
        per_page = min(100, max(1, int(self.arg("per_page", "30") or 30)))
        page = max(1, int(self.arg("page", "1") or 1))
        last = max(1, -(-len(items) // per_page))
        links = []

        def link(n: int, rel: str) -> str:
            query = {k: v[-1] for k, v in self.query.items()}
            query.update(per_page=str(per_page), page=str(n))
            return f'<{self.url}?{urlencode(query)}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        return items[(page - 1) * per_page : page * per_page], {"Link": ", ".join(links)} if links else {}


# -- route handlers ---------------------------------------------------------------------------------------


def get_repo(c: Call) -> Reply:
    return 200, c.fake.render.repository(c.fake.repo(c.repo_name)), {}


def get_permission(c: Call) -> Reply:
    repo = c.fake.repo(c.repo_name)
    if c.params["username"] not in c.fake.users:
        raise ForgeRefused(404, f"{c.params['username']} is not a user")
    return 200, c.fake.render.permission(repo, c.params["username"]), {}


def list_issues(c: Call) -> Reply:
    repo = c.fake.repo(c.repo_name)
    state, since = c.arg("state", "open"), c.arg("since")
    labels = set(filter(None, (c.arg("labels") or "").split(",")))
    with c.fake.lock:
        issues = [
            i
            for i in repo.issues.values()
            if state in ("all", i.state)
            and (since is None or i.updated_at >= int(parse_iso(since)))
            and labels <= set(i.labels)
        ]
        key = "updated_at" if c.arg("sort") == "updated" else "created_at"
        issues.sort(key=lambda i: (getattr(i, key), i.number), reverse=c.arg("direction", "desc") == "desc")
        page, headers = c.page(issues)
        return 200, [c.fake.render.issue(repo, i) for i in page], headers


def get_issue(c: Call) -> Reply:
    repo = c.fake.repo(c.repo_name)
    return 200, c.fake.render.issue(repo, c.fake.issue(c.repo_name, int(c.params["issue_number"]))), {}


def _pull(c: Call, number: int) -> Any:
    repo, issue = c.fake.repo(c.repo_name), c.fake.issue(c.repo_name, number)
    if issue.pr is None:
        raise ForgeRefused(404, "Not Found")
    count = sum(len(r.comments) for r in c.fake.reviews(c.repo_name, number))
    return c.fake.render.pull(repo, issue, count)


def get_pull(c: Call) -> Reply:
    return 200, _pull(c, int(c.params["pull_number"])), {}


def list_pulls(c: Call) -> Reply:
    state, head, base = c.arg("state", "open"), c.arg("head"), c.arg("base")
    with c.fake.lock:
        prs = [
            p
            for p in c.fake.pulls(c.repo_name)
            if p.pr
            and state in ("all", p.state)
            and head in (None, f"{(p.pr.head_repo or c.repo_name).partition('/')[0]}:{p.pr.head_ref}")
            and base in (None, p.pr.base_ref)
        ]
        prs.sort(key=lambda p: p.number, reverse=True)
        page, headers = c.page(prs)
        repo = c.fake.repo(c.repo_name)
        return 200, [c.fake.render.pull(repo, p) for p in page], headers


def create_pull(c: Call) -> Reply:
    c.require("write")
    body = c.body
    number = c.fake.open_pr(
        c.repo_name,
        c.login,
        body["head"],
        body["base"],
        body.get("title") or "",
        body.get("body") or "",
        bool(body.get("draft")),
    )
    return 201, _pull(c, number), {}


def list_comments(c: Call) -> Reply:
    repo_name, number = c.repo_name, int(c.params["issue_number"])
    issue, since = c.fake.issue(repo_name, number), c.arg("since")
    with c.fake.lock:
        comments = [
            x
            for x in c.fake.comments(repo_name, number)
            if since is None or x.updated_at >= int(parse_iso(since))
        ]
        page, headers = c.page(comments)
        repo = c.fake.repo(repo_name)
        return 200, [c.fake.render.comment(repo, x, issue.pr is not None) for x in page], headers


def create_comment(c: Call) -> Reply:
    number = int(c.params["issue_number"])
    issue = c.fake.issue(c.repo_name, number)
    comment_id = c.fake.comment(c.repo_name, number, c.login, c.body["body"])
    comment = c.fake.comments(c.repo_name, number)[-1]
    assert comment.id == comment_id
    repo = c.fake.repo(c.repo_name)
    location = f"{c.fake.api_url}/repos/{c.repo_name}/issues/comments/{comment_id}"
    return 201, c.fake.render.comment(repo, comment, issue.pr is not None), {"Location": location}


def update_comment(c: Call) -> Reply:
    comment_id = int(c.params["comment_id"])
    found = [x for x in c.fake.comments(c.repo_name) if x.id == comment_id]
    if not found:
        raise ForgeRefused(404, "Not Found")
    if found[0].author != c.login:
        c.require("write")
    comment = c.fake.edit_comment(comment_id, c.body["body"])
    issue = c.fake.issue(c.repo_name, comment.number)
    return 200, c.fake.render.comment(c.fake.repo(c.repo_name), comment, issue.pr is not None), {}


def list_reviews(c: Call) -> Reply:
    reviews = c.fake.reviews(c.repo_name, int(c.params["pull_number"]))
    page, headers = c.page(reviews)
    repo = c.fake.repo(c.repo_name)
    return 200, [c.fake.render.review(repo, r) for r in page], headers


def list_review_comments(c: Call) -> Reply:
    number, review_id = int(c.params["pull_number"]), int(c.params["review_id"])
    review = next((r for r in c.fake.reviews(c.repo_name, number) if r.id == review_id), None)
    if review is None:
        raise ForgeRefused(404, "Not Found")
    page, headers = c.page(review.comments)
    repo = c.fake.repo(c.repo_name)
    return 200, [c.fake.render.review_comment(repo, number, x) for x in page], headers


def _sha(c: Call) -> str:
    ref = c.params["ref"]
    return c.fake.repo(c.repo_name).head(ref.removeprefix("heads/")) or ref


def list_check_runs(c: Call) -> Reply:
    sha, name, status = _sha(c), c.arg("check_name"), c.arg("status")
    repo = c.fake.repo(c.repo_name)
    if repo.check_runs_refused:
        raise ForgeRefused(403, "Resource not accessible by personal access token")
    with c.fake.lock:
        runs = [r for r in repo.check_runs if r.head_sha == sha]
        if c.arg("filter", "latest") == "latest":
            latest = {r.name: r for r in runs}  # later runs of a name replace earlier ones
            runs = list(latest.values())
        runs = [r for r in runs if name in (None, r.name) and status in (None, r.status)]
        runs.sort(key=lambda r: r.id, reverse=True)
        page, headers = c.page(runs)
        body = {"total_count": len(runs), "check_runs": [c.fake.render.check_run(repo, r) for r in page]}
        return 200, body, headers


def list_annotations(c: Call) -> Reply:
    repo, run = c.fake.repo(c.repo_name), c.fake.check_run(c.repo_name, int(c.params["check_run_id"]))
    page, headers = c.page(run.annotations)
    return 200, [c.fake.render.annotation(repo, run, a) for a in page], headers


def job_logs(c: Call) -> Reply:
    run = c.fake.check_run(c.repo_name, int(c.params["job_id"]))
    url = f"{c.fake.web_url}/_fake/logs/{c.repo_name}/{run.id}?key={c.fake.log_key}"
    return 302, None, {"Location": url}


def combined_status(c: Call) -> Reply:
    sha, repo = _sha(c), c.fake.repo(c.repo_name)
    with c.fake.lock:
        latest = {s.context: s for s in repo.statuses if s.sha == sha}
        statuses = sorted(latest.values(), key=lambda s: s.id, reverse=True)
        return 200, c.fake.render.combined_status(repo, sha, statuses), {}


def create_issue(c: Call) -> Reply:
    body = c.body
    number = c.fake.open_issue(
        c.repo_name,
        c.login,
        str(body["title"]),
        body.get("body") or "",
        body.get("labels") or (),
        body.get("assignees") or ([body["assignee"]] if body.get("assignee") else []),
    )
    repo = c.fake.repo(c.repo_name)
    return 201, c.fake.render.issue(repo, c.fake.issue(c.repo_name, number)), {}


def add_labels(c: Call) -> Reply:
    c.require("triage")
    number = int(c.params["issue_number"])
    names = c.body if isinstance(c.body, list) else c.body.get("labels", [])
    for name in names:
        c.fake.label(c.repo_name, number, c.login, name if isinstance(name, str) else name["name"])
    repo = c.fake.repo(c.repo_name)
    return 200, [c.fake.render.label(repo, n) for n in c.fake.issue(c.repo_name, number).labels], {}


def add_assignees(c: Call) -> Reply:
    number = int(c.params["issue_number"])
    for login in c.body.get("assignees") or []:
        c.fake.assign(c.repo_name, number, c.login, login)
    repo = c.fake.repo(c.repo_name)
    return 201, c.fake.render.issue(repo, c.fake.issue(c.repo_name, number)), {}


def list_pull_review_comments(c: Call) -> Reply:
    """A pull request's inline comments, replies included (``since``: updated at or after)."""
    number, since = int(c.params["pull_number"]), c.arg("since")
    repo = c.fake.repo(c.repo_name)
    found = [
        x for x in c.fake.review_comments(c.repo_name, number)
        if since is None or x.created_at >= int(parse_iso(since))
    ]  # fmt: skip
    page, headers = c.page(found)
    return 200, [c.fake.render.pull_review_comment(repo, number, x) for x in page], headers


def create_review_reply(c: Call) -> Reply:
    number, comment_id = int(c.params["pull_number"]), int(c.params["comment_id"])
    reply_id = c.fake.reply_to_review_comment(c.repo_name, number, comment_id, c.login, c.body["body"])
    reply = next(x for x in c.fake.review_comments(c.repo_name, number) if x.id == reply_id)
    return 201, c.fake.render.pull_review_comment(c.fake.repo(c.repo_name), number, reply), {}


def create_review(c: Call) -> Reply:
    number = int(c.params["pull_number"])
    states = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}
    inline = [
        (x["path"], int(x.get("line") or x.get("position") or 1), x["body"])
        for x in c.body.get("comments") or []
    ]
    review_id = c.fake.review(
        c.repo_name,
        number,
        c.login,
        c.body.get("body") or "",
        inline,
        states[c.body.get("event") or "COMMENT"],
    )
    review = next(r for r in c.fake.reviews(c.repo_name, number) if r.id == review_id)
    return 200, c.fake.render.review(c.fake.repo(c.repo_name), review), {}


def merge_pull(c: Call) -> Reply:
    c.require("write")
    body = c.body or {}
    sha = c.fake.merge(
        c.repo_name, int(c.params["pull_number"]), c.login, body.get("sha"), body.get("commit_title") or ""
    )
    return 200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}, {}


def get_branch(c: Call) -> Reply:
    repo = c.fake.repo(c.repo_name)
    sha = repo.head(c.params["branch"])
    if sha is None:
        raise ForgeRefused(404, "Branch not found")
    return 200, c.fake.render.branch(repo, c.params["branch"], sha), {}


def branch_rules(c: Call) -> Reply:
    """The rulesets' rules on a branch: the fake keeps its required checks in branch protection."""
    c.fake.repo(c.repo_name)
    return 200, [], {}


def list_hooks(c: Call) -> Reply:
    """The repository's webhooks, to an admin only (as GitHub): the one to ``deliver_to``, if any."""
    c.require("admin")
    base = f"{c.fake.api_url}/repos/{c.repo_name}/hooks/1"
    hook = {
        "type": "Repository",
        "id": 1,
        "name": "web",
        "active": True,
        "events": list(c.fake.hook_events),
        "config": {"url": c.fake.deliver_to, "content_type": "json", "insecure_ssl": "0"},
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "url": base,
        "test_url": f"{base}/test",
        "ping_url": f"{base}/pings",
        "deliveries_url": f"{base}/deliveries",
        "last_response": {"code": None, "status": "unused", "message": None},
    }
    page, headers = c.page([hook] if c.fake.deliver_to else [])
    return 200, page, headers


def create_status(c: Call) -> Reply:
    body = c.body
    status_id = c.fake.set_status(
        c.repo_name,
        c.params["sha"],
        body.get("context") or "default",
        body["state"],
        body.get("description"),
        body.get("target_url"),
        sender=c.login,
    )
    repo = c.fake.repo(c.repo_name)
    status = next(s for s in repo.statuses if s.id == status_id)
    obj = c.fake.render.template("status", repo.full_name)
    c.fake.render.user_fields(obj["creator"], c.login)
    return 201, c.fake.render.status_fields(obj, repo, status), {}


def create_check_run(c: Call) -> Reply:
    body = c.body
    output = body.get("output") or {}
    run_id = c.fake.add_check_run(
        c.repo_name,
        body["head_sha"],
        body["name"],
        body.get("conclusion"),
        status=body.get("status") or ("completed" if body.get("conclusion") else "queued"),
        log=body.get("log", ""),
        title=output.get("title"),
        summary=output.get("summary"),
        annotations=[
            (a["path"], int(a["start_line"]), a["message"]) for a in output.get("annotations") or []
        ],
        sender=c.login,
    )
    repo = c.fake.repo(c.repo_name)
    return 201, c.fake.render.check_run(repo, c.fake.check_run(c.repo_name, run_id)), {}


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/repos/{owner}/{repo}", get_repo),
    ("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission", get_permission),
    ("GET", "/repos/{owner}/{repo}/issues", list_issues),
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}", get_issue),
    ("GET", "/repos/{owner}/{repo}/pulls", list_pulls),
    ("POST", "/repos/{owner}/{repo}/pulls", create_pull),
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}", get_pull),
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments", list_comments),
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments", create_comment),
    ("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}", update_comment),
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews", list_reviews),
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}/comments", list_review_comments),
    ("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs", list_check_runs),
    ("GET", "/repos/{owner}/{repo}/check-runs/{check_run_id}/annotations", list_annotations),
    ("GET", "/repos/{owner}/{repo}/actions/jobs/{job_id}/logs", job_logs),
    ("GET", "/repos/{owner}/{repo}/commits/{ref}/status", combined_status),
    ("GET", "/repos/{owner}/{repo}/hooks", list_hooks),
    ("GET", "/repos/{owner}/{repo}/branches/{branch}", get_branch),
    ("GET", "/repos/{owner}/{repo}/rules/branches/{branch}", branch_rules),
    ("POST", "/repos/{owner}/{repo}/issues", create_issue),
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/labels", add_labels),
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/assignees", add_assignees),
    ("POST", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews", create_review),
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/comments", list_pull_review_comments),
    ("POST", "/repos/{owner}/{repo}/pulls/{pull_number}/comments/{comment_id}/replies", create_review_reply),
    ("PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/merge", merge_pull),
    ("POST", "/repos/{owner}/{repo}/statuses/{sha}", create_status),
    ("POST", "/repos/{owner}/{repo}/check-runs", create_check_run),
]
_COMPILED = [
    (method, template, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"), handler)
    for method, template, handler in ROUTES
]


def route(method: str, path: str) -> tuple[str, dict[str, str], Handler] | None:
    """The route's template, its path parameters (decoded: a ref ``baton%2Fissue-1`` is a branch with
    a slash) and its handler; None when nothing matches."""
    for m, template, pattern, handler in _COMPILED:
        if m == method and (match := pattern.match(path)):
            return template, {k: unquote(v) for k, v in match.groupdict().items()}, handler
    return None
