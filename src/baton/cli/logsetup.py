"""The log of the commands that run as services, ``baton serve`` and ``baton worker``, configured once,
here, where the process is set up: :func:`setup_logging` puts one handler on stderr (text lines, or
one JSON object a line with ``BATON_LOG_FORMAT=json``; the level ``BATON_LOG_LEVEL``), uvicorn's,
Celery's and Python's warnings included, and lets nothing shaped like a baton token, nor the value of
a secret-looking query parameter, through (:func:`redact_tokens`, :class:`RedactAccess`). Only the
CLI calls this: the library (``baton.run``, the service's app, the runner) only writes to its
``baton.*`` loggers and leaves configuring them to whoever runs it. No lower room imports this module.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime
from typing import TextIO
from urllib.parse import unquote_plus

from baton.errors import BadInput
from baton.settings import LOG_FORMATS, LOG_LEVELS

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# the servers' own loggers: whatever handlers an earlier set-up gave them (uvicorn's default config
# stops their propagation) are dropped, so their lines come out in this format too
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "celery")


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: MESSAGE`` (the traceback, if any, on the lines after it); the time is ISO
    8601, local, with its offset: ``2026-11-24T10:03:04.123+00:00 INFO baton.executor: ...``."""

    def __init__(self) -> None:
        super().__init__(TEXT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _time(record)

    def format(self, record: logging.LogRecord) -> str:
        return redact_tokens(super().format(record))  # the message and its traceback alike


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: time, level, logger, message (and exc_info, stack_info:
    the traceback's text, when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc_info"] = record.exc_text
        if record.stack_info:
            data["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps({name: redact_tokens(value) for name, value in data.items()}, ensure_ascii=False)


# a query parameter whose name says it holds a secret (a value shaped like a baton token is one, whatever
# its name)
SECRET_PARAM = re.compile(r"token|secret|passw|pwd|key|auth|sig|session|credential|code", re.IGNORECASE)
REDACTED = "***"
TOKEN_PREFIX = "baton_"  # baton.service.auth.PREFIX (not imported: that module needs the server extra)


def _token_shape() -> re.Pattern[str]:
    """A baton token as it may appear in a logged line: the prefix, then at least 20 characters of
    ``secrets.token_urlsafe``'s alphabet (a whole token has 43; a cut one is still a secret; group 1),
    each character as it is or percent-encoded, once or more (``%5F``, ``%255f``: a URL's path and
    query reach the access log encoded as the client sent them). Where it starts is judged by
    :func:`_redacted`."""
    encoded = r"%(?:25)*"  # a percent sign, itself encoded any number of times

    def char(c: str) -> str:
        return f"(?:{re.escape(c)}|{encoded}(?i:{ord(c):02x}))"

    body = rf"(?:[A-Za-z0-9_-]|{encoded}[0-9A-Fa-f]{{2}})"
    return re.compile("".join(map(char, TOKEN_PREFIX)) + f"({body}{{20,}})")


TOKEN_SHAPE = _token_shape()
ENCODED_END = re.compile(r"%(?:25)*[0-9A-Fa-f]{2}$")  # a percent-encoded character, just before


def _redacted(match: re.Match[str]) -> str:
    """A token's replacement, or the text itself when it is a name. After anything but a word
    character (or after an encoded one: ``Bearer%20baton_…``) it is a token. Glued to a word it may
    be a name (``test_baton_worker_logs_celery_0``) or a token all the same (``/v1/runs/xbaton_…``, a
    path or an id pasted against it): a token when its body is random, in mixed case as
    ``token_urlsafe``'s are (a 20-character cut one is in one case only with a chance of 4 in 10^5;
    names are snake_case or SHOUTING)."""
    text, start = match.string, match.start()
    before = text[start - 1] if start else ""
    glued = before.isascii() and (before.isalnum() or before == "_")
    if glued and not ENCODED_END.search(text, max(0, start - 16), start):
        body = match.group(1)
        for _ in range(4):  # as the client encoded it, up to an encoded percent sign's encoding
            body = unquote_plus(body) if "%" in body else body
        if not (any(c.isupper() for c in body) and any(c.islower() for c in body)):
            return match.group()
    return TOKEN_PREFIX + REDACTED


def redact_tokens(text: str) -> str:
    """``text`` with everything shaped like a baton token replaced by ``baton_***``, wherever it is (a
    URL's path or query, a header echoed in a message, a traceback, glued to a word). By shape, not by
    looking up the tokens that exist: the log must not hold a token that was revoked, mistyped or not
    issued yet."""
    return TOKEN_SHAPE.sub(_redacted, text) if TOKEN_PREFIX[:5] in text or "%" in text else text


def redact_query(target: str) -> str:
    """A request target (path and query) with the values of its secret-looking query parameters
    replaced by ``***``. A token belongs in the ``Authorization`` header, and baton refuses it anywhere
    else; but a client that put it in the URL must not find it written to the access log."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    pairs = []
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        secret = SECRET_PARAM.search(unquote_plus(name)) or unquote_plus(value).startswith(TOKEN_PREFIX)
        pairs.append(f"{name}{eq}{REDACTED}" if eq and value and secret else pair)
    return f"{path}?{'&'.join(pairs)}"


class RedactAccess(logging.Filter):
    """Redacts the request target of uvicorn's access lines (its arguments: client, method, target,
    HTTP version, status) with :func:`redact_query`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) >= 3:
            args = list(record.args)
            if isinstance(args[2], str):
                args[2] = redact_query(args[2])
                record.args = tuple(args)
        return True


class _Handler(logging.StreamHandler[TextIO]):
    """The handler :func:`setup_logging` installs (known by its class, so a second call replaces it)."""


def setup_logging(level: str = "INFO", fmt: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """Configure the process's logging: one handler on the root logger writing ``fmt`` (``text`` or
    ``json``) to ``stream`` (stderr), and the root logger's level (a name, any case). A second call
    replaces the handler of the first; handlers others installed are left alone. Returns the handler.

    Every formatted line goes through :func:`redact_tokens` (a token pasted into a URL's path or query
    reaches uvicorn's access line as the client sent it). The servers' own loggers propagate to this
    handler instead of printing a format of their own: ``baton serve`` starts uvicorn with
    ``log_config=None``, and ``baton worker`` has Celery configure no logging
    (:func:`baton.fleet.celery.run_worker` answers Celery's ``setup_logging`` signal)."""
    name = level.upper()
    if name not in LOG_LEVELS:  # load_settings refuses these first, naming where they came from
        raise BadInput(f"setting 'log_level' must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    if fmt not in LOG_FORMATS:
        raise BadInput(f"setting 'log_format' must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    handler = _Handler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactAccess())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(name)
    for server in map(logging.getLogger, SERVER_LOGGERS):
        for own in list(server.handlers):
            server.removeHandler(own)
        server.propagate = True
    logging.captureWarnings(True)
    return handler


def announce(text: str, fmt: str) -> None:
    """A command's start-up line: printed for people, or an INFO record of ``baton.cli`` when the log
    is JSON (so that stderr holds nothing but JSON lines)."""
    if fmt == "json":
        logging.getLogger("baton.cli").info("%s", text)
        return
    # lazy: cold CLI
    from baton.cli.common import err, esc

    err().print(esc(text), highlight=False)
