"""A loopback mock of the Binance and OKX private endpoints that checks real ccxt signatures.

Point Strongroom at it with ``STRONGROOM_EXCHANGE_BASE_URLS='{"binance": URL, "okx": URL}'``.
One server answers for both venues: Binance paths live under ``/api`` and ``/sapi``, OKX
paths under ``/api/v5``.

Demo credentials (pre-seeded, also in ``DEMO_ACCOUNTS``):

* binance ``demo-binance-key`` / ``demo-binance-secret`` - reading and trading, no withdrawals
* binance ``demo-binance-withdraw-key`` / ``demo-binance-withdraw-secret`` - withdrawals enabled
* okx ``demo-okx-key`` / ``demo-okx-secret`` / passphrase ``demo-okx-passphrase`` - no withdrawals

Control endpoints (for tests; the mock is a test tool, never expose it):

* ``POST /_mock/accounts`` ``{exchange, api_key, secret, passphrase?, can_withdraw?}``
* ``POST /_mock/behaviour`` ``{"mode": "normal"|"rate_limited"|"down"|"slow", "delay_seconds"?}``
* ``GET /_mock/stats`` -> request counts per venue
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DEMO_ACCOUNTS: dict[str, dict[str, dict[str, Any]]] = {
    "binance": {
        "demo-binance-key": {"secret": "demo-binance-secret", "passphrase": None, "can_withdraw": False},
        "demo-binance-withdraw-key": {
            "secret": "demo-binance-withdraw-secret",
            "passphrase": None,
            "can_withdraw": True,
        },
    },
    "okx": {
        "demo-okx-key": {"secret": "demo-okx-secret", "passphrase": "demo-okx-passphrase", "can_withdraw": False},
    },
}

MODES = ("normal", "rate_limited", "down", "slow")
BINANCE_RECV_WINDOW_MAX_MS = 60_000
OKX_TIMESTAMP_WINDOW_S = 30.0


@dataclass
class MockState:
    """Accounts, current behaviour and counters of one mock app."""

    accounts: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: copy.deepcopy(DEMO_ACCOUNTS))
    mode: str = "normal"
    delay_seconds: float = 2.0
    stats: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, exchange: str, what: str) -> None:
        """Increment counter ``what`` for ``exchange``."""
        bucket = self.stats.setdefault(exchange, {"requests": 0, "private_requests": 0, "valid_signatures": 0})
        bucket[what] += 1

    def stats_document(self) -> dict[str, Any]:
        """Return per-venue counters plus totals."""
        doc: dict[str, Any] = {k: dict(v) for k, v in self.stats.items()}
        for what in ("requests", "private_requests", "valid_signatures"):
            doc[what] = sum(v[what] for v in self.stats.values())
        return doc


def _state(request: Request) -> MockState:
    return request.app.state.mock


# --------------------------------------------------------------------------- behaviour


async def _behaviour(request: Request, exchange: str) -> Response | None:
    """Apply the current mode; return a response to send instead of the normal one, or None."""
    state = _state(request)
    state.count(exchange, "requests")
    if state.mode == "slow":
        await asyncio.sleep(state.delay_seconds)
    elif state.mode == "down":
        return Response(status_code=503, content=b"")
    elif state.mode == "rate_limited":
        if exchange == "binance":
            return JSONResponse(
                {"code": -1003, "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE."},
                status_code=429,
                headers={"Retry-After": "30"},
            )
        return JSONResponse({"code": "50011", "msg": "Too Many Requests", "data": []}, status_code=429)
    return None


# --------------------------------------------------------------------------- Binance


def _binance_error(code: int, msg: str, status: int) -> JSONResponse:
    return JSONResponse({"code": code, "msg": msg}, status_code=status)


def _binance_auth(request: Request) -> tuple[dict[str, Any] | None, Response | None]:
    """Check key, signature and timestamp like Binance; return (account, None) or (None, error response)."""
    state = _state(request)
    state.count("binance", "private_requests")
    api_key = request.headers.get("X-MBX-APIKEY")
    if not api_key:
        return None, _binance_error(-2014, "API-key format invalid.", 401)
    account = state.accounts.get("binance", {}).get(api_key)
    if account is None:
        return None, _binance_error(-2015, "Invalid API-key, IP, or permissions for action.", 401)
    raw_query = request.scope.get("query_string", b"").decode("latin-1")
    parts = [p for p in raw_query.split("&") if p]
    signatures = [p.split("=", 1)[1] for p in parts if p.startswith("signature=")]
    signed = "&".join(p for p in parts if not p.startswith("signature="))
    if len(signatures) != 1 or not signatures[0]:
        return None, _binance_error(
            -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.", 400
        )
    params = request.query_params
    try:
        timestamp = int(params["timestamp"])
        recv_window = int(params.get("recvWindow", "5000"))
    except (KeyError, ValueError):
        return None, _binance_error(
            -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.", 400
        )
    expected = hmac.new(account["secret"].encode(), signed.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signatures[0].lower()):
        return None, _binance_error(-1022, "Signature for this request is not valid.", 400)
    now = int(time.time() * 1000)
    if recv_window > BINANCE_RECV_WINDOW_MAX_MS or timestamp >= now + 1000 or now - timestamp > recv_window:
        return None, _binance_error(-1021, "Timestamp for this request is outside of the recvWindow.", 400)
    state.count("binance", "valid_signatures")
    return account, None


async def binance_account(request: Request) -> Response:
    """GET /api/v3/account: a spot account snapshot."""
    if (early := await _behaviour(request, "binance")) is not None:
        return early
    account, error = _binance_auth(request)
    if error is not None:
        return error
    assert account is not None
    now = int(time.time() * 1000)
    return JSONResponse(
        {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": "0.00100000",
                "taker": "0.00100000",
                "buyer": "0.00000000",
                "seller": "0.00000000",
            },
            "canTrade": True,
            "canWithdraw": bool(account["can_withdraw"]),
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": now - 60_000,
            "accountType": "SPOT",
            "balances": [
                {"asset": "BTC", "free": "0.50000000", "locked": "0.10000000"},
                {"asset": "USDT", "free": "1250.00000000", "locked": "0.00000000"},
            ],
            "permissions": ["SPOT"],
            "uid": 354937868,
        }
    )


async def binance_api_restrictions(request: Request) -> Response:
    """GET /sapi/v1/account/apiRestrictions: what the key may do."""
    if (early := await _behaviour(request, "binance")) is not None:
        return early
    account, error = _binance_auth(request)
    if error is not None:
        return error
    assert account is not None
    return JSONResponse(
        {
            "ipRestrict": False,
            "createTime": 1698645219000,
            "enableReading": True,
            "enableWithdrawals": bool(account["can_withdraw"]),
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


async def binance_exchange_info(request: Request) -> Response:
    """GET /api/v3/exchangeInfo: no symbols."""
    if (early := await _behaviour(request, "binance")) is not None:
        return early
    return JSONResponse(
        {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": [],
        }
    )


async def binance_time(request: Request) -> Response:
    """GET /api/v3/time."""
    if (early := await _behaviour(request, "binance")) is not None:
        return early
    return JSONResponse({"serverTime": int(time.time() * 1000)})


async def binance_ping(request: Request) -> Response:
    """GET /api/v3/ping."""
    if (early := await _behaviour(request, "binance")) is not None:
        return early
    return JSONResponse({})


async def binance_empty_list(request: Request) -> Response:
    """GET /sapi/v1/margin/allPairs and isolated/allPairs: no pairs."""
    if (early := await _behaviour(request, "binance")) is not None:
        return early
    return JSONResponse([])


# --------------------------------------------------------------------------- OKX


def _okx_error(code: str, msg: str, status: int = 401) -> JSONResponse:
    return JSONResponse({"code": code, "msg": msg, "data": []}, status_code=status)


async def _okx_auth(request: Request) -> tuple[dict[str, Any] | None, Response | None]:
    """Check OK-ACCESS-* headers like OKX; return (account, None) or (None, error response)."""
    state = _state(request)
    state.count("okx", "private_requests")
    headers = request.headers
    api_key = headers.get("OK-ACCESS-KEY")
    passphrase = headers.get("OK-ACCESS-PASSPHRASE")
    timestamp = headers.get("OK-ACCESS-TIMESTAMP")
    sign = headers.get("OK-ACCESS-SIGN")
    if not api_key:
        return None, _okx_error("50103", 'Request header "OK-ACCESS-KEY" cannot be empty.')
    if not passphrase:
        return None, _okx_error("50104", 'Request header "OK-ACCESS-PASSPHRASE" cannot be empty.')
    if not sign:
        return None, _okx_error("50106", 'Request header "OK-ACCESS-SIGN" cannot be empty.')
    if not timestamp:
        return None, _okx_error("50107", 'Request header "OK-ACCESS-TIMESTAMP" cannot be empty.')
    account = state.accounts.get("okx", {}).get(api_key)
    if account is None:
        return None, _okx_error("50111", "Invalid OK-ACCESS-KEY")
    try:
        sent_at = datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return None, _okx_error("50112", "Invalid OK-ACCESS-TIMESTAMP")
    if abs(time.time() - sent_at) > OKX_TIMESTAMP_WINDOW_S:
        return None, _okx_error("50102", "Timestamp request expired")
    path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1").split("?", 1)[0]
    query = request.scope.get("query_string", b"").decode("latin-1")
    try:
        body = (await request.body()).decode("utf-8")
    except ClientDisconnect:  # the client gave up (e.g. "slow" mode outlived its timeout)
        return None, Response(status_code=499)
    prehash = timestamp + request.method.upper() + path + ("?" + query if query else "") + body
    digest = hmac.new(account["secret"].encode(), prehash.encode(), hashlib.sha256).digest()
    expected = base64.b64encode(digest).decode()
    if not hmac.compare_digest(expected, sign):
        return None, _okx_error("50113", "Invalid Sign")
    if not hmac.compare_digest(str(account.get("passphrase") or ""), passphrase):
        return None, _okx_error("50105", 'Request header "OK-ACCESS-PASSPHRASE" incorrect.')
    state.count("okx", "valid_signatures")
    return account, None


async def okx_balance(request: Request) -> Response:
    """GET /api/v5/account/balance: a trading-account snapshot."""
    if (early := await _behaviour(request, "okx")) is not None:
        return early
    account, error = await _okx_auth(request)
    if error is not None:
        return error
    now = str(int(time.time() * 1000))
    detail = {"ccy": "BTC", "availBal": "0.5", "cashBal": "0.6", "eq": "0.6", "frozenBal": "0.1", "uTime": now}
    return JSONResponse(
        {"code": "0", "msg": "", "data": [{"totalEq": "41250.5", "adjEq": "", "uTime": now, "details": [detail]}]}
    )


async def okx_config(request: Request) -> Response:
    """GET /api/v5/account/config: account settings, including the key's ``perm``."""
    if (early := await _behaviour(request, "okx")) is not None:
        return early
    account, error = await _okx_auth(request)
    if error is not None:
        return error
    assert account is not None
    perm = "read_only,trade" + (",withdraw" if account["can_withdraw"] else "")
    return JSONResponse(
        {
            "code": "0",
            "msg": "",
            "data": [
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
            ],
        }
    )


# --------------------------------------------------------------------------- control


async def control_accounts(request: Request) -> Response:
    """POST /_mock/accounts: add or replace an account."""
    try:
        doc = await request.json()
        exchange, api_key, secret = str(doc["exchange"]), str(doc["api_key"]), str(doc["secret"])
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "need exchange, api_key, secret"}, status_code=400)
    if exchange not in ("binance", "okx"):
        return JSONResponse({"error": "exchange must be binance or okx"}, status_code=400)
    _state(request).accounts.setdefault(exchange, {})[api_key] = {
        "secret": secret,
        "passphrase": doc.get("passphrase"),
        "can_withdraw": bool(doc.get("can_withdraw", False)),
    }
    return JSONResponse({"ok": True}, status_code=201)


async def control_behaviour(request: Request) -> Response:
    """POST /_mock/behaviour: switch mode (normal, rate_limited, down, slow)."""
    try:
        doc = await request.json()
        mode = doc["mode"]
        delay = float(doc.get("delay_seconds", 2.0))
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "need mode"}, status_code=400)
    if mode not in MODES or not 0 <= delay <= 60:
        return JSONResponse({"error": f"mode must be one of {MODES}; delay 0..60"}, status_code=400)
    state = _state(request)
    state.mode, state.delay_seconds = mode, delay
    return JSONResponse({"mode": mode, "delay_seconds": delay})


async def control_stats(request: Request) -> Response:
    """GET /_mock/stats: counters per venue and totals."""
    return JSONResponse(_state(request).stats_document())


def create_app() -> Starlette:
    """Return a fresh mock app with the demo accounts and mode ``normal``."""
    routes = [
        Route("/api/v3/account", binance_account),
        Route("/sapi/v1/account/apiRestrictions", binance_api_restrictions),
        Route("/api/v3/exchangeInfo", binance_exchange_info),
        Route("/api/v3/time", binance_time),
        Route("/api/v3/ping", binance_ping),
        Route("/sapi/v1/margin/allPairs", binance_empty_list),
        Route("/sapi/v1/margin/isolated/allPairs", binance_empty_list),
        Route("/api/v5/account/balance", okx_balance),
        Route("/api/v5/account/config", okx_config),
        Route("/_mock/accounts", control_accounts, methods=["POST"]),
        Route("/_mock/behaviour", control_behaviour, methods=["POST"]),
        Route("/_mock/stats", control_stats),
    ]
    app = Starlette(routes=routes)
    app.state.mock = MockState()
    return app


class MockExchangeServer:
    """Run the mock with uvicorn in a background thread.

    ``with MockExchangeServer() as mock: mock.url`` -> ``"http://127.0.0.1:<port>"``.
    ``port=0`` picks a free port. ``state`` is the live ``MockState`` (same process).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self.app = create_app()
        self.state: MockState = self.app.state.mock
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Return the base URL, e.g. ``http://127.0.0.1:41234``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> "MockExchangeServer":
        """Start serving; returns self once the server accepts connections. Raises RuntimeError on failure."""
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="mock-exchange", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("mock exchange failed to start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread (at most a few seconds)."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> "MockExchangeServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(host: str = "127.0.0.1", port: int = 8100) -> None:
    """Serve the mock in the foreground until interrupted (for ``strongroom mock-exchange``)."""
    import uvicorn

    print(f"mock exchange on http://{host}:{port}; demo keys: {json.dumps(DEMO_ACCOUNTS)}")
    uvicorn.run(create_app(), host=host, port=port, log_level="info")


if __name__ == "__main__":
    serve()
