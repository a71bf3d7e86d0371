"""OKX: trading and funding balances, account config (the key's ``perm``), spot instruments, tickers and orders.

Private endpoints check the ``OK-ACCESS-*`` headers: base64 HMAC-SHA256 over timestamp + method +
path?query + body, the passphrase, and a 30 s timestamp window, with OKX's own error codes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devtools.mock_exchange import orders as engine
from devtools.mock_exchange.common import Call, venue_endpoint
from devtools.mock_exchange.orders import MockOrder, Refused
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


# --------------------------------------------------------------------------- orders

STATE = {"open": "live", "filled": "filled", "canceled": "canceled", "expired": "canceled"}
REFUSALS: dict[str, tuple[str, str]] = {
    "insufficient_balance": ("51008", "Order failed. Insufficient balance."),
    "duplicate_client_order_id": ("51016", "Duplicated clOrdId"),
    "would_take": ("51000", "Parameter ordType error: the post-only order would take liquidity"),
    "lot_size": ("51121", "Order quantity must be a multiple of the lot size."),
    "min_qty": ("51020", "Your order should meet or exceed the minimum order amount."),
    "price_filter": ("51000", "Parameter px error"),
    "unknown_symbol": ("51001", "Instrument ID does not exist"),
    "no_price": ("51001", "Instrument ID does not exist"),
}


def _failed(code: str, msg: str, order_id: str, client_order_id: str) -> JSONResponse:
    """A refused operation: HTTP 200, ``code`` 1 and the reason in ``data[0].sCode`` (as OKX answers)."""
    return JSONResponse({"code": "1", "msg": "All operations failed", "data": [
        {"clOrdId": client_order_id, "ordId": order_id, "sCode": code, "sMsg": msg, "tag": "", "ts": _now_ms()}]})


def _symbol_of(call: Call, inst_id: Any) -> str | None:
    for base, quote in call.state.markets("okx"):
        if f"{base}-{quote}" == inst_id:
            return f"{base}/{quote}"
    return None


def _order_doc(order: MockOrder) -> dict[str, Any]:
    """An order as GET /api/v5/trade/order, orders-pending and orders-history show it (fee is negative)."""
    if order.type == "market":
        ord_type = "market"
    elif order.post_only:
        ord_type = "post_only"
    else:
        ord_type = {"IOC": "ioc", "FOK": "fok"}.get(order.time_in_force, "limit")
    average = order.average
    return {
        "instType": "SPOT", "instId": order.symbol.replace("/", "-"), "ccy": "", "ordId": str(order.order_id),
        "clOrdId": order.client_order_id, "tag": "", "px": "" if order.price is None else plain(order.price),
        "sz": plain(order.amount), "pnl": "0", "ordType": ord_type, "side": order.side, "posSide": "net",
        "tdMode": "cash", "accFillSz": plain(order.filled),
        "fillPx": "" if order.fill_price is None else plain(order.fill_price),
        "tradeId": "" if order.fill_price is None else str(order.order_id),
        "fillSz": plain(order.filled), "fillTime": "" if order.fill_ms is None else str(order.fill_ms),
        "avgPx": "" if average is None else plain(average), "state": STATE[order.status], "lever": "",
        "feeCcy": order.fee_asset or order.quote, "fee": plain(-order.fee) if order.fee else "0",
        "rebateCcy": order.quote, "rebate": "0", "category": "normal", "tgtCcy": "", "reduceOnly": "false",
        "cancelSource": "", "uTime": str(order.updated_ms), "cTime": str(order.created_ms),
    }


def _decimal(value: Any) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _place_one(call: Call, doc: Any) -> dict[str, Any]:
    """Place one order of a request; return its ``data`` item (``sCode`` 0, or the refusal's code)."""
    if not isinstance(doc, dict):
        doc = {}
    client_order_id = str(doc.get("clOrdId") or f"mock{time.time_ns()}")
    symbol = _symbol_of(call, doc.get("instId"))
    ord_type, side = doc.get("ordType"), doc.get("side")
    amount, price = _decimal(doc.get("sz")), _decimal(doc.get("px")) if doc.get("px") not in (None, "") else None
    refusal: tuple[str, str] | None = None
    for name, bad in (("instId", symbol is None), ("side", side not in engine.SIDES),
                      ("ordType", ord_type not in ("market", "limit", "post_only", "ioc", "fok")),
                      ("sz", amount is None), ("px", ord_type != "market" and price is None)):
        if bad:
            refusal = REFUSALS["unknown_symbol"] if name == "instId" else ("51000", f"Parameter {name} error")
            break
    if refusal is None:
        assert symbol is not None and amount is not None
        try:
            order = engine.place(call.state, "okx", call.account, symbol=symbol, side=str(side),
                                 type="market" if ord_type == "market" else "limit", amount=amount,
                                 price=None if ord_type == "market" else price, client_order_id=client_order_id,
                                 time_in_force={"ioc": "IOC", "fok": "FOK"}.get(str(ord_type), "GTC"),
                                 post_only=ord_type == "post_only")
        except Refused as exc:
            refusal = REFUSALS.get(exc.reason, ("51000", "Parameter error"))
        else:
            return {"clOrdId": order.client_order_id, "ordId": str(order.order_id), "tag": "", "ts": _now_ms(),
                    "sCode": "0", "sMsg": "Order placed"}
    return {"clOrdId": client_order_id, "ordId": "", "sCode": refusal[0], "sMsg": refusal[1], "tag": "",
            "ts": _now_ms()}


async def _placed(call: Call, data: list[dict[str, Any]]) -> Response:
    """Answer placements: OKX's envelope (code 1 if all failed, 2 if some did), unless a lost-answer fault loses it."""
    failed = sum(item["sCode"] != "0" for item in data)
    if failed == len(data):
        return JSONResponse({"code": "1", "msg": "All operations failed", "data": data})
    lost = engine.take_fault(call.state, "okx", call.account.api_key, "lost_answer")
    if lost is not None:
        if lost.delay_seconds is None:
            return Response(status_code=lost.status, content=b"")
        await asyncio.sleep(lost.delay_seconds)  # the client has given up by now
    return JSONResponse({"code": "2" if failed else "0", "msg": "", "data": data})


async def _body(call: Call) -> Any:
    try:
        return json.loads(await call.request.body() or b"{}")
    except ValueError:
        return None


@private
async def place_order(call: Call) -> Response:
    """POST /api/v5/trade/order: place (ordType market, limit, post_only, ioc, fok; spot, sz in base)."""
    doc = await _body(call)
    if not isinstance(doc, dict):
        return _error("50002", "JSON syntax error", 400)
    return await _placed(call, [_place_one(call, doc)])


@private
async def batch_orders(call: Call) -> Response:
    """POST /api/v5/trade/batch-orders: place each order of a list (ccxt's default way to place one)."""
    docs = await _body(call)
    if not isinstance(docs, list) or not docs or len(docs) > 20:
        return _error("50002", "JSON syntax error", 400)
    return await _placed(call, [_place_one(call, doc) for doc in docs])


def _lookup(call: Call, params: dict[str, Any]) -> tuple[MockOrder | None, Response | None]:
    """Find the order named by ``instId`` and ``ordId`` or ``clOrdId``; or the error to answer."""
    symbol = _symbol_of(call, params.get("instId"))
    if symbol is None:
        return None, _error("51001", "Instrument ID does not exist", 200)
    order_id, client_order_id = params.get("ordId"), params.get("clOrdId")
    if not order_id and not client_order_id:
        return None, _error("51003", "Either client order ID or order ID is required", 200)
    try:
        found = engine.find(call.state, "okx", call.account, symbol=symbol,
                            order_id=int(order_id) if order_id else None,
                            client_order_id=str(client_order_id) if client_order_id else None)
    except ValueError:
        found = None
    return found, None


@private
async def get_order(call: Call) -> Response:
    """GET /api/v5/trade/order?instId=&ordId= (or clOrdId=): one order; 51603 if unknown."""
    if (fault := engine.take_fault(call.state, "okx", call.account.api_key, "read_unavailable")) is not None:
        return Response(status_code=fault.status, content=b"")
    found, error = _lookup(call, dict(call.request.query_params))
    if error is not None:
        return error
    if found is None:
        return _error("51603", "Order does not exist", 200)
    return _ok([_order_doc(found)])


@private
async def cancel_order(call: Call) -> Response:
    """POST /api/v5/trade/cancel-order {instId, ordId | clOrdId}: 51400 unknown, 51401 canceled, 51402 filled."""
    try:
        doc = json.loads(await call.request.body() or b"{}")
    except ValueError:
        return _error("50002", "JSON syntax error", 400)
    found, error = _lookup(call, doc if isinstance(doc, dict) else {})
    if error is not None:
        return error
    if found is None:
        return _failed("51400", "Order cancellation failed as the order does not exist.",
                       str(doc.get("ordId") or ""), str(doc.get("clOrdId") or ""))
    if found.status != "open":
        code = "51402" if found.status == "filled" else "51401"
        return _failed(code, f"Order cancellation failed as the order is already {found.status}.",
                       str(found.order_id), found.client_order_id)
    engine.cancel(call.state, "okx", call.account, found)
    return _ok([{"clOrdId": found.client_order_id, "ordId": str(found.order_id), "ts": _now_ms(), "sCode": "0",
                 "sMsg": ""}])


def _listed(call: Call, open_only: bool) -> Response:
    params = call.request.query_params
    if params.get("instType", "SPOT") != "SPOT":
        return _ok([])
    symbol = None
    if params.get("instId"):
        symbol = _symbol_of(call, params["instId"])
        if symbol is None:
            return _error("51001", "Instrument ID does not exist", 200)
    found = engine.orders_of(call.state, "okx", call.account, symbol, open_only=open_only)
    if not open_only:
        wanted = params.get("state")
        found = [o for o in found if o.status != "open" and (not wanted or STATE[o.status] == wanted)]
    try:
        limit = min(int(params.get("limit") or 100), 100)
    except ValueError:
        return _error("51000", "Parameter limit error", 200)
    return _ok([_order_doc(o) for o in reversed(found)][:limit])


@private
async def orders_pending(call: Call) -> Response:
    """GET /api/v5/trade/orders-pending: the key's live orders (``instId`` optional), newest first."""
    return _listed(call, open_only=True)


@private
async def orders_history(call: Call) -> Response:
    """GET /api/v5/trade/orders-history?instType=SPOT: the key's finished orders (``instId``, ``state``), newest first."""
    return _listed(call, open_only=False)


# --------------------------------------------------------------------------- public


def _instrument(base: str, quote: str) -> dict[str, str]:
    rules = engine.rules_for(f"{base}/{quote}")
    return {
        "instType": "SPOT", "instId": f"{base}-{quote}", "uly": "", "instFamily": "", "baseCcy": base,
        "quoteCcy": quote, "settleCcy": "", "ctVal": "", "ctMult": "", "ctValCcy": "", "optType": "", "stk": "",
        "listTime": "1606468572000", "expTime": "", "lever": "10", "tickSz": plain(rules.tick),
        "lotSz": plain(rules.step), "minSz": plain(rules.min_qty), "ctType": "", "alias": "", "state": "live",
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
    Route("/api/v5/trade/order", place_order, methods=["POST"]),
    Route("/api/v5/trade/order", get_order, methods=["GET"]),
    Route("/api/v5/trade/batch-orders", batch_orders, methods=["POST"]),
    Route("/api/v5/trade/cancel-order", cancel_order, methods=["POST"]),
    Route("/api/v5/trade/orders-pending", orders_pending),
    Route("/api/v5/trade/orders-history", orders_history),
    Route("/api/v5/asset/currencies", currencies),
    Route("/api/v5/public/instruments", instruments),
    Route("/api/v5/market/tickers", tickers),
    Route("/api/v5/market/ticker", ticker),
]
