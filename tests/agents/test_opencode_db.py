"""OpenCode's database rebound to a new worktree after a hydrate (:mod:`baton.agents.opencode_db`): the
session, the sessions it spawned and its project move; a link is not followed; a database of another
shape is a clear :class:`AgentError` (the hydrate then recovers, tests/sessions/test_portable.py proves
the rest with the real CLI)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from baton.agents.opencode_db import rebind
from baton.errors import AgentError

OLD, NEW = "/homes/a/worktrees/opencode/x/t1", "/homes/b/worktrees/opencode/x/t1"


def database(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE project (id TEXT PRIMARY KEY, worktree TEXT NOT NULL);
            CREATE TABLE project_directory (
                project_id TEXT, directory TEXT, PRIMARY KEY (project_id, directory)
            );
            CREATE TABLE session (
                id TEXT PRIMARY KEY, project_id TEXT, parent_id TEXT, directory TEXT NOT NULL
            );
            """
        )
        conn.execute("INSERT INTO project VALUES ('p', ?), ('global', '/')", (OLD,))
        conn.execute("INSERT INTO project_directory VALUES ('p', ?), ('p', ?)", (OLD, NEW))
        conn.execute(
            "INSERT INTO session VALUES ('ses_1', 'p', NULL, ?), ('ses_2', 'p', 'ses_1', ?)", (OLD, OLD)
        )
        conn.execute("INSERT INTO session VALUES ('ses_9', 'global', NULL, '/elsewhere')")
    conn.close()
    return path


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_a_session_and_its_project_move_to_the_new_worktree(tmp_path: Path) -> None:
    db = database(tmp_path / "opencode.db")
    assert rebind(db, "ses_1", NEW) is True
    assert rows(db, "SELECT id, directory FROM session ORDER BY id") == [
        ("ses_1", NEW),
        ("ses_2", NEW),  # the sessions it spawned
        ("ses_9", "/elsewhere"),
    ]
    assert rows(db, "SELECT id, worktree FROM project ORDER BY id") == [("global", "/"), ("p", NEW)]
    assert rows(db, "SELECT directory FROM project_directory") == [(NEW,)]
    assert rebind(db, "ses_1", NEW) is False, "already there: nothing to do"
    assert rebind(db, "ses_unknown", NEW) is False, "not there: the agent's load tells"


def test_a_link_is_not_followed(tmp_path: Path) -> None:
    target = database(tmp_path / "elsewhere.db")
    (tmp_path / "opencode.db").symlink_to(target)
    assert rebind(tmp_path / "opencode.db", "ses_1", NEW) is False
    assert rows(target, "SELECT directory FROM session WHERE id = 'ses_1'") == [(OLD,)]


@pytest.mark.parametrize("content", [b"not a database at all", b""])
def test_a_database_of_another_shape_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    db = tmp_path / "opencode.db"
    db.write_bytes(content)
    with pytest.raises(AgentError, match="cannot move the OpenCode conversation ses_1"):
        rebind(db, "ses_1", NEW)
