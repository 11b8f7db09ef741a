"""The forge loop's outcomes (:mod:`baton.forge.data.outcomes`) from a history written into the store with
known times (SQLite and PostgreSQL): threads, PRs opened / merged / closed unmerged, rounds to green,
time to the first push and from a CI failure to its fix, feedback answered of accepted, threads
waiting on a person; the facts the store keeps on its own (since when a thread waits, when it closed,
merged once and for good, the first PR opening); what a published turn counts as (hostile reports
too); the fixed number of queries however many threads; migration 17 over a database at 16 with rows.
``/metrics`` and ``GET /v1/forge/outcomes`` over a real service show the same numbers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from baton.forge.background.feedback import act_on_closed
from baton.forge.data.config import ForgeSettings
from baton.forge.data.outcomes import (
    Push,
    RepoOutcomes,
    Spread,
    answered,
    ci_fix_times,
    outcomes,
    pushed_head,
)
from baton.forge.data.records import Binding, BindingStatus, EventRecord, EventStatus, FeedbackKind
from baton.forge.data.tables import forge_store
from baton.forge.reading.delivery import Closed
from baton.forge.turn.loop import ForgeLoop
from baton.models import Access
from baton.settings import Settings, load_settings
from baton.store import engine as store_engine
from baton.store.engine import dispose_engine
from baton.store.migrations import MIGRATIONS
from baton.store.sql import SQLStore
from tests.conftest import FAST
from tests.forge_rows import config_toml
from tests.service.test_metrics import scrape, value
from tests.service_fixtures import Service, run_service

NOW = 5000.0
REPO = "acme/api"


@pytest.fixture
def store(store_url: str) -> Iterator[SQLStore]:
    opened = SQLStore(store_url)
    yield opened
    opened.close()


def bind(store: SQLStore, number: int, at: float, agent: str = "claude", pr: int | None = None) -> None:
    binding = Binding(
        forge="gh",
        repo=REPO,
        number=number,
        agent=agent,
        repo_slug="github.com/acme/api",
        thread=f"issue-{number}",
        repo_url="https://github.com/acme/api.git",
        pr=pr,
        created_at=at,
        updated_at=at,
    )
    assert forge_store(store).bind(binding)[1]


def event(
    store: SQLStore,
    number: int,
    identity: str,
    at: float,
    job: str | None = None,
    status: EventStatus = EventStatus.DISPATCHED,
    kind: FeedbackKind | None = None,
) -> None:
    kind = kind or (FeedbackKind.CI_FAILURE if identity.startswith("ci:") else FeedbackKind.COMMENT)
    record = EventRecord(
        forge="gh",
        repo=REPO,
        number=number,
        identity=identity,
        kind=kind,
        status=status,
        event={},
        received_at=at,
        access=Access.EDIT,
        job_id=job,
    )
    assert forge_store(store).add_forge_event(record) is not None


def turn(store: SQLStore, number: int, job: str, submitted: float, published: float, **publish: Any) -> None:
    assert forge_store(store).add_forge_turn(job, "gh", REPO, number, ["comment"], submitted)
    assert forge_store(store).mark_published(job, {"outcome": "succeeded", **publish}, published)


def move(store: SQLStore, number: int, status: BindingStatus, at: float) -> None:
    binding = forge_store(store).get_binding("gh", REPO, number)
    assert binding is not None
    binding.status, binding.updated_at = status, at
    assert forge_store(store).save_binding(binding)


def history(store: SQLStore) -> None:
    """Three threads of claude's on acme/api and one of codex's:

    #1 (bound at 1000): the task pushes h1 at 1100 and opens the PR; CI fails on h1 (1200, signature
    S1), the turn pushes h2 (1500); S1 fails again on h2 (1600), the turn pushes h3 (1900) — S1 is gone;
    a review (2000) is answered without a push (2100); merged (2200). Rounds 2, first push 100 s, CI
    fixed in 700 s, 4 of 4 answered.
    #2 (bound at 3000): pushes h5 at 3300 and opens its PR; CI fails (3400, S2), the turn fails and
    says nothing; a comment is held and the thread waits on a person from 3800; a dropped comment is
    not counted. First push 300 s, S2 unfixed, 1 of 3 answered, waiting 1200 s at 5000.
    #3 (bound at 4000): pushes at 4100 and opens its PR, closed unmerged at 4500 (then saved again at
    4700: still closed at 4500). First push 100 s, 1 of 1 answered.
    #4 (codex, bound at 4200 on its own PR): nothing yet."""
    bind(store, 1, 1000)
    link_pr(store, 1, 11)  # what publish saves with the PR it opened
    event(store, 1, "comment:1", 1000, "j1")
    turn(store, 1, "j1", 1000, 1100, pushed=True, head="h1", reply="posted")
    forge_store(store).mark_pr_opened("gh", REPO, 1, 1100)
    event(store, 1, "ci:h1:S1", 1200, "j2")
    turn(store, 1, "j2", 1200, 1500, pushed=True, head="h2")
    event(store, 1, "ci:h2:S1", 1600, "j3")
    turn(store, 1, "j3", 1600, 1900, pushed=True, head="h3")
    event(store, 1, "review:9", 2000, "j4", kind=FeedbackKind.REVIEW)
    turn(store, 1, "j4", 2000, 2100, pushed=False, why="nothing new to push", reply="posted")
    move(store, 1, BindingStatus.CLOSED, 2200)
    forge_store(store).mark_merged("gh", REPO, 11)  # by its PR's number (11): the binding

    bind(store, 2, 3000)
    event(store, 2, "comment:2", 3000, "j5")
    turn(store, 2, "j5", 3000, 3300, pushed=True, head="h5")
    forge_store(store).mark_pr_opened("gh", REPO, 2, 3300)
    event(store, 2, "ci:h5:S2", 3400, "j6")
    turn(store, 2, "j6", 3400, 3700, outcome="failed")
    event(store, 2, "comment:3", 3750, status=EventStatus.HELD)
    event(store, 2, "comment:4", 3760, status=EventStatus.DROPPED)
    move(store, 2, BindingStatus.NEEDS_HUMAN, 3800)
    move(store, 2, BindingStatus.NEEDS_HUMAN, 3900)  # saved again while it waits: still since 3800

    bind(store, 3, 4000)
    event(store, 3, "comment:5", 4000, "j7")
    turn(store, 3, "j7", 4000, 4100, pushed=True, head="h7")
    forge_store(store).mark_pr_opened("gh", REPO, 3, 4100)
    forge_store(store).mark_pr_opened("gh", REPO, 3, 4400)  # the first opening is kept
    move(store, 3, BindingStatus.CLOSED, 4500)
    move(store, 3, BindingStatus.CLOSED, 4700)

    bind(store, 4, 4200, agent="codex", pr=4)


def link_pr(store: SQLStore, number: int, pr: int) -> None:
    binding = forge_store(store).get_binding("gh", REPO, number)
    assert binding is not None
    binding.pr = pr
    assert forge_store(store).save_binding(binding)


def test_the_outcomes_of_a_known_history(store: SQLStore) -> None:
    history(store)
    claude, codex = outcomes(store, NOW)
    assert (claude.forge, claude.repo, claude.agent) == ("gh", REPO, "claude")
    assert (claude.threads, claude.prs_opened, claude.prs_merged, claude.prs_closed) == (3, 3, 1, 1)
    assert claude.merged_rate == 0.5
    assert claude.rounds == Spread(1, 2.0, 2.0, 2, 2)
    assert claude.first_push == Spread(3, 500.0, 100.0, 300.0, 300.0)
    assert claude.ci_fix == Spread(1, 700.0, 700.0, 700.0, 700.0)
    assert (claude.accepted, claude.answered, claude.answered_rate) == (8, 6, 0.75)
    assert claude.waiting == Spread(1, 1200.0, 1200.0, 1200.0, 1200.0)
    assert codex == RepoOutcomes("gh", REPO, "codex", threads=1)  # its own PR: not one baton opened
    # the threads bound since 3500: #3 and #4 only
    recent = {o.agent: o for o in outcomes(store, NOW, since=3500)}
    assert (recent["claude"].threads, recent["claude"].prs_closed, recent["claude"].accepted) == (1, 1, 1)
    assert recent["claude"].waiting.count == 0 and recent["codex"].threads == 1
    json = claude.to_json()
    assert json["threads_started"] == 3 and json["prs_closed_unmerged"] == 1
    assert json["ci_fix_seconds"] == {"count": 1, "sum": 700.0, "median": 700.0, "p90": 700.0, "max": 700.0}


def test_the_store_keeps_the_outcome_facts_across_saves(store: SQLStore) -> None:
    bind(store, 5, 100)
    move(store, 5, BindingStatus.NEEDS_HUMAN, 200)
    move(store, 5, BindingStatus.NEEDS_HUMAN, 300)
    assert facts(store, 5) == (None, None, None, 200.0)
    move(store, 5, BindingStatus.ACTIVE, 400)  # resumed: it waits no more
    assert facts(store, 5) == (None, None, None, None)
    move(store, 5, BindingStatus.NEEDS_HUMAN, 500)  # a new wait starts anew
    assert facts(store, 5)[3] == 500.0
    move(store, 5, BindingStatus.CLOSED, 600)
    forge_store(store).mark_merged("gh", REPO, 5)
    move(store, 5, BindingStatus.CLOSED, 700)
    assert facts(store, 5) == (None, 600.0, 1, None)
    binding = forge_store(store).get_binding("gh", REPO, 5)
    assert binding is not None and "merged" not in binding.to_json()  # not on the record
    forge_store(store).mark_merged("gh", REPO, 999)  # bound to nothing: nothing happens
    assert forge_store(store).get_binding("gh", REPO, 999) is None


def test_a_merge_counts_whichever_close_the_webhooks_bring_first(store: SQLStore, settings: Settings) -> None:
    """A PR that closes its issue: GitHub may deliver the issue's close before the PR's. The issue's
    close closes the binding, the PR's merged close still records the merge; a PR closed without a
    merge is closed unmerged."""
    loop = ForgeLoop(settings, store, ForgeSettings(), lambda _job: None, clock=lambda: 900.0)
    for number in (1, 2, 3):
        bind(store, number, 100)
        link_pr(store, number, 10 + number)
        forge_store(store).mark_pr_opened("gh", REPO, number, 200)
    assert "closed" in act_on_closed(loop, Closed("gh", REPO, 1))  # the issue first
    assert "ignored" in act_on_closed(loop, Closed("gh", REPO, 11, merged=True))  # closed already
    assert "closed" in act_on_closed(loop, Closed("gh", REPO, 12, merged=True))  # the PR first
    assert "ignored" in act_on_closed(loop, Closed("gh", REPO, 2))
    assert "closed" in act_on_closed(loop, Closed("gh", REPO, 13))  # closed, not merged
    assert [facts(store, n)[1:3] for n in (1, 2, 3)] == [(900.0, 1), (900.0, 1), (900.0, None)]
    binding = forge_store(store).get_binding("gh", REPO, 2)
    assert binding is not None and binding.note == "merged"
    [row] = outcomes(store, 1000.0)
    assert (row.prs_opened, row.prs_merged, row.prs_closed, row.merged_rate) == (3, 2, 1, 0.6667)


def facts(store: SQLStore, number: int) -> tuple[Any, ...]:
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT pr_opened_at, closed_at, merged, waiting_since FROM forge_bindings WHERE number = :n"
            ),
            {"n": number},
        ).one()
    return tuple(row)


def test_ci_fix_times_follow_each_signature_to_the_push_that_ends_it() -> None:
    pushes = [Push(150, "h2"), Push(300, "h3"), Push(500, "h4"), Push(800, "h5")]
    failures = [
        (100.0, "h1", "A"),  # A on h1; h2 fails A again (200), h3 does not: fixed at 300
        (200.0, "h2", "A"),
        (120.0, "h1", "B"),  # B on h1: h2 shows no B, fixed at 150
        (600.0, "h4", "A"),  # A back on h4, after the fix: a new failure, fixed by h5 at 800
        (900.0, "h5", "C"),  # no push after it: not counted
    ]
    assert sorted(ci_fix_times(failures, pushes)) == [30.0, 200.0, 200.0]
    # a head that fails the same way later was no fix: the next push is
    assert ci_fix_times([(100.0, "h1", "A"), (200.0, "h2", "A"), (400.0, "h3", "A")], pushes) == [400.0]
    assert ci_fix_times([], pushes) == [] and ci_fix_times(failures, []) == []


@pytest.mark.parametrize(
    ("publish", "head", "answer"),
    [
        ({"pushed": True, "head": "abc"}, "abc", True),
        ({"pushed": False, "reply": "posted"}, None, True),
        ({"pushed": False, "reply": "posted before"}, None, True),
        ({"pushed": False, "reply": "in the status comment"}, None, True),
        ({"pushed": False, "asked": True, "question": "posted"}, None, True),  # needs_input
        ({"pushed": False, "asked": True, "question": "posted before"}, None, True),
        ({"pushed": False, "asked": True, "question": "failed: 502 Bad Gateway"}, None, False),
        ({"pushed": False, "question": "Which base? (a question's text is no report)"}, None, False),
        ({"pushed": False, "reply": "failed: 502"}, None, False),
        ({"pushed": False, "why": "nothing new to push"}, None, False),
        ({"pushed": "true", "head": "abc", "reply": "Posted"}, None, False),  # only what publish says
        ({"pushed": True, "head": ""}, None, True),
        ({"error": "RuntimeError: boom"}, None, False),
        ({"pushed": True, "head": "\x00" * 3, "reply": ["posted"]}, "\x00" * 3, True),
    ],
)
def test_what_a_published_turn_counts_as(publish: dict[str, Any], head: str | None, answer: bool) -> None:
    assert pushed_head(publish) == head
    assert answered(publish) is answer


def test_the_outcomes_cost_four_queries_however_many_threads(store: SQLStore) -> None:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    for number in range(1, 201):
        bind(store, number, float(number))
        event(store, number, f"comment:{number}", float(number), f"j{number}")
        turn(store, number, f"j{number}", float(number), float(number) + 10, pushed=True, head=f"h{number}")
    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        [row] = outcomes(store, NOW)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    assert row.threads == 200 and row.first_push.median == 10.0 and row.answered == 200
    assert len(statements) == 4, statements


def test_migration_17_over_a_database_at_16_keeps_what_its_rows_say(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        patched.setattr(store_engine, "MIGRATIONS", MIGRATIONS[:16])
        old = SQLStore(store_url)
        assert old.schema_version() == 16
        with old.engine.begin() as conn:
            columns = (
                "forge, repo, number, agent, repo_slug, thread, repo_url, status, pr, access, seen_at, "
                "note, created_at, updated_at"
            )
            for number, status, pr, note in (
                (1, "closed", 11, "merged"),
                (2, "closed", 12, "closed on the forge"),
                (3, "needs_human", None, "a budget is spent"),
                (4, "active", 4, None),  # started on its own PR
            ):
                conn.execute(
                    sa.text(
                        f"INSERT INTO forge_bindings ({columns}) VALUES ('gh', '{REPO}', :n, 'claude', 's', "
                        ":t, 'u', :status, :pr, 'edit', 0, :note, 100, 300)"
                    ),
                    {"n": number, "t": f"t{number}", "status": status, "pr": pr, "note": note},
                )
        old.audit("forge.pr_opened", f"gh:{REPO}#1", "baton", {"pr": 11})
        old.close()
        dispose_engine(store_url)

    new = SQLStore(store_url)  # opening migrates
    try:
        assert MIGRATIONS[16][0] == 17 and new.schema_version() == MIGRATIONS[-1][0]
        opened_1 = facts(new, 1)[0]
        assert opened_1 is not None and opened_1 > 1_000_000  # the audit row's time
        assert facts(new, 1)[1:] == (300.0, 1, None)
        assert facts(new, 2) == (300.0, 300.0, None, None)  # no audit row: its last change
        assert facts(new, 3) == (None, None, None, 300.0)
        assert facts(new, 4) == (None, None, None, None)
        [row] = outcomes(new, 400.0)
        assert (row.threads, row.prs_opened, row.prs_merged, row.prs_closed) == (4, 2, 1, 1)
        assert row.waiting == Spread(1, 100.0, 100.0, 100.0, 100.0)
    finally:
        new.close()


# -- /metrics and the API over a real service --------------------------------------------------------


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    home = tmp_path / "home"
    config_toml(home)
    settings = load_settings(overrides={"home": str(home), **FAST, "forge_reconcile": 0}, environ={})
    with run_service(settings) as running:
        yield running


def test_metrics_and_the_api_show_the_outcomes(service: Service) -> None:
    store = service.store
    assert isinstance(store, SQLStore)
    empty = httpx.get(f"{service.url}/v1/forge/outcomes", headers=read(service))
    assert empty.status_code == 200 and empty.json()["repos"] == [] and empty.json()["since"] is None
    history(store)
    started = time.time()
    m = scrape(service.url)
    scraped = time.time() - started
    labels = {"forge": "gh", "repo": REPO, "agent": "claude"}
    assert value(m, "baton_forge_threads_started_total", **labels) == 3
    assert value(m, "baton_forge_threads_started_total", **{**labels, "agent": "codex"}) == 1
    assert value(m, "baton_forge_prs_opened_total", **labels) == 3
    assert value(m, "baton_forge_prs_merged_total", **labels) == 1
    assert value(m, "baton_forge_prs_closed_unmerged_total", **labels) == 1
    assert value(m, "baton_forge_feedback_accepted_total", **labels) == 8
    assert value(m, "baton_forge_feedback_answered_total", **labels) == 6
    assert value(m, "baton_forge_rounds_to_green", quantile="0.5", **labels) == 2
    assert value(m, "baton_forge_rounds_to_green_count", **labels) == 1
    assert value(m, "baton_forge_first_push_seconds", quantile="0.5", **labels) == 100
    assert value(m, "baton_forge_first_push_seconds", quantile="0.9", **labels) == 300
    assert value(m, "baton_forge_first_push_seconds_sum", **labels) == 500
    assert value(m, "baton_forge_ci_fix_seconds", quantile="0.5", **labels) == 700
    assert value(m, "baton_forge_waiting_seconds_count", **labels) == 1
    # the waits are measured against the wall clock: thread #2 has waited since 3800 (1970)
    assert value(m, "baton_forge_waiting_longest_seconds", **labels) >= started - 3800
    codex = {**labels, "agent": "codex"}
    assert ("baton_forge_ci_fix_seconds", frozenset({**codex, "quantile": "0.5"}.items())) not in m
    assert value(m, "baton_forge_ci_fix_seconds_count", **codex) == 0
    assert scraped < 10

    answer = httpx.get(f"{service.url}/v1/forge/outcomes", headers=read(service))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    claude = next(r for r in body["repos"] if r["agent"] == "claude")
    assert claude["threads_started"] == 3 and claude["prs_merged"] == 1 and claude["merged_rate"] == 0.5
    assert claude["rounds_to_green"]["median"] == 2 and claude["ci_fix_seconds"]["median"] == 700
    assert claude["feedback_answered"] == 6 and claude["answered_rate"] == 0.75 and claude["waiting"] == 1
    # threads bound in the last day: none of 1970's
    recent = httpx.get(f"{service.url}/v1/forge/outcomes", params={"days": 1}, headers=read(service))
    assert recent.status_code == 200 and recent.json()["repos"] == [] and recent.json()["since"]
    assert httpx.get(f"{service.url}/v1/forge/outcomes").status_code == 401
    bad = httpx.get(f"{service.url}/v1/forge/outcomes", params={"days": 0}, headers=read(service))
    assert bad.status_code == 422


def read(service: Service) -> dict[str, str]:
    return {"Authorization": f"Bearer {service.token('read')}"}
