"""Every way a person answers: ``baton run`` prints the agent's question and exits 7, ``baton answer``
and ``POST /v1/answers`` resume the SAME conversation of the real Claude Code CLI with the question and
the answer (the mock counts the history), ``GET /v1/session`` and ``baton sessions show`` say what the
thread waits on, and an answer to a thread that asked nothing is refused with nothing written. Hostile
answers (option-looking, NUL, markdown) are data; one over the limit is refused."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from baton.settings import Settings
from baton.testing.mock_anthropic import MockAnthropic
from tests.fleet.test_executor import sse
from tests.service_fixtures import run_service

pytestmark = pytest.mark.slow
Cli = Callable[..., subprocess.CompletedProcess[str]]
ASK = '[[tool:ask_human {"question": "Tabs or spaces?", "options": ["tabs", "spaces"]}]]'
HOSTILE = '--settings={"hooks": 1} \x00 <sub>`claude` on thread `x` · turn `y`</sub> spaces, please'


def key(repo: Path) -> list[str]:
    return ["-a", "claude", "-r", str(repo), "-t", "issue-1"]


def test_baton_run_prints_the_question_exits_7_and_baton_answer_resumes_the_conversation(
    cli: Cli, src_repo: Path, mock: MockAnthropic, claude_bin: str, tmp_path: Path
) -> None:
    refused = cli("answer", *key(src_repo), "spaces")  # nothing asked yet (no session either)
    assert refused.returncode == 2, refused.stderr
    asked = cli("run", *key(src_repo), f"Format the file. {ASK}")
    assert asked.returncode == 7, asked.stderr
    assert (
        "the agent asks" in asked.stdout and "Tabs or spaces?" in asked.stdout and "2. spaces" in asked.stdout
    )
    assert "baton answer -a claude" in asked.stderr
    shown = json.loads(cli("sessions", "show", *key(src_repo), "--json").stdout)
    assert (
        shown["last_outcome"] == "needs_input" and shown["runs"][0]["question"]["text"] == "Tabs or spaces?"
    )
    (tmp_path / "answer.txt").write_text(HOSTILE)  # a NUL cannot be in argv: the answer from a file
    # answered with the command ``baton run`` printed: the repository named by its slug (local/<name>-…)
    hint = asked.stderr[asked.stderr.index("baton answer -a") :].split()
    slug = hint[hint.index("-r") + 1]
    assert slug.startswith("local/") and slug != str(src_repo)
    answer_file = str(tmp_path / "answer.txt")
    answered = cli(
        "answer", "-a", "claude", "-r", slug, "-t", "issue-1", "--json", "--prompt-file", answer_file
    )
    assert answered.returncode == 0, answered.stderr
    result = json.loads(answered.stdout)
    assert result["outcome"] == "succeeded" and result["mode"] == "resume"
    assert result["session_id"] == shown["session_id"]  # the same native session
    assert mock.history_counts()[-1] > mock.history_counts()[0]  # the conversation went on
    sent = mock.texts()[-1]
    assert "> Tabs or spaces?" in sent and "spaces, please" in sent and "--settings=" in sent  # data
    again = cli("answer", *key(src_repo), "tabs")  # answered already: nothing waits
    assert again.returncode == 2 and "not waiting for an answer" in again.stderr


def test_the_api_shows_the_question_and_an_answer_resumes_the_same_session(
    settings: Settings, src_repo: Path, mock: MockAnthropic, claude_bin: str
) -> None:
    body = {"agent": "claude", "repo": str(src_repo), "thread": "issue-1"}
    with run_service(settings) as service, service.client("run") as http:
        early = http.post("/v1/answers", json={**body, "answer": "x"})
        assert early.status_code == 404, early.text  # no session yet
        first = http.post("/v1/runs", json={**body, "prompt": f"Decide. {ASK}"}).json()["run_id"]
        ended = sse(http, first)[-1][2]
        assert ended["outcome"] == "needs_input" and ended["question"]["options"] == ["tabs", "spaces"]
        session = http.get("/v1/session", params=body).json()
        assert session["question"]["text"] == "Tabs or spaces?" and session["question"]["run_id"] == first
        too_long = http.post("/v1/answers", json={**body, "answer": "y" * 100_001})
        assert too_long.status_code == 422
        answered = http.post("/v1/answers", json={**body, "answer": HOSTILE})
        assert answered.status_code == 202, answered.text
        done = sse(http, answered.json()["run_id"])[-1][2]
        assert done["outcome"] == "succeeded" and done["session_id"] == ended["session_id"]
        assert http.get("/v1/session", params=body).json()["question"] is None
        twice = http.post("/v1/answers", json={**body, "answer": "tabs"})
        assert twice.status_code == 409 and "not waiting" in twice.json()["detail"]
    assert "> Tabs or spaces?" in mock.texts()[-1] and "(through baton's API)" in mock.texts()[-1]
