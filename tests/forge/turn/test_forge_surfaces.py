"""A bound thread where people look: ``baton sessions show`` (table and ``--json``), ``GET /v1/session``,
``/metrics`` (over a real uvicorn), and under them the store's ``forge_turn_counts`` (SQLite and
PostgreSQL) and :func:`baton.forge.turn.threads.state_from_store` (links per forge kind, budgets). The
thread is written straight into the store (:mod:`tests.forge_rows`); the dashboard's pages are in
``test_dashboard_forge``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess

import httpx
import pytest

from baton import RunRequest, run
from baton.forge.data.config import ForgeConfig
from baton.forge.data.model import Budget, ForgeKind
from baton.forge.data.records import Binding
from baton.forge.data.tables import forge_store
from baton.forge.turn.threads import key_state, links, state_from_store
from baton.models import JobRecord, JobStatus
from baton.settings import Settings, load_settings
from baton.store import Store
from baton.store.sql import SQLStore
from tests.conftest import FAST
from tests.forge_rows import (
    BODY,
    EVIL_LOGIN,
    EVIL_REASON,
    NOTE,
    NUMBER,
    PR,
    REPO,
    SIGNATURE,
    WEB,
    config_toml,
    seed_thread,
)
from tests.service.test_metrics import scrape, value
from tests.service_fixtures import Service, run_service

Cli = Callable[..., CompletedProcess[str]]


def a_binding(number: int = 7, pr: int | None = None, **fields: object) -> Binding:
    values: dict[str, object] = {
        "forge": "gh",
        "repo": "acme/api",
        "number": number,
        "agent": "claude",
        "repo_slug": "github.com/acme/api",
        "thread": f"issue-{number}",
        "repo_url": "https://github.com/acme/api.git",
        "pr": pr,
        "created_at": 1.0,
        "updated_at": 1.0,
    }
    return Binding(**{**values, **fields})  # type: ignore[arg-type]


def forge_config(kind: ForgeKind, web_url: str) -> ForgeConfig:
    return ForgeConfig("gh", kind, web_url + "/api", web_url, "T", "baton", "@baton")


# -- links and budgets, from the store alone ----------------------------------------------------------


def test_links_follow_the_forge_kind() -> None:
    issue_with_pr = a_binding(7, pr=9)
    github = forge_config(ForgeKind.GITHUB, "https://github.com")
    gitea = forge_config(ForgeKind.GITEA, "https://git.example.org/sub")
    assert links(issue_with_pr, github) == {
        "issue": "https://github.com/acme/api/issues/7",
        "pr": "https://github.com/acme/api/pull/9",
    }
    assert links(issue_with_pr, gitea) == {
        "issue": "https://git.example.org/sub/acme/api/issues/7",
        "pr": "https://git.example.org/sub/acme/api/pulls/9",
    }
    # a thread that started on its PR has no issue; one without a PR yet has no PR link
    assert links(a_binding(9, pr=9), github) == {"issue": None, "pr": "https://github.com/acme/api/pull/9"}
    assert links(a_binding(7), github) == {"issue": "https://github.com/acme/api/issues/7", "pr": None}
    # GitLab: issue #7 and merge request !7 are two things, each at its own address
    gitlab = forge_config(ForgeKind.GITLAB, "https://gitlab.example.com")
    assert links(a_binding(7, pr=7), gitlab) == {
        "issue": "https://gitlab.example.com/acme/api/-/issues/7",
        "pr": "https://gitlab.example.com/acme/api/-/merge_requests/7",
    }
    started_on_mr = links(a_binding(7, pr=7, on_pr=True), gitlab)
    assert started_on_mr == {"issue": None, "pr": "https://gitlab.example.com/acme/api/-/merge_requests/7"}
    # no forge configured here, or one whose address is not http(s): no links at all
    assert links(issue_with_pr, None) == {"issue": None, "pr": None}
    assert links(issue_with_pr, forge_config(ForgeKind.GITHUB, "javascript:x")) == {"issue": None, "pr": None}


def test_state_from_store_counts_budgets_and_keeps_bodies_out(store: Store) -> None:
    seeded = seed_thread(store, "claude", "github.com/acme/api", "issue-42", "run-1")
    old = time.time() - 2 * 86_400  # a turn of two days ago is not today's
    assert forge_store(store).add_forge_turn("run-0", "github", REPO, NUMBER, ["ci_failure"], old)
    github = forge_config(ForgeKind.GITHUB, WEB)
    budget = Budget(per_failure=3, per_day=5)
    state = state_from_store(forge_store(store), seeded.binding, budget, github, last=2)
    assert state["needs_human"] is True and state["binding"]["note"] == NOTE
    assert state["links"] == {"issue": f"{WEB}/{REPO}/issues/{NUMBER}", "pr": f"{WEB}/{REPO}/pull/{PR}"}
    assert state["events_total"] == 4
    assert [e["identity"] for e in state["events"]] == ["review:3", f"ci:abc123:{SIGNATURE}"]
    assert state["budget"] == {
        "per_failure": 3,
        "per_day": 5,
        "turns_today": 1,
        "failures": [{"signature": SIGNATURE, "checks": ["lint", "test"], "spent": 3}],
    }
    assert BODY not in json.dumps(state)
    # the key's state is the same without the operator's configuration, less the limits and links
    bare = key_state(store, "claude", "github.com/acme/api", "issue-42")
    assert bare is not None and bare["links"] == {"issue": None, "pr": None}
    assert bare["budget"]["per_failure"] is None and bare["budget"]["failures"][0]["spent"] == 3
    assert key_state(store, "claude", "github.com/acme/api", "issue-1") is None


# -- the store's counts for /metrics ------------------------------------------------------------------


def job(job_id: str, status: JobStatus, outcome: str | None = None) -> JobRecord:
    return JobRecord(
        job_id, "claude", "github.com/acme/api", "issue-7", {}, status, "t", 1.0, outcome=outcome
    )


def test_forge_turn_counts_by_kind_and_outcome(store_url: str) -> None:
    store = SQLStore(store_url)
    try:
        assert forge_store(store).forge_turn_counts() == {"turns": [], "refused": 0}
        store.add_job(job("j-ok", JobStatus.DONE, "succeeded"))
        store.add_job(job("j-fail", JobStatus.DONE, "failed"))
        store.add_job(job("j-run", JobStatus.RUNNING))
        forge_store(store).add_forge_turn("j-ok", "gh", REPO, 7, ["comment", "review"], 1.0)
        forge_store(store).add_forge_turn("j-fail", "gh", REPO, 7, ["ci_failure"], 2.0)
        forge_store(store).add_forge_turn("j-run", "gh", REPO, 7, ["ci_failure"], 3.0)
        forge_store(store).add_forge_turn("j-gone", "gh", REPO, 7, ["comment"], 4.0)  # its job was removed
        for i in range(2):
            store.audit("forge.refused", f"gh:{REPO}#7", f"forge:gh:m{i}", {"reason": "untrusted"})
        store.audit("forge.accepted", f"gh:{REPO}#7", "forge:gh:alice", {})
        assert forge_store(store).forge_turn_counts() == {
            "turns": [
                ("ci_failure", "failed", 1),
                ("ci_failure", "running", 1),
                ("comment", "succeeded", 1),
                ("comment", "unknown", 1),
                ("review", "succeeded", 1),
            ],
            "refused": 2,
        }
    finally:
        store.close()


# -- baton sessions show ------------------------------------------------------------------------------


def a_session(settings: Settings, repo: Path, thread: str = "issue-42") -> tuple[str, str]:
    """A real session of the fake agent; its slug and its run's id."""
    result = run(RunRequest("fake", str(repo), thread, "start"), settings)
    assert result.ok, result.run.error
    return result.session.repo, result.run.id


def test_sessions_show_prints_the_forge_thread(
    settings: Settings, store: Store, src_repo: Path, cli_here: Cli
) -> None:
    slug, run_id = a_session(settings, src_repo)
    config_toml(settings.home)
    key = ["--agent", "fake", "--repo", slug, "--thread", "issue-42"]
    unbound = cli_here("sessions", "show", *key, "--json")
    assert unbound.returncode == 0, unbound.stderr
    assert json.loads(unbound.stdout)["forge"] is None
    seed_thread(store, "fake", slug, "issue-42", run_id)

    shown = cli_here("sessions", "show", *key, "--json")
    assert shown.returncode == 0, shown.stderr
    forge = json.loads(shown.stdout)["forge"]
    assert forge["binding"]["conversation"] == f"github:{REPO}#{NUMBER}"
    assert forge["binding"]["status"] == "needs_human" and forge["binding"]["note"] == NOTE
    assert forge["binding"]["pr"] == PR and forge["links"]["pr"] == f"{WEB}/{REPO}/pull/{PR}"
    assert [(e["kind"], e["actor"], e["status"]) for e in forge["events"]] == [
        ("comment", "alice", "dispatched"),
        ("comment", EVIL_LOGIN, "dropped"),
        ("review", "bob", "dispatched"),
        ("ci_failure", "github-actions", "held"),
    ]
    assert forge["events"][0]["run_id"] == run_id
    assert forge["budget"]["failures"] == [{"signature": SIGNATURE, "checks": ["lint", "test"], "spent": 3}]
    assert BODY not in shown.stdout

    table = cli_here("sessions", "show", *key, env={"COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    text = table.stdout
    assert f"forge: github:{REPO}#{NUMBER} (needs_human)" in text
    assert NOTE in text  # Rich's markup would have eaten the <b>…</b>: not markup, so printed as is
    assert f"PR #{PR}: {WEB}/{REPO}/pull/{PR}" in text
    assert f"issue #{NUMBER}: {WEB}/{REPO}/issues/{NUMBER}" in text
    assert "turns today: 1 of 5" in text and "CI failure (lint, test): 3 turn(s) of 3" in text
    assert EVIL_LOGIN in text and "ci_failure" in text and "held" in text
    assert BODY not in text


def test_sessions_show_without_a_readable_forge_config_still_shows_the_thread(
    settings: Settings, store: Store, src_repo: Path, cli_here: Cli
) -> None:
    slug, run_id = a_session(settings, src_repo)
    (settings.home / "config.toml").write_text('[forge.github]\nkind = "nonsense"\n')
    seed_thread(store, "fake", slug, "issue-42", run_id)
    shown = cli_here("sessions", "show", "--agent", "fake", "--repo", slug, "--thread", "issue-42", "--json")
    assert shown.returncode == 0, shown.stderr
    forge = json.loads(shown.stdout)["forge"]
    assert forge["links"] == {"issue": None, "pr": None} and forge["budget"]["per_day"] is None
    assert forge["binding"]["status"] == "needs_human"


# -- the API and /metrics over a real service ----------------------------------------------------------


@pytest.fixture
def forge_service(home: Path) -> Iterator[Service]:
    """A service whose home configures ``REPO``'s forge (no reconcile: nothing asks the forge)."""
    config_toml(home)
    settings = load_settings(overrides={"home": str(home), **FAST, "forge_reconcile": 0}, environ={})
    with run_service(settings) as service:
        yield service


def test_api_session_has_the_forge_field(forge_service: Service, src_repo: Path) -> None:
    slug, run_id = a_session(forge_service.settings, src_repo)
    headers = {"Authorization": f"Bearer {forge_service.token('read')}"}
    params = {"agent": "fake", "repo": slug, "thread": "issue-42"}
    answer = httpx.get(f"{forge_service.url}/v1/session", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["forge"] is None
    seed_thread(forge_service.store, "fake", slug, "issue-42", run_id)
    answer = httpx.get(f"{forge_service.url}/v1/session", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    forge = answer.json()["forge"]
    assert forge["binding"]["conversation"] == f"github:{REPO}#{NUMBER}"
    assert forge["links"]["issue"] == f"{WEB}/{REPO}/issues/{NUMBER}"
    assert forge["budget"]["per_failure"] == 3 and forge["budget"]["turns_today"] == 1
    assert {e["reason"] for e in forge["events"]} >= {EVIL_REASON}
    assert BODY not in answer.text
    schema = httpx.get(f"{forge_service.url}/openapi.json", timeout=60).json()["components"]["schemas"]
    field = schema["SessionDetail"]["properties"]["forge"]
    assert "forge" not in schema["SessionDetail"].get("required", [])
    assert "never a comment's text" in field["description"]


def test_metrics_count_the_forge_loop(forge_service: Service, src_repo: Path) -> None:
    empty = scrape(forge_service.url)
    assert value(empty, "baton_forge_threads", status="active") == 0
    assert (
        value(empty, "baton_forge_needs_human") == 0 and ("baton_forge_refused_total", frozenset()) in empty
    )
    slug, run_id = a_session(forge_service.settings, src_repo)
    store = forge_service.store
    seed_thread(store, "fake", slug, "issue-42", run_id)
    forge_store(store).bind(a_binding(7))  # a second thread, active
    store.add_job(job(run_id, JobStatus.DONE, "succeeded"))
    store.audit("forge.refused", f"github:{REPO}#42", f"forge:github:{EVIL_LOGIN}", {"reason": EVIL_REASON})
    m = scrape(forge_service.url)
    assert value(m, "baton_forge_events_total", kind="comment", status="dispatched") == 1
    assert value(m, "baton_forge_events_total", kind="comment", status="dropped") == 1
    assert value(m, "baton_forge_events_total", kind="ci_failure", status="held") == 1
    assert value(m, "baton_forge_threads", status="needs_human") == 1
    assert value(m, "baton_forge_threads", status="active") == 1
    assert ("baton_forge_threads", frozenset({("status", "closed")})) in m  # every status, zeros too
    assert value(m, "baton_forge_needs_human") == 1
    assert value(m, "baton_forge_turns_total", kind="comment", outcome="succeeded") == 1
    assert value(m, "baton_forge_turns_total", kind="review", outcome="succeeded") == 1
    assert value(m, "baton_forge_refused_total") == 1
