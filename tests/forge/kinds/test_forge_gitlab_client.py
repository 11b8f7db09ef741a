"""GitLabClient (and what it shares with the other forges' clients: ForgeHTTP) against
``httpx.MockTransport`` handlers that answer in GitLab's shapes: the fields of the response examples in
GitLab's REST API documentation (``doc/api/issues.md``, ``merge_requests.md``, ``notes.md``,
``discussions.md``, ``members.md``, ``pipelines.md``, ``jobs.md``, ``users.md``,
``personal_access_tokens.md``) and of its entities (``lib/api/entities/note.rb``: a diff note's
``position``; ``user.rb``: ``bot`` on ``/user`` alone), with GitLab's paging headers, ETags, error
bodies and rate-limit headers. Paths are checked as sent (``raw_path``: a project's full path is one
URL-encoded segment)."""

from __future__ import annotations

import json
import logging
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from baton.forge.data.model import Actor, Changed, ForgeError
from baton.forge.kinds.gitlab.client import GitLabClient, mergeable, role
from baton.forge.kinds.gitlab.pipelines import pipelines_etag
from baton.forge.kinds.gitlab.rest import actor, project_path
from baton.forge.kinds.gitlab.text import hunk_around, log_text
from baton.forge.kinds.http import RateLimited

WEB = "https://gitlab.example"
API = f"{WEB}/api/v4"
TOKEN = "glpat-s3cretT0kenThatMustNeverLeak"
REPO = "acme/platform/api"  # a project in a subgroup
P = f"/api/v4/projects/{quote(REPO, safe='')}"  # /api/v4/projects/acme%2Fplatform%2Fapi
PID = 42
SHA = "9c5a3f0d7b3c4e21a8f6d0b1c2e3f4a5b6c7d8e9"
BASE = "1b2c3d4e5f60718293a4b5c6d7e8f9012a3b4c5d"
T0 = "2026-11-26T10:00:00.000Z"
T0_EPOCH = 1_795_687_200.0

Answer = Any  # a JSON body, an httpx.Response, or a handler of the request


# -- GitLab's shapes --------------------------------------------------------------------------------------


def user(username: str = "alice", uid: int = 3, **extra: Any) -> dict[str, Any]:
    """A UserBasic (a note's, an issue's author): no ``bot`` flag."""
    return {
        "id": uid,
        "username": username,
        "name": username.title(),
        "state": "active",
        "locked": False,
        "avatar_url": f"https://secure.gravatar.com/avatar/{uid}?s=80&d=identicon",
        "web_url": f"{WEB}/{username}",
        **extra,
    }


def at(minute: int) -> str:
    return f"2026-11-26T10:{minute:02d}:00.000Z"


def issue(iid: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": 76_000 + iid,
        "iid": iid,
        "project_id": PID,
        "title": f"Issue {iid}",
        "description": "It breaks on nested groups.",
        "state": "opened",
        "created_at": T0,
        "updated_at": T0,
        "closed_at": None,
        "closed_by": None,
        "labels": ["bug"],
        "milestone": None,
        "assignees": [],
        "author": user(),
        "type": "ISSUE",
        "assignee": None,
        "user_notes_count": 1,
        "merge_requests_count": 0,
        "upvotes": 0,
        "downvotes": 0,
        "due_date": None,
        "confidential": False,
        "discussion_locked": None,
        "issue_type": "issue",
        "web_url": f"{WEB}/{REPO}/-/issues/{iid}",
        "time_stats": {"time_estimate": 0, "total_time_spent": 0},
        "task_completion_status": {"count": 0, "completed_count": 0},
        "references": {"short": f"#{iid}", "relative": f"#{iid}", "full": f"{REPO}#{iid}"},
        "severity": "UNKNOWN",
        "has_tasks": False,
        **extra,
    }


def merge_request(iid: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": 91_000 + iid,
        "iid": iid,
        "project_id": PID,
        "title": f"Fix {iid}",
        "description": "Closes #3",
        "state": "opened",
        "created_at": T0,
        "updated_at": T0,
        "merged_by": None,
        "merge_user": None,
        "merged_at": None,
        "closed_by": None,
        "closed_at": None,
        "target_branch": "main",
        "source_branch": "baton/issue-3",
        "user_notes_count": 2,
        "upvotes": 0,
        "downvotes": 0,
        "author": user("baton-bot", 9),
        "assignees": [],
        "assignee": None,
        "reviewers": [],
        "source_project_id": PID,
        "target_project_id": PID,
        "labels": ["baton"],
        "draft": False,
        "work_in_progress": False,
        "milestone": None,
        "merge_when_pipeline_succeeds": False,
        "merge_status": "can_be_merged",
        "detailed_merge_status": "mergeable",
        "sha": SHA,
        "merge_commit_sha": None,
        "squash_commit_sha": None,
        "discussion_locked": None,
        "should_remove_source_branch": None,
        "force_remove_source_branch": True,
        "reference": f"!{iid}",
        "references": {"short": f"!{iid}", "relative": f"!{iid}", "full": f"{REPO}!{iid}"},
        "web_url": f"{WEB}/{REPO}/-/merge_requests/{iid}",
        "time_stats": {"time_estimate": 0, "total_time_spent": 0},
        "squash": False,
        "squash_on_merge": False,
        "task_completion_status": {"count": 0, "completed_count": 0},
        "has_conflicts": False,
        "blocking_discussions_resolved": True,
        "subscribed": False,
        "changes_count": "1",
        "latest_build_started_at": None,
        "latest_build_finished_at": None,
        "first_deployed_to_production_at": None,
        "pipeline": None,
        "head_pipeline": None,
        "diff_refs": {"base_sha": BASE, "head_sha": SHA, "start_sha": BASE},
        "merge_error": None,
        "first_contribution": False,
        "user": {"can_merge": True},
        **extra,
    }


def note(
    nid: int, body: str, *, who: dict[str, Any] | None = None, minute: int = 0, **extra: Any
) -> dict[str, Any]:
    """A note as the Notes API lists it (an issue's unless ``noteable_type`` says otherwise)."""
    return {
        "id": nid,
        "type": None,
        "body": body,
        "attachment": None,
        "author": who or user(),
        "created_at": at(minute),
        "updated_at": at(minute),
        "system": False,
        "noteable_id": 76_003,
        "noteable_type": "Issue",
        "project_id": PID,
        "resolvable": False,
        "confidential": False,
        "internal": False,
        "imported": False,
        "imported_from": "none",
        "noteable_iid": 3,
        "commands_changes": {},
        **extra,
    }


def diff_note(
    nid: int, body: str, path: str, new_line: int | None, old_line: int | None = None, **extra: Any
) -> dict[str, Any]:
    """A DiffNote of merge request !7: its ``position`` (lib/api/entities/note.rb) and ``commit_id``."""
    position = {
        "base_sha": BASE,
        "start_sha": BASE,
        "head_sha": SHA,
        "old_path": path,
        "new_path": path,
        "position_type": "text",
        "old_line": old_line,
        "new_line": new_line,
        "line_range": None,
    }
    fields: dict[str, Any] = {
        "type": "DiffNote",
        "noteable_id": 91_007,
        "noteable_type": "MergeRequest",
        "noteable_iid": 7,
        "commit_id": SHA,
        "position": position,
        "resolvable": True,
        "resolved": False,
        "resolved_by": None,
        "resolved_at": None,
        "who": user("bob", 4),
    }
    fields.update(extra)
    return note(nid, body, **fields)


def pipeline(
    pid: int, status: str, *, ref: str = "baton/issue-3", source: str = "push", sha: str = SHA
) -> dict[str, Any]:
    return {
        "id": pid,
        "iid": pid - 1000,
        "project_id": PID,
        "sha": sha,
        "ref": ref,
        "status": status,
        "source": source,
        "created_at": T0,
        "updated_at": T0,
        "web_url": f"{WEB}/{REPO}/-/pipelines/{pid}",
        "name": None,
    }


def job(jid: int, name: str, stage: str = "test", status: str = "failed", **extra: Any) -> dict[str, Any]:
    return {
        "commit": {
            "id": SHA,
            "short_id": SHA[:8],
            "title": "Fix it",
            "author_name": "Baton",
            "created_at": T0,
        },
        "coverage": None,
        "archived": False,
        "allow_failure": False,
        "created_at": T0,
        "started_at": T0,
        "finished_at": T0,
        "erased_at": None,
        "duration": 81.2,
        "queued_duration": 0.4,
        "artifacts_file": None,
        "artifacts": [],
        "artifacts_expire_at": None,
        "tag_list": ["docker"],
        "id": jid,
        "name": name,
        "pipeline": {"id": 5001, "project_id": PID, "ref": "baton/issue-3", "sha": SHA, "status": "failed"},
        "ref": "baton/issue-3",
        "runner": None,
        "runner_manager": None,
        "stage": stage,
        "status": status,
        "failure_reason": "script_failure" if status == "failed" else None,
        "tag": False,
        "web_url": f"{WEB}/{REPO}/-/jobs/{jid}",
        "project": {"ci_job_token_scope_enabled": False},
        "user": user("baton-bot", 9),
        **extra,
    }


def member(uid: int, access_level: int, **extra: Any) -> dict[str, Any]:
    return {
        **user("carol", uid),
        "access_level": access_level,
        "created_at": T0,
        "created_by": user("root", 1),
        "expires_at": None,
        "group_saml_identity": None,
        "membership_state": "active",
        **extra,
    }


GITLAB_LOG = (
    "\x1b[0KRunning with gitlab-runner 17.5.0 (c7a8bd21)\x1b[0;m\n"
    "\x1b[0K  on docker-runner t3_abc, system ID: s_0e1f\x1b[0;m\n"
    "section_start:1795687200:prepare_executor\r\x1b[0K"
    '\x1b[0K\x1b[36;1mPreparing the "docker" executor\x1b[0;m\x1b[0;m\n'
    "section_end:1795687201:prepare_executor\r\x1b[0K\n"
    "\x1b[0Ksection_start:1795687202:step_script[collapsed=true]\r\x1b[0K"
    '\x1b[0K\x1b[36;1mExecuting "step_script"\x1b[0;m\n'
    "\x1b[32;1m$ pytest -q\x1b[0;m\n"
    "Downloading  10%\rDownloading  55%\rDownloading 100%\r\n"
    "FAILED tests/test_paths.py::test_nested - AssertionError\n"
    "section_end:1795687260:step_script\r\x1b[0K\n"
    "\x1b[31;1mERROR: Job failed: exit code 1\n\x1b[0;m\n"
)


# -- the transport ----------------------------------------------------------------------------------------


class GitLab:
    """A MockTransport over routes ``(method, raw path) -> answer``; it records every request. An unknown
    route is GitLab's 404."""

    def __init__(self, routes: dict[tuple[str, str], Answer] | None = None) -> None:
        self.routes: dict[tuple[str, str], Answer] = dict(routes or {})
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.routes.get((request.method, request.url.raw_path.decode().split("?")[0]))
        if answer is None:
            return httpx.Response(404, json={"message": "404 Not found"})
        if callable(answer):
            response: httpx.Response = answer(request)
            return response
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer, headers={"etag": 'W/"0f1e2d"'})

    def client(self, **kwargs: Any) -> GitLabClient:
        return GitLabClient(
            API, TOKEN, transport=httpx.MockTransport(self), sleep=self.sleeps.append, **kwargs
        )

    def paths(self) -> list[str]:
        return [r.url.raw_path.decode().split("?")[0] for r in self.requests]


def paged(pages: list[list[Any]], headers: str = "gitlab") -> Callable[[httpx.Request], httpx.Response]:
    """A GitLab list across pages: ``page`` asked, GitLab's ``X-Page``/``X-Next-Page``/``X-Total``
    and ``Link`` headers answered (``headers="link"``: the ``Link`` header alone, as behind a proxy
    that drops the others)."""

    def handle(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        items = pages[page - 1] if page <= len(pages) else []
        following = str(page + 1) if page < len(pages) else ""
        url = request.url.copy_set_param("page", following)
        link = f'<{url}>; rel="next", ' if following else ""
        link += f'<{request.url.copy_set_param("page", "1")}>; rel="first"'
        found = {"link": link}
        if headers == "gitlab":
            found |= {
                "x-page": str(page),
                "x-next-page": following,
                "x-per-page": request.url.params.get("per_page", "20"),
                "x-total": str(sum(len(p) for p in pages)),
                "x-total-pages": str(len(pages)),
            }
        return httpx.Response(200, json=items, headers=found)

    return handle


@pytest.fixture
def gitlab() -> GitLab:
    return GitLab()


# -- addresses, who ---------------------------------------------------------------------------------------


def test_a_nested_project_is_one_encoded_segment_and_bad_paths_are_refused(gitlab: GitLab) -> None:
    gitlab.routes[("GET", P)] = {"id": PID, "path_with_namespace": REPO, "default_branch": "trunk"}
    with gitlab.client() as client:
        assert client.default_branch(REPO) == "trunk"
        for bad in (
            "api",
            "acme//api",
            "acme/../etc",
            "acme/api.git",
            "-acme/api",
            "acme/a b",
            "/acme/api",
            "acme/",
        ):
            with pytest.raises(ForgeError, match="not a GitLab project's full path"):
                client.default_branch(bad)
    assert gitlab.paths() == ["/api/v4/projects/acme%2Fplatform%2Fapi"]
    assert gitlab.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert project_path("a/b/c/d") == "/projects/a%2Fb%2Fc%2Fd"


def test_an_empty_project_has_no_default_branch(gitlab: GitLab) -> None:
    gitlab.routes[("GET", P)] = {"id": PID, "path_with_namespace": REPO, "default_branch": None}
    with gitlab.client() as client, pytest.raises(ForgeError, match="no default branch"):
        client.default_branch(REPO)


@pytest.mark.parametrize(
    ("level", "permission"),
    [
        (50, "admin"),
        (40, "maintain"),
        (30, "write"),
        (20, "triage"),
        (15, "triage"),
        (10, "read"),
        (5, "none"),
    ],
)
def test_access_levels_are_the_trust_policys_permissions(gitlab: GitLab, level: int, permission: str) -> None:
    gitlab.routes[("GET", "/api/v4/users")] = [user("carol", 12)]
    gitlab.routes[("GET", f"{P}/members/all/12")] = member(12, level)
    with gitlab.client() as client:
        assert client.permission(REPO, "carol") == permission
        assert client.access_level(REPO, "Carol") == level
    # the user's id is asked once (GitLab's usernames are one in any case)
    assert gitlab.paths() == ["/api/v4/users", f"{P}/members/all/12", f"{P}/members/all/12"]
    assert gitlab.requests[0].url.params["username"] == "carol"


def test_no_member_no_user_or_no_active_membership_is_none(gitlab: GitLab) -> None:
    gitlab.routes[("GET", "/api/v4/users")] = lambda r: httpx.Response(
        200, json=[user("dave", 13)] if r.url.params["username"] == "dave" else []
    )
    gitlab.routes[("GET", f"{P}/members/all/13")] = httpx.Response(404, json={"message": "404 Not found"})
    with gitlab.client() as client:
        assert client.permission(REPO, "dave") == "none"  # not a member (a public project's reader too)
        assert client.permission(REPO, "nobody") == "none"  # GitLab knows no such user: []
        gitlab.routes[("GET", f"{P}/members/all/13")] = member(13, 30, membership_state="awaiting")
        assert client.permission(REPO, "dave") == "none"
        gitlab.routes[("GET", f"{P}/members/all/13")] = member(13, 40, state="blocked")
        assert client.permission(REPO, "dave") == "none"
    assert f"{P}/members/all/None" not in gitlab.paths() and gitlab.paths().count("/api/v4/users") == 2


def test_a_users_id_is_asked_again_after_a_minute_a_renamed_name_is_anothers(gitlab: GitLab) -> None:
    now = [T0_EPOCH]
    holder = [user("alice", 12)]
    gitlab.routes[("GET", "/api/v4/users")] = lambda r: httpx.Response(200, json=holder)
    gitlab.routes[("GET", f"{P}/members/all/12")] = member(12, 40)
    gitlab.routes[("GET", f"{P}/members/all/99")] = httpx.Response(404, json={"message": "404 Not found"})
    with gitlab.client(clock=lambda: now[0]) as client:
        assert client.permission(REPO, "alice") == "maintain"
        holder[0] = user("alice", 99)  # alice renamed herself; someone else took the name
        now[0] += 30
        assert client.permission(REPO, "alice") == "maintain"  # within the trust policy's own minute
        now[0] += 31
        assert client.permission(REPO, "alice") == "none"
    assert gitlab.paths().count("/api/v4/users") == 2


def test_a_project_that_is_not_there_is_an_error_not_a_stranger(gitlab: GitLab) -> None:
    gitlab.routes[("GET", "/api/v4/users")] = [user("carol", 12)]
    gitlab.routes[("GET", f"{P}/members/all/12")] = httpx.Response(
        404, json={"message": "404 Project Not Found"}
    )
    with gitlab.client() as client, pytest.raises(ForgeError) as caught:
        client.permission(REPO, "carol")
    assert caught.value.status == 404 and "no project" in str(caught.value)


def test_whoami_and_the_tokens_scopes(gitlab: GitLab) -> None:
    gitlab.routes[("GET", "/api/v4/user")] = {
        **user("project_42_bot_5f1c0e9a8b7d6c5e4f3a2b1c0d9e8f7a", 77),
        "created_at": T0,
        "bio": "",
        "public_email": None,
        "bot": True,
        "is_admin": False,
    }
    gitlab.routes[("GET", "/api/v4/personal_access_tokens/self")] = {
        "id": 8,
        "name": "baton",
        "revoked": False,
        "created_at": T0,
        "description": "the forge loop",
        "scopes": ["api", "write_repository"],
        "user_id": 77,
        "last_used_at": T0,
        "active": True,
        "expires_at": "2027-11-26",
    }
    with gitlab.client() as client:
        me = client.whoami()
        token = client.token_scopes()
    assert (me.login, me.id, me.bot) == ("project_42_bot_5f1c0e9a8b7d6c5e4f3a2b1c0d9e8f7a", 77, True)
    assert token.scopes == ("api", "write_repository") and token.expires_at == "2027-11-26" and token.active


def hook(hid: int, url: str, **flags: Any) -> dict[str, Any]:
    """A project hook as ``GET /projects/:id/hooks`` lists it (``doc/api/project_webhooks.md``)."""
    events = {
        "push_events": False,
        "tag_push_events": False,
        "merge_requests_events": False,
        "repository_update_events": False,
        "enable_ssl_verification": True,
        "issues_events": False,
        "confidential_issues_events": False,
        "note_events": False,
        "confidential_note_events": None,
        "pipeline_events": False,
        "wiki_page_events": False,
        "deployment_events": False,
        "job_events": False,
        "releases_events": False,
        "emoji_events": False,
        "resource_access_token_events": False,
    }
    return {
        "id": hid,
        "url": url,
        "name": "baton",
        "description": "",
        "project_id": PID,
        "push_events_branch_filter": "",
        "branch_filter_strategy": "wildcard",
        "custom_webhook_template": "",
        "alert_status": "executable",
        "disabled_until": None,
        "url_variables": [],
        "created_at": T0,
        **events,
        **flags,
    }


def test_the_projects_webhooks_and_their_event_flags(gitlab: GitLab) -> None:
    on = {"note_events": True, "issues_events": True, "pipeline_events": True}
    gitlab.routes[("GET", f"{P}/hooks")] = [
        hook(
            1, "https://baton.example.com/webhooks/gitlab", merge_requests_events=True, push_events=True, **on
        ),
        hook(2, "https://old.example.com/webhooks/gitlab", alert_status="disabled", **on),
        hook(3, "https://chat.example.com/hook", push_events=True),
    ]
    with gitlab.client() as client:
        hooks = client.webhooks(REPO)
    assert hooks == [
        (
            "https://baton.example.com/webhooks/gitlab",
            frozenset(
                {"push_events", "merge_requests_events", "issues_events", "note_events", "pipeline_events"}
            ),
        ),
        ("https://chat.example.com/hook", frozenset({"push_events"})),
    ]


@pytest.mark.parametrize(
    ("who", "bot"),
    [
        (user("alice"), False),
        (user("project_42_bot_5f1c0e9a8b7d6c5e4f3a2b1c0d9e8f7a"), True),
        (user("project_42_bot"), True),
        (user("group_7_bot_0a1b2c3d4e5f67890a1b2c3d4e5f6789"), True),
        (user("service_account_group_7_0a1b2c3d"), True),
        (user("ghost", 2, name="Ghost User"), True),  # a deleted user's notes
        (user("GitLab-Security-Bot"), True),
        (user("support-bot1"), True),
        (user("renovate", bot=True), True),  # /user's and /users' flag
        (user("renovate-bot"), True),  # as the webhook intake reads it
        (user("project_manager"), False),
        (None, True),
    ],
)
def test_actors_and_gitlabs_bots(who: dict[str, Any] | None, bot: bool) -> None:
    found = actor(who)
    assert found.bot is bot and found.login == (who["username"] if who else "ghost")


# -- threads: two number spaces ---------------------------------------------------------------------------


def test_issue_3_and_merge_request_3_are_two_threads(gitlab: GitLab) -> None:
    gitlab.routes[("GET", f"{P}/issues/3")] = issue(3, labels=["bug", "baton"])
    gitlab.routes[("GET", f"{P}/merge_requests/3")] = merge_request(3, title="Draft: Fix 3", draft=True)
    with gitlab.client() as client:
        found_issue = client.thread(REPO, 3)
        found_mr = client.thread(REPO, 3, pr=True)
    assert (found_issue.is_pr, found_issue.title, found_issue.state, found_issue.labels) == (
        False,
        "Issue 3",
        "open",
        ("bug", "baton"),
    )
    assert found_issue.url == f"{WEB}/{REPO}/-/issues/3" and found_issue.author == Actor("alice")
    assert found_issue.body == "It breaks on nested groups."
    assert (
        found_mr.is_pr and found_mr.title == "Draft: Fix 3" and found_mr.url.endswith("/-/merge_requests/3")
    )
    assert (found_mr.head_sha, found_mr.head_ref, found_mr.base_ref) == (SHA, "baton/issue-3", "main")
    assert (found_mr.mergeable, found_mr.from_fork, found_mr.head_clone_url, found_mr.merged) == (
        True,
        False,
        None,
        False,
    )
    assert gitlab.paths() == [f"{P}/issues/3", f"{P}/merge_requests/3"]


@pytest.mark.parametrize(
    ("state", "shown", "merged"),
    [
        ("opened", "open", False),
        ("closed", "closed", False),
        ("merged", "closed", True),
        ("locked", "open", False),
    ],
)
def test_merge_request_states(gitlab: GitLab, state: str, shown: str, merged: bool) -> None:
    gitlab.routes[("GET", f"{P}/merge_requests/7")] = merge_request(7, state=state)
    with gitlab.client() as client:
        info = client.thread(REPO, 7, pr=True)
    assert (info.state, info.merged) == (shown, merged)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"detailed_merge_status": "mergeable"}, True),
        ({"detailed_merge_status": "ci_must_pass"}, True),
        ({"detailed_merge_status": "draft_status"}, True),
        ({"detailed_merge_status": "not_approved"}, True),
        (
            {"detailed_merge_status": "conflict", "has_conflicts": True, "merge_status": "cannot_be_merged"},
            False,
        ),
        ({"detailed_merge_status": "broken_status"}, False),
        ({"detailed_merge_status": "checking", "merge_status": "checking"}, None),
        ({"detailed_merge_status": "unchecked", "merge_status": "unchecked"}, None),
        ({"detailed_merge_status": "preparing", "merge_status": "preparing"}, None),
        ({"detailed_merge_status": "approvals_syncing"}, None),
        # a GitLab before 15.6: merge_status alone
        ({"detailed_merge_status": None, "merge_status": "cannot_be_merged", "has_conflicts": True}, False),
        ({"detailed_merge_status": None, "merge_status": "cannot_be_merged_recheck"}, None),
        ({"detailed_merge_status": None, "merge_status": "can_be_merged"}, True),
        ({"state": "merged", "detailed_merge_status": "not_open"}, None),
    ],
)
def test_mergeable_from_the_merge_status(fields: dict[str, Any], expected: bool | None) -> None:
    assert mergeable(merge_request(7, **fields)) is expected


def test_a_fork_merge_request_names_the_forks_clone_url_when_it_can_be_seen(gitlab: GitLab) -> None:
    gitlab.routes[("GET", f"{P}/merge_requests/8")] = merge_request(
        8, source_project_id=4242, author=user("mallory", 66)
    )
    gitlab.routes[("GET", "/api/v4/projects/4242")] = {
        "id": 4242,
        "path_with_namespace": "mallory/api",
        "default_branch": "main",
        "http_url_to_repo": f"{WEB}/mallory/api.git",
        "ssh_url_to_repo": "git@gitlab.example:mallory/api.git",
        "web_url": f"{WEB}/mallory/api",
        "forked_from_project": {"id": PID, "path_with_namespace": REPO},
    }
    with gitlab.client() as client:
        fork = client.thread(REPO, 8, pr=True)
        gitlab.routes[("GET", "/api/v4/projects/4242")] = httpx.Response(
            404, json={"message": "404 Project Not Found"}
        )
        hidden = client.thread(REPO, 8, pr=True)
    assert (
        fork.from_fork and fork.head_clone_url == f"{WEB}/mallory/api.git" and fork.author == Actor("mallory")
    )
    assert hidden.from_fork and hidden.head_clone_url is None


def test_updated_since_reads_issues_and_merge_requests_every_page(gitlab: GitLab) -> None:
    gitlab.routes[("GET", f"{P}/issues")] = paged([[issue(i) for i in (1, 2)], [issue(3)]])
    gitlab.routes[("GET", f"{P}/merge_requests")] = paged(
        [[merge_request(3, state="merged")]], headers="link"
    )
    with gitlab.client() as client:
        found = client.updated_since(REPO, T0_EPOCH)
    assert [(t.number, t.is_pr) for t in found] == [(1, False), (2, False), (3, False), (3, True)]
    assert found[-1].merged and found[-1].state == "closed" and found[-1].head_sha == SHA
    first = dict(gitlab.requests[0].url.params)
    assert first == {
        "updated_after": "2026-11-26T10:00:00Z",
        "scope": "all",
        "order_by": "updated_at",
        "sort": "asc",
        "per_page": "100",
        "page": "1",
    }
    assert gitlab.requests[1].url.params["page"] == "2" and len(gitlab.requests) == 3
    assert dict(gitlab.requests[2].url.params)["state"] == "all"


def test_paging_by_the_link_header_alone_and_a_page_that_repeats_ends(gitlab: GitLab) -> None:
    gitlab.routes[("GET", f"{P}/issues")] = paged([[issue(1)], [issue(2)], [issue(3)]], headers="link")
    gitlab.routes[("GET", f"{P}/merge_requests")] = lambda r: httpx.Response(
        200, json=[merge_request(1)], headers={"x-next-page": "1", "x-page": "1"}
    )
    with gitlab.client() as client:
        found = client.updated_since(REPO, 0)
    assert [t.number for t in found] == [1, 2, 3, 1] and len(gitlab.requests) == 4


# -- conversation -----------------------------------------------------------------------------------------


def test_comments_are_read_newest_first_and_no_further_than_since(gitlab: GitLab) -> None:
    gitlab.routes[("GET", f"{P}/issues/3/notes")] = paged(
        [
            [
                note(305, "@baton also the docs", minute=9),
                note(304, "added ~bug label", minute=8, system=True),
                note(303, "old words", who=user("ghost", 2, name="Ghost User"), minute=7),
                note(302, "@baton please", minute=5),
            ],
            [note(301, "long ago", minute=1)],
        ]
    )
    with gitlab.client() as client:
        recent = client.comments(REPO, 3, since=T0_EPOCH + 7 * 60)
        everything = client.comments(REPO, 3)
    assert [(c.id, c.author.login, c.author.bot) for c in recent] == [
        (303, "ghost", True),
        (305, "alice", False),
    ]
    assert recent[1].url == f"{WEB}/{REPO}/-/issues/3#note_305" and recent[1].at == T0_EPOCH + 9 * 60
    assert [c.id for c in everything] == [301, 302, 303, 305]
    assert dict(gitlab.requests[0].url.params) == {
        "sort": "desc",
        "order_by": "created_at",
        "per_page": "100",
        "page": "1",
    }
    assert len(gitlab.requests) == 1 + 2  # the first read stopped at its first older note


def test_a_merge_requests_comments_leave_its_diff_notes_to_reviews(gitlab: GitLab) -> None:
    gitlab.routes[("GET", f"{P}/merge_requests/7/notes")] = [
        diff_note(1130, "rename this", "src/paths.py", 12, minute=6),
        note(1129, "reply to the discussion", type="DiscussionNote", noteable_type="MergeRequest", minute=5),
        note(1128, "a single comment", noteable_type="MergeRequest", minute=4),
    ]
    with gitlab.client() as client:
        found = client.comments(REPO, 7, pr=True)
    assert [c.id for c in found] == [1128, 1129]
    assert found[0].url == f"{WEB}/{REPO}/-/merge_requests/7#note_1128"
    assert gitlab.paths() == [f"{P}/merge_requests/7/notes"]


DIFF = "\n".join(
    [
        "@@ -1,4 +1,5 @@",
        " import os",
        "+import re",
        " ",
        " def split(path):",
        "     return path.split('/')",
        "@@ -20,6 +21,6 @@ def join(parts):",
        " def nested(path):",
        "-    return path.count('/') > 1",
        "+    return path.count('/') >= 2",
        " ",
        " ",
        " # end",
        "",
    ]
)


def test_reviews_are_the_diff_notes_with_the_lines_that_end_at_theirs(gitlab: GitLab) -> None:
    gitlab.routes[("GET", f"{P}/merge_requests/7/notes")] = [
        diff_note(1133, "and here", "src/paths.py", None, 21, minute=8),  # on the removed line
        diff_note(1132, "why re?", "src/paths.py", 2, None, minute=7),
        note(1131, "general remark", noteable_type="MergeRequest", minute=6),
        diff_note(1120, "older", "README.md", 1, 1, minute=1),
    ]
    gitlab.routes[("GET", f"{P}/merge_requests/7/diffs")] = paged(
        [
            [
                {
                    "old_path": "README.md",
                    "new_path": "README.md",
                    "diff": "@@ -1 +1 @@\n-a\n+b\n",
                    "new_file": False,
                    "deleted_file": False,
                    "renamed_file": False,
                }
            ],
            [
                {
                    "old_path": "src/paths.py",
                    "new_path": "src/paths.py",
                    "diff": DIFF,
                    "new_file": False,
                    "deleted_file": False,
                    "renamed_file": False,
                }
            ],
        ]
    )
    with gitlab.client() as client:
        reviews = client.reviews(REPO, 7, since=T0_EPOCH + 5 * 60)
    assert [(r.id, r.state, r.commit, r.author.login, r.body) for r in reviews] == [
        (1132, "COMMENTED", SHA, "bob", ""),
        (1133, "COMMENTED", SHA, "bob", ""),
    ]
    first, second = reviews[0].comments[0], reviews[1].comments[0]
    assert (first.id, first.path, first.line, first.body) == (1132, "src/paths.py", 2, "why re?")
    assert first.diff_hunk == "@@ -1,4 +1,5 @@\n import os\n+import re"
    assert second.line == 21 and second.diff_hunk.endswith(
        " def nested(path):\n-    return path.count('/') > 1"
    )
    assert first.url == reviews[0].url == f"{WEB}/{REPO}/-/merge_requests/7#note_1132"
    assert reviews[0].at == T0_EPOCH + 7 * 60
    # the diffs are read once, for both notes, and no further than the page that had the file
    assert gitlab.paths().count(f"{P}/merge_requests/7/diffs") == 2


def test_a_look_reads_a_merge_requests_notes_once_for_comments_and_reviews(gitlab: GitLab) -> None:
    gitlab.routes[("GET", f"{P}/merge_requests/7/notes")] = [
        diff_note(1132, "why re?", "src/paths.py", 2, minute=7),
        note(1131, "general remark", noteable_type="MergeRequest", minute=6),
    ]
    gitlab.routes[("GET", f"{P}/merge_requests/7/diffs")] = [
        {
            "old_path": "src/paths.py",
            "new_path": "src/paths.py",
            "diff": DIFF,
            "new_file": False,
            "deleted_file": False,
            "renamed_file": False,
        }
    ]
    since = T0_EPOCH + 60
    with gitlab.client() as client:
        comments = client.comments(REPO, 7, since, pr=True)
        reviews = client.reviews(REPO, 7, since=since)
        again = client.reviews(REPO, 7, since=since)  # not kept twice: asked again
    assert [c.id for c in comments] == [1131] and [r.id for r in reviews] == [1132] == [r.id for r in again]
    assert gitlab.paths() == [
        f"{P}/merge_requests/7/notes",
        f"{P}/merge_requests/7/diffs",
        f"{P}/merge_requests/7/notes",
        f"{P}/merge_requests/7/diffs",
    ]


def test_no_diff_note_reads_no_diff_and_an_unreadable_diff_leaves_the_hunk_empty(gitlab: GitLab) -> None:
    gitlab.routes[("GET", f"{P}/merge_requests/7/notes")] = [
        note(1131, "general", noteable_type="MergeRequest")
    ]
    with gitlab.client() as client:
        assert client.reviews(REPO, 7) == []
        gitlab.routes[("GET", f"{P}/merge_requests/7/notes")] = [
            diff_note(1132, "why re?", "src/paths.py", 2)
        ]
        gitlab.routes[("GET", f"{P}/merge_requests/7/diffs")] = httpx.Response(
            403, json={"message": "403 Forbidden"}
        )
        (review,) = client.reviews(REPO, 7)
    assert review.comments[0].diff_hunk == "" and review.comments[0].line == 2
    assert f"{P}/merge_requests/7/changes" not in gitlab.paths()


def test_an_older_gitlab_without_diffs_gives_its_changes(gitlab: GitLab) -> None:
    gitlab.routes[("GET", f"{P}/merge_requests/7/notes")] = [diff_note(1132, "why re?", "src/paths.py", 2)]
    gitlab.routes[("GET", f"{P}/merge_requests/7/changes")] = {
        **merge_request(7),
        "changes": [{"old_path": "src/paths.py", "new_path": "src/paths.py", "diff": DIFF}],
    }
    with gitlab.client() as client:
        (review,) = client.reviews(REPO, 7)
    assert review.comments[0].diff_hunk.endswith("+import re")


def test_post_and_edit_a_note_on_an_issue_or_a_merge_request(gitlab: GitLab) -> None:
    gitlab.routes[("POST", f"{P}/issues/3/notes")] = httpx.Response(201, json=note(310, "on it"))
    gitlab.routes[("POST", f"{P}/merge_requests/3/notes")] = httpx.Response(
        201, json=note(311, "pushed", noteable_type="MergeRequest")
    )
    gitlab.routes[("PUT", f"{P}/merge_requests/3/notes/311")] = note(
        311, "pushed again", noteable_type="MergeRequest"
    )
    with gitlab.client() as client:
        assert client.post_comment(REPO, 3, "on it") == 310
        assert client.post_comment(REPO, 3, "pushed", pr=True) == 311
        client.edit_comment(REPO, 311, "pushed again", number=3, pr=True)
        with pytest.raises(ForgeError, match="under its issue or merge request"):
            client.edit_comment(REPO, 311, "lost")
    assert [json.loads(r.content) for r in gitlab.requests] == [
        {"body": "on it"},
        {"body": "pushed"},
        {"body": "pushed again"},
    ]
    assert gitlab.paths()[-1] == f"{P}/merge_requests/3/notes/311" and len(gitlab.requests) == 3


def test_open_a_draft_merge_request_or_find_the_open_one(gitlab: GitLab) -> None:
    gitlab.routes[("POST", f"{P}/merge_requests")] = httpx.Response(
        201, json=merge_request(9, title="Draft: Fix it")
    )
    with gitlab.client() as client:
        assert client.open_pr(REPO, "baton/issue-3", "main", "Fix it", "Closes #3", draft=True) == (
            9,
            f"{WEB}/{REPO}/-/merge_requests/9",
        )
        assert json.loads(gitlab.requests[0].content) == {
            "source_branch": "baton/issue-3",
            "target_branch": "main",
            "title": "Draft: Fix it",
            "description": "Closes #3",
        }
        gitlab.routes[("POST", f"{P}/merge_requests")] = httpx.Response(
            409, json={"message": ["Another open merge request already exists for this source branch: !7"]}
        )
        gitlab.routes[("GET", f"{P}/merge_requests")] = [merge_request(7)]
        assert client.open_pr(REPO, "baton/issue-3", "main", "Draft: Fix it", "", draft=True) == (
            7,
            f"{WEB}/{REPO}/-/merge_requests/7",
        )
        assert json.loads(gitlab.requests[1].content)["title"] == "Draft: Fix it"  # not "Draft: Draft: "
        assert dict(gitlab.requests[2].url.params) == {
            "source_branch": "baton/issue-3",
            "target_branch": "main",
            "state": "opened",
            "per_page": "1",
        }
        gitlab.routes[("GET", f"{P}/merge_requests")] = []
        with pytest.raises(ForgeError) as caught:
            client.open_pr(REPO, "baton/issue-3", "main", "Fix it", "", draft=False)
    assert caught.value.status == 409
    assert str(caught.value) == (
        f"GitLab answered 409 to POST /api/v4/projects/{REPO}/merge_requests: "
        "Another open merge request already exists for this source branch: !7"
    )


def test_gitlabs_error_shapes_are_read_into_words(gitlab: GitLab) -> None:
    gitlab.routes[("POST", f"{P}/merge_requests")] = httpx.Response(
        400, json={"message": {"title": ["can't be blank"], "target_branch": ["is invalid"]}}
    )
    gitlab.routes[("GET", P)] = httpx.Response(
        401,
        json={
            "error": "invalid_token",
            "error_description": "Token is expired. You can either do re-authorization or token refresh.",
        },
    )
    with gitlab.client() as client:
        with pytest.raises(ForgeError, match="title can't be blank; target_branch is invalid"):
            client.open_pr(REPO, "x", "main", "", "", draft=False)
        with pytest.raises(ForgeError, match="invalid_token: Token is expired"):
            client.default_branch(REPO)


# -- pipelines --------------------------------------------------------------------------------------------


def test_checks_changed_is_one_conditional_request(gitlab: GitLab) -> None:
    def pipelines(request: httpx.Request) -> httpx.Response:
        if request.headers.get("if-none-match") == 'W/"a1b2"':
            return httpx.Response(304)
        return httpx.Response(200, json=[pipeline(5001, "running")], headers={"etag": 'W/"a1b2"'})

    gitlab.routes[("GET", f"{P}/pipelines")] = pipelines
    with gitlab.client() as client:
        assert client.checks_changed(REPO, SHA, None) == Changed(True, 'W/"a1b2"')
        assert client.checks_changed(REPO, SHA, 'W/"a1b2"') == Changed(False, 'W/"a1b2"')
    assert dict(gitlab.requests[0].url.params) == {"sha": SHA, "per_page": "20"}
    assert gitlab.requests[1].headers["if-none-match"] == 'W/"a1b2"'


def test_without_an_etag_the_client_makes_its_own(gitlab: GitLab) -> None:
    listed = [pipeline(5001, "running")]
    gitlab.routes[("GET", f"{P}/pipelines")] = lambda r: httpx.Response(200, json=listed)
    with gitlab.client() as client:
        first = client.checks_changed(REPO, SHA, None)
        same = client.checks_changed(REPO, SHA, first.etag)
        listed[0] = {**listed[0], "status": "failed", "updated_at": at(5)}
        moved = client.checks_changed(REPO, SHA, first.etag)
    assert first.changed and first.etag == pipelines_etag([pipeline(5001, "running")])
    assert same == Changed(False, first.etag) and moved.changed and moved.etag != first.etag


def failing_gitlab(log: Answer = GITLAB_LOG) -> GitLab:
    """A head with a retried branch pipeline (the newer failed), a failed merge request pipeline, a
    canceled child pipeline and another commit's pipeline the server listed anyway."""
    return GitLab(
        {
            ("GET", f"{P}/pipelines"): [
                pipeline(5004, "canceled", source="parent_pipeline"),
                pipeline(5003, "failed", ref="refs/merge-requests/7/head", source="merge_request_event"),
                pipeline(5002, "failed"),
                pipeline(5001, "success"),  # older than 5002 on the same ref: replaced by it
                pipeline(4999, "failed", sha=BASE),
            ],
            ("GET", f"{P}/pipelines/5002/jobs"): [
                job(7001, "pytest"),
                job(7002, "lint", allow_failure=True),  # allowed to fail: no failure
                job(7003, "e2e", failure_reason="job_execution_timeout"),
                job(7004, "runner", failure_reason="runner_system_failure"),
            ],
            ("GET", f"{P}/pipelines/5003/jobs"): [job(7101, "pytest")],  # the same job in the MR's pipeline
            ("GET", f"{P}/pipelines/5004/jobs"): [job(7201, "deploy-docs", stage="docs", status="canceled")],
            ("GET", f"{P}/jobs/7001/trace"): log
            if not isinstance(log, str)
            else httpx.Response(200, text=log),
            ("GET", f"{P}/jobs/7003/trace"): httpx.Response(200, text="Timed out\n"),
            ("GET", f"{P}/jobs/7004/trace"): httpx.Response(404, json={"message": "404 Not found"}),
            ("GET", f"{P}/jobs/7201/trace"): httpx.Response(200, text=""),
        }
    )


def test_failed_checks_are_the_failing_jobs_of_the_heads_newest_pipelines() -> None:
    gitlab = failing_gitlab()
    with gitlab.client() as client:
        checks = client.failed_checks(REPO, SHA, tail_bytes=4096)
    assert [(c.name, c.conclusion, c.job_id) for c in checks] == [
        ("docs / deploy-docs", "cancelled", 7201),
        ("test / pytest", "failure", 7101),
        ("test / e2e", "timed_out", 7003),
        ("test / runner", "failure", 7004),
    ]
    assert checks[1].url == f"{WEB}/{REPO}/-/jobs/7101" and checks[3].annotations == (
        "failure reason: runner_system_failure",
    )
    assert checks[2].log_tail == "Timed out\n" and checks[3].log_tail == ""  # a log gone: the failure stays
    assert "/api/v4/projects/acme%2Fplatform%2Fapi/pipelines/4999/jobs" not in gitlab.paths()
    assert f"{P}/pipelines/5001/jobs" not in gitlab.paths()
    jobs = next(r for r in gitlab.requests if r.url.raw_path.decode().startswith(f"{P}/pipelines/5002/jobs"))
    assert jobs.url.params.get_list("scope[]") == ["failed", "canceled"]


def test_a_job_log_is_cleaned_of_colours_sections_and_overwritten_lines() -> None:
    gitlab = failing_gitlab()
    gitlab.routes[("GET", f"{P}/pipelines")] = [pipeline(5002, "failed")]
    with gitlab.client() as client:
        (pytest_check, *_) = client.failed_checks(REPO, SHA)
    assert pytest_check.log_tail == (
        "Running with gitlab-runner 17.5.0 (c7a8bd21)\n"
        "  on docker-runner t3_abc, system ID: s_0e1f\n"
        'Preparing the "docker" executor\n'
        "\n"
        'Executing "step_script"\n'
        "$ pytest -q\n"
        "Downloading 100%\n"
        "FAILED tests/test_paths.py::test_nested - AssertionError\n"
        "\n"
        "ERROR: Job failed: exit code 1\n"
        "\n"
    )
    assert "\x1b" not in pytest_check.log_tail and "section_" not in pytest_check.log_tail


def test_a_10_mb_job_log_is_never_held_only_its_tail() -> None:
    size, line = 10 * 1024 * 1024, b"\x1b[0;32m" + b"x" * 1000 + b"\x1b[0;m\n"
    block, end = line * 64, b"\x1b[31;1mERROR: Job failed: exit code 1\x1b[0;m\n"
    streamed = [0]

    def stream() -> Iterator[bytes]:
        while streamed[0] < size:
            streamed[0] += len(block)
            yield block
        yield end

    gitlab = failing_gitlab(lambda request: httpx.Response(200, content=stream()))  # Range ignored
    gitlab.routes[("GET", f"{P}/pipelines")] = [pipeline(5002, "failed")]
    with gitlab.client() as client:
        tracemalloc.start()
        try:
            checks = client.failed_checks(REPO, SHA, tail_bytes=16_384)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert streamed[0] >= size and peak < 1024 * 1024
    tail = checks[0].log_tail
    assert len(tail.encode()) <= 16_384 and tail.endswith("ERROR: Job failed: exit code 1\n")
    assert tail.startswith("x" * 1000 + "\n") and "\x1b" not in tail
    assert gitlab.requests[2].headers["range"] == "bytes=-16385"


def test_a_log_behind_range_sends_only_its_tail() -> None:
    whole = b"".join(b"line %05d\n" % i for i in range(100_000))

    def ranged(request: httpx.Request) -> httpx.Response:
        wanted = int(request.headers["range"].removeprefix("bytes=-"))
        start = len(whole) - wanted
        return httpx.Response(
            206,
            content=whole[start:],
            headers={"content-range": f"bytes {start}-{len(whole) - 1}/{len(whole)}"},
        )

    gitlab = failing_gitlab(ranged)
    gitlab.routes[("GET", f"{P}/pipelines")] = [pipeline(5002, "failed")]
    with gitlab.client() as client:
        (check, *_) = client.failed_checks(REPO, SHA, tail_bytes=100)
    assert check.log_tail == "".join(f"line {i:05d}\n" for i in range(99_991, 100_000))  # whole lines


def test_a_failed_pipeline_without_a_failed_job_and_one_blocked_on_a_manual_job(gitlab: GitLab) -> None:
    gitlab.routes[("GET", f"{P}/pipelines")] = [
        pipeline(5010, "manual", ref="refs/merge-requests/7/head", source="merge_request_event"),
        pipeline(5009, "failed"),  # its configuration is invalid: no job ran
    ]
    gitlab.routes[("GET", f"{P}/pipelines/5009/jobs")] = []
    with gitlab.client() as client:
        checks = client.failed_checks(REPO, SHA)
    assert [(c.name, c.conclusion, c.url) for c in checks] == [
        ("pipeline #4009", "failure", f"{WEB}/{REPO}/-/pipelines/5009"),
        ("pipeline #4010", "action_required", f"{WEB}/{REPO}/-/pipelines/5010"),
    ]


def test_at_most_twenty_failing_jobs_are_detailed(gitlab: GitLab) -> None:
    gitlab.routes[("GET", f"{P}/pipelines")] = [pipeline(5002, "failed")]
    gitlab.routes[("GET", f"{P}/pipelines/5002/jobs")] = [job(8000 + i, f"shard {i}") for i in range(25)]
    for i in range(25):
        gitlab.routes[("GET", f"{P}/jobs/{8000 + i}/trace")] = httpx.Response(200, text=f"shard {i} failed\n")
    with gitlab.client() as client:
        checks = client.failed_checks(REPO, SHA)
    assert (
        len(checks) == 25
        and all(c.log_tail for c in checks[:20])
        and not any(c.log_tail for c in checks[20:])
    )
    assert sum(p.endswith("/trace") for p in gitlab.paths()) == 20 and checks[24].url.endswith("/jobs/8024")


def test_no_pipeline_is_no_failure(gitlab: GitLab) -> None:
    gitlab.routes[("GET", f"{P}/pipelines")] = []
    with gitlab.client() as client:
        assert client.failed_checks(REPO, SHA) == []


# -- manners: retries, rate limits, the token -------------------------------------------------------------


def test_429_waits_as_long_as_retry_after_says(gitlab: GitLab) -> None:
    answers = [
        httpx.Response(
            429,
            json={"message": "Retry later"},
            headers={"retry-after": "7", "ratelimit-remaining": "0", "ratelimit-reset": "1795687260"},
        ),
        httpx.Response(200, json={"id": PID, "default_branch": "main"}),
    ]
    gitlab.routes[("GET", P)] = lambda r: answers.pop(0)
    with gitlab.client() as client:
        assert client.default_branch(REPO) == "main"
    assert gitlab.sleeps == [7.0] and len(gitlab.requests) == 2


def test_gitlabs_ratelimit_reset_is_waited_for_without_retry_after(gitlab: GitLab) -> None:
    now = T0_EPOCH
    limited = httpx.Response(
        429,
        text="Retry later\n",
        headers={
            "ratelimit-limit": "600",
            "ratelimit-observed": "600",
            "ratelimit-remaining": "0",
            "ratelimit-reset": str(int(now) + 20),
            "ratelimit-resettime": "Thu, 26 Nov 2026 10:00:20 GMT",
        },
    )
    answers = [limited, httpx.Response(200, json={"id": PID, "default_branch": "main"})]
    gitlab.routes[("GET", P)] = lambda r: answers.pop(0)
    with gitlab.client(clock=lambda: now) as client:
        assert client.default_branch(REPO) == "main"
    assert gitlab.sleeps == [21.0]
    gitlab.routes[("GET", P)] = httpx.Response(
        429,
        text="Retry later\n",
        headers={"ratelimit-remaining": "0", "ratelimit-reset": str(int(now) + 3600)},
    )
    with gitlab.client(clock=lambda: now) as client, pytest.raises(RateLimited) as caught:
        client.default_branch(REPO)
    assert caught.value.status == 429 and caught.value.reset_at == now + 3601 and caught.value.transient


def test_401_is_not_retried_and_the_token_is_never_said(
    gitlab: GitLab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gitlab.routes[("GET", f"{P}/issues/3")] = httpx.Response(
        401, json={"message": f"401 Unauthorized {TOKEN}"}
    )
    with gitlab.client() as client, pytest.raises(ForgeError) as caught:
        client.thread(REPO, 3)
    assert caught.value.status == 401 and not caught.value.transient and gitlab.sleeps == []
    assert (
        str(caught.value)
        == f"GitLab answered 401 to GET /api/v4/projects/{REPO}/issues/3: 401 Unauthorized ***"
    )
    assert TOKEN not in caplog.text and len(gitlab.requests) == 1


def test_5xx_are_retried_then_answered(gitlab: GitLab) -> None:
    answers = [httpx.Response(502, text="<html>Bad Gateway</html>"), httpx.Response(200, json=issue(3))]
    gitlab.routes[("GET", f"{P}/issues/3")] = lambda r: answers.pop(0)
    with gitlab.client() as client:
        assert client.thread(REPO, 3).title == "Issue 3"
    assert len(gitlab.sleeps) == 1 and len(gitlab.requests) == 2


# -- the texts --------------------------------------------------------------------------------------------


def test_log_text_keeps_what_a_person_sees() -> None:
    assert log_text(b"a\r\n\x1b[1;31mb\x1b[0m\rc\r\n") == "a\nc\n"
    assert (
        log_text(b"2026-11-26T10:00:00.123456Z 00O $ make\n2026-11-26T10:00:01.5Z 01E+ oops\n")
        == "$ make\noops\n"
    )
    assert log_text(b"\x1b]8;;https://x\x07link\x1b]8;;\x07\n") == "link\n"
    assert log_text("é ✓\n".encode()) == "é ✓\n"


def test_hunk_around_a_line() -> None:
    assert hunk_around(DIFF, 1, 1) == "@@ -1,4 +1,5 @@\n import os"
    assert hunk_around(DIFF, 24, 23) == "\n".join(DIFF.split("\n")[6:12])
    assert hunk_around(DIFF, 999, None) == "" and hunk_around("", 1, None) == ""
    long = "@@ -1,40 +1,40 @@\n" + "".join(f" line {i}\n" for i in range(1, 41))
    hunk = hunk_around(long, 35, 35)
    assert hunk.split("\n")[0] == "@@ -1,40 +1,40 @@" and hunk.split("\n")[1:] == [
        f" line {i}" for i in range(16, 36)
    ]


def test_roles() -> None:
    assert [role(level) for level in (0, 5, 10, 12, 15, 20, 30, 40, 50, 60)] == [
        "none",
        "none",
        "read",
        "read",
        "triage",
        "triage",
        "write",
        "maintain",
        "admin",
        "admin",
    ]
