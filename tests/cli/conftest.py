"""Fixtures of the command-line tests: a fresh installation on SQLite or PostgreSQL, and the CLI
environment of the shared live server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support import PG_URL, drop_pg_schema, new_pg_schema, postgres_available
from support.cli import Run, strongroom


@dataclass
class Install:
    """A data directory and a database, as ``strongroom`` sees them through ``env``."""

    backend: str
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, **kwargs) -> Run:
        return strongroom(*args, env=self.env, **kwargs)

    @property
    def url(self) -> str:
        return self.env.get("STRONGROOM_DATABASE_URL") or f"sqlite:///{self.data_dir / 'strongroom.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request, tmp_path) -> Iterator[Install]:
    """Nothing yet: a data directory path that does not exist and (PostgreSQL) an empty schema.

    On SQLite the database is the default one, ``<data dir>/strongroom.db``.
    """
    data_dir = tmp_path / "data"
    if request.param == "sqlite":
        yield Install("sqlite", data_dir, {"STRONGROOM_DATA_DIR": str(data_dir)})
        return
    problem = postgres_available()
    if problem:
        pytest.skip(f"POSTGRESQL PASS NOT RUN: {PG_URL} does not answer ({problem})")
    schema, url = new_pg_schema()
    try:
        yield Install("postgresql", data_dir, {"STRONGROOM_DATA_DIR": str(data_dir), "STRONGROOM_DATABASE_URL": url})
    finally:
        drop_pg_schema(schema)


@pytest.fixture
def installed(fresh: Install) -> Install:
    """A fresh installation made by ``strongroom db upgrade``."""
    fresh.run("db", "upgrade").ok()
    return fresh


@pytest.fixture
def live(server) -> Install:
    """The shared live server's data, for the CLI (exchanges pointed at the same mock)."""
    return Install(server.settings.database_url.split(":", 1)[0], Path(server.settings.data_dir), {
        "STRONGROOM_DATA_DIR": str(server.settings.data_dir),
        "STRONGROOM_DATABASE_URL": server.settings.database_url,
        "STRONGROOM_EXCHANGE_BASE_URLS": json.dumps(server.settings.exchange_base_urls),
    })
