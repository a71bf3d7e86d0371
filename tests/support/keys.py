"""Helpers of the master key tests (issue 21): what the database holds, opening every record, status."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select

from support import run_cli, sqlite_file_bytes


def database_bytes(url: str) -> bytes:
    """Every value the database holds, as bytes: SQLite's files themselves (with its WAL, shared memory and
    journal); on PostgreSQL each row as text (bytea in hex) and each value in its own form (bytea raw)."""
    if url.startswith("sqlite"):
        return sqlite_file_bytes(url.removeprefix("sqlite:///"))
    import psycopg

    chunks: list[bytes] = []
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        tables = [r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE "
                                             "table_schema = current_schema() AND table_type = 'BASE TABLE'")]
        for table in tables:
            chunks.extend(row_text.encode() for (row_text,) in conn.execute(f'SELECT t::text FROM "{table}" AS t'))
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                chunks.extend(bytes(v) if isinstance(v, (bytes, bytearray, memoryview)) else str(v).encode()
                              for v in row if v is not None)
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


def seed_accounts(client: Any, user: Any, mock: Any, count: int) -> tuple[list[int], dict[str, str]]:
    """Connect ``count`` Binance accounts of ``user`` on the mock exchange and make them a bearer key; return the
    accounts' ids and the key's headers (what a master-key migration test then reads through)."""
    accounts = []
    for i in range(count):
        made = client.post("/v1/exchange-accounts", headers=user.headers,
                           json={"exchange": "binance", "credentials": mock.new_key(), "name": f"a{i}"})
        assert made.status_code == 201, made.text
        accounts.append(made.json()["id"])
    bearer = client.post("/v1/api-keys", headers=user.headers, json={"name": "b", "kind": "bearer"})
    assert bearer.status_code == 201, bearer.text
    return accounts, {"Authorization": f"Bearer {bearer.json()['secret']}"}


@dataclass
class Traffic:
    """What :func:`traffic` sent: requests answered, and every answer that was not a success."""

    served: int = 0
    failures: list[str] = field(default_factory=list)


@contextmanager
def traffic(url: str, accounts: list[int], headers: dict[str, str], *, connect_every: int = 0, user: Any = None,
            mock: Any = None) -> Iterator[Traffic]:
    """Refresh the accounts' balances (reads that open credentials) one after the other, and every
    ``connect_every``-th request connect a new account of ``user`` (a write that seals new ones), in a thread,
    for as long as the block runs; yields the counts (complete once the block has ended)."""
    done = Traffic()
    stop = threading.Event()

    def run() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            n = 0
            while not stop.is_set():
                n += 1
                answer = client.post(f"/v1/exchange-accounts/{accounts[n % len(accounts)]}/balances/refresh",
                                     headers=headers)
                if connect_every and n % connect_every == 0:
                    answer = client.post("/v1/exchange-accounts", headers=user.headers, json={
                        "exchange": "binance", "credentials": mock.new_key(), "name": f"during {n}"})
                if answer.status_code not in (200, 201):
                    done.failures.append(f"{answer.status_code} {answer.text[:200]}")
                done.served += 1

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield done
    finally:
        stop.set()
        thread.join(60)
