"""Issue 11, item 3: stored credentials (create, verify, rotate, revoke, list): checked live, sealed,
never echoed; rotating and revoking reach every account connected with the credential."""

from __future__ import annotations

import json
import uuid

from cadenza_helpers import connected, listing, mock_key, ok, refused
from sqlalchemy import select

from strongroom.models import ExchangeAccount, ExchangeCredential


def create(api, key, venue="BINANCE", **extra):
    return api.post("/credential/create", {"venue": venue, "credentialType": "API_KEY", **key, **extra})


def stored(server, credential_id: str) -> ExchangeCredential:
    with server.core.db.session() as session:
        return session.scalar(select(ExchangeCredential).where(ExchangeCredential.public_id == uuid.UUID(credential_id)))


def stored_account(server, account_id: str) -> ExchangeAccount:
    with server.core.db.session() as session:
        return session.scalar(select(ExchangeAccount).where(ExchangeAccount.public_id == uuid.UUID(account_id)))


def test_create_checks_live_and_never_echoes_secrets(api, mock_exchange, cadenza_server) -> None:
    key = mock_key(mock_exchange, "okx")
    response = create(api, key, "OKX", nickname="okx read-only")
    credential = ok(response)
    for secret in (key["apiSecret"], key["apiPassphrase"], key["apiKey"]):
        assert secret not in response.text
    assert set(credential) == {"credentialId", "venue", "credentialType", "nickname", "status", "apiKeyHint",
                               "createdAt", "updatedAt", "createdAtDateTime", "updatedAtDateTime", "revokedAt",
                               "revokedAtDateTime"}
    assert credential["venue"] == "OKX" and credential["status"] == "ACTIVE" and credential["revokedAt"] is None
    assert credential["credentialType"] == "API_KEY" and credential["nickname"] == "okx read-only"
    row = stored(cadenza_server, credential["credentialId"])
    assert key["apiSecret"].encode() not in row.ciphertext and row.validation_result == "valid"
    assert cadenza_server.core.vault.open_credential(row) == {
        "api_key": key["apiKey"], "secret": key["apiSecret"], "passphrase": key["apiPassphrase"]}
    # the client sends credentialType null when not given
    assert ok(create(api, mock_key(mock_exchange), credentialType=None))["credentialType"] is None
    # refusals: nothing stored
    before = ok(api.get("/credential/list"))
    refused(create(api, {**key, "apiSecret": "wrong"}, "OKX"), 400, -120001, "Invalid API credentials for OKX")
    refused(create(api, mock_key(mock_exchange, can_withdraw=True)), 400, -22006)
    refused(create(api, {"apiKey": "k"}), 400, -19004)
    refused(create(api, key, "OKX", credentialType="OAUTH"), 400, -19004)
    refused(create(api, key, "OKX", credentialType="api_key"), 400, -19004)
    refused(api.post("/credential/create", {"credentialType": "API_KEY", **key}), 400, -19004)
    assert ok(api.get("/credential/list")) == before


def test_venue_without_live_check_is_created(api) -> None:
    """BitMEX has no live validator: the credential is stored but CREATED (never verified)."""
    credential = ok(create(api, {"apiKey": f"bk{uuid.uuid4().hex}", "apiSecret": f"bs{uuid.uuid4().hex}"}, "bitmex"))
    assert credential["status"] == "CREATED" and credential["venue"] == "BITMEX"
    reach = ok(api.post("/credential/verify", {"credentialIds": [credential["credentialId"]]}))
    assert [(r["status"], r["venue"]) for r in reach] == [("NEW", "BITMEX")]


def test_verify_lists_new_own_and_unavailable(api, other, mock_exchange) -> None:
    key = mock_key(mock_exchange)
    mine = ok(create(api, key))
    theirs = ok(create(other, key))  # storing a key binds nothing: both may hold it
    (new,) = ok(api.post("/credential/verify", {"credentialIds": [mine["credentialId"]]}))
    assert new["status"] == "NEW" and new["accountType"] == "SPOT" and new["nickname"] == "BINANCE spot"
    assert [c["credentialId"] for c in new["credentials"]] == [mine["credentialId"]]
    again = ok(api.post("/credential/verify", {"credentialIds": [mine["credentialId"]]}))
    assert again[0]["tradingAccountId"] == new["tradingAccountId"]  # stable between verifies
    account = connected(api, {}, credentialIds=[mine["credentialId"]], externalTradingAccountId="spot")
    (own,) = ok(api.post("/credential/verify", {"credentialIds": [mine["credentialId"]]}))
    assert own["tradingAccountId"] == account["tradingAccountId"] and own["status"] == "ACTIVE"
    ok(api.post("/tradingAccount/disable", {"tradingAccountId": account["tradingAccountId"]}))
    assert ok(api.post("/credential/verify", {"credentialIds": [mine["credentialId"]]}))[0]["status"] == "INACTIVE"
    # for the other user the key is someone else's now: UNAVAILABLE, nothing of the owner's shown
    (taken,) = ok(other.post("/credential/verify", {"credentialIds": [theirs["credentialId"]]}))
    assert taken["status"] == "UNAVAILABLE" and taken["tradingAccountId"] != account["tradingAccountId"]
    assert taken["userId"] == ok(other.get("/auth/user"))["id"] and taken["nickname"] == "BINANCE spot"
    refused(other.post("/tradingAccount/connect", {"credentialIds": [theirs["credentialId"]],
                                                   "externalTradingAccountId": "margin"}), 409, -22017)
    # several at once; errors
    both = ok(api.post("/credential/verify", {"credentialIds": [mine["credentialId"], ok(create(
        api, mock_key(mock_exchange)))["credentialId"]]}))
    assert [r["status"] for r in both] == ["INACTIVE", "NEW"]
    refused(other.post("/credential/verify", {"credentialIds": [mine["credentialId"]]}), 404, -22016)
    refused(api.post("/credential/verify", {"credentialIds": []}), 400, -19004)
    refused(api.post("/credential/verify", {"credentialIds": ["x"]}), 400, -19004)
    refused(api.post("/credential/verify", {}), 400, -19004)


def test_verify_marks_a_refused_key_expired(api, mock_exchange, cadenza_server) -> None:
    import httpx

    key = mock_key(mock_exchange)
    credential = ok(create(api, key))
    # the exchange stops accepting the key (its secret changed there)
    httpx.post(f"{mock_exchange.url}/_mock/accounts", timeout=10, json={
        "exchange": "binance", "api_key": key["apiKey"], "secret": "changed-" + uuid.uuid4().hex}).raise_for_status()
    refused(api.post("/credential/verify", {"credentialIds": [credential["credentialId"]]}), 400, -120001,
            "Invalid API credentials for BINANCE")
    (listed,) = ok(api.get("/credential/list", credentialIds=credential["credentialId"]))
    assert listed["status"] == "EXPIRED"
    assert stored(cadenza_server, credential["credentialId"]).validation_result == "invalid_credentials"


def test_rotate_rewrites_the_credential_and_its_accounts(api, other, mock_exchange, cadenza_server) -> None:
    old = mock_key(mock_exchange)
    credential = ok(create(api, old))
    cid = credential["credentialId"]
    spot = connected(api, {}, credentialIds=[cid], externalTradingAccountId="spot")
    margin = connected(api, {}, credentialIds=[cid], externalTradingAccountId="margin")
    ok(api.post("/tradingAccount/disable", {"tradingAccountId": margin["tradingAccountId"]}))
    new = mock_key(mock_exchange)
    # a refused new key changes nothing
    refused(api.post("/credential/rotate", {"credentialId": cid, "apiKey": new["apiKey"], "apiSecret": "bad"}),
            400, -120001)
    assert cadenza_server.core.vault.open_credential(stored(cadenza_server, cid))["api_key"] == old["apiKey"]
    # another user's key cannot be rotated in
    taken = mock_key(mock_exchange)
    connected(other, taken)
    refused(api.post("/credential/rotate", {"credentialId": cid, **taken}), 409, -22017)
    refused(other.post("/credential/rotate", {"credentialId": cid, **new}), 404, -22016)
    refused(api.post("/credential/rotate", {"credentialId": cid}), 400, -19004)
    response = api.post("/credential/rotate", {"credentialId": cid, **new})
    rotated = ok(response)
    assert new["apiSecret"] not in response.text and new["apiKey"] not in response.text
    assert rotated["credentialId"] == cid and rotated["status"] == "ACTIVE"
    assert rotated["apiKeyHint"] != credential["apiKeyHint"] and rotated["updatedAt"] >= credential["updatedAt"]
    fields = {"api_key": new["apiKey"], "secret": new["apiSecret"]}
    vault = cadenza_server.core.vault
    assert vault.open_credential(stored(cadenza_server, cid)) == fields
    for account in (spot, margin):
        assert vault.open_account_credentials(stored_account(cadenza_server, account["tradingAccountId"])) == fields
    statuses = {a["tradingAccountId"]: a["status"] for a in listing(api)["data"]}
    assert statuses == {spot["tradingAccountId"]: "ACTIVE", margin["tradingAccountId"]: "INACTIVE"}
    # only the secret: the key stays
    secret_only = ok(api.post("/credential/rotate", {"credentialId": cid, "apiSecret": new["apiSecret"]}))
    assert secret_only["apiKeyHint"] == rotated["apiKeyHint"]
    # the old key is free again (nobody holds it): another user may connect it
    assert connected(other, old)["status"] == "ACTIVE"


def test_revoke_destroys_the_key_and_disconnects_its_accounts(api, other, mock_exchange, cadenza_server) -> None:
    key = mock_key(mock_exchange)
    credential = ok(create(api, key))
    cid = credential["credentialId"]
    account = connected(api, {}, credentialIds=[cid], externalTradingAccountId="spot")
    unrelated = connected(api, mock_key(mock_exchange))
    refused(other.post("/credential/revoke", {"credentialId": cid}), 404, -22016)
    revoked = ok(api.post("/credential/revoke", {"credentialId": cid}))
    assert revoked["status"] == "REVOKED" and type(revoked["revokedAt"]) is int and revoked["revokedAtDateTime"]
    row = stored(cadenza_server, cid)
    assert row.ciphertext == b"" and row.wrapped_dek == b"" and row.nonce == b""
    accounts = {a["tradingAccountId"]: a for a in listing(api)["data"]}
    assert accounts[account["tradingAccountId"]]["status"] == "DISCONNECTED"
    assert accounts[account["tradingAccountId"]]["credentials"][0]["status"] == "REVOKED"
    assert accounts[unrelated["tradingAccountId"]]["status"] == "ACTIVE"
    assert stored_account(cadenza_server, account["tradingAccountId"]).ciphertext == b""
    # terminal
    refused(api.post("/credential/revoke", {"credentialId": cid}), 409, -22017)
    refused(api.post("/credential/rotate", {"credentialId": cid, **mock_key(mock_exchange)}), 409, -22017)
    refused(api.post("/credential/verify", {"credentialIds": [cid]}), 409, -22017)
    refused(api.post("/tradingAccount/connect", {"credentialIds": [cid], "externalTradingAccountId": "spot"}),
            409, -22017)
    # the key itself may be stored and connected again
    assert connected(api, key)["status"] == "ACTIVE"


def test_list_filters(api, other, mock_exchange) -> None:
    a = ok(create(api, mock_key(mock_exchange), nickname="a"))
    b = ok(create(api, mock_key(mock_exchange, "okx"), "OKX", credentialType="HMAC", nickname="b"))
    c = ok(create(api, mock_key(mock_exchange), nickname="c"))
    ok(create(other, mock_key(mock_exchange)))
    ok(api.post("/credential/revoke", {"credentialId": c["credentialId"]}))
    response = api.get("/credential/list")
    doc = response.json()
    assert [x["nickname"] for x in doc["data"]] == ["a", "b", "c"]
    assert doc["pagination"] == {"offset": 0, "limit": 1000, "total": 3, "hasNext": False}
    assert [x["credentialId"] for x in ok(api.get("/credential/list", credentialType="HMAC"))] == [b["credentialId"]]
    assert [x["nickname"] for x in ok(api.get("/credential/list", credentialStatus="REVOKED"))] == ["c"]
    assert [x["nickname"] for x in ok(api.get("/credential/list", credentialStatus="ACTIVE"))] == ["a", "b"]
    # credentialIds repeats the key (never comma-joined)
    query = f"credentialIds={a['credentialId']}&credentialIds={c['credentialId']}"
    listed = api.http.get(f"/api/v3/credential/list?{query}", headers=api.headers).json()["data"]
    assert [x["nickname"] for x in listed] == ["a", "c"]
    assert ok(api.get("/credential/list", credentialIds=str(uuid.uuid4()))) == []
    for params in ({"credentialStatus": "GONE"}, {"credentialType": "KEY"}, {"credentialIds": "1,2"}):
        refused(api.get("/credential/list", **params), 400, -19004)
    assert all(k not in json.dumps(doc) for k in ("apiSecret", "secret\""))
