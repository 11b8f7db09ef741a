"""The merge policy's seam on GitLab (:mod:`baton.forge.kinds.gitlab.merge`): a merge request's readiness read
from the merge request, its reviewers, its approvals and its head's pipelines; a draft marked ready by
its title; auto-merge asked with ``auto_merge`` and ``merge_when_pipeline_succeeds`` at once.
Answers in the shapes of GitLab's documentation (``merge_requests.md``: reviewers, merge;
``merge_request_approvals.md``: approvals)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from baton.forge.data.model import Actor, ForgeError
from baton.forge.kinds.gitlab.merge import GitLabMerge
from baton.forge.kinds.gitlab.text import is_draft, ready_title
from baton.forge.kinds.readiness import GREEN, PENDING, RED, CheckState, not_ready
from baton.forge.kinds.registry import merge_client
from tests.forge.kinds.test_forge_gitlab_client import REPO, SHA, T0, GitLab, P, merge_request, pipeline, user

MR = f"{P}/merge_requests/7"


def approvals(*who: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": 91_007,
        "iid": 7,
        "project_id": 42,
        "title": "Fix 7",
        "description": "Closes #3",
        "state": "opened",
        "created_at": T0,
        "updated_at": T0,
        "merge_status": "can_be_merged",
        "approved": bool(who),
        "approvals_required": 0,
        "approvals_left": 0,
        "require_password_to_approve": False,
        "approved_by": [{"user": u} for u in who],
        "suggested_approvers": [],
        "approvers": [],
        "approver_groups": [],
        "user_has_approved": False,
        "user_can_approve": False,
        "approval_rules_left": [],
        "has_approval_rules": False,
        "merge_request_approvers_available": False,
        "multiple_approval_rules_available": False,
        "invalid_approvers_rules": [],
    }


def reviewer(who: dict[str, Any], state: str) -> dict[str, Any]:
    return {"user": who, "state": state, "created_at": "2026-11-26T10:30:00.000Z"}


@pytest.fixture
def gitlab() -> GitLab:
    gitlab = GitLab()
    gitlab.routes[("GET", MR)] = merge_request(7, title="Draft: Fix 7", draft=True)
    gitlab.routes[("GET", f"{MR}/reviewers")] = [reviewer(user("carol", 12), "unreviewed")]
    gitlab.routes[("GET", f"{MR}/approvals")] = approvals(user("bob", 4))
    gitlab.routes[("GET", f"{P}/pipelines")] = [
        pipeline(5003, "running", ref="refs/merge-requests/7/head", source="merge_request_event"),
        pipeline(5002, "success"),
        pipeline(5001, "failed"),  # replaced by 5002
    ]
    return gitlab


def test_the_merge_policy_reads_a_gitlab_client_through_its_seam(gitlab: GitLab) -> None:
    with gitlab.client() as client:
        assert isinstance(merge_client(client), GitLabMerge)


def test_pull_state_of_a_draft_approved_with_a_pipeline_running(gitlab: GitLab) -> None:
    with gitlab.client() as client:
        pull = GitLabMerge(client).pull_state(REPO, 7)
    assert (pull.number, pull.open, pull.draft, pull.head_sha, pull.base_ref) == (7, True, True, SHA, "main")
    assert [(r.author.login, r.state, r.commit) for r in pull.reviews] == [("bob", "APPROVED", SHA)]
    assert pull.checks == (
        CheckState("pipeline (merge_request_event)", PENDING),
        CheckState("pipeline (push)", GREEN),
    )
    assert pull.required is None and not pull.auto_merge
    assert (
        not_ready(pull, lambda who: who.login == "bob")
        == "waiting for the check pipeline (merge_request_event)"
    )
    assert f"{P}" not in gitlab.paths()  # the project is asked only when the head has no pipeline


def test_a_reviewer_who_requested_changes_holds_it_back(gitlab: GitLab) -> None:
    gitlab.routes[("GET", f"{MR}/reviewers")] = [reviewer(user("carol", 12), "requested_changes")]
    gitlab.routes[("GET", f"{P}/pipelines")] = [pipeline(5002, "failed")]
    with gitlab.client() as client:
        pull = GitLabMerge(client).pull_state(REPO, 7)
    assert [(r.author, r.state) for r in pull.reviews] == [
        (Actor("bob"), "APPROVED"),
        (Actor("carol"), "CHANGES_REQUESTED"),
    ]
    assert pull.checks == (CheckState("pipeline (push)", RED),)
    assert not_ready(pull, lambda who: True) == "changes are requested by carol"


def test_an_older_gitlab_without_reviewers_and_a_project_that_requires_a_pipeline(gitlab: GitLab) -> None:
    gitlab.routes[("GET", f"{MR}/reviewers")] = httpx.Response(404, json={"error": "404 Not Found"})
    gitlab.routes[("GET", f"{P}/pipelines")] = []
    gitlab.routes[("GET", P)] = {
        "id": 42,
        "only_allow_merge_if_pipeline_succeeds": True,
        "default_branch": "main",
    }
    gitlab.routes[("GET", MR)] = merge_request(7, merge_when_pipeline_succeeds=True)
    with gitlab.client() as client:
        pull = GitLabMerge(client).pull_state(REPO, 7)
    assert not pull.draft and pull.auto_merge and pull.checks == () and pull.required == ("pipeline",)
    assert not_ready(pull, lambda who: True) == "waiting for the required check pipeline"


def test_mark_ready_drops_the_draft_prefix_from_the_title(gitlab: GitLab) -> None:
    gitlab.routes[("PUT", MR)] = lambda r: httpx.Response(200, json=merge_request(7, **json.loads(r.content)))
    with gitlab.client() as client:
        merge = GitLabMerge(client)
        merge.pull_state(REPO, 7)
        merge.mark_ready(REPO, 7)
        gitlab.routes[("GET", MR)] = merge_request(7, title="Fix 7")
        GitLabMerge(client).mark_ready(REPO, 7)  # not a draft: nothing to write
    puts = [r for r in gitlab.requests if r.method == "PUT"]
    assert len(puts) == 1 and json.loads(puts[0].content) == {"title": "Fix 7"}


@pytest.mark.parametrize(
    ("title", "draft", "ready"),
    [
        ("Draft: Fix it", True, "Fix it"),
        ("[Draft] Fix it", True, "Fix it"),
        ("(draft) Fix it", True, "Fix it"),
        ("Draft - Fix it", True, "Fix it"),
        ("Draft: [Draft] Fix it", True, "Fix it"),
        ("Drafting the spec", False, "Drafting the spec"),
        ("Draft:", True, "Untitled"),
    ],
)
def test_draft_titles(title: str, draft: bool, ready: str) -> None:
    assert is_draft(title) is draft and ready_title(title) == ready


def test_auto_merge_is_asked_by_both_of_its_names_in_one_request(gitlab: GitLab) -> None:
    gitlab.routes[("PUT", f"{MR}/merge")] = merge_request(7, merge_when_pipeline_succeeds=True)
    with gitlab.client() as client:
        assert GitLabMerge(client).enable_auto_merge(REPO, 7, SHA) == "merge when the pipeline succeeds"
    (put,) = gitlab.requests
    assert json.loads(put.content) == {"sha": SHA, "auto_merge": True, "merge_when_pipeline_succeeds": True}


def test_auto_merge_that_merges_at_once_or_is_refused(gitlab: GitLab) -> None:
    gitlab.routes[("PUT", f"{MR}/merge")] = merge_request(7, state="merged")
    with gitlab.client() as client:
        assert "merged it at once" in GitLabMerge(client).enable_auto_merge(REPO, 7, SHA)
        gitlab.routes[("PUT", f"{MR}/merge")] = httpx.Response(
            409, json={"message": "SHA does not match HEAD of source branch: 0a1b2c"}
        )
        with pytest.raises(ForgeError) as caught:
            GitLabMerge(client).enable_auto_merge(REPO, 7, SHA)
    assert (
        caught.value.status == 409
        and not caught.value.transient
        and "SHA does not match" in str(caught.value)
    )
