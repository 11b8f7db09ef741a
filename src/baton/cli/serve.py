"""``baton serve``: the HTTP service (FastAPI on uvicorn) over this ``BATON_HOME``.

Needs the ``server`` extra; without it the command says the exact install command. Nothing secret is
printed: tokens arrive in headers (uvicorn's access log shows only the request line) and the webhook
secret is never logged.
"""

from __future__ import annotations

from types import ModuleType
from typing import Annotated

import typer

from baton.cli.common import err, esc


def serve_cmd(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=0, max=65535)] = 8765,
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs) and the web dashboard (/), with
    `baton tokens` for access."""
    uvicorn = _server_modules()
    from baton.service.app import create_app
    from baton.settings import load_settings

    settings = load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    url = f"http://{host}:{port}"
    err().print(
        esc(f"baton serve: {url} (dashboard {url}/, API docs {url}/docs; home {settings.home})"),
        highlight=False,
    )
    # an SSE subscriber of a long run must not hold a shutdown (SIGTERM) for the length of that run
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        server_header=False,
        timeout_graceful_shutdown=5,
    )


def _server_modules() -> ModuleType:
    """uvicorn, once fastapi and uvicorn are known to be importable (else the install command)."""
    try:
        import fastapi  # noqa: F401
        import jinja2  # noqa: F401 (the dashboard's templates)
        import uvicorn
    except ImportError as exc:
        from baton.errors import BadInput
        from baton.install import DIST

        raise BadInput(
            f"the service needs the server extra ({exc.name} is missing): pip install '{DIST}[server]'"
        ) from None
    return uvicorn
