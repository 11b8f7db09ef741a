"""``baton answer``: answer the question a thread waits on (its last turn ended ``needs_input``) and run
the turn that carries it — the same key resuming its conversation, the question and the answer as the
prompt (:func:`baton.asking.pending.answering`), run and printed as ``baton run`` does.
"""

from __future__ import annotations

import getpass

import typer

from baton.cli.common import JsonOpt, cli_store, err, esc
from baton.cli.options import request_command
from baton.cli.run import execute
from baton.runner.request import Option, RunRequest

# What an answer cannot choose: it resumes the thread's own conversation in its worktree (no other mode,
# no fork, handoff or new branch, no first prompt's context), and the question it answers is the
# thread's own (--answers is baton's, set here).
NOT_AN_ANSWERS = ("mode", "branch", "base", "context", "fork_from", "answers", "base_thread", "handoff_from")


ANSWER = Option("the answer to the thread's question", from_file="read the answer from a file")


@request_command(omit=NOT_AN_ANSWERS, says={"prompt": ANSWER})
def answer_cmd(request: RunRequest, as_json: JsonOpt = False) -> None:
    """Answer the question a thread waits on and run the turn that resumes its conversation with it;
    exit 2 when the thread waits on no question."""
    # lazy: cold CLI
    from baton.asking.pending import answering
    from baton.forge.writes.answered_elsewhere import answered_elsewhere
    from baton.sessions.manage import resolve_key

    with cli_store() as (_settings, store):
        key = resolve_key(store, request.agent, request.repo, request.thread)
        found = answering(store, key.agent, key.repo.slug, key.thread, request.prompt, _who())
        bound = answered_elsewhere(store, key.agent, key.repo.slug, key.thread, _who())  # a forge thread's
    # the key as named: a URL, a path, or its slug (``baton run`` prints the slug), run where it lives
    request.repo = key.repo.url
    request.prompt, request.answers = found.prompt, found.answers
    code = execute(request, as_json)
    if bound is not None:  # its status comment says how the answer's run ended, not that it waits
        _tell_forge(key.agent, key.repo.slug, key.thread, bound)
    raise typer.Exit(code)


def _tell_forge(agent: str, repo: str, thread: str, conversation: str) -> None:
    # lazy: cold CLI
    from baton.forge.writes.answered_elsewhere import ran_elsewhere

    with cli_store() as (settings, store):
        said = ran_elsewhere(settings, store, agent, repo, thread)
    if said is not None and said.startswith("failed"):
        err().print(esc(f"{conversation}: its status comment was not edited ({said}); its next turn does"))


def _who() -> str:
    try:
        return f"{getpass.getuser()} (at the command line)"
    except (KeyError, OSError):  # no user name for this uid (a container)
        return "a person at the command line"
