"""A trigger's own rule and a new binding's reconcile, on the fake GitHub and the fake Gitea with a real
service and the fake agent (fast): a label that is not one of the label trigger's ``names`` is no event,
so it never re-runs a bound issue's task; the first reconcile after a webhook made a binding asks for
what changed since the binding, not for the repository's whole history. GitLab's: test_gitlab_loop."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import parse_qs

import pytest

from baton.forge.background.reconcile import SKEW
from baton.forge.data.config import RepoConfig, TriggerConfig
from baton.forge.data.model import Trigger
from baton.forge.data.records import Binding
from baton.forge.data.tables import delivery_store, forge_store
from baton.forge.kinds.rest import epoch
from baton.models import Access
from baton.testing.fake import register_fake
from baton.testing.fake_forge import FakeForge
from tests.forge_fixtures import (  # noqa: F401 (fixtures)
    REPO,
    fake_fixture,
    forge_service_fixture,
    kind_of,
    settled,
)
from tests.service_fixtures import Service

LABELS = '[repo."acme/api".triggers.label]\nnames = ["baton"]\n[repo."acme/api".triggers.mention]\n'


@pytest.fixture
def agent() -> str:
    register_fake()
    return "fake"


@pytest.fixture
def model() -> Iterator[None]:
    yield None  # the fake agent needs no model


@pytest.mark.parametrize("forge_extra", [LABELS])
@pytest.mark.parametrize("forge_kind", ["github", "gitea"])
def test_a_label_that_is_no_trigger_never_reruns_a_bound_issues_task(
    fake: FakeForge, forge_service: Service, forge_extra: str
) -> None:
    kind = kind_of(fake)
    issue = fake.open_issue(REPO, "alice", "Fix it", "The parser breaks.")
    fake.label(REPO, issue, "alice", "baton")
    settled(forge_service, fake, 1)
    fake.label(REPO, issue, "alice", "bug")  # Gitea's label_updated names both labels: bug is no event
    settled(forge_service, fake, 1)  # no second task turn
    events = forge_store(forge_service.store).forge_events(kind, REPO, issue)
    assert [e.identity for e in events if "bug" in e.identity] == []
    said = [json.dumps(d.result) for d in delivery_store(forge_service.store).list_deliveries(limit=5)]
    assert not any(f"label:{issue}:bug" in r for r in said), said
    if kind == "github":  # one label a delivery: it is ignored, and why (Gitea's keeps its baton label)
        assert any("label 'bug' is not one of baton" in r for r in said), said


@pytest.mark.parametrize("forge_kind", ["github", "gitea"])
def test_a_new_bindings_first_reconcile_starts_at_its_binding(
    fake: FakeForge, forge_service: Service
) -> None:
    issue = fake.open_issue(REPO, "alice", "Fix it", "The parser breaks.")
    fake.comment(REPO, issue, "alice", "@baton please fix")
    settled(forge_service, fake, 1)
    bound = forge_store(forge_service.store).get_binding(kind_of(fake), REPO, issue)
    assert bound is not None and bound.seen_at >= bound.created_at > time.time() - 600
    before = len(fake.requests)
    with forge_service.client("run") as http:
        report = http.post("/v1/forge/reconcile").json()
    listed = [r for r in fake.requests[before:] if r.path == f"/repos/{REPO}/issues" and "since=" in r.query]
    assert listed, (report, fake.requests[before:])
    since = epoch(parse_qs(listed[0].query)["since"][0])
    assert since >= bound.created_at - SKEW - 1, (since, bound.created_at)


def test_a_binding_stored_without_seen_at_is_read_from_its_binding_time() -> None:
    """One stored before ``seen_at`` was set at binding time (0): read from ``created_at``, not 1970."""
    old = Binding("github", REPO, 1, "fake", "s", "issue-1", "u", seen_at=0.0, created_at=1_700_000_000.0)
    assert old.seen == 1_700_000_000.0
    assert replace(old, seen_at=1_800_000_000.0).seen == 1_800_000_000.0


def test_a_repositorys_rule_says_which_labels_and_assignments_are_triggers() -> None:
    labels = {Trigger.LABEL: TriggerConfig(Trigger.LABEL, Access.EDIT, names=("baton",))}
    repo = RepoConfig(REPO, "github", triggers=labels)
    assert repo.refuses(Trigger.LABEL, "BATON") is None  # labels compare in any case
    assert repo.refuses(Trigger.LABEL, "bug") == "label 'bug' is not one of baton"
    assert repo.refuses(Trigger.ASSIGN) == f"the assign trigger is not enabled for {REPO}"
    assert repo.refuses(Trigger.MENTION) is None and repo.refuses(Trigger.FEEDBACK) is None
