"""The ``baton`` MCP server over HTTP, served by baton's own process (what Claude Code is given): the
handshake over real HTTP, one question a turn, and a URL that was not made for a turn's file (forged,
another file's, a browser's request) writes nothing."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from baton.agents.base import ASK_URL
from baton.agents.claude import ask_env, mcp_flags
from baton.asking import questions, web
from baton.asking.questions import Question
from baton.asking.server import TOOL

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}
ASK = {
    "jsonrpc": "2.0",
    "id": 3,
    "method": "tools/call",
    "params": {"name": TOOL, "arguments": {"question": "red or blue?", "options": ["red", "blue"]}},
}


def post(url: str, message: Any, **headers: str) -> tuple[int, Any]:
    """The status and JSON answer (None when empty) of one POST, as Claude Code sends it."""
    parts = urlsplit(url)
    link = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    sent = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers}
    link.request("POST", parts.path, json.dumps(message), sent)
    response = link.getresponse()
    body = response.read()
    link.close()
    return response.status, json.loads(body) if body else None


def test_the_handshake_lists_one_tool_and_a_call_writes_the_question_once(tmp_path: Path) -> None:
    url = questions.server(tmp_path, http=True).url
    assert url.startswith("http://127.0.0.1:")
    status, answer = post(url, INIT)
    assert status == 200 and answer["result"]["serverInfo"]["name"] == "baton"
    assert post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}) == (202, None)
    status, listed = post(url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    assert status == 200 and [t["name"] for t in listed["result"]["tools"]] == [TOOL]
    status, first = post(url, ASK)
    assert status == 200 and "End your turn now" in first["result"]["content"][0]["text"]
    status, again = post(url, {**ASK, "params": {"name": TOOL, "arguments": {"question": "2nd?"}}})
    assert "already asked" in again["result"]["content"][0]["text"]
    assert questions.take(tmp_path) == Question("red or blue?", ("red", "blue"))


def test_a_url_not_made_for_the_file_writes_nothing(tmp_path: Path) -> None:
    mine, other = tmp_path / "mine", tmp_path / "other"
    mine.mkdir()
    other.mkdir()
    url = questions.server(mine, http=True).url
    name, mac = urlsplit(url).path.removeprefix(web.PREFIX).split("/")
    theirs = urlsplit(questions.server(other, http=True).url).path.removeprefix(web.PREFIX).split("/")[0]
    base = url.split(web.PREFIX)[0] + web.PREFIX
    for forged in (f"{base}{theirs}/{mac}", f"{base}{name}/{'0' * len(mac)}", f"{base}{name}", base):
        assert post(forged, ASK)[0] == 403, forged
    assert post(url, ASK, Origin="http://evil.example")[0] == 403  # a browser's request
    assert questions.take(mine) is None and questions.take(other) is None
    assert post(url, ASK)[0] == 200  # the turn's own URL still works
    assert questions.take(mine) is not None


def test_claude_is_given_the_server_over_http_and_its_port_for_the_walls(tmp_path: Path) -> None:
    server = questions.server(tmp_path, http=True)
    [config, allowed] = mcp_flags((server,))
    given = json.loads(config.removeprefix("--mcp-config="))["mcpServers"]["baton"]
    assert given == {"type": "http", "url": server.url, "alwaysLoad": True}
    assert allowed == "--allowedTools=mcp__baton"
    assert ask_env((server,)) == {ASK_URL: server.url}
