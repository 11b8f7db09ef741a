"""The caps' values: what is measured (:class:`Measure`), whose spend (:class:`Scope`), a set of caps
(:class:`Caps`, 0 or None: no cap), a cap that was reached (:class:`Reached`, with its question for
``runs.question``), and the strict readers of a cap and of a raise (``+5``), which refuse anything but a
finite, non-negative number in range before anything is written.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from baton.errors import BadInput


class Measure(StrEnum):
    """What a cap counts."""

    USD = "usd"  # the cost of its turns (runs.cost_usd: the agent's report, else at model_prices)
    TOKENS = "tokens"  # input + output tokens, as runs record them in usage
    MINUTES = "minutes"  # the turns' wall-clock time
    TURNS = "turns"  # turns whose agent started


class Scope(StrEnum):
    """Whose spend a cap holds."""

    THREAD = "thread"  # one key (agent, repo, thread); its subject: agent:repo:thread
    REPO = "repo"  # every key of one repository; its subject: the repo's slug
    TOKEN = "token"  # every run an API token submitted; its subject: the token's name


# the largest cap or raise taken: past these it is a typo, and float sums stay exact enough
MAXIMA = {Measure.USD: 1e9, Measure.TOKENS: 1e15, Measure.MINUTES: 1e9, Measure.TURNS: 1e9}
WHOLE = (Measure.TOKENS, Measure.TURNS)  # counted in whole numbers
RUN_CAPS = "run_caps"  # a parked run's question's key for the thread caps its request carried
NAMES = {m: f"max_{m.value}" for m in Measure}  # the setting, request field and config key of each


@dataclass(frozen=True)
class Caps:
    """One scope's caps; None (or 0, as settings say it) is no cap."""

    usd: float | None = None
    tokens: float | None = None
    minutes: float | None = None
    turns: float | None = None

    def get(self, measure: Measure) -> float | None:
        value: float | None = getattr(self, measure.value)
        return value or None

    def set(self) -> list[tuple[Measure, float]]:
        """The caps that are set, in the order of :class:`Measure`."""
        return [(m, v) for m in Measure if (v := self.get(m)) is not None]

    def tightest(self, other: Caps) -> Caps:
        """Each measure's smaller cap of the two (a run's own cap can only narrow the settings')."""
        values = {}
        for m in Measure:
            mine, theirs = self.get(m), other.get(m)
            values[m.value] = min(mine, theirs) if mine is not None and theirs is not None else mine or theirs
        return Caps(**values)

    def to_json(self) -> dict[str, float]:
        return {m.value: v for m, v in self.set()}

    def as_fields(self) -> dict[str, Any]:
        """The caps as a run request's fields (``max_usd``, ...; tokens and turns whole numbers)."""
        return {
            NAMES[m]: None if v is None else int(v) if m in WHOLE else v
            for m in Measure
            for v in [self.get(m)]
        }

    @classmethod
    def from_json(cls, data: Any) -> Caps:
        if not isinstance(data, dict):
            return cls()
        return cls(**{m.value: check_cap(m, data[m.value]) for m in Measure if m.value in data})


def check_cap(measure: Measure, value: Any, what: str | None = None) -> float | None:
    """A cap as a number (None: no cap, for None or 0); BadInput naming ``what`` for anything but a
    finite number from 0 to the measure's maximum (whole for tokens and turns)."""
    name = what or NAMES[measure]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput(f"{name} must be a number, not {value!r}")
    _in_range(measure, float(value), name, allow_zero=True)
    return float(value) or None


_RAISE = re.compile(r"\+?(\d{1,16}(?:\.\d{1,6})?)")


def parse_raise(measure: Measure, text: str | float, what: str | None = None) -> float:
    """A raise: ``+5``, ``5`` or ``2.5`` (tokens and turns whole), more than 0 and at most the measure's
    maximum; BadInput for a negative, NaN, infinite, ``+abc`` or any other value."""
    name = what or f"the {measure.value} raise"
    if isinstance(text, bool):
        raise BadInput(f"{name} must be a number such as +5, not {text!r}")
    if isinstance(text, int | float):
        amount = float(text)
    else:
        match = _RAISE.fullmatch(text.strip()) if isinstance(text, str) and len(text) <= 40 else None
        if match is None:
            raise BadInput(f"{name} must be a number such as +5, not {str(text)[:40]!r}")
        amount = float(match.group(1))
    _in_range(measure, amount, name, allow_zero=False)
    return amount


def _in_range(measure: Measure, value: float, name: str, allow_zero: bool) -> None:
    top = MAXIMA[measure]
    low_ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and low_ok and value <= top):
        low = "0" if allow_zero else "more than 0"
        raise BadInput(f"{name} must be {low} to {top:g}, not {value!r}")
    if measure in WHOLE and value != int(value):
        raise BadInput(f"{name} counts {measure.value}: a whole number, not {value!r}")


def shown(measure: Measure, value: float) -> str:
    """An amount as people read it: ``$4.80``, ``120,000 tokens``, ``12.5 minutes``, ``3 turns``."""
    if measure == Measure.USD:  # cents, or the first digits of less than a cent
        return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.2g}"
    if measure == Measure.MINUTES:
        return f"{value:,.1f} minutes"
    unit = measure.value if value != 1 else measure.value.removesuffix("s")
    return f"{value:,.0f} {unit}"


def number(measure: Measure, value: float) -> str:
    """An amount as typed: ``5``, ``2.5``, ``100000``."""
    return f"{value:.0f}" if measure in WHOLE or value == int(value) else f"{value:g}"


def amount_word(measure: Measure, value: float) -> str:
    """A forge reply's raise: ``+5`` (USD), ``+5 turns``."""
    said = f"+{number(measure, value)}"
    return said if measure == Measure.USD else f"{said} {measure.value}"


@dataclass(frozen=True)
class Reached:
    """A cap a turn may not start past: whose, which, what was spent, and the cap with its raises."""

    scope: Scope
    subject: str  # agent:repo:thread, the repo's slug, or the token's name
    measure: Measure
    spent: float
    cap: float  # the configured cap plus its raises

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope.value,
            "subject": self.subject,
            "measure": self.measure.value,
            "spent": self.spent,
            "cap": self.cap,
        }

    @classmethod
    def from_json(cls, data: Any) -> Reached | None:
        """The reached cap a stored question carries, or None (an agent's question carries none)."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                Scope(data["scope"]),
                str(data["subject"]),
                Measure(data["measure"]),
                float(data["spent"]),
                float(data["cap"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


def thread_subject(agent: str, repo: str, thread: str) -> str:
    """A thread's subject: ``agent:repo:thread`` (a repo's slug holds no ``:``, nor does a thread)."""
    return f"{agent}:{repo}:{thread}"


def split_thread(subject: str) -> tuple[str, str, str]:
    agent, _, rest = subject.partition(":")
    repo, _, thread = rest.rpartition(":")
    return agent, repo, thread
