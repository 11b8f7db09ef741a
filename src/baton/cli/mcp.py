"""``baton mcp``: an MCP server on stdio whose tools start, follow, answer and cancel turns of a running
``baton serve`` (:mod:`baton.service.mcp`), for an MCP client such as Claude Code or Codex to start as
its child: a relay of the client's messages to the service's own ``/mcp``
(:mod:`baton.service.mcp_stdio`). The service's URL and token come from the environment only: a token in
argv would be in every process listing. ``baton mcp`` alone is answered by the CLI's fast path, without
Typer; this command is the same relay (its help).
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
    from baton.service.mcp_stdio import serve

    code = serve(os.environ)
    if code:
        raise SystemExit(code)
