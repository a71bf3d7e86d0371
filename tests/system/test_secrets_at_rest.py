"""Issue 2, "done when": known secrets stored through HTTP appear in plaintext nowhere -
not in the database (file bytes, or every column of every table on PostgreSQL), not in the
logs, not in any later response - and the AES-GCM binding (AAD) stops swapped ciphertexts.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import uuid

import httpx
import pytest
from sqlalchemy import update
from support.keys import database_bytes


def _mock_key(mock, exchange: str, **extra) -> dict:
    tag = uuid.uuid4().hex
    creds = {"api_key": f"rest-{exchange}-{tag}", "secret": f"SECRET-{exchange}-{secrets.token_hex(16)}", **extra}
    response = httpx.post(f"{mock.url}/_mock/accounts", json={"exchange": exchange, **creds}, timeout=10)
    assert response.status_code == 201
    return creds


def _database_bytes(backend) -> bytes:
    """Everything the database holds, as bytes (and enough of it to show the read reached the data)."""
    blob = database_bytes(backend.url)
    assert len(blob) > (10_000 if backend.name == "sqlite" else 1_000)
    return blob


def _pem_body_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----") and len(line) >= 40]


def _variants(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, base64.b64encode(raw), raw.hex().encode(), json.dumps(secret).encode()]


def test_known_secrets_are_nowhere_in_plaintext(server, backend, client, users, mock_exchange, logs):
    loggers = {name: logging.getLogger(name).level for name in ("ccxt", "strongroom", "uvicorn", "sqlalchemy.engine")}
    for name in loggers:  # the most verbose logging an operator might turn on
        logging.getLogger(name).setLevel(logging.DEBUG)
    start = len(logs.lines)
    try:
        admin = users.create(admin=True)
        password = f"PASSWORD-{secrets.token_hex(16)}"
        username = f"rest{uuid.uuid4().hex[:10]}"
        created = client.post("/v1/users", headers=admin.headers, json={"username": username, "password": password})
        assert created.status_code == 201
        token = client.post("/v1/auth/token", data={"username": username, "password": password})
        assert token.status_code == 200
        tokens = token.json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert client.get("/v1/me", auth=(username, password)).status_code == 200

        binance = _mock_key(mock_exchange, "binance")
        okx = _mock_key(mock_exchange, "okx", passphrase=f"PASSPHRASE-{secrets.token_hex(12)}")
        accounts = []
        for exchange, creds in (("binance", binance), ("okx", okx)):
            response = client.post("/v1/exchange-accounts", headers=headers,
                                   json={"exchange": exchange, "credentials": creds})
            assert response.status_code == 201, response.text
            accounts.append(response.json())
        # a rotation stores new secrets; the refused attempt's secret must not be kept anywhere either
        rotated = _mock_key(mock_exchange, "binance")
        refused = {**_mock_key(mock_exchange, "binance"), "secret": f"REFUSED-{secrets.token_hex(16)}"}
        url = f"/v1/exchange-accounts/{accounts[0]['id']}/rotate"
        assert client.post(url, headers=headers, json={"credentials": refused}).status_code == 400
        assert client.post(url, headers=headers, json={"credentials": rotated}).status_code == 200

        bearer = client.post("/v1/api-keys", headers=headers, json={"name": "bearer", "kind": "bearer"})
        hmac_key = client.post("/v1/api-keys", headers=headers, json={"name": "hmac", "kind": "hmac"})
        generated = client.post("/v1/api-keys/generate", headers=headers, json={"name": "gen", "key_type": "rsa"})
        for response in (bearer, hmac_key, generated):
            assert response.status_code == 201, response.text
        bearer_secret = bearer.json()["secret"]
        hmac_secret = hmac_key.json()["secret"]
        private_pem = generated.json()["private_key"]
        assert bearer_secret and hmac_secret and "PRIVATE KEY" in private_pem
        # use them, so the verification paths run (and could log) too
        assert client.get("/v1/me", headers={"Authorization": f"Bearer {bearer_secret}"}).status_code == 200
        assert client.get("/v1/me", auth=(hmac_key.json()["key_id"], hmac_secret)).status_code == 200

        secrets_ = {
            "binance secret (rotated out)": binance["secret"],
            "binance secret (current)": rotated["secret"],
            "refused secret": refused["secret"],
            "okx secret": okx["secret"],
            "okx passphrase": okx["passphrase"],
            "user password": password,
            "bearer key": bearer_secret,
            "hmac secret": hmac_secret,
            "refresh token": tokens["refresh_token"],
            "access token": tokens["access_token"],
            # exchange API keys are credentials too: only a keyed fingerprint and a short hint are kept
            "binance api key": binance["api_key"],
            "rotated binance api key": rotated["api_key"],
            "okx api key": okx["api_key"],
        }
        pem_lines = _pem_body_lines(private_pem)
        assert len(pem_lines) >= 10

        # --- later responses: every read endpoint, as the owner and as an admin
        later = []
        for path in ("/v1/exchange-accounts", "/v1/api-keys", "/v1/me", "/v1/audit-events"):
            later.append(client.get(path, headers=headers, params={"limit": 200}))
        for account in accounts:
            later.append(client.get(f"/v1/exchange-accounts/{account['id']}", headers=headers))
            later.append(client.post(f"/v1/exchange-accounts/{account['id']}/revalidate", headers=headers))
        for key in (bearer, hmac_key, generated):
            later.append(client.get(f"/v1/api-keys/{key.json()['key_id']}", headers=headers))
        later.append(client.get("/v1/audit-events", headers=admin.headers, params={"limit": 200}))
        later.append(client.get("/v1/users", headers=admin.headers, params={"limit": 200}))
        later.append(client.get(f"/v1/users/{created.json()['id']}", headers=admin.headers))
        for response in later:
            assert response.status_code == 200, (response.request.url, response.text)
            for name, value in secrets_.items():
                assert value not in response.text, f"{name} in {response.request.url}"
            for line in pem_lines:
                assert line not in response.text, f"private key in {response.request.url}"
        # the exchange api keys only ever as a masked hint
        listed = later[0].text
        for creds in (binance, okx, rotated):
            assert creds["api_key"] not in listed

        # --- the database
        blob = _database_bytes(backend)
        for name, value in secrets_.items():
            for variant in _variants(value):
                assert variant not in blob, f"{name} is in the {backend.name} database"
        for line in pem_lines:
            assert line.encode() not in blob, "the generated private key is in the database"
        # the stored material is there, just not in plaintext (the check can fail)
        assert username.encode() in blob and b"PRIVATE" not in blob

        # --- the logs (of this process: the servers run here)
        text = "\n".join(logs.lines[start:])
        assert text, "no log lines captured"
        for name, value in secrets_.items():
            assert value not in text, f"{name} is in the logs"
        for line in pem_lines:
            assert line not in text, "the private key is in the logs"
        # the whole log of the process, too
        everything = logs.text()
        for name, value in secrets_.items():
            assert value not in everything, f"{name} is in the logs"
    finally:
        for name, level in loggers.items():
            logging.getLogger(name).setLevel(level)


def test_swapped_ciphertexts_do_not_decrypt(server, client, users, mock_exchange):
    from strongroom.errors import CredentialsUnreadable
    from strongroom.models import ExchangeAccount

    first, second = users.create(), users.create()
    ids = []
    for user in (first, first, second):
        response = client.post("/v1/exchange-accounts", headers=user.headers,
                               json={"exchange": "binance", "credentials": _mock_key(mock_exchange, "binance")})
        assert response.status_code == 201
        ids.append(response.json()["id"])
    core = server.core
    columns = ("ciphertext", "nonce", "wrapped_dek", "kek_version")

    def load(account_id):
        with core.db.session() as session:
            return session.get(ExchangeAccount, account_id)

    def sealed(account_id):
        account = load(account_id)
        return {c: getattr(account, c) for c in columns}

    def put(account_id, values):
        with core.db.session() as session:
            session.execute(update(ExchangeAccount).where(ExchangeAccount.id == account_id).values(**values))

    originals = {aid: core.account_store.credentials_of(load(aid)) for aid in ids}
    saved = {aid: sealed(aid) for aid in ids}
    pairs = [(ids[0], ids[1]), (ids[0], ids[2])]  # same user; different users
    try:
        for a, b in pairs:
            put(a, saved[b])
            put(b, saved[a])
            for aid in (a, b):
                with pytest.raises(CredentialsUnreadable):
                    core.account_store.credentials_of(load(aid))
            # through HTTP the damaged account fails closed: revalidation never gets usable credentials
            response = client.post(f"/v1/exchange-accounts/{a}/revalidate", headers=first.headers)
            assert response.status_code == 409, response.text
            assert response.json()["code"] == "credentials_unreadable"
            assert "SECRET" not in response.text and "Traceback" not in response.text
            put(a, saved[a])
            put(b, saved[b])
            assert core.account_store.credentials_of(load(a)) == originals[a]
            assert core.account_store.credentials_of(load(b)) == originals[b]
        # moving a ciphertext to another user or exchange breaks it as well (AAD binds user and exchange)
        with core.db.session() as session:
            session.execute(update(ExchangeAccount).where(ExchangeAccount.id == ids[0]).values(user_id=second.id))
        with pytest.raises(CredentialsUnreadable):
            core.account_store.credentials_of(load(ids[0]))
        with core.db.session() as session:
            session.execute(update(ExchangeAccount).where(ExchangeAccount.id == ids[0])
                            .values(user_id=first.id, exchange="okx"))
        with pytest.raises(CredentialsUnreadable):
            core.account_store.credentials_of(load(ids[0]))
        # a flipped bit in the ciphertext is caught by the GCM tag
        tampered = bytearray(saved[ids[1]]["ciphertext"])
        tampered[0] ^= 1
        put(ids[1], {"ciphertext": bytes(tampered)})
        with pytest.raises(CredentialsUnreadable):
            core.account_store.credentials_of(load(ids[1]))
    finally:
        with core.db.session() as session:
            session.execute(update(ExchangeAccount).where(ExchangeAccount.id == ids[0])
                            .values(user_id=first.id, exchange="binance"))
        for aid in ids:
            put(aid, saved[aid])
    for aid in ids:
        assert core.account_store.credentials_of(load(aid)) == originals[aid]
