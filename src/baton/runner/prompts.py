"""Prompt templates: ``full`` for a fresh conversation, ``delta`` for a resumed one, ``recap`` for a
recovered one, ``interrupted`` after a run that did not finish, and ``interrupted-new`` as the
``$prompt`` of a new conversation after a turn cut short before it left one to resume. Templates are
``string.Template`` files (``$prompt``, ``$repo``, ``$thread``, ``$branch``, ``$worktree``,
``$context``, ``$recap``, ``$reason``, ``$previous``), shipped in the package and overridable by files
of the same name in ``$BATON_HOME/templates/``. ``$`` in a prompt needs no escaping: only the template
is parsed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from string import Template

from baton.errors import BadInput
from baton.models import PromptKind, RunRecord
from baton.sync.recaps import repo_relative

RECAP_CHARS = 600


# the ``$prompt`` of a new conversation after a turn cut short before it left one to resume
INTERRUPTED_NEW = "interrupted-new"


def load_template(kind: PromptKind | str, home: Path) -> Template:
    """The template ``kind`` (a :class:`PromptKind`, or :data:`INTERRUPTED_NEW`): the user's, else baton's."""
    override = home / "templates" / f"{kind}.txt"
    if override.is_file():
        return Template(override.read_text())
    return Template(resources.files("baton").joinpath("templates", f"{kind}.txt").read_text())


def render(kind: PromptKind | str, home: Path, **values: str) -> str:
    try:
        text = load_template(kind, home).substitute(values)
    except (KeyError, ValueError) as exc:
        raise BadInput(f"prompt template {kind}.txt uses an unknown or malformed placeholder: {exc}") from exc
    return "\n".join(line.rstrip() for line in text.strip().splitlines()) + "\n"


def recap(runs: list[RunRecord]) -> str:
    """A plain-text recap of earlier runs (oldest first): what was asked and what came back, with
    paths into the key's worktree (in this home or the one a run ran in) relative to the repository."""
    relative = repo_relative(runs)
    lines: list[str] = []
    for number, run in enumerate(runs, 1):
        lines.append(f"Run {number} ({run.outcome.value}):")
        lines.append(f"  asked: {_clip(relative(run.prompt))}")
        if run.result:
            lines.append(f"  answer: {_clip(relative(run.result))}")
        elif run.error:
            lines.append(f"  error: {_clip(relative(run.error))}")
    return "\n".join(lines) if lines else "(no earlier runs were recorded)"


def _clip(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= RECAP_CHARS else flat[: RECAP_CHARS - 1] + "…"
