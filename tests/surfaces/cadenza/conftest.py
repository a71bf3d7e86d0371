"""Fixtures of the Cadenza surface tests: a live server per backend whose exchanges are the mock
(Binance, OKX) and, for Coinbase, a loopback port where nothing listens (an unreachable exchange,
the same on every machine: the seed's Coinbase example is answered 503, never sent anywhere)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cadenza_helpers import Api, login
from support import Server, Users, free_port, start_server


@pytest.fixture(scope="session")
def cadenza_server(server: Server, backend: Any, mock_exchange: Any) -> Iterator[Server]:
    """A second live server on the shared server's database and master key, with Coinbase unreachable."""
    srv = start_server(
        data_dir=server.settings.data_dir,
        database_url=backend.url,
        exchange_base_urls={"binance": mock_exchange.url, "okx": mock_exchange.url,
                            "coinbase": f"http://127.0.0.1:{free_port()}"},
    )
    yield srv
    srv.stop()


@pytest.fixture
def http(cadenza_server: Server) -> Iterator[httpx.Client]:
    with cadenza_server.client() as client:
        yield client


@pytest.fixture
def cadenza_users(cadenza_server: Server) -> Users:
    return Users(cadenza_server)


@pytest.fixture
def api(http: httpx.Client, cadenza_users: Users) -> Api:
    """A fresh user, signed in through /api/v3/auth/login."""
    return login(http, cadenza_users.create(sign_in=False))


@pytest.fixture
def other(http: httpx.Client, cadenza_users: Users) -> Api:
    """Another fresh user, signed in."""
    return login(http, cadenza_users.create(sign_in=False))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    """Say loudly, at the end of the run, that Cadenza's own client did not run (see test_cadenza_client)."""
    if not any("CADENZA CLIENT NOT RUN" in str(getattr(r, "longrepr", ""))
               for r in terminalreporter.stats.get("skipped", [])):
        return
    bar = "!" * 78
    terminalreporter.write_line(bar, red=True, bold=True)
    terminalreporter.write_line("!!  CADENZA'S GENERATED CLIENT (cadenza_client 3.5.4) DID NOT RUN: CADENZA_CLIENT_SRC "
                                "is not set.", red=True, bold=True)
    terminalreporter.write_line("!!  Only the wire contract it needs was checked (test_cadenza_wire.py). Set it to a "
                                "checkout of", red=True, bold=True)
    terminalreporter.write_line("!!  github.com/cyberapper/cadenza-client-python (it is not on PyPI).",
                                red=True, bold=True)
    terminalreporter.write_line(bar, red=True, bold=True)
