"""The schema is stated once (``baton.store.schema``) and built by the append-only migrations: an
empty database, SQLite or PostgreSQL, migrated to the latest version holds exactly the tables, columns
(type family, nullability), primary keys, indexes and unique constraints that the ``Table`` objects
describe."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

import baton.caps.tables
import baton.forge.data.tables
import baton.plans.tables
import baton.service.tables
import baton.sessions.tables  # noqa: F401
from baton.store.migrations import MIGRATIONS
from baton.store.schema import metadata
from baton.store.sql import SQLStore


def described(table: sa.Table) -> dict[str, Any]:
    pk = {c.name for c in table.primary_key.columns}
    return {
        "columns": {c.name: (c.type._type_affinity, c.nullable or c.name in pk) for c in table.columns},
        "pk": sorted(pk),
        "indexes": sorted(
            (i.name, tuple(getattr(e, "name", str(e).split()[0]) for e in i.expressions), bool(i.unique))
            for i in table.indexes
        ),
        "unique": sorted(
            tuple(c.name for c in u.columns) for u in table.constraints if isinstance(u, sa.UniqueConstraint)
        ),
    }


def reflected(inspector: Any, name: str) -> dict[str, Any]:
    pk = inspector.get_pk_constraint(name)["constrained_columns"]
    columns = inspector.get_columns(name)
    return {
        "columns": {c["name"]: (c["type"]._type_affinity, c["nullable"] or c["name"] in pk) for c in columns},
        "pk": sorted(pk),
        "indexes": sorted(
            (i["name"], tuple(i["column_names"]), bool(i["unique"]))
            for i in inspector.get_indexes(name)
            if "duplicates_constraint" not in i  # PostgreSQL: the index behind a UNIQUE constraint
        ),
        "unique": sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)),
    }


def check_matches(engine: sa.Engine) -> None:
    inspector = sa.inspect(engine)
    tables = set(inspector.get_table_names()) - {"schema_migrations"}
    assert tables == set(metadata.tables)
    for name, table in metadata.tables.items():
        assert reflected(inspector, name) == described(table), name


def test_the_migrations_build_exactly_the_schema(store_url: str) -> None:
    """On SQLite and on PostgreSQL (``{real}`` is DOUBLE PRECISION there, ``{blob}`` BYTEA and
    ``{serial_pk}`` BIGSERIAL: the same type families as the tables)."""
    store = SQLStore(store_url)
    try:
        check_matches(store.engine)
        with store.engine.connect() as conn:
            versions = [v for (v,) in conn.execute(sa.text("SELECT version FROM schema_migrations"))]
        assert sorted(versions) == [v for v, _d, _s in MIGRATIONS]
    finally:
        store.close()


def test_the_check_sees_a_difference(store_url: str) -> None:
    """The check can fail: a column the tables do not describe, or a missing index."""
    store = SQLStore(store_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE leases ADD COLUMN extra TEXT"))
        with pytest.raises(AssertionError, match="leases"):
            check_matches(store.engine)
        with store.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE leases DROP COLUMN extra"))
            conn.execute(sa.text("DROP INDEX runs_started"))
        with pytest.raises(AssertionError, match="runs"):
            check_matches(store.engine)
    finally:
        store.close()


def test_migration_versions_are_ordered_and_unique() -> None:
    versions = [v for v, _d, _s in MIGRATIONS]
    assert versions == sorted(set(versions)) == list(range(1, len(versions) + 1))
