"""The digest kept with the marks (:mod:`baton.sessions.digest`): a file up to FULL bytes is hashed
whole, so any change is found; a longer one is sampled, and the sample sees a change in one of its
blocks but not one wholly between them, unless its ctime moved (then it is hashed whole)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from baton.sessions import digest
from baton.sessions.chunking import CHUNK, chunks


def write(path: Path, data: bytes) -> list[int]:
    path.write_bytes(data)
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def damage(path: Path, at: int, data: bytes) -> None:
    """Bytes written in place, the mtime set back: only the ctime tells. The kernel stamps a ctime
    from a clock that moves once a tick (and less often on a loaded virtual machine), so the write is
    repeated until the ctime has moved, as it would have between a turn's end and the next resume."""
    before = os.stat(path)
    for _ in range(500):
        with path.open("r+b") as fh:
            fh.seek(at)
            fh.write(data)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        if os.stat(path).st_ctime_ns != before.st_ctime_ns:
            return
        time.sleep(0.01)
    raise AssertionError("the ctime did not move in five seconds")


def kept(path: Path) -> dict[str, object]:
    seen = digest.take(path.parent, path.name)
    assert seen is not None
    return seen.to_json()


def test_a_small_file_is_hashed_whole(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    marked = write(path, b'{"n": 1}\n' * 100_000)
    was = kept(path)
    assert was["sample"] is None and digest.check(tmp_path, "t.jsonl", marked, was) is None
    damage(path, 450_000, b"X")
    assert digest.check(tmp_path, "t.jsonl", marked, was) == "its bytes differ"


def test_a_long_file_is_sampled(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    size = digest.FULL + 5 * digest.BLOCK + 123
    marked = write(path, os.urandom(size))
    was = kept(path)
    assert str(was["sample"]).startswith(f"{digest.SAMPLE}:")
    assert digest.check(tmp_path, "t.jsonl", marked, was) is None
    offsets = digest.offsets(size)
    assert offsets[0] == 0 and offsets[-1] == size - digest.BLOCK and len(offsets) == digest.BLOCKS

    between = offsets[3] + digest.BLOCK + 10  # a byte no block covers
    assert between < offsets[4]
    damage(path, between, b"\xff")
    assert digest.check(tmp_path, "t.jsonl", marked, was) == "its bytes differ"  # the ctime moved: whole
    # what the sample cannot see: the same damage where the ctime did not move (bit rot under the
    # filesystem), shown by keeping the ctime the file has now
    blind = {**was, "ctime": os.stat(path).st_ctime_ns}
    assert digest.check(tmp_path, "t.jsonl", marked, blind) is None

    damage(path, offsets[7] + 5, b"\xff")  # inside a block: the sample sees it, whatever the ctime
    assert digest.check(tmp_path, "t.jsonl", marked, blind) == "its sampled blocks differ"


def test_the_whole_digest_is_the_snapshots_own(tmp_path: Path) -> None:
    """The digest of a whole file comes from its chunks' digests, as a snapshot lists them: a mark
    tells whether a snapshot holds the bytes it saw without reading the snapshot."""
    data = b"".join(b'{"n": %d, "pad": "%s"}\n' % (i, b"x" * 300) for i in range(3000))
    assert len(chunks(data)) > 2 and len(data) > 2 * CHUNK
    path = tmp_path / "t.jsonl"
    path.write_bytes(data)
    listed = [hashlib.sha256(chunk).hexdigest() for chunk in chunks(data)]
    assert kept(path)["whole"] == digest.root(listed)
    assert kept(path)["whole"] != digest.root(listed[:-1])


def test_what_cannot_be_told_is_trusted(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    marked = write(path, b"{}\n" * 10)
    assert digest.check(tmp_path, "t.jsonl", marked, None) is None  # marked by an older baton
    assert digest.check(tmp_path, "t.jsonl", marked, {"sample": None}) is None
    was = kept(path)
    path.unlink()
    assert digest.check(tmp_path, "t.jsonl", marked, was) is None  # gone: the stat judges
    os.symlink(tmp_path / "elsewhere", path)
    assert digest.take(tmp_path, "t.jsonl") is None  # a link is not read
