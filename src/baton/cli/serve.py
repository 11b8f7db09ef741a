"""``baton serve``: the HTTP service (FastAPI on uvicorn) over this ``BATON_HOME``.

Needs the ``server`` extra; without it the command says the exact install command. Nothing secret is
printed: tokens arrive in headers (uvicorn's access log shows only the request line) and the webhook
secret is never logged. Its log (uvicorn's included) is configured by :mod:`baton.cli.logsetup`:
``BATON_LOG_LEVEL``, ``BATON_LOG_FORMAT``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Annotated

import typer


def serve_cmd(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=0, max=65535)] = 8765,
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs) and the web dashboard (/), with
    `baton tokens` for access."""
    uvicorn = _server_modules()
    from baton.cli.logsetup import announce, setup_logging
    from baton.service.app import create_app
    from baton.settings import load_settings

    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)
    settings.home.mkdir(parents=True, exist_ok=True)
    url = f"http://{host}:{port}"
    text = f"baton serve: {url} (dashboard {url}/, API docs {url}/docs; home {settings.home})"
    announce(text, settings.log_format)
    # an SSE subscriber of a long run must not hold a shutdown (SIGTERM) for the length of that run
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,  # uvicorn's loggers (its access log too) go through baton's handler, in its format
        log_level=settings.log_level.lower(),
        server_header=False,
        timeout_graceful_shutdown=5,
    )


def _server_modules() -> ModuleType:
    """uvicorn, once fastapi and uvicorn are known to be importable (else the install command)."""
    try:
        import fastapi  # noqa: F401
        import fastapi_offline  # noqa: F401 (/docs without a CDN)
        import jinja2  # noqa: F401 (the dashboard's templates)
        import uvicorn
    except ImportError as exc:
        from baton.errors import BadInput
        from baton.install import DIST

        raise BadInput(
            f"the service needs the server extra ({exc.name} is missing): pip install '{DIST}[server]'"
        ) from None
    return uvicorn
