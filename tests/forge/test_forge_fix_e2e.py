"""A review saying the tests fail, end to end: the fake GitHub, a real ``baton serve``, the REAL Claude
Code CLI against its mock at access ``full``. A comment starts the thread and baton opens its PR; alice's
inline review comment says the tests fail on ``add``; in that one turn the model (scripted by the
markers in her comment) runs the tests (red), reads and edits ``calc.py``, runs them again (green); baton
pushes once — one new commit on the PR's branch, holding the fix — and the tool results the mock saw
show both runs."""

from __future__ import annotations

import sys

import pytest

from baton.testing import MockModel
from baton.testing.fake_forge import FakeForge
from baton.testing.tools import tool_marker
from tests.forge_fixtures import (  # noqa: F401 (fixtures)
    REPO,
    agent_fixture,
    fake_fixture,
    forge_kind_fixture,
    forge_service_fixture,
    model_fixture,
    settled,
)
from tests.sandbox.test_access_real import tool_results
from tests.service_fixtures import Service

pytestmark = pytest.mark.slow

BRANCH = "baton/claude/issue-1"
CALC = "def add(a, b):\n    return a - b\n"
TEST = (
    "import unittest\n\nfrom calc import add\n\n\n"
    "class AddTest(unittest.TestCase):\n"
    "    def test_add(self) -> None:\n        self.assertEqual(add(2, 3), 5)\n"
)
TESTS = f"{sys.base_prefix}/bin/python3 -m unittest -v test_calc"  # not a shim on PATH


@pytest.fixture
def forge_access() -> str:
    return "full"  # the agent runs the tests: a shell command beyond `edit`


def test_a_review_saying_the_tests_fail_gets_one_push_with_the_fix(
    model: MockModel, fake: FakeForge, forge_access: str, forge_service: Service
) -> None:
    service = forge_service
    files = {"calc.py": CALC, "test_calc.py": TEST, ".gitignore": "__pycache__/\n"}
    fake.commit(REPO, "main", files, "add, with its test")
    write = tool_marker("Write", file_path="greeting.txt", content="hello\n")
    issue = fake.open_issue(REPO, "alice", "A greeting", "Add a greeting file.")
    fake.comment(REPO, issue, "alice", f"@baton please add it. {write}")
    settled(service, fake, 1)
    [pr] = fake.pulls(REPO)
    before, pushes = fake.branches(REPO)[BRANCH], len(fake.pushes)

    steps = " ".join(
        (
            tool_marker("Bash", command=TESTS),
            tool_marker("Read", file_path="calc.py"),
            tool_marker("Edit", file_path="calc.py", old_string="a - b", new_string="a + b"),
            tool_marker("Bash", command=TESTS),
        )
    )
    fake.review(REPO, pr.number, "alice", "", [("calc.py", 2, f"the tests fail on add. {steps}")])
    settled(service, fake, 2)
    ran = tool_results("claude", model)
    assert len(ran) == 4, ran
    assert "FAIL: test_add" in ran[0] and "FAILED (failures=1)" in ran[0], ran[0]
    assert "Ran 1 test" in ran[3] and ran[3].rstrip().endswith("OK"), ran[3]
    after = fake.branches(REPO)[BRANCH]
    assert [(p.branch, p.old, p.new, p.login) for p in fake.pushes[pushes:]] == [
        (BRANCH, before, after, "baton-bot")
    ]
    git = fake.repo(REPO).git
    assert git("rev-list", f"{before}..{after}").split() == [after]
    assert git("show", f"{after}:calc.py").strip() == "def add(a, b):\n    return a + b"
    assert git("diff", "--name-only", before, after).split() == ["calc.py"]
