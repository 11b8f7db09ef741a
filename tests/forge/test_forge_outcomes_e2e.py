"""The forge loop's outcomes end to end: the fake GitHub (REST, git over HTTP, signed webhooks; and the
fake Gitea, whose CI speaks commit statuses), a real ``baton serve`` and the fake agent. An issue is
mentioned, baton pushes and opens the PR, CI fails on its head, the next turn pushes the fix (its checks
pass), a person merges the PR — and ``GET /v1/forge/outcomes`` and ``/metrics`` say so: one thread, one
PR opened and merged after one round of feedback, a first push, a CI failure fixed by the next push,
both feedback events answered, nobody waiting."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from baton.forge.data.records import BindingStatus
from baton.forge.data.tables import forge_store
from baton.testing.fake import register_fake
from baton.testing.fake_forge import FakeForge
from tests.forge_fixtures import (  # noqa: F401 (fixtures)
    REPO,
    fake_fixture,
    forge_kind_fixture,
    forge_service_fixture,
    settled,
)
from tests.service.test_metrics import scrape, value
from tests.service_fixtures import Service


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> str:
    register_fake()
    monkeypatch.setenv("FAKE_AGENT_WRITE", "notes.md")  # every turn changes a file: every turn pushes
    return "fake"


@pytest.fixture
def model() -> Iterator[None]:
    yield None  # the fake agent needs no model


@pytest.mark.parametrize("forge_kind", ["github", "gitea"])
def test_an_issue_to_a_merged_pr_reports_its_outcomes(
    forge_kind: str, fake: FakeForge, forge_service: Service
) -> None:
    service = forge_service
    issue = fake.open_issue(REPO, "alice", "Add notes", "We need notes.")
    fake.comment(REPO, issue, "alice", "@baton please add the notes")
    settled(service, fake, 1)
    [pr] = fake.pulls(REPO)
    first_head = fake.repo(REPO).pr_head(pr)

    fake.add_check_run(REPO, first_head, "test", "failure", log="E   AssertionError: notes\n")
    settled(service, fake, 2)
    fixed_head = fake.repo(REPO).pr_head(pr)
    assert fixed_head != first_head  # the CI turn pushed
    fake.add_check_run(REPO, fixed_head, "test", "success")  # green: no event, no turn
    fake.merge(REPO, pr.number, "alice")
    settled(service, fake, 2)
    binding = forge_store(service.store).get_binding(forge_kind, REPO, issue)
    assert binding is not None and binding.status == BindingStatus.CLOSED

    headers = {"Authorization": f"Bearer {service.token('read')}"}
    answer = httpx.get(f"{service.url}/v1/forge/outcomes", headers=headers)
    assert answer.status_code == 200, answer.text
    [row] = answer.json()["repos"]
    print("outcomes:", row)  # the numbers the issue's note reports (-s shows them)
    assert (row["forge"], row["repo"], row["agent"]) == (forge_kind, REPO, "fake")
    assert row["threads_started"] == 1
    assert (row["prs_opened"], row["prs_merged"], row["prs_closed_unmerged"]) == (1, 1, 0)
    assert row["merged_rate"] == 1.0
    assert row["rounds_to_green"]["count"] == 1 and row["rounds_to_green"]["median"] == 1
    first_push = row["first_push_seconds"]
    assert first_push["count"] == 1 and 0 < first_push["median"] < 120
    ci_fix = row["ci_fix_seconds"]
    assert ci_fix["count"] == 1 and 0 < ci_fix["median"] < 120
    assert (row["feedback_accepted"], row["feedback_answered"], row["answered_rate"]) == (2, 2, 1.0)
    assert row["waiting"] == 0 and row["waiting_seconds"]["max"] is None

    m = scrape(service.url)
    labels = {"forge": forge_kind, "repo": REPO, "agent": "fake"}
    assert value(m, "baton_forge_prs_merged_total", **labels) == 1
    assert value(m, "baton_forge_rounds_to_green", quantile="0.5", **labels) == 1
    assert value(m, "baton_forge_ci_fix_seconds", quantile="0.5", **labels) == pytest.approx(ci_fix["median"])
    assert value(m, "baton_forge_feedback_answered_total", **labels) == 2
