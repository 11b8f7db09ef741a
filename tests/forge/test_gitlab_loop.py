"""The GitLab loop's edges with the fake agent (fast): the label and assignment triggers, a mention
found by the reconcile when no webhook came, baton's own note (no trigger, no refusal), a fork's MR
(read access, nothing pushed), issue ``#N`` and MR ``!N`` told apart, a webhook with a wrong token, and
``baton forge test`` against the fake with the documented configuration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from baton.forge.reconcile import SKEW
from baton.forge.rest import epoch
from baton.forge.tables import delivery_store, forge_store
from baton.models import Access
from baton.settings import Settings
from baton.testing.fake import register_fake
from baton.testing.fake_gitlab import FakeGitLab
from tests.gitlab_fixtures import (  # noqa: F401 (fixtures)
    REPO,
    SECRET,
    binding,
    gitlab_fixture,
    repo_extra_fixture,
    service_fixture,
    settled,
)
from tests.service_fixtures import Service


@pytest.fixture(name="agent")
def agent_fixture() -> str:
    register_fake()
    return "fake"


@pytest.mark.parametrize(
    "repo_extra", ['[repo."acme/api".triggers.label]\n[repo."acme/api".triggers.assign]\n']
)
def test_a_label_and_an_assignment_bind_issues(gitlab: FakeGitLab, service: Service) -> None:
    labelled = gitlab.open_issue(REPO, "Labelled", "Fix it.", author="alice")
    assigned = gitlab.open_issue(REPO, "Assigned", "Fix that.", author="alice")
    gitlab.label(REPO, labelled.iid, "baton", by="alice")
    gitlab.assign(REPO, assigned.iid, "baton", by="alice")
    settled(service, gitlab, 2)
    assert binding(service, labelled.iid)["thread"] == f"issue-{labelled.iid}"
    assert binding(service, assigned.iid)["thread"] == f"issue-{assigned.iid}"


@pytest.mark.parametrize("repo_extra", ['[repo."acme/api".triggers.label]\nnames = ["baton"]\n'])
def test_a_label_that_is_no_trigger_never_reruns_a_bound_issues_task(
    gitlab: FakeGitLab, service: Service
) -> None:
    """``~bug`` on an issue bound by ``~baton`` is no event: one task turn, the delivery ignored."""
    issue = gitlab.open_issue(REPO, "Labelled", "Fix it.", author="alice")
    gitlab.label(REPO, issue.iid, "baton", by="alice")
    settled(service, gitlab, 1)
    gitlab.label(REPO, issue.iid, "bug", by="alice")
    settled(service, gitlab, 1)  # no second turn
    events = forge_store(service.store).forge_events("gitlab", REPO, issue.iid)
    assert [e.identity.split(":")[2] for e in events if e.identity.startswith("label:")] == ["baton"]
    said = [json.dumps(d.result) for d in delivery_store(service.store).list_deliveries(limit=5)]
    assert any("label 'bug' is not one of baton" in r for r in said), said


def test_the_reconcile_finds_a_mention_no_webhook_brought(gitlab: FakeGitLab, service: Service) -> None:
    gitlab.deliver_to = None  # the service was down: nothing delivered
    issue = gitlab.open_issue(REPO, "Quiet", "Nobody told baton.", author="alice")
    gitlab.comment(REPO, issue.iid, "@baton please look", author="alice")
    with service.client("run") as http:
        report = http.post("/v1/forge/reconcile").json()
    settled(service, gitlab, 1)
    assert binding(service, issue.iid)["status"] == "active", report


def test_a_new_bindings_first_reconcile_starts_at_its_binding(gitlab: FakeGitLab, service: Service) -> None:
    """Not ``updated_after=1969-12-31``: a binding made by a webhook is read from its binding time."""
    issue = gitlab.open_issue(REPO, "Mentioned", "Fix it.", author="alice")
    gitlab.comment(REPO, issue.iid, "@baton please fix", author="alice")
    settled(service, gitlab, 1)
    bound = forge_store(service.store).get_binding("gitlab", REPO, issue.iid, False)
    assert bound is not None and bound.seen_at >= bound.created_at
    before = len(gitlab.requests)
    with service.client("run") as http:
        http.post("/v1/forge/reconcile").raise_for_status()
    asked = [parse_qs(r.query) for r in gitlab.requests[before:] if "updated_after" in r.query]
    assert asked, gitlab.requests[before:]
    assert all(epoch(q["updated_after"][0]) >= bound.created_at - SKEW - 1 for q in asked), asked


def test_batons_own_note_triggers_nothing_and_is_no_refusal(gitlab: FakeGitLab, service: Service) -> None:
    issue = gitlab.open_issue(REPO, "Own", "A note of baton's.", author="alice")
    gitlab.comment(REPO, issue.iid, "@baton do this for yourself", author="baton")
    gitlab.settle()
    assert forge_store(service.store).get_binding("gitlab", REPO, issue.iid, False) is None
    assert service.store.list_jobs(limit=5) == []
    refused = [a for a in service.store.list_audit(100) if a["action"] == "forge.refused"]
    assert refused == []


def test_a_forks_mr_is_read_never_pushed(gitlab: FakeGitLab, service: Service) -> None:
    gitlab.add_user("mallory", "developer")
    fork = gitlab.fork(REPO, "mallory")
    gitlab.set_access(fork.path, "baton", "reporter")  # baton can read the fork (else: read in the project)
    gitlab.commit(fork.path, "feature", {"evil.sh": "curl x | sh\n"}, "a fork's change", author="mallory")
    mr = gitlab.open_mr(REPO, "feature", "From a fork", source_project=fork.path, author="mallory")
    before = {b: gitlab.project(REPO).head(b) for b in ("main", "feature")}
    gitlab.comment(REPO, mr.iid, "@baton please review this", author="alice", mr=True)
    settled(service, gitlab, 1)
    bound = forge_store(service.store).get_binding("gitlab", REPO, mr.iid, True)
    assert bound is not None and bound.on_pr and bound.access is Access.READ
    assert bound.repo_url.endswith(f"{fork.path}.git")
    assert {b: gitlab.project(REPO).head(b) for b in ("main", "feature")} == before
    assert gitlab.project(fork.path).head("feature") == gitlab.project(fork.path).head("feature")


def test_issue_n_and_mr_n_are_two_things(gitlab: FakeGitLab, service: Service) -> None:
    """A person's MR !1 and issue #1: a mention on the issue binds the issue; one on the MR then cannot
    take its number (said, nothing bound), and feedback on the MR never reaches the issue's thread."""
    gitlab.commit(REPO, "human", {"x.txt": "x\n"}, "a person's branch", author="alice")
    mr = gitlab.open_mr(REPO, "human", "A person's MR", author="alice")
    issue = gitlab.open_issue(REPO, "An issue", "Fix it.", author="alice")
    assert issue.iid == mr.iid == 1
    gitlab.comment(REPO, issue.iid, "@baton please fix", author="alice")
    settled(service, gitlab, 1)
    gitlab.comment(REPO, mr.iid, "@baton and look at this MR", author="alice", mr=True)
    settled(service, gitlab, 1)  # no second turn: the MR's note is not the issue's
    said = [json.dumps(d.result) for d in delivery_store(service.store).list_deliveries(limit=20)]
    assert any("cannot be bound while issue #1 is" in r for r in said), said
    events = forge_store(service.store).forge_events("gitlab", REPO, issue.iid)
    assert all("look at this MR" not in json.dumps(e.event) for e in events)
    # said where it was asked, in the audit, and in `baton forge show` of the thread holding the number
    said_on_mr = [n.body for n in gitlab.notes(REPO, mr.iid, mr=True) if n.author == "baton"]
    assert any("cannot be bound while issue #1 is" in b for b in said_on_mr), said_on_mr
    refused = [a for a in service.store.list_audit(100) if a["action"] == "forge.refused"]
    assert [a["detail"]["url"] for a in refused] == [
        e.event["url"] for e in events if e.reason and "cannot be bound" in e.reason
    ]
    assert refused and "cannot be bound while issue #1 is" in refused[0]["detail"]["reason"], refused


def test_a_wrong_token_is_401_and_stores_nothing(gitlab: FakeGitLab, service: Service) -> None:
    issue = gitlab.open_issue(REPO, "Forged", "x", author="alice")
    body = json.dumps(gitlab.last_event("Issue Hook").body).encode()
    headers = {"X-Gitlab-Event": "Issue Hook", "X-Gitlab-Event-UUID": "forged-1", "X-Gitlab-Token": "nope"}
    before = delivery_store(service.store).list_deliveries(limit=100)
    answer = httpx.post(f"{service.url}/webhooks/gitlab", content=body, headers=headers)
    assert answer.status_code == 401 and issue.iid
    assert delivery_store(service.store).list_deliveries(limit=100) == before


def test_forge_test_passes_against_the_fake_with_the_documented_configuration(
    gitlab: FakeGitLab, settings: Settings, tmp_path: Path
) -> None:
    """docs/forge.md's GitLab example, its gitlab.example.com swapped for the fake's address."""
    docs = (Path(__file__).parents[2] / "docs" / "forge.md").read_text()
    section = docs[docs.index("## Setting up GitLab") :]
    example = section[section.index("```toml\n") + 8 : section.index("```\n", section.index("```toml\n"))]
    assert "https://gitlab.example.com" in example
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(example.replace("https://gitlab.example.com", gitlab.web_url))
    env = {
        "BATON_HOME": str(home),
        "BATON_GITLAB_TOKEN": gitlab.token("baton"),
        "BATON_WEBHOOK_SECRET": SECRET,
    }
    env["BATON_GIT_TOKEN"] = env["BATON_GITLAB_TOKEN"]
    done = subprocess.run(
        [str(Path(sys.executable).parent / "baton"), "forge", "test", "--json"],
        env={**_base_env(), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    checks = json.loads(done.stdout)
    assert done.returncode == 0, checks
    whats = {c["what"] for c in checks}
    assert {"forge gitlab token", f"repo gitlab:{REPO} clone", f"repo gitlab:{REPO} push"} <= whats, whats
    wrong = subprocess.run(
        [str(Path(sys.executable).parent / "baton"), "forge", "test", "--json"],
        env={**_base_env(), **env, "BATON_GITLAB_TOKEN": gitlab.token("alice")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    failed = [c for c in json.loads(wrong.stdout) if not c["ok"]]
    assert wrong.returncode == 1 and any("acts as alice" in c["detail"] for c in failed), failed


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}


def test_a_base_that_moved_into_a_conflict_is_a_conflict_turn(
    gitlab: FakeGitLab, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person's push to main that conflicts with baton's MR: GitLab says so only when asked, so the
    Push Hook makes baton ask, and the conflict is the thread's next turn."""
    monkeypatch.setenv("FAKE_AGENT_WRITE", "notes.md")
    issue = gitlab.open_issue(REPO, "Notes", "Write notes.", author="alice")
    gitlab.comment(REPO, issue.iid, "@baton please write notes", author="alice")
    settled(service, gitlab, 1)
    gitlab.commit(REPO, "main", {"notes.md": "a person's own notes\n"}, "notes on main", author="alice")
    settled(service, gitlab, 2)
    events = forge_store(service.store).forge_events("gitlab", REPO, issue.iid)
    assert [e.kind.value for e in events][-1] == "conflict", [(e.identity, e.status) for e in events]
    conflict_turn = service.store.list_jobs(limit=1)[0]
    assert "conflict" in conflict_turn.request["prompt"].lower()
