"""Test support: live servers over real HTTP, per-backend databases, users."""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devtools.liveserver import ServeProcess as ServeProcess
from devtools.liveserver import free_port as free_port

PG_URL = os.environ.get("STRONGROOM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parents[2]
# The five source documents: ../shared/seeds beside the checkout when it is there, else the copies
# kept in tests/seeds (a clean clone elsewhere); tests/contract checks that the copies match.
SHARED_SEEDS = ROOT.parent / "shared" / "seeds"
SEEDS = SHARED_SEEDS if SHARED_SEEDS.is_dir() else ROOT / "tests" / "seeds"
BIN = Path(sys.executable).parent


def postgres_available() -> str | None:
    """Return None if PostgreSQL answers, else the reason it does not."""
    import psycopg

    dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return None


def new_pg_schema() -> tuple[str, str]:
    """Create a fresh schema in the test database; return (schema, SQLAlchemy URL using it)."""
    import psycopg

    schema = f"sr_{uuid.uuid4().hex[:12]}"
    dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    return schema, f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


def drop_pg_schema(schema: str) -> None:
    import psycopg

    dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.contextmanager
def migrated_database(kind: str, sqlite_file: Path) -> Iterator[str]:
    """Yield the URL of a fresh, migrated database of ``kind``: the SQLite file ``sqlite_file``, or a new
    PostgreSQL schema (dropped afterwards). Skips LOUDLY when PostgreSQL does not answer."""
    import pytest

    from strongroom.migrations import upgrade

    if kind == "sqlite":
        url = f"sqlite:///{sqlite_file}"
        upgrade(url)
        yield url
        return
    problem = postgres_available()
    if problem:
        pytest.skip(f"POSTGRESQL PASS NOT RUN: {PG_URL} does not answer ({problem})")
    schema, url = new_pg_schema()
    try:
        upgrade(url)
        yield url
    finally:
        drop_pg_schema(schema)


class LogCapture(logging.Handler):
    """Keeps every log line of this process (the threaded servers run here) for leak checks."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001
            self.lines.append(f"<unformattable {record.name}>")

    def text(self) -> str:
        return "\n".join(self.lines)


LOGS = LogCapture()


def install_log_capture() -> None:
    for name in ("", "strongroom", "uvicorn", "uvicorn.error", "uvicorn.access", "sqlalchemy", "ccxt"):
        logger = logging.getLogger(name)
        if LOGS not in logger.handlers:
            logger.addHandler(LOGS)
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("strongroom").setLevel(logging.DEBUG)


TEST_SETTINGS = {
    "argon2_time_cost": 1,
    "argon2_memory_kib": 1024,
    "argon2_parallelism": 1,
    "login_failures_per_ip": "10000/minute",
    "auth_failures_per_ip": "100000/minute",
    "auth_failures_per_key": "100000/minute",
    "rate_limit_per_ip": "100000/minute",
    "rate_limit_per_key": "100000/minute",
    "exchange_timeout_ms": 3000,
    "last_used_flush_seconds": 0.2,
}


@dataclass
class Server:
    """A Strongroom server on a loopback port, run by uvicorn in a thread of this process."""

    url: str
    core: object
    settings: object
    _uvicorn: object = None
    _thread: threading.Thread | None = None
    app: object = None

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def stop(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
            self._thread.join(10)
        self.core.close()


def start_server(app_options: dict | None = None, **overrides) -> Server:
    """Start a server for ``Settings(**TEST_SETTINGS, **overrides)`` (``app_options``: keyword arguments of
    ``create_app``); return once it answers."""
    import uvicorn

    from strongroom.app import create_app
    from strongroom.core import build_core
    from strongroom.settings import Settings

    settings = Settings(**{**TEST_SETTINGS, **overrides})
    core = build_core(settings)
    app = create_app(settings, core=core, **(app_options or {}))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # proxy_headers=False as in `strongroom serve`: X-Forwarded-For is the app's business (trusted_proxies)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=True, timeout_graceful_shutdown=1,
                                           proxy_headers=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("strongroom test server failed to start")
        time.sleep(0.01)
    return Server(f"http://127.0.0.1:{port}", core, settings, server, thread, app)


@dataclass
class TestUser:
    id: int
    username: str
    password: str
    url: str
    token: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        """Authorization with this user's access token."""
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def basic(self) -> dict[str, str]:
        raw = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {raw}"}

    @property
    def basic_userinfo(self) -> str:
        return f"{self.username}:{self.password}"


class Users:
    """Makes users with unique names on a server (through the service) and signs them in over HTTP."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def create(self, *, admin: bool = False, usage_level: str = "basic", sign_in: bool = True) -> TestUser:
        username = f"u{uuid.uuid4().hex[:10]}"
        password = secrets.token_urlsafe(12)
        user = self.server.core.users.create(username, password, is_admin=admin, usage_level=usage_level)
        test_user = TestUser(user.id, username, password, self.server.url)
        if sign_in:
            with self.server.client() as client:
                response = client.post("/v1/auth/token", data={"username": username, "password": password})
                response.raise_for_status()
                test_user.token = response.json()["access_token"]
                test_user.extra["refresh_token"] = response.json()["refresh_token"]
        return test_user


READ_FILE = "import sys; sys.stdout.buffer.write(open(sys.argv[1], 'rb').read())"


def sqlite_file_bytes(database: Path | str, suffixes: tuple[str, ...] = ("", "-wal", "-shm", "-journal")) -> bytes:
    """The bytes of SQLite database file ``database`` and of its ``suffixes`` files that exist, read by another
    process: closing a descriptor of a database file in this one (where live servers run) would drop every POSIX
    lock SQLite holds on it here, and the next process to open the database would rebuild its shared memory
    under those servers' feet (they then miss each other's writes)."""
    out = b""
    for suffix in suffixes:
        candidate = Path(f"{database}{suffix}")
        if candidate.exists():
            out += subprocess.run([sys.executable, "-c", READ_FILE, str(candidate)], capture_output=True,
                                  check=True).stdout
    return out


def run_cli(*args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the ``strongroom`` command with ``env`` added to this environment."""
    from support import forkserver  # a fresh process forked from one that has imported the command line

    return forkserver.run(list(args), env={**os.environ, **env}, stdin=stdin, timeout=timeout, cwd=ROOT)

