"""Migration 0006 (Cadenza credentials) on a fresh SQLite file and a fresh PostgreSQL schema: existing
users get distinct stable UUIDs (in place: nothing that references a user is touched), the two new
tables exist, the models match the migrated schema, and downgrade and upgrade again work."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from support import PG_URL, drop_pg_schema, new_pg_schema, postgres_available

from strongroom.db import Base
from strongroom.migrations import alembic_config, upgrade

REVISION = "0006"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    problem = postgres_available()
    if problem:
        pytest.skip(f"POSTGRESQL PASS NOT RUN: {PG_URL} does not answer ({problem})")
    schema, url = new_pg_schema()
    try:
        yield url
    finally:
        drop_pg_schema(schema)


def test_users_get_stable_uuids_and_credentials_tables_exist(empty_db):
    down = ScriptDirectory.from_config(alembic_config(empty_db)).get_revision(REVISION).down_revision
    upgrade(empty_db, down)
    engine = create_engine(empty_db)
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            for _ in range(3):
                user_id = conn.execute(text(
                    "INSERT INTO users (username, password_hash, is_admin, usage_level, created_at, updated_at) "
                    "VALUES (:u, 'x', false, 'basic', :now, :now) RETURNING id"),
                    {"u": f"u{uuid.uuid4().hex[:8]}", "now": now}).scalar_one()
                conn.execute(text(
                    "INSERT INTO api_keys (key_id, user_id, name, kind, scopes, ip_allowlist, enabled, hint, "
                    "created_at, updated_at) VALUES (:k, :u, 'k', 'bearer', '[\"read\"]', '[]', true, 'h', "
                    ":now, :now)"), {"k": str(uuid.uuid4()), "u": user_id, "now": now})
        upgrade(empty_db, REVISION)
        with engine.connect() as conn:
            ids = [uuid.UUID(str(v)) for v in conn.execute(text("SELECT public_id FROM users")).scalars()]
            assert len(ids) == len(set(ids)) == 3
            assert conn.execute(text("SELECT count(*) FROM api_keys")).scalar_one() == 3  # nothing cascaded
            tables = set(inspect(conn).get_table_names())
            assert {"exchange_credentials", "account_credentials"} <= tables
        upgrade(empty_db)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diff == [], diff

        command.downgrade(alembic_config(empty_db), down)
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            assert "exchange_credentials" not in tables and "account_credentials" not in tables
            assert "public_id" not in {c["name"] for c in inspect(conn).get_columns("users")}
            assert conn.execute(text("SELECT count(*) FROM api_keys")).scalar_one() == 3
        upgrade(empty_db)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(DISTINCT public_id) FROM users")).scalar_one() == 3
    finally:
        engine.dispose()
