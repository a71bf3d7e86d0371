"""Fixtures of the Cadenza surface tests: a live server per backend whose exchanges are the mock
(Binance, OKX) and, for Coinbase, a loopback port where nothing listens (an unreachable exchange,
the same on every machine: the seed's Coinbase example is answered 503, never sent anywhere)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from support import Server, TestUser, Users, free_port, start_server

CLIENT_NOT_RUN: list[str] = []


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


@dataclass
class Api:
    """A Cadenza caller: its server, a signed-in user and that user's headers."""

    http: httpx.Client
    user: TestUser
    token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.http.post(f"/api/v3{path}", headers=self.headers, json=body, **kwargs)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(f"/api/v3{path}", headers=self.headers, params=params)


def login(http: httpx.Client, user: TestUser) -> Api:
    response = http.post("/api/v3/auth/login", json={"email": user.username, "password": user.password})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    return Api(http, user, data["accessToken"], data["refreshToken"])


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


def mock_key(mock_exchange: Any, exchange: str = "binance", **extra: Any) -> dict[str, str]:
    """A fresh key on the mock exchange, as Cadenza's fields (apiKey, apiSecret, apiPassphrase for OKX)."""
    creds = {"api_key": f"ck-{uuid.uuid4().hex}", "secret": f"cs-{uuid.uuid4().hex}{uuid.uuid4().hex}"}
    if exchange == "okx":
        creds["passphrase"] = f"cp-{uuid.uuid4().hex[:10]}"
    response = httpx.post(f"{mock_exchange.url}/_mock/accounts", json={"exchange": exchange, **creds, **extra},
                          timeout=10)
    assert response.status_code == 201, response.text
    wire = {"apiKey": creds["api_key"], "apiSecret": creds["secret"]}
    if "passphrase" in creds:
        wire["apiPassphrase"] = creds["passphrase"]
    return wire


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    """Say loudly, at the end of the run, that Cadenza's own client did not run (see test_cadenza_client)."""
    if not any("CADENZA CLIENT NOT RUN" in str(getattr(r, "longrepr", ""))
               for r in terminalreporter.stats.get("skipped", [])):
        return
    bar = "!" * 78
    terminalreporter.write_line(bar, red=True, bold=True)
    terminalreporter.write_line("!!  CADENZA'S GENERATED CLIENT (cadenza_client 3.5.4) DID NOT RUN: CADENZA_CLIENT_SRC "
                                "is not set.", red=True, bold=True)
    terminalreporter.write_line("!!  Only the wire contract it needs was checked (test_wire_contract.py). Set it to a "
                                "checkout of", red=True, bold=True)
    terminalreporter.write_line("!!  github.com/cyberapper/cadenza-client-python (it is not on PyPI).",
                                red=True, bold=True)
    terminalreporter.write_line(bar, red=True, bold=True)
