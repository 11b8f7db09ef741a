"""What a thread stopped for spending says, in one place: a cap's question (stored as the parked run's
``runs.question``, so every surface that shows questions shows it) and the forge's own budgets' notice
(turns per CI failure, turns per day) are both :func:`parked_text`: what was spent, and how to go on.
"""

from __future__ import annotations

from typing import Any

from baton.caps.model import RUN_CAPS, Caps, Reached, Scope, amount_word, number, shown, split_thread

WHOSE = {Scope.THREAD: "this thread", Scope.REPO: "repository {}", Scope.TOKEN: "API token {!r}"}


def parked_text(spent: str, how: str) -> str:
    """The one notice of a thread stopped for spending: ``spent`` (what of which cap), ``how`` to go on."""
    return f"{spent}; {how}, or close it."


def spent_words(reached: Reached) -> str:
    """``this thread has spent $4.80 of its $5.00``."""
    whose = WHOSE[reached.scope].format(reached.subject)
    return (
        f"{whose} has spent {shown(reached.measure, reached.spent)} of its "
        f"{shown(reached.measure, reached.cap)} cap"
    )


def suggested(reached: Reached) -> float:
    """The raise a notice suggests: the cap's own size again, at least 1 (a whole number)."""
    return float(max(1, round(reached.cap)))


def command(reached: Reached) -> str:
    """The ``baton budget`` command that raises the cap (``--usd +5``, ``--repo-wide``, ``--token``)."""
    change = f"--{reached.measure.value} +{number(reached.measure, suggested(reached))}"
    if reached.scope == Scope.TOKEN:
        return f"baton budget --token {reached.subject} {change}"
    if reached.scope == Scope.REPO:
        return f"baton budget -r {reached.subject} --repo-wide {change}"
    agent, repo, thread = split_thread(reached.subject)
    return f"baton budget -a {agent} -r {repo} -t {thread} {change}"


def question(reached: Reached, run_caps: Caps) -> dict[str, Any]:
    """The parked run's ``runs.question``: the notice as its text (said for the command line), no
    options, the reached cap itself (``cap``), which marks the question as the cap's, not the agent's
    (its answer is a raise: :mod:`baton.caps.parked`), and the thread caps the run's own request
    carried (``run_caps``), which the turn that resumes it carries too."""
    how = f"run `{command(reached)}` to continue"
    if reached.scope == Scope.THREAD:
        how += f" (on a forge: reply `@baton budget {amount_word(reached.measure, suggested(reached))}`)"
    text = parked_text(spent_words(reached), how)
    return {"text": text, "options": [], "cap": reached.to_json(), RUN_CAPS: run_caps.to_json()}


def forge_text(reached: Reached, mention: str) -> str:
    """The notice as a forge thread shows it: how to raise it with a reply there."""
    reply = f"{mention} budget {amount_word(reached.measure, suggested(reached))}"
    if reached.scope != Scope.THREAD:  # a repository's or a token's cap: raised where baton runs
        return parked_text(spent_words(reached), f"an operator raises it with `{command(reached)}`")
    return parked_text(spent_words(reached), f"reply `{reply}` (someone with write access) to continue")
