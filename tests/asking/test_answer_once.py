"""One answer resumes a thread once: 50 threads that asked (the fake agent, through baton's MCP server)
answered at once over the API, each twice (a double click, a retried POST) — every thread resumes
exactly once, the other answer is refused at once (409: the first's run is queued or running, taken
under the key's answer lease), and nothing else runs; the runner still refuses an answer to a question
no longer waiting."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from baton import RunRequest, run
from baton.asking import questions
from baton.errors import NotWaiting
from baton.models import JobStatus, Outcome
from baton.runner.run import still_waits
from baton.settings import Settings
from baton.testing.fake import register_fake
from tests.conftest import make_repo, wait_for
from tests.service_fixtures import run_service

THREADS = 50
ASK = '[[tool:ask_human {"question": "Go on?"}]]'


def test_fifty_parked_threads_answered_twice_at_once_resume_each_exactly_once(
    settings: Settings, tmp_path: Path
) -> None:
    register_fake()
    repo = make_repo(tmp_path / "src")
    for n in range(THREADS):
        asked = run(RunRequest("fake", str(repo), f"t{n}", f"start {ASK}"), settings)
        assert asked.run.outcome == Outcome.NEEDS_INPUT, asked.run.error
    slug = asked.session.repo
    with run_service(settings) as service, service.client("run", timeout=60) as http:

        def answer(n: int) -> int:
            body = {"agent": "fake", "repo": slug, "thread": f"t{n % THREADS}", "answer": f"yes {n}"}
            return http.post("/v1/answers", json=body).status_code

        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(answer, range(2 * THREADS)))
        # one answer of each thread is taken, the other refused at once (409), never queued to fail
        assert set(codes) == {202, 409} and codes.count(202) == THREADS, codes
        store = service.store
        wait_for(lambda: all(j.status == JobStatus.DONE for j in store.list_jobs(limit=500)), timeout=240)
        for n in range(THREADS):
            runs = store.list_runs("fake", slug, f"t{n}")
            assert [r.outcome for r in runs] == [Outcome.SUCCEEDED, Outcome.NEEDS_INPUT], (n, runs)
            assert runs[0].session_id_in == runs[1].session_id_out  # the same conversation
        assert all(j.outcome == Outcome.SUCCEEDED.value for j in store.list_jobs(limit=500))


def test_the_runner_refuses_an_answer_to_a_question_that_is_no_longer_waiting(
    settings: Settings, tmp_path: Path
) -> None:
    register_fake()
    repo = make_repo(tmp_path / "src")
    asked = run(RunRequest("fake", str(repo), "t", f"start {ASK}"), settings)
    first = run(RunRequest("fake", str(repo), "t", "yes", answers=asked.run_id), settings)
    assert first.run.outcome == Outcome.SUCCEEDED
    with pytest.raises(NotWaiting):
        run(RunRequest("fake", str(repo), "t", "yes again", answers=asked.run_id), settings)
    with pytest.raises(NotWaiting):
        still_waits(None, "x")


def test_an_agent_that_goes_on_after_asking_is_stopped_after_its_grace(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_fake()
    monkeypatch.setattr(questions, "ASK_GRACE", 1.0)
    monkeypatch.setenv("FAKE_AGENT_AFTER_ASK", "30")
    repo = make_repo(tmp_path / "src")
    started = time.monotonic()
    asked = run(RunRequest("fake", str(repo), "t", f"start {ASK}"), settings)
    assert time.monotonic() - started < 20  # stopped, not waited for
    assert asked.run.outcome == Outcome.NEEDS_INPUT and len(asked.attempts) == 1
    assert asked.run.question is not None and asked.run.question["text"] == "Go on?"
