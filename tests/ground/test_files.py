"""files.py's private makers under the usual umask (022): what baton makes of its home is 0700, its
store and logs 0600, and what exists already keeps its mode."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from baton.files import create_private, make_private_dir, open_private_append

pytestmark = pytest.mark.usefixtures("umask_022")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_directory_made_on_the_way_is_0700(tmp_path: Path) -> None:
    make_private_dir(tmp_path / "a" / "home" / "logs")
    assert [mode(tmp_path / p) for p in ("a", "a/home", "a/home/logs")] == [0o700, 0o700, 0o700]
    make_private_dir(tmp_path / "a" / "home" / "logs")  # again: nothing to do, no error


def test_a_directory_that_exists_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    shared.chmod(0o750)
    make_private_dir(shared / "logs")
    assert (mode(shared), mode(shared / "logs")) == (0o750, 0o700)


def test_a_file_in_the_way_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "home").write_text("not a directory")
    with pytest.raises(FileExistsError):
        make_private_dir(tmp_path / "home")
    with pytest.raises((FileExistsError, NotADirectoryError)):
        make_private_dir(tmp_path / "home" / "logs")


def test_the_store_file_and_a_log_are_made_0600_and_an_old_ones_mode_is_kept(tmp_path: Path) -> None:
    store, log = tmp_path / "home" / "baton.db", tmp_path / "home" / "logs" / "r1.jsonl"
    create_private(store)
    with open_private_append(log) as out:
        out.write("one\n")
    with open_private_append(log) as out:  # appended, not truncated
        out.write("two\n")
    assert (mode(tmp_path / "home"), mode(store), mode(log.parent), mode(log)) == (0o700, 0o600, 0o700, 0o600)
    assert log.read_text() == "one\ntwo\n" and store.read_bytes() == b""
    old = tmp_path / "old.jsonl"
    old.write_text("kept\n")
    old.chmod(0o644)
    create_private(old)
    with open_private_append(old) as out:
        out.write("more\n")
    assert mode(old) == 0o644 and old.read_text() == "kept\nmore\n"


def test_the_writers_that_can_come_first_make_the_home_0700(tmp_path: Path) -> None:
    """An archive (a reset on a machine that never ran the key) and a file lock (a sweep, a sync) can be
    the first thing written to a home: they make it private too."""
    from baton.files import archive_path
    from baton.workspace.locks import file_lock

    archived = archive_path(tmp_path / "a", ("fake", "local/r", "t1"), "20261127T000000Z", suffix=".json")
    with file_lock(tmp_path / "b", "repo"):
        pass
    assert archived.parent.is_dir() and mode(tmp_path / "a") == 0o700 and mode(tmp_path / "b") == 0o700
