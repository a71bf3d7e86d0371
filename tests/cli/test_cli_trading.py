"""Issue 19 item 8: ``strongroom orders list|show|cancel`` and ``strongroom accounts policy show|set`` through
the installed command, on the live server's data (SQLite and PostgreSQL), orders placed over HTTP against the
mock exchange; ``--json`` parsed, secrets looked for."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

SYMBOL = "SOL/USDT"
ORDER_KEYS = {"id", "account_id", "exchange_order_id", "client_order_id", "symbol", "side", "type", "amount", "price",
              "status", "filled", "average_price", "fees", "time_in_force", "post_only", "error_code", "key_id",
              "created_at", "updated_at"}


@pytest.fixture
def sol_price(mock_exchange: Any) -> Iterator[None]:
    httpx.post(f"{mock_exchange.url}/_mock/prices", json={"exchange": "binance", "prices": {SYMBOL: "100"}})
    yield
    httpx.post(f"{mock_exchange.url}/_mock/prices", json={"exchange": "binance", "prices": {SYMBOL: None}})


def test_orders_and_policy_commands(live: Any, client: httpx.Client, users: Any, mock_exchange: Any,
                                    sol_price: None) -> None:
    user = users.create()
    api_key, secret = f"cli-trd-{uuid.uuid4().hex}", f"cli-trdsecret-{uuid.uuid4().hex}"
    assert httpx.post(f"{mock_exchange.url}/_mock/accounts", json={
        "exchange": "binance", "api_key": api_key, "secret": secret,
        "balances": {"USDT": {"free": "10000"}}}).status_code == 201
    connected = client.post("/v1/exchange-accounts", headers=user.headers, json={
        "exchange": "binance", "credentials": {"api_key": api_key, "secret": secret}})
    assert connected.status_code == 201, connected.text
    account = str(connected.json()["id"])

    shown = live.run("accounts", "policy", "show", account, "--json").json()
    assert shown["defined"] is False and shown["subject"] == f"account:{account}"
    set_ = live.run("accounts", "policy", "set", account, "--allowed-symbols", "SOL/*,BTC/USDT",
                    "--max-notional-usd", "1000", "--max-open-orders", "5", "--json").json()
    assert (set_["defined"], set_["allowed_symbols"], set_["max_notional_usd"], set_["max_open_orders"],
            set_["allow_market_orders"], set_["kill_switch"]) == (True, ["SOL/*", "BTC/USDT"], "1000", 5, False, False)
    kept = live.run("accounts", "policy", "set", account, "--max-open-orders", "none", "--json").json()
    assert kept["max_open_orders"] is None and kept["max_notional_usd"] == "1000"  # the others stay

    ids = []
    for n in range(3):
        placed = client.post(f"/v1/exchange-accounts/{account}/orders", headers=user.headers, json={
            "symbol": SYMBOL, "side": "buy", "type": "limit", "amount": "1", "price": str(90 + n),
            "client_order_id": f"cli-{n}"})
        assert placed.status_code == 201, placed.text
        ids.append(placed.json()["id"])

    listed = live.run("orders", "list", account, "--json")
    orders = listed.json()
    assert [o["id"] for o in orders] == ids[::-1] and all(set(o) == ORDER_KEYS for o in orders)
    one = live.run("orders", "show", account, str(ids[0]), "--json").json()
    assert (one["client_order_id"], one["status"], one["amount"], one["price"]) == ("cli-0", "open", "1", "90")
    canceled = live.run("orders", "cancel", account, str(ids[0]), "--json").json()
    assert canceled["status"] == "canceled"
    assert live.run("orders", "cancel", account, str(ids[0])).returncode == 1  # already canceled
    rest = live.run("orders", "cancel", account, "--all", "--yes", "--json").json()
    assert sorted(o["id"] for o in rest) == ids[1:]
    assert live.run("orders", "list", account, "--json").json() == []
    plain = live.run("orders", "list", account, "--status", "closed").ok().stdout.splitlines()
    assert [line.split("\t")[0] for line in plain] == [str(i) for i in ids[::-1]]
    assert all(line.split("\t")[7] == "canceled" for line in plain)
    assert live.run("orders", "cancel", account).returncode == 2  # neither an id nor --all

    killed = live.run("accounts", "policy", "set", account, "--kill-switch").ok()
    assert "kill switch on" in killed.stdout
    refused = client.post(f"/v1/exchange-accounts/{account}/orders", headers=user.headers, json={
        "symbol": SYMBOL, "side": "buy", "type": "limit", "amount": "1", "price": "95"})
    assert refused.status_code == 403 and refused.json()["rule"] == "kill_switch"
    for run in (listed, killed):
        assert secret not in run.stdout + run.stderr and api_key not in run.stdout + run.stderr


# The installed command, run in subprocesses: `make test`, not the quick loop (`make test-quick`).
pytestmark = pytest.mark.slow
