"""The workers' rows on both backends: a heartbeat keeps the latest disk report, a report needs a row,
byte counts past 2 GiB survive (BIGINT), and ``seen_since`` leaves out the quiet ones."""

from __future__ import annotations

from baton.models import WorkerRecord
from baton.store.sql import SQLStore


def _worker(name: str, seen_at: float) -> WorkerRecord:
    return WorkerRecord(name=name, host="h1", pid=42, queue="baton.abc", started_at=1.0, seen_at=seen_at)


def test_heartbeats_and_disk_reports(store_url: str) -> None:
    store = SQLStore(store_url)
    try:
        assert not store.report_worker_disk("w1", {"worktrees": 1}, 1, 2, at=5.0)
        store.worker_seen(_worker("w1", 10.0))
        store.worker_seen(_worker("w2", 100.0))
        disk = {"by_kind": {"worktrees": 5 * 2**31}}
        assert store.report_worker_disk("w1", disk, free_bytes=7 * 2**32, total_bytes=9 * 2**32, at=11.0)
        store.worker_seen(_worker("w1", 12.0))  # a later heartbeat keeps the report
        w1, w2 = store.list_workers()
        assert (w1.name, w1.seen_at, w1.disk, w1.free_bytes, w1.total_bytes) == (
            "w1",
            12.0,
            disk,
            7 * 2**32,
            9 * 2**32,
        )
        assert w2.disk is None and w2.disk_at is None
        assert [w.name for w in store.list_workers(seen_since=50.0)] == ["w2"]
        assert store.delete_worker("w1") and not store.delete_worker("w1")
        assert [w.name for w in store.list_workers()] == ["w2"]
    finally:
        store.close()
