"""Binance: spot, cross-margin and USD-M futures balances, key restrictions, markets and 24 h tickers.

Private endpoints check ``X-MBX-APIKEY`` and the HMAC-SHA256 ``signature`` over the query string,
and the ``timestamp`` against ``recvWindow``, with Binance's own error codes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devtools.mock_exchange.common import Call, venue_endpoint
from devtools.mock_exchange.state import MockAccount, render

RECV_WINDOW_MAX_MS = 60_000


def _error(code: int, msg: str, status: int) -> JSONResponse:
    return JSONResponse({"code": code, "msg": msg}, status_code=status)


def _now_ms() -> int:
    return int(time.time() * 1000)


async def authenticate(call: Call) -> MockAccount | Response:
    """Check key, signature and timestamp like Binance; return the account or Binance's error response."""
    request = call.request
    api_key = request.headers.get("X-MBX-APIKEY")
    if not api_key:
        return _error(-2014, "API-key format invalid.", 401)
    account = call.state.accounts.get("binance", {}).get(api_key)
    if account is None:
        return _error(-2015, "Invalid API-key, IP, or permissions for action.", 401)
    raw_query = request.scope.get("query_string", b"").decode("latin-1")
    if request.method == "POST":  # ccxt sends signed POST parameters in the body
        raw_query = "&".join(p for p in (raw_query, (await request.body()).decode("latin-1")) if p)
    parts = [p for p in raw_query.split("&") if p]
    signatures = [p.split("=", 1)[1] for p in parts if p.startswith("signature=")]
    signed = "&".join(p for p in parts if not p.startswith("signature="))
    if len(signatures) != 1 or not signatures[0]:
        return _error(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.", 400)
    params = dict(p.split("=", 1) for p in parts if "=" in p)
    try:
        timestamp = int(params["timestamp"])
        recv_window = int(params.get("recvWindow", "5000"))
    except (KeyError, ValueError):
        return _error(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.", 400)
    expected = hmac.new(account.secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signatures[0].lower()):
        return _error(-1022, "Signature for this request is not valid.", 400)
    now = _now_ms()
    if recv_window > RECV_WINDOW_MAX_MS or timestamp >= now + 1000 or now - timestamp > recv_window:
        return _error(-1021, "Timestamp for this request is outside of the recvWindow.", 400)
    return account


public = venue_endpoint("binance")
private = venue_endpoint("binance", authenticate)


# --------------------------------------------------------------------------- private


@private
async def account(call: Call) -> Response:
    """GET /api/v3/account: the spot wallet."""
    now = _now_ms()
    wallet = call.account.balances.get("spot", {})
    return JSONResponse(
        {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000",
                                "seller": "0.00000000"},
            "canTrade": True,
            "canWithdraw": call.account.can_withdraw,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": now - 60_000,
            "accountType": "SPOT",
            "balances": [{"asset": asset, "free": render(free), "locked": render(used)}
                         for asset, (free, used) in wallet.items()],
            "permissions": ["SPOT"],
            "uid": 354937868,
        }
    )


@private
async def margin_account(call: Call) -> Response:
    """GET /sapi/v1/margin/account: the cross-margin wallet (nothing borrowed)."""
    wallet = call.account.balances.get("margin", {})
    zero = render(Decimal(0))
    return JSONResponse(
        {
            "borrowEnabled": True,
            "marginLevel": "999.00000000",
            "totalAssetOfBtc": zero,
            "totalLiabilityOfBtc": zero,
            "totalNetAssetOfBtc": zero,
            "tradeEnabled": True,
            "transferEnabled": True,
            "userAssets": [
                {"asset": asset, "borrowed": zero, "free": render(free), "interest": zero, "locked": render(used),
                 "netAsset": render(free + used)}
                for asset, (free, used) in wallet.items()
            ],
        }
    )


@private
async def futures_account(call: Call) -> Response:
    """GET /fapi/v3/account: the USD-M futures wallet (used = initial margin of open positions)."""
    wallet = call.account.balances.get("futures", {})
    now = _now_ms()
    return JSONResponse(
        {
            "totalInitialMargin": "0",
            "totalWalletBalance": "0",
            "assets": [
                {"asset": asset, "walletBalance": render(free + used), "unrealizedProfit": "0.00000000",
                 "marginBalance": render(free + used), "initialMargin": render(used),
                 "availableBalance": render(free), "maxWithdrawAmount": render(free), "updateTime": now}
                for asset, (free, used) in wallet.items()
            ],
            "positions": [],
        }
    )


@private
async def api_restrictions(call: Call) -> Response:
    """GET /sapi/v1/account/apiRestrictions: what the key may do."""
    return JSONResponse(
        {
            "ipRestrict": False,
            "createTime": 1698645219000,
            "enableReading": True,
            "enableWithdrawals": call.account.can_withdraw,
            "enableInternalTransfer": False,
            "enableMargin": False,
            "enableFutures": False,
            "permitsUniversalTransfer": False,
            "enableVanillaOptions": False,
            "enableFixApiTrade": False,
            "enableFixReadOnly": False,
            "enableSpotAndMarginTrading": True,
            "enablePortfolioMarginTrading": False,
        }
    )


@private
async def coins(call: Call) -> Response:
    """GET /sapi/v1/capital/config/getall: every asset of the listed markets, one network each."""
    assets = sorted({asset for pair in call.state.markets("binance") for asset in pair})
    return JSONResponse([
        {"coin": asset, "name": asset, "depositAllEnable": True, "withdrawAllEnable": True, "trading": True,
         "isLegalMoney": False, "free": "0", "locked": "0", "freeze": "0", "withdrawing": "0", "ipoing": "0",
         "ipoable": "0", "storage": "0",
         "networkList": [{"network": asset, "coin": asset, "name": asset, "isDefault": True, "depositEnable": True,
                          "withdrawEnable": True, "withdrawFee": "0.0001", "withdrawMin": "0.001",
                          "withdrawMax": "1000", "withdrawIntegerMultiple": "0.00000001", "minConfirm": 1,
                          "unLockConfirm": 0, "busy": False}]}
        for asset in assets
    ])


@private
async def empty_list(call: Call) -> Response:
    """GET /sapi/v1/margin/allPairs and isolated/allPairs: no margin pairs."""
    return JSONResponse([])


# --------------------------------------------------------------------------- public


def _symbol_info(base: str, quote: str) -> dict[str, Any]:
    return {
        "symbol": base + quote,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.00000001", "maxPrice": "1000000.00000000",
             "tickSize": "0.00000001"},
            {"filterType": "LOT_SIZE", "minQty": "0.00000001", "maxQty": "9000000.00000000",
             "stepSize": "0.00000001"},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_MAKER"],
    }


@public
async def exchange_info(call: Call) -> Response:
    """GET /api/v3/exchangeInfo: one spot symbol per market (defaults plus priced symbols)."""
    return JSONResponse(
        {
            "timezone": "UTC",
            "serverTime": _now_ms(),
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": [_symbol_info(base, quote) for base, quote in call.state.markets("binance")],
        }
    )


def _ticker(symbol_id: str, price: Decimal) -> dict[str, Any]:
    p = render(price)
    now = _now_ms()
    return {
        "symbol": symbol_id, "priceChange": "0.00000000", "priceChangePercent": "0.000",
        "weightedAvgPrice": p, "prevClosePrice": p, "lastPrice": p, "lastQty": "0.01000000",
        "bidPrice": p, "bidQty": "1.00000000", "askPrice": p, "askQty": "1.00000000",
        "openPrice": p, "highPrice": p, "lowPrice": p, "volume": "100.00000000",
        "quoteVolume": render(price * 100), "openTime": now - 86_400_000, "closeTime": now,
        "firstId": 1, "lastId": 100, "count": 100,
    }


def _wanted(request: Request) -> set[str] | None:
    """The symbol ids asked for by ``symbol=`` or ``symbols=["..",".."]``; None for all."""
    if "symbol" in request.query_params:
        return {request.query_params["symbol"]}
    if "symbols" in request.query_params:
        try:
            return {str(s) for s in json.loads(request.query_params["symbols"])}
        except (ValueError, TypeError):
            return set()
    return None


@public
async def ticker_24hr(call: Call) -> Response:
    """GET /api/v3/ticker/24hr: every priced symbol, or ``symbol=`` (one object) / ``symbols=[...]``."""
    prices = {s.replace("/", ""): p for s, p in call.state.prices.get("binance", {}).items()}
    wanted = _wanted(call.request)
    if "symbol" in call.request.query_params:
        symbol_id = call.request.query_params["symbol"]
        if symbol_id not in prices:
            return _error(-1121, "Invalid symbol.", 400)
        return JSONResponse(_ticker(symbol_id, prices[symbol_id]))
    return JSONResponse([_ticker(s, p) for s, p in sorted(prices.items()) if wanted is None or s in wanted])


@public
async def no_derivatives(call: Call) -> Response:
    """GET /fapi/v1/exchangeInfo and /dapi/v1/exchangeInfo: no futures markets (ccxt loads them by default)."""
    return JSONResponse({"timezone": "UTC", "serverTime": _now_ms(), "rateLimits": [], "exchangeFilters": [],
                         "assets": [], "symbols": []})


@public
async def server_time(call: Call) -> Response:
    """GET /api/v3/time."""
    return JSONResponse({"serverTime": _now_ms()})


@public
async def ping(call: Call) -> Response:
    """GET /api/v3/ping."""
    return JSONResponse({})


ROUTES = [
    Route("/api/v3/account", account),
    Route("/sapi/v1/margin/account", margin_account),
    Route("/fapi/v3/account", futures_account),
    Route("/sapi/v1/account/apiRestrictions", api_restrictions),
    Route("/sapi/v1/margin/allPairs", empty_list),
    Route("/sapi/v1/margin/isolated/allPairs", empty_list),
    Route("/sapi/v1/capital/config/getall", coins),
    Route("/api/v3/exchangeInfo", exchange_info),
    Route("/fapi/v1/exchangeInfo", no_derivatives),
    Route("/dapi/v1/exchangeInfo", no_derivatives),
    Route("/api/v3/ticker/24hr", ticker_24hr),
    Route("/api/v3/time", server_time),
    Route("/api/v3/ping", ping),
]
