"""One run, one id: the id a caller gets back — a job's from ``POST /v1/runs``, or a ``baton run``'s — is
accepted by the CLI, the API, the SSE stream and the dashboard; so is any attempt's own id, and the short form
(the last 8 characters) of either. Retries are attempts under the run."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from baton import RunRequest, run
from baton.errors import NotFound
from baton.models import JobRecord, JobStatus, Outcome, RunRecord
from baton.runner.runids import Ambiguous, resolve
from baton.settings import Settings
from baton.store import open_store
from tests.cli.test_cli_ids import record
from tests.conftest import wait_for
from tests.fleet.test_executor import sse
from tests.service.test_dashboard import browser
from tests.service_fixtures import Service, service_fixture  # noqa: F401 (fixture)

Cli = Callable[..., subprocess.CompletedProcess[str]]
RETRY = {"FAKE_AGENT_FAIL_FIRST": "1"}  # the first attempt fails, the retry succeeds


def test_a_baton_run_with_a_retry_is_one_run_of_two_attempts(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_FAIL_FIRST", "1")
    result = run(RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="hi", retries=1), settings)
    first, second = result.attempts
    assert (first.outcome, second.outcome) == (Outcome.FAILED, Outcome.SUCCEEDED)
    # the first attempt's id is the run's; the retry has its own and names the run
    assert result.run_id == first.id == first.job_id == second.job_id and second.id != first.id
    data = result.to_json()
    assert data["run_id"] == first.id and data["attempt_id"] == second.id
    assert [a["attempt_id"] for a in data["attempts"]] == [first.id, second.id]
    store = open_store(settings.resolved_store_url)
    try:
        for given in (first.id, first.id[-8:], first.id[:14]):
            ref = resolve(store, given)
            assert (
                ref.id == first.id
                and ref.named is None
                and [a.id for a in ref.attempts] == [first.id, second.id]
            )
        by_attempt = resolve(store, second.id[-8:])
        assert by_attempt.id == first.id and by_attempt.named is not None and by_attempt.named.id == second.id
        view = ref.to_json(store)
        assert (view["run_id"], view["status"], view["outcome"]) == (first.id, "done", "succeeded")
    finally:
        store.close()


def test_cli_show_and_logs_take_the_run_id_and_list_attempts(cli: Cli, cli_here: Cli, src_repo: Path) -> None:
    env = RETRY
    made = cli(
        "run", "-a", "fake", "-r", str(src_repo), "-t", "t1", "--retries", "1", "--json", "hi", env=env
    )
    assert made.returncode == 0, made.stderr
    data = json.loads(made.stdout)
    run_id, attempts = data["run_id"], data["attempts"]
    assert len(attempts) == 2 and attempts[0]["attempt_id"] == run_id
    for given in (run_id, run_id[-8:], attempts[1]["attempt_id"][-8:]):
        shown = cli_here("runs", "show", given, "--json")
        assert shown.returncode == 0, shown.stderr
        got = json.loads(shown.stdout)
        assert got["run_id"] == run_id and [a["attempt_id"] for a in got["attempts"]] == [
            a["attempt_id"] for a in attempts
        ]
    human = cli_here("runs", "show", run_id[-8:])
    assert human.returncode == 0 and f"run: {run_id}" in human.stdout and "attempts" in human.stdout
    assert "None" not in human.stdout and "{'" not in human.stdout  # no Python reprs
    logs = cli_here("runs", "logs", run_id[-8:])
    assert logs.returncode == 0 and "attempt 1" in logs.stdout and "attempt 2" in logs.stdout, logs.stdout
    assert "fake failure" in logs.stdout
    table = cli_here("runs", "ls", env={"COLUMNS": "200"}).stdout
    assert f"{run_id[-8:]}#2" in table and f"{run_id[-8:]} " in table, table


def test_a_job_id_and_its_attempt_ids_work_on_every_surface(
    service: Service, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_FAIL_FIRST", "1")
    body = {"agent": "fake", "repo": str(src_repo), "thread": "t1", "prompt": "hi", "retries": 1}
    with service.client("run") as http:
        job_id = http.post("/v1/runs", json=body).json()["run_id"]
        wait_for(lambda: http.get(f"/v1/runs/{job_id}").json()["status"] == "done")
        record = http.get(f"/v1/runs/{job_id}").json()
        attempt_ids = [a["attempt_id"] for a in record["attempts"]]
        assert record["outcome"] == "succeeded" and len(attempt_ids) == 2 and job_id not in attempt_ids
        for given in (job_id[-8:], attempt_ids[0], attempt_ids[1][-8:]):
            assert http.get(f"/v1/runs/{given}").json() == record, given
        events = sse(http, attempt_ids[1][-8:])  # the stream, by an attempt's short id
        assert events == sse(http, job_id)
        agent = [e[2] for e in events if e[0] == "agent"]
        assert {e["run_id"] for e in agent} == {job_id}
        assert {(e["attempt"], e["attempt_id"]) for e in agent} == {(1, attempt_ids[0]), (2, attempt_ids[1])}
        assert events[-1][0] == "outcome" and events[-1][2] == record
        assert http.get("/v1/runs/ffffffff").status_code == 404
        direct = run(RunRequest(agent="fake", repo=str(src_repo), thread="t2", prompt="hi"), service.settings)
        got = http.get(f"/v1/runs/{direct.run_id[-8:]}")  # a `baton run`'s id works here too
        assert got.status_code == 200 and got.json()["run_id"] == direct.run_id, got.text
        assert got.json()["status"] == "done" and got.json()["outcome"] == direct.run.outcome.value
        stream = http.get(f"/v1/runs/{direct.run_id}/events")
        assert stream.status_code == 404 and "baton runs logs" in stream.text  # no job, no event stream
    with browser(service, "read") as page:
        for given in (job_id, job_id[-8:], attempt_ids[0]):
            html = page.get(f"/runs/{given}").text
            assert f'<span id="run-id">{job_id}</span>' in html, given
            assert 'id="attempts"' in html and f'href="/runs/{attempt_ids[1]}"' in html
        assert "attempt 1" in page.get(f"/runs/{attempt_ids[0]}").text


def _attempt(run_id: str, job_id: str | None) -> RunRecord:
    return dataclasses.replace(record(run_id), job_id=job_id)


def test_resolve_across_jobs_and_attempts(settings: Settings) -> None:
    store = open_store(settings.resolved_store_url)
    try:
        job = JobRecord("019000000000aaaa1111", "fake", "local/x", "t", {}, JobStatus.QUEUED, "me", 1.0)
        store.add_job(job)
        assert resolve(store, "aaaa1111").attempts == [] and resolve(store, "aaaa1111").job is not None
        store.add_run(_attempt("019000000001bbbb2222", job.id))
        assert resolve(store, "bbbb2222").id == job.id  # an attempt's tail finds its job
        store.add_run(_attempt("019000000002cccc1111", None))  # a run from before attempts named theirs
        assert resolve(store, "cccc1111").id == "019000000002cccc1111"
        with pytest.raises(Ambiguous, match="2 runs match '1111'"):
            resolve(store, "1111")
        with pytest.raises(NotFound):
            resolve(store, "  ")
    finally:
        store.close()
