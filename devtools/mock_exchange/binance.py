"""Binance: spot, cross-margin and USD-M futures balances, key restrictions, markets, 24 h tickers and spot orders.

Private endpoints check ``X-MBX-APIKEY`` and the HMAC-SHA256 ``signature`` over the query string,
and the ``timestamp`` against ``recvWindow``, with Binance's own error codes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devtools.mock_exchange import orders as engine
from devtools.mock_exchange.common import Call, venue_endpoint
from devtools.mock_exchange.orders import MockOrder, Refused
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


# --------------------------------------------------------------------------- orders

STATUS = {"open": "NEW", "filled": "FILLED", "canceled": "CANCELED", "expired": "EXPIRED"}
REFUSALS: dict[str, tuple[int, str]] = {
    "insufficient_balance": (-2010, "Account has insufficient balance for requested action."),
    "duplicate_client_order_id": (-2010, "Duplicate order sent."),
    "would_take": (-2010, "Order would immediately match and take."),
    "lot_size": (-1013, "Filter failure: LOT_SIZE"),
    "min_qty": (-1013, "Filter failure: LOT_SIZE"),
    "price_filter": (-1013, "Filter failure: PRICE_FILTER"),
    "notional": (-1013, "Filter failure: NOTIONAL"),
    "unknown_symbol": (-1121, "Invalid symbol."),
    "no_price": (-1121, "Invalid symbol."),
    "not_open": (-2011, "Unknown order sent."),
}


class BadParameter(Exception):
    """A missing or malformed parameter: Binance's -1102 / -1100."""

    def __init__(self, name: str, illegal: bool = False) -> None:
        super().__init__(name)
        self.response = (_error(-1100, f"Illegal characters found in parameter '{name}'.", 400) if illegal else
                         _error(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
                                400))


async def _params(call: Call) -> dict[str, str]:
    """Return the request's parameters: the query string, plus the form body of a POST."""
    raw = call.request.scope.get("query_string", b"").decode("latin-1")
    if call.request.method == "POST":
        raw = "&".join(p for p in (raw, (await call.request.body()).decode("latin-1")) if p)
    return dict(parse_qsl(raw, keep_blank_values=True))


def _symbol(call: Call, params: dict[str, str], required: bool = True) -> str | None:
    """Return the unified symbol of ``symbol=BTCUSDT`` (None if absent and not required)."""
    symbol_id = params.get("symbol")
    if not symbol_id:
        if required:
            raise BadParameter("symbol")
        return None
    for base, quote in call.state.markets("binance"):
        if base + quote == symbol_id:
            return f"{base}/{quote}"
    raise Refused("unknown_symbol")


def _decimal(params: dict[str, str], name: str) -> Decimal:
    text = params.get(name)
    if not text:
        raise BadParameter(name)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise BadParameter(name, illegal=True) from None
    if not value.is_finite():
        raise BadParameter(name, illegal=True)
    return value


def _order_doc(order: MockOrder) -> dict[str, Any]:
    """An order as GET /api/v3/order, openOrders and allOrders show it."""
    return {
        "symbol": order.symbol.replace("/", ""), "orderId": order.order_id, "orderListId": -1,
        "clientOrderId": order.client_order_id, "price": render(order.price or Decimal(0)),
        "origQty": render(order.amount), "executedQty": render(order.filled),
        "cummulativeQuoteQty": render(order.cost), "status": STATUS[order.status],
        "timeInForce": order.time_in_force, "type": _type(order), "side": order.side.upper(),
        "stopPrice": render(Decimal(0)), "icebergQty": render(Decimal(0)), "time": order.created_ms,
        "updateTime": order.updated_ms, "isWorking": order.status == "open", "workingTime": order.created_ms,
        "origQuoteOrderQty": render(Decimal(0)), "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def _type(order: MockOrder) -> str:
    if order.type == "market":
        return "MARKET"
    return "LIMIT_MAKER" if order.post_only else "LIMIT"


def _refused(exc: Refused) -> JSONResponse:
    code, msg = REFUSALS.get(exc.reason, (-1013, "Invalid order."))
    return _error(code, msg, 400)


def _orders_endpoint(handler: Any) -> Any:
    """Answer a refusal or a bad parameter in Binance's error shape."""

    async def wrapped(call: Call) -> Response:
        try:
            return await handler(call)  # type: ignore[no-any-return]
        except Refused as exc:
            return _refused(exc)
        except BadParameter as exc:
            return exc.response

    wrapped.__name__, wrapped.__doc__ = handler.__name__, handler.__doc__
    return wrapped


async def _new_order(call: Call) -> Response:
    """POST /api/v3/order: place (LIMIT, LIMIT_MAKER, MARKET); the FULL answer with its fills."""
    params = await _params(call)
    symbol = _symbol(call, params)
    assert symbol is not None
    side = params.get("side", "").lower()
    kind = params.get("type", "").upper()
    if side not in engine.SIDES:
        raise BadParameter("side")
    if kind not in ("LIMIT", "LIMIT_MAKER", "MARKET"):
        raise BadParameter("type")
    amount = _decimal(params, "quantity")
    price = _decimal(params, "price") if kind != "MARKET" else None
    tif = params.get("timeInForce", "GTC" if kind != "MARKET" else "")
    if kind == "LIMIT" and tif not in engine.TIME_IN_FORCE:
        raise BadParameter("timeInForce")
    client_order_id = params.get("newClientOrderId") or f"mock-{time.time_ns()}"
    order = engine.place(call.state, "binance", call.account, symbol=symbol, side=side,
                         type="market" if kind == "MARKET" else "limit", amount=amount, price=price,
                         client_order_id=client_order_id, time_in_force=tif or "GTC",
                         post_only=kind == "LIMIT_MAKER")
    answer = {key: value for key, value in _order_doc(order).items()
              if key not in ("stopPrice", "icebergQty", "time", "updateTime", "isWorking")}
    answer["transactTime"] = order.updated_ms
    answer["fills"] = [] if order.fill_price is None else [{
        "price": render(order.fill_price), "qty": render(order.filled), "commission": render(order.fee),
        "commissionAsset": order.fee_asset, "tradeId": order.order_id}]
    lost = engine.take_fault(call.state, "binance", call.account.api_key, "lost_answer")
    if lost is not None:
        if lost.delay_seconds is None:
            return Response(status_code=lost.status, content=b"")
        await asyncio.sleep(lost.delay_seconds)  # the client has given up by now
    return JSONResponse(answer)


@private
@_orders_endpoint
async def order(call: Call) -> Response:
    """/api/v3/order: POST places, GET queries (orderId or origClientOrderId), DELETE cancels."""
    if call.request.method == "POST":
        return await _new_order(call)
    if call.request.method == "GET" and (
            fault := engine.take_fault(call.state, "binance", call.account.api_key, "read_unavailable")) is not None:
        return Response(status_code=fault.status, content=b"")
    params = await _params(call)
    symbol = _symbol(call, params)
    order_id = params.get("orderId")
    client_order_id = params.get("origClientOrderId")
    if not order_id and not client_order_id:
        raise BadParameter("orderId")
    try:
        found = engine.find(call.state, "binance", call.account, symbol=symbol,
                            order_id=int(order_id) if order_id else None, client_order_id=client_order_id)
    except ValueError:
        raise BadParameter("orderId", illegal=True) from None
    if found is None:
        return (_error(-2013, "Order does not exist.", 400) if call.request.method == "GET"
                else _error(-2011, "Unknown order sent.", 400))
    if call.request.method == "GET":
        return JSONResponse(_order_doc(found))
    engine.cancel(call.state, "binance", call.account, found)
    return JSONResponse(_canceled_doc(found))


def _canceled_doc(order: MockOrder) -> dict[str, Any]:
    """A cancel's answer: Binance gives the cancel request a client id of its own (``origClientOrderId`` is the order's)."""
    doc = {key: value for key, value in _order_doc(order).items()
           if key not in ("stopPrice", "icebergQty", "time", "updateTime", "isWorking", "workingTime")}
    doc.update({"origClientOrderId": order.client_order_id, "clientOrderId": f"cancel-{order.order_id}",
                "transactTime": order.updated_ms})
    return doc


@private
@_orders_endpoint
async def open_orders(call: Call) -> Response:
    """/api/v3/openOrders: GET lists the key's open orders (``symbol`` optional); DELETE cancels them (``symbol``)."""
    params = await _params(call)
    if call.request.method == "GET":
        symbol = _symbol(call, params, required=False)
        return JSONResponse([_order_doc(o) for o in engine.orders_of(call.state, "binance", call.account, symbol,
                                                                     open_only=True)])
    symbol = _symbol(call, params)
    canceled = [engine.cancel(call.state, "binance", call.account, o)
                for o in engine.orders_of(call.state, "binance", call.account, symbol, open_only=True)]
    return JSONResponse([_canceled_doc(o) for o in canceled])


@private
@_orders_endpoint
async def all_orders(call: Call) -> Response:
    """GET /api/v3/allOrders?symbol=: the key's orders on ``symbol``, every status, oldest first (``limit``)."""
    params = await _params(call)
    symbol = _symbol(call, params)
    found = engine.orders_of(call.state, "binance", call.account, symbol)
    try:
        limit = min(int(params.get("limit") or 500), 1000)
    except ValueError:
        raise BadParameter("limit", illegal=True) from None
    return JSONResponse([_order_doc(o) for o in found[-limit:]])


# --------------------------------------------------------------------------- public


def _symbol_info(base: str, quote: str) -> dict[str, Any]:
    rules = engine.rules_for(f"{base}/{quote}")
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
            {"filterType": "PRICE_FILTER", "minPrice": render(rules.tick), "maxPrice": "1000000.00000000",
             "tickSize": render(rules.tick)},
            {"filterType": "LOT_SIZE", "minQty": render(rules.min_qty), "maxQty": "9000000.00000000",
             "stepSize": render(rules.step)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "9000000.00000000",
             "stepSize": "0.00000000"},
            {"filterType": "NOTIONAL", "minNotional": render(rules.min_notional), "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
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
    Route("/api/v3/order", order, methods=["GET", "POST", "DELETE"]),
    Route("/api/v3/openOrders", open_orders, methods=["GET", "DELETE"]),
    Route("/api/v3/allOrders", all_orders),
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
