"""``baton answer`` at the command line on a forge thread's question (a real service, the fake GitHub,
the fake agent): the answer's run is run at once in the command's own process, off the service, and
when it has ended the thread's status comment says how — no longer that the thread waits for an
answer — with what it changed left for the thread's next turn to push."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest

from baton.forge.data.records import BindingStatus
from baton.forge.writes import publish
from baton.testing.fake import register_fake
from baton.testing.fake_forge import FakeForge
from tests.forge.turn.test_forge_loop import ASK
from tests.forge_fixtures import (  # noqa: F401 (fixtures)
    REPO,
    binding_of,
    fake_fixture,
    forge_kind_fixture,
    forge_service_fixture,
    settled,
    statuses,
)
from tests.service_fixtures import Service

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> str:
    register_fake()
    monkeypatch.setenv("FAKE_AGENT_WRITE", "notes.md")
    return "fake"


@pytest.fixture
def model() -> Iterator[None]:
    yield None  # the fake agent needs no model


def test_an_answer_at_the_command_line_updates_the_status_comment_when_its_run_ends(
    fake: FakeForge, forge_service: Service, cli: Cli
) -> None:
    issue = fake.open_issue(REPO, "alice", "Add a greeting", "")
    fake.comment(REPO, issue, "alice", f"@baton add a greeting {ASK}")
    settled(forge_service, fake, 1)
    [status] = statuses(fake, issue)
    assert publish.ASKED in status and "needs_input" in status, status
    slug = str(binding_of(forge_service, issue)["repo_slug"])
    done = cli("answer", "-a", "fake", "-r", slug, "-t", f"issue-{issue}", "hello", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "status comment was not edited" not in done.stderr, done.stderr
    [status] = statuses(fake, issue)  # the one status comment, edited
    assert publish.ASKED not in status and "**succeeded**" in status, status
    assert publish.ELSEWHERE in status, status
    binding = binding_of(forge_service, issue)
    assert binding["status"] == BindingStatus.ACTIVE.value
    [run] = [r for r in forge_service.store.list_runs("fake", slug, f"issue-{issue}", limit=1)]
    assert f"`{run.run_id}`" in status
