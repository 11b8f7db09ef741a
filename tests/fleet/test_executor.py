"""The in-process executor and the runs API on the fake agent: FIFO per key under concurrency,
cancel (queued and running), bad input refused with nothing written, the event stream."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from baton.errors import BadInput
from baton.fleet import jobs, orphans
from baton.fleet.local import LocalExecutor
from baton.models import JobRecord, JobStatus, Mode, Outcome, PromptKind, RunRecord
from baton.runner.attempt import new_run_id
from baton.settings import Settings
from baton.store import Store, open_store
from baton.store.leases import HOST
from tests.conftest import make_repo, wait_for
from tests.service_fixtures import Service, run_service

# A live executor looks for orphaned jobs every lease TTL, the first time a TTL after it starts: the
# tests of a takeover wait out one, so theirs is shorter than conftest's FAST (a live turn's lease,
# renewed every 0.2 s, still has ten renewals' margin)
TAKEOVER_TTL = 2.0


def body(repo: Path, thread: str = "t1", prompt: str = "do it", **kw: Any) -> dict[str, Any]:
    return {"agent": "fake", "repo": str(repo), "thread": thread, "prompt": prompt, **kw}


def done(store: Store, job_id: str) -> JobRecord:
    job = store.get_job(job_id)
    assert job is not None
    return job


def wait_done(store: Store, job_ids: list[str], timeout: float = 120) -> list[JobRecord]:
    wait_for(lambda: all(done(store, j).status == JobStatus.DONE for j in job_ids), timeout)
    return [done(store, j) for j in job_ids]


def test_fifo_per_key_under_concurrency(
    settings: Settings, store: Store, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3 keys x 5 jobs with 4 slots: the jobs of a key never overlap and start in submission order;
    different keys do run at once."""
    monkeypatch.setenv("FAKE_AGENT_DELAY", "0.2")
    settings = dataclasses.replace(settings, concurrency=4)
    submitted = [
        jobs.submit(store, settings, body(src_repo, f"k{k}", f"job {i}"), "test")
        for i in range(5)
        for k in range(3)
    ]
    executor = LocalExecutor(settings, store)
    executor.start()
    for job in submitted:
        executor.submit(job.id)
    try:
        ended = wait_done(store, [j.id for j in submitted])
    finally:
        executor.stop()
    assert all(j.outcome == Outcome.SUCCEEDED for j in ended), [
        (j.outcome, j.error, j.result and j.result.get("error"))
        for j in ended
        if j.outcome != Outcome.SUCCEEDED
    ]
    for k in range(3):
        mine = [j for j in ended if j.thread == f"k{k}"]  # in submission order
        starts = [j.started_at or 0 for j in mine]
        assert starts == sorted(starts), "a later job of the key started first"
        for earlier, later in itertools.pairwise(mine):
            assert (earlier.ended_at or 0) <= (later.started_at or 0), "two jobs of one key overlapped"
        # the conversation went on in order: each job saw two more messages than the one before
        assert [j.result and j.result["result"] for j in mine] == [
            f"fake reply: received {n} messages" for n in (2, 4, 6, 8, 10)
        ]
    spans = [(j.started_at or 0, j.ended_at or 0) for j in ended]
    assert any(a[0] < b[1] and b[0] < a[1] for a in spans for b in spans if a != b), "nothing ran at once"


def test_a_keys_jobs_run_in_commit_order_when_their_clocks_disagree(
    settings: Settings, store: Store, src_repo: Path
) -> None:
    """Two submits of one key whose clocks were read in the other order than they committed (as two
    concurrent POSTs can): the one committed first (``seq`` 1) runs first, and the second is not
    stranded behind it."""
    first, second = (jobs.submit(store, settings, body(src_repo, prompt=p), "test") for p in ("one", "two"))
    store.update_job(first.id, submitted_at=second.submitted_at + 1.0)  # its clock read later
    executor = LocalExecutor(settings, store)
    executor.start()
    try:
        ended = wait_done(store, [first.id, second.id], timeout=60)
    finally:
        executor.stop()
    assert [j.seq for j in ended] == [1, 2]
    assert (ended[0].started_at or 0) < (ended[1].started_at or 0)
    assert [j.result and j.result["result"] for j in ended] == [
        "fake reply: received 2 messages",
        "fake reply: received 4 messages",
    ]


def test_bad_input_writes_nothing(settings: Settings, store: Store, src_repo: Path) -> None:
    for fields, message in (
        (body(src_repo, "../up"), "thread"),
        (body(src_repo, prompt="  "), "prompt is empty"),
        (body(src_repo, agent="nope"), "nope"),
        (body(src_repo, retries=-1), "retries"),
        (body(src_repo, branch="refs/tags/x"), "not a valid branch name"),
    ):
        with pytest.raises(BadInput, match=message):
            jobs.submit(store, settings, fields, "test")
    assert store.list_jobs() == []
    assert not (settings.home / "worktrees").exists()


@pytest.mark.usefixtures("umask_022")
def test_a_jobs_event_stream_is_0600_in_a_0700_home(settings: Settings, src_repo: Path) -> None:
    """Every event of a job's turns, kept private under the usual umask (022) in a home baton made."""
    store = open_store(settings.resolved_store_url)  # the home's first write
    try:
        job = jobs.submit(store, settings, body(src_repo), "test")
        executor = LocalExecutor(settings, store)
        executor.start()
        executor.submit(job.id)
        try:
            (ended,) = wait_done(store, [job.id], timeout=60)
        finally:
            executor.stop()
    finally:
        store.close()
    events = jobs.events_path(settings, job.id)
    assert ended.outcome == Outcome.SUCCEEDED and events.stat().st_size
    modes = [stat.S_IMODE(p.stat().st_mode) for p in (settings.home, events.parent, events)]
    assert modes == [0o700, 0o700, 0o600]


def test_cancel_queued_and_running(
    settings: Settings, store: Store, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_DELAY", "30")
    first = jobs.submit(store, settings, body(src_repo, prompt="long"), "test")
    second = jobs.submit(store, settings, body(src_repo, prompt="never"), "test")
    executor = LocalExecutor(settings, store)
    executor.start()
    try:
        executor.submit(first.id)
        executor.submit(second.id)
        wait_for(lambda: done(store, first.id).status == JobStatus.RUNNING)
        assert done(store, second.id).status == JobStatus.QUEUED
        assert executor.cancel(second.id)  # queued: done at once, never run
        queued = done(store, second.id)
        assert (queued.status, queued.outcome, queued.started_at) == (JobStatus.DONE, "cancelled", None)
        wait_for(lambda: bool(store.list_runs(limit=1)) and bool(store.list_runs(limit=1)[0].agent_pid))
        began = time.monotonic()
        assert executor.cancel(first.id)
        (running,) = wait_done(store, [first.id], 20)
        # stopped, not waited out: the agent thinks for 30 s (the bound has a busy machine's margin)
        assert time.monotonic() - began < 15, "the agent was not stopped"
        assert running.outcome == "cancelled" and running.result is not None
        assert running.result["session_id"], "the conversation is kept"
        assert not executor.cancel(first.id) and not executor.cancel(second.id)
        assert store.list_jobs(status=JobStatus.QUEUED) == []
    finally:
        executor.stop()


def test_restart_runs_again_a_job_its_process_left_then_the_next(
    settings: Settings, store: Store, src_repo: Path
) -> None:
    """A job a dead process left running (it died before the job's run started) runs again, counted,
    before the next job of its key: a person's submission is never dropped."""
    a = jobs.submit(store, settings, body(src_repo, prompt="a"), "test")
    b = jobs.submit(store, settings, body(src_repo, prompt="b"), "test")
    assert store.start_job(a.id, time.time())  # as if a dead process had started it
    executor = LocalExecutor(settings, store)
    executor.start()
    try:
        again, ran = wait_done(store, [a.id, b.id])
    finally:
        executor.stop()
    assert again.outcome == "succeeded" and again.reruns == 1, again.error
    assert ran.outcome == "succeeded" and (ran.started_at or 0) >= (again.ended_at or 0)
    lines = [json.loads(line) for line in jobs.events_path(settings, a.id).read_text().splitlines()]
    assert lines[-1] == {"seq": len(lines), "end": "succeeded"}


def test_a_second_replica_leaves_the_first_ones_running_job_alone(
    settings: Settings, store: Store, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two in-process executors on one store (two replicas): the second one's start does not take the
    first one's running job for a dead process's (its job lease is held), which then ends succeeded."""
    monkeypatch.setenv("FAKE_AGENT_DELAY", "2")
    first = LocalExecutor(settings, store)
    first.start()
    job = jobs.submit(store, settings, body(src_repo), "test")
    first.submit(job.id)
    second = LocalExecutor(settings, store)
    try:
        wait_for(lambda: done(store, job.id).status == JobStatus.RUNNING, 30)
        second.start()
        (ended,) = wait_done(store, [job.id])
    finally:
        second.stop()
        first.stop()
    assert ended.outcome == Outcome.SUCCEEDED, ended.error


def test_a_job_whose_runner_died_mid_turn_runs_again_resumed(
    settings: Settings, store: Store, src_repo: Path
) -> None:
    """A replica that died for good left a job ``running`` mid-turn (its attempt ``running``, its lease
    free): a live executor, started long before, takes it over within a lease TTL: the dead attempt is
    marked crashed and the job runs again, resuming the key's conversation, before the key's next job."""
    settings = settings.with_(lease_ttl=TAKEOVER_TTL)
    first = jobs.submit(store, settings, body(src_repo, prompt="turn 1"), "test")
    executor = LocalExecutor(settings, store)
    executor.start()
    try:
        executor.submit(first.id)
        wait_done(store, [first.id])
        orphan = jobs.submit(store, settings, body(src_repo, prompt="turn 2"), "test")
        assert store.start_job(orphan.id, time.time())  # as a process that is gone left it
        dead = dead_attempt(store, orphan)
        after = jobs.submit(store, settings, body(src_repo, prompt="turn 3"), "test")
        executor.submit(after.id)
        again, ran = wait_done(store, [orphan.id, after.id], timeout=settings.lease_ttl * 4 + 30)
    finally:
        executor.stop()
    assert again.outcome == "succeeded" and again.reruns == 1, again.error
    assert again.result is not None
    outcomes = [(a["attempt_id"], a["outcome"]) for a in again.result["attempts"]]
    assert outcomes[0] == (dead.id, "crashed") and outcomes[-1][1] == "succeeded"
    retry = store.get_run(outcomes[-1][0])
    assert retry is not None and retry.mode == "resume" and retry.prompt_kind == "interrupted"
    assert ran.outcome == "succeeded" and (ran.started_at or 0) >= (again.ended_at or 0)


def test_a_job_run_again_too_often_ends_crashed_and_says_why(
    settings: Settings, store: Store, src_repo: Path
) -> None:
    """With ``job_reruns`` 0 (or once a job has run again that often) a job whose process died ends
    crashed, its error saying why; its key goes on."""
    settings = dataclasses.replace(settings, job_reruns=0)
    orphan = jobs.submit(store, settings, body(src_repo, prompt="a"), "test")
    assert store.start_job(orphan.id, time.time())
    after = jobs.submit(store, settings, body(src_repo, prompt="b"), "test")
    executor = LocalExecutor(settings, store)
    executor.start()
    try:
        crashed, ran = wait_done(store, [orphan.id, after.id])
    finally:
        executor.stop()
    assert crashed.outcome == "crashed" and (crashed.error or "").startswith(orphans.GAVE_UP)
    assert "job_reruns" in (crashed.error or "") and crashed.reruns == 0
    assert ran.outcome == "succeeded"


def test_a_job_whose_cancel_was_asked_ends_cancelled_not_run_again(
    settings: Settings, store: Store, src_repo: Path
) -> None:
    """Its caller asked for it to stop before its process died: it ends cancelled, not run again."""
    orphan = jobs.submit(store, settings, body(src_repo, prompt="a"), "test")
    assert store.start_job(orphan.id, time.time())
    store.update_job(orphan.id, cancel_requested_at=time.time())
    executor = LocalExecutor(settings, store)
    executor.start()
    try:
        (ended,) = wait_done(store, [orphan.id])
    finally:
        executor.stop()
    assert ended.outcome == "cancelled" and ended.reruns == 0 and store.run_attempts(orphan.id) == []


def test_a_job_whose_turn_had_ended_is_recorded_not_run_again(
    settings: Settings, store: Store, src_repo: Path
) -> None:
    """The process died after its job's turn ended (publishing it, or recording its end): the job ends
    with the turn's own outcome and result, never ``crashed``, and the agent is not run again."""
    settings = settings.with_(lease_ttl=TAKEOVER_TTL)
    job = jobs.submit(store, settings, body(src_repo, prompt="a"), "test")
    executor = LocalExecutor(settings, store)
    executor.start()
    try:
        executor.submit(job.id)
        (ended,) = wait_done(store, [job.id])
        runs = store.run_attempts(job.id)
        # as if the process had died between the turn's end and the job's: running, its lease free
        store.update_job(job.id, status=JobStatus.RUNNING.value, outcome=None, result=None, ended_at=None)
        wait_for(lambda: done(store, job.id).status == JobStatus.DONE, settings.lease_ttl * 4 + 30)
    finally:
        executor.stop()
    recorded = done(store, job.id)
    assert recorded.outcome == "succeeded" and recorded.reruns == 0
    assert recorded.result is not None and recorded.result["result"] == (ended.result or {})["result"]
    assert [r.id for r in store.run_attempts(job.id)] == [r.id for r in runs], "not run again"


def test_the_sweep_marks_a_dead_runners_run_crashed(settings: Settings, store: Store, src_repo: Path) -> None:
    """A run left ``running`` by a runner that is gone (a CLI run killed: no job, nothing runs its key
    next) is marked crashed by the executor's sweep, its session too; one whose runner lives is not."""
    job = jobs.submit(store, settings, body(src_repo, prompt="a"), "test")
    assert store.start_job(job.id, time.time())
    dead = dead_attempt(store, job)
    alive = dataclasses.replace(dead, id="a" * 32, thread="t2", runner_pid=os.getpid())
    store.add_run(alive)
    store.update_job(job.id, status=JobStatus.DONE.value, outcome="cancelled")  # no job to take over
    executor = LocalExecutor(settings, store)
    executor.start()
    try:
        wait_for(lambda: (store.get_run(dead.id) or dead).outcome == Outcome.CRASHED, 10)
    finally:
        executor.stop()
    assert (store.get_run(alive.id) or alive).outcome == Outcome.RUNNING


def dead_attempt(store: Store, job: JobRecord) -> RunRecord:
    """The attempt a runner that is gone left ``running`` for ``job`` (a pid of this host, ended)."""
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid names no process now
    record = RunRecord(
        id=new_run_id(),
        agent=job.agent,
        repo=job.repo,
        thread=job.thread,
        attempt=1,
        mode=Mode.RESUME,
        prompt_kind=PromptKind.DELTA,
        prompt=str(job.request["prompt"]),
        started_at=time.time(),
        heartbeat_at=time.time(),
        host=HOST,
        runner_pid=gone.pid,
        job_id=job.id,
    )
    store.add_run(record)
    return record


def test_failed_job_is_never_left_running(settings: Settings, store: Store, src_repo: Path) -> None:
    """A refusal only the runner can make (resume without a conversation) ends the job failed."""
    job = jobs.submit(store, settings, body(src_repo, mode="resume"), "test")
    executor = LocalExecutor(settings, store)
    executor.start()
    executor.submit(job.id)
    try:
        (ended,) = wait_done(store, [job.id])
    finally:
        executor.stop()
    assert ended.outcome == "failed" and "no conversation to resume" in (ended.error or "")


# -- over HTTP ------------------------------------------------------------------------------------


def sse(
    http: httpx.Client, run_id: str, last: int | None = None, on_open: Callable[[], object] | None = None
) -> list[tuple[str, str | None, Any]]:
    """The whole event stream of a run: (event, id, data) per event; ``on_open`` is called once the
    stream's headers arrived (the server is streaming it)."""
    headers = {"Last-Event-ID": str(last)} if last is not None else {}
    found: list[tuple[str, str | None, Any]] = []
    with http.stream("GET", f"/v1/runs/{run_id}/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        if on_open is not None:
            on_open()
        event: dict[str, str] = {}
        for line in response.iter_lines():
            if not line:
                if "data" in event:
                    found.append((event.get("event", "message"), event.get("id"), json.loads(event["data"])))
                event = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                event[name] = value.removeprefix(" ")
    return found


def test_http_submit_stream_cancel(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with run_service(settings) as service, service.client("run") as http:
        bad = http.post("/v1/runs", json=body(src_repo, "a/../b"))
        assert bad.status_code == 422 and "thread" in bad.json()["detail"]
        assert http.get("/v1/runs").json()["runs"] == []
        made = http.post("/v1/runs", json=body(src_repo))
        assert made.status_code == 202 and made.json()["status"] == "queued"
        run_id = made.json()["run_id"]
        events = sse(http, run_id)
        kinds = [e[0] for e in events]
        assert kinds[-1] == "outcome" and set(kinds[:-1]) == {"agent"} and len(kinds) > 2
        assert [int(e[1] or 0) for e in events[:-1]] == list(range(1, len(events)))
        final = events[-1][2]
        assert final["status"] == "done" and final["outcome"] == "succeeded"
        assert final == http.get(f"/v1/runs/{run_id}").json()
        listed = http.get("/v1/runs", params={"repo": str(src_repo), "thread": "t1"}).json()
        assert listed == {"runs": [final], "limit": 50, "offset": 0, "next_offset": None}
        assert http.get("/v1/runs/nope").status_code == 404
        missing = http.get("/v1/runs/nope/events")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/json"
        stream_doc = http.get("/openapi.json").json()["paths"]["/v1/runs/{run_id}/events"]["get"]
        assert list(stream_doc["responses"]["200"]["content"]) == ["text/event-stream"]
        assert list(stream_doc["responses"]["404"]["content"]) == ["application/json"]
        assert http.post(f"/v1/runs/{run_id}/cancel").status_code == 409
        _cancel_over_http(service, http, src_repo, monkeypatch)


def _cancel_over_http(
    service: Service, http: httpx.Client, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_DELAY", "30")
    long = http.post("/v1/runs", json=body(src_repo, prompt="long")).json()["run_id"]
    queued = http.post("/v1/runs", json=body(src_repo, prompt="queued")).json()["run_id"]
    wait_for(lambda: http.get(f"/v1/runs/{long}").json()["status"] == "running")
    assert http.post(f"/v1/runs/{queued}/cancel").json() == {"run_id": queued, "status": "done"}
    wait_for(lambda: bool(service.store.list_runs(limit=1)[0].agent_pid))
    assert http.post(f"/v1/runs/{long}/cancel").json() == {"run_id": long, "status": "running"}
    ended: list[Any] = []
    reader = threading.Thread(target=lambda: ended.extend(sse(http, long)))
    reader.start()
    reader.join(20)
    assert ended and ended[-1][0] == "outcome" and ended[-1][2]["outcome"] == "cancelled"
    with service.client("read") as reader_only:
        assert reader_only.post(f"/v1/runs/{long}/cancel").status_code == 403
        assert reader_only.post("/v1/runs", json=body(src_repo)).status_code == 403


def test_other_repo_key_runs_alongside(settings: Settings, tmp_path: Path) -> None:
    """Two repos, one thread name: two keys, both succeed (the slug keeps them apart)."""
    repos = [make_repo(tmp_path / f"r{i}") for i in range(2)]
    with run_service(settings) as service, service.client("run") as http:
        ids = [http.post("/v1/runs", json=body(r)).json()["run_id"] for r in repos]
        ended = wait_done(service.store, ids)
    assert [j.outcome for j in ended] == ["succeeded", "succeeded"], [j.error for j in ended]
    assert ended[0].repo != ended[1].repo


def test_a_job_never_handed_over_is_found_in_the_store(
    settings: Settings, store: Store, src_repo: Path
) -> None:
    """A job stored queued after start() but never passed to submit() (another process queued it, or
    the submit was lost) still runs: the dispatcher looks at the store when nothing wakes it."""
    executor = LocalExecutor(settings, store)
    executor.start()
    try:
        job = jobs.submit(store, settings, body(src_repo), "elsewhere")
        (ended,) = wait_done(store, [job.id], 20)
    finally:
        executor.stop()
    assert ended.outcome == "succeeded"


def test_a_relative_repo_path_is_stored_resolved(
    settings: Settings, store: Store, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(src_repo.parent)
    job = jobs.submit(store, settings, body(Path(src_repo.name)), "test")
    assert done(store, job.id).request["repo"] == str(src_repo.resolve())


def test_many_subscribers_hold_no_threads(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """50 subscribers waiting on a quiet run (more than the server's 40 worker threads) do not keep
    other requests waiting; all of them get the outcome when it comes."""
    monkeypatch.setenv("FAKE_AGENT_DELAY", "30")
    with run_service(settings) as service, service.client("run") as http:
        run_id = http.post("/v1/runs", json=body(src_repo, prompt="long")).json()["run_id"]
        wait_for(
            lambda: (
                bool(service.store.list_runs(limit=1)) and bool(service.store.list_runs(limit=1)[0].agent_pid)
            )
        )
        streams: list[list[Any]] = []
        token = http.headers["Authorization"].removeprefix("Bearer ")

        opened: list[int] = []

        def subscribe() -> None:
            with service.client(token) as own:
                streams.append(sse(own, run_id, on_open=lambda: opened.append(1)))

        readers = [threading.Thread(target=subscribe) for _ in range(50)]
        for reader in readers:
            reader.start()
        wait_for(lambda: len(opened) == 50, timeout=60, what="all 50 subscribers to have their stream open")
        began = time.monotonic()
        assert http.get(f"/v1/runs/{run_id}").json()["status"] == "running"
        # were the subscribers holding the server's threads, this would wait for the run's 30 s (the
        # bound has a busy machine's margin)
        assert time.monotonic() - began < 10.0, "a request waited behind the subscribers"
        assert http.post(f"/v1/runs/{run_id}/cancel").status_code == 202
        for reader in readers:
            reader.join(30)
    assert len(streams) == 50 and all(
        s[-1][0] == "outcome" and s[-1][2]["outcome"] == "cancelled" for s in streams
    )


def test_http_bounds_every_field_with_422_and_stores_nothing(settings: Settings, src_repo: Path) -> None:
    """A 100,000-character repo URL, retries 10**30, a timeout of 1e999 (JSON's infinity): each is
    refused with 422 naming the field, before anything is stored (found by hostile probes)."""
    with run_service(settings) as service, service.client("run") as http:
        for extra, word in (
            ({"repo": "https://example.com/" + "a" * 100_000}, "repo is 100,020 characters long"),
            ({"retries": 10**30}, "retries"),
            ({"timeout": "1e999"}, "timeout"),  # a number too large for a double: JSON's infinity
            ({"timeout": 10**6}, "timeout takes a number of at most 604800"),
        ):
            text = json.dumps({**body(src_repo), **extra}).replace('"1e999"', "1e999")
            answer = http.post("/v1/runs", content=text, headers={"content-type": "application/json"})
            assert answer.status_code == 422, (extra.keys(), answer.text[:300])
            assert word in json.dumps(answer.json()["detail"]), answer.text[:300]
        assert service.store.list_jobs(limit=5) == []
