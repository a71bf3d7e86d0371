"""Fixtures for the exchange layer: a loopback mock of its own per module, reset to ``normal`` after each test.

No network beyond 127.0.0.1: the gateway reaches the mock only through ``Settings.exchange_base_urls``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.exchange_mock import Mock

from devtools.mock_exchange import MockExchangeServer
from strongroom.settings import Settings


@pytest.fixture(scope="module")
def mock() -> Iterator[Mock]:
    with MockExchangeServer() as server:
        yield Mock(server)


@pytest.fixture(autouse=True)
def _normal_behaviour(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "mock" in request.fixturenames:
        request.getfixturevalue("mock").mode("normal")


@pytest.fixture
def settings(mock: Mock) -> Settings:
    return Settings(
        exchange_base_urls={"binance": mock.url, "okx": mock.url, "binanceus": mock.url},
        exchange_timeout_ms=3000,
        exchange_requests_per_second=1000,
    )
