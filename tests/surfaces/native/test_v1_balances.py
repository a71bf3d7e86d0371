"""Issue 9 over real HTTP, on SQLite and PostgreSQL: balances and valuation through stored credentials.

The exchange is the loopback mock (real ccxt signatures) with known balances and prices: every Binance
key holds 0.5 free + 0.1 used BTC and 1,200 USDT on spot unless told otherwise, every OKX key 0.25 BTC,
2 ETH and 1,000 USDC in its trading account; BTC/USDT is 50,000 and ETH/USDT 3,000. Each test
registers its own keys on the mock. Mock-wide changes (behaviour modes) are always undone.
"""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from support import start_server
from support.problems import assert_problem

from strongroom.balances.valuation import AssetValue

# Texts the mock (i.e. Binance/OKX) puts in its error bodies, and what a ccxt message holds: never passed on.
EXCHANGE_TEXTS = ("Signature for this request", "-1022", "-2015", "Invalid API-key", "Invalid Sign", "50113",
                  "50111", "Too many requests", "-1003", "binance {", "okx {", "ccxt", "Traceback",
                  "http://127.0.0.1", "/api/v3/account", "signature=")


# --------------------------------------------------------------------------- helpers


class Mock:
    def __init__(self, server: Any) -> None:
        self.url = server.url

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(self.url + path, json=body, timeout=10)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def new_key(self, exchange: str = "binance", **extra: Any) -> dict[str, str]:
        tag = uuid.uuid4().hex
        creds = {"api_key": f"bal-{exchange}-{tag}", "secret": f"balsecret-{tag}"}
        if exchange == "okx":
            creds["passphrase"] = f"balpass-{tag[:10]}"
        self.post("/_mock/accounts", {"exchange": exchange, **creds, **extra})
        return creds

    def requests(self) -> int:
        return int(httpx.get(self.url + "/_mock/stats", timeout=10).json()["requests"])

    def private_requests(self) -> int:
        return int(httpx.get(self.url + "/_mock/stats", timeout=10).json()["private_requests"])

    @contextmanager
    def mode(self, mode: str) -> Iterator[None]:
        self.post("/_mock/behaviour", {"mode": mode})
        try:
            yield
        finally:
            self.post("/_mock/behaviour", {"mode": "normal"})


@pytest.fixture
def mock(mock_exchange: Any) -> Mock:
    return Mock(mock_exchange)


class Recorder:
    """Every response text seen by a test, for the leak checks."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, response: httpx.Response) -> httpx.Response:
        self.texts.append(response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items()))
        return response


def connect(client: httpx.Client, headers: dict[str, str], creds: dict[str, str], exchange: str = "binance",
            **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/exchange-accounts", headers=headers,
                           json={"exchange": exchange, "credentials": creds, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def refresh(client: httpx.Client, headers: dict[str, str], account_id: int) -> httpx.Response:
    return client.post(f"/v1/exchange-accounts/{account_id}/balances/refresh", headers=headers)


def balances(client: httpx.Client, headers: dict[str, str], account_id: int, **params: Any) -> httpx.Response:
    return client.get(f"/v1/exchange-accounts/{account_id}/balances", headers=headers, params=params)




def by_asset(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["asset"]: a for a in body["assets"]}


def bearer_key(client: httpx.Client, headers: dict[str, str], **attrs: Any) -> dict[str, str]:
    response = client.post("/v1/api-keys", headers=headers, json={"name": "k", "kind": "bearer", **attrs})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['secret']}"}


def events(client: httpx.Client, headers: dict[str, str], action: str) -> list[dict[str, Any]]:
    response = client.get("/v1/audit-events", headers=headers, params={"action": action, "limit": 200})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def server_logs(logs: Any) -> str:
    """Every log line of this process but the test client's own (httpx logs the URLs it calls)."""
    return "\n".join(line for line in logs.lines if not line.startswith("httpx "))


def assert_clean(texts: list[str], *creds: dict[str, str]) -> None:
    joined = "\n".join(texts)
    for c in creds:
        for name, value in c.items():
            assert value not in joined, f"{name} leaked"
    for text in EXCHANGE_TEXTS:
        assert text not in joined, text


# --------------------------------------------------------------------------- valuation


def test_exact_decimal_totals_and_the_account_shows_them(client, users, mock):
    user = users.create()
    creds = mock.new_key()
    account = connect(client, user.headers, creds)
    aid = account["id"]
    assert account["balance_usd"] is None and account["balance_age_seconds"] is None

    never = balances(client, user.headers, aid)
    assert never.status_code == 200
    assert never.json() == {"account_id": aid, "account_type": None, "fetched_at": None, "age_seconds": None,
                            "total_usd": None, "total_btc": None, "unpriced_assets": None, "assets": []}

    response = refresh(client, user.headers, aid)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total_usd"] == "31200" and body["total_btc"] == "0.624"
    assert Decimal(body["total_usd"]) == Decimal("0.6") * 50000 + 1200
    assert body["unpriced_assets"] == 0 and body["account_type"] == "spot"
    assert [a["asset"] for a in body["assets"]] == ["BTC", "USDT"]  # by USD value, descending
    assert by_asset(body)["BTC"] == {"asset": "BTC", "free": "0.5", "used": "0.1", "total": "0.6", "usd": "30000",
                                     "btc": "0.6", "usd_price": "50000"}
    assert by_asset(body)["USDT"] == {"asset": "USDT", "free": "1200", "used": "0", "total": "1200", "usd": "1200",
                                      "btc": "0.024", "usd_price": "1"}
    assert 0 <= body["age_seconds"] < 60

    got = client.get(f"/v1/exchange-accounts/{aid}", headers=user.headers).json()
    assert got["balance_usd"] == "31200" and got["balance_btc"] == "0.624"
    assert got["balance_fetched_at"] == body["fetched_at"] and got["balance_age_seconds"] >= 0
    listed = client.get("/v1/exchange-accounts", headers=user.headers).json()["items"]
    assert [(a["id"], a["balance_usd"], a["balance_btc"]) for a in listed] == [(aid, "31200", "0.624")]


def test_an_asset_without_a_price_is_listed_unvalued_never_guessed(client, users, mock):
    user = users.create()
    creds = mock.new_key(balances={"BTC": {"free": "1"}, "NOPRICE": {"free": "5", "used": "2"},
                                   "ETH": {"free": "0.5"}, "USDC": {"free": "10.10"}})
    aid = connect(client, user.headers, creds)["id"]
    body = refresh(client, user.headers, aid).json()
    assert body["unpriced_assets"] == 1
    assert body["total_usd"] == "51510.1"  # 50,000 + 0.5 x 3,000 + 10.1; NOPRICE counts nothing
    assert body["total_btc"] == "1.030202"  # 1 + 1,500 / 50,000 + 10.1 / 50,000
    assert [a["asset"] for a in body["assets"]] == ["BTC", "ETH", "USDC", "NOPRICE"]  # unpriced last
    assert by_asset(body)["NOPRICE"] == {"asset": "NOPRICE", "free": "5", "used": "2", "total": "7", "usd": None,
                                         "btc": None, "usd_price": None}
    assert by_asset(body)["USDC"]["usd_price"] == "1" and by_asset(body)["USDC"]["total"] == "10.1"


def test_okx_account_is_valued_from_okx_prices(client, users, mock):
    user = users.create()
    creds = mock.new_key("okx")
    aid = connect(client, user.headers, creds, "okx")["id"]
    body = refresh(client, user.headers, aid).json()
    # 0.25 x 50,000 + 2 x 3,000 + 1,000 USDC
    assert body["total_usd"] == "19500" and body["total_btc"] == "0.39"
    assert by_asset(body)["ETH"] == {"asset": "ETH", "free": "1.5", "used": "0.5", "total": "2", "usd": "6000",
                                     "btc": "0.12", "usd_price": "3000"}


def test_account_type_decides_the_wallet(client, users, mock):
    user = users.create()
    creds = mock.new_key()
    aid = connect(client, user.headers, creds, account_type="margin")["id"]
    body = refresh(client, user.headers, aid).json()
    assert body["account_type"] == "margin"
    assert body["total_usd"] == "2800" and body["total_btc"] == "0.056"  # 0.05 BTC + 300 USDT


# --------------------------------------------------------------------------- snapshots


def test_the_snapshot_is_read_without_an_exchange_call(client, users, mock):
    user = users.create()
    aid = connect(client, user.headers, mock.new_key())["id"]
    assert refresh(client, user.headers, aid).status_code == 200
    before = mock.requests()
    for _ in range(3):
        assert balances(client, user.headers, aid).json()["total_usd"] == "31200"
    assert client.get(f"/v1/exchange-accounts/{aid}", headers=user.headers).json()["balance_usd"] == "31200"
    assert client.get("/v1/exchange-accounts", headers=user.headers).status_code == 200
    portfolio = client.get("/v1/portfolio", headers=user.headers).json()
    assert portfolio["total_usd"] == "31200"
    assert mock.requests() == before  # not one request reached the exchange

    live = balances(client, user.headers, aid, refresh="true")
    assert live.status_code == 200 and live.json()["total_usd"] == "31200"
    assert mock.requests() > before


def test_every_load_is_a_snapshot_and_the_latest_wins(client, users, mock):
    user = users.create()
    creds = mock.new_key()
    aid = connect(client, user.headers, creds)["id"]
    first = refresh(client, user.headers, aid).json()
    mock.post("/_mock/balances", {"exchange": "binance", "api_key": creds["api_key"],
                                  "balances": {"BTC": {"free": "2"}}})
    second = refresh(client, user.headers, aid).json()
    assert second["total_usd"] == "100000" and second["fetched_at"] >= first["fetched_at"]
    assert balances(client, user.headers, aid).json() | {"age_seconds": None} == second | {"age_seconds": None}
    history = client.get(f"/v1/exchange-accounts/{aid}/balances/history", headers=user.headers).json()
    assert [(p["usd"], p["btc"]) for p in history["points"]] == [("31200", "0.624"), ("100000", "2")]


def test_unreachable_or_rate_limited_is_503_and_the_snapshot_stays_readable(client, users, mock, logs):
    user = users.create()
    creds = mock.new_key()
    aid = connect(client, user.headers, creds)["id"]
    seen = Recorder()
    loaded = seen(refresh(client, user.headers, aid)).json()
    with mock.mode("down"):
        down = seen(refresh(client, user.headers, aid))
        down_get = seen(balances(client, user.headers, aid, refresh="true"))
        still = seen(balances(client, user.headers, aid))
    with mock.mode("rate_limited"):
        limited = seen(refresh(client, user.headers, aid))
    for response in (down, down_get, limited):
        assert_problem(response, 503, "exchange_unavailable")
        assert int(response.headers["Retry-After"]) >= 1
    assert int(limited.headers["Retry-After"]) >= int(down.headers["Retry-After"])
    assert still.status_code == 200 and still.json()["total_usd"] == "31200"
    assert still.json()["fetched_at"] == loaded["fetched_at"]
    account = client.get(f"/v1/exchange-accounts/{aid}", headers=user.headers).json()
    assert account["status"] == "active" and account["balance_usd"] == "31200"
    assert refresh(client, user.headers, aid).status_code == 200  # back to normal
    assert_clean(seen.texts, creds)
    assert_clean([server_logs(logs)], {k: v for k, v in creds.items() if k != "api_key"})


# --------------------------------------------------------------------------- status changes


def test_a_key_revoked_at_the_exchange_makes_the_account_invalid(client, users, mock, logs):
    """A revoked Binance key answers -2015 ("invalid key, IP or permissions"); on a pooled client that
    authenticated before, ccxt would call that a temporary ban (rate limited). It must be a rejection."""
    user = users.create()
    creds = mock.new_key()
    aid = connect(client, user.headers, creds)["id"]
    seen = Recorder()
    assert seen(refresh(client, user.headers, aid)).status_code == 200  # the pooled client has authenticated
    assert seen(refresh(client, user.headers, aid)).status_code == 200
    mock.post("/_mock/revoke", {"exchange": "binance", "api_key": creds["api_key"]})

    rejected = seen(refresh(client, user.headers, aid))
    body = assert_problem(rejected, 409, "credentials_rejected")
    assert "invalid" in body["detail"]
    account = client.get(f"/v1/exchange-accounts/{aid}", headers=user.headers).json()
    assert account["status"] == "invalid" and account["validation_result"] == "invalid_credentials"
    assert account["balance_usd"] == "31200"  # the last snapshot is kept
    audited = events(client, user.headers, "account.invalidate")
    assert len(audited) == 1 and audited[0]["target"] == f"account:{aid}" and audited[0]["outcome"] == "ok"
    assert audited[0]["details"]["from"] == "active" and audited[0]["details"]["to"] == "invalid"

    before = mock.requests()
    again = seen(refresh(client, user.headers, aid))
    assert_problem(again, 409, "credentials_rejected")
    assert mock.requests() == before  # an invalid account is not sent to the exchange again
    assert len(events(client, user.headers, "account.invalidate")) == 1
    assert seen(balances(client, user.headers, aid)).json()["total_usd"] == "31200"
    assert_clean(seen.texts, creds)
    assert_clean([server_logs(logs)], {k: v for k, v in creds.items() if k != "api_key"})


def test_okx_revoked_key_makes_the_account_invalid(client, users, mock):
    user = users.create()
    creds = mock.new_key("okx")
    aid = connect(client, user.headers, creds, "okx")["id"]
    assert refresh(client, user.headers, aid).status_code == 200
    mock.post("/_mock/revoke", {"exchange": "okx", "api_key": creds["api_key"]})
    assert_problem(refresh(client, user.headers, aid), 409, "credentials_rejected")
    assert client.get(f"/v1/exchange-accounts/{aid}", headers=user.headers).json()["status"] == "invalid"


def test_concurrent_refreshes_of_a_revoked_key_invalidate_it_once(client, users, mock):
    user = users.create()
    creds = mock.new_key()
    aid = connect(client, user.headers, creds)["id"]
    assert refresh(client, user.headers, aid).status_code == 200
    mock.post("/_mock/revoke", {"exchange": "binance", "api_key": creds["api_key"]})

    def one(_: int) -> int:
        return refresh(client, user.headers, aid).status_code

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(one, range(6)))
    assert codes == [409] * 6
    assert len(events(client, user.headers, "account.invalidate")) == 1


def test_concurrent_refreshes_each_store_a_snapshot(client, users, mock):
    user = users.create()
    aid = connect(client, user.headers, mock.new_key())["id"]

    def one(_: int) -> httpx.Response:
        return refresh(client, user.headers, aid)

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(one, range(6)))
    assert [r.status_code for r in answers] == [200] * 6
    assert {r.json()["total_usd"] for r in answers} == {"31200"}
    points = client.get(f"/v1/exchange-accounts/{aid}/balances/history", headers=user.headers).json()["points"]
    assert len(points) == 6


@pytest.fixture(scope="module")
def strict_server(server):
    """A second server on the same database that checks the key's permissions on every refresh."""
    srv = start_server(data_dir=server.settings.data_dir, database_url=server.settings.database_url,
                       exchange_base_urls=server.settings.exchange_base_urls, balance_key_check_seconds=0)
    yield srv
    srv.stop()


def test_withdrawal_permission_found_on_refresh_suspends_the_account(strict_server, users, mock, logs):
    user = users.create()
    creds = mock.new_key()
    with strict_server.client() as client:
        aid = connect(client, user.headers, creds)["id"]
        loaded = refresh(client, user.headers, aid)
        assert loaded.status_code == 200, loaded.text
        mock.post("/_mock/permissions", {"exchange": "binance", "api_key": creds["api_key"], "can_withdraw": True})

        found = refresh(client, user.headers, aid)
        assert_problem(found, 400, "withdrawal_permission")
        account = client.get(f"/v1/exchange-accounts/{aid}", headers=user.headers).json()
        assert account["status"] == "suspended" and account["validation_result"] == "withdrawal_permission"
        audited = events(client, user.headers, "account.suspend")
        assert len(audited) == 1 and audited[0]["details"]["to"] == "suspended"
        assert audited[0]["details"]["reason"] == "withdrawal_permission"
        # suspended: no exchange call, still listed (live), filterable, and its last snapshot readable
        before = mock.requests()
        assert_problem(refresh(client, user.headers, aid), 400, "withdrawal_permission")
        assert mock.requests() == before
        suspended = client.get("/v1/exchange-accounts", headers=user.headers, params={"status": "suspended"})
        assert [a["id"] for a in suspended.json()["items"]] == [aid]
        assert balances(client, user.headers, aid).json()["total_usd"] == "31200"
        portfolio = client.get("/v1/portfolio", headers=user.headers, params={"refresh": "true"}).json()
        assert portfolio["accounts"][0]["status"] == "suspended"
        assert portfolio["accounts"][0]["error"] == "withdrawal_permission"

        # the key no longer withdraws: revalidation makes the account active again
        mock.post("/_mock/permissions", {"exchange": "binance", "api_key": creds["api_key"], "can_withdraw": False})
        revalidated = client.post(f"/v1/exchange-accounts/{aid}/revalidate", headers=user.headers)
        assert revalidated.json()["status"] == "active"
        assert refresh(client, user.headers, aid).status_code == 200
    assert_clean([server_logs(logs)], {k: v for k, v in creds.items() if k != "api_key"})


def test_balance_reads_check_permissions_only_when_due(client, strict_server, users, mock):
    """The default server checked the key when it was connected: its refreshes read balances only."""
    user = users.create()
    creds = mock.new_key()
    aid = connect(client, user.headers, creds)["id"]
    mock.post("/_mock/permissions", {"exchange": "binance", "api_key": creds["api_key"], "can_withdraw": True})
    assert refresh(client, user.headers, aid).status_code == 200  # checked within the hour: not due
    with strict_server.client() as strict:  # due on every refresh there
        assert_problem(refresh(strict, user.headers, aid), 400, "withdrawal_permission")


def test_withdrawal_keys_are_fine_when_allowed(server, users, mock):
    lenient = start_server(data_dir=server.settings.data_dir, database_url=server.settings.database_url,
                           exchange_base_urls=server.settings.exchange_base_urls, allow_withdrawal_keys=True,
                           balance_key_check_seconds=0)
    try:
        user = users.create()
        creds = mock.new_key(can_withdraw=True)
        with lenient.client() as client:
            aid = connect(client, user.headers, creds)["id"]
            response = refresh(client, user.headers, aid)
            assert response.status_code == 200 and response.json()["total_usd"] == "31200"
            assert client.get(f"/v1/exchange-accounts/{aid}", headers=user.headers).json()["status"] == "active"
    finally:
        lenient.stop()


def test_disabled_and_disconnected_accounts_are_not_refreshed(client, users, mock):
    user = users.create()
    aid = connect(client, user.headers, mock.new_key())["id"]
    assert refresh(client, user.headers, aid).status_code == 200
    assert client.post(f"/v1/exchange-accounts/{aid}/disable", headers=user.headers).status_code == 200
    before = mock.requests()
    assert "disabled" in assert_problem(refresh(client, user.headers, aid), 409, "conflict")["detail"]
    assert client.post(f"/v1/exchange-accounts/{aid}/enable", headers=user.headers).status_code == 200
    assert client.delete(f"/v1/exchange-accounts/{aid}", headers=user.headers).status_code == 200
    assert "disconnected" in assert_problem(refresh(client, user.headers, aid), 409, "conflict")["detail"]
    assert mock.requests() == before
    # the history of a disconnected account stays readable; it leaves the portfolio
    assert balances(client, user.headers, aid).json()["total_usd"] == "31200"
    assert client.get("/v1/portfolio", headers=user.headers).json()["accounts"] == []


def test_venue_without_live_support(client, users):
    user = users.create()
    tag = uuid.uuid4().hex
    aid = connect(client, user.headers, {"api_key": f"bitmex-{tag}", "secret": f"s-{tag}"}, "bitmex")["id"]
    assert_problem(refresh(client, user.headers, aid), 409, "exchange_not_supported")
    assert balances(client, user.headers, aid).json()["total_usd"] is None


# --------------------------------------------------------------------------- portfolio


def test_portfolio_across_accounts(client, users, mock):
    user = users.create()
    binance = connect(client, user.headers, mock.new_key())["id"]
    okx = connect(client, user.headers, mock.new_key("okx"), "okx")["id"]
    idle = connect(client, user.headers, mock.new_key(), name="idle")["id"]
    assert client.post(f"/v1/exchange-accounts/{idle}/disable", headers=user.headers).status_code == 200

    empty = client.get("/v1/portfolio", headers=user.headers).json()
    assert empty["total_usd"] == "0" and empty["assets"] == [] and empty["fetched_at"] is None
    assert [(a["account_id"], a["total_usd"]) for a in empty["accounts"]] == [(binance, None), (okx, None),
                                                                               (idle, None)]

    response = client.get("/v1/portfolio", headers=user.headers, params={"refresh": "true"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == user.id
    assert body["total_usd"] == "50700" and body["total_btc"] == "1.014"  # 31,200 + 19,500
    assets = by_asset(body)
    assert assets["BTC"] == {"asset": "BTC", "free": "0.75", "used": "0.1", "total": "0.85", "usd": "42500",
                             "btc": "0.85", "usd_price": "50000"}
    assert assets["ETH"]["usd"] == "6000" and assets["USDT"]["usd"] == "1200" and assets["USDC"]["usd"] == "1000"
    assert [a["asset"] for a in body["assets"]] == ["BTC", "ETH", "USDT", "USDC"]
    accounts = {a["account_id"]: a for a in body["accounts"]}
    assert accounts[binance]["total_usd"] == "31200" and accounts[binance]["refreshed"] is True
    assert accounts[okx]["total_btc"] == "0.39" and accounts[okx]["exchange"] == "okx"
    assert accounts[binance]["age_seconds"] >= 0 and accounts[binance]["error"] is None
    assert accounts[idle]["refreshed"] is False and accounts[idle]["error"] == "conflict"
    assert accounts[idle]["status"] == "disabled" and accounts[idle]["total_usd"] is None

    before = mock.requests()
    cached = client.get("/v1/portfolio", headers=user.headers).json()
    assert mock.requests() == before
    assert cached["total_usd"] == "50700" and cached["assets"] == body["assets"]
    assert all(a["refreshed"] is False and a["error"] is None for a in cached["accounts"])


def test_portfolio_refresh_keeps_the_last_snapshot_of_an_account_that_fails(client, users, mock):
    user = users.create()
    good = connect(client, user.headers, mock.new_key())["id"]
    creds = mock.new_key()
    bad = connect(client, user.headers, creds)["id"]
    assert client.get("/v1/portfolio", headers=user.headers, params={"refresh": "true"}).status_code == 200
    mock.post("/_mock/revoke", {"exchange": "binance", "api_key": creds["api_key"]})
    body = client.get("/v1/portfolio", headers=user.headers, params={"refresh": "true"}).json()
    accounts = {a["account_id"]: a for a in body["accounts"]}
    assert accounts[good]["refreshed"] is True and accounts[good]["error"] is None
    assert accounts[bad]["refreshed"] is False and accounts[bad]["error"] == "credentials_rejected"
    assert accounts[bad]["status"] == "invalid" and accounts[bad]["total_usd"] == "31200"
    assert body["total_usd"] == "62400"
    with mock.mode("down"):
        down = client.get("/v1/portfolio", headers=user.headers, params={"refresh": "true"}).json()
    assert {a["account_id"]: a["error"] for a in down["accounts"]} == {good: "exchange_unavailable",
                                                                        bad: "credentials_rejected"}
    assert down["total_usd"] == "62400"


# --------------------------------------------------------------------------- isolation


def test_users_see_only_their_own_balances(client, users, mock):
    owner, other = users.create(), users.create()
    aid = connect(client, owner.headers, mock.new_key())["id"]
    assert refresh(client, owner.headers, aid).status_code == 200
    for response in (balances(client, other.headers, aid), balances(client, other.headers, aid, refresh="true"),
                     refresh(client, other.headers, aid),
                     client.get(f"/v1/exchange-accounts/{aid}/balances/history", headers=other.headers)):
        assert_problem(response, 404, "not_found")
    assert client.get("/v1/portfolio", headers=other.headers).json()["accounts"] == []
    for missing in (0, 2**31, 2**63, -1):
        assert balances(client, owner.headers, missing).status_code in (404, 422)
    assert_problem(balances(client, owner.headers, 2_000_000_000), 404, "not_found")


def test_a_bound_key_sees_only_its_accounts(client, users, mock):
    user = users.create()
    first = connect(client, user.headers, mock.new_key())["id"]
    second = connect(client, user.headers, mock.new_key("okx"), "okx")["id"]
    key = bearer_key(client, user.headers, scopes=["read"], account_ids=[first])
    assert refresh(client, key, first).status_code == 200  # scope read is enough
    for response in (balances(client, key, second), refresh(client, key, second),
                     client.get(f"/v1/exchange-accounts/{second}/balances/history", headers=key)):
        assert_problem(response, 404, "not_found")
    portfolio = client.get("/v1/portfolio", headers=key, params={"refresh": "true"}).json()
    assert [a["account_id"] for a in portfolio["accounts"]] == [first]
    assert portfolio["total_usd"] == "31200"
    listed = client.get("/v1/exchange-accounts", headers=key).json()["items"]
    assert [(a["id"], a["balance_usd"]) for a in listed] == [(first, "31200")]
    # the owner's session sees both
    full = client.get("/v1/portfolio", headers=user.headers).json()
    assert [a["account_id"] for a in full["accounts"]] == [first, second]


def test_the_read_scope_is_required(client, users, mock):
    user = users.create()
    aid = connect(client, user.headers, mock.new_key())["id"]
    key = bearer_key(client, user.headers, scopes=["delete"])
    for response in (balances(client, key, aid), refresh(client, key, aid), client.get("/v1/portfolio", headers=key),
                     client.get(f"/v1/exchange-accounts/{aid}/balances/history", headers=key)):
        assert_problem(response, 403, "insufficient_scope")
    # a delete-only key can still disconnect; the answer just has no balance fields
    gone = client.delete(f"/v1/exchange-accounts/{aid}", headers=key)
    assert gone.status_code == 200 and gone.json()["balance_usd"] is None


# --------------------------------------------------------------------------- history


def test_history_is_pruned_and_filtered(client, users, mock, server):
    user = users.create()
    aid = connect(client, user.headers, mock.new_key())["id"]
    now = datetime.now(UTC)
    day = (now - timedelta(days=120)).replace(hour=1, minute=0, second=0, microsecond=0)
    hour = (now - timedelta(days=30)).replace(minute=0, second=0, microsecond=0)
    recent = now - timedelta(days=1)
    times = [day + timedelta(hours=h) for h in (0, 5, 20)]  # one day, 120 days ago: the last is kept
    times += [hour + timedelta(minutes=m) for m in (1, 30, 59)]  # one hour, 30 days ago: the last is kept
    times += [hour + timedelta(hours=2)]  # another hour: kept
    times += [recent + timedelta(minutes=m) for m in (0, 1, 2)]  # within 7 days: all kept
    for n, at in enumerate(times, start=1):
        server.core.balance_store.record_snapshot(aid, [AssetValue("USDT", Decimal(n), Decimal(0), Decimal(n), Decimal(n),
                                                              Decimal(n) / 50000, Decimal(1))], at)
    # a refresh prunes nothing (pruning is off the request path), the periodic job does
    assert refresh(client, user.headers, aid).status_code == 200
    url = f"/v1/exchange-accounts/{aid}/balances/history"
    assert len(client.get(url, headers=user.headers).json()["points"]) == len(times) + 1
    assert server.core.balance_store.prune_all() >= 4
    points = client.get(url, headers=user.headers).json()["points"]
    assert [p["usd"] for p in points] == ["3", "6", "7", "8", "9", "10", "31200"]
    assert [p["btc"] for p in points][:2] == ["0.00006", "0.00012"]
    assert datetime.fromisoformat(points[0]["at"]) == times[2]

    window = client.get(url, headers=user.headers,
                        params={"from": (hour - timedelta(minutes=1)).isoformat(), "to": (hour + timedelta(hours=3))
                                .replace(tzinfo=None).isoformat()}).json()["points"]
    assert [p["usd"] for p in window] == ["6", "7"]
    assert [p["usd"] for p in client.get(url, headers=user.headers, params={"limit": 2}).json()["points"]] == [
        "10", "31200"]
    bad = client.get(url, headers=user.headers, params={"from": now.isoformat(), "to": day.isoformat()})
    assert_problem(bad, 422, "validation_failed")
    assert_problem(client.get(url, headers=user.headers, params={"from": "yesterday"}), 422, "validation_failed")
