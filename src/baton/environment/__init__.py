"""A repository's environment: what prepares a key's worktree before its agent's turn. :mod:`.discover`
finds the setup a repository keeps (``.baton/setup.sh``, a devcontainer's lifecycle commands,
copilot-setup-steps' ``run:`` steps) or the one its configuration names, as a typed
:class:`~baton.environment.plan.SetupPlan` keyed by what it depends on; :mod:`.jsonc` reads JSON with
comments; :mod:`.testcmd` finds the test command the agent's instruction files name;
:mod:`.services` reads the services its tests need and :mod:`.containers` runs them. Running a plan is
the runner's (:mod:`baton.runner.setup`). May import the ground floor and ``workspace`` (reading files
that an agent may have replaced by links: :mod:`baton.workspace.nofollow`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

# where a plan comes from, in the order baton looks (a configured ``setup`` wins over all of them); here,
# not in :mod:`.plan`, so the run path asks :func:`wanted` without importing the rest of the room
CONFIG = "config"
BATON_SETUP = ".baton/setup.sh"
BATON_MAINTAIN = ".baton/maintain.sh"
BATON_INPUTS = ".baton/inputs"  # more inputs the repository names, one path a line (:mod:`.named`)
DEVCONTAINER = ".devcontainer/devcontainer.json"
DEVCONTAINER_ROOT = ".devcontainer.json"
COPILOT = ".github/workflows/copilot-setup-steps.yml"
SOURCES = (BATON_SETUP, DEVCONTAINER, DEVCONTAINER_ROOT, COPILOT)  # the repository's, in that order
SERVICES = ".baton/services.toml"  # the services its tests need (:mod:`.services`)

# how the error of a turn whose setup did not succeed reads (the runner writes it, the forge reads it):
# FAILED, "<source>: <command> <how>", NEXT, then TAIL and the output's last lines (or NOTHING)
FAILED = "the repository's setup did not succeed ("
NEXT = "); the agent did not run and the key's next turn runs the setup again"
TAIL = "; its output's last lines:\n"
NOTHING = " (it printed nothing)"


def wanted(worktree: Path, configured: str | None) -> bool:
    """Whether a key may have a setup: one configured, or a source in its worktree (no file read)."""
    return bool(configured and configured.strip()) or any(os.path.lexists(worktree / n) for n in SOURCES)


def has_services(worktree: Path) -> bool:
    """Whether a key's repository may declare services: a services file, or a dev container that may
    name a compose file (no file read)."""
    return any(os.path.lexists(worktree / n) for n in (SERVICES, DEVCONTAINER, DEVCONTAINER_ROOT))


# the environment's line in a run's note (notes are joined by "; ", and the line has its own): from
# "environment: " to how it ended — a time it ran in, the repository's hits, "did not succeed", "cannot be
# used" — before the next note or the end (a "; then" is the line's own: what ran after the shared part)
_LINE = re.compile(
    r"(?:^|; )(environment: .*?(?: ran in \d+(?:\.\d+)? s|, hits \d+| did not succeed|cannot be used))"
    r"(?=; (?!then )|$)",
    re.DOTALL,
)


def split_note(note: str | None) -> tuple[str | None, str | None]:
    """(the environment's line, the rest of the note) of a run's ``note``; (None, note) without one."""
    found = _LINE.search(note or "")
    if found is None:
        return None, note
    rest = (note or "")[: found.start()] + (note or "")[found.end() :]
    return found[1], rest.removeprefix("; ").strip() or None


@dataclass(frozen=True)
class SetupFailure:
    """A setup that did not succeed: ``what`` ("<source>: <command> <how>") and its output's tail."""

    what: str
    tail: str

    @property
    def timed_out(self) -> bool:
        return "setup_timeout" in self.what


def parse(error: str | None) -> SetupFailure | None:
    """The failure a run's error describes (:data:`FAILED`); None when the error is not a setup's."""
    if not error or not error.startswith(FAILED) or NEXT not in error:
        return None
    what, _, rest = error[len(FAILED) :].partition(NEXT)
    tail = rest[len(TAIL) :] if rest.startswith(TAIL) else ""
    return SetupFailure(what, tail if rest != NOTHING else "")
