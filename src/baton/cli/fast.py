"""Fast paths: commands parsed without Typer, for what people and scripts type most.

``baton sessions ls`` through Typer (whose option parsing imports pydantic) and the SQL store (which
imports SQLAlchemy) spends about half a second importing, for a query of a few milliseconds. Here the
same command is parsed by hand and answered from :mod:`baton.store.lite`, printed by the same
:mod:`baton.cli.render` functions, so its output is the Typer command's to the byte
(``tests/test_cli_fast.py`` compares them). ``baton run`` in its common form is parsed here too and
runs exactly as the Typer command does (:func:`baton.cli.running.execute`), in the warm server when
there is one (:mod:`baton.cli.warm`).

A fast path takes only what it fully understands: an unknown or malformed option, ``--help``, a store
the lite reader declines (PostgreSQL, one that needs migrating) — anything else returns ``None`` and the
Typer command runs, with its own parsing and error messages. Errors it raises are the same
:class:`~baton.errors.BatonError` s, turned into messages by :func:`baton.cli.main`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's (nor collections.abc's Callable): the warm hand-over imports this
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
    from baton.keys import repo_slug
    from baton.settings import load_settings
    from baton.store.lite import open_lite

    store = open_lite(load_settings().resolved_store_url)
    if store is None:
        return None
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


RUN_OPTIONS = {
    "agent": (("--agent", "-a"), True),
    "repo": (("--repo", "-r"), True),
    "thread": (("--thread", "-t"), True),
    "prompt_file": (("--prompt-file",), True),
    "json": (("--json",), False),
}
VALUED = tuple(flag for flags, takes in RUN_OPTIONS.values() if takes for flag in flags)


def run(args: list[str]) -> int | None:
    """``baton run -a AGENT -r REPO -t THREAD [--json] PROMPT`` (or ``--prompt-file FILE``, ``-`` for
    standard input, instead of PROMPT) — the form a dispatcher starts once per event — without Typer,
    whose parsing imports pydantic (~0.15 s). The request is the one the Typer command builds from
    these options (every other field at its default); any other option, a prompt that starts with
    ``-``, a prompt and a prompt file, or a missing key option is Typer's to parse."""
    prompts = [i for i, arg in enumerate(args) if not arg.startswith("-") and _is_argument(args, i)]
    if len(prompts) > 1:
        return None
    rest = args[: prompts[0]] + args[prompts[0] + 1 :] if prompts else args
    given = parse(rest, RUN_OPTIONS, dash=("prompt_file",))
    if given is None or not all(isinstance(given.get(k), str) for k in ("agent", "repo", "thread")):
        return None
    if len(prompts) + ("prompt_file" in given) != 1:
        return None  # both or neither: Typer's error
    from baton.cli import warm

    # a prompt file is read where the run runs: standard input, handed over, by the served child
    handed = warm.hand_over(["run", *args])
    if isinstance(handed, int):
        warm.leave(handed)
    from baton.cli.running import execute
    from baton.runner.request import RunRequest

    if prompts:
        prompt = args[prompts[0]]
    else:
        from baton.cli.inputs import read_input

        prompt = read_input(str(given["prompt_file"]), "prompt", "--prompt-file")
    request = RunRequest(
        agent=str(given["agent"]), repo=str(given["repo"]), thread=str(given["thread"]), prompt=prompt
    )
    return execute(request, as_json=bool(given.get("json")), start_warm=handed == warm.ABSENT)


def _is_argument(args: list[str], i: int) -> bool:
    """Whether ``args[i]`` stands alone, not as the value of the option before it (``-a claude``)."""
    if i == 0:
        return True
    return args[i - 1] not in VALUED


FAST: dict[tuple[str, ...], Handler] = {("sessions", "ls"): sessions_ls, ("run",): run}
