"""Order placement against the mock exchange: bare ccxt ``create_order`` vs. the gateway's ``create_order``.

The gateway's own share of a placement (issue 19's figure through Strongroom's HTTP API is ``bench/orders.py``,
``make bench BENCH_ARGS="--only orders"``); ``python -m bench.order_gateway [--rounds N] [--venue binance|okx]
[--mock URL]`` runs it alone.

Both sides place a resting limit buy (far below the price, so nothing fills and the key's funds only lock)
on the same mock, with a fresh client order id each time, on a warm client (markets loaded, keep-alive
connection open), in interleaved rounds whose order alternates:

* ``bare``: one ``ccxt.async_support`` client of the venue (``enableRateLimit`` off, the mock's URLs),
  ``await exchange.create_order(...)``. One request on Binance; on OKX one too (ccxt's batch endpoint).
* ``gateway``: ``ExchangeGateway.create_order`` (pooled client, per-venue limits, the market's rules
  checked before sending, errors classified). On OKX the gateway reads the order back (two requests),
  since OKX answers a placement with ids only.

A mock started here runs in its own process (``python -m devtools.mock_exchange``), never in this one's
event loop, so that its work is not timed as the client's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

SYMBOL = "BTC/USDT"
AMOUNT = Decimal("0.001")
PRICE = Decimal(10000)  # far below the mock's 50,000: the order rests


@dataclass
class Samples:
    """Milliseconds per kind, in run order."""

    ms: dict[str, list[float]] = field(default_factory=dict)

    def add(self, kind: str, seconds: float) -> None:
        self.ms.setdefault(kind, []).append(seconds * 1000)

    def p(self, kind: str, q: float) -> float:
        """Return the ``q`` quantile (0..1) of ``kind`` in ms."""
        values = sorted(self.ms[kind])
        return values[min(len(values) - 1, int(q * len(values)))]

    def ratio_p50(self, over: str = "gateway", under: str = "bare") -> float:
        """Return p50(over) / p50(under)."""
        return statistics.median(self.ms[over]) / statistics.median(self.ms[under])


def new_funded_key(mock_url: str, venue: str = "binance") -> dict[str, str]:
    """Register a key on the mock with funds for many resting orders; return our credential fields for it."""
    creds = {"api_key": f"bench{uuid.uuid4().hex}", "secret": uuid.uuid4().hex}
    if venue == "okx":
        creds["passphrase"] = f"p{uuid.uuid4().hex[:8]}"
    httpx.post(mock_url + "/_mock/accounts", json={"exchange": venue, **creds,
                                                   "balances": {"USDT": {"free": "100000000"}}}).raise_for_status()
    return creds


async def bare_client(mock_url: str, creds: dict[str, str], venue: str = "binance") -> Any:
    """Return a warm bare ccxt client of ``venue`` on the mock (markets loaded; the caller closes it)."""
    import ccxt.async_support as ccxt

    from strongroom.exchanges.client import rebase_urls

    config: dict[str, Any] = {"apiKey": creds["api_key"], "secret": creds["secret"], "enableRateLimit": False}
    if "passphrase" in creds:
        config["password"] = creds["passphrase"]
    exchange = getattr(ccxt, venue)(config)
    exchange.urls["api"] = rebase_urls(exchange.urls["api"], mock_url)
    exchange.options["fetchMarkets"] = {"types": ["spot"]}
    exchange.options["fetchCurrencies"] = False
    exchange.has = {**exchange.has, "fetchCurrencies": False}
    exchange.timeout_on_exit = 0
    await exchange.load_markets()
    return exchange


async def bare_create_order(exchange: Any, client_order_id: str) -> Any:
    """Place the benchmark's order with bare ccxt; return ccxt's order."""
    return await exchange.create_order(SYMBOL, "limit", "buy", float(AMOUNT), float(PRICE),
                                       {"clientOrderId": client_order_id})


async def gateway_create_order(gateway: Any, info: Any, creds: dict[str, str], client_order_id: str) -> Any:
    """Place the benchmark's order through ``ExchangeGateway.create_order``; return its ``OrderState``."""
    from strongroom.exchanges.orders import OrderSpec

    return await gateway.create_order(info, creds, OrderSpec(SYMBOL, "buy", "limit", AMOUNT, PRICE,
                                                             client_order_id))


async def _timed(samples: Samples, kind: str, call: Callable[[], Awaitable[Any]]) -> None:
    started = time.perf_counter()
    await call()
    samples.add(kind, time.perf_counter() - started)


async def compare(mock_url: str, *, rounds: int = 200, venue: str = "binance", warmup: int = 10) -> Samples:
    """Time ``rounds`` interleaved placements each way (``warmup`` untimed first); return the samples."""
    from strongroom.exchanges.catalogue import get_catalogue
    from strongroom.exchanges.gateway import ExchangeGateway
    from strongroom.settings import Settings

    creds = new_funded_key(mock_url, venue)
    info = get_catalogue().get(venue)
    gateway = ExchangeGateway(Settings(exchange_base_urls={venue: mock_url}, exchange_requests_per_second=100000))
    exchange = await bare_client(mock_url, creds, venue)
    samples = Samples()
    try:
        for n in range(warmup + rounds):
            pair = [("bare", lambda: bare_create_order(exchange, "b" + uuid.uuid4().hex[:24])),
                    ("gateway", lambda: gateway_create_order(gateway, info, creds, "g" + uuid.uuid4().hex[:24]))]
            for kind, call in (pair if n % 2 else pair[::-1]):
                if n < warmup:
                    await call()
                else:
                    await _timed(samples, kind, call)
    finally:
        await exchange.close()
        await gateway.aclose()
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.order_gateway", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--venue", choices=("binance", "okx"), default="binance")
    parser.add_argument("--mock", help="a running mock's URL (default: start one)")
    args = parser.parse_args(argv)
    mock = None
    url = args.mock
    if url is None:
        from bench.gateway import start_mock

        mock, url = start_mock(Path(tempfile.mkdtemp(prefix="bench-orders-")))
    try:
        samples = asyncio.run(compare(url, rounds=args.rounds, venue=args.venue))
    finally:
        if mock is not None:
            mock.stop()
    for kind in ("bare", "gateway"):
        print(f"{kind:8} p50 {samples.p(kind, 0.5):6.2f} ms  p95 {samples.p(kind, 0.95):6.2f} ms  "
              f"(n={len(samples.ms[kind])})")
    print(f"gateway / bare at p50: {samples.ratio_p50():.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
