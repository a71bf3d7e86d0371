"""Issue 11, items 2 and 5: trading accounts (connect inline and with a stored credential, list with
filters and paging, update, disable/enable, disconnect) and every error in the envelope, on each
backend against a live server and the mock exchange."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from cadenza_helpers import connect, connected, listing, mock_key, mock_mode, no_secret, ok, refused
from sqlalchemy import select

from strongroom.models import AccountCredential, ExchangeAccount, ExchangeCredential

ACCOUNT_FIELDS = {"tradingAccountId", "userId", "venue", "name", "nickname", "accountType", "externalTradingAccountId",
                  "externalAccountType", "credentials", "status", "createdAt", "updatedAt", "createdAtDateTime",
                  "updatedAtDateTime", "disconnectedAt", "disconnectedAtDateTime"}


# --- connect ----------------------------------------------------------------------------------------

def test_connect_inline_answers_the_seed_and_the_client_fields(api, mock_exchange, cadenza_server) -> None:
    key = mock_key(mock_exchange)
    response = connect(api, key, name="Main", accountType="SPOT")
    account = ok(response)
    no_secret(response.text, key)
    assert set(account) == ACCOUNT_FIELDS
    assert account["venue"] == "BINANCE" and account["name"] == account["nickname"] == "Main"
    assert account["accountType"] == "SPOT" and account["externalAccountType"] == "SPOT"
    assert account["externalTradingAccountId"] == "spot" and account["status"] == "ACTIVE"
    assert account["createdAt"] == account["updatedAt"] and account["createdAt"] % 1 == 0
    assert account["createdAtDateTime"].startswith("20") and account["disconnectedAt"] is None
    me = ok(api.get("/auth/user"))
    assert account["userId"] == me["id"]
    # the inline keys became a credential, listed on the account and in the credential list
    (credential,) = account["credentials"]
    assert credential["venue"] == "BINANCE" and credential["status"] == "ACTIVE"
    assert credential["credentialType"] == "API_KEY" and credential["apiKeyHint"] == f"{key['apiKey'][:4]}…" \
        f"{key['apiKey'][-4:]}"
    assert [c["credentialId"] for c in ok(api.get("/credential/list"))] == [credential["credentialId"]]
    # the same account on /v1 (one core)
    v1 = httpx.get(f"{cadenza_server.url}/v1/exchange-accounts", headers=api.headers).json()["items"]
    assert [a["public_id"] for a in v1] == [account["tradingAccountId"]]
    # a default name, never null
    other = ok(connect(api, mock_key(mock_exchange)))
    assert other["name"] == other["nickname"] == "Binance spot"


def test_connect_okx_with_passphrase_and_account_types(api, mock_exchange) -> None:
    okx = mock_key(mock_exchange, "okx")
    account = connected(api, okx, "OKX", name="okx main")
    assert account["venue"] == "OKX" and account["status"] == "ACTIVE"
    # the former name resolves to the same venue (catalogue aliases)
    refused(connect(api, okx, "okex"), 409, -22017)
    missing = {k: v for k, v in okx.items() if k != "apiPassphrase"}
    doc = refused(connect(api, missing, "OKX"), 400, -19004)
    assert "apiPassphrase: required" in doc["error"]
    # one key serves the caller's spot, margin and futures accounts; a second spot account of it is a conflict
    key = mock_key(mock_exchange)
    spot = connected(api, key, accountType="SPOT")
    margin = connected(api, key, accountType="margin")
    futures = connected(api, key, accountType="FUTURES")
    assert (margin["accountType"], margin["externalAccountType"], margin["externalTradingAccountId"]) == \
        ("MARGIN", "MARGIN", "margin")
    assert (futures["accountType"], futures["externalAccountType"], futures["externalTradingAccountId"]) == \
        ("MARGIN", "FUTURES", "futures")
    assert len({spot["tradingAccountId"], margin["tradingAccountId"], futures["tradingAccountId"]}) == 3
    refused(connect(api, key, accountType="SPOT"), 409, -22017)
    doc = refused(connect(api, mock_key(mock_exchange), accountType="CREDIT"), 400, -19004)
    assert "accountType" in doc["error"] and "SPOT" in doc["error"]


def test_connect_with_a_stored_credential(api, mock_exchange) -> None:
    """The client's flow: create a credential, verify it, connect with credentialIds + externalTradingAccountId."""
    key = mock_key(mock_exchange)
    credential = ok(api.post("/credential/create", {"venue": "BINANCE", "credentialType": "API_KEY",
                                                    "nickname": "ro key", **key}))
    reach = ok(api.post("/credential/verify", {"credentialIds": [credential["credentialId"]]}))
    assert [(r["status"], r["externalTradingAccountId"]) for r in reach] == [("NEW", "spot")]
    account = connected(api, {}, credentialIds=[credential["credentialId"]],
                        externalTradingAccountId=reach[0]["externalTradingAccountId"], nickname="via credential")
    assert account["nickname"] == "via credential" and account["status"] == "ACTIVE"
    assert [c["credentialId"] for c in account["credentials"]] == [credential["credentialId"]]
    assert account["credentials"][0]["nickname"] == "ro key"
    margin = connected(api, {}, credentialIds=[credential["credentialId"]], externalTradingAccountId="margin")
    assert margin["externalAccountType"] == "MARGIN"
    # verify now shows the caller's two accounts as they are
    reach = ok(api.post("/credential/verify", {"credentialIds": [credential["credentialId"]]}))
    assert sorted((r["tradingAccountId"], r["status"]) for r in reach) == sorted(
        [(account["tradingAccountId"], "ACTIVE"), (margin["tradingAccountId"], "ACTIVE")])
    # refusals of the credential shape
    cid = credential["credentialId"]
    refused(connect(api, {}, credentialIds=[cid], externalTradingAccountId="spot"), 409, -22017)
    refused(connect(api, {}, "OKX", credentialIds=[cid], externalTradingAccountId="futures"), 400, -19004)
    refused(connect(api, {}, credentialIds=[cid, str(uuid.uuid4())], externalTradingAccountId="swap"), 400, -19004)
    refused(connect(api, key, credentialIds=[cid]), 400, -19004)
    refused(connect(api, {}, credentialIds=[str(uuid.uuid4())], externalTradingAccountId="swap"), 404, -22016)
    refused(connect(api, {}, credentialIds=["not-a-uuid"]), 400, -19004)
    refused(connect(api, {}, dealerAccountId=str(uuid.uuid4())), 400, -19004)


def test_connect_refusals(api, other, mock_exchange) -> None:
    key = mock_key(mock_exchange)
    # bad exchange keys: the seed's error, and nothing stored
    doc = refused(connect(api, {**key, "apiSecret": "wrong"}), 400, -120001, "Invalid API credentials for BINANCE")
    assert "wrong" not in json.dumps(doc)
    okx = mock_key(mock_exchange, "okx")
    refused(connect(api, {**okx, "apiPassphrase": "wrong"}, "OKX"), 400, -120001, "Invalid API credentials for OKX")
    assert listing(api)["data"] == [] and ok(api.get("/credential/list")) == []
    # a key that can withdraw
    withdraw = mock_key(mock_exchange, can_withdraw=True)
    doc = refused(connect(api, withdraw), 400, -22006)
    assert "withdraw" in doc["error"] and "BINANCE" in doc["error"]
    # the same exchange account connected by another user: 409
    account = connected(other, key)
    refused(connect(api, key), 409, -22017, "This exchange account is already connected")
    refused(connect(api, key, accountType="MARGIN"), 409, -22017)
    # after the other user disconnects, it is free again
    ok(other.post("/tradingAccount/disconnect", {"tradingAccountId": account["tradingAccountId"]}))
    assert connected(api, key)["status"] == "ACTIVE"
    # unknown venues, the client's venues Strongroom does not serve, malformed bodies
    for venue in ("NOPE", "FERMATA", "BINANCE_UAT"):
        doc = refused(connect(api, mock_key(mock_exchange), venue), 400, -19004)
        assert "venue" in doc["error"]
    for body in ({"venue": "BINANCE"}, {"apiKey": "k"}, {"venue": "BINANCE", "apiKey": 5, "apiSecret": "s"},
                 {"venue": ["BINANCE"], "apiKey": "k"}, {"venue": "BINANCE", "apiKey": "k", "apiSecret": "s",
                                                          "unknown": 1},
                 {"venue": "BINANCE", "apiKey": "", "apiSecret": "s"}, {"venue": "BINANCE", "apiKey": "k"},
                 {"venue": "BINANCE", "apiKey": "k", "apiSecret": "s", "name": "x" * 101}, [], 7, None):
        refused(api.post("/tradingAccount/connect", body), 400, -19004)
    for raw in (b"", b"{", b'{"venue": "BINANCE", "venue": "OKX"}', b'{"venue": "BIN\\u0000ANCE"}'):
        response = api.http.post("/api/v3/tradingAccount/connect", content=raw,
                                 headers={**api.headers, "Content-Type": "application/json"})
        assert response.status_code == 400 and response.json()["errno"] in (-19004, -19005), response.text


def test_wrong_secret_for_a_connected_key_is_invalid_credentials(api, other, mock_exchange) -> None:
    """Issue 22.2: no existence oracle, inline and with stored credentials: a wrong secret is -120001
    even for a key that is connected; the duplicate answer comes only with the right secret."""
    key = mock_key(mock_exchange)
    connected(other, key)
    wrong = {**key, "apiSecret": f"wrong-{uuid.uuid4().hex}"}
    for caller in (api, other):
        refused(connect(caller, wrong), 400, -120001, "Invalid API credentials for BINANCE")
        refused(connect(caller, key), 409, -22017)
    # a stored credential holding the key with a wrong secret cannot be made (checked live first) ...
    refused(api.post("/credential/create", {"venue": "BINANCE", "credentialType": "API_KEY", **wrong}), 400, -120001)
    # ... and rotating one's own credential (used by an account) to it is refused the same way
    mine = ok(api.post("/credential/create", {"venue": "BINANCE", "credentialType": "API_KEY",
                                              **mock_key(mock_exchange)}))
    connected(api, {}, credentialIds=[mine["credentialId"]], externalTradingAccountId="spot")
    refused(api.post("/credential/rotate", {"credentialId": mine["credentialId"], **wrong}), 400, -120001)
    refused(api.post("/credential/rotate", {"credentialId": mine["credentialId"], **key}), 409, -22017)
    # a stored credential with the right secret: connecting it is the duplicate answer
    stored = ok(api.post("/credential/create", {"venue": "BINANCE", "credentialType": "API_KEY", **key}))
    refused(connect(api, {}, credentialIds=[stored["credentialId"]], externalTradingAccountId="spot"), 409, -22017)


def test_exchange_unreachable_is_503_with_retry_after(api, mock_exchange) -> None:
    key = mock_key(mock_exchange)
    with mock_mode(mock_exchange, "down"):
        response = connect(api, key)
    doc = refused(response, 503, -18012, "Exchange not available; try again later")
    assert int(response.headers["Retry-After"]) > 0 and "binance" not in json.dumps(doc).lower()
    with mock_mode(mock_exchange, "rate_limited"):
        response = api.post("/credential/create", {"venue": "BINANCE", "credentialType": None, **key})
    refused(response, 503, -18012)
    assert int(response.headers["Retry-After"]) >= 1
    assert listing(api)["data"] == [] and ok(api.get("/credential/list")) == []
    assert connected(api, key)["status"] == "ACTIVE"


# --- list -------------------------------------------------------------------------------------------

def test_list_filters_and_paging(api, other, mock_exchange) -> None:
    made = [connected(api, mock_key(mock_exchange), name=f"b{i}") for i in range(3)]
    okx = connected(api, mock_key(mock_exchange, "okx"), "OKX", name="o")
    theirs = connected(other, mock_key(mock_exchange))
    ids = [a["tradingAccountId"] for a in [*made, okx]]
    doc = listing(api)
    assert [a["tradingAccountId"] for a in doc["data"]] == ids
    assert doc["pagination"] == {"offset": 0, "limit": 50, "total": 4, "hasNext": False}
    # paging
    first = listing(api, limit=3, offset=0)
    second = listing(api, limit=3, offset=3)
    assert [a["tradingAccountId"] for a in first["data"] + second["data"]] == ids
    assert first["pagination"] == {"offset": 0, "limit": 3, "total": 4, "hasNext": True}
    assert second["pagination"] == {"offset": 3, "limit": 3, "total": 4, "hasNext": False}
    assert listing(api, offset=10)["data"] == []
    # filters
    assert [a["tradingAccountId"] for a in listing(api, venue="OKX")["data"]] == [okx["tradingAccountId"]]
    assert [a["tradingAccountId"] for a in listing(api, venue="okex")["data"]] == [okx["tradingAccountId"]]
    assert listing(api, venue="BINANCE")["pagination"]["total"] == 3
    one = listing(api, tradingAccountId=made[1]["tradingAccountId"])
    assert [a["name"] for a in one["data"]] == ["b1"] and one["pagination"]["total"] == 1
    assert listing(api, tradingAccountId=theirs["tradingAccountId"])["data"] == []
    assert listing(api, tradingAccountId=str(uuid.uuid4()))["data"] == []
    ok(api.post("/tradingAccount/disable", {"tradingAccountId": made[0]["tradingAccountId"]}))
    ok(api.post("/tradingAccount/disconnect", {"tradingAccountId": made[2]["tradingAccountId"]}))
    names = {s: [a["name"] for a in listing(api, accountStatus=s)["data"]]
             for s in ("ACTIVE", "INACTIVE", "DISCONNECTED", "LOCKED", "NEW")}
    assert names == {"ACTIVE": ["b1", "o"], "INACTIVE": ["b0"], "DISCONNECTED": ["b2"], "LOCKED": [], "NEW": []}
    # the docs page's name and spelling
    assert [a["name"] for a in listing(api, status="DISABLED")["data"]] == ["b0"]
    assert [a["name"] for a in listing(api, venue="BINANCE", status="ACTIVE")["data"]] == ["b1"]
    assert listing(api, status="ACTIVE", accountStatus="INACTIVE")["data"] == []
    # one's own userId; someone else's is not found
    me = ok(api.get("/auth/user"))["id"]
    assert listing(api, userId=me)["pagination"]["total"] == 4
    refused(api.get("/tradingAccount/list", userId=theirs["userId"]), 404, -22016)
    assert listing(api, tenantId="any")["pagination"]["total"] == 4
    # bad queries are 400 naming the parameter
    for params in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"limit": "x"}, {"tradingAccountId": "5"},
                   {"accountStatus": "DISABLEDX"}, {"venue": "NOPE"}, {"userId": "user-uuid-here"}):
        doc = refused(api.get("/tradingAccount/list", **params), 400, -19004)
        assert next(iter(params)) in doc["error"] or "status" in doc["error"] or "venue" in doc["error"], doc


# --- update, disable, enable, disconnect ------------------------------------------------------------

def test_update_disable_enable_disconnect(api, other, mock_exchange, cadenza_server) -> None:
    account = connected(api, mock_key(mock_exchange), name="before")
    target = {"tradingAccountId": account["tradingAccountId"]}
    renamed = ok(api.post("/tradingAccount/update", {**target, "nickname": "after"}))
    assert renamed["nickname"] == renamed["name"] == "after" and renamed["updatedAt"] >= account["updatedAt"]
    assert ok(api.post("/tradingAccount/update", {**target, "name": "docs name"}))["nickname"] == "docs name"
    assert ok(api.post("/tradingAccount/update", target))["nickname"] == "docs name"
    refused(api.post("/tradingAccount/update", {**target, "nickname": " "}), 400, -19004)

    disabled = ok(api.post("/tradingAccount/disable", target))
    assert disabled["status"] == "INACTIVE"
    assert ok(api.post("/tradingAccount/disable", target))["status"] == "INACTIVE"
    assert ok(api.post("/tradingAccount/enable", target))["status"] == "ACTIVE"
    assert ok(api.post("/tradingAccount/enable", target))["status"] == "ACTIVE"

    # another user's account: not found, for every operation, and nothing changes
    for path in ("/tradingAccount/update", "/tradingAccount/enable", "/tradingAccount/disable",
                 "/tradingAccount/disconnect"):
        refused(other.post(path, {**target, "nickname": "mine"} if path.endswith("update") else target), 404, -22016)
        refused(api.post(path, {"tradingAccountId": str(uuid.uuid4())}), 404, -22016)
        refused(api.post(path, {}), 400, -19004)
        refused(api.post(path, {"tradingAccountId": 5}), 400, -19004)
    assert listing(api, tradingAccountId=account["tradingAccountId"])["data"][0]["nickname"] == "docs name"

    gone = ok(api.post("/tradingAccount/disconnect", target))
    assert gone["status"] == "DISCONNECTED" and type(gone["disconnectedAt"]) is int
    assert gone["disconnectedAt"] >= gone["createdAt"] and gone["disconnectedAtDateTime"]
    # crypto-shred: the account's sealed credentials are gone
    with cadenza_server.core.db.session() as session:
        row = session.scalar(select(ExchangeAccount).where(
            ExchangeAccount.public_id == uuid.UUID(account["tradingAccountId"])))
        assert row.ciphertext == b"" and row.wrapped_dek == b"" and row.status == "disconnected"
    # terminal: everything else is a conflict; it stays listed for history
    for path in ("/tradingAccount/disconnect", "/tradingAccount/enable", "/tradingAccount/disable"):
        refused(api.post(path, target), 409, -22017)
    refused(api.post("/tradingAccount/update", {**target, "nickname": "x"}), 409, -22017)
    assert listing(api, accountStatus="DISCONNECTED")["data"][0]["tradingAccountId"] == account["tradingAccountId"]


def test_inline_connect_stores_the_credential_sealed_and_linked(api, mock_exchange, cadenza_server) -> None:
    key = mock_key(mock_exchange)
    account = connected(api, key)
    core = cadenza_server.core
    with core.db.session() as session:
        row = session.scalar(select(ExchangeAccount).where(
            ExchangeAccount.public_id == uuid.UUID(account["tradingAccountId"])))
        link = session.get(AccountCredential, row.id)
        credential = session.get(ExchangeCredential, link.credential_id)
    assert str(credential.public_id) == account["credentials"][0]["credentialId"]
    assert key["apiSecret"].encode() not in credential.ciphertext
    assert core.vault.open_credential(credential) == {"api_key": key["apiKey"], "secret": key["apiSecret"]}
    assert core.vault.open_account_credentials(row) == {"api_key": key["apiKey"], "secret": key["apiSecret"]}


@pytest.mark.parametrize("body", [b'{"venue": "BINANCE", "apiKey": "k", "apiSecret": "s"' + b" " * 70_000 + b"}"])
def test_oversized_body_is_413_in_the_envelope(api, body: bytes) -> None:
    response = api.http.post("/api/v3/tradingAccount/connect", content=body,
                             headers={**api.headers, "Content-Type": "application/json"})
    refused(response, 413, -19001)
