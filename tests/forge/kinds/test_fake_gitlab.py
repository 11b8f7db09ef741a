"""The fake GitLab's REST API (src/baton/testing/fake_gitlab*.py): the contract's routes and what they
answer, tokens and scopes, paging, ETags, rate limits, and its referee — every answer checked against
GitLab's published types (tests/support/gitlab_spec.py), a wrong shape failing loudly."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.testing.fake_gitlab import FakeGitLab, SpecViolation
from tests.support import gitlab_spec
from tests.support.gitlab_amendments import Amendment
from tests.support.gitlab_client import Api

PROJECT = "acme/api"
P = "/projects/acme%2Fapi"


@pytest.fixture(name="fake")
def fake_fixture(tmp_path: Path) -> Iterator[FakeGitLab]:
    fake = FakeGitLab(tmp_path / "gitlab").start()
    fake.add_project(PROJECT, {"README.md": "# api\n", "app.py": "print('hi')\n"})
    fake.add_user("baton-bot", "developer")
    fake.add_user("alice", "maintainer")
    fake.add_user("rita", "reporter")
    yield fake
    fake.stop()
    assert fake.violations == [], fake.violations


@pytest.fixture(name="api")
def api_fixture(fake: FakeGitLab) -> Api:
    return Api(fake, fake.token("baton-bot"))


def test_the_fake_checks_itself_under_the_tests(fake: FakeGitLab) -> None:
    assert isinstance(fake.checker, gitlab_spec.Checker)


def test_who_and_what_the_token_may(fake: FakeGitLab, api: Api) -> None:
    me = api.get("/user")
    assert me.status == 200
    assert (me.body["username"], me.body["bot"], me.body["state"]) == ("baton-bot", False, "active")
    token = api.get("/personal_access_tokens/self").body
    assert token["scopes"] == ["api"] and token["active"] and not token["revoked"]
    assert token["user_id"] == me.body["id"] and "token" not in token
    assert [u["username"] for u in api.get("/users?username=alice").body] == ["alice"]
    assert api.get("/users?username=nobody").body == []
    member = api.get(f"{P}/members/all/{fake.users['rita'].id}")
    assert (member.status, member.body["access_level"]) == (200, 20)
    stranger = fake.user("mallory")
    assert api.get(f"{P}/members/all/{stranger.id}").status == 404


def test_a_project_by_its_path_or_its_id(fake: FakeGitLab, api: Api) -> None:
    fake.add_project("grp/sub/tool")
    fake.set_access("grp/sub/tool", "baton-bot", "developer")
    by_path = api.get(P).body
    assert api.get(f"/projects/{by_path['id']}").body["path_with_namespace"] == PROJECT
    assert by_path["http_url_to_repo"] == f"{fake.web_url}/acme/api.git" == fake.clone_url(PROJECT)
    assert by_path["permissions"]["project_access"]["access_level"] == 30
    nested = api.get("/projects/grp%2Fsub%2Ftool")
    assert (nested.status, nested.body["namespace"]["full_path"]) == (200, "grp/sub")
    fake.add_project("other/secret")
    assert api.get("/projects/other%2Fsecret").body == {"message": "404 Project Not Found"}


def test_tokens_refused_as_gitlab_refuses_them(fake: FakeGitLab, api: Api) -> None:
    assert Api(fake, "glpat-wrong").get("/user").body == {"message": "401 Unauthorized"}
    assert Api(fake, fake.token("baton-bot"), private_token=True).get("/user").status == 200
    expiring = fake.add_token("baton-bot", expires_at=time.time() + 60)
    assert Api(fake, expiring.value).get("/user").status == 200
    fake.expire(expiring.value)
    expired = Api(fake, expiring.value).get("/user")
    assert (expired.status, expired.body["error_description"]) == (
        401,
        "Token is expired. You can either do re-authorization or token refresh.",
    )
    fake.revoke(fake.token("alice"))
    revoked = Api(fake, fake.token("alice")).get("/user")
    assert revoked.status == 401 and revoked.body["error"] == "invalid_token"


def test_a_read_api_token_reads_and_cannot_write(fake: FakeGitLab) -> None:
    reader = Api(fake, fake.add_token("baton-bot", scopes=("read_api",)).value)
    fake.open_issue(PROJECT, "Bug")
    assert reader.get(f"{P}/issues/1").status == 200
    refused = reader("POST", f"{P}/issues/1/notes", {"body": "hi"})
    assert refused.status == 403 and refused.body["error"] == "insufficient_scope"
    user_only = Api(fake, fake.add_token("baton-bot", scopes=("read_user",)).value)
    assert user_only.get("/user").status == 200
    assert user_only.get(P).status == 403


def test_a_project_access_token_is_a_bot_member(fake: FakeGitLab) -> None:
    token = fake.add_project_token(PROJECT, name="baton", access="developer", scopes=("api",))
    bot = Api(fake, token.value)
    me = bot.get("/user").body
    assert me["bot"] is True and me["username"].startswith("project_")
    assert bot.get(f"{P}/members/all/{me['id']}").body["access_level"] == 30


def test_the_projects_hooks_show_to_a_maintainer(fake: FakeGitLab, api: Api) -> None:
    fake.add_hook(PROJECT, "https://baton.example/webhooks/gitlab", "s3cret", events=("note", "pipeline"))
    assert api.get(f"{P}/hooks").status == 403  # a Developer
    hooks = Api(fake, fake.token("alice")).get(f"{P}/hooks?per_page=100").body
    assert [(h["url"], h["note_events"], h["pipeline_events"], h["push_events"]) for h in hooks] == [
        ("https://baton.example/webhooks/gitlab", True, True, False)
    ]
    assert "token" not in hooks[0] and hooks[0]["alert_status"] == "executable"


def test_issues_and_notes(fake: FakeGitLab, api: Api) -> None:
    fake.open_issue(PROJECT, "Bug", "it breaks", labels=("bug",))
    fake.comment(PROJECT, 1, "@baton please")
    issue = api.get(f"{P}/issues/1").body
    assert (issue["iid"], issue["state"], issue["labels"], issue["author"]["username"]) == (
        1,
        "opened",
        ["bug"],
        "alice",
    )
    posted = api("POST", f"{P}/issues/1/notes", {"body": "on it"})
    assert posted.status == 201 and posted.body["noteable_type"] == "Issue" and posted.body["type"] is None
    edited = api("PUT", f"{P}/issues/1/notes/{posted.body['id']}", {"body": "done"})
    assert edited.body["body"] == "done"
    alices = fake.notes(PROJECT, 1)[0]
    assert api("PUT", f"{P}/issues/1/notes/{alices.id}", {"body": "x"}).status == 403
    newest_first = api.get(f"{P}/issues/1/notes?sort=desc&order_by=created_at&per_page=100").body
    assert [n["body"] for n in newest_first] == ["done", "@baton please"]


def test_issues_updated_after(fake: FakeGitLab, api: Api) -> None:
    fake.open_issue(PROJECT, "old")
    time.sleep(0.01)
    since = time.time()
    time.sleep(0.01)
    fake.open_issue(PROJECT, "new")
    query = "scope=all&order_by=updated_at&sort=asc&per_page=100"
    after = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since)) + f".{int(since % 1 * 1000):03d}Z"
    assert [i["title"] for i in api.get(f"{P}/issues?updated_after={after}&{query}").body] == ["new"]
    fake.comment(PROJECT, 1, "a touch")
    assert [i["title"] for i in api.get(f"{P}/issues?updated_after={after}&{query}").body] == ["new", "old"]


def test_merge_requests_follow_git(fake: FakeGitLab, api: Api) -> None:
    first = fake.commit(PROJECT, "baton/issue-1", {"app.py": "print('fixed')\n"}, author="baton-bot")
    body = {
        "source_branch": "baton/issue-1",
        "target_branch": "main",
        "title": "Draft: fix",
        "description": "x",
    }
    opened = api("POST", f"{P}/merge_requests", body)
    assert opened.status == 201
    mr = opened.body
    assert (mr["sha"], mr["draft"], mr["detailed_merge_status"], mr["has_conflicts"]) == (
        first,
        True,
        "draft_status",
        False,
    )
    assert mr["diff_refs"]["head_sha"] == first and mr["diff_refs"]["start_sha"] == fake.project(
        PROJECT
    ).head("main")
    again = api("POST", f"{P}/merge_requests", body)
    assert again.status == 409
    assert again.body == {"message": ["Another open merge request already exists for this source branch: !1"]}
    second = fake.commit(PROJECT, "baton/issue-1", {"app.py": "print('fixed twice')\n"}, author="baton-bot")
    assert api.get(f"{P}/merge_requests/1").body["sha"] == second
    ready = api("PUT", f"{P}/merge_requests/1", {"title": "fix"}).body
    assert (ready["draft"], ready["work_in_progress"], ready["detailed_merge_status"]) == (
        False,
        False,
        "mergeable",
    )
    diffs = api.get(f"{P}/merge_requests/1/diffs?per_page=100").body
    assert [(d["new_path"], d["new_file"]) for d in diffs] == [("app.py", False)]
    assert diffs[0]["diff"].startswith("@@ -1 +1 @@\n-print('hi')\n+print('fixed twice')")
    listed = api.get(f"{P}/merge_requests?scope=all&state=all&order_by=updated_at&sort=asc&per_page=100").body
    assert [m["iid"] for m in listed] == [1] and "diff_refs" not in listed[0]
    approvals = api.get(f"{P}/merge_requests/1/approvals").body
    assert (approvals["approvals_left"], approvals["approved_by"]) == (0, [])
    fake.set_reviewer(PROJECT, 1, "alice", "requested_changes")
    fake.approve(PROJECT, 1, "rita")
    reviewers = api.get(f"{P}/merge_requests/1/reviewers").body
    assert [(r["user"]["username"], r["state"]) for r in reviewers] == [("alice", "requested_changes")]
    assert [
        a["user"]["username"] for a in api.get(f"{P}/merge_requests/1/approvals").body["approved_by"]
    ] == ["rita"]
    found = api.get(
        f"{P}/merge_requests?source_branch=baton/issue-1&target_branch=main&state=opened&per_page=1"
    )
    assert [m["iid"] for m in found.body] == [1]
    assert api.get(f"{P}/merge_requests?source_branch=other").body == []


def test_conflicts_come_from_git(fake: FakeGitLab, api: Api) -> None:
    fake.commit(PROJECT, "topic", {"app.py": "print('topic')\n"})
    fake.open_mr(PROJECT, "topic", "Draft: topic")
    fake.commit(PROJECT, "main", {"app.py": "print('main')\n"})
    mr = api.get(f"{P}/merge_requests/1").body
    assert (mr["has_conflicts"], mr["merge_status"], mr["detailed_merge_status"]) == (
        True,
        "cannot_be_merged",
        "draft_status",
    )
    fake.update_mr(PROJECT, 1, title="topic")
    assert api.get(f"{P}/merge_requests/1").body["detailed_merge_status"] == "conflict"
    fake.checking = 1
    assert api.get(f"{P}/merge_requests/1").body["merge_status"] == "checking"
    assert api.get(f"{P}/merge_requests/1").body["merge_status"] == "cannot_be_merged"


def test_discussions_diff_notes_replies_and_resolving(fake: FakeGitLab, api: Api) -> None:
    fake.commit(PROJECT, "topic", {"app.py": "print('hi')\nprint('more')\n", "new.py": "x = 1\n"})
    fake.open_mr(PROJECT, "topic", "Draft: topic", author="baton-bot")
    notes = fake.review(PROJECT, 1, "alice", [("app.py", 2, "why?"), ("new.py", 1, "name it")])
    discussions = api.get(f"{P}/merge_requests/1/discussions?per_page=100").body
    assert [d["individual_note"] for d in discussions] == [False, False]
    first = discussions[0]["notes"][0]
    assert (first["type"], first["resolvable"], first["resolved"]) == ("DiffNote", True, False)
    position = first["position"]
    assert (position["new_path"], position["new_line"], position["old_line"], position["position_type"]) == (
        "app.py", 2, None, "text",
    )  # fmt: skip
    assert position["head_sha"] == fake.project(PROJECT).head("topic")
    reply = api(
        "POST", f"{P}/merge_requests/1/discussions/{notes[0].discussion_id}/notes", {"body": "because"}
    )
    assert reply.status == 201 and reply.body["type"] == "DiffNote"
    resolved = api("PUT", f"{P}/merge_requests/1/discussions/{notes[0].discussion_id}?resolved=true")
    assert [n["resolved"] for n in resolved.body["notes"]] == [True, True]
    assert resolved.body["notes"][0]["resolved_by"]["username"] == "baton-bot"


def test_pipelines_jobs_and_logs(fake: FakeGitLab, api: Api) -> None:
    sha = fake.commit(PROJECT, "topic", {"app.py": "print('x')\n"})
    older = fake.pass_pipeline(PROJECT, sha)
    log = "".join(f"line {n}\n" for n in range(1000))
    failed = fake.fail_pipeline(PROJECT, sha, [("unit", log), ("lint", "E501\n")])
    pipelines = api.get(f"{P}/pipelines?sha={sha}&per_page=20").body
    assert [p["id"] for p in pipelines] == [failed.id, older.id] and pipelines[0]["status"] == "failed"
    jobs = api.get(f"{P}/pipelines/{failed.id}/jobs?scope[]=failed&per_page=100").body
    assert sorted(j["name"] for j in jobs) == ["lint", "unit"]
    assert {j["failure_reason"] for j in jobs} == {"script_failure"} and jobs[0]["pipeline"]["sha"] == sha
    unit = next(j for j in jobs if j["name"] == "unit")
    whole = api.get(f"{P}/jobs/{unit['id']}/trace")
    assert (whole.status, whole.body) == (200, log)
    tail = api.get(f"{P}/jobs/{unit['id']}/trace", Range="bytes=-9")
    assert (tail.status, tail.body, tail.header("Content-Range")) == (
        206,
        "line 999\n",
        f"bytes {len(log) - 9}-{len(log) - 1}/{len(log)}",
    )


def test_merging_as_gitlab_decides(fake: FakeGitLab, api: Api) -> None:
    fake.open_issue(PROJECT, "Bug")
    sha = fake.commit(PROJECT, "fix", {"app.py": "print('fixed')\n"})
    fake.open_mr(PROJECT, "fix", "Draft: fix", description="Closes #1", author="baton-bot")
    assert api("PUT", f"{P}/merge_requests/1/merge", {"sha": sha}).body == {"message": "401 Unauthorized"}
    fake.set_access(PROJECT, "baton-bot", "maintainer")
    assert api("PUT", f"{P}/merge_requests/1/merge", {"sha": sha}).status == 405  # a draft
    fake.update_mr(PROJECT, 1, title="fix")
    stale = api("PUT", f"{P}/merge_requests/1/merge", {"sha": "0" * 40})
    assert stale.status == 409 and sha in stale.body["message"]
    running = fake.add_pipeline(PROJECT, sha)
    waiting = api("PUT", f"{P}/merge_requests/1/merge", {"sha": sha, "auto_merge": True}).body
    assert (waiting["state"], waiting["merge_when_pipeline_succeeds"]) == ("opened", True)
    fake.finish_pipeline(PROJECT, running.id, "success")
    merged = api.get(f"{P}/merge_requests/1").body
    assert (merged["state"], merged["merged_by"]["username"], merged["sha"]) == ("merged", "baton-bot", sha)
    assert fake.project(PROJECT).repo.git("merge-base", "--is-ancestor", sha, "main", check=False) == ""
    assert api.get(f"{P}/issues/1").body["state"] == "closed"


def test_paging_as_gitlab_pages(fake: FakeGitLab, api: Api) -> None:
    for n in range(45):
        fake.open_issue(PROJECT, f"issue {n}")
    first = api.get(f"{P}/issues?scope=all&per_page=20")
    assert len(first.body) == 20
    headers = {
        k: first.header(k) for k in ("X-Page", "X-Per-Page", "X-Next-Page", "X-Total", "X-Total-Pages")
    }
    assert headers == {
        "X-Page": "1",
        "X-Per-Page": "20",
        "X-Next-Page": "2",
        "X-Total": "45",
        "X-Total-Pages": "3",
    }
    assert 'rel="next"' in (first.header("Link") or "") and 'rel="last"' in (first.header("Link") or "")
    seen: list[int] = []
    url = f"{fake.api_url}{P}/issues?scope=all&per_page=20"
    while url:
        page = api.get(url)
        seen += [i["iid"] for i in page.body]
        parts = (p.split("; ") for p in (page.header("Link") or "").split(", "))
        links = {rel: target for target, rel in parts}
        url = links.get('rel="next"', "").strip("<>")
    assert sorted(seen) == list(range(1, 46))
    assert api.get(f"{P}/issues?per_page=20&page=3").header("X-Next-Page") == ""
    fake.uncounted = True
    big = api.get(f"{P}/issues?per_page=100")
    assert big.header("X-Total") is None and 'rel="last"' not in (big.header("Link") or "")
    assert len(api.get(f"{P}/issues?per_page=500").body) == 45  # at most 100 a page


def test_etags_and_304(fake: FakeGitLab, api: Api) -> None:
    fake.open_issue(PROJECT, "Bug")
    first = api.get(f"{P}/issues/1")
    tag = first.header("ETag") or ""
    assert tag.startswith('W/"')
    unchanged = api.get(f"{P}/issues/1", **{"If-None-Match": tag})
    assert (unchanged.status, unchanged.body) == (304, "")
    fake.label(PROJECT, 1, "bug")
    changed = api.get(f"{P}/issues/1", **{"If-None-Match": tag})
    assert changed.status == 200 and changed.header("ETag") != tag


def test_rate_limits(fake: FakeGitLab, api: Api) -> None:
    fake.rate_limit_next(2, retry_after=3)
    for _ in range(2):
        limited = api.get("/user")
        assert (limited.status, limited.header("Retry-After"), limited.header("RateLimit-Remaining")) == (
            429,
            "3",
            "0",
        )
        assert int(limited.header("RateLimit-Reset") or 0) >= int(time.time())
    assert api.get("/user").status == 200
    fake.fail_next(1, 502)
    assert api.get("/user").status == 502
    logged = [(r.method, r.path, r.status) for r in fake.requests]
    assert logged[-4:] == [
        ("GET", "/user", 429),
        ("GET", "/user", 429),
        ("GET", "/user", 200),
        ("GET", "/user", 502),
    ]


def test_requests_are_logged_with_their_query(fake: FakeGitLab, api: Api) -> None:
    api.get(f"{P}/issues?state=opened&per_page=5")
    last = fake.requests[-1]
    assert (last.method, last.path, last.query, last.status) == (
        "GET",
        f"{P}/issues",
        "state=opened&per_page=5",
        200,
    )
    assert api.get("/nothing/here").status == 404 and fake.requests[-1].status == 404


# -- the referee ------------------------------------------------------------------------------------------


def test_a_wrong_answer_fails_loudly(fake: FakeGitLab, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.open_issue(PROJECT, "Bug")
    issue = api.get(f"{P}/issues/1").body
    broken = {k: v for k, v in issue.items() if k != "iid"} | {"labels": "bug"}
    with pytest.raises(gitlab_spec.SpecError, match=r"iid.*required|labels"):
        gitlab_spec.check_answer("GET", "/projects/:id/issues/:issue_iid", 200, broken)
    with pytest.raises(gitlab_spec.SpecError, match="answers 201"):
        gitlab_spec.check_answer("POST", "/projects/:id/issues/:issue_iid/notes", 200, {})
    misspelt = dict(issue["_links"], notez="x")
    with pytest.raises(gitlab_spec.SpecError, match="notez"):
        gitlab_spec.check_answer("GET", "/projects/:id/issues/:issue_iid", 200, issue | {"_links": misspelt})
    original = type(fake.render).issue
    monkeypatch.setattr(type(fake.render), "issue", lambda self, p, i: original(self, p, i) | {"state": 7})
    answered = api.get(f"{P}/issues/1")
    assert answered.status == 500 and "does not match GitLab's types" in answered.body["message"]
    assert [v.kind for v in fake.violations] == ["response"]
    fake.violations.clear()


def test_a_wrong_webhook_fails_loudly(fake: FakeGitLab, monkeypatch: pytest.MonkeyPatch) -> None:
    original = type(fake.payloads).issue
    monkeypatch.setattr(
        type(fake.payloads), "issue", lambda self, *a: original(self, *a) | {"object_kind": "issues"}
    )
    with pytest.raises(SpecViolation, match="object_kind"):
        fake.open_issue(PROJECT, "Bug")
    monkeypatch.setattr(type(fake.payloads), "issue", lambda self, *a: {**original(self, *a), "labels": [{}]})
    with pytest.raises(SpecViolation, match="labels"):
        fake.open_issue(PROJECT, "Bug")
    assert [v.kind for v in fake.violations] == ["webhook", "webhook"]
    fake.violations.clear()


def test_a_stale_amendment_fails() -> None:
    types = gitlab_spec.types()
    found = {"gitbeaker:PipelineSchema": dict(types["gitbeaker:PipelineSchema"])}
    with pytest.raises(RuntimeError, match="changes nothing"):
        gitlab_spec.apply(
            found, Amendment("gitbeaker:PipelineSchema", "sha", "type", "already", {"type": "string"})
        )
    with pytest.raises(RuntimeError, match="does not apply"):
        gitlab_spec.apply(found, Amendment("gitbeaker:PipelineSchema", "nothing.here", "nullable", "absent"))


def test_the_published_types_say_what_they_lack() -> None:
    """The amendments exist because the packages lack what GitLab documents (a test that fails once a
    package catches up, so the table is revisited)."""
    types = gitlab_spec.types()
    detailed = types["gitbeaker:ExpandedMergeRequestSchema"]["properties"]["detailed_merge_status"]["enum"]
    assert "conflict" in detailed and "mergeable" in detailed
    assert {"events:NoteEvent", "gitbeaker:WebhookMergeRequestNoteEventSchema"} <= set(types)
