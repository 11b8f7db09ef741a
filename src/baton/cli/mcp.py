"""``baton mcp``: an MCP server on stdio whose tools start, follow, answer and cancel turns of a running
``baton serve`` (:mod:`baton.service.mcp`), for an MCP client such as Claude Code or Codex to start as
its child. The service's URL and token come from the environment only: a token in argv would be in
every process listing. Nothing but the protocol is written to stdout.
"""

from __future__ import annotations

import os


def mcp_cmd() -> None:
    """Serve baton's threads to an MCP client over stdio. Its tools (start_turn, get_run,
    answer_question, cancel_run, list_threads, read_thread, raise_budget) and resources (a thread's
    summary and diff) act as a client of `baton serve`: set BATON_URL (its URL) and BATON_TOKEN (a
    token from `baton tokens create`; its scope applies, each call is audited). docs/mcp.md shows how
    to add it to Claude Code and Codex."""
    # lazy: cold CLI
    import anyio

    from baton.service.mcp import from_environment

    server = from_environment(os.environ)
    anyio.run(server.run_stdio_async)
