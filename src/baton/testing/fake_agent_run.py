"""The fake agent's program: :mod:`fake_agent` (this directory is ``sys.path[0]``) run from its compiled
module. A script is compiled anew at every start (4.5 ms for fake_agent.py); a module is read from
``__pycache__``."""

import sys

import fake_agent  # type: ignore[import-not-found]  # (found beside this file, as a script's sibling)

fake_agent.main(sys.argv[1:])
