"""Alembic migrations on a fresh SQLite file and a fresh PostgreSQL schema: 0002 adds the per-user
key counter (backfilled from the keys that exist) and the key version; 0003 the balance snapshots;
the models match the migrated schema; downgrade and upgrade again work; 0006 the Cadenza credentials."""

from __future__ import annotations

import json
import re
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


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request, tmp_path):
    """An empty database (nothing migrated yet)."""
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


def test_0002_backfills_the_key_counter_and_the_models_match(empty_db):
    upgrade(empty_db, "0001")
    engine = create_engine(empty_db)
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            ids = []
            for keys in (0, 1, 3):
                user_id = conn.execute(text(
                    "INSERT INTO users (username, password_hash, is_admin, usage_level, created_at, updated_at) "
                    "VALUES (:u, 'x', false, 'basic', :now, :now) RETURNING id"),
                    {"u": f"u{uuid.uuid4().hex[:8]}", "now": now}).scalar_one()
                ids.append((user_id, keys))
                for _ in range(keys):
                    conn.execute(text(
                        "INSERT INTO api_keys (key_id, user_id, name, kind, scopes, ip_allowlist, enabled, hint, "
                        "created_at, updated_at) VALUES (:k, :u, 'k', 'bearer', '[\"read\"]', '[]', true, 'h', "
                        ":now, :now)"), {"k": str(uuid.uuid4()), "u": user_id, "now": now})
        upgrade(empty_db)
        with engine.connect() as conn:
            for user_id, keys in ids:
                assert conn.execute(text("SELECT api_key_count FROM users WHERE id = :id"),
                                    {"id": user_id}).scalar_one() == keys
            assert set(conn.execute(text("SELECT version FROM api_keys")).scalars()) == {1}
            # the models describe exactly the migrated schema (nothing for autogenerate to add)
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diff == [], diff

        command.downgrade(alembic_config(empty_db), "0001")
        with engine.connect() as conn:
            assert "api_key_count" not in set(conn.execute(text("SELECT * FROM users")).keys())
            # nothing cascaded: the keys are all still there
            assert conn.execute(text("SELECT count(*) FROM api_keys")).scalar_one() == 4
        upgrade(empty_db)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT sum(api_key_count) FROM users")).scalar_one() == 4
    finally:
        engine.dispose()


def test_0003_balance_snapshots_round_trip_and_downgrade(empty_db):
    """0003 adds balance_snapshots: long decimal strings come back exactly; downgrading drops only that table."""
    upgrade(empty_db, "0002")
    engine = create_engine(empty_db)
    now = datetime.now(UTC)
    long_amount = "123456789012345678901234567890.123456789012345678"
    try:
        with engine.begin() as conn:
            user_id = conn.execute(text(
                "INSERT INTO users (username, password_hash, is_admin, usage_level, created_at, updated_at) "
                "VALUES (:u, 'x', false, 'basic', :now, :now) RETURNING id"),
                {"u": f"u{uuid.uuid4().hex[:8]}", "now": now}).scalar_one()
            account_id = conn.execute(text(
                "INSERT INTO exchange_accounts (public_id, user_id, exchange, name, account_type, status, ciphertext, "
                "nonce, wrapped_dek, kek_version, key_fingerprint, key_hint, created_at, updated_at) VALUES "
                "(:pid, :u, 'binance', 'a', 'spot', 'active', :b, :b, :b, 1, 'f', 'h', :now, :now) RETURNING id"),
                {"pid": uuid.uuid4().hex if empty_db.startswith("sqlite") else str(uuid.uuid4()), "u": user_id,
                 "b": b"x", "now": now}).scalar_one()
        upgrade(empty_db)
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO balance_snapshots (account_id, fetched_at, fetched_epoch, account_type, total_usd, "
                "total_btc, unpriced_assets, assets) VALUES (:a, :now, :epoch, 'spot', :amount, '0.5', 0, :assets)"),
                {"a": account_id, "now": now, "epoch": int(now.timestamp()), "amount": long_amount,
                 "assets": json.dumps([{"asset": "USDT", "total": long_amount}])})
        with engine.connect() as conn:
            row = conn.execute(text("SELECT total_usd, assets FROM balance_snapshots")).one()
            assert row.total_usd == long_amount and long_amount in str(row.assets)
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diff == [], diff
        command.downgrade(alembic_config(empty_db), "0002")
        with engine.connect() as conn:
            tables = set(conn.dialect.get_table_names(conn))
            assert "balance_snapshots" not in tables and "exchange_accounts" in tables
            assert conn.execute(text("SELECT count(*) FROM exchange_accounts")).scalar_one() == 1
        upgrade(empty_db)
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM balance_snapshots")).scalar_one() == 0
            # snapshots go with their account's user (ON DELETE CASCADE through exchange_accounts)
            conn.execute(text(
                "INSERT INTO balance_snapshots (account_id, fetched_at, fetched_epoch, account_type, total_usd, "
                "total_btc, unpriced_assets, assets) VALUES (:a, :now, 0, 'spot', '1', '0', 0, '[]')"),
                {"a": account_id, "now": now})
        with engine.begin() as conn:
            if empty_db.startswith("sqlite"):  # (strongroom's own engines turn it on for every connection)
                conn.execute(text("PRAGMA foreign_keys=ON"))
            conn.execute(text("DELETE FROM users WHERE id = :u"), {"u": user_id})
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM balance_snapshots")).scalar_one() == 0
    finally:
        engine.dispose()


# --- 0006: Cadenza credentials: existing users get distinct stable UUIDs (in place: nothing that
# references a user is touched), the two new tables exist, the models match, down and up again work.

CADENZA_REVISION = "0006"


def test_users_get_stable_uuids_and_credentials_tables_exist(empty_db):
    down = ScriptDirectory.from_config(alembic_config(empty_db)).get_revision(CADENZA_REVISION).down_revision
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
        upgrade(empty_db, CADENZA_REVISION)
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


# --- 0007: on SQLite every table with an integer id gets AUTOINCREMENT, so that an id is never used twice
# (PostgreSQL's sequences never reuse one: the same test passes there unchanged). The rows that were there
# keep their ids, their links and their sealed secrets.

AUTOINCREMENT_REVISION = "0007"


def core_on(url: str, data_dir):
    """A core on ``url`` (the master key file in ``data_dir``) whose exchanges accept any key."""
    from support import TEST_SETTINGS
    from support.services import FakeGateway

    from strongroom.core import build_core
    from strongroom.settings import Settings

    return build_core(Settings(**{**TEST_SETTINGS, "data_dir": data_dir, "database_url": url}), gateway=FakeGateway())


def loose_key() -> dict[str, str]:
    """Credentials for BitMEX (no live check: stored unverified)."""
    return {"api_key": f"bm-{uuid.uuid4().hex}", "secret": uuid.uuid4().hex}


def test_0007_ids_are_never_reused_and_rows_keep_ids_and_secrets(empty_db, tmp_path):
    import asyncio

    from support.services import new_user

    data_dir = tmp_path / "data"
    down = ScriptDirectory.from_config(alembic_config(empty_db)).get_revision(AUTOINCREMENT_REVISION).down_revision
    upgrade(empty_db)
    core = core_on(empty_db, data_dir)
    try:
        owner = new_user(core)
        given = [loose_key() for _ in range(2)]
        accounts = [asyncio.run(core.accounts.connect(owner, "bitmex", creds, name=f"a{i}"))
                    for i, creds in enumerate(given)]
        stored_key = loose_key()
        credential = asyncio.run(core.credentials.create(owner, "bitmex", stored_key))
        linked, _ = asyncio.run(core.credentials.connect(owner, credential.public_id))
        keys = [core.api_keys.create(owner, name=f"k{i}", kind="hmac") for i in range(2)]
    finally:
        core.close()
    # the rows as an installation before 0007 holds them
    command.downgrade(alembic_config(empty_db), down)
    upgrade(empty_db)

    engine = create_engine(empty_db)
    core = core_on(empty_db, data_dir)
    try:
        if empty_db.startswith("sqlite"):
            with engine.connect() as conn:
                tables = dict(conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")).all())
            with_id = {name for name, sql in tables.items() if re.search(r"\bid INTEGER NOT NULL", sql)}
            assert {"users", "exchange_accounts", "exchange_credentials", "api_keys", "audit_events"} <= with_id
            assert [name for name in with_id if "AUTOINCREMENT" not in tables[name]] == []
        # same ids, links and secrets
        for account, creds in zip(accounts, given, strict=True):
            assert core.account_store.credentials_of(core.account_store.get(owner, account.id)) == creds
        assert core.vault.open_credential(core.credentials.get(owner, credential.public_id)) == stored_key
        assert core.credentials.linked([linked.id])[linked.id].id == credential.id
        for key, secret in keys:
            record = core.api_keys.load_record(key.key_id)
            assert record is not None and record.hmac_secrets[0][0] == secret
        assert core.api_keys.get(owner, keys[1][0].key_id).id == keys[1][0].id

        # delete the newest row of each table, insert another: it gets a new id
        newest_key = keys[1][0]
        core.api_keys.delete(owner, newest_key.key_id)
        assert core.api_keys.create(owner, name="after", kind="hmac")[0].id > newest_key.id
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM account_credentials WHERE account_id = :a"), {"a": linked.id})
            conn.execute(text("DELETE FROM exchange_accounts WHERE id = :a"), {"a": linked.id})
            conn.execute(text("DELETE FROM exchange_credentials WHERE id = :c"), {"c": credential.id})
        again = asyncio.run(core.accounts.connect(owner, "bitmex", loose_key()))
        assert again.id > linked.id
        assert asyncio.run(core.credentials.create(owner, "bitmex", loose_key())).id > credential.id
        last = new_user(core)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM users WHERE id = :u"), {"u": last.user_id})
        assert new_user(core).user_id > last.user_id
    finally:
        core.close()
        engine.dispose()
