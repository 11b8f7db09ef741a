"""The REAL Codex CLI as the MCP client of ``baton mcp``: ``[mcp_servers.baton]`` in its config.toml as
docs/mcp.md writes it (``env_vars`` passing ``BATON_URL`` and ``BATON_TOKEN`` on), its model (the mock
OpenAI API) finds ``start_turn`` through Codex's tool search and calls it from ``codex exec``; the turn
runs in a real ``baton serve``, stored under the token's name, and its result reaches the model."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from baton.agents.base import find_binary
from baton.agents.codex import INSTALL
from baton.settings import Settings
from baton.testing.mock_openai import MockOpenAI
from tests.conftest import BATON
from tests.service_fixtures import run_service

pytestmark = pytest.mark.slow

# docs/mcp.md's table, but the command: this checkout's baton (and, passed on too, the Python path it
# is imported from and the fake agent's registration, which the docs' setup has no need of)
CONFIG = """
[mcp_servers.baton]
command = {command}
args = {args}
env_vars = ["BATON_URL", "BATON_TOKEN", "PYTHONPATH", "BATON_AGENTS_EXTRA"]
tool_timeout_sec = 150
required = true
default_tools_approval_mode = "approve"
"""


def test_codex_starts_a_turn_through_baton_mcp(settings: Settings, src_repo: Path, tmp_path: Path) -> None:
    key = {"agent": "fake", "repo": str(src_repo), "thread": "issue-13", "prompt": "Fix it.", "wait": 60}
    codex = find_binary(os.environ.get("BATON_CODEX_BIN", ""), "codex", "BATON_CODEX_BIN", INSTALL)
    home = tmp_path / "codex-home"
    with MockOpenAI() as mock, run_service(settings) as service:
        mock.configure_home(home)
        with (home / "config.toml").open("a") as config:
            config.write(CONFIG.format(command=json.dumps(BATON[0]), args=json.dumps([*BATON[1:], "mcp"])))
        env = {
            **os.environ,
            **mock.env(),
            "CODEX_HOME": str(home),
            "BATON_URL": service.url,
            "BATON_TOKEN": service.token("run", "codex"),
        }
        done = subprocess.run(
            [*codex, "exec", "--json", "--skip-git-repo-check", "-"],
            input=f"Start the turn. [[tool:start_turn {json.dumps(key)}]]",
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert done.returncode == 0, (done.stdout, done.stderr)
        jobs = service.store.list_jobs(thread="issue-13")
    assert [(j.agent, j.outcome, j.actor) for j in jobs] == [("fake", "succeeded", "codex")]
    outputs = [o for r in mock.conversation() for o in r.tool_outputs().values()]
    said = [o for o in outputs if isinstance(o, str) and jobs[0].id in o]
    assert said and '"outcome":"succeeded"' in said[-1] and "fake reply: received" in said[-1], outputs
