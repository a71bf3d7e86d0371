"""Issue 19 point 6: Cadenza's TradingApi (``/api/v3/tradeOrder/submit``, ``/cancel``, ``/list``) over HTTP on
each backend, against the mock exchange (real ccxt signing): orders placed, listed, filled, canceled, never sent
twice, every bad input a 400 envelope; and Cadenza's generated client's ``TradingApi`` where
``CADENZA_CLIENT_SRC`` points at its checkout (skipped loudly otherwise).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from cadenza_helpers import Api, connected, install_cadenza_client, login, mock_key, ok, refused

DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")
# what the generated client's TradeOrder requires (present and not null)
REQUIRED = ("tradeOrderId", "tradingAccountId", "venue", "instrumentId", "baseAsset", "quoteAsset", "orderSide",
            "orderType", "timeInForce", "status", "quantity", "orderQuantityType", "executedPrice",
            "executedQuantity", "executedCost", "fees", "createdAt", "updatedAt")
PERMISSIVE = {"allow_market_orders": True}


def v1_account_id(api: Api, public_id: str) -> int:
    response = api.http.get("/v1/exchange-accounts", headers=api.headers)
    assert response.status_code == 200, response.text
    (found,) = [a["id"] for a in response.json()["items"] if a["public_id"] == public_id]
    return int(found)


def set_policy(api: Api, public_id: str, **policy: Any) -> None:
    """The account's trading policy, set by its owner signed in with a password (the Cadenza session)."""
    response = api.http.put(f"/v1/exchange-accounts/{v1_account_id(api, public_id)}/trading-policy",
                            headers=api.headers, json=policy)
    assert response.status_code == 200, response.text


def trading_account(api: Api, mock_exchange: Any, venue: str = "BINANCE",
                    policy: dict[str, Any] | None = PERMISSIVE) -> tuple[str, dict[str, str]]:
    key = mock_key(mock_exchange, venue.lower())
    account = connected(api, key, venue)
    if policy is not None:
        set_policy(api, account["tradingAccountId"], **policy)
    return account["tradingAccountId"], key


def mock_orders(mock_exchange: Any, key: dict[str, str], exchange: str = "binance") -> list[dict[str, Any]]:
    response = httpx.get(f"{mock_exchange.url}/_mock/orders", params={"exchange": exchange, "api_key": key["apiKey"]},
                         timeout=10)
    assert response.status_code == 200, response.text
    doc = response.json()
    return list(doc["orders"] if isinstance(doc, dict) else doc)


def limit_order(account: str, **extra: Any) -> dict[str, Any]:
    return {"tradingAccountId": account, "instrumentId": "BINANCE:BTC/USDT", "orderSide": "BUY", "orderType": "LIMIT",
            "quantity": "0.001", "limitPrice": "40000", "timeInForce": "GTC", **extra}


def submit(api: Api, body: dict[str, Any]) -> httpx.Response:
    return api.post("/tradeOrder/submit", body)


def one_order(response: httpx.Response) -> dict[str, Any]:
    (order,) = ok(response)
    check_trade_order(order)
    return dict(order)


def check_trade_order(order: dict[str, Any]) -> None:
    """Every field the client requires, with the client's strict types."""
    for name in REQUIRED:
        assert order.get(name) is not None, name
    uuid.UUID(order["tradeOrderId"]), uuid.UUID(order["tradingAccountId"])
    for name in ("quantity", "executedPrice", "executedQuantity", "executedCost"):
        assert isinstance(order[name], str) and DECIMAL.match(order[name]), (name, order[name])
    for name in ("createdAt", "updatedAt"):
        assert type(order[name]) is int, name
    assert order["venue"] in ("BINANCE", "OKX") and order["instrumentId"].startswith(order["venue"] + ":")
    assert order["orderQuantityType"] == "BASE"
    for fee in order["fees"]:
        assert set(fee) >= {"security", "asset", "venue", "quantity"} and DECIMAL.match(fee["quantity"])


# --- submit, list, cancel ----------------------------------------------------------------------------

def test_limit_order_submitted_listed_and_canceled(api, mock_exchange) -> None:
    account, key = trading_account(api, mock_exchange)
    order = one_order(submit(api, limit_order(account, clientOrderId="cz-limit-1")))
    assert order["status"] == "ACCEPTED" and order["orderSide"] == "BUY" and order["orderType"] == "LIMIT"
    assert (order["quantity"], order["limitPrice"], order["executedQuantity"]) == ("0.001", "40000", "0")
    assert order["tradingAccountId"] == account and order["instrumentId"] == "BINANCE:BTC/USDT"
    assert (order["baseAsset"], order["quoteAsset"], order["timeInForce"]) == ("BTC", "USDT", "GTC")
    assert order["clientOrderId"] == "cz-limit-1" and order["externalOrderId"]
    (placed,) = mock_orders(mock_exchange, key)  # on the venue, once
    assert str(placed.get("status", "")).lower() in ("new", "open", "live")

    listed = api.get("/tradeOrder/list", tradingAccountId=account)
    assert listed.status_code == 200, listed.text
    doc = listed.json()
    assert [o["tradeOrderId"] for o in doc["data"]] == [order["tradeOrderId"]]
    assert doc["pagination"]["total"] == 1 and doc["pagination"]["hasNext"] is False
    check_trade_order(doc["data"][0])
    assert [o["tradeOrderId"] for o in ok(api.get("/tradeOrder/list", tradingAccountId=account,
                                                  orderStatus="ACCEPTED"))] == [order["tradeOrderId"]]
    for status in ("FILLED", "PARTIALLY_FILLED", "CANCELLED"):
        assert ok(api.get("/tradeOrder/list", tradingAccountId=account, orderStatus=status)) == [], status

    canceled = ok(api.post("/tradeOrder/cancel", {"tradingAccountId": account, "tradeOrderId": order["tradeOrderId"]}))
    check_trade_order(canceled)
    assert canceled["status"] == "CANCELLED" and canceled["tradeOrderId"] == order["tradeOrderId"]
    assert type(canceled["canceledAt"]) is int
    (gone,) = mock_orders(mock_exchange, key)
    assert str(gone.get("status", "")).lower() in ("canceled", "cancelled")
    assert [o["status"] for o in ok(api.get("/tradeOrder/list", tradingAccountId=account,
                                            orderStatus="CANCELLED"))] == ["CANCELLED"]
    # canceling it again: already final
    refused(api.post("/tradeOrder/cancel", {"tradingAccountId": account, "tradeOrderId": order["tradeOrderId"]}),
            409, -22017)


def test_limit_order_filled_by_a_price_move(api, mock_exchange) -> None:
    account, _ = trading_account(api, mock_exchange)
    order = one_order(submit(api, limit_order(account, limitPrice="40000")))
    move = httpx.post(f"{mock_exchange.url}/_mock/prices",
                      json={"exchange": "binance", "prices": {"BTC/USDT": "39000"}}, timeout=10)
    assert move.status_code == 200, move.text
    try:
        (filled,) = ok(api.get("/tradeOrder/list", tradingAccountId=account, tradeOrderId=order["tradeOrderId"]))
    finally:
        httpx.post(f"{mock_exchange.url}/_mock/prices", json={"exchange": "binance", "prices": {"BTC/USDT": "50000"}},
                   timeout=10).raise_for_status()
    check_trade_order(filled)
    assert filled["status"] == "FILLED" and filled["executedQuantity"] == "0.001"
    assert filled["executedPrice"] == "40000" and filled["executedCost"] == "40"


def test_market_order_with_await_closed_is_filled(api, mock_exchange) -> None:
    account, key = trading_account(api, mock_exchange)
    started = time.monotonic()
    order = one_order(submit(api, {"tradingAccountId": account, "instrumentId": "BINANCE:BTC/USDT",
                                   "orderSide": "BUY", "orderType": "MARKET", "quantity": "0.001",
                                   "awaitClosed": True}))
    assert time.monotonic() - started < 5
    assert order["status"] == "FILLED" and order["orderType"] == "MARKET" and order["timeInForce"] == "IOC"
    assert order["executedQuantity"] == "0.001" and order["executedPrice"] == "50000"
    assert order["executedCost"] == "50" and "limitPrice" not in order or order["limitPrice"] is None
    assert len(mock_orders(mock_exchange, key)) == 1
    assert [o["status"] for o in ok(api.get("/tradeOrder/list", tradingAccountId=account,
                                            orderStatus="FILLED"))] == ["FILLED"]


def test_okx_account_trades_too(api, mock_exchange) -> None:
    account, key = trading_account(api, mock_exchange, "OKX")
    # the mock's OKX wallet holds BTC and USDC, no USDT: a sell above the price rests
    order = one_order(submit(api, limit_order(account, instrumentId="okx:btc/usdt", orderSide="SELL", quantity="0.01",
                                              limitPrice="60000")))
    assert order["venue"] == "OKX" and order["instrumentId"] == "OKX:BTC/USDT" and order["status"] == "ACCEPTED"
    assert len(mock_orders(mock_exchange, key, "okx")) == 1
    # an instrument of another venue than the account's
    doc = refused(submit(api, limit_order(account)), 400, -19004)
    assert "instrumentId" in doc["details"]["metadata"]


# --- idempotency -------------------------------------------------------------------------------------

def test_the_same_client_order_id_gives_one_order(api, mock_exchange) -> None:
    account, key = trading_account(api, mock_exchange)
    first = one_order(submit(api, limit_order(account, clientOrderId="cz-idem-1")))
    again = one_order(submit(api, limit_order(account, clientOrderId="cz-idem-1")))
    assert again["tradeOrderId"] == first["tradeOrderId"] and again["status"] == "ACCEPTED"
    # idempotencyKey is the same key, alone or with an equal clientOrderId
    same = one_order(submit(api, limit_order(account, idempotencyKey="cz-idem-1")))
    both = one_order(submit(api, limit_order(account, clientOrderId="cz-idem-1", idempotencyKey="cz-idem-1")))
    assert same["tradeOrderId"] == both["tradeOrderId"] == first["tradeOrderId"]
    assert len(mock_orders(mock_exchange, key)) == 1
    # another order under that id: 409; ids that differ: 400
    refused(submit(api, limit_order(account, clientOrderId="cz-idem-1", limitPrice="41000")), 409, -22017)
    doc = refused(submit(api, limit_order(account, clientOrderId="cz-idem-2", idempotencyKey="cz-idem-3")), 400,
                  -19004)
    assert "idempotencyKey" in doc["details"]["metadata"]
    assert len(mock_orders(mock_exchange, key)) == 1


def test_a_lost_answer_is_submitted_then_the_retry_finds_it(api, mock_exchange) -> None:
    account, key = trading_account(api, mock_exchange)
    armed = httpx.post(f"{mock_exchange.url}/_mock/faults", json={"exchange": "binance", "fault": "lost_answer",
                                                                  "api_key": key["apiKey"]}, timeout=10)
    assert armed.status_code == 201, armed.text
    lost = one_order(submit(api, limit_order(account, clientOrderId="cz-lost-1")))
    assert lost["status"] == "SUBMITTED" and lost.get("externalOrderId") is None
    retried = one_order(submit(api, limit_order(account, clientOrderId="cz-lost-1")))
    assert retried["tradeOrderId"] == lost["tradeOrderId"] and retried["status"] == "ACCEPTED"
    assert len(mock_orders(mock_exchange, key)) == 1  # placed once, found by its client order id


def test_concurrent_submits_with_one_client_order_id_are_one_order(api, cadenza_server, mock_exchange) -> None:
    account, key = trading_account(api, mock_exchange)

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=cadenza_server.url, timeout=60) as client:
            return client.post("/api/v3/tradeOrder/submit", headers=api.headers,
                               json=limit_order(account, clientOrderId="cz-burst"))

    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(one, range(10)))
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
    assert len({a.json()["data"][0]["tradeOrderId"] for a in answers}) == 1
    assert len(mock_orders(mock_exchange, key)) == 1


# --- bad inputs and refusals ---------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "field"), [
    ({"instrumentId": "BTCUSDT"}, "instrumentId"),
    ({"instrumentId": "BINANCE:BTCUSDT"}, "instrumentId"),
    ({"instrumentId": "BINANCE:BTC/USDT/X"}, "instrumentId"),
    ({"instrumentId": "OKX:BTC/USDT"}, "instrumentId"),
    ({"instrumentId": None}, "instrumentId"),
    ({"instrumentId": "BINANCE:NOPE/USDT"}, "instrumentId"),
    ({"orderType": "STOP_LIMIT"}, "orderType"),
    ({"orderType": "TRAILING_STOP"}, "orderType"),
    ({"orderType": "WHATEVER"}, "orderType"),
    ({"orderType": None}, "orderType"),
    ({"orderSide": "HOLD"}, "orderSide"),
    ({"quantity": "abc"}, "quantity"),
    ({"quantity": "-1"}, "quantity"),
    ({"quantity": "0.0000001"}, "quantity"),  # off the venue's step (the venue's rule: errno -19001)
    ({"limitPrice": None}, "limitPrice"),
    ({"limitPrice": "40000.001"}, "limitPrice"),  # off the venue's tick (-19001)
    ({"timeInForce": "GTD"}, "timeInForce"),
    ({"quantityType": "QUOTE"}, "quantityType"),
    ({"quantityRounding": "UP"}, "quantityRounding"),
    ({"stopPrice": "39000"}, "stopPrice"),
    ({"leverage": 3}, "leverage"),
    ({"clientOrderId": "has spaces in it"}, "clientOrderId"),
    ({"surprise": 1}, "surprise"),
    ({"tradingAccountId": "not-a-uuid"}, "tradingAccountId"),
])
def test_bad_inputs_are_400_envelopes(api, mock_exchange, change, field) -> None:
    account, key = trading_account(api, mock_exchange)
    body = {k: v for k, v in limit_order(account, **change).items() if v is not None}
    off_step = change in ({"quantity": "0.0000001"}, {"limitPrice": "40000.001"})
    doc = refused(submit(api, body), 400, -19001 if off_step else -19004)
    assert field in doc["details"]["metadata"], doc
    assert mock_orders(mock_exchange, key) == []


def test_not_a_json_object_and_no_body(api) -> None:
    refused(api.http.post("/api/v3/tradeOrder/submit", headers={**api.headers, "content-type": "application/json"},
                          content=b"{nope"), 400, -19005)
    refused(api.http.post("/api/v3/tradeOrder/submit", headers={**api.headers, "content-type": "application/json"}),
            400, -19004)
    refused(api.post("/tradeOrder/cancel", {}), 400, -19004)


def test_quantity_rounding_down(api, mock_exchange) -> None:
    account, _ = trading_account(api, mock_exchange)
    order = one_order(submit(api, limit_order(account, quantity="0.0012345", quantityRounding="DOWN")))
    assert order["quantity"] == "0.00123"


def test_risk_policy_refusals_are_403_with_the_rule(api, mock_exchange) -> None:
    account, key = trading_account(api, mock_exchange, policy=None)
    doc = refused(submit(api, limit_order(account)), 403, -22018)  # trading is off until a policy is set
    assert doc["details"]["code"] == "risk_policy" and doc["details"]["metadata"]["rule"]
    set_policy(api, account, allow_market_orders=False)
    doc = refused(submit(api, limit_order(account, orderType="MARKET", limitPrice=None)), 403, -22018)
    assert doc["details"]["metadata"] == {"rule": "allow_market_orders"}
    set_policy(api, account, allowed_symbols=["ETH/*"])
    assert refused(submit(api, limit_order(account)), 403, -22018)["details"]["metadata"] == {
        "rule": "allowed_symbols"}
    set_policy(api, account, kill_switch=True)
    assert refused(submit(api, limit_order(account)), 403, -22018)["details"]["metadata"] == {"rule": "kill_switch"}
    assert mock_orders(mock_exchange, key) == []


def test_insufficient_funds(api, mock_exchange) -> None:
    account, key = trading_account(api, mock_exchange)
    doc = refused(submit(api, limit_order(account, quantity="1")), 400, -18006)  # 40,000 USDT; it holds 1,200
    assert doc["error"] == "The exchange account does not hold enough free funds for this order"  # ours, no ccxt text
    (rejected,) = ok(api.get("/tradeOrder/list", tradingAccountId=account, orderStatus="REJECTED"))
    check_trade_order(rejected)
    assert rejected["rejectReason"] == "insufficient_funds" and rejected["executedQuantity"] == "0"
    assert all(o["status"] != "NEW" for o in mock_orders(mock_exchange, key))


def test_another_users_account_and_order_are_not_found(api, other, mock_exchange) -> None:
    account, _ = trading_account(api, mock_exchange)
    order = one_order(submit(api, limit_order(account)))
    theirs, _ = trading_account(other, mock_exchange)
    refused(submit(other, limit_order(account)), 404, -22016)
    refused(other.post("/tradeOrder/cancel", {"tradingAccountId": account, "tradeOrderId": order["tradeOrderId"]}),
            404, -22016)
    # the order named on the caller's own account: not found either
    refused(other.post("/tradeOrder/cancel", {"tradingAccountId": theirs, "tradeOrderId": order["tradeOrderId"]}),
            404, -22016)
    refused(other.get("/tradeOrder/list", tradingAccountId=account), 404, -22016)
    assert ok(other.get("/tradeOrder/list", tradingAccountId=theirs, tradeOrderId=order["tradeOrderId"])) == []
    # a UUID that is no order of ours
    refused(api.post("/tradeOrder/cancel", {"tradingAccountId": account, "tradeOrderId": str(uuid.uuid4())}),
            404, -22016)
    refused(api.http.post("/api/v3/tradeOrder/submit", json=limit_order(account)), 401, -19002)


def test_list_pages_filters_and_orders(api, mock_exchange) -> None:
    account, _ = trading_account(api, mock_exchange)
    ids = [one_order(submit(api, limit_order(account, limitPrice=str(40000 + i))))["tradeOrderId"]
           for i in range(3)]
    eth = one_order(submit(api, limit_order(account, instrumentId="BINANCE:ETH/USDT", quantity="0.01",
                                            limitPrice="2000")))["tradeOrderId"]
    newest_first = [eth, *reversed(ids)]
    page = api.get("/tradeOrder/list", tradingAccountId=account, limit=2).json()
    assert [o["tradeOrderId"] for o in page["data"]] == newest_first[:2]
    assert page["pagination"] == {"offset": 0, "limit": 2, "total": 4, "hasNext": True, "cursor": "2"}
    rest = api.get("/tradeOrder/list", tradingAccountId=account, limit=2, cursor="2").json()
    assert [o["tradeOrderId"] for o in rest["data"]] == newest_first[2:]
    assert rest["pagination"]["hasNext"] is False and rest["pagination"]["cursor"] is None
    assert [o["tradeOrderId"] for o in ok(api.get("/tradeOrder/list", tradingAccountId=account, ascending="true",
                                                  offset=1, limit=1))] == [ids[1]]
    assert [o["tradeOrderId"] for o in ok(api.get("/tradeOrder/list", tradingAccountId=account,
                                                  instrumentId="BINANCE:ETH/USDT"))] == [eth]
    assert [o["tradeOrderId"] for o in ok(api.get("/tradeOrder/list", tradingAccountId=account,
                                                  tradeOrderId=ids[1]))] == [ids[1]]
    now = int(time.time() * 1000)
    assert len(ok(api.get("/tradeOrder/list", tradingAccountId=account, startTime=now - 600_000,
                          endTime=now + 60_000))) == 4
    assert ok(api.get("/tradeOrder/list", tradingAccountId=account, startTime=now + 600_000)) == []
    assert ok(api.get("/tradeOrder/list", tradingAccountId=account, orderListId=str(uuid.uuid4()))) == []
    for params, field in (({}, "tradingAccountId"), ({"tradingAccountId": account, "orderStatus": "DONE"}, "orderStatus"),
                          ({"tradingAccountId": account, "limit": 0}, "limit"),
                          ({"tradingAccountId": account, "limit": 1001}, "limit"),
                          ({"tradingAccountId": account, "offset": -1}, "offset"),
                          ({"tradingAccountId": account, "cursor": "x"}, "cursor"),
                          ({"tradingAccountId": account, "instrumentId": "BTC"}, "instrumentId"),
                          ({"tradingAccountId": account, "startTime": "yesterday"}, "startTime")):
        doc = refused(api.get("/tradeOrder/list", **params), 400, -19004)
        assert field in doc["details"]["metadata"], (params, doc)


def test_no_secret_in_any_answer(api, mock_exchange) -> None:
    account, key = trading_account(api, mock_exchange)
    texts = [submit(api, limit_order(account)).text, api.get("/tradeOrder/list", tradingAccountId=account).text,
             submit(api, limit_order(account, quantity="1")).text]
    for text in texts:
        assert key["apiSecret"] not in text and key["apiKey"] not in text and "Traceback" not in text


# --- the generated client -----------------------------------------------------------------------------

CLIENT_TRADING = textwrap.dedent('''
    import json, sys
    import cadenza_client as c

    base, username, password, key, secret = sys.argv[1:6]
    out = {}
    cfg = c.Configuration(host=base)
    api = c.ApiClient(cfg)
    session = c.AuthenticationApi(api).auth_login(
        auth_login_request=c.AuthLoginRequest(email=username, password=password))
    cfg.access_token = session.data.access_token
    account = c.TradingAccountApi(api).connect_trading_account(
        connect_trading_account_request=c.ConnectTradingAccountRequest.from_dict(
            {"venue": "BINANCE", "apiKey": key, "apiSecret": secret, "nickname": "trading"})).data
    print(json.dumps({"account": str(account.trading_account_id)}), flush=True)
    sys.stdin.readline()  # the test sets the account's trading policy meanwhile
    trading = c.TradingApi(api)
    placed = trading.submit_trade_order(submit_trade_order_request=c.SubmitTradeOrderRequest(
        trading_account_id=account.trading_account_id, instrument_id="BINANCE:BTC/USDT", order_side=c.OrderSide.BUY,
        order_type=c.OrderType.LIMIT, quantity="0.001", limit_price="40000", time_in_force=c.TimeInForce.GTC,
        client_order_id="client-1")).data
    out["placed"] = [len(placed), placed[0].status.value, placed[0].venue.value, placed[0].quantity]
    again = trading.submit_trade_order(submit_trade_order_request=c.SubmitTradeOrderRequest(
        trading_account_id=account.trading_account_id, instrument_id="BINANCE:BTC/USDT", order_side=c.OrderSide.BUY,
        order_type=c.OrderType.LIMIT, quantity="0.001", limit_price="40000", time_in_force=c.TimeInForce.GTC,
        client_order_id="client-1")).data
    out["same"] = again[0].trade_order_id == placed[0].trade_order_id
    market = trading.submit_trade_order(submit_trade_order_request=c.SubmitTradeOrderRequest(
        trading_account_id=account.trading_account_id, instrument_id="BINANCE:BTC/USDT", order_side=c.OrderSide.SELL,
        order_type=c.OrderType.MARKET, quantity="0.001", await_closed=True)).data
    out["market"] = [market[0].status.value, market[0].executed_quantity]
    listed = trading.list_trade_orders(trading_account_id=account.trading_account_id, limit=10, offset=0)
    out["listed"] = sorted(o.status.value for o in listed.data)
    out["open"] = [str(o.trade_order_id) for o in trading.list_trade_orders(
        trading_account_id=account.trading_account_id, order_status=c.OrderStatus.ACCEPTED).data]
    canceled = trading.cancel_trade_order(cancel_trade_order_request=c.CancelTradeOrderRequest(
        trading_account_id=account.trading_account_id, trade_order_id=placed[0].trade_order_id)).data
    out["canceled"] = [canceled.status.value, str(canceled.trade_order_id) == str(placed[0].trade_order_id)]
    try:
        trading.submit_trade_order(submit_trade_order_request=c.SubmitTradeOrderRequest(
            trading_account_id=account.trading_account_id, instrument_id="BINANCE:BTC/USDT",
            order_side=c.OrderSide.BUY, order_type=c.OrderType.STOP_LIMIT, quantity="0.001", limit_price="40000",
            stop_price="41000"))
        out["stop"] = None
    except c.ApiException as exc:
        out["stop"] = [exc.status, exc.data.errno if exc.data is not None else None]
    out["placed_id"] = str(placed[0].trade_order_id)
    print(json.dumps(out))
''')


def test_cadenza_client_trading_api(cadenza_server, cadenza_users, mock_exchange, tmp_path: Path) -> None:
    """Cadenza's own generated client's TradingApi, installed from CADENZA_CLIENT_SRC: submit, list, cancel."""
    target = install_cadenza_client(tmp_path / "site", "Its TradingApi was not run.")
    user = cadenza_users.create(sign_in=False)
    key = mock_key(mock_exchange)
    script = tmp_path / "trading.py"
    script.write_text(CLIENT_TRADING, encoding="utf-8")
    with httpx.Client(base_url=cadenza_server.url, timeout=30) as http:
        api = login(http, user)
        with subprocess.Popen([sys.executable, str(script), cadenza_server.url, user.username, user.password,
                               key["apiKey"], key["apiSecret"]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(target)}) as run:
            assert run.stdout is not None and run.stdin is not None
            first = run.stdout.readline()
            if not first:
                pytest.fail(f"the client failed before trading:\n{run.communicate(timeout=60)}")
            set_policy(api, json.loads(first)["account"], allow_market_orders=True)
            stdout, stderr = run.communicate("go\n", timeout=300)
    assert run.returncode == 0, f"the client failed:\n{stdout}\n{stderr}"
    out = json.loads(stdout.strip().splitlines()[-1])
    assert out["placed"] == [1, "ACCEPTED", "BINANCE", "0.001"] and out["same"] is True
    assert out["market"] == ["FILLED", "0.001"]
    assert out["listed"] == ["ACCEPTED", "FILLED"] and out["open"] == [out["placed_id"]]
    assert out["canceled"] == ["CANCELLED", True]
    assert out["stop"] == [400, -19004]
    assert len(mock_orders(mock_exchange, key)) == 2
