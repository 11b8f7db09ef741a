"""The command line the three mock model servers share: ``python -m baton.testing.mock_anthropic``
(``mock_openai``, ``mock_gemini``) ``[--port N] [--print-env]`` (:func:`main`). A mock serves on
127.0.0.1 only, on ``--port`` or a free port, until Ctrl-C or SIGTERM, then exits 0 without a
traceback; on start it prints its URL alone on the first line (a script can read it), then one comment
line: the command whose output points the agent CLI at it. ``--print-env`` prints those shell lines for
``--port`` and exits, for ``eval "$(… --port N --print-env)"``; a mock serving several agents (the OpenAI
mock) prints a block per agent, or one with ``--agent NAME``, and ``--print-config`` that agent's config.
``--item-tokens N`` and ``--max-prompt-tokens N`` make it report large usage and refuse an over-long
prompt the way its vendor does (:class:`baton.testing._http.MockServer`).
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from baton.testing import stopping
from baton.testing._http import MockServer

EPILOG = """\
On start it prints its URL on the first line, then one comment line: the --print-env command whose
output (valid shell: comments and export lines) points the agent at it. Ctrl-C or SIGTERM stops it."""


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0-65535): {port}")
    return port


def _tokens(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a number of tokens: {text!r}")
    return int(text)


Agents = Mapping[str, type[MockServer[Any]]]


def parser(module: str, description: str, agents: Agents | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"python -m baton.testing.{module}",
        description=description,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--port", type=_port, default=0, metavar="N", help="listen on 127.0.0.1:N (default: a free port)"
    )
    p.add_argument(
        "--print-env",
        action="store_true",
        help="print only the shell lines for --port and exit, without serving (for eval)",
    )
    p.add_argument(
        "--item-tokens",
        type=_tokens,
        metavar="N",
        help="report N prompt tokens per history item in each reply's usage (a small window is soon crossed)",
    )
    p.add_argument(
        "--max-prompt-tokens",
        type=_tokens,
        metavar="N",
        help="refuse a request counting more prompt tokens, as the vendor refuses a prompt over the window",
    )
    if agents:
        p.add_argument(
            "--agent",
            choices=list(agents),
            help="the lines for this agent only (default: every agent this mock serves)",
        )
        p.add_argument(
            "--print-config",
            action="store_true",
            help="print the config file --agent reads its model from, for --port, and exit",
        )
    return p


def _listen_error(port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on 127.0.0.1 is already in use (another mock still running?): "
            "choose another --port, or leave --port out for a free one"
        )
    return f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}"


def shell_lines(servers: Sequence[type[MockServer[Any]]], port: int) -> list[str]:
    """Each server's lines for ``port``, a blank line between two agents' blocks."""
    blocks = [server(port=port).shell_lines() for server in servers]
    return [line for i, block in enumerate(blocks) for line in ([""] if i else []) + block]


def hint(module: str, port: int, agent: str | None = None) -> str:
    """The one line a serving mock prints below its URL: how to point an agent at it."""
    only = f" --agent {agent}" if agent else ""
    command = f"python -m baton.testing.{module} --port {port}{only} --print-env"
    return f'# point an agent at it: eval "$({command})"'


def main(
    server: type[MockServer[Any]],
    module: str,
    description: str,
    argv: Sequence[str] | None = None,
    agents: Agents | None = None,
) -> int:
    """Parse ``argv``, then serve ``server`` until interrupted (or print its shell lines, or an agent's
    config file); the exit code. ``agents``: the agents it serves, by name, each with its own lines.
    The output is flushed at once; a port it cannot listen on (in use, or privileged) is one line on
    stderr and exit 1. ``--print-config`` prints the config file the agent reads its model from
    (OpenCode's ``opencode.json``, plain Codex's ``config.toml``), to redirect into place."""
    p = parser(module, description, agents)
    args = p.parse_args(argv)
    agent = getattr(args, "agent", None)
    chosen = [agents[agent]] if agents and agent else list((agents or {}).values()) or [server]
    if (args.print_env or getattr(args, "print_config", False)) and not args.port:
        flag = "--print-env" if args.print_env else "--print-config"
        p.error(f"{flag} needs --port N (the port the mock serves on)")
    if getattr(args, "print_config", False):
        text = chosen[0](port=args.port).config_text() if agent else None
        if text is None:
            has = [name for name, kind in (agents or {}).items() if kind(port=1).config_text() is not None]
            p.error(f"--print-config needs --agent with a config file: {' or '.join(has)}")
        print(text, end="", flush=True)
        return 0
    if args.print_env:
        print("\n".join(shell_lines(chosen, args.port)), flush=True)
        return 0
    stopping.hold()  # before the server's threads exist
    mock = server(port=args.port, item_tokens=args.item_tokens, max_prompt_tokens=args.max_prompt_tokens)
    try:
        mock.start()
    except OSError as exc:
        print(f"{module}: {_listen_error(args.port, exc)}", file=sys.stderr)
        return 1
    try:
        if not stopping.pending():
            print(f"{mock.url}\n{hint(module, mock.port, agent)}", flush=True)
        stopping.wait()
    finally:
        mock.stop()
    return 0
