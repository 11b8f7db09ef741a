"""``baton demo``, the README's first command: the real Claude Code CLI against the mock, an edit made
by the agent inside its walls, a wiped home hydrated back; and the line that explains a reply number
the demo does not show (a tool call's round trip is two requests)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from baton.testing.demo import run_demo, skipped_replies
from baton.testing.mock_anthropic import MockRequest
from baton.testing.tools import tool_marker

TOOLS = [{"name": "Write", "input_schema": {"type": "object"}}, {"name": "Read", "input_schema": {}}]


def request(text: str, tools: bool = True) -> MockRequest:
    """A request as Claude Code sends it: the user's text (maybe with a marker), the tools it offers."""
    body = {"messages": [{"role": "user", "content": text}], **({"tools": TOOLS} if tools else {})}
    return MockRequest("/v1/messages", body)


def test_a_run_with_one_request_skips_no_number() -> None:
    assert skipped_replies(1, [request("hello")]) is None
    assert skipped_replies(1, []) is None


def test_a_tool_round_trip_says_which_number_it_took() -> None:
    write = tool_marker("Write", file_path="/w/calc.py", content="x")
    line = skipped_replies(2, [request(f"add it {write}"), request("(tool result)")])
    assert line == (
        "(no #2 above: reply #2 was the model's Write tool call; the agent ran it, and #3 answers its result)"
    )


def test_two_tool_calls_in_a_row_name_both() -> None:
    read, write = tool_marker("Read", file_path="/a"), tool_marker("Write", file_path="/b", content="c")
    line = skipped_replies(4, [request(read), request(write), request("done")])
    assert line == (
        "(no #4, #5 above: those replies were the model's tool calls (Read, Write); the agent ran them, "
        "and #6 answers the results)"
    )


def test_extra_requests_without_a_tool_call_are_still_explained() -> None:
    # a marker in a request offering no tools gets text, not a call: nothing to name
    line = skipped_replies(1, [request(tool_marker("Write", file_path="/b"), tools=False), request("x")])
    assert line == "(no #1 above: this run sent the model 2 requests; #2 was the last)"


@pytest.mark.slow
def test_demo_edits_a_file_walled_in_and_survives_a_wiped_home() -> None:
    out = io.StringIO()
    code = run_demo(Console(file=out, width=200, color_system=None))
    said = out.getvalue()
    assert code == 0, said
    assert "the agent wrote calc.py (access edit, walled into its key: True): 1 file changed" in said
    assert "the conversation survived the redeploy" in said
    # the second run's Write is a round trip: its reply shows #3, and the demo says where #2 went
    assert "reply: 'mock reply #3: received 6 messages'\n" in said
    assert (
        "    (no #2 above: reply #2 was the model's Write tool call; the agent ran it, and #3 answers its "
        "result)\n"
    ) in said
    assert "mock reply #2" not in said
