"""What every ``baton`` command shares: the consoles, option types, JSON output, exit codes, and the
settings + store a command works with."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console

from baton.models import Outcome
from baton.settings import Settings, load_settings
from baton.store import Store, open_store

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT = {Outcome.SUCCEEDED: 0, Outcome.CANCELLED: 130}

AgentOpt = Annotated[str, typer.Option("--agent", "-a", help="claude, codex, gemini (or fake, for tests)")]
RepoOpt = Annotated[str, typer.Option("--repo", "-r", help="git URL, local path, or a stored slug")]
ThreadOpt = Annotated[str, typer.Option("--thread", "-t", help="unit of work, e.g. issue-42")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]


@contextmanager
def cli_store() -> Iterator[tuple[Settings, Store]]:
    settings = load_settings()
    store = open_store(settings.resolved_store_url)
    try:
        yield settings, store
    finally:
        store.close()


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
