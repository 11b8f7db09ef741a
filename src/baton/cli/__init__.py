"""The ``baton`` command line: thin. Each command parses, calls one core function, prints.

One module per command group (``run``, ``sessions``, ``runs``, ``plan``, ``homes``, ``doctor`` with
``agents``, ``demo``), assembled into one Typer app in :mod:`baton.cli.app`; this module is the entry
point and turns every error into a clean message and an exit code (see ``common.EXIT_CODES``).

It imports next to nothing at module level on purpose: ``main`` must be running, with its
``KeyboardInterrupt`` handler, before the slow imports start, so a Ctrl-C during start-up exits 130
quietly instead of printing a traceback from inside some import. ``baton.cli.app`` is still reachable
as ``baton.cli.app`` (a module attribute, loaded on first use).

May import: every room.
"""

from __future__ import annotations

import _signal as signal  # type: ignore[import-not-found]  # signal.py without its enum: 3 ms sooner
import os
import sys

from baton.cli.interrupts import interrupt, interrupted, leave_quietly

TYPE_CHECKING = False  # not typing's: see baton/__init__.py; imported after the handler is in place
if TYPE_CHECKING:
    from typing import Any, NoReturn


# Started as the `baton` command (or `python -m baton.cli`, whose argv[0] is "-m" while it imports):
# a Ctrl-C before ``main`` runs, during the imports, exits 130 without a traceback. A program that
# merely imports baton.cli keeps its own SIGINT handling.
if (sys.argv[:1] == ["-m"] or os.path.basename(sys.argv[0]) == "baton") and signal.getsignal(
    signal.SIGINT
) is signal.default_int_handler:
    signal.signal(signal.SIGINT, leave_quietly)


def main(argv: list[str] | None = None) -> NoReturn:
    """Run ``baton ARGV`` and exit with its code; never a traceback for a user-facing error."""
    if signal.getsignal(signal.SIGINT) is leave_quietly:
        signal.signal(signal.SIGINT, interrupt)  # from here, caught below
    args = (sys.argv[1:] if argv is None else argv) or ["--help"]  # a bare `baton`: its help, exit 0
    as_json = "--json" in args[: args.index("--")] if "--" in args else "--json" in args
    try:
        try:
            code = _dispatch(args, as_json)
        except Exception as exc:
            # lazy: cold CLI
            from baton.errors import BatonError

            if not isinstance(exc, BatonError):
                raise
            fail(type(exc).__name__, str(exc), exc.exit_code, as_json)
    except KeyboardInterrupt:
        # Before a run installs its own handler (imports, settings, opening the store): nothing to
        # record yet, so leave quietly with the conventional code.
        fail("Cancelled", "cancelled", 130, as_json, quiet=True)
    code = code if isinstance(code, int) else 0
    if argv is None:  # the `baton` program itself (not a caller's main([...]))
        _leave(code)
    sys.exit(code)


def _leave(code: int) -> None:
    """Exit the ``baton`` program with ``code`` the quick way: what exiting must do, done (the atexit
    functions — logging's flush, ``weakref.finalize``'s — and the standard streams flushed), then
    ``os._exit``, without the interpreter's teardown of every module and object it loaded: 50-170 ms
    of a ``baton run`` (SQLAlchemy's, Typer's), for nothing a store or a file keeps: the
    store's engines are closed first (SQLite's WAL and shared memory removed, PostgreSQL's sessions
    ended). Returns (to the ordinary exit) when another thread still runs, which that exit waits for,
    or a stream cannot be flushed."""
    # lazy: cold CLI
    import atexit
    import threading

    if threading.active_count() > 1:
        return
    engines = sys.modules.get("baton.store.engine")  # not imported: no store was opened
    if engines is not None:
        engines.dispose_engines()  # the store's connections closed as the ordinary exit closes them
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: the ordinary exit says so, as before
        return
    os._exit(code)


def _dispatch(args: list[str], as_json: bool) -> Any:
    """The command's exit code: the fast path's (:mod:`baton.cli.fast`: ``sessions ls`` without Typer or
    SQLAlchemy) when it covers ``args``, else the Typer app's (``run``'s alone for ``baton run``)."""
    # lazy: cold CLI
    from baton.cli.fast import try_fast

    code = try_fast(args)
    if code is not None:
        return code
    # lazy: cold CLI
    import typer.main

    if args[0] == "run":  # the command alone: no other command module imported nor built
        # lazy: cold CLI
        from baton.cli.shell import run_app

        app = run_app()
    else:
        # lazy: cold CLI
        from baton.cli.app import app
    if interrupted():  # swallowed by an import on the way here
        raise KeyboardInterrupt
    try:
        return typer.main.get_command(app).main(args, prog_name="baton", standalone_mode=False)
    except typer.Abort:
        fail("Aborted", "aborted", 1, as_json)
    except typer.TyperException as exc:  # Click's parsing errors: unknown option, bad choice...
        fail(type(exc).__name__, _usage_message(exc), exc.exit_code, as_json)


def fail(kind: str, message: str, exit_code: int, as_json: bool, quiet: bool = False) -> NoReturn:
    """Report an error (a line on stderr, and an error object on stdout with ``--json``) and exit."""
    if as_json:
        error = {"type": kind, "message": message, "exit_code": exit_code}
        import json  # lazy: cold CLI (the entry point every command starts from)

        sys.stdout.write(json.dumps({"error": error}, indent=2) + "\n")
    if not quiet:
        # not cli.common: it imports the agents, whose import may be what failed (BATON_AGENTS_EXTRA)
        # lazy: cold CLI
        from baton.cli.render import err, esc

        err().print(f"[red]error:[/red] {esc(message)}", highlight=False)
    sys.exit(exit_code)


def _usage_message(exc: Any) -> str:
    message = _in_our_words(exc) or str(exc.format_message())
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:  # where to look next, as Click's own output says
        message += f"\n  see `{ctx.command_path} --help`"
    return message


def _in_our_words(exc: Any) -> str | None:
    """An option's value that pydantic refused (Typer parses options with it), said as baton says it:
    ``--timeout takes a number, not 'abc'`` rather than pydantic's ``Input should be a valid number``."""
    errors, param = getattr(exc.__cause__, "errors", None), getattr(exc, "param", None)
    if not callable(errors) or param is None:
        return None
    # lazy: cold CLI
    from baton.errors import invalid_value

    is_option = getattr(param, "param_type_name", "") == "option"
    name = max(param.opts, key=len) if is_option else param.human_readable_name
    return "; ".join(invalid_value(name, error) for error in errors())


def __getattr__(name: str) -> Any:
    """``baton.cli.app``: the Typer app, imported on first use."""
    if name == "app":
        # lazy: cold CLI
        from baton.cli.app import app

        return app
    raise AttributeError(f"module 'baton.cli' has no attribute {name!r}")
