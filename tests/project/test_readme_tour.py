"""The README's tour, run as a newcomer pastes it: its shell blocks (steps 1 to 4), extracted from
README.md itself (never a copy, so the two cannot drift), run in order as one bash script with
``set -euo pipefail`` on a fresh home, in a directory of their own, with baton on ``PATH`` as
``. .venv/bin/activate`` puts it — the real Claude Code, Codex and Gemini CLIs against the mocks (and
Claude Code running a project's tests after its ``.baton/setup.sh``), then the service, then the
forge loop against the fake GitHub. Only the fixed ports are swapped for free ones (another test may
hold them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.pasted import leftovers, run_pasted  # noqa: F401 (leftovers: the fixture)
from tests.private_services import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
TOUR = ("## A five-minute tour", "### 5. ")  # from this heading to the next step, which builds an image
PORTS = ("41234", "41235", "41236", "41237", "41238", "8765")  # the tour's fixed ports
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)

pytestmark = pytest.mark.slow


def tour_blocks() -> list[str]:
    text = README.read_text()
    start = text.index(TOUR[0])
    return BLOCK.findall(text[start : text.index(TOUR[1], start)])


def test_the_tour_has_the_steps_it_promises() -> None:
    script = "\n".join(tour_blocks())
    for command in (
        "baton run -a claude",
        "baton run -a codex",
        "baton run -a gemini",
        ".baton/setup.sh",
        "--access full",
        "baton serve",
        "curl",
        "python -m baton.testing.fake_forge",
        "baton forge test",
        "/merge",
    ):
        assert command in script
    assert not re.search(r"\b[0-9a-f]{8,}\b", script.replace("41234", "")), "no literal run ids to paste"


def test_the_readme_tour_runs_as_pasted(tmp_path: Path, leftovers: None) -> None:  # noqa: F811
    script = "\n".join(tour_blocks())
    for port in PORTS:
        script = re.sub(rf"\b{port}\b", str(free_port()), script)
    returncode, out = run_pasted(script, tmp_path)
    assert returncode == 0, out[-6000:]
    print(out)
    expected = [
        "mock reply #1: received 2 messages",  # the first claude run
        "?? NOTES.md",  # the agent wrote the file
        "hydrated from the store's snapshot",  # after the redeploy
        "▶ Bash .venv/bin/python -m unittest -v",  # the agent ran the project's tests, in the .venv
        "test_add (test_add.T",  # that .baton/setup.sh made before its turn
        "... ok\n",
        "Ran 1 test in",
        "mock reply #7: received 10 messages",
        "done\nresume\nsucceeded",  # the service's run, waited for
        "ok   repo github:acme/api",  # baton forge test
        "webhooks: the forge shows a repository's webhooks to its admins only",  # as the README says
        "true\nbaton/claude/issue-1\nCloses #1.",  # the draft PR baton opened for the issue
        "**succeeded**",  # its one status comment
        "<sub>`claude` on thread `issue-1` · turn `",  # the agent's answer, attributed, on the issue
        "**The agent asks @alice:**\n\n> Which farewell: bye or goodbye?",  # its question, on the issue
        "@alice on the forge answered:",  # her reply resumed the conversation, told the question
        "mallory has read access (needs write): dropped",  # the trust policy, audited
        "merged: true",  # alice's merge over GitHub's API
        "the worktree is freed",  # it closed the thread and freed its worktree
    ]
    for text in expected:
        assert text in out, f"{text!r} not in the tour's output:\n{out[-6000:]}"
