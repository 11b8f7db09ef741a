"""docs/mcp.md's set-up as a newcomer pastes it, in one bash whose ``PATH`` starts with the virtualenv
``make setup`` made (what ``. .venv/bin/activate`` does): the service started, a token made, Claude Code
told of ``baton mcp`` (stdio) and of ``/mcp`` (HTTP), and ``claude mcp list`` finding both connected
(and ``baton mcp`` failed, not connected, with a token the service refuses).
Only the port is swapped for a free one (``--port`` given to ``baton serve``); ``claude`` is the one
the virtualenv links (the Makefile's link of the bundled CLI), its configuration a throwaway
``CLAUDE_CONFIG_DIR``."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.service_fixtures import free_port
from tests.support.shell import Shell

DOCS = Path(__file__).parents[2] / "docs" / "mcp.md"
FENCE = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
VENV_BIN = Path(sys.executable).parent
QUIET = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
}

pytestmark = pytest.mark.slow


def set_up_blocks() -> list[str]:
    """The page's shell blocks of "Set up" and "Over HTTP", in order."""
    text = DOCS.read_text()
    start = text.index("\n## Set up\n")
    end = text.find("\n## Not yet", start + 1)
    return FENCE.findall(text[start:end])


def test_the_set_up_blocks_run_as_pasted_with_the_virtualenvs_claude(tmp_path: Path) -> None:
    blocks = set_up_blocks()
    assert len(blocks) == 3, "the service, the stdio server, the HTTP server"
    assert (VENV_BIN / "claude").exists(), "make setup links the bundled Claude Code into the virtualenv"
    port = str(free_port())
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "CLAUDE_", "ANTHROPIC_"))},
        **QUIET,
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "HOME": str(tmp_path / "home"),
        "BATON_HOME": str(tmp_path / "baton"),
        "CLAUDE_CONFIG_DIR": str(tmp_path / "claude"),
    }
    with Shell(env, tmp_path / "shell") as shell:
        try:
            serve = blocks[0].replace("8765", port).replace("baton serve &", f"baton serve --port {port} &")
            shell.paste(serve)
            ready = f"curl -sf -o /dev/null http://127.0.0.1:{port}/readyz"
            shell.paste(f"for i in $(seq 300); do {ready} && echo ready && break; sleep 0.2; done")
            assert "ready\n" in shell.output, shell.output[-3000:]
            shell.paste("command -v claude")
            assert f"{VENV_BIN}/claude\n" in shell.output
            shell.paste(blocks[1])
            assert re.search(r"baton: baton mcp - ✔ Connected", shell.output), shell.output[-3000:]
            shell.paste(blocks[2].replace("8765", port) + "\nclaude mcp list")
            said = f"baton-http: http://127.0.0.1:{port}/mcp (HTTP) - ✔ Connected"
            assert said in shell.output, shell.output[-3000:]
            before = len(shell.output)
            shell.paste("BATON_TOKEN=not-a-token claude mcp list; echo listed")
            for _ in range(600):
                if "listed\n" in shell.output[before:]:
                    break
                time.sleep(0.1)
            listed = shell.output[before:]
            refused = "baton: baton mcp - ✘ Failed to connect — -32001: baton mcp: the service at"
            assert refused in listed and "refused the token (401)" in listed, listed[-3000:]  # not Connected
        finally:
            assert shell.proc is not None
            os.killpg(shell.proc.pid, signal.SIGTERM)  # the pasted `baton serve &` too
