"""Text a command reads from a file named on its command line, or from standard input for ``-`` (as
dispatchers pipe prompts, and as most Unix tools read ``-``): a run request's ``--prompt-file``
(:mod:`baton.cli.options` and the fast path of :mod:`baton.cli.fast`) and a plan
(``baton plan run -``). Both are read alike by :func:`read_input`, bounded and strict, each refusal
naming the flag; what is read is then checked as any prompt is (no NUL byte, the agent CLI's own
limits: :func:`baton.runner.resolve.validate`), before anything is written.

May import: the ground floor only (the fast path imports it before anything else of baton).
"""

from __future__ import annotations

import os
import sys

STDIN = "-"
# Bytes: far above any prompt an agent CLI takes (Codex refuses more than 1,048,576 characters, Gemini
# cuts its stdin at 8 MiB) and the same bound the service puts on a request body (service/limits.py).
MAX_INPUT = 32 * 2**20


def read_input(path: str, what: str, flag: str) -> str:
    """The UTF-8 text of file ``path``, or of standard input when ``path`` is ``-``; BadInput naming
    ``flag`` (how the command line named it: ``--prompt-file``) and ``what`` it is (``prompt``) for a
    file that cannot be read, too much of it, text that is not UTF-8, and standard input that is a
    terminal, closed or empty.

    At most :data:`MAX_INPUT` bytes are read (a larger file or stream is refused, never read whole into
    memory); the text is strict UTF-8 (an undecodable byte is refused naming its offset), its newlines
    as Python's text files read them. Standard input must be piped in: a terminal is refused rather
    than read (the command would sit waiting for an end of file nobody types), and an empty stream is
    refused (the dispatcher piped nothing)."""
    # lazy: cold CLI
    from baton.errors import BadInput

    if path == STDIN:
        data = _stdin(what, flag)
        label = "- (standard input)"
    else:
        label = path
        try:
            with open(path, "rb") as fh:
                if os.isatty(fh.fileno()):  # /dev/tty, /dev/stdin on a terminal: it would wait for input
                    raise BadInput(
                        f"{flag} {path} is a terminal: pipe the {what} in with {flag} -, or give a file"
                    )
                data = fh.read(MAX_INPUT + 1)
        except OSError as exc:
            raise BadInput(f"cannot read {flag} {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_INPUT:
        raise BadInput(f"{flag} {label} holds more than {MAX_INPUT // 2**20} MiB; no {what} can be that long")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"{flag} {label} is not UTF-8 text (byte {exc.start}: {exc.reason}); convert it"
        ) from exc
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # as a text file reads (universal newlines)
    if path == STDIN and not text.strip():
        raise BadInput(f"the {what} from stdin is empty: pipe the {what} into {flag} -")
    return text


def _stdin(what: str, flag: str) -> bytes:
    """Up to one byte more than :data:`MAX_INPUT` of standard input, which must be a pipe or a file."""
    # lazy: cold CLI
    from baton.errors import BadInput

    stream = getattr(sys.stdin, "buffer", None)
    try:
        if stream is None:
            raise OSError("standard input is closed")
        if os.isatty(stream.fileno()):
            raise BadInput(
                f"{flag} - reads the {what} from standard input, which is a terminal here (it would "
                f"wait for input): pipe the {what} in, or name a file instead of -"
            )
        data: bytes = stream.read(MAX_INPUT + 1)
    except (OSError, ValueError) as exc:  # a closed descriptor 0: EBADF, or a closed file object
        raise BadInput(
            f"cannot read {flag} - (standard input): {getattr(exc, 'strerror', None) or exc}"
        ) from exc
    return data
