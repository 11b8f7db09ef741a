"""How a transcript is cut into the chunks a snapshot stores (:mod:`baton.sessions.snapshots`) and a
mark checks (:mod:`baton.sessions.marks`)."""

from __future__ import annotations

CHUNK = 256 * 1024


def chunks(data: bytes) -> list[memoryview]:
    """Split at the first newline after every 256 KiB. Transcripts are append-mostly JSONL, so every
    chunk but the last stays byte-identical from turn to turn and is stored once. Views of ``data``,
    not copies: a long transcript is hashed whole every turn, and copied only where it is new."""
    out: list[memoryview] = []
    view = memoryview(data)
    start = 0
    while start < len(data):
        cut = data.find(b"\n", start + CHUNK)
        end = len(data) if cut < 0 else cut + 1
        out.append(view[start:end])
        start = end
    return out
