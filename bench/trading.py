"""Order placement through Strongroom (``POST /v1/exchange-accounts/{id}/orders``) vs. a bare ccxt ``create_order``
against the same mock exchange (issue 19's benchmark: p50 ratio, interleaved runs).

Three processes: the loopback mock (``python -m devtools.mock_exchange``), ``strongroom serve`` (SQLite, exchanges
pointed at the mock, one worker) and this client. Both sides place a resting limit buy (far below the price: nothing
fills) with a fresh client order id, on warm clients (markets loaded, keep-alive connections), in interleaved rounds
whose order alternates. The Strongroom side is a key with scope ``trade`` on an account whose policy has every
rule set (symbols, notional, open orders, per-minute, price band), so every check runs: the market's rules, the
tickers (cached), the policy under the account's order lock, the pending row and its job, the venue call, the
answer's row, event and audit rows. ``python -m bench.trading [--rounds N] [--latency-ms 0,100]``: each latency is
the mock's ``slow`` mode (every venue request delayed so long, as a real exchange's round trip), rounds of both
kinds at each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
import uuid
from pathlib import Path

import httpx

from bench.fixture import Fixture, settings_env
from bench.gateway import ROOT, Process, _free_port, _wait, start_mock
from bench.orders import AMOUNT, PRICE, SYMBOL, Samples, bare_client, bare_create_order, new_funded_key

POLICY = {"allowed_symbols": ["BTC/*"], "max_notional_usd": "1000000", "max_open_orders": 1_000_000,
          "max_orders_per_minute": 1_000_000, "price_band_percent": "90"}


def _trader(fixture: Fixture, mock_url: str, creds: dict[str, str]) -> tuple[dict[str, str], int]:
    """A user of its own, its account on the mock with a policy, and a trade key; return (headers, account id)."""
    from strongroom.core import build_core
    from strongroom.users.services import snapshot

    core = build_core(fixture.settings(exchange_base_urls={"binance": mock_url}))

    async def setup() -> tuple[str, int]:
        try:
            user = core.users.create(f"trader{secrets.token_hex(4)}", secrets.token_urlsafe(16))
            owner = snapshot(user).principal(client_ip="127.0.0.1", scheme="token")
            account = await core.accounts.connect(owner, "binance", creds)
            await core.trading.set_account_policy(owner, account.id, POLICY)
            _, secret = core.api_keys.create(owner, name="bench trader", kind="bearer", scopes=["read", "trade"])
            return str(secret), account.id
        finally:
            await core.gateway.aclose()

    try:
        secret, account_id = asyncio.run(setup())
    finally:
        core.close()
    return {"Authorization": f"Bearer {secret}"}, account_id


def _serve(fixture: Fixture, workdir: Path, mock_url: str) -> tuple[Process, str]:
    port = _free_port()
    env = {**os.environ, **settings_env(
        fixture.data_dir, STRONGROOM_LOG_LEVEL="warning", STRONGROOM_EXCHANGE_REQUESTS_PER_SECOND="100000",
        STRONGROOM_EXCHANGE_BASE_URLS=f'{{"binance": "{mock_url}"}}', STRONGROOM_JOBS="off")}
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-c", "from strongroom.cli import app; app()", "serve", "--host", "127.0.0.1",
           "--port", str(port)]
    proc = Process(cmd, env, ROOT, workdir / "server-trading.log")
    url = f"http://127.0.0.1:{port}"
    _wait(url + "/healthz", proc.proc, proc.log_path, "strongroom serve (trading)")
    return proc, url


async def compare(url: str, mock_url: str, headers: dict[str, str], account_id: int, creds: dict[str, str], *,
                  rounds: int, warmup: int = 10) -> Samples:
    """Time ``rounds`` interleaved placements each way (``warmup`` untimed first); return the samples."""
    exchange = await bare_client(mock_url, creds)
    body = {"symbol": SYMBOL, "side": "buy", "type": "limit", "amount": str(AMOUNT), "price": str(PRICE)}
    samples = Samples()
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:

        async def through_strongroom() -> None:
            answer = await client.post(f"/v1/exchange-accounts/{account_id}/orders",
                                       json={**body, "client_order_id": "s" + uuid.uuid4().hex[:24]})
            if answer.status_code != 201:
                raise RuntimeError(f"placement answered {answer.status_code}: {answer.text[:300]}")

        try:
            for n in range(warmup + rounds):
                pair = [("bare", lambda: bare_create_order(exchange, "b" + uuid.uuid4().hex[:24])),
                        ("strongroom", through_strongroom)]
                for kind, call in (pair if n % 2 else pair[::-1]):
                    started = time.perf_counter()
                    await call()
                    if n >= warmup:
                        samples.add(kind, time.perf_counter() - started)
        finally:
            await exchange.close()
    return samples


def _latency(mock_url: str, ms: int) -> None:
    body = {"mode": "slow", "delay_seconds": ms / 1000} if ms else {"mode": "normal"}
    httpx.post(mock_url + "/_mock/behaviour", json=body, timeout=10).raise_for_status()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trading", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--latency-ms", default="0", help="comma-separated simulated exchange latencies")
    args = parser.parse_args(argv)
    latencies = [int(v) for v in args.latency_ms.split(",")]
    results: dict[int, Samples] = {}
    fixture = Fixture.create()
    workdir = fixture.data_dir.parent
    mock, mock_url = start_mock(workdir)
    server = None
    try:
        creds = new_funded_key(mock_url)
        headers, account_id = _trader(fixture, mock_url, creds)
        server, url = _serve(fixture, workdir, mock_url)
        for ms in latencies:
            _latency(mock_url, ms)
            results[ms] = asyncio.run(compare(url, mock_url, headers, account_id, creds, rounds=args.rounds))
        _latency(mock_url, 0)
    finally:
        if server is not None:
            server.stop()
        mock.stop()
        fixture.cleanup()
    for ms, samples in results.items():
        print(f"exchange latency +{ms} ms")
        for kind in ("bare", "strongroom"):
            print(f"  {kind:10} p50 {samples.p(kind, 0.5):7.2f} ms  p95 {samples.p(kind, 0.95):7.2f} ms  "
                  f"(n={len(samples.ms[kind])})")
        print(f"  strongroom / bare at p50: {samples.ratio_p50('strongroom', 'bare'):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
