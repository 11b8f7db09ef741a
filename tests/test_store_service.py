"""The service's tables: jobs start in submission order per key, tokens keep only a hash, a delivery
is stored once."""

from __future__ import annotations

from baton.models import DeliveryRecord, DeliveryStatus, JobRecord, JobStatus, TokenRecord, TokenScope
from baton.settings import Settings
from baton.store import open_store


def job(job_id: str, thread: str, at: float) -> JobRecord:
    return JobRecord(job_id, "fake", "github.com/a/b", thread, {"prompt": job_id}, submitted_at=at)


def test_jobs_of_one_key_start_in_submission_order(settings: Settings) -> None:
    store = open_store(settings.resolved_store_url)
    for job_id, thread, at in (("j1", "t1", 1.0), ("j2", "t1", 2.0), ("j3", "t2", 3.0)):
        store.add_job(job(job_id, thread, at))
    assert not store.start_job("j2", 5.0)  # j1 of the same key was submitted first
    assert store.start_job("j3", 5.0)  # another key: free
    assert store.start_job("j1", 5.0)
    assert not store.start_job("j1", 5.0)  # already running
    assert not store.start_job("j2", 5.0)  # j1 runs
    store.update_job("j1", status=JobStatus.DONE, outcome="succeeded", result={"outcome": "succeeded"})
    assert store.start_job("j2", 6.0)
    done = store.get_job("j1")
    assert done is not None and done.result == {"outcome": "succeeded"} and done.status == JobStatus.DONE
    queued = store.list_jobs(status=JobStatus.RUNNING, oldest_first=True)
    assert [j.id for j in queued] == ["j2", "j3"]
    store.close()


def test_tokens_and_deliveries(settings: Settings) -> None:
    store = open_store(settings.resolved_store_url)
    store.add_token(TokenRecord("ci", TokenScope.RUN, "d" * 64, 1.0))
    found = store.find_token("d" * 64)
    assert found is not None and found.scope == TokenScope.RUN and found.revoked_at is None
    assert store.revoke_token("ci", 2.0) and not store.revoke_token("ci", 3.0)
    assert TokenScope.ADMIN.allows(TokenScope.RUN) and not TokenScope.READ.allows(TokenScope.RUN)
    first = DeliveryRecord("github", "abc", "delete", 1.0)
    assert store.add_delivery(first) and not store.add_delivery(first)
    store.update_delivery("github", "abc", DeliveryStatus.DONE, {"closed": 1})
    stored = store.get_delivery("github", "abc")
    assert stored is not None and stored.status == DeliveryStatus.DONE and stored.result == {"closed": 1}
    store.close()
