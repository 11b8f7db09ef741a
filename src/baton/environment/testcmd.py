"""The test command a repository's instruction files name (``AGENTS.md``, ``CLAUDE.md``), for the
block of the prompt that tells the agent its room was prepared: the first inline code span on a line
that runs a known test runner. Bounded: the first 64 KiB of each file, read without following a link,
and a command of one line, at most 200 characters."""

from __future__ import annotations

import re
from pathlib import Path

from baton.workspace import nofollow

FILES = ("AGENTS.md", "CLAUDE.md")
HEAD = 64 * 1024
MAX = 200
_CODE = re.compile(r"`([^`\n]{2,200})`")
_RUNNER = re.compile(
    r"(^|[\s/])(pytest|tox|nox|npm (run )?test|pnpm (run )?test|yarn (run )?test|cargo test|go test|"
    r"make (check|test)|bundle exec rspec|rspec|rake test|mvn test|gradle test|\./gradlew test|"
    r"python[0-9.]* -m (unittest|pytest)|deno test|bun test|mix test|dotnet test)\b"
)


def test_command(worktree: Path) -> tuple[str, str] | None:
    """(the file, the command) the first instruction file names, or None."""
    for name in FILES:
        try:
            text = nofollow.read_beneath(worktree, name)[:HEAD].decode("utf-8", "replace")
        except OSError:
            continue
        for code in _CODE.findall(text):
            command = code.strip()
            if _RUNNER.search(command) and command.isprintable():
                return name, command[:MAX]
    return None
