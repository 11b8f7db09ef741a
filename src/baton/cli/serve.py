"""``baton serve``: the HTTP service (FastAPI on uvicorn) over this ``BATON_HOME``.

Needs the ``server`` extra; without it the command says the exact install command. Nothing secret is
printed: tokens arrive in headers (uvicorn's access log shows only the request line) and the webhook
secret is never logged. Its log (uvicorn's included) is configured by :mod:`baton.cli.logsetup`:
``BATON_LOG_LEVEL``, ``BATON_LOG_FORMAT``.

The socket is bound here, before the "serving at" line: a port already in use (or not allowed) is
:class:`~baton.errors.CannotListen`, its own message and exit code, and nothing is announced.
"""

from __future__ import annotations

import errno
import gc
import socket
import sys
from types import ModuleType
from typing import Annotated

import typer

from baton.errors import BatonError, CannotListen
from baton.files import make_private_dir
from baton.settings import load_settings

SWITCH_INTERVAL = 0.0005  # seconds (Python's default: 0.005)


def serve_cmd(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=0, max=65535)] = 8765,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            envvar="BATON_FORWARDED_ALLOW_IPS",
            help="addresses of the TLS proxies whose X-Forwarded-Proto/-For are trusted, comma-separated "
            "('*': any); default 127.0.0.1,::1. Behind HTTPS the dashboard's cookie is then Secure",
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs) and the web dashboard (/), with
    `baton tokens` for access."""
    uvicorn = _server_modules()
    # lazy: cold CLI
    from baton.cli.logsetup import announce, setup_logging
    from baton.service.app import create_app

    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)
    make_private_dir(settings.home)  # 0700 if this is what makes it
    sock = listen(host, port)
    url = f"http://{host}:{sock.getsockname()[1]}"
    text = f"baton serve: {url} (dashboard {url}/, API docs {url}/docs; home {settings.home})"
    announce(text, settings.log_format)
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=sock.getsockname()[1],
        log_config=None,  # uvicorn's loggers (its access log too) go through baton's handler, in its format
        log_level=settings.log_level.lower(),
        server_header=False,
        # an SSE subscriber of a long run must not hold a shutdown (SIGTERM) for the length of that run
        timeout_graceful_shutdown=5,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,  # None: uvicorn's default (loopback, or FORWARDED_ALLOW_IPS)
    )
    # the event loop gives up the GIL at every socket call and waits to get it back from a run's (or a
    # webhook worker's) thread, up to the switch interval each time: 0.5 ms instead of 5 ms
    sys.setswitchinterval(SWITCH_INTERVAL)
    # the application and every module are built now and live as long as the process: moved out of the
    # collector's reach, so a full collection (every few runs) walks only what the requests made
    config.load()
    gc.freeze()
    server = uvicorn.Server(config)
    with sock:
        server.run(sockets=[sock])
    if not server.started:  # its start-up failed (the log above says why)
        raise BatonError("the service did not start; its log above says why")


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (uvicorn listens on it), or CannotListen saying why."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on an accepted connection only when its socket
        # says TCP; without it every kept-alive response waited for Nagle + delayed ACK (~40 ms)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except OSError as exc:
        raise CannotListen(
            f"cannot listen on {host!r}: {exc.strerror or exc}; pass --host 127.0.0.1"
        ) from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # (Linux: accepted sockets inherit it)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CannotListen(_why_not(host, port, exc)) from exc
    return sock


def _why_not(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use (another `baton serve`?): stop it, or pass another --port"
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on port {port} (below 1024 needs privileges): pass --port 8765"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def _server_modules() -> ModuleType:
    """uvicorn, once fastapi and uvicorn are known to be importable (else the install command)."""
    try:
        # lazy: cold CLI
        import fastapi  # noqa: F401
        import fastapi_offline  # noqa: F401 (/docs without a CDN)
        import jinja2  # noqa: F401 (the dashboard's templates)
        import uvicorn
    except ImportError as exc:
        # lazy: cold CLI
        from baton.errors import BadInput
        from baton.install import extra_hint

        hint = extra_hint("server")
        raise BadInput(f"the service needs the server extra ({exc.name} is missing): {hint}") from None
    return uvicorn
