"""A repository's environment: what prepares a key's worktree before its agent's turn. :mod:`.discover`
finds the setup a repository keeps (``.baton/setup.sh``, a devcontainer's lifecycle commands,
copilot-setup-steps' ``run:`` steps) or the one its configuration names, as a typed
:class:`~baton.environment.plan.SetupPlan` keyed by what it depends on; :mod:`.jsonc` reads JSON with
comments; :mod:`.testcmd` finds the test command the agent's instruction files name. Running a plan is
the runner's (:mod:`baton.runner.setup`). May import the ground floor and ``workspace`` (reading files
that an agent may have replaced by links: :mod:`baton.workspace.nofollow`).
"""

from __future__ import annotations

import os
from pathlib import Path

# where a plan comes from, in the order baton looks (a configured ``setup`` wins over all of them); here,
# not in :mod:`.plan`, so the run path asks :func:`wanted` without importing the rest of the room
CONFIG = "config"
BATON_SETUP = ".baton/setup.sh"
BATON_MAINTAIN = ".baton/maintain.sh"
DEVCONTAINER = ".devcontainer/devcontainer.json"
DEVCONTAINER_ROOT = ".devcontainer.json"
COPILOT = ".github/workflows/copilot-setup-steps.yml"
SOURCES = (BATON_SETUP, DEVCONTAINER, DEVCONTAINER_ROOT, COPILOT)  # the repository's, in that order

# how the error of a turn whose setup did not succeed reads (the runner writes it, the forge reads it):
# FAILED, "<source>: <command> <how>", NEXT, then TAIL and the output's last lines (or NOTHING)
FAILED = "the repository's setup did not succeed ("
NEXT = "); the agent did not run and the key's next turn runs the setup again"
TAIL = "; its output's last lines:\n"
NOTHING = " (it printed nothing)"


def wanted(worktree: Path, configured: str | None) -> bool:
    """Whether a key may have a setup: one configured, or a source in its worktree (no file read)."""
    return bool(configured and configured.strip()) or any(os.path.lexists(worktree / n) for n in SOURCES)
