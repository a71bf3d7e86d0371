"""The control endpoints under ``/_mock`` (documented in the package docstring). Errors are 400 ``{"error"}``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devtools.mock_exchange import orders as engine
from devtools.mock_exchange.common import state_of
from devtools.mock_exchange.state import EXCHANGES, MODES, WALLETS, Holdings, MockAccount, decimal_of, render


class BadControl(ValueError):
    """A control request that cannot be applied; its message is the 400 answer's ``error``."""


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        doc = await request.json()
    except ValueError:
        raise BadControl("the body must be JSON") from None
    if not isinstance(doc, dict):
        raise BadControl("the body must be a JSON object")
    return doc


def _exchange(doc: dict[str, Any]) -> str:
    exchange = doc.get("exchange")
    if exchange not in EXCHANGES:
        raise BadControl(f"exchange must be one of {', '.join(EXCHANGES)}")
    return str(exchange)


def _holdings(spec: Any) -> Holdings:
    """Parse ``{"BTC": {"free": "0.5", "used": "0.1"}, ...}`` (a missing free/used is 0)."""
    if not isinstance(spec, dict):
        raise BadControl('balances must be an object {"ASSET": {"free": "...", "used": "..."}}')
    holdings: Holdings = {}
    for asset, amounts in spec.items():
        if not isinstance(amounts, dict) or not set(amounts) <= {"free", "used"}:
            raise BadControl(f'balances.{asset} must be {{"free": "...", "used": "..."}}')
        try:
            holdings[str(asset)] = (decimal_of(amounts.get("free", "0")), decimal_of(amounts.get("used", "0")))
        except (TypeError, ValueError) as exc:
            raise BadControl(f"balances.{asset}: {exc}") from None
    return holdings


def _wallet(exchange: str, doc: dict[str, Any]) -> str:
    wallet = doc.get("account_type", WALLETS[exchange][0])
    if wallet not in WALLETS[exchange]:
        raise BadControl(f"account_type for {exchange} must be one of {', '.join(WALLETS[exchange])}")
    return str(wallet)


def _handle(action: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await action(request)
        except BadControl as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    endpoint.__doc__ = action.__doc__
    return endpoint


@_handle
async def accounts(request: Request) -> Response:
    """POST /_mock/accounts: add or replace an account (default balances unless ``balances`` is given)."""
    doc = await _json_object(request)
    exchange = _exchange(doc)
    api_key, secret = doc.get("api_key"), doc.get("secret")
    if not isinstance(api_key, str) or not isinstance(secret, str) or not api_key or not secret:
        raise BadControl("need exchange, api_key, secret")
    account = MockAccount(api_key, secret, doc.get("passphrase"), bool(doc.get("can_withdraw", False)))
    if "balances" in doc:
        account.balances = {WALLETS[exchange][0]: _holdings(doc["balances"])}
    state_of(request).add_account(exchange, account)
    return JSONResponse({"ok": True}, status_code=201)


@_handle
async def balances(request: Request) -> Response:
    """POST /_mock/balances: replace one wallet of an existing account."""
    doc = await _json_object(request)
    exchange, account = _account_of(request, doc)
    wallet = _wallet(exchange, doc)
    account.balances[wallet] = _holdings(doc.get("balances"))
    return JSONResponse({"exchange": exchange, "account_type": wallet,
                         "balances": {a: {"free": render(f), "used": render(u)}
                                      for a, (f, u) in account.balances[wallet].items()}})


def _account_of(request: Request, doc: dict[str, Any]) -> tuple[str, MockAccount]:
    exchange = _exchange(doc)
    account = state_of(request).accounts.get(exchange, {}).get(str(doc.get("api_key")))
    if account is None:
        raise BadControl("no such account (add it with POST /_mock/accounts first)")
    return exchange, account


@_handle
async def permissions(request: Request) -> Response:
    """POST /_mock/permissions: change whether an existing key can withdraw (its balances are kept)."""
    doc = await _json_object(request)
    exchange, account = _account_of(request, doc)
    can_withdraw = doc.get("can_withdraw")
    if not isinstance(can_withdraw, bool):
        raise BadControl("can_withdraw must be true or false")
    account.can_withdraw = can_withdraw
    return JSONResponse({"exchange": exchange, "can_withdraw": can_withdraw})


@_handle
async def revoke(request: Request) -> Response:
    """POST /_mock/revoke: delete a key, as if revoked at the venue (its calls get the venue's unknown-key error)."""
    doc = await _json_object(request)
    exchange, account = _account_of(request, doc)
    del state_of(request).accounts[exchange][account.api_key]
    return JSONResponse({"exchange": exchange, "revoked": True})


@_handle
async def prices(request: Request) -> Response:
    """POST /_mock/prices: set last prices (``null`` removes one; ``"replace": true`` drops the others)."""
    doc = await _json_object(request)
    exchange = _exchange(doc)
    spec = doc.get("prices")
    if not isinstance(spec, dict):
        raise BadControl('prices must be an object {"BASE/QUOTE": "price"}')
    current = state_of(request).prices.setdefault(exchange, {})
    updated = {} if doc.get("replace") else dict(current)
    for symbol, price in spec.items():
        parts = str(symbol).split("/")
        if len(parts) != 2 or not all(p.isalnum() and p.isupper() for p in parts):
            raise BadControl(f"{symbol!r} is not a symbol like BTC/USDT")
        if price is None:
            updated.pop(symbol, None)
            continue
        try:
            updated[symbol] = decimal_of(price)
        except (TypeError, ValueError) as exc:
            raise BadControl(f"prices.{symbol}: {exc}") from None
    current.clear()
    current.update(updated)
    filled = engine.cross(state_of(request), exchange)  # resting limit orders the new prices cross fill now
    return JSONResponse({"exchange": exchange, "prices": {s: format(p, "f") for s, p in sorted(current.items())},
                         "orders_filled": filled})


@_handle
async def behaviour(request: Request) -> Response:
    """POST /_mock/behaviour: switch mode (normal, rate_limited, down, slow)."""
    doc = await _json_object(request)
    mode = doc.get("mode")
    try:
        delay = float(doc.get("delay_seconds", 2.0))
    except (TypeError, ValueError):
        raise BadControl("delay_seconds must be a number") from None
    if mode not in MODES or not 0 <= delay <= 60:
        raise BadControl(f"mode must be one of {MODES}; delay 0..60")
    state = state_of(request)
    state.mode, state.delay_seconds = str(mode), delay
    return JSONResponse({"mode": mode, "delay_seconds": delay})


@_handle
async def faults(request: Request) -> Response:
    """POST /_mock/faults: arm a fault for the next order placements (``{"clear": true}`` disarms them all)."""
    doc = await _json_object(request)
    state = state_of(request)
    if doc.get("clear") is True:
        state.faults.clear()
        return JSONResponse({"faults": []})
    exchange = _exchange(doc)
    kind = doc.get("fault")
    if kind not in engine.FAULTS:
        raise BadControl(f"fault must be one of {', '.join(engine.FAULTS)}")
    api_key = doc.get("api_key")
    count = doc.get("count", 1)
    status = doc.get("status", 503)
    delay = doc.get("delay_seconds")
    if api_key is not None and not isinstance(api_key, str):
        raise BadControl("api_key must be a string")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise BadControl("count must be an integer >= 1, or null (until cleared)")
    if isinstance(status, bool) or not isinstance(status, int) or not 500 <= status <= 599:
        raise BadControl("status must be a 5xx status")
    if delay is not None and (isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= 60):
        raise BadControl("delay_seconds must be a number 0..60")
    fault = engine.Fault(exchange, str(kind), api_key, count, status, None if delay is None else float(delay))
    state.faults.append(fault)
    return JSONResponse({"faults": [f.document() for f in state.faults]}, status_code=201)


async def orders(request: Request) -> Response:
    """GET /_mock/orders?exchange=&api_key=: every order the mock holds (of that venue, of that key)."""
    state = state_of(request)
    exchange, api_key = request.query_params.get("exchange"), request.query_params.get("api_key")
    found = [order.document() for venue, book in sorted(state.orders.items()) if exchange in (None, venue)
             for order in book.values() if api_key in (None, order.api_key)]
    return JSONResponse({"orders": found})


async def stats(request: Request) -> Response:
    """GET /_mock/stats: counters per venue and totals."""
    return JSONResponse(state_of(request).stats_document())


async def reset_stats(request: Request) -> Response:
    """POST /_mock/stats/reset: zero every counter."""
    state_of(request).stats.clear()
    return JSONResponse({"ok": True})


ROUTES = [
    Route("/_mock/accounts", accounts, methods=["POST"]),
    Route("/_mock/balances", balances, methods=["POST"]),
    Route("/_mock/permissions", permissions, methods=["POST"]),
    Route("/_mock/revoke", revoke, methods=["POST"]),
    Route("/_mock/prices", prices, methods=["POST"]),
    Route("/_mock/behaviour", behaviour, methods=["POST"]),
    Route("/_mock/faults", faults, methods=["POST"]),
    Route("/_mock/orders", orders),
    Route("/_mock/stats", stats),
    Route("/_mock/stats/reset", reset_stats, methods=["POST"]),
]
