"""GitHubClient (and the shared ForgeHTTP under it) against ``httpx.MockTransport`` handlers that answer
with GitHub's own shapes: the examples of GitHub's official OpenAPI description (``@octokit/openapi``,
a pinned test dependency in package.json), changed only where a test needs a failure in them."""

from __future__ import annotations

import copy
import json
import logging
import tracemalloc
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from baton.forge.data.model import Actor, Changed, ForgeClient, ForgeError
from baton.forge.kinds.github.client import GitHubClient
from baton.forge.kinds.http import ForgeHTTP, RateLimited, next_link
from baton.forge.kinds.rest import epoch, iso, log_text
from baton.testing.fake_forge import FakeForge

SPEC = Path(__file__).resolve().parents[3] / "node_modules/@octokit/openapi/generated/api.github.com.json"
API = "https://api.github.com"
TOKEN = "ghp_s3cretT0kenThatMustNeverLeak0123456789"
REPO = "octocat/Hello-World"
R = f"/repos/{REPO}"
SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"

Handler = Callable[[httpx.Request], httpx.Response]


@cache
def _spec() -> dict[str, Any]:
    if not SPEC.exists():
        pytest.fail(f"{SPEC} is missing: `make setup` installs package.json's @octokit/openapi")
    data: dict[str, Any] = json.loads(SPEC.read_text())
    return data


def _resolve(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = _spec()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def example(path: str, method: str = "get", status: str = "200") -> Any:
    """The first example GitHub's OpenAPI description gives for an answer (a fresh copy)."""
    response = _resolve(_spec()["paths"][path][method]["responses"][status])
    node = next(iter(response["content"]["application/json"]["examples"].values()))
    while isinstance(node, dict) and ("$ref" in node or "value" in node):  # examples refer to examples
        node = _resolve(node).get("value", _resolve(node))
    return copy.deepcopy(node)


class Forge:
    """A MockTransport over routes ``(method, path) -> answer`` (a JSON body, a Response, or a
    handler); it records every request. An unknown route is GitHub's 404."""

    def __init__(self, routes: dict[tuple[str, str], Any] | None = None) -> None:
        self.routes: dict[tuple[str, str], Any] = dict(routes or {})
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.routes.get((request.method, request.url.path))
        if answer is None:
            return httpx.Response(
                404, json={"message": "Not Found", "documentation_url": "https://docs.github.com"}
            )
        if callable(answer):
            response: httpx.Response = answer(request)
            return response
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer)

    def client(self, api: str = API, **kwargs: Any) -> GitHubClient:
        return GitHubClient(
            api, TOKEN, transport=httpx.MockTransport(self), sleep=self.sleeps.append, **kwargs
        )

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


def sequence(*answers: httpx.Response | Exception) -> Handler:
    """A handler answering each request with the next answer (an exception is raised)."""
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handle


# -- who and what ---------------------------------------------------------------------------------------


def test_permission_is_the_finer_role_and_404_is_none() -> None:
    path = "/repos/{owner}/{repo}/collaborators/{username}/permission"
    admin = example(path)
    maintain = {**admin, "permission": "write", "role_name": "maintain"}
    custom = {**admin, "permission": "write", "role_name": "security-reviewer"}
    forge = Forge(
        {
            ("GET", f"{R}/collaborators/octocat/permission"): admin,
            ("GET", f"{R}/collaborators/mona/permission"): maintain,
            ("GET", f"{R}/collaborators/hubot/permission"): custom,
        }
    )
    with forge.client() as gh:
        assert gh.permission(REPO, "octocat") == "admin"
        assert gh.permission(REPO, "mona") == "maintain"
        assert gh.permission(REPO, "hubot") == "write"  # a custom role: its base role
        assert gh.permission(REPO, "stranger") == "none"
    first = forge.requests[0]
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.headers["accept"] == "application/vnd.github+json"
    assert first.headers["x-github-api-version"] == "2022-11-28"
    assert len(forge.requests) == 4  # the 404 was not retried


def test_thread_of_an_issue_and_of_a_pull_request() -> None:
    issue = example("/repos/{owner}/{repo}/issues/{issue_number}")
    plain = {k: v for k, v in issue.items() if k != "pull_request"}
    pull = example("/repos/{owner}/{repo}/pulls/{pull_number}")
    forge = Forge(
        {
            ("GET", f"{R}/issues/7"): {**plain, "number": 7},
            ("GET", f"{R}/issues/1347"): issue,
            ("GET", f"{R}/pulls/1347"): pull,
        }
    )
    with forge.client() as gh:
        info = gh.thread(REPO, 7)
        assert not info.is_pr and info.number == 7 and info.state == "open" and info.title == "Found a bug"
        assert info.author == Actor("octocat", bot=False, association="COLLABORATOR")
        assert info.labels == ("bug",) and info.head_sha is None
        assert forge.paths() == [f"{R}/issues/7"]  # an issue needs no second request

        pr = gh.thread(REPO, 1347)
    assert pr.is_pr and pr.url == "https://github.com/octocat/Hello-World/pull/1347"
    assert (pr.head_sha, pr.head_ref, pr.base_ref) == (SHA, "new-topic", "master")
    assert pr.from_fork is False and pr.mergeable is True and pr.merged is False


@pytest.mark.parametrize(
    ("head_repo", "fork"),
    [(None, True), ({"full_name": "mallory/Hello-World"}, True), ({"full_name": REPO}, False)],
)
def test_a_pull_request_from_a_fork(head_repo: dict[str, Any] | None, fork: bool) -> None:
    issue = example("/repos/{owner}/{repo}/issues/{issue_number}")
    pull = example("/repos/{owner}/{repo}/pulls/{pull_number}")
    pull["head"]["repo"] = head_repo and {**pull["head"]["repo"], **head_repo}
    pull.update(merged=True, mergeable=None, state="closed")
    forge = Forge({("GET", f"{R}/issues/1347"): issue, ("GET", f"{R}/pulls/1347"): pull})
    with forge.client() as gh:
        pr = gh.thread(REPO, 1347)
    assert pr.from_fork is fork
    assert pr.merged and pr.state == "closed" and pr.mergeable is None


def test_updated_since_reads_every_page_through_link_headers() -> None:
    items = example("/repos/{owner}/{repo}/issues")
    pr, issue = items[0], {k: v for k, v in items[0].items() if k != "pull_request"}
    pages = {
        "1": ([{**issue, "number": 1}, {**pr, "number": 2}], "2"),
        "2": ([{**issue, "number": 3}], "3"),
        "3": (
            [
                {
                    **pr,
                    "number": 4,
                    "pull_request": {**pr["pull_request"], "merged_at": "2024-01-01T00:00:00Z"},
                }
            ],
            None,
        ),
    }

    def page(request: httpx.Request) -> httpx.Response:
        n = request.url.params.get("page", "1")
        body, following = pages[n]
        # as GitHub links them (octokit/fixtures' paginate-issues): by repository id, the query carried along
        links = (
            [f'<{API}/repositories/1296269/issues?per_page=100&page={following}>; rel="next"']
            if following
            else []
        )
        links.append(f'<{API}/repositories/1296269/issues?per_page=100&page=3>; rel="last"')
        return httpx.Response(200, json=body, headers={"link": ", ".join(links)})

    forge = Forge({("GET", f"{R}/issues"): page, ("GET", "/repositories/1296269/issues"): page})
    with forge.client() as gh:
        found = gh.updated_since(REPO, 1_700_000_000.75)
    assert [(t.number, t.is_pr, t.merged) for t in found] == [
        (1, False, False),
        (2, True, False),
        (3, False, False),
        (4, True, True),
    ]
    first = forge.requests[0].url.params
    assert dict(first) == {
        "state": "all",
        "sort": "updated",
        "direction": "asc",
        "since": "2023-11-14T22:13:20Z",
        "per_page": "100",
    }
    assert [str(r.url) for r in forge.requests[1:]] == [
        f"{API}/repositories/1296269/issues?per_page=100&page=2",
        f"{API}/repositories/1296269/issues?per_page=100&page=3",
    ]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in forge.requests)


def test_an_enterprise_server_keeps_its_api_prefix() -> None:
    repo = example("/repos/{owner}/{repo}")
    forge = Forge({("GET", f"/api/v3{R}"): repo})
    with forge.client("http://127.0.0.1:8080/api/v3/") as gh:
        assert gh.default_branch(REPO) == repo["default_branch"] == "master"
    assert str(forge.requests[0].url) == f"http://127.0.0.1:8080/api/v3{R}"


def test_bad_names_and_urls_are_refused_before_any_request() -> None:
    forge = Forge()
    with forge.client() as gh:
        for bad in ("octocat", "a/b/c", "../x", "a/b?x=1"):
            with pytest.raises(ForgeError, match="full name"):
                gh.default_branch(bad)
    assert forge.requests == []
    with pytest.raises(ForgeError, match="credentials"):
        GitHubClient(f"https://x:{TOKEN}@api.github.com", TOKEN)
    with pytest.raises(ForgeError, match="not an http"):
        GitHubClient("ftp://api.github.com", TOKEN)


# -- conversation ---------------------------------------------------------------------------------------


def test_comments_since_and_their_authors() -> None:
    comments = example("/repos/{owner}/{repo}/issues/{issue_number}/comments")
    bot = {**comments[0], "id": 2, "user": {**comments[0]["user"], "login": "ci[bot]", "type": "Bot"}}
    ghost = {**comments[0], "id": 3, "user": None, "body": None}
    forge = Forge({("GET", f"{R}/issues/1347/comments"): [*comments, bot, ghost]})
    with forge.client() as gh:
        found = gh.comments(REPO, 1347, since=1_302_796_849.0)
    assert [c.id for c in found] == [comments[0]["id"], 2, 3]
    first = found[0]
    assert first.body == "Me too" and first.url == comments[0]["html_url"]
    assert first.author == Actor("octocat", False, "COLLABORATOR")
    assert first.at == epoch("2011-04-14T16:00:49Z") == 1_302_796_849.0
    assert found[1].author.bot and found[2].author.login == "ghost" and found[2].body == ""
    assert forge.requests[0].url.params["since"] == "2011-04-14T16:00:49Z"


def test_reviews_with_their_inline_comments_every_page() -> None:
    reviews = example("/repos/{owner}/{repo}/pulls/{pull_number}/reviews")
    pending = {**reviews[0], "id": 81, "state": "PENDING"}
    inline = example("/repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}/comments")[0]
    inline.update(line=16)
    outdated = {**inline, "id": 11, "line": None, "original_line": 12}

    def comments(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page") == "2":
            return httpx.Response(200, json=[outdated])
        link = f'<{API}{R}/pulls/12/reviews/80/comments?per_page=100&page=2>; rel="next"'
        return httpx.Response(200, json=[inline], headers={"link": link})

    forge = Forge(
        {
            ("GET", f"{R}/pulls/12/reviews"): [*reviews, pending],
            ("GET", f"{R}/pulls/12/reviews/80/comments"): comments,
        }
    )
    with forge.client() as gh:
        (review,) = gh.reviews(REPO, 12)  # the pending one is no one's business yet
    assert (review.id, review.state, review.commit) == (
        80,
        "APPROVED",
        "ecdd80bb57125d7ba9641ffaa4d7d2c19d3f3091",
    )
    assert review.body == "Here is the body for the review." and review.at == epoch("2019-11-17T17:43:43Z")
    assert review.author.association == "COLLABORATOR"
    assert [(c.id, c.path, c.line) for c in review.comments] == [(10, "file1.txt", 16), (11, "file1.txt", 12)]
    assert review.comments[0].diff_hunk.startswith("@@ -16,33 +16,40 @@")
    assert review.comments[0].url == "https://github.com/octocat/Hello-World/pull/1#discussion-diff-1"
    assert f"{R}/pulls/12/reviews/81/comments" not in forge.paths()


def test_a_review_of_ten_thousand_comments_is_paged_through() -> None:
    review = example("/repos/{owner}/{repo}/pulls/{pull_number}/reviews")[0]
    template = example("/repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}/comments")[0]
    total, per_page = 10_000, 100
    served: list[int] = []

    def comments(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        served.append(page)
        start = (page - 1) * per_page
        body = [{**template, "id": start + i, "line": i + 1} for i in range(per_page)]
        last = total // per_page
        link = (
            f'<{API}{R}/pulls/12/reviews/80/comments?per_page=100&page={page + 1}>; rel="next"'
            if page < last
            else ""
        )
        return httpx.Response(200, json=body, headers={"link": link} if link else {})

    forge = Forge(
        {("GET", f"{R}/pulls/12/reviews"): [review], ("GET", f"{R}/pulls/12/reviews/80/comments"): comments}
    )
    with forge.client() as gh:
        (found,) = gh.reviews(REPO, 12)
    assert len(found.comments) == total and [c.id for c in found.comments] == list(range(total))
    assert served == list(range(1, 101))


def test_post_and_edit_a_comment() -> None:
    created = example("/repos/{owner}/{repo}/issues/{issue_number}/comments", "post", "201")
    forge = Forge(
        {
            ("POST", f"{R}/issues/1347/comments"): httpx.Response(201, json=created),
            ("PATCH", f"{R}/issues/comments/1"): example(
                "/repos/{owner}/{repo}/issues/comments/{comment_id}", "patch"
            ),
        }
    )
    with forge.client() as gh:
        assert gh.post_comment(REPO, 1347, "baton is on it") == created["id"]
        gh.edit_comment(REPO, 1, "baton is done")
    assert [json.loads(r.content) for r in forge.requests] == [
        {"body": "baton is on it"},
        {"body": "baton is done"},
    ]


def test_open_pr_or_find_the_one_open_for_the_head() -> None:
    created = example("/repos/{owner}/{repo}/pulls", "post", "201")
    existing = example("/repos/{owner}/{repo}/pulls")
    exists = {
        "message": "Validation Failed",
        "errors": [
            {
                "resource": "PullRequest",
                "code": "custom",
                "message": "A pull request already exists for octocat:new-topic.",
            }
        ],
        "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
    }
    forge = Forge({("POST", f"{R}/pulls"): httpx.Response(201, json=created)})
    with forge.client() as gh:
        assert gh.open_pr(REPO, "new-topic", "master", "Amazing new feature", "Closes #7.", True) == (
            created["number"],
            created["html_url"],
        )
        assert json.loads(forge.requests[0].content) == {
            "title": "Amazing new feature",
            "head": "new-topic",
            "base": "master",
            "body": "Closes #7.",
            "draft": True,
        }

        forge.routes[("POST", f"{R}/pulls")] = httpx.Response(422, json=exists)
        forge.routes[("GET", f"{R}/pulls")] = existing
        assert gh.open_pr(REPO, "new-topic", "master", "t", "b", False) == (
            existing[0]["number"],
            existing[0]["html_url"],
        )
        assert forge.requests[-1].url.params["head"] == "octocat:new-topic"
        assert forge.requests[-1].url.params["state"] == "open"

        no_commits = {
            "message": "Validation Failed",
            "errors": [
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": "No commits between master and new-topic",
                }
            ],
        }
        forge.routes[("POST", f"{R}/pulls")] = httpx.Response(422, json=no_commits)
        before = len(forge.requests)
        with pytest.raises(ForgeError) as caught:
            gh.open_pr(REPO, "new-topic", "master", "t", "b", False)
    assert caught.value.status == 422 and not caught.value.transient
    assert str(caught.value) == (
        f"GitHub answered 422 to POST {R}/pulls: Validation Failed: No commits between master and new-topic"
    )
    assert len(forge.requests) == before + 1  # a 422 is not retried, nor looked up


# -- checks ---------------------------------------------------------------------------------------------


def test_checks_changed_is_a_conditional_request() -> None:
    runs = example("/repos/{owner}/{repo}/commits/{ref}/check-runs")

    def check_runs(request: httpx.Request) -> httpx.Response:
        if request.headers.get("if-none-match") == '"abc"':
            return httpx.Response(304, headers={"etag": '"abc"'})
        return httpx.Response(200, json=runs, headers={"etag": '"abc"'})

    forge = Forge({("GET", f"{R}/commits/{SHA}/check-runs"): check_runs})
    with forge.client() as gh:
        assert gh.checks_changed(REPO, SHA, None) == Changed(True, '"abc"')
        assert gh.checks_changed(REPO, SHA, '"abc"') == Changed(False, '"abc"')
        assert gh.checks_changed(REPO, SHA, '"old"') == Changed(True, '"abc"')
    assert "if-none-match" not in forge.requests[0].headers
    assert [r.headers.get("if-none-match") for r in forge.requests[1:]] == ['"abc"', '"old"']


LOG = (
    "\ufeff2024-05-01T12:00:00.1000000Z ##[group]Run pytest\n"
    "2024-05-01T12:00:01.2000000Z collected 3 items\n"
    "2024-05-01T12:00:02.3000000Z FAILED tests/test_x.py::test_y - assert 1 == 2\n"
    "2024-05-01T12:00:03.4000000Z ##[error]Process completed with exit code 1.\n"
)
DOWNLOAD = "https://pipelines.actions.githubusercontent.com/serviceHosts/abc/_apis/pipelines/1/runs/5/signedlogcontent/4"


def ranged(body: bytes, sent: list[int]) -> Handler:
    """A download that honours ``Range: bytes=-N`` (as GitHub's log storage does)."""

    def handle(request: httpx.Request) -> httpx.Response:
        wanted = request.headers.get("range", "")
        if wanted.startswith("bytes=-"):
            n = min(int(wanted.removeprefix("bytes=-")), len(body))
            start = len(body) - n
            sent.append(n)
            headers = {"content-range": f"bytes {start}-{len(body) - 1}/{len(body)}"}
            return httpx.Response(206, content=body[start:], headers=headers)
        sent.append(len(body))
        return httpx.Response(200, content=body)

    return handle


def checks_forge(log_handler: Handler) -> Forge:
    """A head commit with an Actions job that failed (its log, its steps), a third-party check run
    that failed with annotations, one waiting for approval, successes, and a failing commit status."""
    template = example("/repos/{owner}/{repo}/commits/{ref}/check-runs")["check_runs"][0]
    job = example("/repos/{owner}/{repo}/actions/jobs/{job_id}")
    job.update(conclusion="failure", name="test (3.11)")
    job["steps"].append({**job["steps"][1], "name": "Run pytest", "conclusion": "failure", "number": 3})
    actions = {
        **template,
        "id": 399444496,
        "name": "test (3.11)",
        "conclusion": "failure",
        "html_url": "https://github.com/octo-org/octo-repo/actions/runs/29679449/job/399444496",
        "details_url": "https://github.com/octo-org/octo-repo/actions/runs/29679449/job/399444496",
        "output": {**template["output"], "annotations_count": 0},
    }
    lint = {**template, "id": 4, "conclusion": "failure"}  # mighty_readme, with its 2 annotations
    waiting = {**actions, "id": 5, "name": "deploy", "conclusion": "action_required"}
    waiting.update(html_url=actions["html_url"].replace("399444496", "5"), details_url="")
    ok = {**template, "id": 6, "name": "build", "conclusion": "success"}
    neutral = {**template, "id": 7, "name": "docs"}  # neutral: not a failure
    status = example("/repos/{owner}/{repo}/commits/{ref}/status")
    status["statuses"][1].update(state="failure", target_url="https://ci.example.com/build/9")
    annotations = example("/repos/{owner}/{repo}/check-runs/{check_run_id}/annotations")
    annotations.append(
        {**annotations[0], "path": "docs/x.md", "start_line": 9, "message": "Check the\nlink."}
    )
    waiting_job = {**job, "id": 5, "name": "deploy", "steps": [], "conclusion": "action_required"}

    def logs(request: httpx.Request) -> httpx.Response:
        job_id = request.url.path.split("/")[-2]
        return httpx.Response(302, headers={"location": f"{DOWNLOAD}?jobId={job_id}&sig=SIGNATURE"})

    return Forge(
        {
            ("GET", f"{R}/commits/{SHA}/check-runs"): {
                "total_count": 5,
                "check_runs": [ok, actions, lint, waiting, neutral],
            },
            ("GET", f"{R}/commits/{SHA}/status"): status,
            ("GET", f"{R}/check-runs/4/annotations"): annotations,
            ("GET", f"{R}/actions/jobs/399444496"): job,
            ("GET", f"{R}/actions/jobs/5"): waiting_job,
            ("GET", f"{R}/actions/jobs/399444496/logs"): logs,
            ("GET", f"{R}/actions/jobs/5/logs"): logs,
            ("GET", "/serviceHosts/abc/_apis/pipelines/1/runs/5/signedlogcontent/4"): log_handler,
        }
    )


def test_failed_checks_with_steps_annotations_and_a_bounded_log_tail() -> None:
    body = (
        "".join(f"2024-05-01T11:59:{i % 60:02d}.0000000Z line {i} of the setup\n" for i in range(5000)) + LOG
    ).encode()
    sent: list[int] = []
    forge = checks_forge(ranged(body, sent))
    with forge.client() as gh:
        actions, lint, waiting, status = gh.failed_checks(REPO, SHA, tail_bytes=400)

    assert (actions.name, actions.conclusion, actions.job_id) == ("CI / test (3.11)", "failure", 399444496)
    assert actions.url == "https://github.com/octo-org/octo-repo/actions/runs/29679449/job/399444496"
    assert actions.steps == ("Run pytest",) and actions.annotations == ()
    assert actions.log_tail.endswith(
        "collected 3 items\nFAILED tests/test_x.py::test_y - assert 1 == 2\n"
        "##[error]Process completed with exit code 1.\n"
    )
    assert len(actions.log_tail) <= 400 and actions.log_tail.startswith("line ")  # whole lines, no stamps
    assert sent == [401]  # the range was asked for (a byte more: is it a line's start?), and only it sent

    assert (lint.name, lint.conclusion, lint.job_id, lint.steps, lint.log_tail) == (
        "mighty_readme",
        "failure",
        None,
        (),
        "",
    )
    assert lint.url == "https://github.com/github/hello-world/runs/4"
    assert lint.annotations == (
        "README.md:2: Check your spelling for 'banaas'.",
        "docs/x.md:9: Check the link.",
    )

    assert (waiting.name, waiting.conclusion, waiting.log_tail) == ("CI / deploy", "action_required", "")
    assert (status.name, status.conclusion, status.url) == (
        "security/brakeman",
        "failure",
        "https://ci.example.com/build/9",
    )
    assert status.annotations == ("Testing has completed successfully",)

    downloads = [r for r in forge.requests if r.url.host != "api.github.com"]
    assert len(downloads) == 1 and downloads[0].headers["range"] == "bytes=-401"
    assert "authorization" not in downloads[0].headers  # the token stays with the API
    assert f"{R}/actions/jobs/5/logs" not in forge.paths()  # a job waiting for approval has no log yet
    assert f"{R}/check-runs/399444496/annotations" not in forge.paths()  # it said it has none


def test_log_text_strips_actions_timestamps_only_at_line_starts() -> None:
    assert log_text(LOG.encode()) == (
        "##[group]Run pytest\ncollected 3 items\nFAILED tests/test_x.py::test_y - assert 1 == 2\n"
        "##[error]Process completed with exit code 1.\n"
    )
    assert (
        log_text(b"no stamp 2024-05-01T12:00:00Z here\n\xff") == "no stamp 2024-05-01T12:00:00Z here\n\ufffd"
    )


def test_a_100_mb_log_from_a_server_that_ignores_range_is_never_held() -> None:
    size, chunk = 100 * 1024 * 1024, b"2024-05-01T12:00:00.0000000Z " + b"x" * 994 + b"\n"  # 1 KiB lines
    block = chunk * 64
    streamed = [0]

    def stream() -> Iterator[bytes]:
        while streamed[0] < size - len(LOG):
            streamed[0] += len(block)
            yield block
        streamed[0] += len(LOG)
        yield LOG.encode()

    def ignores_range(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=stream())

    forge = checks_forge(ignores_range)
    with forge.client() as gh:
        tracemalloc.start()
        try:
            checks = gh.failed_checks(REPO, SHA, tail_bytes=16_384)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert streamed[0] >= size  # read to its end...
    assert peak < 2 * 1024 * 1024  # ...holding a few tails at most, never the log
    tail = checks[0].log_tail
    assert len(tail) <= 16_384 and tail.endswith("##[error]Process completed with exit code 1.\n")
    assert tail.startswith("x" * 994 + "\n") or tail.startswith("##[group]")  # whole lines


def test_a_100_mb_log_behind_range_sends_only_its_tail() -> None:
    class Big:
        """100 MB that exist only as the slice asked for."""

        size = 100 * 1024 * 1024

        def __len__(self) -> int:
            return self.size

        def __getitem__(self, part: slice) -> bytes:  # byte i is a newline when i % 100 == 99
            start = part.start or 0
            head = (b"y" * 99 + b"\n")[start % 100 :]
            return head + (b"y" * 99 + b"\n") * ((self.size - start - len(head)) // 100)

    sent: list[int] = []
    forge = checks_forge(ranged(Big(), sent))  # type: ignore[arg-type]
    with forge.client() as gh:
        checks = gh.failed_checks(REPO, SHA, tail_bytes=1000)
    assert sent == [1001] and checks[0].log_tail == ("y" * 99 + "\n") * 10


def test_a_log_that_cannot_be_read_leaves_the_failure_and_hides_the_signature(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = httpx.Response(403, text="<Error><Code>AuthenticationFailed</Code></Error>")
    forge = checks_forge(lambda request: gone)
    caplog.set_level(logging.DEBUG)
    with forge.client() as gh:
        checks = gh.failed_checks(REPO, SHA)
    assert (
        checks[0].name == "CI / test (3.11)"
        and checks[0].log_tail == ""
        and checks[0].steps == ("Run pytest",)
    )
    assert "AuthenticationFailed" in caplog.text and "pipelines.actions.githubusercontent.com" in caplog.text
    assert "SIGNATURE" not in caplog.text and TOKEN not in caplog.text


def test_an_expired_log_or_a_missing_job_still_names_the_failure() -> None:
    forge = checks_forge(lambda request: httpx.Response(200, content=b""))
    forge.routes[("GET", f"{R}/actions/jobs/399444496")] = httpx.Response(404, json={"message": "Not Found"})
    forge.routes[("GET", f"{R}/actions/jobs/399444496/logs")] = httpx.Response(410, json={"message": "Gone"})
    with forge.client() as gh:
        first = gh.failed_checks(REPO, SHA)[0]
    assert (first.name, first.conclusion, first.steps, first.log_tail) == ("test (3.11)", "failure", (), "")


# -- retries, rate limits, errors ----------------------------------------------------------------------


def server_error() -> httpx.Response:
    return httpx.Response(500, json={"message": "Server Error"})


def test_5xx_are_retried_with_growing_backoff_then_succeed() -> None:
    repo = example("/repos/{owner}/{repo}")
    forge = Forge(
        {
            ("GET", R): sequence(
                server_error(),
                httpx.Response(502, text="<html>Bad Gateway</html>"),
                server_error(),
                httpx.Response(200, json=repo),
            )
        }
    )
    with forge.client() as gh:
        assert gh.default_branch(REPO) == "master"
    assert len(forge.requests) == 4
    for attempt, wait in enumerate(forge.sleeps):  # 0.5 s doubling, each between half and all of it
        assert 0.25 * 2**attempt <= wait <= 0.5 * 2**attempt
    assert len(forge.sleeps) == 3


def test_5xx_until_the_retries_are_spent_is_a_transient_forge_error() -> None:
    forge = Forge({("GET", R): httpx.Response(503, json={"message": "Service Unavailable"})})
    with forge.client(retries=2) as gh, pytest.raises(ForgeError) as caught:
        gh.default_branch(REPO)
    assert caught.value.status == 503 and caught.value.transient
    assert str(caught.value) == f"GitHub answered 503 to GET {R}: Service Unavailable"
    assert len(forge.requests) == 3 and len(forge.sleeps) == 2


def test_timeouts_are_retried_and_then_no_answer_is_status_0() -> None:
    repo = example("/repos/{owner}/{repo}")
    forge = Forge({("GET", R): sequence(httpx.ReadTimeout("timed out"), httpx.Response(200, json=repo))})
    with forge.client() as gh:
        assert gh.default_branch(REPO) == "master"
    assert len(forge.requests) == 2 and len(forge.sleeps) == 1

    forge = Forge({("GET", R): sequence(httpx.ConnectTimeout("timed out"))})
    with forge.client(retries=3) as gh, pytest.raises(ForgeError) as caught:
        gh.default_branch(REPO)
    assert caught.value.status == 0 and caught.value.transient
    assert str(caught.value) == f"GitHub did not answer GET {R} (ConnectTimeout: timed out)"
    assert len(forge.requests) == 4 and len(forge.sleeps) == 3


def test_a_post_is_re_sent_only_when_the_forge_cannot_have_acted() -> None:
    created = example("/repos/{owner}/{repo}/issues/{issue_number}/comments", "post", "201")
    path = ("POST", f"{R}/issues/1/comments")
    forge = Forge({path: sequence(httpx.ConnectError("refused"), httpx.Response(201, json=created))})
    with forge.client() as gh:
        assert gh.post_comment(REPO, 1, "hi") == created["id"]
        assert len(forge.requests) == 2

        for answer in (httpx.ReadTimeout("timed out"), server_error()):  # it may have been posted
            forge.requests.clear()
            forge.routes[path] = sequence(answer, httpx.Response(201, json=created))
            with pytest.raises(ForgeError):
                gh.post_comment(REPO, 1, "hi")
            assert len(forge.requests) == 1


@pytest.mark.parametrize("status", [401, 404, 410, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    forge = Forge(
        {
            ("GET", R): httpx.Response(
                status, json={"message": "Nope", "documentation_url": "https://docs.github.com"}
            )
        }
    )
    with forge.client() as gh, pytest.raises(ForgeError) as caught:
        gh.default_branch(REPO)
    assert caught.value.status == status and not caught.value.transient
    assert str(caught.value) == f"GitHub answered {status} to GET {R}: Nope"
    assert len(forge.requests) == 1 and forge.sleeps == []


def test_a_spent_rate_limit_waits_for_its_reset() -> None:
    repo = example("/repos/{owner}/{repo}")
    now = 1_700_000_000.0
    limited = httpx.Response(
        403,
        json={
            "message": "API rate limit exceeded for user ID 1.",
            "documentation_url": "https://docs.github.com",
        },
        headers={
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(int(now) + 30),
        },
    )
    forge = Forge({("GET", R): sequence(limited, httpx.Response(200, json=repo))})
    with forge.client(clock=lambda: now) as gh:
        assert gh.default_branch(REPO) == "master"
    assert forge.sleeps == [31.0]


def test_a_rate_limit_that_resets_later_than_max_wait_fails_at_once() -> None:
    now = 1_700_000_000.0
    limited = httpx.Response(
        403,
        json={"message": "API rate limit exceeded for user ID 1."},
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(now) + 3600)},
    )
    forge = Forge({("POST", f"{R}/issues/1/comments"): limited})
    with forge.client(clock=lambda: now) as gh, pytest.raises(RateLimited) as caught:
        gh.post_comment(REPO, 1, "hi")
    assert caught.value.status == 403 and caught.value.transient and caught.value.reset_at == now + 3601
    assert "API rate limit exceeded" in str(caught.value)
    assert forge.sleeps == [] and len(forge.requests) == 1


def test_retry_after_is_honoured_for_429_and_secondary_limits() -> None:
    repo = example("/repos/{owner}/{repo}")
    secondary = httpx.Response(
        403, json={"message": "You have exceeded a secondary rate limit."}, headers={"retry-after": "7"}
    )
    too_many = httpx.Response(429, json={"message": "Too Many Requests"}, headers={"retry-after": "2"})
    forge = Forge({("GET", R): sequence(secondary, too_many, httpx.Response(200, json=repo))})
    with forge.client() as gh:
        assert gh.default_branch(REPO) == "master"
    assert forge.sleeps == [7.0, 2.0]


def test_a_secondary_rate_limit_without_headers_waits_a_minute() -> None:
    repo = example("/repos/{owner}/{repo}")
    secondary = httpx.Response(
        403,
        json={
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try"
            " again.",
            "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
        },
    )
    forge = Forge({("GET", R): sequence(secondary, httpx.Response(200, json=repo))})
    with forge.client() as gh:
        assert gh.default_branch(REPO) == "master"
    assert forge.sleeps == [60.0]
    with forge.client(max_wait=10) as gh:
        forge.routes[("GET", R)] = secondary
        with pytest.raises(RateLimited) as caught:
            gh.default_branch(REPO)
    assert caught.value.status == 403 and "secondary rate limit" in str(caught.value)


def test_a_403_that_is_no_rate_limit_is_refused_at_once() -> None:
    forge = Forge(
        {("GET", R): httpx.Response(403, json={"message": "Resource not accessible by integration"})}
    )
    with forge.client() as gh, pytest.raises(ForgeError) as caught:
        gh.default_branch(REPO)
    assert caught.value.status == 403 and not caught.value.transient
    assert "Resource not accessible by integration" in str(caught.value) and len(forge.requests) == 1


def test_the_token_never_appears_in_an_error_or_a_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"message": f"Bad credentials: {request.headers['authorization']}"})

    def leaky(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach with {request.headers['authorization']}")

    forge = Forge({("GET", R): echo, ("GET", f"{R}/issues/1"): leaky})
    with forge.client(retries=1) as gh:
        for call in (lambda: gh.default_branch(REPO), lambda: gh.thread(REPO, 1)):
            with pytest.raises(ForgeError) as caught:
                call()
            assert TOKEN not in str(caught.value) and TOKEN not in repr(caught.value.args)
            assert caught.value.__cause__ is None and caught.value.__context__ is None
            assert "***" in str(caught.value)
    assert "retrying" in caplog.text and TOKEN not in caplog.text


# -- the shared pieces -------------------------------------------------------------------------------------


def test_next_link_and_times() -> None:
    header = (
        '<https://api.github.com/repositories/1000/issues?per_page=3&page=1>; rel="prev", '
        '<https://api.github.com/repositories/1000/issues?per_page=3&page=3>; rel="next", '
        '<https://api.github.com/repositories/1000/issues?per_page=3&page=5>; rel="last"'
    )
    assert next_link(header) == "https://api.github.com/repositories/1000/issues?per_page=3&page=3"
    assert next_link('<https://x/a?page=5>; rel="last"') is None and next_link(None) is None
    assert epoch("2020-01-20T09:42:40.000-08:00") == epoch("2020-01-20T17:42:40Z") == 1_579_542_160.0
    assert epoch(None) == 0.0 and epoch("yesterday") == 0.0
    assert iso(1_579_542_160.9) == "2020-01-20T17:42:40Z"


def test_tail_of_an_empty_log_and_of_one_long_line() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/empty":
            return httpx.Response(416, headers={"content-range": "bytes */0"})
        return httpx.Response(200, content=b"z" * 5000)

    with ForgeHTTP(API, TOKEN, transport=httpx.MockTransport(answer)) as http:
        assert http.tail("/empty", 100) == b""
        assert http.tail("/long", 100) == b"z" * 100  # one line longer than the tail: kept, not emptied
        assert http.tail("/long", 0) == b""


def test_a_renamed_repository_is_followed_with_the_token() -> None:
    repo = example("/repos/{owner}/{repo}")
    moved = httpx.Response(
        301, json={"message": "Moved Permanently"}, headers={"location": f"{API}/repositories/1296269"}
    )
    forge = Forge({("GET", R): moved, ("GET", "/repositories/1296269"): repo})
    with forge.client() as gh:
        assert gh.default_branch(REPO) == "master"
    assert forge.paths() == [R, "/repositories/1296269"]
    assert forge.requests[1].headers["authorization"] == f"Bearer {TOKEN}"


def test_a_body_cut_off_is_retried_like_no_answer() -> None:
    repo = json.dumps(example("/repos/{owner}/{repo}")).encode()

    def cut_off() -> Iterator[bytes]:
        yield repo[:100]
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")

    forge = Forge(
        {("GET", R): sequence(httpx.Response(200, content=cut_off()), httpx.Response(200, content=repo))}
    )
    with forge.client() as gh:
        assert gh.default_branch(REPO) == "master"
    assert len(forge.requests) == 2 and len(forge.sleeps) == 1


def test_a_download_that_breaks_off_leaves_the_tail_empty(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> Iterator[bytes]:
        yield b"2024-05-01T12:00:00.0000000Z started\n" * 100
        raise httpx.ReadError("connection reset")

    forge = checks_forge(lambda request: httpx.Response(200, content=broken()))
    with forge.client() as gh:
        first = gh.failed_checks(REPO, SHA)[0]
    assert first.name == "CI / test (3.11)" and first.log_tail == ""
    assert "broke off (ReadError: connection reset)" in caplog.text and "SIGNATURE" not in caplog.text


# -- against the fake GitHub (a real HTTP server checking every exchange against GitHub's description) --


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeForge]:
    with FakeForge(tmp_path / "forge") as forge:
        forge.create_repo("acme/api", {"README.md": "# api\n", "src/x.py": "x = 1\n"})
        forge.add_user("baton", token="ghp_baton_token_for_the_fake_forge")
        forge.set_permission("acme/api", "baton", "write")
        forge.set_permission("acme/api", "alice", "write")
        forge.set_permission("acme/api", "bob", "maintain")
        forge.set_permission("acme/api", "triager", "triage")
        yield forge
        assert forge.violations == []


def fake_client(forge: FakeForge, sleeps: list[float] | None = None, **kwargs: Any) -> GitHubClient:
    sleep = (sleeps if sleeps is not None else []).append
    return GitHubClient(forge.api_url, forge.token("baton"), sleep=sleep, **kwargs)


def test_fake_forge_who_what_and_a_pull_request(fake: FakeForge) -> None:
    issue = fake.open_issue("acme/api", "alice", "Fix x", "x should be 2", labels=["baton"])
    head = fake.commit("acme/api", "baton/issue-1", {"src/x.py": "x = 2\n"}, "x is 2")
    client: ForgeClient = fake_client(fake)  # the Protocol, as mypy checks it
    assert isinstance(client, GitHubClient)
    with client as gh:
        assert gh.default_branch("acme/api") == "main"
        assert [gh.permission("acme/api", who) for who in ("alice", "bob", "triager", "acme")] == [
            "write",
            "maintain",
            "triage",
            "admin",
        ]
        info = gh.thread("acme/api", issue)
        assert (info.is_pr, info.title, info.body, info.labels, info.author.login) == (
            False,
            "Fix x",
            "x should be 2",
            ("baton",),
            "alice",
        )

        number, url = gh.open_pr("acme/api", "baton/issue-1", "main", "Fix x", f"Closes #{issue}.", True)
        assert url.endswith(f"/acme/api/pull/{number}")
        assert gh.open_pr("acme/api", "baton/issue-1", "main", "again", "", True) == (number, url)
        pr = gh.thread("acme/api", number)
        assert (pr.is_pr, pr.state, pr.head_sha, pr.head_ref, pr.base_ref) == (
            True,
            "open",
            head,
            "baton/issue-1",
            "main",
        )
        assert pr.from_fork is False and pr.merged is False and pr.author.login == "baton"

        with pytest.raises(ForgeError) as caught:
            gh.open_pr("acme/api", "main", "main", "nothing", "", False)
        assert caught.value.status == 422 and "No commits between main and main" in str(caught.value)

        fake.close("acme/api", number, "alice", merged=True)
        assert gh.thread("acme/api", number).merged
        found = {t.number: t for t in gh.updated_since("acme/api", 0)}
        assert set(found) == {issue, number} and found[number].is_pr and found[number].merged
        assert not found[issue].is_pr


def test_fake_forge_conversation(fake: FakeForge) -> None:
    issue = fake.open_issue("acme/api", "alice", "Fix x")
    for i in range(105):  # more than a page
        fake.comment("acme/api", issue, "alice" if i % 2 else "bob", f"comment {i}")
    fake.commit("acme/api", "fix", {"src/x.py": "x = 2\n"})
    pr = fake.open_pr("acme/api", "alice", "fix", title="Fix")
    review = fake.review(
        "acme/api", pr, "bob", "Two things", [("src/x.py", 1, "why 2?"), ("README.md", 1, "doc it")]
    )
    with fake_client(fake) as gh:
        comments = gh.comments("acme/api", issue)
        assert [c.body for c in comments] == [f"comment {i}" for i in range(105)]
        assert comments[0].author.login == "bob" and comments[0].at > 0
        mine = gh.post_comment("acme/api", issue, "baton is on it")
        gh.edit_comment("acme/api", mine, "baton is done")
        assert fake.comments("acme/api", issue, "baton")[0].body == "baton is done"

        (found,) = gh.reviews("acme/api", pr)
        assert (found.id, found.state, found.body, found.author.login) == (
            review,
            "COMMENTED",
            "Two things",
            "bob",
        )
        assert [(c.path, c.line, c.body) for c in found.comments] == [
            ("src/x.py", 1, "why 2?"),
            ("README.md", 1, "doc it"),
        ]
        assert found.comments[0].diff_hunk.startswith("@@")
    assert len([r for r in fake.requests if r.path.endswith(f"/issues/{issue}/comments")]) >= 2  # paged


def test_fake_forge_checks_and_a_log_tail(fake: FakeForge) -> None:
    sha = fake.commit("acme/api", "fix", {"src/x.py": "x = 2\n"})
    fake.open_pr("acme/api", "alice", "fix")
    log = "".join(f"2024-05-01T12:00:{i % 60:02d}.0000000Z step output {i}\n" for i in range(20_000))
    log += "2024-05-01T12:01:00.0000000Z ##[error]Process completed with exit code 1.\n"
    with fake_client(fake) as gh:
        first = gh.checks_changed("acme/api", sha, None)
        assert first.changed and first.etag
        assert gh.checks_changed("acme/api", sha, first.etag) == Changed(False, first.etag)

        job = fake.add_check_run(
            "acme/api", sha, "test", "failure", log=log, annotations=[("src/x.py", 1, "boom")]
        )
        fake.add_check_run("acme/api", sha, "lint", "success")
        fake.set_status("acme/api", sha, "ci/jenkins", "error", "Jenkins broke", "https://ci.example.com/1")
        assert gh.checks_changed("acme/api", sha, first.etag).changed

        test, status = gh.failed_checks("acme/api", sha, tail_bytes=1000)
    assert (test.name, test.conclusion, test.job_id) == ("test", "failure", job)
    assert test.annotations == ("src/x.py:1: boom",)
    assert test.log_tail.endswith("step output 19999\n##[error]Process completed with exit code 1.\n")
    assert len(test.log_tail) <= 1000 and test.log_tail.startswith("step output ")
    assert (status.name, status.conclusion, status.url, status.annotations) == (
        "ci/jenkins",
        "error",
        "https://ci.example.com/1",
        ("Jenkins broke",),
    )


def test_fake_forge_faults_are_retried(fake: FakeForge) -> None:
    sleeps: list[float] = []
    with fake_client(fake, sleeps, timeout=0.5) as gh:
        fake.fail_next(2, 502)
        assert gh.default_branch("acme/api") == "main"
        assert len(sleeps) == 2

        fake.stall_next(1, 1.5)  # longer than the client waits: a timeout, retried
        assert gh.default_branch("acme/api") == "main"
        assert len(sleeps) == 3

    with fake_client(fake, sleeps, retries=1) as gh:
        fake.fail_next(5, 500)
        with pytest.raises(ForgeError) as caught:
            gh.default_branch("acme/api")
    assert caught.value.status == 500 and "injected 500" in str(caught.value)  # the forge's own words
    assert fake.token("baton") not in str(caught.value)
    while fake.take_fault():  # the injected faults the retries did not take
        pass

    with (
        GitHubClient(fake.api_url, "ghp_wrong_token", sleep=sleeps.append) as gh,
        pytest.raises(ForgeError) as denied,
    ):
        gh.default_branch("acme/api")
    assert denied.value.status == 401 and "ghp_wrong_token" not in str(denied.value)
