"""The HTTP service (``baton serve``): a FastAPI app over the same core the CLI calls.

Modules: :mod:`app` (the factory and lifespan), :mod:`auth` (bearer tokens and scopes), one module per
route group (:mod:`runs`, :mod:`sessions`, :mod:`admin`, :mod:`webhooks`, :mod:`metrics`,
:mod:`health`). Needs the ``server`` extra (fastapi, uvicorn, prometheus-client), but for :mod:`mcp`
(``baton mcp``'s tools), a client of the HTTP API.

May import: every room but the CLI.
"""
