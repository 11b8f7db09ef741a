"""The OpenAI mock (:class:`~baton.testing.mock_openai.MockOpenAI`, the Responses API) as the model of
the ACP agents that speak it: GitHub Copilot CLI (its own model provider, no GitHub login) and OpenCode
(an ``@ai-sdk/openai`` provider in its config). The server and its replies are the OpenAI mock's; only
the way each agent is pointed at it differs (:meth:`env`, :meth:`configure_home`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from baton.testing._http import export_line
from baton.testing.mock_openai import MODEL, MockOpenAI

# OpenCode's catalogue of every provider's models, which it parses at each start unless pointed at
# another (~1.9 s of a turn's ~4.8 s of CPU, 1.18.33): the mock's provider needs none of it (its config
# names its one model), so the mock points OpenCode at an empty one, readable inside the walls (beside
# baton's own code).
EMPTY_CATALOGUE = Path(__file__).with_name("opencode_models.json")
OPENCODE_CONFIG = "config/opencode/opencode.json"  # under the agent's base home: copied into each key's


@dataclass
class MockCopilot(MockOpenAI):
    """Copilot CLI's own model provider pointed here; ``COPILOT_OFFLINE`` keeps it off every other
    network (no GitHub login, no telemetry, no update check)."""

    def env(self) -> dict[str, str]:
        return {
            "COPILOT_OFFLINE": "true",
            "COPILOT_PROVIDER_BASE_URL": f"{self.url}/v1",
            "COPILOT_PROVIDER_API_KEY": "mock-key",
            "COPILOT_PROVIDER_WIRE_API": "responses",
            "COPILOT_MODEL": MODEL,
        }

    def config_text(self) -> str | None:
        return None  # the environment is all it needs (not Codex's config.toml, which it would inherit)

    def shell_lines(self) -> list[str]:
        return [
            "# point baton run -a copilot (or plain `copilot`) at this mock: its own model provider, and",
            f"# a model ({MODEL}: a provider of your own needs one named), kept off GitHub:",
            export_line(self.env()),
        ]


@dataclass
class MockOpenCode(MockOpenAI):
    """OpenCode's model is a provider in its config file: a ``mock`` provider through its bundled
    ``@ai-sdk/openai``, the model ``mock/<MODEL>``; the environment only spares it its catalogue of
    every provider's models (:data:`EMPTY_CATALOGUE`)."""

    def env(self) -> dict[str, str]:
        return {"OPENCODE_MODELS_PATH": str(EMPTY_CATALOGUE)}

    def config(self) -> dict[str, object]:
        return {
            "$schema": "https://opencode.ai/config.json",
            "provider": {
                "mock": {
                    "npm": "@ai-sdk/openai",
                    "name": "Mock",
                    "options": {"baseURL": f"{self.url}/v1", "apiKey": "mock-key"},
                    "models": {MODEL: {"name": MODEL}},
                }
            },
            "model": f"mock/{MODEL}",
            "small_model": f"mock/{MODEL}",
            "autoupdate": False,
            "share": "disabled",
        }

    def configure_home(self, home: Path) -> None:
        """Write the provider into the base home's OpenCode config (baton copies it into each key's
        home), keeping the config's other keys."""
        path = home / OPENCODE_CONFIG
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = json.loads(path.read_text()) if path.is_file() else {}
        path.write_text(json.dumps({**kept, **self.config()}, indent=2))

    def config_text(self) -> str:
        return json.dumps(self.config(), indent=2) + "\n"

    def shell_lines(self) -> list[str]:
        command = f"python -m baton.testing.mock_openai --port {self.port} --agent opencode --print-config"
        return [
            "# OpenCode reads its model from its config file, not the environment: for baton, write it",
            "# into the base home (baton copies it into each key's home; plain opencode reads",
            f"# ~/.{OPENCODE_CONFIG}):",
            f'#   mkdir -p "$BATON_HOME/homes/opencode/{OPENCODE_CONFIG.rsplit("/", 1)[0]}"',
            f'#   {command} > "$BATON_HOME/homes/opencode/{OPENCODE_CONFIG}"',
            f"# it holds: {json.dumps(self.config())}",
            "# and spare it its catalogue of every provider's models at each start (the mock needs none):",
            export_line(self.env()),
        ]
