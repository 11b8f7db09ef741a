"""Which agents exist is said in one place, the registry (``baton.agents.AGENTS``): every help text that
lists them is generated from it (``baton.agents.listed``), the API states them as an ``enum`` read from it,
and no string in the code (its docstrings aside: prose) lists agents by hand. Proven on the real
``baton`` command, in a process of its own with an agent registered through ``BATON_AGENTS_EXTRA``."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from baton.agents import AGENTS, BUILTIN, listed
from baton.runner.request import request_fields
from baton.service.app import create_app
from baton.settings import Settings

SRC = Path(__file__).resolve().parents[2] / "src" / "baton"
BATON = Path(sys.executable).with_name("baton")
NAME = "|".join(BUILTIN)
# two agents' names one after the other, as a list names them: "claude, codex", "gemini or copilot"
HAND_LIST = re.compile(rf"\b({NAME})\b,? (?:or |and )?\b({NAME})\b")


def test_listed_says_the_registered_agents_for_people() -> None:
    assert listed() == ", ".join(AGENTS[:-1]) + " or " + AGENTS[-1]
    assert all(name in listed() for name in BUILTIN)
    assert listed(["claude"]) == "claude"
    assert listed(["claude", "codex"]) == "claude or codex"
    assert listed(["a", "b", "c"]) == "a, b or c"


def _help(command: str, home: Path) -> str:
    """``baton COMMAND --help`` of a process whose registry has ``mine`` too."""
    env = {**os.environ, "BATON_HOME": str(home), "NO_COLOR": "1"}
    env["BATON_AGENTS_EXTRA"] = "mine=baton.testing.fake:from_settings"
    done = subprocess.run(
        [str(BATON), command, "--help"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("command", ["run", "submit"])
def test_the_agent_options_help_lists_the_registry_of_its_process(command: str, tmp_path: Path) -> None:
    # the option's help, its wrapped lines joined: up to the next option
    words = " ".join(_help(command, tmp_path).split())
    agent = words[words.index("--agent") :].split(" -", 1)[0]
    # the built-in agents and the one this process registered, in the registry's order
    assert listed([*BUILTIN, "mine"]) in agent, agent
    assert "fake" not in agent  # this process did not register the tests' fake agent


def test_the_api_describes_the_agent_by_the_registry(settings: Settings) -> None:
    document = create_app(settings).openapi()
    agent_field = document["components"]["schemas"]["RunBody"]["properties"]["agent"]
    session = {p["name"]: p for p in document["paths"]["/v1/session"]["get"]["parameters"]}["agent"]
    assert agent_field["enum"] == session["schema"]["enum"] == list(AGENTS)
    for description in (agent_field["description"], session["description"]):
        assert "enum" in description and not HAND_LIST.search(description), description
    # the command line's help and the API's description come from the request's one field
    (agent,) = (f for f in request_fields() if f.name == "agent")
    assert agent.option.help == listed() and agent_field["description"] == agent.option.description


def _strings(path: Path) -> list[tuple[int, str]]:
    """The string constants of a module that are not docstrings (help texts, descriptions, messages)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_no_help_text_or_description_lists_agents_by_hand() -> None:
    found = [
        f"{path.relative_to(SRC)}:{line}: {text[:80]!r}"
        for path in sorted(SRC.rglob("*.py"))
        if "testing" not in path.relative_to(SRC).parts  # the mocks name the agents they stand for
        for line, text in _strings(path)
        if HAND_LIST.search(text)
    ]
    # the dashboard's pages and script, and the prompt templates: whole files
    pages = [
        path
        for path in sorted(SRC.rglob("*"))
        if path.suffix in (".html", ".js", ".txt") and "testing" not in path.relative_to(SRC).parts
    ]
    assert len(pages) > 20, pages  # 15 pages, a script, 12 templates
    found += [f"{p.relative_to(SRC)}: {m[0]!r}" for p in pages for m in HAND_LIST.finditer(p.read_text())]
    assert not found, "say baton.agents.listed() or the enum, not a list by hand:\n" + "\n".join(found)


def test_the_scan_finds_a_list_by_hand(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('"""claude, codex or gemini: prose."""\nHELP = "claude, codex, gemini"\n')
    assert _strings(module) == [(2, "claude, codex, gemini")]
    assert HAND_LIST.search("claude, codex, gemini") and HAND_LIST.search("gemini or copilot")
    assert not HAND_LIST.search("~/.claude, ~/.codex") and not HAND_LIST.search("claude_bin, codex_bin")


def test_every_built_in_agent_has_its_setting_and_its_columns_in_the_docs() -> None:
    """The docs' per-agent tables are prose (facts measured per CLI), tied to the registry by count."""
    fields = set(Settings.__dataclass_fields__)
    assert {f"{name}_bin" for name in BUILTIN} <= fields  # BATON_<AGENT>_BIN: where its CLI is found
    page = (SRC.parents[1] / "docs" / "agents.md").read_text()
    tables = [line for line in page.splitlines() if line.startswith("| |")]
    assert len(tables) == 2 and all(line.count("|") == len(BUILTIN) + 2 for line in tables), tables
    for name in BUILTIN:
        assert f"BATON_{name.upper()}_BIN" in page
