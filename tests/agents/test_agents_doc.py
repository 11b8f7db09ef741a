"""docs/agents.md's "Trying each agent offline", run as a newcomer pastes it: its shell blocks, extracted
from the page itself (never a copy, so the two cannot drift), run in order as one bash script with
``set -euo pipefail`` on a fresh home, in a directory of their own, with baton and the five real agent
CLIs on ``PATH`` as ``. .venv/bin/activate`` puts them, against the mocks. Only the fixed ports are
swapped for free ones (another test may hold them). Each ``# mock reply …`` comment the page shows is
what that agent's run printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.pasted import leftovers, run_pasted  # noqa: F401 (leftovers: the fixture)
from tests.private_services import free_port

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "agents.md"
SECTION = ("## Trying each agent offline", "\n## ")
PORTS = ("41234", "41235", "41236")
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
SAID = re.compile(r"# (mock reply #\d+: received \d+ \w+)$", re.MULTILINE)
AGENTS = ("claude", "codex", "gemini", "copilot", "opencode")

pytestmark = pytest.mark.slow


def blocks() -> list[str]:
    text = PAGE.read_text()
    start = text.index(SECTION[0])
    return BLOCK.findall(text[start : text.index(SECTION[1], start + 1)])


def test_the_page_has_a_block_for_each_agent() -> None:
    found = blocks()
    assert len(found) == 2 + len(AGENTS)  # the scratch home and repository, one per agent, then doctor
    assert found[-1].strip() == "baton doctor"
    for agent, block in zip(AGENTS, found[1:-1], strict=True):
        assert f"baton run -a {agent} " in block, block
        assert len(SAID.findall(block)) == 1, f"{agent}'s block says what its run prints"


def test_each_agents_block_runs_as_pasted(tmp_path: Path, leftovers: None) -> None:  # noqa: F811
    script = "\n".join(blocks())
    for port in PORTS:
        script = re.sub(rf"\b{port}\b", str(free_port()), script)
    returncode, out = run_pasted(script, tmp_path)
    assert returncode == 0, out[-6000:]
    printed = [line for line in out.splitlines() if line.startswith("mock reply #")]
    assert printed == SAID.findall(script), out[-6000:]
    assert out.count("succeeded  run ") == len(AGENTS), out[-6000:]
    # doctor exited 0 (set -e), with an ok line for every agent's CLI, retention and credentials
    for agent in AGENTS:
        for check in ("CLI", "retention", "credentials"):
            assert re.search(rf"^\W*ok\W+{agent} {check}\b", out, re.MULTILINE), (agent, check, out[-6000:])
