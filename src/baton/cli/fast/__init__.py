"""The fast path, in one box: ``baton sessions ls``, the command people type most, answered without Typer
or SQLAlchemy (~0.1 s instead of ~0.5 s; bench/README.md, "Speed code"), and ``baton mcp``, which an MCP
client waits on before its first request.

It is parsed here by hand and answered from :mod:`baton.cli.fast.lite`, printed by the same
:mod:`baton.cli.render` functions, so its output is the Typer command's to the byte
(``tests/cli/test_cli_fast.py`` compares them). It takes only what it fully understands: an unknown or
malformed option, ``--help``, a store the lite reader declines (PostgreSQL, one that needs migrating) —
anything else returns ``None`` and the Typer command runs, with its own parsing and messages. Only
:func:`baton.cli.main` imports this package (the architecture test holds it).
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's (nor collections.abc's Callable): every command imports this
if TYPE_CHECKING:
    from collections.abc import Callable

    Handler = Callable[[list[str]], int | None]


def try_fast(args: list[str]) -> int | None:
    """Run ``baton ARGS`` here when a fast path covers it (its exit code); None: let Typer run it."""
    for words in (tuple(args[:2]), tuple(args[:1])):
        handler = FAST.get(words)
        if handler is not None:
            return handler(args[len(words) :])
    return None


# option name → (its spellings, whether it takes a value)
LS_OPTIONS = {
    "agent": (("--agent", "-a"), True),
    "repo": (("--repo", "-r"), True),
    "limit": (("--limit", "-L"), True),
    "all": (("--all",), False),
    "json": (("--json",), False),
    "wide": (("--wide", "-w"), False),
}


def parse(
    args: list[str], options: dict[str, tuple[tuple[str, ...], bool]], dash: tuple[str, ...] = ()
) -> dict[str, str | bool] | None:
    """``args`` as option values (the last of a repeated option wins, as in Click); None for anything
    else: an argument, an unknown option, a missing value, a value that looks like an option (but
    ``-``, standard input, for the options named in ``dash``)."""
    spelling = {flag: name for name, (flags, _) in options.items() for flag in flags}
    found: dict[str, str | bool] = {}
    i = 0
    while i < len(args):
        flag, eq, inline = args[i].partition("=")
        name = spelling.get(flag)
        if name is None or (eq and not flag.startswith("--")):
            return None
        if not options[name][1]:
            if eq:
                return None
            found[name] = True
        elif eq:
            found[name] = inline
        elif i + 1 < len(args) and (not args[i + 1].startswith("-") or (args[i + 1] == "-" and name in dash)):
            i += 1
            found[name] = args[i]
        else:
            return None
        i += 1
    return found


def sessions_ls(args: list[str]) -> int | None:
    """``baton sessions ls [--agent A] [--repo R] [--limit N | --all] [--json] [--wide]`` (see
    ``cli/sessions.py``); a limit that is not a whole number of at least 1, or both ``--limit`` and
    ``--all``, is Typer's to refuse."""
    given = parse(args, LS_OPTIONS)
    if given is None:
        return None
    text = given.get("limit")
    if text is not None and (given.get("all") or not str(text).isdigit() or int(str(text)) < 1):
        return None
    # lazy: cold CLI
    from baton.cli.fast.lite import open_lite
    from baton.keys import repo_slug
    from baton.settings import load_settings

    settings = load_settings()
    store = open_lite(settings.resolved_store_url, settings.store_lock_timeout)
    if store is None:
        return None
    # lazy: cold CLI
    from baton.cli.listing import list_sessions_page, page_limit

    agent, repo = given.get("agent"), given.get("repo")
    limit = page_limit(None if text is None else int(str(text)), bool(given.get("all")))
    with store:
        slug = repo_slug(store, str(repo)) if repo else None
        list_sessions_page(
            store,
            str(agent) if agent else None,
            slug,
            limit,
            bool(given.get("json")),
            bool(given.get("wide")),
        )
    return 0


def mcp(args: list[str]) -> int | None:
    """``baton mcp`` (no option): the stdio relay to ``baton serve`` (:mod:`baton.service.mcp_stdio`),
    which an MCP client starts and waits on, before Typer is imported."""
    if args:
        return None
    # lazy: cold CLI
    from baton.service.mcp_stdio import serve

    return serve()


FAST: dict[tuple[str, ...], Handler] = {("sessions", "ls"): sessions_ls, ("mcp",): mcp}
