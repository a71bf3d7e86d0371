"""Helpers of the master key tests (issue 21): what the database holds, opening every record, status."""

from __future__ import annotations

import base64
import json
from typing import Any

from sqlalchemy import select

from support import run_cli, sqlite_file_bytes


def database_bytes(url: str) -> bytes:
    """Every value the database holds, as bytes (SQLite: the files themselves)."""
    if url.startswith("sqlite"):
        return sqlite_file_bytes(url.removeprefix("sqlite:///"), ("", "-wal"))
    import psycopg

    chunks: list[bytes] = []
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        tables = [r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE "
                                             "table_schema = current_schema() AND table_type = 'BASE TABLE'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                chunks.extend(bytes(v) if isinstance(v, (bytes, memoryview)) else str(v).encode() for v in row)
    return b"\n".join(chunks)


def variants(secret: bytes) -> list[bytes]:
    return [secret, base64.b64encode(secret), secret.hex().encode()]


def status_of(env: dict[str, str]) -> dict[str, Any]:
    done = run_cli("master-key", "status", "--json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def every_record_opens(core: Any) -> dict[int, int]:
    """Open every sealed record of every registered table; return {version: records}."""
    from strongroom.vault.services import SEALED_TABLES

    versions: dict[int, int] = {}
    with core.db.session() as session:
        for table in SEALED_TABLES:
            for row in session.scalars(select(table.model).where(table.live(table.table))):
                assert core.vault.open(table, row)
                version = getattr(row, table.version)
                versions[version] = versions.get(version, 0) + 1
    return versions
