"""OKX: trading and funding balances, account config (the key's ``perm``), spot instruments and tickers.

Private endpoints check the ``OK-ACCESS-*`` headers: base64 HMAC-SHA256 over timestamp + method +
path?query + body, the passphrase, and a 30 s timestamp window, with OKX's own error codes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devtools.mock_exchange.common import Call, venue_endpoint
from devtools.mock_exchange.state import MockAccount, plain

TIMESTAMP_WINDOW_S = 30.0


def _error(code: str, msg: str, status: int = 401) -> JSONResponse:
    return JSONResponse({"code": code, "msg": msg, "data": []}, status_code=status)


def _ok(data: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"code": "0", "msg": "", "data": data})


def _now_ms() -> str:
    return str(int(time.time() * 1000))


async def authenticate(call: Call) -> MockAccount | Response:
    """Check OK-ACCESS-* headers like OKX; return the account or OKX's error response."""
    request = call.request
    headers = request.headers
    api_key = headers.get("OK-ACCESS-KEY")
    passphrase = headers.get("OK-ACCESS-PASSPHRASE")
    timestamp = headers.get("OK-ACCESS-TIMESTAMP")
    sign = headers.get("OK-ACCESS-SIGN")
    if not api_key:
        return _error("50103", 'Request header "OK-ACCESS-KEY" cannot be empty.')
    if not passphrase:
        return _error("50104", 'Request header "OK-ACCESS-PASSPHRASE" cannot be empty.')
    if not sign:
        return _error("50106", 'Request header "OK-ACCESS-SIGN" cannot be empty.')
    if not timestamp:
        return _error("50107", 'Request header "OK-ACCESS-TIMESTAMP" cannot be empty.')
    account = call.state.accounts.get("okx", {}).get(api_key)
    if account is None:
        return _error("50111", "Invalid OK-ACCESS-KEY")
    try:
        sent_at = datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return _error("50112", "Invalid OK-ACCESS-TIMESTAMP")
    if abs(time.time() - sent_at) > TIMESTAMP_WINDOW_S:
        return _error("50102", "Timestamp request expired")
    path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1").split("?", 1)[0]
    query = request.scope.get("query_string", b"").decode("latin-1")
    try:
        body = (await request.body()).decode("utf-8")
    except ClientDisconnect:  # the client gave up (e.g. "slow" mode outlived its timeout)
        return Response(status_code=499)
    prehash = timestamp + request.method.upper() + path + ("?" + query if query else "") + body
    digest = hmac.new(account.secret.encode(), prehash.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(base64.b64encode(digest).decode(), sign):
        return _error("50113", "Invalid Sign")
    if not hmac.compare_digest(str(account.passphrase or ""), passphrase):
        return _error("50105", 'Request header "OK-ACCESS-PASSPHRASE" incorrect.')
    return account


public = venue_endpoint("okx")
private = venue_endpoint("okx", authenticate)


# --------------------------------------------------------------------------- private


@private
async def balance(call: Call) -> Response:
    """GET /api/v5/account/balance: the unified trading account (eq = total, availBal, frozenBal)."""
    now = _now_ms()
    wallet = call.account.balances.get("trading", {})
    details = [
        {"ccy": ccy, "availBal": plain(free), "frozenBal": plain(used), "cashBal": plain(free + used),
         "eq": plain(free + used), "uTime": now}
        for ccy, (free, used) in wallet.items()
    ]
    return _ok([{"totalEq": "", "adjEq": "", "uTime": now, "details": details}])


@private
async def funding_balances(call: Call) -> Response:
    """GET /api/v5/asset/balances: the funding account (bal = total, availBal, frozenBal)."""
    wallet = call.account.balances.get("funding", {})
    return _ok([{"ccy": ccy, "bal": plain(free + used), "availBal": plain(free), "frozenBal": plain(used)}
                for ccy, (free, used) in wallet.items()])


@private
async def config(call: Call) -> Response:
    """GET /api/v5/account/config: account settings, including the key's ``perm``."""
    perm = "read_only,trade" + (",withdraw" if call.account.can_withdraw else "")
    return _ok(
        [
            {
                "acctLv": "2",
                "autoLoan": False,
                "greeksType": "PA",
                "label": "strongroom-mock",
                "level": "Lv1",
                "mainUid": "44705892343619584",
                "perm": perm,
                "posMode": "net_mode",
                "uid": "44705892343619584",
            }
        ]
    )


@private
async def currencies(call: Call) -> Response:
    """GET /api/v5/asset/currencies: every asset of the listed markets, one chain each."""
    assets = sorted({asset for pair in call.state.markets("okx") for asset in pair})
    return _ok([
        {"ccy": ccy, "name": ccy, "chain": f"{ccy}-{ccy}", "canDep": True, "canWd": True, "canInternal": True,
         "minDep": "0.00000001", "minWd": "0.001", "maxWd": "1000", "wdTickSz": "8", "minFee": "0.0001",
         "maxFee": "0.001", "mainNet": True, "needTag": False, "logoLink": "", "depQuotaFixed": "",
         "usedDepQuotaFixed": "", "depEstOpenTime": "", "wdEstOpenTime": ""}
        for ccy in assets
    ])


# --------------------------------------------------------------------------- public


def _instrument(base: str, quote: str) -> dict[str, str]:
    return {
        "instType": "SPOT", "instId": f"{base}-{quote}", "uly": "", "instFamily": "", "baseCcy": base,
        "quoteCcy": quote, "settleCcy": "", "ctVal": "", "ctMult": "", "ctValCcy": "", "optType": "", "stk": "",
        "listTime": "1606468572000", "expTime": "", "lever": "10", "tickSz": "0.00000001",
        "lotSz": "0.00000001", "minSz": "0.00001", "ctType": "", "alias": "", "state": "live",
        "maxLmtSz": "9999999999", "maxMktSz": "1000000", "ruleType": "normal",
    }


@public
async def instruments(call: Call) -> Response:
    """GET /api/v5/public/instruments?instType=SPOT: one instrument per market; other types are empty."""
    if call.request.query_params.get("instType", "SPOT") != "SPOT":
        return _ok([])
    return _ok([_instrument(base, quote) for base, quote in call.state.markets("okx")])


def _ticker(inst_id: str, price: Decimal) -> dict[str, str]:
    p = plain(price)
    return {"instType": "SPOT", "instId": inst_id, "last": p, "lastSz": "0.1", "askPx": p, "askSz": "1",
            "bidPx": p, "bidSz": "1", "open24h": p, "high24h": p, "low24h": p, "volCcy24h": plain(price * 10),
            "vol24h": "10", "ts": _now_ms(), "sodUtc0": p, "sodUtc8": p}


def _prices(call: Call) -> dict[str, Decimal]:
    return {s.replace("/", "-"): p for s, p in call.state.prices.get("okx", {}).items()}


@public
async def tickers(call: Call) -> Response:
    """GET /api/v5/market/tickers?instType=SPOT: every priced symbol."""
    if call.request.query_params.get("instType", "SPOT") != "SPOT":
        return _ok([])
    return _ok([_ticker(i, p) for i, p in sorted(_prices(call).items())])


@public
async def ticker(call: Call) -> Response:
    """GET /api/v5/market/ticker?instId=BTC-USDT: one symbol (51001 if it has no price)."""
    inst_id = call.request.query_params.get("instId", "")
    prices = _prices(call)
    if inst_id not in prices:
        return _error("51001", "Instrument ID does not exist", 400)
    return _ok([_ticker(inst_id, prices[inst_id])])


ROUTES = [
    Route("/api/v5/account/balance", balance),
    Route("/api/v5/asset/balances", funding_balances),
    Route("/api/v5/account/config", config),
    Route("/api/v5/asset/currencies", currencies),
    Route("/api/v5/public/instruments", instruments),
    Route("/api/v5/market/tickers", tickers),
    Route("/api/v5/market/ticker", ticker),
]
