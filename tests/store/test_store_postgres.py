"""What only the PostgreSQL store has: its URL spellings, connection failures as clear errors that name
the URL without its password, machines migrating one database at once (under an advisory lock),
connections the server dropped being replaced; and `baton` itself on PostgreSQL."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from baton.errors import StoreError
from baton.store import SQLStore, open_store
from baton.store.engine import migrate
from baton.store.migrations import MIGRATIONS
from baton.testing.fake_agent import VERSION as FAKE_VERSION
from tests.store_contract import count, make_session, race

LATEST = MIGRATIONS[-1][0]
Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "postgresql", "postgres"])
def test_every_spelling_of_a_postgresql_url_opens_the_store(pg_url: str, scheme: str) -> None:
    store = open_store(scheme + pg_url[pg_url.index("://") :])
    try:
        assert isinstance(store, SQLStore) and store.dialect == "postgresql"
        assert store.schema_version() == LATEST == store.migrate()
        store.save_session(make_session())
        assert store.get_session("fake", "github.com/acme/api", "issue-1") == make_session()
    finally:
        store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def refused(url: str) -> str:
    with pytest.raises(StoreError) as caught:
        open_store(url)
    return str(caught.value)


def test_a_server_that_does_not_answer_is_a_store_error_naming_the_url() -> None:
    port = free_port()
    message = refused(f"postgresql://baton:s3cret@127.0.0.1:{port}/baton")
    assert f"cannot reach the store at postgresql+psycopg://baton:***@127.0.0.1:{port}/baton" in message
    assert "Connection refused" in message and "is PostgreSQL running there?" in message
    assert "s3cret" not in message and "\n" not in message


def test_an_unknown_database_or_user_is_a_store_error_saying_what_to_fix(pg_admin: sa.Engine) -> None:
    server = pg_admin.url
    missing = server.set(database="baton_no_such_database", password="s3cret")
    message = refused(missing.render_as_string(hide_password=False))
    assert 'database "baton_no_such_database" does not exist' in message
    assert "create the database or correct the URL" in message
    assert missing.render_as_string(hide_password=True) in message and "s3cret" not in message
    stranger = server.set(username="baton_no_such_user", password="s3cret")
    message = refused(stranger.render_as_string(hide_password=False))
    assert "baton_no_such_user" in message and "check the user and password" in message
    assert "s3cret" not in message


def test_a_driver_that_is_not_installed_is_a_store_error() -> None:
    message = refused("postgresql+pg8000://baton:s3cret@127.0.0.1/baton")
    assert "cannot open the store at postgresql+pg8000://baton:***@127.0.0.1/baton" in message
    assert "pg8000" in message and "s3cret" not in message


def test_machines_migrating_one_empty_database_at_once_migrate_it_once(pg_url: str) -> None:
    engines = [sa.create_engine(pg_url) for _ in range(4)]  # as four machines: four pools
    try:
        results = race(4, lambda i: migrate(engines[i]))
        assert results == [None] * 4, results
        with engines[0].connect() as conn:
            versions = [v for (v,) in conn.execute(sa.text("SELECT version FROM schema_migrations"))]
        assert sorted(versions) == [v for v, _d, _s in MIGRATIONS]
    finally:
        for engine in engines:
            engine.dispose()


def test_connections_the_server_dropped_are_replaced(pg_store: SQLStore, pg_admin: sa.Engine) -> None:
    pg_store.save_session(make_session())
    name = sa.engine.make_url(pg_store.url).query["application_name"]
    with pg_admin.connect() as conn:  # as a server restart or an idle timeout would
        ended = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :n"
            ),
            {"n": name},
        ).scalar_one()
    assert ended >= 1
    assert pg_store.get_session("fake", "github.com/acme/api", "issue-1") == make_session()


def test_baton_runs_on_postgresql(cli: Cli, cli_here: Cli, src_repo: Path, pg_store: SQLStore) -> None:
    """The runner through the PostgreSQL store (``BATON_STORE_URL``): a turn, a resumed turn, and
    everything they recorded (runs, session, snapshot, lease and its token)."""
    env = {"BATON_STORE_URL": pg_store.url}
    turns = [cli("run", "-a", "fake", "-r", str(src_repo), "-t", "pg", "--json", p, env=env) for p in "ab"]
    first, second = (json.loads(turn.stdout) for turn in turns)
    assert (first["mode"], second["mode"]) == ("fresh", "resume"), [t.stderr for t in turns]
    assert second["session_id"] == first["session_id"] and second["outcome"] == "succeeded"
    runs = pg_store.list_runs(thread="pg")
    assert [r.id for r in runs] == [second["run_id"], first["run_id"]]
    assert [r.cli_version for r in runs] == [FAKE_VERSION] * 2  # what the fake's init event says
    assert second["cli_version"] == first["cli_version"] == FAKE_VERSION
    session = pg_store.get_session("fake", runs[0].repo, "pg")
    assert session is not None and session.agent_session_id == first["session_id"]
    snapshot = pg_store.get_snapshot("fake", runs[0].repo, "pg")
    assert snapshot is not None and all(pg_store.get_blob(d) for d in snapshot.digests())
    assert count(pg_store, "leases") == 2  # the key's and its branch's: released, each keeps its row
    listed = cli_here("sessions", "ls", "--json", env=env)
    assert [s["thread"] for s in json.loads(listed.stdout)] == ["pg"], listed.stderr


def test_baton_with_an_unreachable_store_says_where(cli: Cli, src_repo: Path) -> None:
    url = f"postgresql://baton:s3cret@127.0.0.1:{free_port()}/baton"
    result = cli("run", "-a", "fake", "-r", str(src_repo), "-t", "x", "hi", env={"BATON_STORE_URL": url})
    assert result.returncode != 0
    assert "cannot reach the store at postgresql+psycopg://baton:***@127.0.0.1" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout and "Traceback" not in result.stderr
