"""Issue 10: py3cw 0.1.1, 3Commas' most used Python client, unchanged but for ``py3cw.request.API_URL``,
against a live Strongroom server (SQLite and PostgreSQL) and the loopback mock exchange.

py3cw returns ``(error, data)``: ``error`` is ``{}`` on success, else ``{'error': True, 'msg': 'Other error
occurred: <error> <error_description> <error_attributes>.', 'status_code': n}`` (reference §2.3).
"""

from __future__ import annotations

import json
import re
import uuid
from decimal import Decimal
from typing import Any

import httpx
import py3cw.request
import pytest
from support import SEEDS
from support.exchange_mock import Mock
from support.threecommas import V1, Key, hmac_key, mock_of, rsa_key

SEED_FILE = SEEDS / "001_7bc8cd7da0398e2e.txt"
SEED_DUPLICATE = {"error": "record_invalid", "error_description": "Invalid parameters",
                  "error_attributes": {"api_key": ["This account is already connected!"]}}

# Mock balances with the mock's default prices (BTC/USDT 50,000, ETH/USDT 3,000, ETH/BTC 0.06):
# BTC 0.6 = 30,000 USD; ETH 2 = 6,000 USD = 0.12 BTC; USDT 1,200 = 0.024 BTC.
BALANCES = {"BTC": {"free": "0.5", "used": "0.1"}, "ETH": {"free": "2"}, "USDT": {"free": "1200"}}
TOTAL_USD = Decimal(37200)
TOTAL_BTC = Decimal("0.744")


def seed_entity() -> dict[str, Any]:
    """The seed's example AccountEntity (its 200 answer), parsed from the seed document itself."""
    text = SEED_FILE.read_text(encoding="utf-8")
    doc, _ = json.JSONDecoder().raw_decode(text[text.index('{\n"id"'):])
    return doc


def ok(result: tuple[dict[str, Any], Any]) -> Any:
    """py3cw's answer on success: no error, the data."""
    error, data = result
    assert error == {}, error
    return data


def failed(result: tuple[dict[str, Any], Any], status: int, code: str) -> str:
    """py3cw's answer on an error: its message names the 3Commas error; returns the message."""
    error, data = result
    assert data == {} and error.get("error") is True, (error, data)
    assert error["status_code"] == status, error
    assert error["msg"].startswith(f"Other error occurred: {code} "), error
    return error["msg"]


def new(p3: Any, **payload: Any) -> tuple[dict[str, Any], Any]:
    return p3.request(entity="accounts", action="new", payload=payload)


def connect(p3: Any, creds: dict[str, str], name: str = "Main", market: str = "binance") -> dict[str, Any]:
    return ok(new(p3, type=market, name=name, **creds))


@pytest.fixture
def py3cw_server(server, monkeypatch):
    """py3cw pointed at the live server: its only base-URL hook, ``py3cw.request.API_URL``."""
    monkeypatch.setattr(py3cw.request, "API_URL", server.url)
    return server


@pytest.fixture(scope="session")
def mock(mock_exchange) -> Mock:
    return mock_of(mock_exchange)


@pytest.fixture
def user(users):
    return users.create()


@pytest.fixture
def key(client, user) -> Key:
    return hmac_key(client, user)


def test_market_list(py3cw_server, key, server):
    markets = ok(key.py3cw().request(entity="accounts", action="market_list"))
    by_code = {m["market_code"]: m for m in markets}
    assert len(by_code) == len(markets) == len(server.core.catalogue)
    for code in ("binance", "okex", "bybit", "kucoin", "gate_io", "bitfinex", "kraken", "coinbase", "bitstamp",
                 "huobi", "binance_us"):
        assert code in by_code, code
    binance, okex = by_code["binance"], by_code["okex"]
    assert binance["market_name"] == "Binance"
    assert binance["form_fields"] == {"required": [{"field": "api_key", "localized_name": "API Key:"},
                                                   {"field": "secret", "localized_name": "API Secret:"}],
                                      "optional": []}
    assert okex["market_name"] == "OKX"
    assert [f["field"] for f in okex["form_fields"]["required"]] == ["api_key", "secret", "passphrase"]
    assert all(set(m) >= {"market_name", "market_code", "form_fields"} and "error" not in m for m in markets)


def test_account_lifecycle(py3cw_server, key, mock, client):
    """new (the seed's example body) -> duplicate (the seed's exact 400) -> list -> account_info ->
    rename (non-ASCII) -> remove (True) -> gone."""
    p3 = key.py3cw()
    creds = mock.new_key("binance")
    # the seed's example request, with the mock's credentials in place of "..."
    account = connect(p3, creds, name="New account")
    seed = seed_entity()
    assert list(account) == list(seed), "every field of the seed's example, in its order"
    for field, value in seed.items():
        assert type(account[field]) is type(value), (field, account[field], value)
    assert account["name"] == "New account" and account["market_code"] == "binance"
    assert account["exchange_name"] == "Binance Spot" and account["pretty_display_type"] == "Binance"
    assert account["api_keys_state"] == "ok" and account["api_key_invalid"] is False
    assert account["usd_amount"] == "0" and account["total_primary_display_currency_profit"] == {
        "currency": "USD", "amount": 0.0}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", account["created_at"])
    raw = json.dumps(account)
    assert creds["api_key"] not in raw and creds["secret"] not in raw

    # the same exchange key again (another name: an identical request would be a replay): the seed's 400 body
    response = client.post(f"{V1}/accounts/new", content=json.dumps(
        {"type": "binance", "name": "Again", **creds}), headers={
        **key.headers(f"{V1}/accounts/new".encode() + json.dumps({"type": "binance", "name": "Again", **creds}).encode()),
        "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json() == SEED_DUPLICATE
    assert list(response.json()) == ["error", "error_description", "error_attributes"]
    msg = failed(new(p3, type="binance", name="Third", **creds), 400, "record_invalid")
    assert "This account is already connected!" in msg

    listed = ok(p3.request(entity="accounts", action=""))
    assert account["id"] in [a["id"] for a in listed]
    filtered = ok(p3.request(entity="accounts", action="", payload={"per_page": 10, "api_key": creds["api_key"]}))
    assert [a["id"] for a in filtered] == [account["id"]]
    assert ok(p3.request(entity="accounts", action="", payload={"api_key": "k-not-a-key-of-mine"})) == []

    info = ok(p3.request(entity="accounts", action="account_info", action_id=str(account["id"])))
    assert info["id"] == account["id"] and list(info) == list(seed)

    renamed = ok(p3.request(entity="accounts", action="rename", action_id=str(account["id"]),
                            payload={"name": "Ünï 账户 €"}))
    assert renamed["name"] == "Ünï 账户 €"
    assert ok(p3.request(entity="accounts", action="account_info", action_id=str(account["id"])))["name"] == "Ünï 账户 €"

    assert ok(p3.request(entity="accounts", action="remove", action_id=str(account["id"]))) is True
    failed(p3.request(entity="accounts", action="account_info", action_id=str(account["id"])), 404, "not_found")
    assert account["id"] not in [a["id"] for a in ok(p3.request(entity="accounts", action=""))]
    # the key can be connected again once removed
    again = connect(p3, creds, name="Back")
    assert again["id"] != account["id"]


def test_bad_exchange_credentials(py3cw_server, key, mock):
    p3 = key.py3cw()
    creds = mock.new_key("binance")
    msg = failed(new(p3, type="binance", name="Wrong", api_key=creds["api_key"], secret="not-the-secret"),
                 422, "invalid_api_key")
    assert "not-the-secret" not in msg
    failed(new(p3, type="binance", name="Nothing"), 400, "record_invalid")
    missing = failed(new(p3, type="okex", name="No passphrase", api_key="k", secret="s"), 400, "record_invalid")
    assert "'passphrase': ['is missing']" in missing
    failed(new(p3, type="no_such_market", name="x", api_key="k", secret="s"), 400, "record_invalid")


def test_okx_with_passphrase(py3cw_server, key, mock):
    account = connect(key.py3cw(), mock.new_key("okx"), name="OKX main", market="okex")
    assert account["market_code"] == "okex" and account["exchange_name"] == "OKX Spot"
    assert account["pretty_display_type"] == "Okex"


def test_load_balances_exact_figures_and_pie_chart(py3cw_server, key, mock):
    p3 = key.py3cw()
    creds = mock.new_key("binance", balances=BALANCES)
    account = connect(p3, creds, name="Valued")
    loaded = ok(p3.request(entity="accounts", action="load_balances", action_id=str(account["id"])))
    assert Decimal(loaded["usd_amount"]) == TOTAL_USD and Decimal(loaded["btc_amount"]) == TOTAL_BTC
    assert Decimal(loaded["primary_display_currency_amount"]["amount"]) == TOTAL_USD
    assert "E" not in loaded["usd_amount"].upper() and "E" not in loaded["btc_amount"].upper()
    # the first snapshot is the start of the history: no profit yet
    assert Decimal(loaded["usd_profit"]) == 0 and Decimal(loaded["day_profit_usd"]) == 0

    pie = ok(p3.request(entity="accounts", action="pie_chart_data", action_id=str(account["id"])))
    assert {p["code"] for p in pie} == {"BTC", "ETH", "USDT"}
    assert sum(Decimal(str(p["percentage"])) for p in pie) == 100
    by_code = {p["code"]: p for p in pie}
    assert Decimal(by_code["BTC"]["usd_value"]) == 30000 and Decimal(by_code["ETH"]["btc_value"]) == Decimal("0.12")
    assert [Decimal(str(by_code[c]["percentage"])) for c in ("BTC", "ETH", "USDT")] == [
        Decimal("80.64"), Decimal("16.13"), Decimal("3.23")]
    assert all(p["account_id"] == account["id"] for p in pie)

    table = ok(p3.request(entity="accounts", action="account_table_data", action_id=str(account["id"])))
    btc = next(r for r in table if r["currency_code"] == "BTC")
    assert Decimal(btc["position"]) == Decimal("0.6") and Decimal(btc["on_orders"]) == Decimal("0.1")
    assert Decimal(btc["current_price_usd"]) == 50000

    # the balances grow: the next load shows the change as profit, in USD and BTC
    mock.post("/_mock/balances", {"exchange": "binance", "api_key": creds["api_key"],
                                  "balances": {**BALANCES, "USDT": {"free": "4920"}}})
    reloaded = ok(p3.request(entity="accounts", action="load_balances", action_id=str(account["id"])))
    assert Decimal(reloaded["usd_amount"]) == TOTAL_USD + 3720
    assert Decimal(reloaded["usd_profit"]) == 3720 and Decimal(reloaded["usd_profit_percentage"]) == 10
    assert Decimal(reloaded["btc_profit"]) == Decimal("0.0744")
    info = ok(p3.request(entity="accounts", action="account_info", action_id=str(account["id"])))
    assert info["usd_amount"] == reloaded["usd_amount"] and info["usd_profit"] == reloaded["usd_profit"]

    chart = ok(p3.request(entity="accounts", action="balance_chart_data", action_id=str(account["id"]),
                          payload={"date_from": "2020-01-01T00:00:00Z"}))
    assert [Decimal(p["usd"]) for p in chart][-2:] == [TOTAL_USD, TOTAL_USD + 3720]


def test_dashboard_repeats_reads(py3cw_server, key, mock):
    """A dashboard calls the same reads every 30 s: identical signatures, never refused as replays."""
    p3 = key.py3cw()
    account = connect(p3, mock.new_key("binance"), name="Dashboard")
    for _ in range(3):
        assert ok(p3.request(entity="accounts", action="account_info", action_id=str(account["id"])))["id"]
        ok(p3.request(entity="accounts", action=""))
        ok(p3.request(entity="accounts", action="load_balances", action_id=str(account["id"])))
        ok(p3.request(entity="accounts", action="pie_chart_data", action_id=str(account["id"])))


def test_wrong_secret_and_unknown_key(py3cw_server, key, client):
    wrong = Key(key.key_id, secret=key.secret[:-2] + ("aa" if not key.secret.endswith("aa") else "bb"))
    msg = failed(wrong.py3cw().request(entity="accounts", action=""), 401, "signature_invalid")
    assert "Provided signature is invalid" in msg
    unknown = Key(str(uuid.uuid4()), secret=key.secret)
    failed(unknown.py3cw().request(entity="accounts", action=""), 401, "api_key_invalid_or_expired")
    garbage = Key("not-a-key", secret="x")
    failed(garbage.py3cw().request(entity="accounts", action=""), 401, "api_key_invalid_or_expired")
    # the raw answers: 3Commas' bodies, JSON
    response = client.get(f"{V1}/accounts", headers={"APIKEY": key.key_id, "Signature": "00" * 32})
    assert response.status_code == 401 and response.headers["content-type"].startswith("application/json")
    assert response.json() == {"error": "signature_invalid", "error_description": "Provided signature is invalid"}
    response = client.get(f"{V1}/accounts")
    assert response.status_code == 401 and response.json() == {
        "error": "api_key_invalid_or_expired", "error_description": "Unauthorized. Invalid or expired api key."}


def test_disabled_key(py3cw_server, client, user):
    disabled = hmac_key(client, user)
    assert ok(disabled.py3cw().request(entity="accounts", action="")) == []
    response = client.patch(f"/v1/api-keys/{disabled.key_id}", headers=user.headers, json={"enabled": False})
    assert response.status_code == 200, response.text
    failed(disabled.py3cw().request(entity="accounts", action="", payload={"page": 1}), 401,
           "api_key_invalid_or_expired")


def test_rsa_selfsigned_key(py3cw_server, client, user, mock):
    rsa = rsa_key(client, user)
    assert rsa.private_pem and "PRIVATE KEY" in rsa.private_pem
    p3 = rsa.py3cw()
    account = connect(p3, mock.new_key("binance"), name="Signed with RSA")
    assert ok(p3.request(entity="accounts", action="account_info", action_id=str(account["id"])))["id"] == account["id"]
    renamed = ok(p3.request(entity="accounts", action="rename", action_id=str(account["id"]), payload={"name": "Ŕ"}))
    assert renamed["name"] == "Ŕ"
    # a signature by another RSA key is refused
    other = rsa_key(client, user)
    impostor = Key(rsa.key_id, private_pem=other.private_pem)
    failed(impostor.py3cw().request(entity="accounts", action=""), 401, "signature_invalid")


def test_rsa_selfsigned_with_ones_own_public_key(py3cw_server, client, user, mock):
    """Issue 22.4: a basic user uploads the public half of their own RSA key on /v1 and signs with py3cw."""
    from cryptography.hazmat.primitives import serialization
    from support.signing import new_rsa, public_pem

    private = new_rsa()
    response = client.post("/v1/api-keys", headers=user.headers, json={
        "name": "py3cw selfsigned", "kind": "rsa", "public_key": public_pem(private),
        "scopes": ["read", "write", "delete"]})
    assert response.status_code == 201, response.text
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    p3 = Key(response.json()["key_id"], private_pem=pem).py3cw()
    account = connect(p3, mock.new_key("binance"), name="My own RSA")
    assert ok(p3.request(entity="accounts", action="account_info", action_id=str(account["id"])))["id"] == account["id"]


def test_read_only_key_refused_on_write(py3cw_server, client, user, key, mock):
    account = connect(key.py3cw(), mock.new_key("binance"), name="Read me")
    reader = hmac_key(client, user, scopes=("read",)).py3cw()
    assert ok(reader.request(entity="accounts", action="account_info", action_id=str(account["id"])))["id"]
    failed(new(reader, type="binance", name="No", **mock.new_key("binance")), 403, "access_denied")
    failed(reader.request(entity="accounts", action="rename", action_id=str(account["id"]), payload={"name": "No"}),
           403, "access_denied")
    failed(reader.request(entity="accounts", action="remove", action_id=str(account["id"])), 403, "access_denied")
    # remove is a disconnect: Strongroom's delete scope, as on every surface
    writer = hmac_key(client, user, scopes=("read", "write")).py3cw()
    failed(writer.request(entity="accounts", action="remove", action_id=str(account["id"])), 403, "access_denied")
    assert ok(key.py3cw().request(entity="accounts", action="account_info",
                                  action_id=str(account["id"])))["name"] == "Read me"


def test_other_users_account_is_not_found(py3cw_server, client, users, key, mock):
    account = connect(key.py3cw(), mock.new_key("binance"), name="Mine")
    other = hmac_key(client, users.create()).py3cw()
    for action, payload in (("account_info", None), ("rename", {"name": "Theirs"}), ("remove", None),
                            ("load_balances", None), ("pie_chart_data", None), ("active_trading_entities", None)):
        result = other.request(entity="accounts", action=action, action_id=str(account["id"]), payload=payload)
        failed(result, 404, "not_found")
    assert account["id"] not in [a["id"] for a in ok(other.request(entity="accounts", action=""))]
    assert ok(key.py3cw().request(entity="accounts", action="account_info",
                                  action_id=str(account["id"])))["name"] == "Mine"


def test_replay_of_a_captured_write_is_refused(py3cw_server, user, key, mock, client):
    """What py3cw sent for a rename, sent again byte for byte: refused (401 signature_invalid)."""
    p3 = key.py3cw()
    account = connect(p3, mock.new_key("binance"), name="Before")
    sent: list[dict[str, Any]] = []
    original = p3.session.request

    def capture(method, url, headers=None, json=None, **kwargs):
        response = original(method, url, headers=headers, json=json, **kwargs)
        sent.append({"method": method, "url": url, "headers": dict(headers or {}),
                     "body": response.request.body or b""})
        return response

    p3.session.request = capture
    ok(p3.request(entity="accounts", action="rename", action_id=str(account["id"]), payload={"name": "After"}))
    ok(p3.request(entity="accounts", action="account_info", action_id=str(account["id"])))
    rename, info = sent
    # the captured rename, replayed: refused, and nothing changes
    replayed = httpx.request(rename["method"], rename["url"], headers=rename["headers"],
                             content=rename["body"] if isinstance(rename["body"], bytes) else rename["body"].encode())
    assert replayed.status_code == 401 and replayed.json()["error"] == "signature_invalid"
    # a captured read, replayed: answered (a dashboard repeats exactly this)
    again = httpx.request(info["method"], info["url"], headers=info["headers"])
    assert again.status_code == 200 and again.json()["name"] == "After"
    # the replay was audited as such
    events = client.get("/v1/audit-events", params={"action": "auth.key", "limit": 50}, headers=user.headers)
    assert events.status_code == 200, events.text
    assert "replayed_signature" in [e["details"].get("reason") for e in events.json()["items"]]
