"""config.toml's one reader (:func:`baton.settings.read_config`): the settings, the forge loop and
pruning read the file through it, which parses one text once per process, sees every edit, hands
each caller a copy of its own, and names the file in every error (exit 2 on the CLI)."""

from __future__ import annotations

import os
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_args

import pytest

from baton import settings as settings_module
from baton.errors import BadInput
from baton.forge.kinds.configured import load_forges
from baton.housekeeping.prune import rules
from baton.settings import CHOICES, Settings, load_settings, read_config

CONFIG = """ttl_days = 3
reflink = "off"
[forge.github]
user = "baton-bot"
[repo."acme/api"]
agent = "claude"
[prune."github.com/acme/api"]
keep = [".venv"]
"""


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Each text tomllib parses from now on (the reader's memory of earlier parses forgotten)."""
    seen: list[str] = []
    real = tomllib.loads

    def counting(text: str, **kwargs: Any) -> dict[str, Any]:
        seen.append(text)
        return real(text, **kwargs)

    settings_module._parsed.cache_clear()
    monkeypatch.setattr(tomllib, "loads", counting)
    yield seen
    settings_module._parsed.cache_clear()


def _home(tmp_path: Path, text: str) -> Path:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(text)
    return home


def _all_three(home: Path) -> Settings:
    """What one command may do: its settings, the forges, the prune rules."""
    loaded = load_settings(environ={"BATON_HOME": str(home)})
    forges = load_forges(home, environ={}, agents=("claude",))
    assert forges.forges["github"].user == "baton-bot" and forges.repo("github", "acme/api") is not None
    assert ".venv" not in rules(loaded).of("github.com/acme/api")
    return loaded


def test_three_readers_parse_the_file_once(tmp_path: Path, parses: list[str]) -> None:
    home = _home(tmp_path, CONFIG)
    for _ in range(3):
        loaded = _all_three(home)
        assert loaded.ttl_days == 3.0 and loaded.reflink == "off"
    assert parses == [CONFIG], "one parse for three readers, three times over (was 9)"


def test_an_edit_is_seen_even_with_the_same_size_and_mtime(tmp_path: Path, parses: list[str]) -> None:
    home = _home(tmp_path, CONFIG)
    config = home / "config.toml"
    assert _all_three(home).ttl_days == 3.0
    before = config.stat()
    config.write_text(CONFIG.replace("ttl_days = 3", "ttl_days = 4"))
    os.utime(config, ns=(before.st_atime_ns, before.st_mtime_ns))  # a rewrite within one clock tick
    assert config.stat().st_size == before.st_size
    assert _all_three(home).ttl_days == 4.0
    assert len(parses) == 2


def test_each_caller_gets_its_own_copy(tmp_path: Path, parses: list[str]) -> None:
    config = _home(tmp_path, CONFIG) / "config.toml"
    first = read_config(config)
    first.table("forge")["github"]["user"] = "mallory"  # a caller that changes what it was given
    assert read_config(config).table("forge")["github"]["user"] == "baton-bot"
    assert len(parses) == 1


def test_a_missing_file_is_empty_and_never_parsed(tmp_path: Path, parses: list[str]) -> None:
    empty = read_config(tmp_path / "config.toml")
    assert dict(empty.data) == {} and empty.settings() == {} and empty.table("prune") == {}
    assert load_settings(environ={"BATON_HOME": str(tmp_path)}) == Settings(home=tmp_path)
    assert parses == []


def test_bad_toml_fails_each_time_naming_the_file(tmp_path: Path, parses: list[str]) -> None:
    home = _home(tmp_path, "ttl_days = = 3\n")
    for read in (
        lambda: load_settings(environ={"BATON_HOME": str(home)}),
        lambda: load_forges(home, environ={}),
        lambda: rules(Settings(home=home)),
    ):
        with pytest.raises(BadInput, match=rf"{home / 'config.toml'} is not valid TOML"):
            read()
    assert len(parses) == 3, "a failed parse is not remembered"


def test_a_file_that_is_not_utf8_is_named_not_a_traceback(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_bytes(b'ttl_days = 3\nqueue = "\xff"\n')
    with pytest.raises(BadInput, match=r"config\.toml cannot be read"):
        load_settings(environ={"BATON_HOME": str(home)})


def test_the_cli_names_a_bad_file_and_exits_2(
    cli: Callable[..., subprocess.CompletedProcess[str]], home: Path
) -> None:
    home.mkdir(parents=True, exist_ok=True)
    for command in (("sessions", "ls"), ("runs", "ls")):  # the fast path and the full CLI
        (home / "config.toml").write_text('reflink = "of"\n')
        result = cli(*command)
        assert result.returncode == 2, result.stderr
        assert "'reflink' must be one of auto, off, not 'of'" in result.stderr
        (home / "config.toml").write_bytes(b"\xfe\xff")
        result = cli(*command)
        assert result.returncode == 2 and "config.toml cannot be read" in result.stderr, result.stderr


def test_the_typed_switches_are_their_choices() -> None:
    aliases = {"AutoOff", "OnOff", "LogFormat"}
    typed = {f: t for f, t in Settings.__annotations__.items() if t in aliases}
    assert set(typed) == {
        "cgroups",
        "mount_ns",
        "net_ns",
        "reflink",
        "shared_caches",
        "log_format",
        "otel",
        "model_gateway",
    }
    for name, alias in typed.items():
        assert CHOICES[name] == get_args(getattr(settings_module, alias)), name


def test_a_retired_setting_in_the_file_is_ignored_not_refused(tmp_path: Path) -> None:
    """``warm = "off"`` was the documented way to turn the warm server off; the server is gone, and a
    file that still says so loads (the key ignored) instead of failing every command."""
    (tmp_path / "config.toml").write_text('warm = "off"\nttl_days = 7\n')
    assert load_settings(overrides={"home": str(tmp_path)}, environ={}).ttl_days == 7
