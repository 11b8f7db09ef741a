"""``python -m baton.testing.mock_openai [--port N] [--print-env] [--agent NAME] [--print-config]``: the
OpenAI mock served for every agent that speaks its API (:mod:`baton.testing.mock_cli`). It prints what
points each of them here — Codex's export line (and plain Codex's config.toml), Copilot CLI's exports
(its own provider, a model, offline), OpenCode's provider config — or one agent's with ``--agent``.

It lives here, not in the package's ``__init__``, because the ACP agents' mocks
(:mod:`baton.testing.mock_openai_agents`) subclass the package's server: importing them there would
be a circle."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from baton.testing import mock_cli
from baton.testing.mock_openai import MockOpenAI
from baton.testing.mock_openai_agents import MockCopilot, MockOpenCode

AGENTS = {"codex": MockOpenAI, "copilot": MockCopilot, "opencode": MockOpenCode}
DESCRIPTION = (
    "A mock OpenAI Responses API on 127.0.0.1, to run Codex, Copilot CLI and OpenCode offline.\n"
    "Each reply says how many input items the request carried."
)


def main(argv: Sequence[str] | None = None) -> int:
    return mock_cli.main(MockOpenAI, "mock_openai", DESCRIPTION, argv, agents=AGENTS)


if __name__ == "__main__":
    sys.exit(main())
