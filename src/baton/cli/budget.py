"""``baton budget``: a thread's, a repository's or an API token's spending caps — each cap, what was
spent and what was raised (:func:`baton.caps.budget.show`) — and raising them (``--usd +5``; ``--tokens``,
``--minutes``, ``--turns``). A raise of a thread parked at its cap resumes it: its parked instruction
runs (printed as ``baton run`` prints), its plan runs again, or, a forge thread, a trusted reply there
resumes it (:func:`baton.forge.turn.owners.owner`).
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from baton.cli.common import JsonOpt, cli_store, emit_json, err, esc, new_table, out, print_table
from baton.cli.plan import plan_run
from baton.cli.run import execute
from baton.errors import BadInput, NotFound

if TYPE_CHECKING:
    from baton.caps.budget import Target
    from baton.caps.check import Standing
    from baton.keys import Key
    from baton.store import Store


def _raise(cap: str, example: str) -> Any:
    """A raise's option: by how much the cap grows (each raise is recorded; none given: only shown)."""
    said = f"raise the cap on {cap} by N, such as {example}"
    return typer.Option(metavar="+N", show_default=False, help=said)


Usd = Annotated[str | None, _raise("USD spent (as the agent reports cost)", "+5 or +2.5")]
Tokens = Annotated[str | None, _raise("input+output tokens", "+100000 (a whole number)")]
Minutes = Annotated[str | None, _raise("wall-clock minutes of turns", "+30")]
Turns = Annotated[str | None, _raise("turns", "+3 (a whole number)")]


def budget_cmd(
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="the thread's agent")] = None,
    repo: Annotated[str | None, typer.Option("--repo", "-r", help="git URL, local path or slug")] = None,
    thread: Annotated[str | None, typer.Option("--thread", "-t", help="the thread")] = None,
    usd: Usd = None,
    tokens: Tokens = None,
    minutes: Minutes = None,
    turns: Turns = None,
    repo_wide: Annotated[
        bool, typer.Option("--repo-wide", help="the repository's caps (all its threads), not the thread's")
    ] = False,
    token: Annotated[str | None, typer.Option("--token", help="an API token's caps (by its name)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a thread's spending caps (-a -r -t), a repository's (-r --repo-wide) or an API token's
    (--token NAME): each cap, its spend and its raises; --usd +5 (--tokens, --minutes, --turns) raises
    one, and a thread parked at its cap resumes: its parked instruction runs once."""
    # lazy: cold CLI
    from baton.caps.budget import parse_changes, raise_caps, show
    from baton.caps.model import Measure
    from baton.caps.parked import parked

    changes = parse_changes(
        {Measure.USD: usd, Measure.TOKENS: tokens, Measure.MINUTES: minutes, Measure.TURNS: turns}
    )  # every amount read before anything is written
    with cli_store() as (settings, store):
        target, key = _target(store, agent, repo, thread, repo_wide, token)
        found = parked(store, key.agent, key.repo.slug, key.thread) if key is not None else None
        made = raise_caps(store, target, changes, _who())
        rows = show(settings, store, target, found)
    if as_json:
        emit_json({"target": target.describe(), "caps": [r.to_json() for r in rows], "raised": len(made)})
    else:
        _print(target, rows)
    if made and key is not None and found is not None:
        raise typer.Exit(_resume(key))


def _target(
    store: Store, agent: str | None, repo: str | None, thread: str | None, repo_wide: bool, token: str | None
) -> tuple[Target, Key | None]:
    """Whose caps, and the thread named (a raise may resume it); BadInput for a mix that names none."""
    # lazy: cold CLI
    from baton.caps.budget import Target
    from baton.caps.model import Scope, thread_subject
    from baton.keys import parse_repo
    from baton.service.tables import token_store
    from baton.sessions.manage import resolve_key

    key = resolve_key(store, agent, repo, thread) if agent and repo and thread else None
    if token is not None:
        if repo_wide:
            raise BadInput("give --token or --repo-wide, not both")
        if token_store(store).get_token(token) is None:
            raise NotFound(f"no API token {token!r}")
        return Target(Scope.TOKEN, token), key
    if repo_wide:
        if not repo:
            raise BadInput("--repo-wide needs --repo")
        return Target(Scope.REPO, key.repo.slug if key else parse_repo(repo).slug), key
    if key is None:
        raise BadInput("name the thread (-a -r -t), the repository (-r --repo-wide) or a token (--token)")
    return Target(Scope.THREAD, thread_subject(key.agent, key.repo.slug, key.thread)), key


def _print(target: Target, rows: list[Standing]) -> None:
    # lazy: cold CLI
    from baton.caps.model import shown

    table = new_table(
        "cap", "limit", "spent", "raised", "", title=esc(f"spending caps of {target.describe()}")
    )
    for r in rows:
        limit = shown(r.measure, r.limit) if r.limit is not None else "none"
        raised = shown(r.measure, r.raised) if r.raised else ""
        mark = "[red]reached[/red]" if r.reached else ""
        table.add_row(r.measure.value, esc(limit), esc(shown(r.measure, r.spent)), esc(raised), mark)
    print_table(table, False)


def _resume(key: Key) -> int:
    """Resume the thread parked at its cap by whoever owns it; the exit code of what ran (0: nothing)."""
    # lazy: cold CLI
    from baton.caps.words import spent_words
    from baton.forge.turn.owners import Owner, owner
    from baton.runner.capped import blocking, resume_request

    with cli_store() as (settings, store):
        who, where = owner(store, key.agent, key.repo.slug, key.thread)
        request = resume_request(store, key.agent, key.repo.slug, key.thread)
        still = blocking(settings, store, key, request) if request is not None else None
    if request is None:
        return 0
    if still is not None:
        said = f"{key} is still at a cap ({spent_words(still)}): raise it further to resume it"
        err().print(esc(said), highlight=False)
        return 0
    if who == Owner.FORGE:
        out().print(esc(f"{key} resumes from {where}: a reply there from someone with write access"))
        return 0
    if who == Owner.PLAN:
        err().print(esc(f"{key}: its plan runs again from the parked task ({where})"), highlight=False)
        try:
            plan_run(where)
        except typer.Exit as done:
            return int(done.exit_code)
        return 0
    return execute(request, as_json=False)


def _who() -> str:
    try:
        return f"{getpass.getuser()} (at the command line)"
    except (KeyError, OSError):  # no user name for this uid (a container)
        return "a person at the command line"
