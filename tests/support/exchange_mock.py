"""Helpers for tests that talk to the loopback mock exchange (devtools/mock_exchange) through the gateway."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from devtools.mock_exchange import MockExchangeServer
from strongroom.exchanges.gateway import ExchangeGateway
from strongroom.settings import Settings

T = TypeVar("T")

BINANCE = {"api_key": "demo-binance-key", "secret": "demo-binance-secret"}
BINANCE_WITHDRAW = {"api_key": "demo-binance-withdraw-key", "secret": "demo-binance-withdraw-secret"}
OKX = {"api_key": "demo-okx-key", "secret": "demo-okx-secret", "passphrase": "demo-okx-passphrase"}


class Mock:
    """The mock server plus the control calls tests make."""

    def __init__(self, server: MockExchangeServer) -> None:
        self.server = server
        self.url = server.url

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(self.url + path, json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def mode(self, mode: str, delay: float | None = None) -> None:
        body: dict[str, Any] = {"mode": mode}
        if delay is not None:
            body["delay_seconds"] = delay
        self.post("/_mock/behaviour", body)

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.url + "/_mock/stats", timeout=10).json()

    def venue(self, exchange: str) -> dict[str, Any]:
        """This venue's counters (zeros if it saw no request)."""
        return self.stats().get(exchange, {"requests": 0, "private_requests": 0, "valid_signatures": 0,
                                           "max_in_flight": 0, "paths": {}, "connections": 0})

    def reset(self) -> None:
        self.post("/_mock/stats/reset", {})

    def prices(self, exchange: str, prices: dict[str, str | None]) -> dict[str, Any]:
        """Set last prices; resting limit orders they cross fill (the answer's ``orders_filled``)."""
        return self.post("/_mock/prices", {"exchange": exchange, "prices": prices})

    def fault(self, exchange: str, fault: str, **extra: Any) -> None:
        """Arm a fault (lost_answer, insufficient_balance) for the next order placement(s)."""
        self.post("/_mock/faults", {"exchange": exchange, "fault": fault, **extra})

    def clear_faults(self) -> None:
        self.post("/_mock/faults", {"clear": True})

    def orders(self, exchange: str, api_key: str) -> list[dict[str, Any]]:
        """Every order the mock holds for this key."""
        answer = httpx.get(self.url + "/_mock/orders", params={"exchange": exchange, "api_key": api_key}, timeout=10)
        return list(answer.json()["orders"])

    def orders_created(self, exchange: str, api_key: str) -> int:
        """How many orders the venue accepted for this key since the last stats reset."""
        return int(self.venue(exchange).get("orders_by_key", {}).get(api_key, 0))

    def new_key(self, exchange: str = "binance", **extra: Any) -> dict[str, str]:
        """Register a fresh key on the mock; return our credential fields for it."""
        creds = {"api_key": f"k-{uuid.uuid4().hex}", "secret": f"s-{uuid.uuid4().hex}"}
        if exchange == "okx":
            creds["passphrase"] = f"p-{uuid.uuid4().hex[:8]}"
        self.post("/_mock/accounts", {"exchange": exchange, **creds, **extra})
        return creds


def run_with(settings: Settings, body: Callable[[ExchangeGateway], Awaitable[T]]) -> T:
    """Run ``body(gateway)`` on a fresh event loop with a fresh gateway, closed afterwards."""

    async def main() -> T:
        gateway = ExchangeGateway(settings)
        try:
            return await body(gateway)
        finally:
            await gateway.aclose()

    return asyncio.run(main())
