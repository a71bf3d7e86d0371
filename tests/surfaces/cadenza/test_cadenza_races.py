"""Concurrent requests on one key or one credential, on both databases: every change takes effect once,
and no live account is ever left holding a revoked credential's key."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from cadenza_helpers import Api, login, mock_key, ok
from sqlalchemy import select

from strongroom.models import AccountCredential, ExchangeAccount, ExchangeCredential

WORKERS = 6


def post_all(calls: list[tuple[Api, str, dict[str, Any]]]) -> list[httpx.Response]:
    """Send every call at once (each on its own connection); return the answers in order."""

    def send(call: tuple[Api, str, dict[str, Any]]) -> httpx.Response:
        api, path, body = call
        with httpx.Client(base_url=str(api.http.base_url), timeout=60) as client:
            return client.post(f"/api/v3{path}", headers=api.headers, json=body)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(send, calls))


def statuses(responses: list[httpx.Response]) -> list[int]:
    for response in responses:
        assert response.status_code != 500 and response.json()["errno"] is not None, response.text
    return sorted(r.status_code for r in responses)


def test_one_key_connected_by_several_users_at_once(http, cadenza_users, mock_exchange, cadenza_server) -> None:
    key = mock_key(mock_exchange)
    apis = [login(http, cadenza_users.create(sign_in=False)) for _ in range(WORKERS)]
    answers = post_all([(api, "/tradingAccount/connect", {"venue": "BINANCE", **key}) for api in apis])
    assert statuses(answers) == [200] + [409] * (WORKERS - 1)
    with cadenza_server.core.db.session() as session:
        live = session.scalars(select(ExchangeAccount).where(
            ExchangeAccount.key_hint == f"{key['apiKey'][:4]}…{key['apiKey'][-4:]}",
            ExchangeAccount.status != "disconnected")).all()
        assert len(live) == 1
        # the refused connects stored no credential either (it is written in the same transaction)
        assert session.scalar(select(AccountCredential).where(AccountCredential.account_id == live[0].id))


def test_concurrent_revocations_take_effect_once(api, mock_exchange) -> None:
    credential = ok(api.post("/credential/create", {"venue": "BINANCE", "credentialType": "API_KEY",
                                                    **mock_key(mock_exchange)}))
    answers = post_all([(api, "/credential/revoke", {"credentialId": credential["credentialId"]})] * WORKERS)
    assert statuses(answers) == [200] + [409] * (WORKERS - 1)


def test_connect_racing_revoke_leaves_no_live_account_on_a_revoked_key(api, mock_exchange, cadenza_server) -> None:
    for _ in range(3):
        credential = ok(api.post("/credential/create", {"venue": "BINANCE", "credentialType": "API_KEY",
                                                        **mock_key(mock_exchange)}))
        cid = credential["credentialId"]
        connect = {"credentialIds": [cid], "externalTradingAccountId": "spot"}
        calls = [(api, "/tradingAccount/connect", {**connect, "externalTradingAccountId": kind})
                 for kind in ("spot", "margin", "futures")]
        calls += [(api, "/credential/revoke", {"credentialId": cid})] * 3
        answers = post_all(calls)
        assert statuses(answers[3:]) == [200, 409, 409]
        assert all(r.status_code in (200, 409) for r in answers[:3]), [r.text for r in answers[:3]]
        with cadenza_server.core.db.session() as session:
            row = session.scalar(select(ExchangeCredential).where(ExchangeCredential.public_id == uuid.UUID(cid)))
            assert row.status == "revoked" and row.ciphertext == b""
            linked = session.scalars(select(ExchangeAccount).join(
                AccountCredential, AccountCredential.account_id == ExchangeAccount.id).where(
                AccountCredential.credential_id == row.id)).all()
            assert all(a.status == "disconnected" and a.ciphertext == b"" for a in linked)
            assert len(linked) == sum(r.status_code == 200 for r in answers[:3])


def test_rotations_racing_each_other_leave_credential_and_accounts_in_step(api, mock_exchange, cadenza_server) -> None:
    credential = ok(api.post("/credential/create", {"venue": "BINANCE", "credentialType": "API_KEY",
                                                    **mock_key(mock_exchange)}))
    cid = credential["credentialId"]
    for kind in ("spot", "margin"):
        ok(api.post("/tradingAccount/connect", {"credentialIds": [cid], "externalTradingAccountId": kind}))
    keys = [mock_key(mock_exchange) for _ in range(4)]
    answers = post_all([(api, "/credential/rotate", {"credentialId": cid, **k}) for k in keys])
    assert 200 in statuses(answers) and set(statuses(answers)) <= {200, 409}
    vault = cadenza_server.core.vault
    with cadenza_server.core.db.session() as session:
        row = session.scalar(select(ExchangeCredential).where(ExchangeCredential.public_id == uuid.UUID(cid)))
        held = vault.open_credential(row)
        accounts = session.scalars(select(ExchangeAccount).join(
            AccountCredential, AccountCredential.account_id == ExchangeAccount.id).where(
            AccountCredential.credential_id == row.id)).all()
        assert len(accounts) == 2
        # whichever rotation won last, the credential and both accounts hold the same key
        assert all(vault.open_account_credentials(a) == held for a in accounts)
        assert all(a.key_fingerprint == row.key_fingerprint for a in accounts)
    assert held["api_key"] in {k["apiKey"] for k in keys}
