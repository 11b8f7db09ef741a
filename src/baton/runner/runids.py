"""Short run ids: what tables show and what every command accepts.

A run id is 12 hex digits of milliseconds then 8 random hex digits (``runner.new_run_id``), so ids
made the same hour share their first 8 characters: a prefix is a poor short form. The short form is
the random tail (:data:`SHORT` characters), widened to the full id in the rare case another run
shares that tail. A command accepts the full id, any prefix, or any tail; several matches are an
error that lists them, never a silent pick.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from baton.errors import BadInput, NotFound

if TYPE_CHECKING:
    from baton.models import RunRecord
    from baton.store.base import RunStore

SHORT = 8
SHOWN = 10  # candidates an "ambiguous" message lists


class Ambiguous(BadInput):
    """A short id that matches several runs (exit 2, like any bad input)."""


def short_ids(store: RunStore, ids: Iterable[str]) -> dict[str, str]:
    """Each id's short form: its tail, unless another stored run ends the same way."""
    shown: dict[str, str] = {}
    for run_id in ids:
        tail = run_id[-SHORT:]
        shown[run_id] = tail if store.find_run_ids(tail, limit=2) == [run_id] else run_id
    return shown


def short_id(store: RunStore, run_id: str) -> str:
    return short_ids(store, [run_id])[run_id]


def resolve_run(store: RunStore, fragment: str) -> RunRecord:
    """The one run ``fragment`` names (a full id, a prefix or a tail), or a clear error."""
    fragment = fragment.strip()
    record = store.get_run(fragment) if fragment else None
    if record is not None and record.id == fragment:
        return record
    ids = store.find_run_ids(fragment, limit=SHOWN + 1) if fragment else []
    if not ids:
        raise NotFound(f"no run {fragment!r} (give a run id, a prefix of it or its last {SHORT} characters)")
    if len(ids) > 1:
        count = f"more than {SHOWN}" if len(ids) > SHOWN else str(len(ids))
        listed = ", ".join(ids[:SHOWN])
        raise Ambiguous(f"ambiguous: {count} runs match {fragment!r}: {listed}")
    found = store.get_run(ids[0])
    if found is None:  # deleted between the two reads
        raise NotFound(f"no run {fragment!r}")
    return found
