"""What a running turn has cost, priced by the operator (``model_prices``: baton keeps no table of its
own, prices change): each model's tokens, as baton's model gateway read its replies, times the price of
that model (:func:`price_of`: its exact name, else the longest ``prefix*`` that matches). A reply of a
model with no price leaves the turn's cost unknown (None), and its USD caps are held at its end, from
the cost its agent reports (:mod:`baton.caps.check`); a turn whose agent reports none is recorded at
this cost (:func:`turn_cost`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from baton.settings import ModelPrice

PER = 1_000_000  # prices are per million tokens


def price_of(prices: Iterable[ModelPrice], model: str) -> ModelPrice | None:
    """The price of ``model``: the entry naming it exactly, else the longest ``prefix*`` it starts with."""
    best: ModelPrice | None = None
    for found in prices:
        if found.model == model:
            return found
        prefix = found.model.removesuffix("*")
        longer = best is None or len(prefix) > len(best.model) - 1
        if found.model.endswith("*") and model and model.startswith(prefix) and longer:
            best = found
    return best


def cost(prices: Iterable[ModelPrice], models: Mapping[str, Mapping[str, int]]) -> float | None:
    """USD of the replies, per model as they bill (input not read from a cache, output, cache reads,
    cache writes: :meth:`baton.sandbox.wire.Meter.billed`); None when a model has no price (or a reply
    named none)."""
    table = tuple(prices)
    total = 0.0
    for model, counts in models.items():
        price = price_of(table, model)
        if price is None:
            return None
        total += _of(price, counts)
    return total


def turn_cost(
    reported: float | None, prices: Iterable[ModelPrice], models: Mapping[str, Mapping[str, int]]
) -> float | None:
    """A turn's recorded cost: its agent's own report, else (only Claude Code reports one) its replies'
    cost at the operator's prices, so that a USD cap counts the turns of every agent; None when
    neither says (no reply read on the wire, or a model with no price)."""
    if reported is not None or not models:
        return reported
    return cost(prices, models)


def unpriced(prices: Iterable[ModelPrice], models: Iterable[str]) -> list[str]:
    """The models with no price, in order (``""``: a reply that named no model)."""
    table = tuple(prices)
    return [model for model in models if price_of(table, model) is None]


def _of(price: ModelPrice, counts: Mapping[str, int]) -> float:
    read = price.input if price.cache_read is None else price.cache_read
    write = price.input if price.cache_write is None else price.cache_write
    usd = counts.get("input_tokens", 0) * price.input + counts.get("output_tokens", 0) * price.output
    usd += counts.get("cache_read_tokens", 0) * read + counts.get("cache_write_tokens", 0) * write
    return usd / PER
