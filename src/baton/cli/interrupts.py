"""A Ctrl-C during the ``baton`` program's start-up, remembered: :mod:`baton.cli` installs these handlers
before its slow imports. An interrupt that lands in an import's weakref callback (importlib frees its
module locks in one) is printed and swallowed there, so the flag is what tells the command it came: the
dispatch then leaves with 130, and a run that installs its own handler cancels at once.

May import: nothing (it is imported before anything else).
"""

from __future__ import annotations

_interrupted = False


def leave_quietly(signum: int, _frame: object) -> None:
    """Before ``main`` runs: exit 130 without a traceback."""
    global _interrupted
    _interrupted = True
    raise SystemExit(130)


def interrupt(signum: int, _frame: object) -> None:
    """From ``main`` on: Python's own ``KeyboardInterrupt``, remembered."""
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def interrupted() -> bool:
    """A Ctrl-C came since the program started."""
    return _interrupted
