"""Settings: overrides > BATON_* environment > $BATON_HOME/config.toml > defaults, strictly parsed."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton.errors import BadInput
from baton.settings import Settings, load_settings


def _home(tmp_path: Path, config: str | None = None) -> Path:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    if config is not None:
        (home / "config.toml").write_text(config)
    return home


def test_defaults_with_no_config_and_no_environment(tmp_path: Path) -> None:
    home = _home(tmp_path)
    settings = load_settings(overrides={"home": str(home)}, environ={})
    assert settings == Settings(home=home)
    assert settings.ttl_days == 30.0
    assert settings.lease_ttl == 30.0
    assert settings.store_url == ""
    assert settings.db_path == home / "baton.db"
    assert settings.resolved_store_url == f"sqlite:///{home / 'baton.db'}"


def test_home_comes_from_baton_home_when_not_overridden(tmp_path: Path) -> None:
    home = _home(tmp_path)
    assert load_settings(environ={"BATON_HOME": str(home)}).home == home
    other = tmp_path / "other"
    assert load_settings(overrides={"home": str(other)}, environ={"BATON_HOME": str(home)}).home == other


def test_home_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(overrides={"home": "rel"}, environ={})
    assert settings.home.is_absolute()
    assert settings.home == tmp_path / "rel"


def test_precedence_overrides_then_env_then_config_then_defaults(tmp_path: Path) -> None:
    home = _home(tmp_path, 'ttl_days = 7\nlease_ttl = 11\nheartbeat = 2\nstore_url = "sqlite:////cfg.db"\n')
    environ = {"BATON_LEASE_TTL": "12", "BATON_HEARTBEAT": "3"}
    settings = load_settings(overrides={"home": str(home), "heartbeat": 4}, environ=environ)
    assert settings.ttl_days == 7.0  # config only
    assert settings.lease_ttl == 12.0  # env beats config
    assert settings.heartbeat == 4.0  # override beats env and config
    assert settings.store_url == "sqlite:////cfg.db"  # config
    assert settings.resolved_store_url == "sqlite:////cfg.db"
    assert settings.kill_grace == 3.0  # default


def test_config_file_is_read_from_the_home_named_by_the_environment(tmp_path: Path) -> None:
    home = _home(tmp_path, "ttl_days = 9\n")
    assert load_settings(environ={"BATON_HOME": str(home)}).ttl_days == 9.0


def test_none_overrides_and_empty_env_values_fall_through(tmp_path: Path) -> None:
    home = _home(tmp_path, "lease_ttl = 8\n")
    settings = load_settings(
        overrides={"home": str(home), "lease_ttl": None}, environ={"BATON_LEASE_TTL": ""}
    )
    assert settings.lease_ttl == 8.0


def test_string_settings_from_env(tmp_path: Path) -> None:
    home = _home(tmp_path)
    settings = load_settings(
        overrides={"home": str(home)},
        environ={
            "BATON_CLAUDE_BIN": "/opt/claude",
            "BATON_GIT_USER_NAME": "bot {agent}",
            "BATON_NOT_A_KEY": "x",
        },
    )
    assert settings.claude_bin == "/opt/claude"
    assert settings.git_user_name == "bot {agent}"


def test_unknown_config_key_is_an_error_naming_it(tmp_path: Path) -> None:
    home = _home(tmp_path, "ttl_dayz = 3\n")
    with pytest.raises(BadInput, match="unknown setting 'ttl_dayz'") as info:
        load_settings(overrides={"home": str(home)}, environ={})
    assert "config.toml" in str(info.value)


def test_unknown_override_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="unknown setting 'bogus'"):
        load_settings(overrides={"home": str(_home(tmp_path)), "bogus": 1}, environ={})


def test_invalid_toml_is_an_error_naming_the_file(tmp_path: Path) -> None:
    home = _home(tmp_path, "ttl_days = = 3\n")
    with pytest.raises(BadInput, match=r"config\.toml is not valid TOML"):
        load_settings(overrides={"home": str(home)}, environ={})


@pytest.mark.parametrize("value", ['"soon"', "-1", "true", "[1]"])
def test_bad_config_value_names_the_key_and_the_file(tmp_path: Path, value: str) -> None:
    home = _home(tmp_path, f"lease_ttl = {value}\n")
    with pytest.raises(BadInput, match="setting 'lease_ttl'") as info:
        load_settings(overrides={"home": str(home)}, environ={})
    assert "config.toml" in str(info.value)
    assert "non-negative number" in str(info.value)


@pytest.mark.parametrize("value", ["abc", "-5", "nan", "1e"])
def test_bad_env_value_names_the_variable(tmp_path: Path, value: str) -> None:
    with pytest.raises(BadInput, match=r"setting 'heartbeat' from \$BATON_HEARTBEAT"):
        load_settings(overrides={"home": str(_home(tmp_path))}, environ={"BATON_HEARTBEAT": value})


def test_bad_override_value_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="setting 'ttl_days' from the command line"):
        load_settings(overrides={"home": str(_home(tmp_path)), "ttl_days": "forever"}, environ={})


def test_string_setting_of_the_wrong_type_in_config_is_an_error(tmp_path: Path) -> None:
    home = _home(tmp_path, 'claude_bin = ["claude", "--x"]\n')
    with pytest.raises(BadInput, match=r"setting 'claude_bin'.*must be a string"):
        load_settings(overrides={"home": str(home)}, environ={})


def test_bad_value_in_config_is_reported_even_when_env_overrides_it(tmp_path: Path) -> None:
    # strict: a broken config file is never silently ignored
    home = _home(tmp_path, 'lease_ttl = "x"\n')
    with pytest.raises(BadInput, match="lease_ttl"):
        load_settings(overrides={"home": str(home)}, environ={"BATON_LEASE_TTL": "5"})


def test_numbers_accept_ints_and_numeric_strings(tmp_path: Path) -> None:
    home = _home(tmp_path, "ttl_days = 0\n")
    settings = load_settings(
        overrides={"home": str(home), "lease_ttl": "2.5"}, environ={"BATON_HEARTBEAT": "1"}
    )
    assert settings.ttl_days == 0.0
    assert settings.lease_ttl == 2.5
    assert settings.heartbeat == 1.0
    assert isinstance(settings.heartbeat, float)


def test_with_returns_a_changed_copy(tmp_path: Path) -> None:
    settings = load_settings(overrides={"home": str(_home(tmp_path))}, environ={})
    changed = settings.with_(lease_ttl=1.0)
    assert changed.lease_ttl == 1.0
    assert settings.lease_ttl == 30.0
    with pytest.raises(AttributeError):
        settings.lease_ttl = 2.0  # type: ignore[misc]


def test_sizes_and_whole_numbers_are_parsed_strictly(home: Path) -> None:
    from baton.settings import parse_size

    assert (
        parse_size("1073741824") == 2**30
        and parse_size("50G") == 50 * 2**30
        and parse_size("512MiB") == 2**29
    )
    settings = load_settings(
        environ={"BATON_HOME": str(home), "BATON_DISK_QUOTA": "2G", "BATON_CONCURRENCY": "8"}
    )
    assert settings.disk_quota_bytes == 2 * 2**30 and settings.concurrency == 8
    for name, bad in (("BATON_MIN_FREE", "lots"), ("BATON_CONCURRENCY", "2.5"), ("BATON_DISK_QUOTA", "-1G")):
        with pytest.raises(BadInput, match=name.removeprefix("BATON_").lower()):
            load_settings(environ={"BATON_HOME": str(home), name: bad})


def test_the_forge_and_repo_tables_are_skipped_and_nothing_else(tmp_path: Path) -> None:
    # baton.forge.data.config reads [forge.*] and [repo.*], as strictly; the flat keys stay strict here
    tables = '[forge.github]\nuser = "baton-bot"\n[repo."acme/api"]\nagent = "claude"\n'
    home = _home(tmp_path, "ttl_days = 3\n" + tables)
    assert load_settings(overrides={"home": str(home)}, environ={}).ttl_days == 3.0
    for text in ("ttl_dayz = 3\n" + tables, 'forge = "github"\n', "repo = 1\n", "[forges.github]\nx = 1\n"):
        _home(tmp_path, text)
        with pytest.raises(BadInput, match="unknown setting") as info:
            load_settings(overrides={"home": str(home)}, environ={})
        assert "config.toml" in str(info.value)
