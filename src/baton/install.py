"""Install hints that are right for how baton was installed.

A user of a built wheel has no Makefile and no npm lockfile; a source checkout has both (``make setup``
installs the pinned Codex and Gemini CLIs). Claude Code needs neither: it comes bundled in
``claude-agent-sdk``, a required dependency.

No release of ``agent-baton`` is published on PyPI yet, so an extra's hint names where this baton was
installed from — the checkout, or the git URL or file that pip recorded (``direct_url.json``, PEP 610) —
and falls back to the plain name only for an install from an index.
"""

from __future__ import annotations

import json
from importlib import metadata
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


def installed_from() -> str | None:
    """Where pip installed this baton from: ``git+URL@rev``, a file URL, a directory; None when it
    came from an index (or pip recorded nothing)."""
    try:
        text = metadata.distribution(DIST).read_text("direct_url.json")
        found = json.loads(text) if text else None
    except (metadata.PackageNotFoundError, ValueError):
        return None
    if not isinstance(found, dict) or not isinstance(found.get("url"), str):
        return None
    url: str = found["url"]
    vcs = found.get("vcs_info")
    if isinstance(vcs, dict) and isinstance(vcs.get("vcs"), str):
        return f"{vcs['vcs']}+{url}"
    return url.removeprefix("file://") if url.startswith("file://") else url


def extra_hint(extra: str, root: Path = CHECKOUT, source: str | None = None) -> str:
    """The command that adds ``extra`` (``server``, ``postgres``, ``redis``, ``celery``) to this baton."""
    if source_checkout(root):
        return f"pip install -e '{root}[{extra}]'"
    source = installed_from() if source is None else source
    if source and "://" in source:
        return f"pip install '{DIST}[{extra}] @ {source}'"
    if source:  # a local directory or file pip recorded
        return f"pip install '{source}[{extra}]'"
    return f"pip install '{DIST}[{extra}]'"
