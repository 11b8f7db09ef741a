"""GitLab's webhook deliveries read once into typed parts (:mod:`baton.forge.kinds.gitlab.events`): notes,
diff notes, issues' labels and assignees, MR conflicts, closes and merges, failed pipelines with their jobs,
pushes; system notes and baton's own pushes asking nothing; any payload read into a delivery, a reason
or :class:`Malformed` (never another exception); and the route: ``X-Gitlab-Token`` compared with the
secret (a wrong one is 401 and stores nothing), the event's UUID the delivery's id (a resend acts once).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baton.forge.data.config import ForgeConfig, ForgeSettings, MergePolicy, RepoConfig
from baton.forge.data.model import ForgeKind, Trigger
from baton.forge.data.records import FeedbackKind
from baton.forge.data.tables import delivery_store
from baton.forge.kinds.gitlab.events import GITLAB_READER, actor
from baton.forge.kinds.gitlab.facts import HOOK as GITLAB
from baton.forge.reading.delivery import BasePushed, Closed, Delivery, Settled
from baton.forge.reading.webhook import Ignored, Malformed, Target, authentic, token_verified
from tests.service_fixtures import Service, run_service, service_fixture  # noqa: F401 (the `service` fixture)

SECRET = "gl-hook-s3cret"
WEB = "https://gitlab.example.com"
FORGE = ForgeConfig("gl", ForgeKind.GITLAB, f"{WEB}/api/v4", WEB, "T", "baton", "@baton")
CONFIG = ForgeSettings(forges={"gl": FORGE}, repos={})
MERGING = ForgeSettings(
    forges={"gl": FORGE},
    repos={("gl", "grp/sub/api"): RepoConfig("grp/sub/api", "gl", merge=MergePolicy.READY)},
)
HEAD, BASE = "a" * 40, "b" * 40


def user(username: str = "alice", uid: int = 2) -> dict[str, Any]:
    return {
        "id": uid,
        "name": username.title(),
        "username": username,
        "avatar_url": None,
        "email": "[REDACTED]",
    }


def project(path: str = "grp/sub/api", pid: int = 15) -> dict[str, Any]:
    return {
        "id": pid,
        "name": path.rsplit("/", 1)[-1],
        "web_url": f"{WEB}/{path}",
        "git_ssh_url": f"git@gitlab.example.com:{path}.git",
        "git_http_url": f"{WEB}/{path}.git",
        "namespace": path.rsplit("/", 1)[0],
        "path_with_namespace": path,
        "default_branch": "main",
    }


def merge_request(iid: int = 7, source: int = 15, **extra: Any) -> dict[str, Any]:
    return {
        "id": 900 + iid,
        "iid": iid,
        "title": "Fix the parser",
        "description": "Closes #3",
        "state": "opened",
        "source_branch": "baton/issue-3",
        "target_branch": "main",
        "source_project_id": source,
        "target_project_id": 15,
        "source": project(),
        "target": project(),
        "last_commit": {"id": HEAD, "message": "fix", "url": f"{WEB}/grp/sub/api/-/commit/{HEAD}"},
        "merge_status": "can_be_merged",
        "detailed_merge_status": "mergeable",
        "draft": True,
        "url": f"{WEB}/grp/sub/api/-/merge_requests/{iid}",
        "updated_at": "2026-11-26 10:00:00 UTC",
        **extra,
    }


def note(body: str, on: str = "Issue", **extra: Any) -> dict[str, Any]:
    attributes = {
        "id": 1244,
        "note": body,
        "noteable_type": on,
        "author_id": 2,
        "created_at": "2026-11-26T10:00:00.000Z",
        "updated_at": "2026-11-26T10:00:00.000Z",
        "system": False,
        "type": None,
        "url": f"{WEB}/grp/sub/api/-/issues/3#note_1244",
        "discussion_id": "f" * 40,
        **extra,
    }
    payload: dict[str, Any] = {
        "object_kind": "note",
        "event_type": "note",
        "user": user(),
        "project_id": 15,
        "project": project(),
        "object_attributes": attributes,
    }
    if on == "Issue":
        payload["issue"] = {
            "id": 301,
            "iid": 3,
            "title": "Parser crashes",
            "description": "",
            "state": "opened",
        }
    else:
        payload["merge_request"] = merge_request()
    return payload


def issue_update(changes: dict[str, Any], action: str = "update") -> dict[str, Any]:
    return {
        "object_kind": "issue",
        "event_type": "issue",
        "user": user(),
        "project": project(),
        "object_attributes": {
            "id": 301,
            "iid": 3,
            "title": "Parser crashes",
            "description": "It crashes on empty input.",
            "state": "opened",
            "action": action,
            "url": f"{WEB}/grp/sub/api/-/issues/3",
            "updated_at": "2026-11-26T10:05:00Z",
        },
        "changes": changes,
    }


def pipeline(status: str = "failed", mr: bool = True) -> dict[str, Any]:
    builds = [
        {"id": 380, "stage": "test", "name": "pytest", "status": "failed", "allow_failure": False},
        {"id": 381, "stage": "lint", "name": "ruff", "status": "failed", "allow_failure": True},
        {"id": 382, "stage": "build", "name": "wheel", "status": "success", "allow_failure": False},
    ]
    return {
        "object_kind": "pipeline",
        "object_attributes": {
            "id": 31,
            "iid": 3,
            "ref": "baton/issue-3",
            "sha": HEAD,
            "status": status,
            "url": f"{WEB}/grp/sub/api/-/pipelines/31",
            "created_at": "2026-11-26 10:00:00 UTC",
            "finished_at": "2026-11-26 10:03:00 UTC",
        },
        "merge_request": {"id": 907, "iid": 7, "title": "Fix the parser"} if mr else None,
        "user": user(),
        "project": project(),
        "builds": builds,
    }


def read(event: str, payload: dict[str, Any], config: ForgeSettings = CONFIG) -> Delivery | Ignored:
    return GITLAB_READER.read(config, event, payload)


# -- notes ------------------------------------------------------------------------------------------------


def test_a_mention_in_an_issue_note_is_a_trigger_on_the_issue() -> None:
    found = read("Note Hook", note("@baton please fix the parser"))
    assert isinstance(found, Delivery) and len(found.events) == 1
    event = found.events[0]
    assert (event.forge, event.repo, event.number, event.is_pr) == ("gl", "grp/sub/api", 3, False)
    assert (event.kind, event.identity, event.trigger) == (
        FeedbackKind.COMMENT,
        "comment:1244",
        Trigger.MENTION,
    )
    assert event.actor.login == "alice" and not event.actor.bot
    assert event.at == pytest.approx(1_795_687_200.0)


def test_a_note_on_an_mr_is_feedback_on_the_mr_with_its_head() -> None:
    found = read("Note Hook", note("please also handle tabs", on="MergeRequest"))
    assert isinstance(found, Delivery)
    event = found.events[0]
    assert (event.number, event.is_pr, event.trigger) == (7, True, Trigger.FEEDBACK)
    assert event.head_sha == HEAD and not event.from_fork


def test_a_diff_note_is_a_review_with_its_place_in_the_diff() -> None:
    position = {
        "base_sha": BASE,
        "start_sha": BASE,
        "head_sha": HEAD,
        "old_path": "src/parse.py",
        "new_path": "src/parse.py",
        "position_type": "text",
        "old_line": None,
        "new_line": 12,
    }
    payload = note("this breaks on tabs", on="MergeRequest", type="DiffNote", position=position, id=55)
    found = read("Note Hook", payload)
    assert isinstance(found, Delivery)
    event = found.events[0]
    assert (event.kind, event.identity, event.number) == (FeedbackKind.REVIEW, "review:note-55", 7)
    (inline,) = event.comments
    assert (inline.id, inline.path, inline.line, inline.body) == (
        55,
        "src/parse.py",
        12,
        "this breaks on tabs",
    )


def test_an_mr_from_a_fork_is_marked_so() -> None:
    payload = note("@baton look", on="MergeRequest")
    payload["merge_request"] = merge_request(source=99)
    found = read("Note Hook", payload)
    assert isinstance(found, Delivery) and found.events[0].from_fork


def test_system_notes_and_notes_on_commits_ask_nothing() -> None:
    assert isinstance(read("Note Hook", note("added ~bug label", system=True)), Ignored)
    assert isinstance(read("Note Hook", note("@baton", on="Commit")), Ignored)


def test_project_and_group_bots_are_bots() -> None:
    assert actor({"username": "project_15_bot_4f2a9c"}, "u").bot
    assert actor({"username": "group_3_bot"}, "u").bot
    assert actor({"username": "renovate-bot"}, "u").bot
    assert not actor({"username": "alice"}, "u").bot


# -- issues -----------------------------------------------------------------------------------------------


def test_an_added_label_and_baton_assigned_are_triggers() -> None:
    changes = {
        "labels": {
            "previous": [{"id": 1, "title": "bug"}],
            "current": [{"id": 1, "title": "bug"}, {"id": 2, "title": "baton"}],
        },
        "assignees": {"previous": [], "current": [user("baton", 9), user("bob", 4)]},
    }
    found = read("Issue Hook", issue_update(changes))
    assert isinstance(found, Delivery)
    label, assign = found.events
    assert (label.trigger, label.signature, label.identity) == (
        Trigger.LABEL,
        "baton",
        "label:3:baton:2026-11-26T10:05:00Z",
    )
    assert (assign.trigger, assign.identity) == (Trigger.ASSIGN, "assign:3:baton:2026-11-26T10:05:00Z")


def test_an_update_that_removes_a_label_or_assigns_someone_else_asks_nothing() -> None:
    changes = {
        "labels": {"previous": [{"title": "bug"}], "current": []},
        "assignees": {"previous": [], "current": [user("bob", 4)]},
    }
    assert isinstance(read("Issue Hook", issue_update(changes)), Ignored)


def test_an_issue_opened_with_the_mention_is_a_task_and_a_close_closes() -> None:
    opened = issue_update({}, action="open")
    opened["object_attributes"]["description"] = "@baton the parser crashes"
    found = read("Issue Hook", opened)
    assert isinstance(found, Delivery) and found.events[0].identity == "task:3"
    closed = read("Issue Hook", issue_update({}, action="close"))
    assert isinstance(closed, Delivery) and closed.closed == Closed("gl", "grp/sub/api", 3, pr=False)


# -- merge requests, pipelines, pushes ----------------------------------------------------------------------


def test_a_merged_mr_closes_its_thread_and_cleans_up_its_branch() -> None:
    payload = {"object_kind": "merge_request", "user": user(), "project": project()}
    payload["object_attributes"] = merge_request(action="merge", state="merged")
    found = read("Merge Request Hook", payload)
    assert isinstance(found, Delivery)
    assert found.closed == Closed("gl", "grp/sub/api", 7, merged=True, pr=True)
    assert found.target is not None and found.target.branch == "baton/issue-3" and found.target.merged
    assert "gitlab.example.com/grp/sub/api" in found.target.repos


def test_an_mr_in_conflict_is_a_conflict_event() -> None:
    payload = {"object_kind": "merge_request", "user": user(), "project": project()}
    payload["object_attributes"] = merge_request(action="update", detailed_merge_status="conflict")
    found = read("Merge Request Hook", payload)
    assert isinstance(found, Delivery)
    assert (
        found.events[0].identity == f"conflict:{HEAD}:main" and found.events[0].kind == FeedbackKind.CONFLICT
    )
    payload["object_attributes"] = merge_request(action="update")
    assert isinstance(read("Merge Request Hook", payload), Ignored)


def test_a_failed_pipeline_names_its_failed_jobs_but_not_those_allowed_to_fail() -> None:
    found = read("Pipeline Hook", pipeline())
    assert isinstance(found, Delivery)
    (event,) = found.events
    assert (event.kind, event.number, event.head_sha, event.identity) == (
        FeedbackKind.CI_FAILURE,
        7,
        HEAD,
        f"ci:{HEAD}:31",
    )
    assert [c.name for c in event.checks] == ["test / pytest"]
    branch = read("Pipeline Hook", pipeline(mr=False))
    assert isinstance(branch, Delivery) and branch.events[0].number == 0  # found by its head
    assert isinstance(read("Pipeline Hook", pipeline("success")), Ignored)


def test_a_succeeded_pipeline_or_an_approval_settles_where_the_merge_policy_is_on() -> None:
    found = read("Pipeline Hook", pipeline("success"), MERGING)
    assert isinstance(found, Delivery) and found.settled == Settled("gl", "grp/sub/api", head_sha=HEAD)
    payload = {"object_kind": "merge_request", "user": user(), "project": project()}
    payload["object_attributes"] = merge_request(action="approved")
    approved = read("Merge Request Hook", payload, MERGING)
    assert isinstance(approved, Delivery) and approved.settled == Settled("gl", "grp/sub/api", (7,))


def test_pushes_move_bases_delete_branches_and_batons_own_ask_nothing() -> None:
    push = {
        "object_kind": "push",
        "before": BASE,
        "after": HEAD,
        "ref": "refs/heads/main",
        "user_username": "alice",
        "project": project(),
    }
    found = read("Push Hook", push)
    assert isinstance(found, Delivery) and found.pushed == BasePushed("gl", "grp/sub/api", "main")
    assert isinstance(
        read("Push Hook", {**push, "user_username": "baton", "ref": "refs/heads/baton/x"}), Ignored
    )
    deleted = read("Push Hook", {**push, "after": "0" * 40, "ref": "refs/heads/feature"})
    assert isinstance(deleted, Delivery) and deleted.target == Target(deleted.target.repos, "feature")  # type: ignore[union-attr]


# -- hostile payloads ----------------------------------------------------------------------------------------


def test_a_payload_without_what_its_event_needs_is_malformed() -> None:
    broken = note("@baton hi")
    del broken["project"]["path_with_namespace"]
    with pytest.raises(Malformed, match="path_with_namespace"):
        read("Note Hook", broken)
    evil = note("@baton hi")
    evil["project"]["path_with_namespace"] = "../../etc/passwd"
    with pytest.raises(Malformed):
        read("Note Hook", evil)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30,
)
EVENTS = ["Note Hook", "Issue Hook", "Merge Request Hook", "Pipeline Hook", "Push Hook", "Tag Push Hook"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event=st.sampled_from(EVENTS),
    base=st.sampled_from([note("@baton x"), pipeline(), issue_update({})]),
    junk=JSON,
)
def test_any_payload_is_a_delivery_a_reason_or_malformed(event: str, base: dict[str, Any], junk: Any) -> None:
    payload = json.loads(json.dumps(base))
    if isinstance(junk, dict):
        for key, value in junk.items():
            payload[key or "object_attributes"] = value
    try:
        found = read(event, payload, MERGING)
    except Malformed:
        return
    assert isinstance(found, Delivery | Ignored)


# -- the route ----------------------------------------------------------------------------------------------


def test_the_token_is_compared_whole() -> None:
    assert token_verified(SECRET, SECRET)
    assert not token_verified(SECRET, SECRET[:-1]) and not token_verified(SECRET, None)
    assert not token_verified(SECRET, SECRET + " ") and not token_verified(SECRET, "é" * 3)
    assert authentic(GITLAB, SECRET, b"{}", {"x-gitlab-token": SECRET})
    assert not authentic(GITLAB, SECRET, b"{}", {"x-hub-signature-256": "sha256=00"})


def headers(event: str, token: str | None = SECRET, uid: str | None = None) -> dict[str, str]:
    sent = {
        "Content-Type": "application/json",
        "User-Agent": "GitLab/18.5.0",
        "X-Gitlab-Event": event,
        "X-Gitlab-Event-UUID": uid or str(uuid.uuid4()),
        "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
        "X-Gitlab-Instance": WEB,
    }
    return sent | ({"X-Gitlab-Token": token} if token is not None else {})


@pytest.mark.parametrize("token", [None, "wrong", SECRET[:-1], SECRET.upper()])
def test_a_wrong_or_missing_token_is_401_and_stores_nothing(
    service: Service, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, token: str | None
) -> None:
    """Said as what it is, in the answer and the log: GitLab sends a token, not a signature."""
    monkeypatch.setenv("BATON_WEBHOOK_SECRET", SECRET)
    body = json.dumps(note("@baton fix it")).encode()
    with caplog.at_level(logging.WARNING, logger="baton"):
        answer = httpx.post(
            f"{service.url}/webhooks/gitlab", content=body, headers=headers("Note Hook", token)
        )
    said = "missing or wrong X-Gitlab-Token (it must be the webhook secret)"
    assert (answer.status_code, answer.json()) == (401, {"detail": said}), answer.text
    logged = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert logged and all(said in line and "signature" not in line for line in logged)
    time.sleep(0.2)  # background work, had any been queued, would have written a delivery by now
    assert delivery_store(service.store).list_deliveries() == []


def test_a_delivery_is_stored_by_its_idempotency_key_and_a_resend_answers_from_the_first(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GitLab 17.4+ keeps ``Idempotency-Key`` across a delivery's retries and resends (each of which has
    an ``X-Gitlab-Event-UUID`` of its own); older GitLab sends only the UUID (the next test)."""
    monkeypatch.setenv("BATON_WEBHOOK_SECRET", SECRET)
    body, uid = json.dumps(note("@baton fix it")).encode(), str(uuid.uuid4())
    sent = [headers("Note Hook") | {"Idempotency-Key": uid} for _ in range(2)]
    first = httpx.post(f"{service.url}/webhooks/gitlab", content=body, headers=sent[0])
    again = httpx.post(f"{service.url}/webhooks/gitlab", content=body, headers=sent[1])
    assert first.status_code == again.status_code == 202, first.text
    assert first.json()["delivery"] == again.json()["delivery"] == uid
    stored = delivery_store(service.store).list_deliveries()
    assert [(d.forge, d.delivery_id, d.event) for d in stored] == [("gitlab", uid, "Note Hook")]


def test_an_older_gitlabs_delivery_is_stored_by_its_event_uuid(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_WEBHOOK_SECRET", SECRET)
    body, uid = json.dumps(note("@baton fix it")).encode(), str(uuid.uuid4())
    answer = httpx.post(f"{service.url}/webhooks/gitlab", content=body, headers=headers("Note Hook", uid=uid))
    assert answer.status_code == 202 and answer.json()["delivery"] == uid
