"""The store's whole-table reads (``baton.store.sql_listing``) on SQLite and PostgreSQL: keyset pages
in the listing order with ties at every page boundary, counts under each filter, and the snapshots'
sizes equal to what ``snapshot_bytes`` reads one key at a time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from baton.housekeeping.disk import snapshot_bytes
from baton.models import (
    JobRecord,
    Mode,
    Outcome,
    PromptKind,
    RunRecord,
    SessionRecord,
    SessionStatus,
    Snapshot,
)
from baton.store.sql import SQLStore
from baton.store.sql_listing import BATCH
from baton.store.tables import snapshots


@pytest.fixture
def sql(store_url: str) -> Iterator[SQLStore]:
    opened = SQLStore(store_url)
    yield opened
    opened.close()


def session(agent: str, repo: str, thread: str, at: float, status: SessionStatus) -> SessionRecord:
    return SessionRecord(
        agent=agent,
        repo=repo,
        thread=thread,
        repo_url=f"https://{repo}",
        branch=f"baton/{agent}/{thread}",
        worktree=f"/w/{agent}/{thread}",
        status=status,
        created_at=at,
        last_used_at=at,
        expires_at=at + 86400,
    )


def seed_sessions(sql: SQLStore) -> list[SessionRecord]:
    """27 sessions in groups of three that share a time, and of those some share the thread: every
    page of 2, 3 or 4 ends inside a tie, which only the whole key orders."""
    now, saved = time.time(), []
    for i in range(27):
        agent = ("claude", "codex", "gemini")[i % 3]
        repo = f"github.com/acme/r{i % 2}"
        thread = f"t{i // 6}"  # the same thread under several agents and repos
        record = session(
            agent,
            repo,
            thread,
            now - 60 * (i // 3),
            SessionStatus.ACTIVE if i % 4 else SessionStatus.ARCHIVED,
        )
        sql.save_session(record)
        saved.append(record)
    return saved


def test_iter_sessions_pages_in_the_listing_order(sql: SQLStore) -> None:
    saved = seed_sessions(sql)
    whole = sql.list_sessions()
    assert len(whole) == len(saved) == len({(s.agent, s.repo, s.thread) for s in whole})
    expected = sorted(saved, key=lambda s: (-s.last_used_at, s.thread, s.agent, s.repo))
    assert [(s.agent, s.repo, s.thread) for s in whole] == [(s.agent, s.repo, s.thread) for s in expected]
    for batch in (1, 2, 3, 4, 27, 100):
        assert list(sql.iter_sessions(batch=batch)) == whole, batch
    for where in ({"agent": "codex"}, {"repo": "github.com/acme/r1"}, {"status": SessionStatus.ARCHIVED}):
        subset = sql.list_sessions(**where)
        assert subset and list(sql.iter_sessions(**where, batch=2)) == subset, where
        assert sql.count_sessions(**where) == len(subset), where
    assert sql.count_sessions() == 27 and sql.count_sessions(agent="nobody") == 0
    assert list(sql.iter_sessions(agent="nobody")) == []
    assert sql.list_sessions(limit=5, offset=5) == whole[5:10]


def test_a_session_written_between_pages_neither_repeats_nor_hides_another(sql: SQLStore) -> None:
    seed_sessions(sql)
    before = [(s.agent, s.repo, s.thread) for s in sql.list_sessions()]
    pages = sql.iter_sessions(batch=4)
    seen = [next(pages) for _ in range(5)]
    sql.save_session(
        session("claude", "github.com/acme/new", "fresh", time.time() + 60, SessionStatus.ACTIVE)
    )
    seen += list(pages)
    keys = [(s.agent, s.repo, s.thread) for s in seen]
    assert keys == before  # the newer one sorts before the pages already read: not in this walk


def test_iter_runs_pages_newest_first_then_by_id(sql: SQLStore) -> None:
    now = time.time()
    for i in range(23):
        run = RunRecord(f"run-{22 - i:02d}", ("claude", "codex")[i % 2], "github.com/acme/r", f"t{i % 3}", 1,
                        Mode.RESUME, PromptKind.DELTA, "go")  # fmt: skip
        run.started_at, run.outcome = now - 10 * (i // 4), Outcome.SUCCEEDED if i % 5 else Outcome.FAILED
        sql.add_run(run)
    whole = sql.list_runs(limit=100)
    assert len(whole) == 23 and [r.id for r in whole] == [
        r.id for r in sorted(whole, key=lambda r: (-r.started_at, r.id))
    ]
    for batch in (1, 3, 4, 100):
        assert list(sql.iter_runs(batch=batch)) == whole, batch
    assert list(sql.iter_runs(agent="codex", thread="t1", batch=2)) == sql.list_runs("codex", thread="t1")
    assert sql.count_runs() == 23 and sql.count_runs(outcome=Outcome.FAILED) == 5
    assert sql.count_runs(agent="claude", thread="t0") == len(sql.list_runs("claude", thread="t0"))


def test_snapshot_sizes_are_what_snapshot_bytes_reads(sql: SQLStore) -> None:
    now = time.time()
    blobs = {name: bytes([n]) * (100 * (n + 1)) for n, name in enumerate("abcdef")}
    for name, data in blobs.items():
        sql.put_blob(name * 64, data, len(data) * 3)
    shapes: dict[str, dict[str, Any]] = {
        "t1": {"x.jsonl": ["a" * 64, "b" * 64]},
        "t2": {"x.jsonl": ["b" * 64], "y.json": "c" * 64},  # b shared with t1: counted for each
        "t3": {"x.jsonl": ["d" * 64, "z" * 64]},  # z: no such blob, counts 0
        "t4": {"x.jsonl": ["e" * 64, "e" * 64, "f" * 64]},  # e twice in one snapshot: once
    }
    records = []
    for i in range(9):  # more snapshots than a batch of 4
        thread = f"t{i % 4 + 1}"
        record = session(
            ("claude", "codex", "gemini")[i % 3], f"github.com/acme/r{i}", thread, now, SessionStatus.ACTIVE
        )
        sql.save_session(record)
        sql.save_snapshot(Snapshot(record.agent, record.repo, thread, "sid", shapes[thread], 1, now))
        records.append(record)
    corrupt = session("claude", "github.com/acme/bad", "t9", now, SessionStatus.ACTIVE)
    sql.save_session(corrupt)
    sql.save_snapshot(Snapshot("claude", corrupt.repo, "t9", "sid", {"x": ["a" * 64]}, 1, now))
    with sql.engine.begin() as conn:  # a damaged row: its blobs cannot be named
        conn.execute(sa.update(snapshots).where(snapshots.c.thread == "t9").values(files="{not json"))
    sizes = dict(sql.snapshot_sizes(batch=4))
    assert set(sizes) == {(r.agent, r.repo, r.thread) for r in [*records, corrupt]}
    for record in records:
        assert sizes[(record.agent, record.repo, record.thread)] == snapshot_bytes(sql, record) > 0
    assert sizes[("claude", corrupt.repo, "t9")] == 0 == snapshot_bytes(sql, corrupt)
    assert sizes[(records[0].agent, records[0].repo, "t1")] == len(blobs["a"]) + len(blobs["b"])
    assert sizes[(records[3].agent, records[3].repo, "t4")] == len(blobs["e"]) + len(blobs["f"])
    assert all(type(n) is int for n in sizes.values())


def test_ids_sharing_names_the_fragments_two_ids_have(sql: SQLStore) -> None:
    def attempt(ident: str, job: str | None = None) -> None:
        run = RunRecord(ident, "claude", "github.com/acme/r", "t", 1, Mode.RESUME, PromptKind.DELTA, "go")
        run.job_id = job
        sql.add_run(run)

    attempt("019a00000001-aaaa1111")
    attempt("019a00000002-aaaa1111")  # the same tail: both ids
    attempt("bbbb2222-019a00000003")  # starts with the other's tail
    attempt("019a00000004-bbbb2222")
    attempt("019a00000005-cccc3333", job="019a00000006-dddd4444")
    sql.add_job(JobRecord("019a00000006-dddd4444", "claude", "github.com/acme/r", "t", {}))
    sql.add_job(JobRecord("019a00000007-cccc3333", "claude", "github.com/acme/r", "t", {}))  # a job's tail
    attempt("019a00000008-eeee5555")
    shared = sql.ids_sharing({"aaaa1111", "bbbb2222", "cccc3333", "dddd4444", "eeee5555", "ffff6666"})
    assert shared == {
        "aaaa1111": {"019a00000001-aaaa1111", "019a00000002-aaaa1111"},
        "bbbb2222": {"bbbb2222-019a00000003", "019a00000004-bbbb2222"},
        "cccc3333": {"019a00000005-cccc3333", "019a00000007-cccc3333"},
    }
    for fragment in shared:  # what the lookups one fragment at a time find
        assert shared[fragment] == {*sql.find_run_ids(fragment), *sql.find_job_ids(fragment)}
    every = [*(r.id for r in sql.list_runs(limit=100)), *(j.id for j in sql.list_jobs(limit=100))]

    def brute(wanted: set[str]) -> dict[str, set[str]]:
        found = {f: {i for i in every if i.startswith(f) or i.endswith(f)} for f in wanted}
        return {f: ids for f, ids in found.items() if len(ids) > 1}

    many = {f"{n:08x}" for n in range(600)} | {"aaaa1111", "bbbb2222", "cccc3333", "019a0000", "eeee5555"}
    assert len(many) > BATCH  # matched in Python over every id, not in SQL
    assert sql.ids_sharing(many) == brute(many) and "019a0000" in brute(many)
    assert sql.ids_sharing({"019a0000", "eeee5555", "zz"}) == brute({"019a0000", "eeee5555", "zz"})

    from baton.runner.runids import FEW, short_ids

    ids = ["019a00000001-aaaa1111", "019a00000004-bbbb2222", "019a00000008-eeee5555", "019a00000006-dddd4444"]
    assert len(ids) > FEW  # the one-pass way; the same answer as one lookup per id
    expected = {i: i if i.endswith(("aaaa1111", "bbbb2222")) else i[-8:] for i in ids}
    assert short_ids(sql, ids) == expected == {i: short_ids(sql, [i])[i] for i in ids}
