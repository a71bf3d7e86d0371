"""Issue 19 over real HTTP, on SQLite and PostgreSQL, against the loopback mock exchange (real ccxt signing):
orders placed, listed, filled by a price move and seen in balances; cancel and cancel-all; each risk rule by
name; the trade scope and key bindings; one exchange order per client order id (twice, after a lost answer, 20
at once), counted through the mock's stats; no secret or venue text in any answer or log line.

Each test registers its own keys on the mock. These tests trade SOL/USDT, which only they price (other tests'
valuations are untouched); its price is put back after each test. The module's server re-reads tickers every
0.1 s, so a price move is seen at once by the risk checks.
"""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support import LOGS, Users, install_log_capture, start_server
from support.problems import assert_problem

SYMBOL = "SOL/USDT"
PRICE = "100"
EXCHANGE_TEXTS = ("Signature for this request", "-1022", "-2015", "-2010", "Invalid API-key",
                  "Account has insufficient", "51008", "binance {", "okx {", "ccxt", "Traceback", "http://127.0.0.1",
                  "/api/v3/order", "/api/v5/trade", "signature=")
OPEN_POLICY = {"max_notional_usd": "100000", "allow_market_orders": True}


class Mock:
    def __init__(self, url: str) -> None:
        self.url = url

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(self.url + path, json=body, timeout=10)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def new_key(self, exchange: str = "binance") -> dict[str, str]:
        tag = uuid.uuid4().hex
        creds = {"api_key": f"trd-{exchange}-{tag}", "secret": f"trdsecret-{tag}"}
        if exchange == "okx":
            creds["passphrase"] = f"trdpass-{tag[:10]}"
        self.post("/_mock/accounts", {"exchange": exchange, **creds,
                                      "balances": {"USDT": {"free": "10000"}, "SOL": {"free": "20"}}})
        return creds

    def price(self, exchange: str, price: str | None) -> None:
        self.post("/_mock/prices", {"exchange": exchange, "prices": {SYMBOL: price}})

    def created(self, exchange: str, api_key: str) -> int:
        stats = httpx.get(self.url + "/_mock/stats", timeout=10).json()
        return int(stats.get(exchange, {}).get("orders_by_key", {}).get(api_key, 0))

    def fault(self, exchange: str, kind: str, api_key: str) -> None:
        self.post("/_mock/faults", {"exchange": exchange, "fault": kind, "api_key": api_key, "count": 1})


class Recorder:
    """Every response text seen by a test, for the leak checks."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        self.texts.append(response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items()))


@pytest.fixture(scope="module")
def trading_server(backend: Any, mock_exchange: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    install_log_capture()
    srv = start_server(data_dir=tmp_path_factory.mktemp(f"trading-{backend.name}"), database_url=backend.url,
                       exchange_base_urls={"binance": mock_exchange.url, "okx": mock_exchange.url},
                       exchange_price_ttl_seconds=0.1, jobs="off")
    yield srv
    srv.stop()


@pytest.fixture
def mock(mock_exchange: Any) -> Iterator[Mock]:
    m = Mock(mock_exchange.url)
    for exchange in ("binance", "okx"):
        m.price(exchange, PRICE)
    yield m
    httpx.post(mock_exchange.url + "/_mock/faults", json={"clear": True}, timeout=10)
    for exchange in ("binance", "okx"):
        m.price(exchange, None)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def http(trading_server: Any, recorder: Recorder) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=trading_server.url, timeout=30, event_hooks={"response": [recorder]}) as client:
        yield client


@pytest.fixture
def owner(trading_server: Any) -> Any:
    return Users(trading_server).create()


def connect(http: httpx.Client, headers: dict[str, str], creds: dict[str, str], exchange: str = "binance",
            policy: dict[str, Any] | None = None) -> int:
    response = http.post("/v1/exchange-accounts", headers=headers, json={"exchange": exchange, "credentials": creds})
    assert response.status_code == 201, response.text
    account = int(response.json()["id"])
    if policy is not None:
        put = http.put(f"/v1/exchange-accounts/{account}/trading-policy", headers=headers, json=policy)
        assert put.status_code == 200, put.text
    return account


def order(cid: str | None = None, amount: str = "1", price: str | None = "99", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"symbol": SYMBOL, "side": "buy", "type": "limit" if price else "market", "amount": amount,
                            **extra}
    if price:
        body["price"] = price
    if cid:
        body["client_order_id"] = cid
    return body


def place(http: httpx.Client, headers: dict[str, str], account: int, body: dict[str, Any]) -> httpx.Response:
    return http.post(f"/v1/exchange-accounts/{account}/orders", headers=headers, json=body)


def key(http: httpx.Client, headers: dict[str, str], **attrs: Any) -> dict[str, str]:
    response = http.post("/v1/api-keys", headers=headers, json={"name": "bot", "kind": "bearer", **attrs})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['secret']}", "key_id": response.json()["key_id"]}


def auth(headers: dict[str, str]) -> dict[str, str]:
    return {"Authorization": headers["Authorization"]}


def assets(http: httpx.Client, headers: dict[str, str], account: int) -> dict[str, str]:
    response = http.get(f"/v1/exchange-accounts/{account}/balances", headers=headers, params={"refresh": "true"})
    assert response.status_code == 200, response.text
    return {a["asset"]: a["total"] for a in response.json()["assets"]}


@pytest.mark.parametrize("exchange", ["binance", "okx"])
def test_limit_order_placed_listed_filled_by_a_price_move_and_seen_in_balances(
        http: httpx.Client, owner: Any, mock: Mock, exchange: str) -> None:
    creds = mock.new_key(exchange)
    account = connect(http, owner.headers, creds, exchange, OPEN_POLICY)
    before = assets(http, owner.headers, account)
    placed = place(http, owner.headers, account, order("fill1", amount="2", price="95"))
    assert placed.status_code == 201, placed.text
    body = placed.json()
    assert body["status"] == "open" and body["exchange_order_id"] and body["client_order_id"] == "fill1"
    assert (body["symbol"], body["side"], body["type"], body["amount"], body["price"], body["filled"]) == (
        SYMBOL, "buy", "limit", "2", "95", "0")
    listed = http.get(f"/v1/exchange-accounts/{account}/orders", headers=owner.headers).json()
    assert [o["id"] for o in listed["items"]] == [body["id"]]
    mock.price(exchange, "94")  # crosses the buy at 95: the mock fills it
    closed = http.get(f"/v1/exchange-accounts/{account}/orders", headers=owner.headers,
                      params={"status": "closed"}).json()
    assert [(o["id"], o["status"], o["filled"]) for o in closed["items"]] == [(body["id"], "closed", "2")]
    assert http.get(f"/v1/exchange-accounts/{account}/orders", headers=owner.headers).json()["items"] == []
    after = assets(http, owner.headers, account)
    assert float(after["SOL"]) == pytest.approx(float(before["SOL"]) + 2, abs=0.01)
    assert float(after["USDT"]) < float(before["USDT"]) - 180
    one = http.get(f"/v1/exchange-accounts/{account}/orders/{body['id']}", headers=owner.headers).json()
    assert one["status"] == "closed" and one["average_price"] is not None


def test_market_order_fills_at_once_where_allowed(http: httpx.Client, owner: Any, mock: Mock) -> None:
    creds = mock.new_key()
    account = connect(http, owner.headers, creds, policy=OPEN_POLICY)
    filled = place(http, owner.headers, account, order("mkt1", amount="1", price=None))
    assert filled.status_code == 201, filled.text
    assert filled.json()["status"] == "closed" and filled.json()["filled"] == "1"


def test_cancel_and_cancel_all(http: httpx.Client, owner: Any, mock: Mock) -> None:
    creds = mock.new_key()
    account = connect(http, owner.headers, creds, policy=OPEN_POLICY)
    ids = [place(http, owner.headers, account, order(f"c{i}", price=str(90 + i))).json()["id"] for i in range(3)]
    canceled = http.delete(f"/v1/exchange-accounts/{account}/orders/{ids[0]}", headers=owner.headers)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert_problem(http.delete(f"/v1/exchange-accounts/{account}/orders/{ids[0]}", headers=owner.headers), 409,
                   "conflict")
    everything = http.post(f"/v1/exchange-accounts/{account}/orders/cancel-all", headers=owner.headers)
    assert everything.status_code == 200, everything.text
    assert sorted(o["id"] for o in everything.json()["canceled"]) == ids[1:]
    assert http.get(f"/v1/exchange-accounts/{account}/orders", headers=owner.headers).json()["items"] == []
    closed = http.get(f"/v1/exchange-accounts/{account}/orders", headers=owner.headers, params={"status": "closed"})
    assert {o["status"] for o in closed.json()["items"]} == {"canceled"}
    assert_problem(http.get(f"/v1/exchange-accounts/{account}/orders/999999", headers=owner.headers), 404)


def test_each_risk_rule_refuses_with_its_name(http: httpx.Client, owner: Any, mock: Mock) -> None:
    creds = mock.new_key()
    account = connect(http, owner.headers, creds)
    no_policy = assert_problem(place(http, owner.headers, account, order("r0")), 403, "risk_policy")
    assert no_policy["rule"] == "policy"
    policy = {"allowed_symbols": ["SOL/*"], "max_notional_usd": "500", "price_band_percent": "10",
              "max_open_orders": 1, "max_orders_per_minute": 2}
    assert http.put(f"/v1/exchange-accounts/{account}/trading-policy", headers=owner.headers,
                    json=policy).status_code == 200
    cases = [(dict(order("r1"), symbol="ETH/USDT", price="3000", amount="0.01"), "allowed_symbols"),
             (order("r2", price=None), "allow_market_orders"),
             (order("r3", amount="6"), "max_notional_usd"),  # 6 x 99 USD
             (order("r4", price="80"), "price_band_percent")]
    for body, rule in cases:
        assert assert_problem(place(http, owner.headers, account, body), 403, "risk_policy")["rule"] == rule
    assert place(http, owner.headers, account, order("r5")).status_code == 201
    assert assert_problem(place(http, owner.headers, account, order("r6")), 403)["rule"] == "max_open_orders"
    http.post(f"/v1/exchange-accounts/{account}/orders/cancel-all", headers=owner.headers)
    assert place(http, owner.headers, account, order("r7")).status_code == 201
    http.post(f"/v1/exchange-accounts/{account}/orders/cancel-all", headers=owner.headers)
    assert assert_problem(place(http, owner.headers, account, order("r8")), 403)["rule"] == "max_orders_per_minute"
    assert http.put(f"/v1/exchange-accounts/{account}/trading-policy", headers=owner.headers,
                    json={**policy, "max_orders_per_minute": None, "kill_switch": True}).status_code == 200
    assert assert_problem(place(http, owner.headers, account, order("r9")), 403)["rule"] == "kill_switch"
    # below the venue's minimum: 400 naming it (Binance SOL/USDT: notional 5)
    http.put(f"/v1/exchange-accounts/{account}/trading-policy", headers=owner.headers, json=OPEN_POLICY)
    small = assert_problem(place(http, owner.headers, account, order("m1", amount="0.01")), 400)
    assert "5" in small["detail"] and "amount" in small["errors"]
    audit = http.get("/v1/audit", headers=owner.headers, params={"action": "order.create", "outcome": "refused"})
    if audit.status_code == 200:
        assert len(audit.json()["items"]) >= 8


def test_trade_scope_and_account_binding(http: httpx.Client, owner: Any, mock: Mock) -> None:
    account = connect(http, owner.headers, mock.new_key(), policy=OPEN_POLICY)
    other = connect(http, owner.headers, mock.new_key(), policy=OPEN_POLICY)
    writer = key(http, owner.headers, scopes=["read", "write", "write::trade"])
    assert_problem(place(http, auth(writer), account, order("s1")), 403, "insufficient_scope")
    bound = key(http, owner.headers, scopes=["read", "trade"], account_ids=[other])
    assert_problem(place(http, auth(bound), account, order("s2")), 404)
    placed = place(http, auth(bound), other, order("s3"))
    assert placed.status_code == 201, placed.text
    # a key may narrow the policy or set the kill switch, never widen it: 403 risk_policy naming the field
    widen = http.put(f"/v1/exchange-accounts/{other}/trading-policy", headers=auth(bound),
                     json={**OPEN_POLICY, "max_notional_usd": "200000"})
    assert_problem(widen, 403, "risk_policy")
    assert widen.json()["rule"] == "max_notional_usd"
    kill = http.put(f"/v1/exchange-accounts/{other}/trading-policy", headers=auth(bound),
                    json={**OPEN_POLICY, "kill_switch": True})
    assert kill.status_code == 200 and kill.json()["kill_switch"] is True
    unkill = http.put(f"/v1/exchange-accounts/{other}/trading-policy", headers=auth(bound), json=OPEN_POLICY)
    assert unkill.json()["rule"] == "kill_switch"
    assert http.put(f"/v1/exchange-accounts/{other}/trading-policy", headers=owner.headers,
                    json=OPEN_POLICY).json()["kill_switch"] is False
    narrower = http.put(f"/v1/api-keys/{bound['key_id']}/trading-policy", headers=owner.headers,
                        json={"allowed_symbols": ["BTC/*"]})
    assert narrower.status_code == 200 and narrower.json()["subject"] == f"key:{bound['key_id']}"
    assert assert_problem(place(http, auth(bound), other, order("s4")), 403)["rule"] == "allowed_symbols"


def test_same_client_order_id_twice_is_one_exchange_order(http: httpx.Client, owner: Any, mock: Mock) -> None:
    creds = mock.new_key()
    account = connect(http, owner.headers, creds, policy=OPEN_POLICY)
    first = place(http, owner.headers, account, order("twice"))
    again = place(http, owner.headers, account, order("twice"))
    header = place(http, {**owner.headers, "Idempotency-Key": "twice"}, account, order(None))
    assert (first.status_code, again.status_code, header.status_code) == (201, 200, 200)
    assert first.json()["id"] == again.json()["id"] == header.json()["id"]
    assert_problem(place(http, owner.headers, account, order("twice", amount="2")), 409, "conflict")
    mismatch = place(http, {**owner.headers, "Idempotency-Key": "two"}, account, order("one"))
    assert_problem(mismatch, 400)
    assert mock.created("binance", creds["api_key"]) == 1


def test_a_lost_answer_then_a_retry_is_one_exchange_order(http: httpx.Client, owner: Any, mock: Mock) -> None:
    creds = mock.new_key()
    account = connect(http, owner.headers, creds, policy=OPEN_POLICY)
    mock.fault("binance", "lost_answer", creds["api_key"])
    lost = place(http, owner.headers, account, order("lost1"))
    assert lost.status_code == 202, lost.text
    assert lost.json()["status"] == "pending" and lost.json()["exchange_order_id"] is None
    retried = place(http, owner.headers, account, order("lost1"))
    assert retried.status_code == 200, retried.text
    assert retried.json()["id"] == lost.json()["id"] and retried.json()["status"] == "open"
    assert mock.created("binance", creds["api_key"]) == 1


def test_twenty_concurrent_submits_with_one_client_order_id_are_one_order(trading_server: Any, owner: Any,
                                                                          mock: Mock, http: httpx.Client) -> None:
    creds = mock.new_key()
    account = connect(http, owner.headers, creds, policy=OPEN_POLICY)

    def submit(_: int) -> httpx.Response:
        with httpx.Client(base_url=trading_server.url, timeout=60) as client:
            return place(client, owner.headers, account, order("burst"))

    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(submit, range(20)))
    assert sorted({a.status_code for a in answers}) in ([200, 201], [201]), [a.text for a in answers]
    assert [a.status_code for a in answers].count(201) == 1
    assert len({a.json()["id"] for a in answers}) == 1
    assert mock.created("binance", creds["api_key"]) == 1


def test_insufficient_funds_is_a_400_and_a_rejected_order(http: httpx.Client, owner: Any, mock: Mock) -> None:
    creds = mock.new_key()
    account = connect(http, owner.headers, creds, policy=OPEN_POLICY)
    mock.fault("binance", "insufficient_balance", creds["api_key"])
    assert_problem(place(http, owner.headers, account, order("poor")), 400, "insufficient_funds")
    again = place(http, owner.headers, account, order("poor"))
    assert again.status_code == 200 and again.json()["status"] == "rejected"
    assert again.json()["error_code"] == "insufficient_funds"


def test_no_secret_or_venue_text_in_any_answer_or_log(http: httpx.Client, owner: Any, mock: Mock,
                                                      recorder: Recorder) -> None:
    creds = mock.new_key()
    start = len(LOGS.lines)
    account = connect(http, owner.headers, creds, policy=OPEN_POLICY)
    place(http, owner.headers, account, order("leak1"))
    mock.fault("binance", "insufficient_balance", creds["api_key"])
    place(http, owner.headers, account, order("leak2"))
    mock.fault("binance", "lost_answer", creds["api_key"])
    place(http, owner.headers, account, order("leak3"))
    place(http, owner.headers, account, order("leak3"))
    place(http, owner.headers, account, dict(order("leak4"), symbol="NOPE/USDT"))
    http.post(f"/v1/exchange-accounts/{account}/orders/cancel-all", headers=owner.headers)
    seen = "\n".join(recorder.texts) + "\n".join(LOGS.lines[start:])
    for secret in (creds["secret"], creds["api_key"]):
        assert secret not in seen
    for text in EXCHANGE_TEXTS:
        assert text not in "\n".join(recorder.texts), text
