"""A key's disk budget (``BATON_KEY_DISK``) holds however fast the agent writes, with each REAL agent
CLI: its mock model has it write 80 MB (``dd``: well under a second, so the watch's samples can miss
it between two looks) as the last thing of its turn, under a 20 MiB budget (not 200 MB under 50: the
turn's checkpoint hashes and compresses the file, then its bundle again, a second or more a CLI). The
turn ends ``limited`` with the reason whether the samples caught the write or only the exact measure
when the turn ended did; what was written stays in the worktree (nothing of the agent's work is deleted); once
it is freed, the key's next turn resumes and is told why its last one was stopped. Before the measure
at the end, Claude's turn ended ``succeeded`` over its budget in one of two tries here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from baton import Mode, Outcome, RunRequest, RunResult, run
from baton.models import Access, PromptKind
from baton.settings import Settings
from baton.testing import MockModel
from tests.conftest import FAMILIES
from tests.sandbox import test_access_real
from tests.sandbox.test_access_real import shell_marker

pytestmark = pytest.mark.slow
agent, model = test_access_real.agent, test_access_real.model  # the fixtures: each real CLI, its mock

# once: the next turn is told this instruction again (markers included), and must not write again
WRITE = (
    "test -e .wrote || (touch .wrote; dd if=/dev/zero of=big.bin bs=1M count=80 status=none); echo written"
)


def turn(agent: str, settings: Settings, repo: Path, prompt: str) -> RunResult:
    request = RunRequest(agent=agent, repo=str(repo), thread="disk", prompt=prompt, access=Access.FULL)
    return run(request, settings=settings.with_(key_disk="20M"))


# the budget is baton's watch on the key's disk, whatever process writes: one CLI per family
@pytest.mark.parametrize("agent", FAMILIES)
def test_a_fast_write_past_the_disk_budget_ends_the_turn_limited(
    agent: str, settings: Settings, src_repo: Path, model: MockModel
) -> None:
    wrote = turn(agent, settings, src_repo, f"write it {shell_marker(agent, WRITE)}")
    big = Path(wrote.session.worktree) / "big.bin"
    # all 80 MB, or what was allocated before the watch's samples stopped it: kept either way
    assert big.stat().st_size > 20 * 2**20, "the agent's write ran, and its file is kept"
    assert wrote.run.outcome == Outcome.LIMITED, (wrote.run.outcome, wrote.run.error)
    assert wrote.run.error and "over its disk budget of 20 MiB (BATON_KEY_DISK)" in wrote.run.error
    assert wrote.run.error.endswith("the next run is told this turn was interrupted"), wrote.run.error

    big.unlink()  # freed by its owner: the key is under its budget again
    after = turn(agent, settings, src_repo, "what happened?")
    assert after.run.outcome == Outcome.SUCCEEDED, after.run.error
    assert after.run.mode == Mode.RESUME and after.run.prompt_kind == PromptKind.INTERRUPTED
    sent = model.texts()[-1]
    assert "over its disk budget of 20 MiB (BATON_KEY_DISK)" in sent and "what happened?" in sent
    assert not big.exists(), "told its last instruction again, the agent did not write it twice"
