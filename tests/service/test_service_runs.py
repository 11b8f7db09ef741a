"""The runs API end to end on a real uvicorn: the real Claude Code CLI against the mock Anthropic API
(one conversation across runs submitted over HTTP, the SSE stream live, late and resumed), and
``baton serve`` killed with SIGKILL with a run running and one queued."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from baton import RunRequest, run
from baton.agents.base import cli_version
from baton.service.auth import create_token
from baton.service.records import TokenScope
from baton.settings import Settings
from baton.store import open_store
from baton.testing.mock_anthropic import MockAnthropic
from tests.conftest import BATON, wait_for
from tests.fleet.test_executor import sse
from tests.service_fixtures import free_port, run_service, wait_http

pytestmark = pytest.mark.slow
Event = tuple[str, str | None, Any]


def claude_body(repo: Path, prompt: str) -> dict[str, Any]:
    return {"agent": "claude", "repo": str(repo), "thread": "issue-1", "prompt": prompt}


def test_two_http_runs_one_conversation_and_the_event_stream(
    settings: Settings, src_repo: Path, mock: MockAnthropic, claude_bin: str
) -> None:
    mock.delay = 0.3  # the first run is still going when the second is submitted
    with run_service(settings) as service, service.client("run") as http:
        ids = [
            http.post("/v1/runs", json=claude_body(src_repo, f"step {i}")).json()["run_id"] for i in range(2)
        ]
        live: list[Event] = []
        reader = threading.Thread(target=lambda: live.extend(sse(http, ids[0])))
        reader.start()  # subscribed while the run is queued or running
        second = sse(http, ids[1])  # ends when the second run (after the first) ends
        reader.join(60)
        firsts = [http.get(f"/v1/runs/{i}").json() for i in ids]
        late = sse(http, ids[0])  # after the run ended: the whole stream again
        resumed = sse(http, ids[0], last=3)
    assert [r["outcome"] for r in firsts] == ["succeeded", "succeeded"], firsts
    assert [r["mode"] for r in firsts] == ["fresh", "resume"]
    assert firsts[0]["session_id"] and firsts[0]["session_id"] == firsts[1]["session_id"]
    assert mock.history_counts() == [2, 4]
    assert "received 4" in str(firsts[1]["result"])
    assert firsts[0]["cli_version"] == firsts[1]["cli_version"] == cli_version((claude_bin,))
    for stream, record in ((live, firsts[0]), (second, firsts[1])):
        assert [e[0] for e in stream] == ["agent"] * (len(stream) - 1) + ["outcome"]
        assert [e[1] for e in stream[:-1]] == [str(n) for n in range(1, len(stream))]
        assert stream[-1][2] == record
        events = [e[2]["event"] for e in stream[:-1]]
        assert events[0]["type"] == "system" and events[-1]["type"] == "result"  # Claude's own order
        assert events[-1]["session_id"] == record["session_id"]
    assert late == live
    assert resumed == live[3:]


def serve(baton_env: dict[str, str], port: int, delay: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*BATON, "serve", "--port", str(port)],
        env={**os.environ, **baton_env, "FAKE_AGENT_DELAY": delay},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_sigkill_with_a_running_and_a_queued_run(
    settings: Settings, baton_env: dict[str, str], src_repo: Path
) -> None:
    first = run(RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="first task"), settings)
    assert first.ok
    store = open_store(settings.resolved_store_url)
    token = create_token(store, "runner", TokenScope.RUN)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    body = {"agent": "fake", "repo": str(src_repo), "thread": "t1"}
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    server = serve(baton_env, port, delay="60")
    try:
        wait_http(url + "/healthz")
        running = http.post("/v1/runs", json={**body, "prompt": "interrupted-zebra"}).json()["run_id"]
        queued = http.post("/v1/runs", json={**body, "prompt": "carry on"}).json()["run_id"]
        stream = settings.home / "jobs" / f"{running}.events.jsonl"
        wait_for(lambda: stream.exists() and '"init"' in stream.read_text())  # the agent is up
        # mid-turn: the agent has written the prompt to its transcript, as it would have by then
        keys = settings.home / "keys" / "fake"  # the key's own agent home is there
        wait_for(
            lambda: any(
                "interrupted-zebra" in p.read_text() for p in keys.glob("**/home/projects/*/*.jsonl")
            ),
            60,
        )
        attempt = store.list_runs(limit=1)[0]
        assert attempt.id != first.run.id and attempt.agent_pid
        assert http.get(f"/v1/runs/{queued}").json()["status"] == "queued"
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(10)
    server = serve(baton_env, port, delay="0")
    try:
        wait_http(url + "/healthz")
        wait_for(lambda: http.get(f"/v1/runs/{queued}").json()["status"] == "done")
        again, after = (http.get(f"/v1/runs/{i}").json() for i in (running, queued))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        http.close()
    # the killed turn ran again first, resuming the conversation with the interruption note
    assert again["status"] == "done" and again["outcome"] == "succeeded", again
    assert again["reruns"] == 1 and again["attempts"][0]["attempt_id"] == attempt.id
    assert (again["mode"], again["prompt_kind"]) == ("resume", "interrupted")
    assert again["session_id"] == first.session.agent_session_id
    # the first turn (2 messages), the interrupted prompt, and its run again: the conversation went on
    assert again["result"] == "fake reply: received 5 messages"
    assert after["outcome"] == "succeeded", after
    assert after["result"] == "fake reply: received 7 messages"
    relabelled = store.get_run(attempt.id)
    store.close()
    assert relabelled is not None and relabelled.outcome.value == "crashed"
    lines = [json.loads(line) for line in stream.read_text().splitlines()]
    assert lines[0]["event"]["type"] == "system" and lines[-1] == {"seq": len(lines), "end": "succeeded"}
    # one stream, numbered on: the dead attempt's events, then those of its run again
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert {line.get("attempt_id") for line in lines[:-1]} == {attempt.id, again["attempt_id"]}


def test_a_get_with_wait_answers_when_the_run_is_done(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``?wait=S``: a script reads the outcome right after its POST, with no loop (the README's tour)."""
    monkeypatch.setenv("FAKE_AGENT_DELAY", "1.5")
    body = {"agent": "fake", "repo": str(src_repo), "thread": "waited", "prompt": "go"}
    with run_service(settings) as service, service.client("run") as http:
        run_id = http.post("/v1/runs", json=body).json()["run_id"]
        short = http.get(f"/v1/runs/{run_id}", params={"wait": 0.2}).json()
        waited = http.get(f"/v1/runs/{run_id}", params={"wait": 60}, timeout=90).json()
        too_long = http.get(f"/v1/runs/{run_id}", params={"wait": 301})
        at_once = http.get(f"/v1/runs/{run_id}", params={"wait": 60}).json()
    assert short["status"] in ("queued", "running") and short["outcome"] is None
    assert (waited["status"], waited["outcome"], waited["mode"]) == ("done", "succeeded", "fresh")
    assert too_long.status_code == 422 and "wait" in too_long.text
    assert at_once == waited, "a run that is done answers at once, as it is"


def test_baton_serve_parses_http_in_c_on_uvloop(baton_env: dict[str, str]) -> None:
    """The server extra's httptools and uvloop are what ``baton serve`` runs on (uvicorn picks them when
    they are installed; without them a burst of 50 webhooks waited 55 ms instead of 32): its process has
    both compiled modules loaded once it answers, and it answers a kept-alive request as before."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = serve(baton_env, port, delay="0")
    try:
        wait_http(url + "/healthz")
        with httpx.Client(base_url=url, timeout=30) as http:
            assert [http.get("/healthz").status_code for _ in range(3)] == [200, 200, 200]
        maps = Path(f"/proc/{server.pid}/maps").read_text()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    libraries = {line.split()[-1] for line in maps.splitlines() if line.rstrip().endswith(".so")}
    assert any("/uvloop/loop." in lib for lib in libraries), "baton serve does not run on uvloop"
    assert any("/httptools/parser/parser." in lib for lib in libraries), "baton serve does not use httptools"
