"""OpenCode's database, where a conversation moved to another path needs one change: its directory.
OpenCode (1.18.33) keeps every conversation of a home in one SQLite database and binds each session to
the directory it was made in; loaded from another directory (a worktree of another ``BATON_HOME``) every
prompt fails (docs/agent-clis.md, "OpenCode"). :func:`rebind` points the session, the sessions it
spawned and its project at the new directory after a hydrate, treating the database, which came from the
agent's own home, as hostile.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from baton.errors import AgentError

TIMEOUT = 5.0  # seconds to wait for a lock: nothing else has the database open during a hydrate


def rebind(database: Path, session_id: str, directory: str) -> bool:
    """Point ``session_id`` (and the sessions with its old directory, its project's worktree and the
    project's directory list) at ``directory``; True when it changed anything, False when the session is
    already there or not in the database (the agent's load then tells). The history itself (messages
    and parts) names no directory OpenCode reads back.

    The database came from the agent's own home, so it is treated as hostile: no symlink is followed,
    its schema's functions are not trusted (``trusted_schema`` off: a trigger planted in it cannot call
    anything but plain SQL on the same database), and only parameterised updates are run. A database in
    another shape (another release of OpenCode) raises :class:`~baton.errors.AgentError`, which the
    hydrate turns into a lost conversation (a recap), never a wedged key."""
    if database.is_symlink() or not database.is_file():
        return False
    try:
        conn = sqlite3.connect(f"{database.absolute().as_uri()}?mode=rw", uri=True, timeout=TIMEOUT)
    except sqlite3.Error as exc:
        raise AgentError(f"cannot open OpenCode's database {database}: {exc}") from exc
    try:
        conn.execute("PRAGMA trusted_schema = OFF")
        with conn:
            row = conn.execute("SELECT directory FROM session WHERE id = ?", (session_id,)).fetchone()
            if row is None or row[0] == directory:
                return False
            old = row[0]
            conn.execute("UPDATE session SET directory = ? WHERE directory = ?", (directory, old))
            conn.execute("UPDATE project SET worktree = ? WHERE worktree = ?", (directory, old))
            conn.execute(
                "UPDATE OR REPLACE project_directory SET directory = ? WHERE directory = ?", (directory, old)
            )
        return True
    except sqlite3.Error as exc:
        raise AgentError(
            f"cannot move the OpenCode conversation {session_id} to {directory}: {exc} "
            "(another release of OpenCode?)"
        ) from exc
    finally:
        conn.close()
