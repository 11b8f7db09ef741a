"""Install hints that are right for how baton was installed.

A ``pip install agent-baton`` user has no Makefile and no npm lockfile; a source checkout has both
(``make setup`` installs the pinned Codex and Gemini CLIs). Claude Code needs neither: it comes bundled
in ``claude-agent-sdk``, a required dependency.
"""

from __future__ import annotations

from pathlib import Path

DIST = "agent-baton"  # the name on PyPI (`baton` and `baton-agents` belong to other projects)
CHECKOUT = Path(__file__).resolve().parents[2]  # src/baton/install.py → the repository root


def source_checkout(root: Path = CHECKOUT) -> bool:
    """Whether this baton runs from a source checkout (editable install) rather than a wheel."""
    return (root / "Makefile").is_file() and (root / "package-lock.json").is_file()


def npm_hint(package: str, root: Path = CHECKOUT) -> str:
    """How to install an npm-distributed agent CLI, e.g. ``@openai/codex@0.169.0``."""
    if source_checkout(root):
        return f"run `make setup` (installs {package})"
    return f"npm install -g {package}"


def agents_hint(root: Path = CHECKOUT) -> str:
    """How to get the agent CLIs at all."""
    if source_checkout(root):
        return "run `make setup`"
    return (
        f"Claude Code comes with {DIST} (pip install --force-reinstall {DIST}); "
        "Codex and Gemini come from npm (@openai/codex, @google/gemini-cli)"
    )
