"""The loopback mock itself (devtools/mock_exchange): real signature checks, behaviours, control endpoints,
and ccxt's own fetch_balance / load_markets / fetch_tickers against it (plain ccxt, no gateway)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from support import free_port
from support.exchange_mock import BINANCE, OKX, Mock

from strongroom.exchanges.client import rebase_urls

ROOT = Path(__file__).resolve().parents[2]


def _binance_query(secret: str, timestamp: int | None = None) -> str:
    query = f"timestamp={timestamp or int(time.time() * 1000)}&recvWindow=5000"
    signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{query}&signature={signature}"


def test_mock_really_checks_binance_signatures(mock: Mock) -> None:
    headers = {"X-MBX-APIKEY": BINANCE["api_key"]}
    bad = httpx.get(f"{mock.url}/api/v3/account?{_binance_query('not-the-secret')}", headers=headers)
    assert bad.status_code == 400
    assert bad.json() == {"code": -1022, "msg": "Signature for this request is not valid."}
    good = httpx.get(f"{mock.url}/api/v3/account?{_binance_query(BINANCE['secret'])}", headers=headers)
    assert good.status_code == 200
    assert good.json()["balances"] == [{"asset": "BTC", "free": "0.50000000", "locked": "0.10000000"},
                                       {"asset": "USDT", "free": "1200.00000000", "locked": "0.00000000"}]
    stale = httpx.get(
        f"{mock.url}/api/v3/account?{_binance_query(BINANCE['secret'], int(time.time() * 1000) - 60_000)}",
        headers=headers,
    )
    assert stale.status_code == 400 and stale.json()["code"] == -1021
    unknown = httpx.get(
        f"{mock.url}/sapi/v1/account/apiRestrictions?{_binance_query('x')}", headers={"X-MBX-APIKEY": "nobody"}
    )
    assert unknown.status_code == 401
    assert unknown.json() == {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
    for path in ("/sapi/v1/margin/account", "/fapi/v3/account"):  # every private endpoint checks
        assert httpx.get(f"{mock.url}{path}?{_binance_query('nope')}", headers=headers).status_code == 400
        assert httpx.get(f"{mock.url}{path}?{_binance_query(BINANCE['secret'])}", headers=headers).status_code == 200


def test_mock_really_checks_okx_signatures(mock: Mock) -> None:
    timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    def sign(secret: str, path: str) -> str:
        digest = hmac.new(secret.encode(), (timestamp + "GET" + path).encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    headers = {"OK-ACCESS-KEY": OKX["api_key"], "OK-ACCESS-PASSPHRASE": OKX["passphrase"],
               "OK-ACCESS-TIMESTAMP": timestamp}
    for path in ("/api/v5/account/balance", "/api/v5/asset/balances", "/api/v5/account/config"):
        bad = httpx.get(mock.url + path, headers={**headers, "OK-ACCESS-SIGN": sign("nope", path)})
        assert bad.status_code == 401 and bad.json()["code"] == "50113"
        good = httpx.get(mock.url + path, headers={**headers, "OK-ACCESS-SIGN": sign(OKX["secret"], path)})
        assert good.status_code == 200 and good.json()["code"] == "0"
    path = "/api/v5/account/balance"
    unknown = httpx.get(mock.url + path, headers={**headers, "OK-ACCESS-KEY": "nobody",
                                                  "OK-ACCESS-SIGN": sign(OKX["secret"], path)})
    assert unknown.status_code == 401
    assert unknown.json() == {"code": "50111", "msg": "Invalid OK-ACCESS-KEY", "data": []}
    wrong_pass = httpx.get(mock.url + path, headers={**headers, "OK-ACCESS-PASSPHRASE": "x",
                                                     "OK-ACCESS-SIGN": sign(OKX["secret"], path)})
    assert wrong_pass.json()["code"] == "50105"


def test_behaviours_apply_to_every_venue_endpoint(mock: Mock) -> None:
    mock.mode("down")
    assert httpx.get(mock.url + "/api/v3/ping").status_code == 503
    assert httpx.get(mock.url + "/api/v5/market/tickers").status_code == 503
    mock.mode("rate_limited")
    limited = httpx.get(mock.url + "/api/v3/time")
    assert limited.status_code == 429 and limited.json()["code"] == -1003
    assert httpx.get(mock.url + "/api/v5/public/instruments").json()["code"] == "50011"
    mock.mode("normal")
    assert httpx.get(mock.url + "/api/v3/ping").json() == {}


def test_control_endpoints_refuse_bad_input(mock: Mock) -> None:
    cases: list[tuple[str, Any]] = [
        ("/_mock/behaviour", {"mode": "weird"}),
        ("/_mock/behaviour", {"mode": "slow", "delay_seconds": "soon"}),
        ("/_mock/accounts", {"exchange": "kraken", "api_key": "a", "secret": "b"}),
        ("/_mock/accounts", {"exchange": "binance", "api_key": "a"}),
        ("/_mock/accounts", [1, 2]),
        ("/_mock/balances", {"exchange": "binance", "api_key": "nobody", "balances": {}}),
        ("/_mock/balances", {"exchange": "binance", "api_key": BINANCE["api_key"], "account_type": "funding",
                             "balances": {}}),
        ("/_mock/balances", {"exchange": "binance", "api_key": BINANCE["api_key"],
                             "balances": {"BTC": {"free": "-1"}}}),
        ("/_mock/balances", {"exchange": "binance", "api_key": BINANCE["api_key"],
                             "balances": {"BTC": {"free": "1", "locked": "1"}}}),
        ("/_mock/prices", {"exchange": "okx", "prices": {"btcusdt": "1"}}),
        ("/_mock/prices", {"exchange": "okx", "prices": {"BTC/USDT": "NaN"}}),
        ("/_mock/prices", {"exchange": "okx", "prices": ["BTC/USDT"]}),
    ]
    for path, body in cases:
        response = httpx.post(mock.url + path, json=body)
        assert response.status_code == 400, (path, body)
        assert isinstance(response.json()["error"], str)
    assert httpx.post(mock.url + "/_mock/prices", content=b"{", headers={"content-type": "application/json"}
                      ).status_code == 400


def test_balances_and_prices_are_set_exactly(mock: Mock) -> None:
    creds = mock.new_key("okx")
    answer = mock.post("/_mock/balances", {"exchange": "okx", "api_key": creds["api_key"], "account_type": "funding",
                                           "balances": {"SOL": {"free": "12.3456789012"}}})
    assert answer["balances"] == {"SOL": {"free": "12.3456789012", "used": "0.00000000"}}
    prices = mock.post("/_mock/prices", {"exchange": "okx", "prices": {"SOL/USDT": "150.25", "ETH/BTC": None}})
    try:
        assert prices["prices"]["SOL/USDT"] == "150.25" and "ETH/BTC" not in prices["prices"]
        tickers = httpx.get(mock.url + "/api/v5/market/tickers?instType=SPOT").json()["data"]
        assert {t["instId"]: t["last"] for t in tickers}["SOL-USDT"] == "150.25"
        single = httpx.get(mock.url + "/api/v5/market/ticker?instId=SOL-USDT").json()["data"][0]
        assert single["last"] == "150.25"
        assert httpx.get(mock.url + "/api/v5/market/ticker?instId=ETH-BTC").json()["code"] == "51001"
        # markets: the defaults (ETH/BTC stays listed without a price) plus every priced symbol
        mock.post("/_mock/prices", {"exchange": "binance", "prices": {"ADA/BTC": "0.00001"}})
        symbols = {s["symbol"] for s in httpx.get(mock.url + "/api/v3/exchangeInfo").json()["symbols"]}
        assert {"ADABTC", "ETHBTC", "BTCUSDT", "SOLUSDT"} <= symbols
    finally:
        mock.post("/_mock/prices", {"exchange": "okx", "prices": {"SOL/USDT": None, "ETH/BTC": "0.06"}})
        mock.post("/_mock/prices", {"exchange": "binance", "prices": {"ADA/BTC": None}})


def test_stats_count_paths_connections_and_in_flight(mock: Mock) -> None:
    mock.reset()
    with httpx.Client() as client:
        for _ in range(3):
            client.get(mock.url + "/api/v3/ping")
    venue = mock.venue("binance")
    assert venue["paths"] == {"/api/v3/ping": 3}
    assert (venue["requests"], venue["connections"], venue["in_flight"], venue["max_in_flight"]) == (3, 1, 0, 1)
    assert mock.stats()["requests"] == 3


def test_ccxt_reads_balances_markets_and_tickers_from_the_mock(mock: Mock) -> None:
    """Plain ccxt with its own defaults (floats; futures markets and currencies loaded too), as any client
    of the mock would use it: only the URLs change."""
    import ccxt.async_support as ccxt

    async def main() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for name, creds in (("binance", {"apiKey": BINANCE["api_key"], "secret": BINANCE["secret"]}),
                            ("okx", {"apiKey": OKX["api_key"], "secret": OKX["secret"],
                                     "password": OKX["passphrase"]})):
            exchange = getattr(ccxt, name)(creds)
            exchange.urls["api"] = rebase_urls(exchange.urls["api"], mock.url)
            try:
                await exchange.load_markets()
                seen[name] = {
                    "markets": sorted(exchange.markets),
                    "balance": (await exchange.fetch_balance())["total"],
                    "tickers": {s: t["last"] for s, t in (await exchange.fetch_tickers()).items()},
                    "ticker": (await exchange.fetch_ticker("ETH/USDT"))["last"],
                    "currencies": sorted(exchange.currencies),
                }
            finally:
                await exchange.close()
        return seen

    seen = asyncio.run(main())
    assert seen["binance"]["balance"] == {"BTC": 0.6, "USDT": 1200.0}
    assert seen["okx"]["balance"] == {"BTC": 0.25, "ETH": 2.0, "USDC": 1000.0}
    for name in ("binance", "okx"):
        assert seen[name]["markets"] == ["BTC/USDC", "BTC/USDT", "ETH/BTC", "ETH/USDT", "SOL/USDT"]
        assert seen[name]["tickers"] == {"BTC/USDC": 50000.0, "BTC/USDT": 50000.0, "ETH/BTC": 0.06,
                                         "ETH/USDT": 3000.0}
        assert seen[name]["ticker"] == 3000.0
        assert {"BTC", "ETH", "SOL", "USDC", "USDT"} <= set(seen[name]["currencies"])


def test_runs_from_the_checkout_and_as_the_cli_command() -> None:
    """``python -m devtools.mock_exchange`` from the checkout (what ``make demo`` runs), and the installed
    ``strongroom mock-exchange``, which finds devtools/ beside the package whatever the working directory."""
    bin_dir = Path(sys.executable).parent
    for command, cwd in (([sys.executable, "-m", "devtools.mock_exchange"], ROOT),
                         ([str(bin_dir / "strongroom"), "mock-exchange"], Path("/"))):
        port = free_port()
        proc = subprocess.Popen([*command, "--port", str(port)], cwd=cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/_mock/stats", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(10)
        assert "demo-binance-key" in (proc.stdout.read() if proc.stdout else "")


# --------------------------------------------------------------------------- orders


def _binance_signed(secret: str, params: str) -> str:
    query = f"{params}&timestamp={int(time.time() * 1000)}&recvWindow=5000"
    return f"{query}&signature={hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()}"


def _okx_headers(creds: dict[str, str], method: str, path: str, body: str = "") -> dict[str, str]:
    timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    digest = hmac.new(creds["secret"].encode(), (timestamp + method + path + body).encode(), hashlib.sha256).digest()
    return {"OK-ACCESS-KEY": creds["api_key"], "OK-ACCESS-PASSPHRASE": creds["passphrase"],
            "OK-ACCESS-TIMESTAMP": timestamp, "OK-ACCESS-SIGN": base64.b64encode(digest).decode(),
            "Content-Type": "application/json"}


def test_order_endpoints_check_signatures_and_answer_bad_input_in_the_venues_shape(mock: Mock) -> None:
    binance = mock.new_key("binance")
    headers = {"X-MBX-APIKEY": binance["api_key"], "Content-Type": "application/x-www-form-urlencoded"}
    order = "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.01&price=40000&timeInForce=GTC&newClientOrderId=a1"
    forged = httpx.post(f"{mock.url}/api/v3/order", content=_binance_signed("not-the-secret", order), headers=headers)
    assert forged.status_code == 400 and forged.json()["code"] == -1022
    assert mock.orders("binance", binance["api_key"]) == []
    for params, code in (("symbol=BTCUSDT&side=BUY&type=LIMIT&price=40000", -1102),  # no quantity
                         ("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=abc&price=1", -1100),
                         ("symbol=NOPE&side=BUY&type=MARKET&quantity=1", -1121),
                         ("symbol=BTCUSDT&side=UP&type=MARKET&quantity=1", -1102),
                         ("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.011111&price=40000", -1013)):
        answer = httpx.post(f"{mock.url}/api/v3/order", content=_binance_signed(binance["secret"], params),
                            headers=headers)
        assert (answer.status_code, answer.json()["code"]) == (400, code), params
    for method, path in (("GET", "/api/v3/order?symbol=BTCUSDT&orderId=1"), ("DELETE", "/api/v3/openOrders?x=1"),
                         ("GET", "/api/v3/allOrders?symbol=BTCUSDT")):
        base, _, params = path.partition("?")
        answer = httpx.request(method, f"{mock.url}{base}?{_binance_signed('nope', params)}", headers=headers)
        assert answer.json()["code"] == -1022

    okx = mock.new_key("okx")
    body = json.dumps({"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit", "sz": "0.01",
                       "px": "40000", "clOrdId": "a1"})
    forged_headers = {**_okx_headers(okx, "POST", "/api/v5/trade/order", body), "OK-ACCESS-SIGN": "AAAA"}
    assert httpx.post(f"{mock.url}/api/v5/trade/order", content=body, headers=forged_headers).json()["code"] == "50113"
    assert mock.orders("okx", okx["api_key"]) == []
    bad = httpx.post(f"{mock.url}/api/v5/trade/order", content="{",
                     headers=_okx_headers(okx, "POST", "/api/v5/trade/order", "{"))
    assert (bad.status_code, bad.json()["code"]) == (400, "50002")
    odd = json.dumps({"instId": "BTC-USDT", "side": "buy", "ordType": "limit", "sz": "x"})
    refused = httpx.post(f"{mock.url}/api/v5/trade/order", content=odd,
                         headers=_okx_headers(okx, "POST", "/api/v5/trade/order", odd)).json()
    assert (refused["code"], refused["data"][0]["sCode"]) == ("1", "51000")


def test_plain_ccxt_trades_against_the_mock(mock: Mock) -> None:
    """Plain ccxt with its defaults (floats; OKX's batch endpoint): place, list, fill, cancel-all, history."""
    import ccxt.async_support as ccxt

    binance = mock.new_key("binance", balances={"BTC": {"free": "1"}, "USDT": {"free": "10000"}})
    okx = mock.new_key("okx", balances={"BTC": {"free": "1"}, "USDT": {"free": "10000"}})

    async def main() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for name, creds in (("binance", {"apiKey": binance["api_key"], "secret": binance["secret"]}),
                            ("okx", {"apiKey": okx["api_key"], "secret": okx["secret"],
                                     "password": okx["passphrase"]})):
            exchange = getattr(ccxt, name)(creds)
            exchange.urls["api"] = rebase_urls(exchange.urls["api"], mock.url)
            try:
                resting = [await exchange.create_order("BTC/USDT", "limit", "buy", 0.01, 40000 + i) for i in range(3)]
                sold = await exchange.create_order("BTC/USDT", "market", "sell", 0.1)
                listed = await exchange.fetch_open_orders("BTC/USDT")
                if name == "binance":  # DELETE /api/v3/openOrders and GET /api/v3/allOrders
                    canceled = await exchange.cancel_all_orders("BTC/USDT")
                    history = await exchange.fetch_orders("BTC/USDT")
                else:
                    canceled = [await exchange.cancel_order(o["id"], "BTC/USDT") for o in listed]
                    history = await exchange.fetch_closed_orders("BTC/USDT")
                seen[name] = {"resting": [o["id"] for o in resting], "listed": sorted(o["id"] for o in listed),
                              "sold": (await exchange.fetch_order(sold["id"], "BTC/USDT"))["status"],
                              "canceled": len(canceled), "history": len(history),
                              "open_after": await exchange.fetch_open_orders("BTC/USDT"),
                              "balance": (await exchange.fetch_balance())["free"]}
            finally:
                await exchange.close()
        return seen

    seen = asyncio.run(main())
    for name in ("binance", "okx"):
        assert seen[name]["listed"] == sorted(seen[name]["resting"])
        # allOrders has all 4; OKX's orders-history as ccxt asks it (state=filled) the filled one
        assert (seen[name]["sold"], seen[name]["canceled"], seen[name]["history"]) == (
            "closed", 3, 4 if name == "binance" else 1)
        assert seen[name]["open_after"] == []
        assert seen[name]["balance"] == {"BTC": 0.9, "USDT": 14995.0}  # 0.1 sold at 50,000 less a 0.1 % fee
    assert mock.venue("binance")["orders_by_key"][binance["api_key"]] == 4


def test_fault_and_order_controls_refuse_bad_input(mock: Mock) -> None:
    for body in ({"exchange": "binance", "fault": "meteor"}, {"exchange": "kraken", "fault": "lost_answer"},
                 {"exchange": "okx", "fault": "lost_answer", "status": 200},
                 {"exchange": "okx", "fault": "lost_answer", "count": 0},
                 {"exchange": "okx", "fault": "lost_answer", "delay_seconds": "soon"},
                 {"exchange": "okx", "fault": "insufficient_balance", "api_key": 7}):
        answer = httpx.post(mock.url + "/_mock/faults", json=body)
        assert answer.status_code == 400 and isinstance(answer.json()["error"], str), body
    armed = mock.post("/_mock/faults", {"exchange": "okx", "fault": "insufficient_balance", "count": 2})
    assert armed["faults"][-1] == {"exchange": "okx", "fault": "insufficient_balance", "api_key": None,
                                   "remaining": 2, "status": 503, "delay_seconds": None}
    assert mock.post("/_mock/faults", {"clear": True}) == {"faults": []}
    assert httpx.get(mock.url + "/_mock/orders", params={"api_key": "nobody"}).json() == {"orders": []}
