"""docs/configuration.md's settings table is generated from the settings' definitions
(``baton.settings``: each field's type, default and ``About``; ``ENV_ONLY``) by ``bench/settings_doc.py``;
these tests fail, with the diff and the command that fixes it, when the page and the code drift, and
when a setting is added without a meaning or a variable baton reads is documented nowhere."""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from baton.settings import CHOICES, ENV_ONLY, About, Settings, about, load_settings

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "settings_doc.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_doc", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["settings_doc"] = module  # dataclasses and typing look a module up by name
    spec.loader.exec_module(module)
    return module


doc = _load()


def _rows(page: str) -> dict[str, list[str]]:
    """The table's rows by setting name: its cells, unescaped."""
    found = {}
    for line in page.splitlines():
        if line.startswith("| `BATON_"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            found[cells[0].strip("`")] = cells
    return found


def test_the_page_holds_the_generated_table() -> None:
    page = doc.PAGE.read_text()
    wanted = doc.render(page)
    diff = "".join(difflib.unified_diff(page.splitlines(True), wanted.splitlines(True), "page", "generated"))
    assert wanted == page, f"docs/configuration.md's settings table is stale: run {doc.COMMAND}\n{diff}"


def test_every_setting_is_a_row_with_its_type_default_and_meaning() -> None:
    rows = _rows(doc.table())
    fields = [f for f in dataclasses.fields(Settings) if f.name != "extra"]
    in_order = [f"BATON_{f.name.upper()}" for f in fields]
    assert [name for name in rows if name in in_order] == in_order  # the dataclass's order
    for f in fields:
        _, kind, _, meaning = rows[f"BATON_{f.name.upper()}"]
        assert meaning == f.metadata["about"].meaning and meaning
        if f.name in CHOICES:  # the words load_settings takes, in its order
            *others, last = (f"`{c}`" for c in CHOICES[f.name])
            assert kind == f"{', '.join(others)} or {last}", kind
    for env in ENV_ONLY:
        assert rows[env.name][1] == "text (environment only)" and rows[env.name][3] == env.about.meaning
    # the defaults are the code's: a number as it is, a word as code, empty as a dash
    assert rows["BATON_TTL_DAYS"][1:3] == ["number", "30"]
    assert rows["BATON_RUN_PIDS"][1:3] == ["integer", "2048"]
    assert rows["BATON_MIN_FREE"][1:3] == ["size", "`100M`"]
    assert rows["BATON_DISK_QUOTA"][2] == "—"
    assert rows["BATON_SYNC"][1:3] == ["`off`, `merge` or `rebase`", "`off`"]
    assert rows["BATON_HOME"][1] == "path (environment only)"


def test_each_setting_of_todays_table_kept_its_row() -> None:
    """The rows the hand-written table had (the two git identity settings had one row together), but
    BATON_WARM's, retired with the warm server."""
    before = [
        *("HOME", "TTL_DAYS", "LEASE_TTL", "HEARTBEAT", "RETRY_BACKOFF", "KILL_GRACE", "RUN_TIMEOUT"),
        *("IDLE_TIMEOUT", "UNREACHABLE_GRACE", "ON_LIMIT", "QUOTA_WAIT", "QUOTA_MAX_WAIT", "MIN_FREE"),
        *("STORE_URL", "SYNC", "ON_CONFLICT", "CLOSED_GRACE_DAYS", "DISK_QUOTA", "KEY_DISK", "RUN_MEMORY"),
        *("RUN_PIDS", "RUN_CPU", "CGROUPS", "PRUNE_KINDS", "FORGE_RECONCILE", "PUBLIC_URL", "CLAUDE_BIN"),
        *("CODEX_BIN", "GEMINI_BIN", "COPILOT_BIN", "OPENCODE_BIN", "GEMINI_MODEL", "GIT_USER_NAME"),
        *("GIT_USER_EMAIL", "GIT_TOKEN", "GIT_USERNAME", "AGENTS_EXTRA", "ACCESS", "REFLINK"),
        *("CONFINE", "AGENT_ENV", "AGENT_PORTS", "MOUNT_NS", "SHARED_CACHES", "LOG_LEVEL", "LOG_FORMAT"),
    ]
    rows = _rows(doc.table())
    assert {f"BATON_{name}" for name in before} <= set(rows)
    assert len(rows) == len(dataclasses.fields(Settings)) - 1 + len(ENV_ONLY)


def test_a_changed_default_changes_the_table() -> None:
    @dataclasses.dataclass(frozen=True)
    class Later(Settings):
        ttl_days: float = dataclasses.field(default=45.5, metadata=about("a session expires this long after"))

    assert _rows(doc.table(Later))["BATON_TTL_DAYS"][1:] == [
        "number",
        "45.5",
        "a session expires this long after",
    ]
    # and the page, rendered from it, is no longer the one in the repository
    assert doc.render(doc.PAGE.read_text(), Later) != doc.PAGE.read_text()


def test_a_setting_without_a_meaning_or_with_a_default_in_words_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Bare(Settings):
        new_knob: float = 1.0

    with pytest.raises(ValueError, match="setting new_knob has no meaning: give it metadata=about"):
        doc.table(Bare)

    @dataclasses.dataclass(frozen=True)
    class Hidden(Settings):
        new_knob: float = dataclasses.field(default=1.0, metadata=about("x", default="about one"))

    with pytest.raises(ValueError, match=r"a default said in words .* hides 1\.0"):
        doc.table(Hidden)


def test_a_meaning_with_a_bar_stays_in_its_cell() -> None:
    line = doc.row("BATON_X", "text", "—", About("`a|b` or c"))
    assert line == "| `BATON_X` | text | — | `a\\|b` or c |" and _rows(line)["BATON_X"][3] == "`a|b` or c"


def test_the_check_says_what_drifted_and_the_command_that_fixes_it(tmp_path: Path) -> None:
    page = tmp_path / "configuration.md"
    page.write_text(doc.PAGE.read_text().replace("| 3600 |", "| 1800 |"))
    command = [sys.executable, str(SCRIPT), "--check", "--page", str(page)]
    stale = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert stale.returncode == 1, stale.stderr
    assert "-| `BATON_RUN_TIMEOUT` | number | 1800 |" in stale.stdout
    assert "+| `BATON_RUN_TIMEOUT` | number | 3600 |" in stale.stdout
    assert f"is stale: run {doc.COMMAND}" in stale.stdout
    fixed = subprocess.run([*command[:2], "--page", str(page)], capture_output=True, text=True, timeout=60)
    assert fixed.returncode == 0 and page.read_text() == doc.PAGE.read_text()
    assert subprocess.run(command, capture_output=True, timeout=60).returncode == 0


def test_a_page_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match=r"no .* block for the table"):
        doc.render("# Configuration\n\n| setting | default | meaning |\n")


# Variables baton sets for others or reads for its own tests, not settings: the run's tag of the agent's
# processes, the agent's key, its services' ports (docs/environment.md), the gateway's base URL (for the
# walls), the fake forge's node_modules.
NOT_SETTINGS = {
    "BATON_RUN_ID",
    "BATON_KEY",
    "BATON_SERVICE_PORTS",
    "BATON_NODE_MODULES",
    "BATON_GATEWAY_BASE_URL",
}


def test_every_variable_baton_reads_is_documented() -> None:
    """A ``"BATON_..."`` string in the code (outside baton.testing) is a row of the table."""
    named = set()
    for path in (ROOT / "src" / "baton").rglob("*.py"):
        if "testing" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                named |= set(re.findall(r"^BATON_[A-Z_]+$", node.value))
    assert named, "the scan found nothing"
    assert named - NOT_SETTINGS <= set(_rows(doc.table())), sorted(
        named - NOT_SETTINGS - set(_rows(doc.table()))
    )


def test_the_choices_are_what_load_settings_takes(tmp_path: Path) -> None:
    for name, choices in CHOICES.items():
        for choice in choices:
            assert getattr(load_settings({"home": tmp_path, name: choice}, environ={}), name) == choice
        with pytest.raises(Exception, match=f"setting '{name}' must be one of {', '.join(choices)}"):
            load_settings({"home": tmp_path, name: "nonsense"}, environ={})
