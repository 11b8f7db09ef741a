"""The command line the three mock model servers share: ``python -m baton.testing.mock_anthropic``
(``mock_openai``, ``mock_gemini``) ``[--port N] [--print-env]``.

A mock serves on 127.0.0.1 (only: it is a test server) on ``--port``, or on a free port without one,
until Ctrl-C or SIGTERM, and then exits 0 without a traceback. On start it prints on stdout, flushed at
once, its URL alone on the first line (a script can read that line), then shell lines: comments and one
``export`` line that points the agent CLI at it, paste-able as printed (each mock's
``shell_lines``). ``--print-env`` prints only those shell lines for ``--port`` and exits without
serving, for ``eval "$(python -m baton.testing.mock_anthropic --port N --print-env)"`` in a script that
starts the mock on that port itself. A port it cannot listen on (in use, or privileged) is one line on
stderr and exit 1.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

from baton.testing._http import MockServer

EPILOG = """\
On start it prints its URL on the first line, then what to export to point the agent at it (valid
shell: comments and one export line). Ctrl-C or SIGTERM stops it."""


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0-65535): {port}")
    return port


def parser(module: str, description: str) -> argparse.ArgumentParser:
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
    return p


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the serving loop the way Ctrl-C does


def _listen_error(port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on 127.0.0.1 is already in use (another mock still running?): "
            "choose another --port, or leave --port out for a free one"
        )
    return f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}"


def main(
    server: type[MockServer[Any]], module: str, description: str, argv: Sequence[str] | None = None
) -> int:
    """Parse ``argv``, then serve ``server`` until interrupted (or print its shell lines); the exit code."""
    args = parser(module, description).parse_args(argv)
    if args.print_env:
        if not args.port:
            parser(module, description).error("--print-env needs --port N (the port the mock serves on)")
        print("\n".join(server(port=args.port).shell_lines()), flush=True)
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    mock = server(port=args.port)
    try:
        try:
            mock.start()
        except OSError as exc:
            print(f"{module}: {_listen_error(args.port, exc)}", file=sys.stderr)
            return 1
        try:
            print("\n".join([mock.url, *mock.shell_lines()]), flush=True)
            while True:
                time.sleep(3600)
        finally:
            mock.stop()
    except KeyboardInterrupt:
        return 0
