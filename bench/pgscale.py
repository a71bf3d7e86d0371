"""Measure 4: cold-cache verification latency with 1,000 and with 1,000,000 keys in PostgreSQL.

A fresh schema ``bench_<random>`` in the ``test`` database is migrated with Strongroom's own
migrations. Keys that will be presented are inserted with what the service stores (bearer:
HMAC-SHA256 of the key under the pepper, via ``core.hasher.token``; Ed25519: the SPKI PEM); filler
keys are inserted by ``INSERT ... SELECT generate_series`` with random unique hashes and key ids.

Each verification is ``Authenticator.authenticate`` with the in-memory key cache emptied first, so
it reads the database (bearer: find the key id by hash, then load the record; Ed25519: load the
record by key id), through the same worker-thread hop as in the server. Two schemas are built, one
with 1,000 keys and one with 1,000,000 (the presented keys spread through it), and the measuring
passes alternate between them so that drift on a shared machine affects both figures alike.
Both schemas are dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from bench.fixture import BENCH_SETTINGS, Credential, native_schemes
from bench.inproc import facts_for

PG_URL = os.environ.get("STRONGROOM_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def log(msg: str) -> None:
    print(msg, flush=True)


@dataclass
class Latency:
    kind: str
    keys: int
    samples: list[float] = field(default_factory=list)  # ms

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        s = sorted(self.samples)
        return s[min(len(s) - 1, int(0.95 * len(s)))]


@dataclass
class ScaleResult:
    small: dict[str, Latency]
    large: dict[str, Latency]
    small_keys: int
    large_keys: int
    insert_seconds: float
    server_version: str


def _dsn() -> str:
    return PG_URL.replace("postgresql+psycopg://", "postgresql://")


def available() -> str | None:
    """None if PostgreSQL answers, else why not."""
    import psycopg

    try:
        with psycopg.connect(_dsn(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return f"{type(exc).__name__}: {str(exc).strip()[:200]}"
    return None


class Schema:
    """A fresh schema in the test database and a SQLAlchemy URL whose search_path is that schema."""

    def __init__(self) -> None:
        import psycopg

        self.name = f"bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(_dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.name}"')
            self.server_version = conn.execute("SHOW server_version").fetchone()[0]
        sep = "&" if "?" in PG_URL else "?"
        self.url = f"{PG_URL}{sep}options=-csearch_path%3D{self.name}"

    def connect(self):
        import psycopg

        conn = psycopg.connect(_dsn(), autocommit=True)
        conn.execute(f'SET search_path TO "{self.name}"')
        return conn

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(_dsn(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')


INSERT_KEY = """
INSERT INTO api_keys (key_id, user_id, name, kind, secret_hash, public_key, scopes, ip_allowlist, enabled, hint,
                      created_at, updated_at)
VALUES (%s, %s, %s, %s, %s, %s, '["read", "write", "delete"]', '[]', true, %s, now(), now())
"""

INSERT_FILLER = """
INSERT INTO api_keys (key_id, user_id, name, kind, secret_hash, scopes, ip_allowlist, enabled, hint,
                      created_at, updated_at)
SELECT gen_random_uuid()::text, %(user_id)s::int, 'filler', 'bearer',
       encode(sha256(convert_to(%(salt)s::text || g::text, 'UTF8')), 'hex'),
       '["read"]', '[]', true, 'fill...', now(), now()
FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS g
"""


def _presented(core, conn, user_id: int, bearer: int, signed: int) -> list[Credential]:
    """Insert keys that will be presented; return their credentials."""
    from strongroom.crypto import tokens

    out: list[Credential] = []
    rows = []
    for _ in range(bearer):
        secret = tokens.new_token(core.settings.bearer_key_prefix)
        key_id = str(uuid.uuid4())
        rows.append((key_id, user_id, "presented", "bearer", core.hasher.token(secret), None, tokens.hint(secret)))
        out.append(Credential("bearer", key_id, secret=secret))
    for _ in range(signed):
        private = ed25519.Ed25519PrivateKey.generate()
        pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        key_id = str(uuid.uuid4())
        rows.append((key_id, user_id, "presented", "ed25519", None, pem, "ed25519:bench"))
        out.append(Credential("ed25519", key_id, private_key=private))
    with conn.cursor() as cur:
        cur.executemany(INSERT_KEY, rows)
    return out


def _fill(conn, user_id: int, start: int, stop: int, salt: str) -> None:
    if stop >= start:
        conn.execute(INSERT_FILLER, {"user_id": user_id, "start": start, "stop": stop, "salt": salt})


async def _pass(core, creds: list[Credential], out: dict[str, Latency], keys: int, stamps: list[int]) -> None:
    """Verify every credential once, in random order, each with an empty key cache."""
    auth = core.auth
    order = list(creds)
    secrets.SystemRandom().shuffle(order)
    for cred in order:
        stamps[0] += 1
        facts = facts_for(cred, stamps[0])
        auth.records.clear()  # cold: every verification reads the database
        auth.hash_index.clear()
        t0 = time.perf_counter()
        principal = await auth.authenticate(facts, native_schemes(core))
        elapsed = time.perf_counter() - t0
        if principal.key_id != cred.key_id:
            raise RuntimeError("authenticated as another key")
        out.setdefault(cred.kind, Latency(cred.kind, keys)).samples.append(elapsed * 1000)


async def _measure(small: Side, large: Side, passes: int) -> tuple[dict[str, Latency], dict[str, Latency]]:
    """Alternate passes over the small and the large table (ABBA...), so drift hits both alike."""
    stamps = [int(time.time() * 1000) - 20_000]
    await _pass(small.core, small.creds[:40], {}, 0, stamps)  # warm-up: pools, statement caches
    await _pass(large.core, large.creds[:40], {}, 0, stamps)
    out_small: dict[str, Latency] = {}
    out_large: dict[str, Latency] = {}
    for i in range(passes):
        sides = [(small, out_small), (large, out_large)]
        for side, out in (sides if i % 2 == 0 else sides[::-1]):
            await _pass(side.core, side.creds, out, side.count, stamps)
    return out_small, out_large


@dataclass
class Side:
    """One schema: its core (own pool and caches), presented credentials and key count."""

    schema: Schema
    core: object = None
    creds: list[Credential] = field(default_factory=list)
    count: int = 0


def _build(side: Side, tmp: Path, total: int, spread: int) -> None:
    """Migrate, create the user, insert ``total`` keys with the presented ones spread in ``spread`` groups."""
    from strongroom.core import build_core
    from strongroom.migrations import upgrade
    from strongroom.settings import Settings

    upgrade(side.schema.url)
    settings = Settings(**{**BENCH_SETTINGS, "data_dir": tmp / side.schema.name, "database_url": side.schema.url})
    side.core = core = build_core(settings)
    user = core.users.create(f"bench{secrets.token_hex(4)}", secrets.token_urlsafe(16))
    salt = secrets.token_hex(8) + "-"
    bearer, signed = 200 // spread, 50 // spread
    per_chunk = (total - spread * (bearer + signed)) // spread
    done = 0
    with side.schema.connect() as conn:
        for i in range(spread):
            side.creds += _presented(core, conn, user.id, bearer, signed)
            done += bearer + signed
            stop = total if i == spread - 1 else done + per_chunk
            _fill(conn, user.id, done + 1, stop, salt)
            done = stop
            if spread > 1:
                log(f"   ... {done:,} keys")
        conn.execute("ANALYZE api_keys")
        side.count = conn.execute("SELECT count(*) FROM api_keys").fetchone()[0]


def measure(total_keys: int, *, small_keys: int = 1000, passes: int = 4) -> ScaleResult:
    """Two schemas, ``small_keys`` and ``total_keys`` keys, each with 200 bearer and 50 Ed25519 keys that
    are presented; passes alternate between them."""
    small = Side(Schema())
    large = Side(Schema())
    tmp = Path(tempfile.mkdtemp(prefix="strongroom-bench-pg-"))
    log(f"   schemas {small.schema.name} and {large.schema.name} in {PG_URL} "
        f"(PostgreSQL {small.schema.server_version})")
    try:
        _build(small, tmp, small_keys, 1)
        t0 = time.monotonic()
        _build(large, tmp, total_keys, 10)
        insert_seconds = time.monotonic() - t0
        out_small, out_large = asyncio.run(_measure(small, large, passes))
        for name, side, out in (("small", small, out_small), ("large", large, out_large)):
            log(f"   {side.count:,} keys: bearer median {out['bearer'].median:.3f} ms "
                f"(p95 {out['bearer'].p95:.3f}), ed25519 median {out['ed25519'].median:.3f} ms")
        return ScaleResult(out_small, out_large, small.count, large.count, insert_seconds,
                           small.schema.server_version)
    finally:
        for side in (small, large):
            if side.core is not None:
                side.core.close()
            side.schema.drop()
            log(f"   dropped schema {side.schema.name}")
        shutil.rmtree(tmp, ignore_errors=True)
