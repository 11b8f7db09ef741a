"""Hostile caps everywhere a cap is set — the settings (config.toml, BATON_*), a run's request, a forge
repository's table, a new token — are refused with an error naming the key, before anything is written."""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from baton.agents import AGENTS
from baton.caps.model import Caps
from baton.errors import BadInput
from baton.forge.kinds.configured import load_forges
from baton.runner.request import RunRequest
from baton.runner.resolve import validate
from baton.settings import load_settings

Cli = Callable[..., subprocess.CompletedProcess[str]]
FORGE = '[forge.github]\nuser = "baton-bot"\n\n[repo."acme/api"]\n'


@pytest.mark.parametrize("name", ["max_usd", "max_minutes", "repo_max_usd", "max_tokens", "repo_max_turns"])
@pytest.mark.parametrize("value", ["-1", "nan", "inf", "1e309", "1e16", "+abc", "5$"])
def test_a_hostile_cap_setting_is_refused_naming_it(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(BadInput, match=name):
        load_settings(overrides={"home": str(tmp_path)}, environ={f"BATON_{name.upper()}": value})


def test_cap_settings_are_read_from_the_file_and_the_environment(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("max_usd = 5.5\nrepo_max_turns = 40\n")
    settings = load_settings(overrides={"home": str(tmp_path)}, environ={"BATON_MAX_TURNS": "3"})
    assert (settings.max_usd, settings.max_turns, settings.repo_max_turns, settings.max_tokens) == (
        5.5,
        3,
        40,
        0,
    )


@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf, 2e9])
def test_a_runs_hostile_cap_is_refused_before_anything_is_written(tmp_path: Path, value: float) -> None:
    request = RunRequest(agent="fake", repo=str(tmp_path), thread="t1", prompt="p", max_usd=value)
    with pytest.raises(BadInput, match="max_usd must be"):
        validate(request)


@pytest.mark.parametrize("value", ["-1", "nan", "inf", '"5"', "true", "[1]", "1e16", "2.5"])
def test_a_forge_repos_hostile_cap_is_refused_naming_the_key(tmp_path: Path, value: str) -> None:
    (tmp_path / "config.toml").write_text(FORGE + f"max_turns = {value}\n")
    with pytest.raises(BadInput, match=r'repo\."acme/api"\.max_turns'):
        load_forges(tmp_path, environ={}, agents=AGENTS)


def test_a_forge_repos_caps_are_each_threads(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(FORGE + "max_usd = 5\nmax_turns = 0\n")
    repo = load_forges(tmp_path, environ={}, agents=AGENTS).repo("github", "acme/api")
    assert repo is not None and repo.caps == Caps(usd=5.0)
    assert repo.caps.as_fields() == {
        "max_usd": 5.0,
        "max_tokens": None,
        "max_minutes": None,
        "max_turns": None,
    }


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e309"])
def test_a_hostile_token_cap_creates_no_token(cli_here: Cli, home: Path, value: str) -> None:
    done = cli_here("tokens", "create", "-n", "ci", "--scope", "run", "--max-usd", value)
    assert done.returncode == 2 and "--max-usd must be" in done.stderr, done.stderr
    assert "ci" not in cli_here("tokens", "ls", "--json").stdout


def test_a_tokens_caps_are_stored_with_it(cli_here: Cli, home: Path) -> None:
    done = cli_here("tokens", "create", "-n", "ci", "--scope", "run", "--max-usd", "50", "--max-turns", "10")
    assert done.returncode == 0, done.stderr
    shown = json.loads(cli_here("budget", "--token", "ci", "--json").stdout)
    assert {c["measure"]: c["limit"] for c in shown["caps"]} == {
        "usd": 50.0,
        "tokens": None,
        "minutes": None,
        "turns": 10.0,
    }
