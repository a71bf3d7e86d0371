"""Shared fixtures. Every HTTP test runs twice: against SQLite and against PostgreSQL.

If PostgreSQL does not answer, the PostgreSQL pass is skipped LOUDLY: each test says why, and
the end of the run prints a banner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import (
    LOGS,
    PG_URL,
    Server,
    Users,
    drop_pg_schema,
    install_log_capture,
    migrated_database,
    new_pg_schema,
    postgres_available,
    start_server,
)
from support.services import Fresh

_PG_PROBLEM: list[str] = []


@dataclass
class Backend:
    name: str
    url: str


@pytest.fixture(scope="session")
def mock_exchange():
    """The loopback mock exchange (Binance and OKX, devtools/mock_exchange), checking real ccxt signatures."""
    from devtools.mock_exchange import MockExchangeServer

    with MockExchangeServer() as mock:
        yield mock


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request, tmp_path_factory) -> Iterator[Backend]:
    """A migrated, empty database: SQLite file, or a fresh schema in PostgreSQL's ``test`` database."""
    from strongroom.migrations import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'strongroom.db'}"
        upgrade(url)
        yield Backend("sqlite", url)
        return
    problem = postgres_available()
    if problem:
        _PG_PROBLEM.append(problem)
        pytest.skip(f"POSTGRESQL PASS NOT RUN: {PG_URL} does not answer ({problem})")
    schema, url = new_pg_schema()
    try:
        upgrade(url)
        yield Backend("postgresql", url)
    finally:
        drop_pg_schema(schema)


@pytest.fixture(scope="session")
def server(backend, mock_exchange, tmp_path_factory) -> Iterator[Server]:
    """A live Strongroom server over real HTTP on ``backend``, with exchanges pointed at the mock."""
    install_log_capture()
    srv = start_server(
        data_dir=tmp_path_factory.mktemp(f"data-{backend.name}"),
        database_url=backend.url,
        exchange_base_urls={"binance": mock_exchange.url, "okx": mock_exchange.url},
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def users(server) -> Users:
    return Users(server)


@pytest.fixture
def client(server):
    with server.client() as c:
        yield c


@pytest.fixture
def logs():
    """Every log line emitted in this process so far (the servers run in this process)."""
    return LOGS


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fresh]:
    """A fresh migrated database (SQLite file, or a new PostgreSQL schema) for one test."""
    with migrated_database(request.param, tmp_path / "services.db") as url:
        yield Fresh(request.param, url, tmp_path / "data")


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


# ``make test-quick`` (pytest --quick): the inner loop. SQLite only, and no test that needs a live
# Strongroom server (its fixtures, or a ``slow`` mark on tests that start server processes themselves).
LIVE_FIXTURES = frozenset({"server", "client", "users", "pg_server"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--quick", action="store_true", default=False,
                     help="SQLite only, no live servers (make test-quick); the whole suite is make test")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--quick"):
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and "postgresql" in callspec.params.values()
        live = bool(LIVE_FIXTURES & set(getattr(item, "fixturenames", ()))) or item.get_closest_marker("slow")
        (dropped if on_postgres or live else keep).append(item)
    config.hook.pytest_deselected(items=dropped)
    items[:] = keep


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    import os

    problem = _PG_PROBLEM[0] if _PG_PROBLEM else None
    if problem is None and hasattr(config, "workerinput"):
        return
    if problem or any("POSTGRESQL PASS NOT RUN" in str(getattr(r, "longrepr", ""))
                      for r in terminalreporter.stats.get("skipped", [])):
        bar = "!" * 78
        terminalreporter.write_line(bar, red=True, bold=True)
        terminalreporter.write_line(
            f"!!  THE POSTGRESQL PASS DID NOT RUN: {PG_URL} did not answer.", red=True, bold=True)
        terminalreporter.write_line(
            "!!  Start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
            red=True, bold=True)
        terminalreporter.write_line(bar, red=True, bold=True)
        if os.environ.get("STRONGROOM_REQUIRE_POSTGRES"):
            terminalreporter._session.exitstatus = 1
