"""Fixtures for in-process service tests: a fresh, migrated database of each kind and cores on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import PG_URL, TEST_SETTINGS, drop_pg_schema, new_pg_schema, postgres_available
from support.services import FakeGateway


@dataclass
class Fresh:
    """A migrated, empty database and a data dir (master key file) of its own."""

    backend: str
    url: str
    data_dir: Path

    def core(self, gateway: Any = None, **overrides: Any) -> Any:
        """Return a new core on this database (call ``close()`` on it); exchanges answer through ``gateway``."""
        from strongroom.core import build_core
        from strongroom.settings import Settings

        settings = Settings(**{**TEST_SETTINGS, "data_dir": self.data_dir, "database_url": self.url, **overrides})
        return build_core(settings, gateway=gateway or FakeGateway())


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fresh]:
    """A fresh migrated database (SQLite file, or a new PostgreSQL schema) for one test."""
    from strongroom.migrations import upgrade

    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'services.db'}"
    else:
        problem = postgres_available()
        if problem:
            pytest.skip(f"POSTGRESQL PASS NOT RUN: {PG_URL} does not answer ({problem})")
        schema, url = new_pg_schema()
    try:
        upgrade(url)
        yield Fresh(request.param, url, tmp_path / "data")
    finally:
        if schema:
            drop_pg_schema(schema)


@pytest.fixture
def make_core(fresh: Fresh) -> Iterator[Callable[..., Any]]:
    """A factory of cores on the fresh database; every core made is closed after the test."""
    made: list[Any] = []

    def factory(**overrides: Any) -> Any:
        core = fresh.core(**overrides)
        made.append(core)
        return core

    yield factory
    for core in made:
        core.close()
