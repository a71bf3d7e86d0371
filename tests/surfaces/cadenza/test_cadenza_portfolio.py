"""Issue 11, item 4: tradingAccount/portfolio/list from the balances capability (issue 9), with exact
figures from the mock exchange: 0.5 free + 0.1 locked BTC and 1,200 USDT at BTC/USDT 50,000 is
31,200 USD (0.624 BTC)."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Any

import httpx
from cadenza_helpers import connected, mock_key, mock_mode, ok, refused
from cadenza_wire import PortfolioListResponse

DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")


def portfolios(api, **params: Any) -> dict[str, Any]:
    response = api.get("/tradingAccount/portfolio/list", **params)
    assert response.status_code == 200, response.text
    PortfolioListResponse.model_validate_json(response.content)  # as strict as Cadenza's client
    doc = response.json()
    assert doc["success"] is True and doc["errno"] == 0
    return doc


def amounts(portfolio: dict[str, Any]) -> dict[str, tuple[Decimal, ...]]:
    found = {}
    for entry in portfolio["balances"]:
        for field in ("free", "locked", "borrowed", "total", "net"):
            assert DECIMAL.match(entry[field]), entry
        assert entry["securityType"] == "CRYPTO" and entry["status"] == "ACTIVE"
        assert entry["tradingAccountId"] == portfolio["tradingAccountId"] and type(entry["updatedAt"]) is int
        found[entry["securitySymbol"]] = tuple(Decimal(entry[f]) for f in ("free", "locked", "borrowed", "total",
                                                                            "net"))
    return found


def set_balances(mock_exchange, key: dict[str, str], balances: dict[str, dict[str, str]]) -> None:
    httpx.post(f"{mock_exchange.url}/_mock/balances", timeout=10, json={
        "exchange": "binance", "api_key": key["apiKey"], "balances": balances}).raise_for_status()


def test_portfolio_with_exact_figures(api, other, mock_exchange) -> None:
    key = mock_key(mock_exchange)
    account = connected(api, key, name="spot")
    connected(other, mock_key(mock_exchange))  # not the caller's: never in the caller's portfolio
    doc = portfolios(api)
    (portfolio,) = doc["data"]
    assert doc["pagination"] == {"offset": 0, "limit": 50, "total": 1, "hasNext": False}
    assert portfolio["tradingAccountId"] == account["tradingAccountId"] and portfolio["venue"] == "BINANCE"
    assert portfolio["positions"] == [] and type(portfolio["updatedAt"]) is int
    assert amounts(portfolio) == {
        "BTC": (Decimal("0.5"), Decimal("0.1"), Decimal(0), Decimal("0.6"), Decimal("0.6")),
        "USDT": (Decimal(1200), Decimal(0), Decimal(0), Decimal(1200), Decimal(1200)),
    }
    summary = portfolio["summary"]
    assert summary["tradingAccountId"] == account["tradingAccountId"] and summary["currency"] == "USD"
    assert Decimal(summary["equity"]) == Decimal(31200) and summary["leverage"] is None
    for field in ("equity", "margin", "marginLoan", "marginUsage", "marginRequirement", "marginLevel", "credit",
                  "riskExposure"):
        assert DECIMAL.match(summary[field]), (field, summary[field])
    in_btc = portfolios(api, currency="BTC")["data"][0]["summary"]
    assert in_btc["currency"] == "BTC" and Decimal(in_btc["equity"]) == Decimal("0.624")

    # loaded live: a change on the exchange shows at once; tiny amounts without exponents
    set_balances(mock_exchange, key, {"BTC": {"free": "0.00000001", "used": "0"}, "USDT": {"free": "10"}})
    (portfolio,) = portfolios(api)["data"]
    btc = next(b for b in portfolio["balances"] if b["securitySymbol"] == "BTC")
    assert Decimal(btc["free"]) == Decimal("0.00000001") and "E" not in btc["free"]
    assert Decimal(portfolio["summary"]["equity"]) == Decimal("10.0005")


def test_portfolio_filters_paging_and_stale_loads(api, other, mock_exchange) -> None:
    first = connected(api, mock_key(mock_exchange), name="a")
    second = connected(api, mock_key(mock_exchange), name="b")
    okx = connected(api, mock_key(mock_exchange, "okx"), "OKX", name="o")
    theirs = connected(other, mock_key(mock_exchange))
    everything = portfolios(api)
    assert [p["tradingAccountId"] for p in everything["data"]] == [
        first["tradingAccountId"], second["tradingAccountId"], okx["tradingAccountId"]]
    # the OKX mock account: 0.25 BTC, 2 ETH, 1,000 USDC -> 12,500 + 6,000 + 1,000
    assert Decimal(everything["data"][2]["summary"]["equity"]) == Decimal(19500)
    assert [p["venue"] for p in portfolios(api, venue="OKX")["data"]] == ["OKX"]
    page = portfolios(api, limit=2, offset=2)
    assert [p["tradingAccountId"] for p in page["data"]] == [okx["tradingAccountId"]]
    assert page["pagination"] == {"offset": 2, "limit": 2, "total": 3, "hasNext": False}
    one = portfolios(api, tradingAccountId=second["tradingAccountId"])
    assert [p["tradingAccountId"] for p in one["data"]] == [second["tradingAccountId"]]
    assert portfolios(api, tradingAccountId=theirs["tradingAccountId"])["data"] == []
    assert portfolios(api, tradingAccountId=str(uuid.uuid4()))["data"] == []

    # the exchange down: each account shows its last load, with the time of that load
    before = {p["tradingAccountId"]: p["updatedAt"] for p in portfolios(api)["data"]}
    with mock_mode(mock_exchange, "down"):
        stale = portfolios(api)
        stale_one = portfolios(api, tradingAccountId=first["tradingAccountId"])
    assert [Decimal(p["summary"]["equity"]) for p in stale["data"]] == [Decimal(31200), Decimal(31200),
                                                                        Decimal(19500)]
    assert {p["tradingAccountId"]: p["updatedAt"] for p in stale["data"]} == before
    assert stale_one["data"][0]["updatedAt"] == before[first["tradingAccountId"]]
    # disabled: its last load; disconnected: gone
    ok(api.post("/tradingAccount/disable", {"tradingAccountId": first["tradingAccountId"]}))
    assert Decimal(portfolios(api, tradingAccountId=first["tradingAccountId"])["data"][0]["summary"]["equity"]) \
        == Decimal(31200)
    ok(api.post("/tradingAccount/disconnect", {"tradingAccountId": second["tradingAccountId"]}))
    assert second["tradingAccountId"] not in [p["tradingAccountId"] for p in portfolios(api)["data"]]


def test_portfolio_refusals(api, mock_exchange) -> None:
    account = connected(api, mock_key(mock_exchange))
    # never loaded and the exchange is down: the refusal itself, with Retry-After
    with mock_mode(mock_exchange, "down"):
        response = api.get("/tradingAccount/portfolio/list", tradingAccountId=account["tradingAccountId"])
    refused(response, 503, -18012)
    assert int(response.headers["Retry-After"]) > 0
    for params in ({"currency": "EUR"}, {"limit": 0}, {"offset": -1}, {"tradingAccountId": "x"},
                   {"venue": "NOPE"}):
        refused(api.get("/tradingAccount/portfolio/list", **params), 400, -19004)
