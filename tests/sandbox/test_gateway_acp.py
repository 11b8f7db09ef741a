"""The ACP agents behind baton's model gateway, and ``model_gateway_upstream``. The real OpenCode, its
key written into the operator's ``opencode.json`` and ``auth.json``: one turn at ``full`` whose shell
prints its environment and its home's config files and writes a file; neither they nor any file of
the key's home hold the key, the run's token is there, the file is written, every request reached
the upstream the setting names (not the config's own ``baseURL``) with the real key, and the token
is refused once the run has ended. The setting's words are checked, a bad one refused naming it;
the key's copies of the config files lose the key and are copied whole again at the next seed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from baton import RunRequest, run
from baton.agents.opencode import GATEWAY_KEY, LOGINS
from baton.errors import BadInput
from baton.models import Access, Outcome
from baton.settings import load_settings
from baton.testing.mock_openai_agents import OPENCODE_CONFIG, MockOpenCode
from tests.sandbox.test_access_real import shell_marker, tool_results
from tests.sandbox.test_gateway import REAL_KEY, gateway_settings, gateway_url, refused_calls


@pytest.fixture
def user_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "user-home").mkdir()  # the CLI's shells skip this machine's ~/.bashrc
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))


@pytest.fixture
def mocks() -> Iterator[tuple[MockOpenCode, MockOpenCode]]:
    """The model API the operator's config names, and the one ``model_gateway_upstream`` names."""
    with MockOpenCode() as own, MockOpenCode() as upstream:
        yield own, upstream


@pytest.mark.slow
@pytest.mark.usefixtures("user_home")
def test_opencode_holds_only_its_runs_token_and_the_named_upstream_is_asked(
    home: Path, src_repo: Path, mocks: tuple[MockOpenCode, MockOpenCode]
) -> None:
    own, upstream = mocks
    base = home / "homes" / "opencode"
    own.configure_home(base)
    config = json.loads((base / OPENCODE_CONFIG).read_text())
    config["provider"]["mock"]["options"]["apiKey"] = REAL_KEY
    (base / OPENCODE_CONFIG).write_text(json.dumps(config))
    (base / LOGINS).parent.mkdir(parents=True)
    (base / LOGINS).write_text(json.dumps({"mock": {"type": "api", "key": REAL_KEY}}))
    files = '"$XDG_CONFIG_HOME/opencode/opencode.json" "$XDG_DATA_HOME/opencode/auth.json"'
    command = f"env; cat {files}; echo made > made.txt"
    settings = gateway_settings(home, "open").with_(model_gateway_upstream=f"opencode={upstream.url}/v1")
    request = RunRequest(
        agent="opencode",
        repo=str(src_repo),
        thread="gateway",
        prompt=f"run {shell_marker('opencode', command)}",
        access=Access.FULL,
    )
    result = run(request, settings=settings)
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    output = "\n".join(tool_results("opencode", upstream))
    variables = dict(line.partition("=")[::2] for line in output.splitlines() if "=" in line)
    token = variables[GATEWAY_KEY]
    assert token.startswith(f"baton-run-{result.run.id}.") and REAL_KEY not in output, output
    # its config files, without the key: the only apiKey is its config content's, naming the token
    assert '"mock"' in output and '"type": "api"' not in output, output
    assert re.findall(r'"apiKey": "([^"]*)"', output) == [f"{{env:{GATEWAY_KEY}}}"], output
    assert (Path(result.session.worktree) / "made.txt").read_text() == "made\n"
    held = [p for p in (home / "keys").rglob("*") if p.is_file() and REAL_KEY.encode() in p.read_bytes()]
    assert held == [], "the key's home holds the key"
    assert not own.keys_seen, "the config's own baseURL is not asked: the setting's upstream is"
    assert upstream.keys_seen and set(upstream.keys_seen) == {REAL_KEY}
    assert result.run.usage["wire"]["requests"] >= 2
    assert refused_calls(settings) == [], "every call OpenCode made is a model call the key is lent for"
    url = f"{gateway_url(result.run.id)}/responses"
    ask = {"model": "m", "input": "hi"}
    assert httpx.post(url, headers={"authorization": f"Bearer {token}"}, json=ask).status_code == 401


def test_model_gateway_upstream_takes_urls_per_agent_and_refuses_anything_else(home: Path) -> None:
    def upstreams(value: str) -> dict[str, str]:
        values = {"home": str(home), "model_gateway_upstream": value}
        return load_settings(overrides=values, environ={}).model_gateway_upstreams

    both = upstreams("https://llm.example/v1, claude=https://llm.example/anthropic")
    assert both == {"": "https://llm.example/v1", "claude": "https://llm.example/anthropic"}
    settings = load_settings(overrides={"home": str(home), "model_gateway_upstream": "claude=http://a"})
    assert settings.gateway_upstream("claude") == "http://a" and settings.gateway_upstream("codex") is None
    for bad in (
        "ftp://llm.example",
        "claude=",
        "Claude=http://a",
        "http://user:pw@llm.example",
        "http://h:99999",
    ):
        with pytest.raises(BadInput, match="model_gateway_upstream"):
            upstreams(bad)
    with pytest.raises(BadInput, match="names 'claude' twice"):
        upstreams("claude=http://a,claude=http://b")


def test_a_keys_copies_lose_the_key_and_are_copied_whole_again(tmp_path: Path) -> None:
    """The key's copy of a config file loses the value the gateway holds and is dated 1970: the next
    seed copies the operator's whole again (a gateway turned off finds the key). A link is not followed."""
    from baton.workspace.keyspace import drop_secrets, seed_home

    base, key = tmp_path / "base", tmp_path / "key"
    config = {"provider": {"mock": {"options": {"apiKey": REAL_KEY, "baseURL": "http://m/v1"}}}}
    (base / "config").mkdir(parents=True)
    (base / "config" / "oc.json").write_text(json.dumps(config))
    (base / "auth.json").write_text(json.dumps({"mock": {"type": "api", "key": REAL_KEY}, "other": {}}))
    files = ("config/oc.json", "auth.json")
    assert seed_home(base, key, files) == list(files)
    secrets = (("config/oc.json", ("provider", "mock", "options", "apiKey")), ("auth.json", ("mock",)))
    assert drop_secrets(key, secrets) == list(files)
    assert json.loads((key / "config" / "oc.json").read_text())["provider"]["mock"]["options"] == {
        "baseURL": "http://m/v1"
    }
    assert json.loads((key / "auth.json").read_text()) == {"other": {}}
    assert drop_secrets(key, secrets) == []  # nothing left to drop
    assert seed_home(base, key, files) == list(files)
    assert REAL_KEY in (key / "auth.json").read_text()
    (key / "auth.json").unlink()
    (key / "auth.json").symlink_to(base / "auth.json")
    assert drop_secrets(key, secrets[1:]) == [] and REAL_KEY in (base / "auth.json").read_text()
