"""The fake ACP agent as a baton adapter: the ACP adapter driving :mod:`fake_acp_agent` (beside this
file, stdlib only, run with ``python -S``), its conversations in its home. Registered by the tests that
use it (``register_agent(ACP_NAME, ACP_FACTORY)``), in their process only."""

from __future__ import annotations

import sys
from pathlib import Path

from baton.agents.acp import AcpAgent
from baton.settings import Settings

ACP_NAME = "fake-acp"
ACP_FACTORY = "tests.support.fake_acp:acp_from_settings"


class FakeAcpAgent(AcpAgent):
    """The ACP adapter driving :mod:`fake_acp_agent`, its conversations in its home."""

    env_patterns = ("FAKE_ACP_*",)

    def home_env(self) -> dict[str, str]:
        return {"FAKE_ACP_HOME": str(self._home)}

    def transcript_files(self, session_id: str) -> list[Path]:
        path = self._home / "sessions" / f"{session_id}.json"
        return [path] if path.is_file() and "/" not in session_id else []


def acp_from_settings(name: str, settings: Settings) -> AcpAgent:
    program = [sys.executable, "-S", str(Path(__file__).parent / "fake_acp_agent.py")]
    return FakeAcpAgent(name, settings.home / "homes" / name, program)
