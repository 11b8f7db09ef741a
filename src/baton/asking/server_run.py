"""The ``baton`` MCP server's program: :mod:`server` run from its compiled form in ``__pycache__`` (a
script is compiled anew at every start). Started ``python -I -S``: isolated, so this directory is added
by hand, after the standard library's, which a module here can never shadow."""

import os
import sys

sys.path.append(os.path.dirname(os.path.abspath(__file__)))

import server  # type: ignore[import-not-found]  # (found beside this file)

server.main(sys.argv[1:])
