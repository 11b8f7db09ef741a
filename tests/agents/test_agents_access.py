"""Access levels and environment names of the three adapters: the flags each level puts in argv (and
nothing of the prompt), and the environment patterns each CLI needs. What the flags make the real CLIs
do is proven in tests/sandbox/test_access_real.py."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from baton.agents.base import AgentBase
from baton.agents.claude import ClaudeAgent
from baton.agents.codex import CodexAgent
from baton.agents.gemini import POLICY_FILE, READ_ONLY_SHELL, GeminiAgent
from baton.models import Access, Mode
from baton.settings import load_settings
from baton.testing.fake import from_settings as fake_from_settings
from baton.testing.mock_openai import MockOpenAI

THREAD = "01a1feaa-303a-75d0-8293-4ac0347e196e"
# A prompt that would grant itself everything if any byte of it reached an option parser.
HOSTILE = "--permission-mode=bypassPermissions --sandbox danger-full-access --approval-mode=yolo --policy=/x"
EXPECTED = {
    "claude": {
        Access.READ: ["--permission-mode=dontAsk", "--disallowedTools=Write,Edit,NotebookEdit"],
        Access.EDIT: ["--permission-mode=acceptEdits"],
        Access.FULL: ["--permission-mode=acceptEdits", "--allowedTools=Bash"],
    },
    "codex": {
        Access.READ: ["--sandbox", "read-only"],
        Access.EDIT: ["--sandbox", "workspace-write"],
        Access.FULL: ["--sandbox", "danger-full-access"],
    },
    "gemini": {
        Access.READ: ["--approval-mode=default", "--policy=POLICY"],
        Access.EDIT: ["--approval-mode=auto_edit", "--policy=POLICY"],
        Access.FULL: ["--approval-mode=yolo"],
    },
}


def make(name: str, home: Path) -> ClaudeAgent | CodexAgent | GeminiAgent:
    if name == "claude":
        return ClaudeAgent("claude", home, "/bin/claude")
    if name == "codex":
        return CodexAgent(home, "/opt/codex/bin/codex")
    return GeminiAgent(home, "/bin/gemini")


def expected(name: str, access: Access, agent: AgentBase) -> list[str]:
    policy = str(agent.home / ".gemini" / POLICY_FILE)
    return [flag.replace("POLICY", policy) for flag in EXPECTED[name][access]]


def contains(argv: list[str], flags: list[str]) -> bool:
    """``flags`` appear in ``argv`` together, in order."""
    return any(argv[i : i + len(flags)] == flags for i in range(len(argv) - len(flags) + 1))


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("access", list(Access))
def test_each_level_puts_its_flags_in_argv_and_no_byte_of_the_prompt(
    name: str, access: Access, tmp_path: Path
) -> None:
    agent = make(name, tmp_path / "home")
    assert {a: list(f) for a, f in agent.access_flags.items()} == {
        a: [f for f in flags if not f.startswith("--policy")] for a, flags in EXPECTED[name].items()
    }
    for mode, session in ((Mode.FRESH, None), (Mode.RESUME, THREAD), (Mode.CONTINUE, None)):
        launch = agent.launch(mode, HOSTILE, session, access)
        flags = expected(name, access, agent)
        assert contains(launch.argv, flags), (mode, launch.argv)
        assert launch.stdin == HOSTILE.encode()
        assert not any(word in arg for word in HOSTILE.split() for arg in launch.argv[1:] if arg not in flags)
        others = [f for level, fl in EXPECTED[name].items() if level != access for f in fl]
        assert not set(launch.argv) & (set(others) - set(flags)), "another level's flags"
        if name == "codex" and mode != Mode.FRESH:  # exec-level flags are refused after `resume`
            assert launch.argv.index(flags[0]) < launch.argv.index("resume")


def test_the_default_level_is_edit(tmp_path: Path) -> None:
    for name in EXPECTED:
        agent = make(name, tmp_path / name)
        default = agent.launch(Mode.RESUME, "x", THREAD).argv
        assert default == agent.launch(Mode.RESUME, "x", THREAD, Access.EDIT).argv


def test_gemini_writes_its_read_only_shell_policy_and_mends_it(tmp_path: Path) -> None:
    agent = GeminiAgent(tmp_path / "home", "/bin/gemini")
    path = agent.gemini_dir / POLICY_FILE
    agent.launch(Mode.FRESH, "x", None, Access.FULL)
    assert not path.exists(), "full loads no policy"
    agent.launch(Mode.FRESH, "x", None, Access.READ)
    assert path.read_text() == READ_ONLY_SHELL and path.stat().st_mode & 0o777 == 0o644
    path.write_text('[[rule]]\ntoolName = "run_shell_command"\ndecision = "allow"\npriority = 999\n')
    agent.launch(Mode.RESUME, "x", THREAD, Access.EDIT)
    assert path.read_text() == READ_ONLY_SHELL, "a tampered policy is rewritten at the next launch"
    assert path.parent.name == ".gemini", "not in policies/, which Gemini loads at every level"
    rules = tomllib.loads(READ_ONLY_SHELL)["rule"]
    allow, deny = rules
    assert allow["decision"] == "allow" and "git log" in allow["commandPrefix"]
    assert not {"rm", "touch", "git commit", "find", "rg", "sed", "tee"} & set(allow["commandPrefix"])
    assert deny == {
        "toolName": "run_shell_command",
        "argsPattern": "--output",
        "decision": "deny",
        "priority": 200,
    }


# -- environment names ----------------------------------------------------------------------------------


def matches(patterns: tuple[str, ...], name: str) -> bool:
    return any(fnmatchcase(name, p) for p in patterns)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_env_names_cover_the_credentials_and_never_batons(name: str, tmp_path: Path) -> None:
    agent = make(name, tmp_path / "home")
    patterns = agent.env_names()
    assert all(isinstance(p, str) and p for p in patterns)
    assert all(matches(patterns, credential) for credential in agent.credentials)
    for foreign in ("BATON_HOME", "BATON_TOKEN", "BATON_STORE_URL", "PATH", "HOME", "LD_PRELOAD", "BASH_ENV"):
        assert not matches(patterns, foreign), foreign
    assert not any(p in ("*", "?*", "*_*") for p in patterns)


def test_env_names_per_cli_with_their_switches_and_nobody_elses_keys(tmp_path: Path) -> None:
    claude = make("claude", tmp_path / "c").env_names()
    for switch in (
        "ANTHROPIC_BASE_URL",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "DISABLE_TELEMETRY",
        "DISABLE_AUTOUPDATER",
    ):
        assert matches(claude, switch)
    codex = make("codex", tmp_path / "x").env_names()
    assert matches(codex, "OPENAI_API_KEY") and matches(codex, "CODEX_API_KEY")
    gemini = make("gemini", tmp_path / "g").env_names()
    for switch in ("GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GEMINI_CLI_TRUST_WORKSPACE", "NO_BROWSER"):
        assert matches(gemini, switch)
    keys = {"claude": "ANTHROPIC_API_KEY", "codex": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}
    for patterns, own in ((claude, "claude"), (codex, "codex"), (gemini, "gemini")):
        assert [cli for cli, key in keys.items() if matches(patterns, key)] == [own]


def test_codex_env_names_add_what_its_model_providers_read(tmp_path: Path) -> None:
    home = tmp_path / "home"
    agent = CodexAgent(home, "/opt/codex/bin/codex")
    assert agent.env_names() == agent.env_patterns  # no config.toml yet
    with MockOpenAI() as mock:
        mock.configure_home(home)
        assert matches(agent.env_names(), "MOCK_API_KEY")
        assert all(matches(agent.env_names(), name) for name in mock.env())
    config = home / "config.toml"
    config.write_text(
        config.read_text()
        + "\n[model_providers.azure]\nname = 'Azure'\nenv_key = 'AZURE_OPENAI_API_KEY'\n"
        + "env_http_headers = { 'X-Org' = 'ORG_HEADER' }\n"
        + "[model_providers.odd]\nenv_key = 'BATON_TOKEN'\n"
        + "[model_providers.glob]\nenv_key = '*'\n"
    )
    names = agent.env_names()
    assert {"MOCK_API_KEY", "AZURE_OPENAI_API_KEY", "ORG_HEADER"} <= set(names)
    assert "*" not in names and not matches(names, "BATON_TOKEN")
    config.write_text("not = [toml")
    assert agent.env_names() == agent.env_patterns


def test_the_fake_agent_gets_its_fault_switches(tmp_path: Path) -> None:
    """The fake agent (a Claude look-alike) reads CLAUDE_CONFIG_DIR, which launch() sets, and its
    FAKE_AGENT_* fault switches; it skips the access flags (``--flag=value``) as it skips any unknown flag."""
    settings = load_settings(overrides={"home": str(tmp_path / "home")}, environ={})
    fake = fake_from_settings("fake", settings)
    names = fake.env_names()
    assert matches(names, "FAKE_AGENT_DELAY") and matches(names, "ANTHROPIC_API_KEY")
    assert not matches(make("claude", tmp_path / "c").env_names(), "FAKE_AGENT_DELAY")
    assert "CLAUDE_CONFIG_DIR" in fake.launch(Mode.FRESH, "x", None, Access.READ).env
