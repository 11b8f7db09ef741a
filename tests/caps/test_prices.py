"""The operator's model prices (``model_prices``): parsed into types once at load, refused whole when
any part is no price, matched by exact name or the longest ``prefix*``, and a turn's running cost from
the billed counts per model the gateway read (unknown when a model has no price)."""

from __future__ import annotations

import pytest

from baton.caps.prices import cost, price_of, turn_cost, unpriced
from baton.errors import BadInput
from baton.settings import ModelPrice, load_settings

PRICES = "claude-sonnet-4*=3/15/0.3/3.75, gpt-5*=1.25/10/0.125 ,claude-*=1/2,gpt-5-mini=0.25/2"


def _prices(text: str) -> tuple[ModelPrice, ...]:
    return load_settings(
        overrides={"home": "/nonexistent", "model_prices": text}, environ={}
    ).model_price_list


def test_model_prices_are_parsed_once_into_prices_per_million_tokens() -> None:
    settings = load_settings(environ={"BATON_HOME": "/nonexistent", "BATON_MODEL_PRICES": PRICES})
    found = settings.model_price_list
    assert found == (
        ModelPrice("claude-sonnet-4*", 3, 15, 0.3, 3.75),
        ModelPrice("gpt-5*", 1.25, 10, 0.125, None),
        ModelPrice("claude-*", 1, 2),
        ModelPrice("gpt-5-mini", 0.25, 2),
    )
    assert settings.model_price_list is found, "parsed once"
    assert _prices("") == () and _prices(" , ") == ()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("claude=3", "2 to 4 prices"),
        ("claude=1/2/3/4/5", "2 to 4 prices"),
        ("claude=abc/2", "'abc'"),
        ("claude=-1/2", "'-1'"),
        ("claude=1/nan", "'nan'"),
        ("claude=1/inf", "'inf'"),
        ("claude=1//2", "''"),
        ("claude=1/2e9", "'2e9'"),
        ("=1/2", "names no model"),
        ("claude", "names no model"),
        ("cl*ude=1/2", "names no model"),
        ("my model=1/2", "names no model"),
        ("a=1/2,a=3/4", "twice"),
    ],
)
def test_a_bad_price_is_refused_at_load_naming_the_setting(text: str, says: str) -> None:
    with pytest.raises(BadInput, match="model_prices") as refused:
        load_settings(overrides={"home": "/nonexistent", "model_prices": text}, environ={})
    assert says in str(refused.value)
    with pytest.raises(BadInput, match="model_prices"):
        load_settings(environ={"BATON_HOME": "/nonexistent", "BATON_MODEL_PRICES": text})


def test_an_exact_name_wins_then_the_longest_prefix() -> None:
    table = _prices(PRICES)
    assert price_of(table, "gpt-5-mini") == ModelPrice("gpt-5-mini", 0.25, 2)
    assert price_of(table, "gpt-5-mini-2025-08-07") == table[1], "only a prefix* matches a longer name"
    assert price_of(table, "claude-sonnet-4-5-20250929") == table[0]
    assert price_of(table, "claude-opus-4-1") == table[2]
    assert price_of(table, "gemini-2.5-pro") is None and price_of(table, "") is None
    assert price_of(_prices("*=1/2"), "anything") == ModelPrice("*", 1, 2)
    longest = price_of(_prices("claude-*=1/2,claude-sonnet-4*=3/15"), "claude-sonnet-4-5")
    assert longest is not None and longest.model == "claude-sonnet-4*"


def test_a_turns_cost_sums_each_models_counts_times_its_prices() -> None:
    table = _prices(PRICES)
    models = {
        "claude-sonnet-4-5": {"input_tokens": 1000, "output_tokens": 2000, "cache_read_tokens": 10_000,
                              "cache_write_tokens": 4000, "requests": 3},
        "gpt-5-2025-08-07": {"input_tokens": 1_000_000, "cache_read_tokens": 1_000_000},
        "claude-haiku-4-5": {"input_tokens": 500_000, "cache_write_tokens": 500_000},  # at the input's price
    }  # fmt: skip
    sonnet = (1000 * 3 + 2000 * 15 + 10_000 * 0.3 + 4000 * 3.75) / 1e6
    assert cost(table, models) == pytest.approx(sonnet + 1.25 + 0.125 + 1.0)
    assert cost(table, {}) == 0
    assert cost(table, {**models, "gemini-2.5-pro": {"input_tokens": 1}}) is None
    assert cost(table, {"": {"input_tokens": 1}}) is None, "a reply that named no model"
    assert unpriced(table, ["gemini-2.5-pro", "gpt-5", ""]) == ["gemini-2.5-pro", ""]


def test_a_turn_is_recorded_at_its_agents_cost_else_at_the_operators_prices() -> None:
    """Only Claude Code reports a cost: another agent's turn is recorded at the cost of its replies, so
    the USD caps count its turns too; with neither, it has none."""
    table = _prices(PRICES)
    read = {"gpt-5-codex": {"input_tokens": 400_000, "output_tokens": 100_000}}
    assert turn_cost(0.42, table, read) == 0.42, "the agent's own report wins"
    assert turn_cost(None, table, read) == pytest.approx(0.5 + 1.0)
    assert turn_cost(None, table, {}) is None and turn_cost(None, (), read) is None
    assert turn_cost(None, table, {"gemini-2.5-pro": {"input_tokens": 1}}) is None
