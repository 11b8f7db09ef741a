"""``baton.store.early``: the calls a run makes before its agent starts, through stdlib sqlite3, leave
the tables exactly as the SQL store's own calls do, answer the same, refuse the same fenced writes,
and never import SQLAlchemy themselves."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from baton.errors import Fenced, StoreError
from baton.models import (
    Access,
    CheckpointRecord,
    Fence,
    Lease,
    Mode,
    Outcome,
    PromptKind,
    RunRecord,
    SessionRecord,
    SessionStatus,
    Snapshot,
)
from baton.store import Store, open_store
from baton.store.early import EarlyStore, open_early

CLOCKED = {"acquired_at", "expires_at"}  # the database's clock: equal within a test's duration


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Store, EarlyStore]]:
    """The SQL store on one database and the early store on another, both migrated and empty."""
    urls = [f"sqlite:///{tmp_path / name}" for name in ("full.db", "early.db")]
    for url in urls:
        open_store(url).close()
    full, early = open_store(urls[0]), open_early(urls[1])
    assert early is not None
    yield full, early
    full.close()
    early.close()


def dump(url: str) -> dict[str, list[dict[str, Any]]]:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    tables = {}
    for table, order in (("sessions", "agent, repo, thread"), ("runs", "id"), ("leases", "key")):
        cursor = conn.execute(f"SELECT * FROM {table} ORDER BY {order}")
        names = [d[0] for d in cursor.description]
        tables[table] = [
            {k: v for k, v in zip(names, row, strict=True) if k not in CLOCKED} for row in cursor.fetchall()
        ]
    conn.close()
    return tables


def session(thread: str, **changes: Any) -> SessionRecord:
    base = SessionRecord(
        agent="claude",
        repo="github.com/acme/api",
        thread=thread,
        repo_url="https://github.com/acme/api",
        branch=f"baton/claude/{thread}",
        worktree=f"/w/{thread}",
        agent_session_id="sid-" + thread,
        status=SessionStatus.ACTIVE,
        attempts=1,
        last_outcome=Outcome.SUCCEEDED,
        created_at=100.0,
        last_used_at=200.0,
        expires_at=300.0,
        origin={"kind": "fork", "from": "x"},
        pending_sync=None,
    )
    for name, value in changes.items():
        setattr(base, name, value)
    return base


def run_record(run_id: str, thread: str, started: float, **changes: Any) -> RunRecord:
    return RunRecord(
        id=run_id,
        agent="claude",
        repo="github.com/acme/api",
        thread=thread,
        attempt=1,
        mode=Mode.RESUME,
        prompt_kind=PromptKind.DELTA,
        prompt="do the next thing",
        started_at=started,
        usage={"input_tokens": 3},
        sync={"how": "rebase", "commits": 2},
        access=Access.EDIT,
        confined=True,
        **changes,
    )


def both(pair: tuple[Store, EarlyStore], call: Callable[[Any], Any]) -> Any:
    """``call`` on both stores: the same answer, or the same exception type."""
    answers = []
    for store in pair:
        try:
            answers.append(("ok", call(store)))
        except Exception as exc:  # compared below: both must raise alike
            answers.append(("raised", type(exc)))
    assert answers[0] == answers[1], answers
    return answers[0][1]


def test_early_calls_write_what_the_sql_store_writes(pair: tuple[Store, EarlyStore]) -> None:
    def can_take_never(_lease: Lease, _now: float) -> bool:
        return False

    def can_take_always(_lease: Lease, _now: float) -> bool:
        return True

    def lease(holder: str) -> Lease:
        return Lease("k1", holder, "host", 42, 0.0, 0.0)

    # a first grant (token 1), a busy key, the same holder again (keeps its token), a takeover (2)
    assert both(pair, lambda s: s.try_lease(lease("a"), 60.0, can_take_never)) is None
    busy = both(pair, lambda s: (s.try_lease(lease("b"), 60.0, can_take_never) or lease("x")).holder)
    assert busy == "a"
    assert both(pair, lambda s: s.try_lease(lease("a"), 60.0, can_take_never)) is None
    assert both(pair, lambda s: s.try_lease(lease("b"), 60.0, can_take_always)) is None
    fence = Fence("k1", 2)
    both(pair, lambda s: s.save_session(session("t1"), fence=fence))
    both(
        pair, lambda s: s.save_session(session("t1", attempts=2, last_outcome=None, origin=None), fence=fence)
    )
    both(pair, lambda s: s.save_session(session("t2", status=SessionStatus.ARCHIVED)))
    both(pair, lambda s: s.add_run(run_record("r1", "t1", 10.0), fence=fence))
    both(pair, lambda s: s.add_run(run_record("r2", "t1", 20.0, outcome=Outcome.CRASHED, exit_code=137)))
    both(pair, lambda s: s.add_run(run_record("r3", "t2", 30.0, access=None, confined=None, sync=None)))
    # a stale token is refused and writes nothing; a newer one (a Redis grant) is recorded
    assert both(pair, lambda s: s.add_run(run_record("r4", "t1", 40.0), fence=Fence("k1", 1))) is Fenced
    assert both(pair, lambda s: s.save_session(session("t9"), fence=Fence("k1", 1))) is Fenced
    both(pair, lambda s: s.add_run(run_record("r5", "t1", 50.0), fence=Fence("k2", 7)))
    both(pair, lambda s: s.update_run("r1", fence=fence, agent_pid=4242))
    both(pair, lambda s: s.update_run("r1", outcome=Outcome.SUCCEEDED, usage={"output_tokens": 9}, sync=None))
    assert both(pair, lambda s: s.update_run("r1", fence=Fence("k1", 1), exit_code=1)) is Fenced
    assert both(pair, lambda s: s.update_run("r1", no_such_column=1)) is StoreError
    full, early = pair
    assert dump(early.url.replace("early.db", "full.db")) == dump(early.url)
    # and they read alike
    for thread in ("t1", "t2", "nope"):
        assert full.get_session("claude", "github.com/acme/api", thread) == early.get_session(
            "claude", "github.com/acme/api", thread
        )
    for query in (
        {},
        {"thread": "t1"},
        {"thread": "t1", "limit": 1},
        {"outcome": Outcome.CRASHED},
        {"offset": 1},
    ):
        assert full.list_runs(**query) == early.list_runs(**query), query


def test_early_reads_checkpoints_and_snapshots_as_the_sql_store(pair: tuple[Store, EarlyStore]) -> None:
    _full, early = pair
    key = ("claude", "github.com/acme/api", "t1")
    assert early.get_checkpoint(*key) is None and early.get_snapshot(*key) is None
    sql_of_early = early.full()  # the same database through SQLAlchemy, to write what is read back
    record = CheckpointRecord(*key, "c0ffee", "baton/claude/t1", None, "d" * 64, 3, 5.0)
    sql_of_early.save_checkpoint(record, b"abc")
    snapshot = Snapshot(*key, "sid", {"projects/x.jsonl": ["a" * 64, "b" * 64]}, 9, 6.0)
    sql_of_early.put_blob("a" * 64, b"x", 1)
    sql_of_early.put_blob("b" * 64, b"y", 1)
    sql_of_early.save_snapshot(snapshot)
    assert early.get_checkpoint(*key) == sql_of_early.get_checkpoint(*key) == record
    assert early.get_snapshot(*key) == sql_of_early.get_snapshot(*key)


def test_the_agents_pid_starts_loading_the_sql_store(pair: tuple[Store, EarlyStore]) -> None:
    """The run record's first update (its agent's pid, the moment the agent started) warms the SQL
    store in a thread: it is ready, or being opened, when the run next needs it."""
    _full, early = pair
    early.add_run(run_record("r1", "t1", 1.0))
    assert early._warming is None
    early.update_run("r1", agent_pid=7)
    assert early._warming is not None
    early._warming.join(timeout=120)
    assert early._full is not None
    assert early.get_run("r1") is not None and early.get_run("r1").agent_pid == 7


def test_other_threads_and_other_calls_go_to_the_sql_store(pair: tuple[Store, EarlyStore]) -> None:
    _full, early = pair
    early.save_session(session("t1"))
    seen: list[Any] = []
    thread = threading.Thread(
        target=lambda: seen.append(early.get_session("claude", "github.com/acme/api", "t1"))
    )
    thread.start()
    thread.join()
    assert seen == [session("t1")]
    assert early.list_sessions() == [session("t1")]  # the lite reader's own
    assert early.find_run_ids("zz") == []  # not defined here: the SQL store's


def test_the_calls_before_the_agent_import_no_sqlalchemy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    open_store(url).close()
    code = f"""
import sys
from baton.models import Lease
from baton.store.early import open_early
s = open_early({url!r})
assert s.try_lease(Lease("k", "h", "host", 1, 0.0, 0.0), 60.0, lambda l, n: False) is None
s.get_session("a", "r", "t"); s.list_runs("a", "r", "t")
s.get_checkpoint("a", "r", "t"); s.get_snapshot("a", "r", "t")
print("sqlalchemy" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_open_early_declines_stores_it_cannot_serve(tmp_path: Path) -> None:
    assert open_early("postgresql://u@h/db") is None
    assert open_early(f"sqlite:///{tmp_path / 'none.db'}") is None
    assert not (tmp_path / "none.db").exists()
