"""Whether the warm server is off is one rule (baton.cli.warm.off), asked by the client before it hands a
command over, by ``baton run`` before it starts a server and by a server's child after each command.
The processes acting on it are proven in tests/test_cli_warm.py (BATON_WARM=off runs here; warm = "off"
in config.toml stops a running server after the run it serves, and starts none)."""

from __future__ import annotations

import pytest

from baton.cli import warm


@pytest.mark.parametrize(
    ("env", "setting", "is_off"),
    [
        ({"BATON_WARM": "off"}, None, True),  # the client's fast path: the environment alone
        ({"BATON_WARM": "auto"}, None, False),
        ({}, None, False),  # auto by default
        ({"BATON_WARM": "OFF"}, None, False),  # as the settings, which refuse anything but auto and off
        ({}, "off", True),  # the settings (config.toml) when the caller has them
        ({"BATON_WARM": "off"}, "auto", False),  # the settings already weighed the environment
    ],
)
def test_off_is_one_rule(env: dict[str, str], setting: str | None, is_off: bool) -> None:
    assert warm.off(env, setting) is is_off


def test_the_client_hands_nothing_over_when_the_environment_says_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATON_WARM", "off")
    monkeypatch.setattr(warm, "connect", lambda _address: pytest.fail("a server was asked"))
    assert warm.hand_over(["run", "--help"]) == warm.OFF
