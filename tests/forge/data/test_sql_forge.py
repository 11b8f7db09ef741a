"""The forge room's tables (``baton.forge.data.tables``, ``baton.forge.data.sql``) on SQLite and on
PostgreSQL: bindings found by number and by PR, a thread bound once, keyset paging; and what must
happen once across machines, raced from threads: an event inserted once (of 1,000 concurrent
inserts), a row claimed by one claimer, a turn published once, every budget spend counted. Migration
13 over a database at 12 with rows."""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from baton.errors import BadInput
from baton.forge.data.records import (
    Binding,
    BindingStatus,
    DeliveryRecord,
    DeliveryStatus,
    EventRecord,
    EventStatus,
    FeedbackKind,
)
from baton.forge.data.tables import delivery_store, forge_store
from baton.models import Access
from baton.store import engine as store_engine
from baton.store.engine import dispose_engine
from baton.store.migrations import MIGRATIONS
from baton.store.sql import SQLStore

T = TypeVar("T")


@pytest.fixture
def store(store_url: str) -> Iterator[SQLStore]:
    opened = SQLStore(store_url)
    yield opened
    opened.close()


def binding(number: int = 42, thread: str | None = None, **fields: Any) -> Binding:
    values: dict[str, Any] = {
        "forge": "gh",
        "repo": "acme/api",
        "number": number,
        "agent": "claude",
        "repo_slug": "github.com/acme/api",
        "thread": thread or f"issue-{number}",
        "repo_url": "https://github.com/acme/api.git",
        "created_at": 100.0,
        "updated_at": 100.0,
    }
    return Binding(**{**values, **fields})


def event(identity: str, number: int = 42, **fields: Any) -> EventRecord:
    values: dict[str, Any] = {
        "forge": "gh",
        "repo": "acme/api",
        "number": number,
        "identity": identity,
        "kind": FeedbackKind.COMMENT,
        "status": EventStatus.PENDING,
        "event": {"body": "please fix", "actor": {"login": "ana"}, "nested": [1, 2]},
        "received_at": 200.0,
    }
    return EventRecord(**{**values, **fields})


def race(n: int, call: Callable[[int], T], workers: int = 50) -> list[T]:
    """``call(i)`` for i < n from ``workers`` threads, all released together."""
    gate = threading.Barrier(min(n, workers))

    def started(i: int) -> T:
        if i < workers:
            gate.wait(timeout=60)
        return call(i)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(started, range(n)))


# -- bindings ---------------------------------------------------------------------------------------


def test_bind_stores_a_binding_once_and_finds_it_by_number_or_pr(store: SQLStore) -> None:
    new = binding(status_comment=2**40 + 7, access=Access.READ, seen_at=1.5, note="first")
    stored, created = forge_store(store).bind(new)
    assert created and stored == new

    again, created = forge_store(store).bind(binding(branch="other", note="second"))
    assert not created and again == new  # the stored one, not overwritten

    assert forge_store(store).get_binding("gh", "acme/api", 42) == new
    assert forge_store(store).get_binding("gh", "acme/api", 43) is None
    assert forge_store(store).get_binding("gh", "other/api", 42) is None
    assert forge_store(store).get_binding("gl", "acme/api", 42) is None

    new.pr, new.head_sha, new.updated_at = 43, "abc123", 150.0
    assert forge_store(store).save_binding(new)
    found = forge_store(store).get_binding("gh", "acme/api", 43)  # the PR's number finds the issue's binding
    assert found == new and found.status_comment == 2**40 + 7 and found.access is Access.READ
    assert forge_store(store).binding_for_key("claude", "github.com/acme/api", "issue-42") == new
    assert forge_store(store).binding_for_key("claude", "github.com/acme/api", "issue-43") is None

    # the PR is not bound a second time as its own conversation
    again, created = forge_store(store).bind(binding(43))
    assert not created and again.number == 42


def test_a_binding_of_its_own_number_comes_before_an_issue_whose_pr_it_is(store: SQLStore) -> None:
    forge_store(store).bind(binding(50))
    forge_store(store).bind(
        binding(7, pr=50)
    )  # a stale pr (a number the forge reused? a PR thread bound first)
    found = forge_store(store).get_binding("gh", "acme/api", 50)
    assert found is not None and found.number == 50


def test_a_thread_bound_to_another_conversation_is_bad_input(store: SQLStore) -> None:
    forge_store(store).bind(binding(42, thread="shared"))
    with pytest.raises(BadInput, match=r"gh:acme/api#43.*bound to gh:acme/api#42"):
        forge_store(store).bind(binding(43, thread="shared"))
    assert forge_store(store).get_binding("gh", "acme/api", 43) is None

    other, created = forge_store(store).bind(binding(44))
    assert created
    other.thread = "shared"
    with pytest.raises(BadInput, match="gh:acme/api#42"):
        forge_store(store).save_binding(other)
    assert forge_store(store).get_binding("gh", "acme/api", 44) == binding(44)


def test_save_binding_writes_every_field_and_says_when_it_is_gone(store: SQLStore) -> None:
    stored, _ = forge_store(store).bind(binding())
    changed = dataclasses.replace(
        stored,
        status=BindingStatus.NEEDS_HUMAN,
        pr=77,
        head_sha="f00",
        branch="baton/issue-42",
        access=Access.FULL,
        status_comment=3_000_000_000,
        etag='W/"x"',
        seen_at=300.5,
        note="budget spent",
        updated_at=301.0,
    )
    assert forge_store(store).save_binding(changed)
    assert forge_store(store).get_binding("gh", "acme/api", 42) == changed
    assert forge_store(store).unbind("gh", "acme/api", 42)
    assert not forge_store(store).unbind("gh", "acme/api", 42)
    assert not forge_store(store).save_binding(changed)
    assert forge_store(store).get_binding("gh", "acme/api", 42) is None


def test_list_bindings_pages_by_conversation_and_filters(store: SQLStore) -> None:
    keys = [("gh", "acme/api", 10), ("gh", "acme/api", 9), ("gh", "acme/web", 1), ("gl", "acme/api", 2)]
    for i, (forge, repo, number) in enumerate(keys):
        status = BindingStatus.CLOSED if i % 2 else BindingStatus.ACTIVE
        forge_store(store).bind(binding(number, thread=f"t{i}", forge=forge, repo=repo, status=status))

    def page(**kw: Any) -> list[tuple[str, str, int]]:
        return [(b.forge, b.repo, b.number) for b in forge_store(store).list_bindings(**kw)]

    ordered = sorted(keys)
    assert page() == ordered
    assert page(limit=2) == ordered[:2]
    assert page(limit=2, after=ordered[1]) == ordered[2:4]
    assert page(after=ordered[-1]) == []
    assert page(forge="gl") == [("gl", "acme/api", 2)]
    assert page(status=BindingStatus.CLOSED) == [("gh", "acme/api", 9), ("gl", "acme/api", 2)]
    assert page(status=BindingStatus.ACTIVE, forge="gh", after=("gh", "acme/api", 10)) == [
        ("gh", "acme/web", 1)
    ]

    # paging through all of them, two at a time
    seen: list[tuple[str, str, int]] = []
    after = None
    while chunk := page(limit=2, after=after):
        seen += chunk
        after = chunk[-1]
    assert seen == ordered


def test_concurrent_binds_of_one_conversation_make_one_binding(store: SQLStore) -> None:
    results = race(40, lambda i: forge_store(store).bind(binding(note=f"binder {i}")))
    assert sum(created for _b, created in results) == 1
    winner = next(b for b, created in results if created)
    assert all(b == winner for b, _created in results)
    assert len(forge_store(store).list_bindings()) == 1


def test_concurrent_binds_of_one_thread_to_many_conversations_bind_one(store: SQLStore) -> None:
    def bind(i: int) -> bool:
        try:
            return forge_store(store).bind(binding(100 + i, thread="contested"))[1]
        except BadInput:
            return False

    assert race(30, bind).count(True) == 1
    (only,) = forge_store(store).list_bindings()
    assert forge_store(store).binding_for_key("claude", "github.com/acme/api", "contested") == only


# -- events -----------------------------------------------------------------------------------------


def test_an_event_is_stored_once_and_comes_back_as_it_went_in(store: SQLStore) -> None:
    first = forge_store(store).add_forge_event(event("comment:1", access=Access.READ))
    assert first is not None and first.id is not None
    assert forge_store(store).add_forge_event(event("comment:1", number=99, received_at=201.0)) is None
    second = forge_store(store).add_forge_event(event("comment:2", kind=FeedbackKind.REVIEW))
    third = forge_store(store).add_forge_event(event("comment:1", repo="acme/web"))  # another repository's
    assert second is not None and third is not None
    assert second.id is not None and second.id > first.id

    listed = forge_store(store).forge_events("gh", "acme/api", 42)
    assert listed == [first, second]
    assert listed[0].event == {"body": "please fix", "actor": {"login": "ana"}, "nested": [1, 2]}
    assert listed[0].access is Access.READ and listed[1].kind is FeedbackKind.REVIEW
    assert forge_store(store).forge_events("gh", "acme/api", 42, limit=1) == [first]
    assert forge_store(store).forge_events("gh", "acme/api", 42, status=EventStatus.HELD) == []
    assert forge_store(store).recent_forge_events() == [third, second, first]
    assert forge_store(store).recent_forge_events(limit=1) == [third]


def test_events_are_claimed_held_and_dropped(store: SQLStore) -> None:
    ids = [
        e.id
        for i in range(4)
        if (e := forge_store(store).add_forge_event(event(f"c:{i}"))) and e.id is not None
    ]
    assert forge_store(store).set_forge_events(ids[3:], EventStatus.HELD, "budget spent") == 1
    assert forge_store(store).set_forge_events(ids[2:3], EventStatus.DROPPED, "stale") == 1
    assert forge_store(store).claim_forge_events(ids, "job-1") == [ids[0], ids[1], ids[3]]  # pending and held
    assert forge_store(store).claim_forge_events(ids, "job-2") == []
    assert forge_store(store).claim_forge_events([], "job-2") == []
    assert [e.id for e in forge_store(store).events_of_job("job-1")] == [ids[0], ids[1], ids[3]]
    assert forge_store(store).events_of_job("job-2") == []
    dropped = forge_store(store).forge_events("gh", "acme/api", 42, status=EventStatus.DROPPED)
    assert [(e.id, e.reason, e.job_id) for e in dropped] == [(ids[2], "stale", None)]
    held = forge_store(store).events_of_job("job-1")[-1]
    assert held.status is EventStatus.DISPATCHED and held.reason == "budget spent"
    assert forge_store(store).set_forge_events(ids, EventStatus.PENDING) == 4
    assert all(e.reason is None for e in forge_store(store).forge_events("gh", "acme/api", 42))
    assert forge_store(store).set_forge_events([], EventStatus.PENDING) == 0


def test_pending_forge_threads_names_each_conversation_waiting_once(store: SQLStore) -> None:
    assert forge_store(store).pending_forge_threads() == []
    for number, identity in ((42, "a"), (42, "b"), (7, "c"), (9, "d")):
        forge_store(store).add_forge_event(event(identity, number=number))
    forge_store(store).add_forge_event(event("e", repo="acme/web", number=1))
    (d,) = forge_store(store).forge_events("gh", "acme/api", 9)
    assert d.id is not None
    forge_store(store).set_forge_events([d.id], EventStatus.HELD, "needs a human")
    waiting = [("gh", "acme/api", 7, False), ("gh", "acme/api", 42, False), ("gh", "acme/web", 1, False)]
    assert forge_store(store).pending_forge_threads() == waiting
    assert forge_store(store).pending_forge_threads(limit=2) == waiting[:2]


def test_of_1000_concurrent_inserts_of_one_event_exactly_one_wins(store: SQLStore) -> None:
    results = race(
        1000,
        lambda i: forge_store(store).add_forge_event(event("comment:7", received_at=float(i))),
        workers=100,
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and winners[0].id is not None
    assert forge_store(store).forge_events("gh", "acme/api", 42) == winners


def test_two_claimers_of_the_same_events_never_share_one(store: SQLStore) -> None:
    """Eight claimers of overlapping sets, each in its own order, while a ninth drops some."""
    ids = [
        e.id
        for i in range(200)
        if (e := forge_store(store).add_forge_event(event(f"c:{i}"))) and e.id is not None
    ]
    for turn in range(3):

        def claim(i: int, turn: int = turn) -> list[int]:
            if i == 8:
                forge_store(store).set_forge_events(ids[::7], EventStatus.DROPPED, "stale")
                return []
            mine = ids[i * 20 : i * 20 + 60]  # each overlaps its neighbours'
            random.Random(i).shuffle(mine)
            return forge_store(store).claim_forge_events(mine, f"job-{turn}-{i}")

        claimed = race(9, claim, workers=9)
        flat = [i for got in claimed for i in got]
        assert len(flat) == len(set(flat))  # no id went to two claimers
        for i, got in enumerate(claimed):
            assert [e.id for e in forge_store(store).events_of_job(f"job-{turn}-{i}")] == got
        dispatched = forge_store(store).forge_events("gh", "acme/api", 42, status=EventStatus.DISPATCHED)
        moved = {e.id for e in dispatched}
        # a drop is not conditional: a claimed event the dropper reached after the claim is dropped
        assert moved <= set(flat) and set(flat) - moved <= set(ids[::7])
        forge_store(store).set_forge_events(ids, EventStatus.PENDING)


# -- turns ------------------------------------------------------------------------------------------


def test_turns_are_listed_and_published_once(store: SQLStore) -> None:
    assert forge_store(store).add_forge_turn(
        "j1", "gh", "acme/api", 42, [FeedbackKind.COMMENT, "review"], 10.0
    )
    assert not forge_store(store).add_forge_turn("j1", "gh", "acme/api", 42, ["task"], 11.0)
    assert forge_store(store).add_forge_turn("j2", "gh", "acme/api", 42, ["ci_failure"], 20.0)
    assert forge_store(store).add_forge_turn("j3", "gh", "acme/api", 7, ["task"], 5.0)

    turns = forge_store(store).forge_turns("gh", "acme/api", 42)
    assert [(t["job_id"], t["kinds"], t["published_at"], t["publish"]) for t in turns] == [
        ("j1", ["comment", "review"], None, None),
        ("j2", ["ci_failure"], None, None),
    ]
    assert [t["job_id"] for t in forge_store(store).forge_turns("gh", "acme/api", 42, since=20.0)] == ["j2"]
    assert [t["job_id"] for t in forge_store(store).unpublished_turns()] == ["j3", "j1", "j2"]
    assert [t["job_id"] for t in forge_store(store).unpublished_turns(limit=1)] == ["j3"]

    wins = race(
        20, lambda i: forge_store(store).mark_published("j1", {"comment": 1000 + i}, 30.0 + i), workers=20
    )
    assert wins.count(True) == 1
    winner = wins.index(True)
    (j1,) = forge_store(store).forge_turns("gh", "acme/api", 42, since=10.0)[:1]
    assert j1["publish"] == {"comment": 1000 + winner} and j1["published_at"] == 30.0 + winner
    assert [t["job_id"] for t in forge_store(store).unpublished_turns()] == ["j3", "j2"]
    assert not forge_store(store).mark_published("nope", {}, 1.0)


# -- budgets ----------------------------------------------------------------------------------------


def test_budgets_count_every_spend_under_concurrency(store: SQLStore) -> None:
    assert forge_store(store).budget_spent("gh", "acme/api", 42, "ci:abc") == 0
    assert forge_store(store).spend_budget("gh", "acme/api", 42, "ci:abc", 1.0) == 1
    counts = race(
        60, lambda i: forge_store(store).spend_budget("gh", "acme/api", 42, "ci:abc", 2.0 + i), workers=20
    )
    assert sorted(counts) == list(range(2, 62))  # each spender saw its own count
    assert forge_store(store).budget_spent("gh", "acme/api", 42, "ci:abc") == 61
    assert forge_store(store).spend_budget("gh", "acme/api", 42, "day", 3.0) == 1
    assert forge_store(store).spend_budget("gh", "acme/api", 43, "ci:abc", 3.0) == 1
    assert forge_store(store).reset_budgets("gh", "acme/api", 42) == 2
    assert forge_store(store).budget_spent("gh", "acme/api", 42, "ci:abc") == 0
    assert forge_store(store).budget_spent("gh", "acme/api", 43, "ci:abc") == 1
    assert forge_store(store).reset_budgets("gh", "acme/api", 42) == 0


# -- metrics ----------------------------------------------------------------------------------------


def test_forge_counts_groups_events_and_bindings(store: SQLStore) -> None:
    assert forge_store(store).forge_counts() == {"events": [], "bindings": []}
    forge_store(store).bind(binding(1))
    forge_store(store).bind(binding(2, status=BindingStatus.CLOSED))
    forge_store(store).bind(binding(3))
    for i in range(3):
        forge_store(store).add_forge_event(event(f"c:{i}"))
    review = forge_store(store).add_forge_event(event("r:1", kind=FeedbackKind.REVIEW))
    assert review is not None and review.id is not None
    forge_store(store).set_forge_events([review.id], EventStatus.DROPPED, "untrusted")
    assert forge_store(store).forge_counts() == {
        "events": [("comment", "pending", 3), ("review", "dropped", 1)],
        "bindings": [("active", 2), ("closed", 1)],
    }


# -- migration ----------------------------------------------------------------------------------------


def test_migration_13_over_a_database_at_12_keeps_its_rows(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        patched.setattr(store_engine, "MIGRATIONS", MIGRATIONS[:12])
        old = SQLStore(store_url)
        assert old.schema_version() == 12
        delivery_store(old).add_delivery(
            DeliveryRecord("gh", "d-1", "issue_comment", 5.0, DeliveryStatus.DONE, {"ok": 1})
        )
        old.audit("reset", "claude:x:t", "ana", {"why": "test"})
        with old.engine.connect() as conn:
            assert "forge_bindings" not in sa.inspect(conn).get_table_names()
        old.close()
        dispose_engine(store_url)

    new = SQLStore(store_url)  # opening migrates
    try:
        assert MIGRATIONS[12][0] == 13 and new.schema_version() == MIGRATIONS[-1][0]
        delivery = delivery_store(new).get_delivery("gh", "d-1")
        assert delivery is not None and delivery.result == {"ok": 1}
        assert new.list_audit()[0]["detail"] == {"why": "test"}
        assert forge_store(new).bind(binding())[1]
        assert forge_store(new).add_forge_event(event("comment:1")) is not None
        assert forge_store(new).spend_budget("gh", "acme/api", 42, "day", 1.0) == 1
    finally:
        new.close()


def test_mark_seen_writes_a_repositorys_bindings_at_once_and_nothing_else(store: SQLStore) -> None:
    for number in (1, 2, 3):
        forge_store(store).bind(binding(number, note=f"n{number}"))
    other = binding(4, repo="acme/other", thread="issue-4b")
    forge_store(store).bind(other)
    forge_store(store).mark_seen("gh", "acme/api", [(1, 'W/"a"'), (2, None)], at=123.0)
    found = {n: forge_store(store).get_binding("gh", "acme/api", n) for n in (1, 2, 3)}
    assert [(b.seen_at, b.etag) for b in found.values() if b] == [
        (123.0, 'W/"a"'),
        (123.0, None),
        (0.0, None),
    ]
    assert [b.note for b in found.values() if b] == ["n1", "n2", "n3"]
    kept = forge_store(store).get_binding("gh", "acme/other", 4)
    assert kept is not None and kept.seen_at == 0.0
    forge_store(store).mark_seen("gh", "acme/api", [], at=5.0)  # nothing to write: nothing written


# -- a thread's kind (GitLab numbers issues and merge requests apart) --------------------------------


def test_an_issue_and_a_merge_request_of_one_number_are_two_threads(store: SQLStore) -> None:
    """Issue #5 and MR !5 bound at once: each found by its kind, with its own events, turns and
    budgets; an MR's lookup takes the MR's own thread before an issue's whose MR it is."""
    forges = forge_store(store)
    issue = binding(5, forge="gl", pr=7)  # issue #5, whose MR baton opened is !7
    mr = binding(5, forge="gl", thread="pr-5", on_pr=True, pr=5, sign="!")
    assert forges.bind(issue, False)[1] and forges.bind(mr, True)[1]
    assert forges.bind(binding(5, forge="gl", thread="issue-5b"), False) == (issue, False)  # bound already
    found = {pr: forges.get_binding("gl", "acme/api", n, pr) for pr, n in ((False, 5), (True, 5))}
    assert found == {False: issue, True: mr}
    assert mr.conversation == "gl:acme/api!5" and issue.conversation == "gl:acme/api#5"
    assert forges.get_binding("gl", "acme/api", 7, True) == issue  # !7 is the issue's MR
    assert forges.get_binding("gl", "acme/api", 5) == issue  # a person's #5: the issue's first

    forges.add_forge_event(event("comment:1", forge="gl", number=5))
    forges.add_forge_event(event("comment:2", forge="gl", number=5, on_pr=True))
    assert [e.identity for e in forges.forge_events("gl", "acme/api", 5, pr=False)] == ["comment:1"]
    assert [e.identity for e in forges.forge_events("gl", "acme/api", 5, pr=True)] == ["comment:2"]
    assert forges.pending_forge_threads() == [("gl", "acme/api", 5, False), ("gl", "acme/api", 5, True)]
    assert forges.add_forge_turn("j1", "gl", "acme/api", 5, ["comment"], 300.0, pr=True)
    assert [t["job_id"] for t in forges.forge_turns("gl", "acme/api", 5, pr=True)] == ["j1"]
    assert forges.forge_turns("gl", "acme/api", 5, pr=False) == []
    assert forges.spend_budget("gl", "acme/api", 5, "sig", 1.0, pr=True) == 1
    assert forges.spend_budget("gl", "acme/api", 5, "sig", 1.0) == 1  # the issue's own count
    assert forges.budget_spent("gl", "acme/api", 5, "sig", pr=True) == 1
    assert forges.reset_budgets("gl", "acme/api", 5, pr=False) == 1
    assert forges.budget_spent("gl", "acme/api", 5, "sig", pr=True) == 1

    forges.mark_seen("gl", "acme/api", [(5, 'W/"m"', True)], at=9.0)
    forges.mark_merged("gl", "acme/api", 5, True)
    after = {pr: forges.get_binding("gl", "acme/api", 5, pr) for pr in (False, True)}
    assert [(b.seen_at, b.etag) for b in after.values() if b] == [(0.0, None), (9.0, 'W/"m"')]
    page = forges.list_bindings(limit=1)
    assert page == [issue] and forges.list_bindings(after=("gl", "acme/api", 5, False)) == [after[True]]
    assert forges.unbind("gl", "acme/api", 5, True)
    assert forges.get_binding("gl", "acme/api", 5, True) is None
    assert forges.get_binding("gl", "acme/api", 5, False) == issue


def _old_rows(store: SQLStore) -> None:
    """Rows as a store at migration 24 held them (one binding a number: no kind in any key)."""
    columns = (
        "forge, repo, number, agent, repo_slug, thread, repo_url, status, pr, access, seen_at, created_at, "
        "updated_at, on_pr"
    )
    rows = [  # a GitLab MR's thread, a GitHub issue's whose PR is #8, an issue's of another repo
        ("gl", "acme/api", 5, "claude", "gl/acme/api", "pr-5", "u", "active", 5, "edit", 0.0, 1.0, 1.0, 1),
        ("gh", "acme/api", 6, "claude", "gh/acme/api", "issue-6", "u", "active", 8, "edit", 0.0, 1.0, 1.0, 0),
    ]
    with store.engine.begin() as conn:
        for row in rows:
            marks = ", ".join(f":v{i}" for i in range(len(row)))
            conn.execute(
                sa.text(f"INSERT INTO forge_bindings ({columns}) VALUES ({marks})"),
                {f"v{i}": v for i, v in enumerate(row)},
            )
        for forge, number, identity in (("gl", 5, "note:1"), ("gh", 6, "c:1"), ("gl", 9, "note:gone")):
            conn.execute(
                sa.text(
                    "INSERT INTO forge_events (forge, repo, number, identity, kind, status, event, access, "
                    "received_at) VALUES (:f, 'acme/api', :n, :i, 'comment', 'pending', '{}', 'edit', 2.0)"
                ),
                {"f": forge, "n": number, "i": identity},
            )
        for forge, number in (("gl", 5), ("gh", 6)):
            conn.execute(
                sa.text(
                    "INSERT INTO forge_turns (job_id, forge, repo, number, kinds, submitted_at) "
                    "VALUES (:j, :f, 'acme/api', :n, '[\"comment\"]', 3.0)"
                ),
                {"j": f"job-{forge}", "f": forge, "n": number},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO forge_budgets (forge, repo, number, signature, spent, updated_at) "
                    "VALUES (:f, 'acme/api', :n, 'sig', 2, 3.0)"
                ),
                {"f": forge, "n": number},
            )


def test_migration_25_keys_old_rows_by_their_bindings_kind(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store at 24 with a GitLab MR's binding (!5) and a GitHub issue's: after 25 each keeps its name
    and is found as before; their events, turns and budgets take the binding's kind; and GitLab's issue
    #5 can now be bound beside MR !5."""
    with monkeypatch.context() as patched:
        patched.setattr(store_engine, "MIGRATIONS", [m for m in MIGRATIONS if m[0] <= 24])
        old = SQLStore(store_url)
        assert old.schema_version() == 24
        _old_rows(old)
        old.close()
        dispose_engine(store_url)

    new = SQLStore(store_url)  # opening migrates
    try:
        assert new.schema_version() == MIGRATIONS[-1][0] >= 25
        forges = forge_store(new)
        mr, issue = forges.get_binding("gl", "acme/api", 5, True), forges.get_binding("gh", "acme/api", 8)
        assert mr is not None and mr.on_pr and mr.thread == "pr-5"
        assert mr.conversation == "gl:acme/api#5"  # its name kept: bound before the kinds were apart
        assert issue is not None and issue.number == 6 and issue.conversation == "gh:acme/api#6"
        assert [e.identity for e in forges.forge_events("gl", "acme/api", 5, pr=True)] == ["note:1"]
        assert forges.forge_events("gl", "acme/api", 5, pr=False) == []
        assert [e.on_pr for e in forges.forge_events("gl", "acme/api", 9)] == [False]  # its binding gone
        assert [e.identity for e in forges.forge_events("gh", "acme/api", 6, pr=False)] == ["c:1"]
        assert [t["job_id"] for t in forges.forge_turns("gl", "acme/api", 5, pr=True)] == ["job-gl"]
        assert forges.budget_spent("gl", "acme/api", 5, "sig", pr=True) == 2
        assert forges.budget_spent("gh", "acme/api", 6, "sig", pr=False) == 2
        assert forges.spend_budget("gl", "acme/api", 5, "sig", 4.0, pr=True) == 3
        assert forges.bind(binding(5, forge="gl", thread="issue-5"), False)[1]  # issue #5 beside !5
        assert forges.get_binding("gl", "acme/api", 5, True) == mr
    finally:
        new.close()
