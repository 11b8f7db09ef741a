"""``baton demo``, the README's first command: the real Claude Code CLI against the mock, an edit made
by the agent inside its walls, a wiped home hydrated back."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from baton.testing.demo import run_demo

pytestmark = pytest.mark.slow


def test_demo_edits_a_file_walled_in_and_survives_a_wiped_home() -> None:
    out = io.StringIO()
    code = run_demo(Console(file=out, width=200, color_system=None))
    said = out.getvalue()
    assert code == 0, said
    assert "the agent wrote calc.py (access edit, walled into its key: True): 1 file changed" in said
    assert "the conversation survived the redeploy" in said
