"""POST /v1/keys/verify over real HTTP (SQLite and PostgreSQL): who may call it and who may grant its
``verify`` scope, a verdict for every scheme and every reason, usage and last-used counted, and
refusals counted against the END CLIENT's address from the body, never against the caller's."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta

import pytest
from support import start_server
from support.factories import generate, make_key
from support.signing import sign_hmac, sign_kalshi, sign_rsa_pkcs1
from support.threecommas import hmac_key

VERIFY = "/v1/keys/verify"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def verifier(server, users):
    """An admin's key holding only the verify scope: what a platform's service calls with."""
    admin = users.create(admin=True)
    with server.client() as client:
        return make_key(client, admin, scopes=["verify"])


def ask(client, verifier, **body):
    response = client.post(VERIFY, json={"client_ip": "203.0.113.7", **body}, headers=bearer(verifier["secret"]))
    assert response.status_code == 200, response.text
    return response.json()


def poll(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.05)


# --------------------------------------------------------------------------- the verify scope


def test_only_an_admin_session_grants_verify_and_nothing_implies_it(client, users):
    user = users.create()
    refused = client.post("/v1/api-keys", json={"name": "v", "scopes": ["verify"]}, headers=user.headers)
    assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"
    # a user's session (read, write, delete) and its keys may not verify
    own = make_key(client, user, scopes=["read", "write", "delete"])
    for headers in (user.headers, bearer(own["secret"])):
        asked = client.post(VERIFY, json={"key": own["secret"], "client_ip": "203.0.113.7"}, headers=headers)
        assert asked.status_code == 403 and asked.json()["code"] == "insufficient_scope"
    admin = users.create(admin=True)
    plain = make_key(client, admin, scopes=["read"])  # an admin's key without verify
    asked = client.post(VERIFY, json={"key": own["secret"], "client_ip": "203.0.113.7"}, headers=bearer(plain["secret"]))
    assert asked.status_code == 403
    # the admin's key cannot widen itself to verify either
    widened = client.patch(f"/v1/api-keys/{plain['key_id']}", json={"scopes": ["read", "verify"]},
                           headers=bearer(plain["secret"]))
    assert widened.status_code == 403
    # an admin's session may ask, and may grant it
    asked = client.post(VERIFY, json={"key": own["secret"], "client_ip": "203.0.113.7"}, headers=admin.headers)
    assert asked.status_code == 200 and asked.json()["valid"] is True
    assert make_key(client, admin, scopes=["verify", "read"])["scopes"] == ["verify", "read"]


def test_anonymous_caller_is_401(client):
    assert client.post(VERIFY, json={"key": "x", "client_ip": "203.0.113.7"}).status_code == 401


# --------------------------------------------------------------------------- verdicts


def test_a_valid_bearer_key_answers_who_and_what_never_a_secret(client, users, verifier):
    user = users.create()
    expires = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    key = make_key(client, user, scopes=["read", "write"], expires_at=expires.isoformat())
    got = ask(client, verifier, key=key["secret"])
    assert got["valid"] is True and got["reason"] is None
    assert got["user_id"] == user.id and got["key_id"] == key["key_id"]
    assert sorted(got["scopes"]) == ["read", "write"] and got["account_ids"] is None
    assert datetime.fromisoformat(got["expires_at"]) == expires
    window = got["ratelimit"]
    assert window["limit"] == 100000 and 0 <= window["remaining"] < window["limit"] and window["reset"] > 0
    assert key["secret"] not in str(got)
    # the X-API-Key spelling, as the client sent it
    got = ask(client, verifier, request={"method": "GET", "path": "/x", "headers": {"X-API-Key": key["secret"]}})
    assert got["valid"] is True and got["key_id"] == key["key_id"]


def test_a_verification_counts_in_usage_and_last_used(client, users, verifier):
    user = users.create()
    key = make_key(client, user)
    url = f"/v1/api-keys/{key['key_id']}"
    assert client.get(url, headers=user.headers).json()["last_used_at"] is None
    assert ask(client, verifier, key=key["secret"])["valid"] is True
    poll(lambda: client.get(url, headers=user.headers).json()["last_used_at"] is not None, timeout=5)
    poll(lambda: client.get(url + "/usage", headers=user.headers).json()["totals"]["ok"] == 1, timeout=5)


def test_every_reason(client, users, verifier):
    user = users.create()
    unknown = ask(client, verifier, key="sr_" + "A" * 30)
    assert unknown == {**unknown, "valid": False, "reason": "unknown_key", "user_id": None, "key_id": None}

    off = make_key(client, user)
    assert client.patch(f"/v1/api-keys/{off['key_id']}", json={"enabled": False}, headers=user.headers).status_code == 200
    assert ask(client, verifier, key=off["secret"])["reason"] == "revoked"

    soon = (datetime.now(UTC) + timedelta(seconds=5)).replace(microsecond=0) + timedelta(seconds=1)  # a busy machine's slack
    expiring = make_key(client, user, expires_at=soon.isoformat())
    assert ask(client, verifier, key=expiring["secret"])["valid"] is True
    poll(lambda: ask(client, verifier, key=expiring["secret"])["reason"] == "expired", timeout=12)

    fenced = make_key(client, user, ip_allowlist=["198.51.100.0/24"])
    assert ask(client, verifier, key=fenced["secret"])["reason"] == "ip_not_allowed"  # 203.0.113.7
    assert ask(client, verifier, key=fenced["secret"], client_ip="198.51.100.9")["valid"] is True

    reader = make_key(client, user, scopes=["read"])
    assert ask(client, verifier, key=reader["secret"], required_scopes=["write"])["reason"] == "insufficient_scope"
    assert ask(client, verifier, key=reader["secret"], required_scopes=["read::orders"])["valid"] is True


def test_kalshi_signature_bad_signature_and_replay(client, users, verifier):
    user = users.create()
    key, private = generate(client, user, "rsa")
    path = "/trade-api/v2/portfolio/balance?limit=5"
    headers = sign_kalshi(key["key_id"], private, "GET", path)
    request = {"method": "GET", "path": path, "headers": headers}
    got = ask(client, verifier, request=request)
    assert got["valid"] is True and got["key_id"] == key["key_id"]
    assert ask(client, verifier, request=request)["reason"] == "replayed"
    other = sign_kalshi(key["key_id"], private, "POST", path)  # signed for another method
    assert ask(client, verifier, request={**request, "headers": other})["reason"] == "bad_signature"
    stale = sign_kalshi(key["key_id"], private, "GET", path, timestamp=str(int(time.time() * 1000) - 3_600_000))
    assert ask(client, verifier, request={**request, "headers": stale})["reason"] == "bad_signature"


@pytest.mark.parametrize("encoding", ["text", "base64"])
def test_body_signing_schemes_with_the_body(client, users, verifier, encoding):
    user = users.create()
    hkey = make_key(client, user, kind="hmac")
    body = '{"name": "caf\u00e9"}'
    headers = sign_hmac(hkey["key_id"], hkey["secret"], "POST", "/orders?x=1", body)
    request = {"method": "POST", "path": "/orders?x=1", "headers": headers}
    request |= {"body": body} if encoding == "text" else {"body_base64": base64.b64encode(body.encode()).decode()}
    assert ask(client, verifier, request=request)["valid"] is True
    tampered = {**request, "headers": sign_hmac(hkey["key_id"], hkey["secret"], "POST", "/orders?x=1", "{}")}
    assert ask(client, verifier, request=tampered)["reason"] == "bad_signature"
    # 3Commas: APIKEY + Signature over path?query + body
    tc = hmac_key(client, user)
    target = "/public/api/ver1/accounts/new?x=1"
    request = {"method": "POST", "path": target, "headers": tc.headers(target.encode() + body.encode()), "body": body}
    assert ask(client, verifier, request=request)["valid"] is True
    assert ask(client, verifier, request=request)["reason"] == "replayed"
    # RSA PKCS#1 v1.5 (SR-ACCESS)
    rkey, private = generate(client, user, "rsa")
    signed = sign_rsa_pkcs1(rkey["key_id"], private, "GET", "/me")
    assert ask(client, verifier, request={"method": "GET", "path": "/me", "headers": signed})["valid"] is True


def test_two_credentials_in_one_request_are_ambiguous(client, users, verifier):
    user = users.create()
    one, two = make_key(client, user), make_key(client, user)
    headers = {"Authorization": f"Bearer {one['secret']}", "X-API-Key": two["secret"]}
    got = ask(client, verifier, request={"method": "GET", "path": "/", "headers": headers})
    assert got["valid"] is False and got["reason"] == "ambiguous_credentials" and got["key_id"] is None


def test_passwords_and_access_tokens_are_not_keys(client, users, verifier):
    user = users.create()
    basic = "Basic " + base64.b64encode(f"{user.username}:{user.password}".encode()).decode()
    for authorization in (basic, f"Bearer {user.token}"):
        got = ask(client, verifier, request={"method": "GET", "path": "/", "headers": {"Authorization": authorization}})
        assert got["valid"] is False and got["reason"] == "unknown_key"
    assert ask(client, verifier, request={"method": "GET", "path": "/"})["reason"] == "unknown_key"


@pytest.mark.parametrize("body", [
    {"client_ip": "203.0.113.7"},  # neither key nor request
    {"key": "sr_x", "request": {"method": "GET", "path": "/"}, "client_ip": "203.0.113.7"},
    {"key": "sr_x", "client_ip": "not-an-ip"},
    {"key": "sr_x"},
    {"key": "sr_x", "client_ip": "203.0.113.7", "required_scopes": ["admin"]},
    {"request": {"method": "G ET", "path": "/"}, "client_ip": "203.0.113.7"},
    {"request": {"method": "GET", "path": "no-slash"}, "client_ip": "203.0.113.7"},
    {"request": {"method": "GET", "path": "/\u00e9"}, "client_ip": "203.0.113.7"},
    {"request": {"method": "GET", "path": "/", "headers": {"Authorization": "Bearer \u2603"}}, "client_ip": "1.2.3.4"},
    {"request": {"method": "GET", "path": "/", "headers": {"bad name": "x"}}, "client_ip": "1.2.3.4"},
    {"request": {"method": "GET", "path": "/", "body_base64": "%%%"}, "client_ip": "1.2.3.4"},
    {"request": {"method": "GET", "path": "/", "body": "a", "body_base64": "YQ=="}, "client_ip": "1.2.3.4"},
    {"key": "sr_x\u0001", "client_ip": "1.2.3.4"},
])
def test_a_bad_call_is_422(client, verifier, body):
    response = client.post(VERIFY, json=body, headers=bearer(verifier["secret"]))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_failed"


# --------------------------------------------------------------------------- whose failure budget


def test_refusals_count_against_the_end_client_never_the_caller(server, users):
    """With 3 failures a minute per address: three bad keys from one end client spend that client's
    budget (its next verdict, even for a good key, is rate_limited with retry_after), while another
    end client, and the caller itself (same address as every test client), are untouched."""
    tight = start_server(data_dir=server.settings.data_dir, database_url=server.settings.database_url,
                         auth_failures_per_ip="3/minute")
    try:
        admin = users.create(admin=True)
        user = users.create()
        with tight.client() as client:
            verifier = make_key(client, admin, scopes=["verify"])
            good = make_key(client, user)
            for _ in range(3):
                assert ask(client, verifier, key="sr_" + "B" * 30, client_ip="192.0.2.1")["reason"] == "unknown_key"
            spent = ask(client, verifier, key=good["secret"], client_ip="192.0.2.1")
            assert spent["valid"] is False and spent["reason"] == "rate_limited" and spent["retry_after"] >= 1
            assert ask(client, verifier, key=good["secret"], client_ip="192.0.2.2")["valid"] is True
            # the caller's own address (127.0.0.1) was charged nothing: its own requests still pass
            assert client.get("/v1/me", headers=bearer(verifier["secret"])).status_code == 200
            assert client.get("/v1/me", headers=bearer(good["secret"])).status_code == 200
    finally:
        tight.stop()
