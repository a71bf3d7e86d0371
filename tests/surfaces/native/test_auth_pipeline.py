"""The one authentication pipeline over real HTTP: every scheme, every refusal reason (with its
status and its audit event), uniform refusal bodies, account binding, trusted proxies,
IP allowlists (IPv4 and IPv6), rate limits and batched last_used_at."""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
import socket
import string
import threading
import time
import uuid
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event
from support import TEST_SETTINGS, Server, start_server
from support.factories import connect_bitmex
from support.signing import (
    load_private_key,
    sign_ed25519,
    sign_hmac,
    sign_kalshi,
    sign_native,
    sign_rsa_pkcs1,
)

from strongroom.auth import client_ip

BASE62 = string.digits + string.ascii_letters


# --------------------------------------------------------------------------- helpers


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def make_key(client, user, **body) -> dict:
    body.setdefault("name", f"k-{uuid.uuid4().hex[:6]}")
    response = client.post("/v1/api-keys", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()


def generate(client, user, key_type: str, **body) -> tuple[dict, object]:
    body.setdefault("name", f"g-{uuid.uuid4().hex[:6]}")
    response = client.post("/v1/api-keys/generate", json={"key_type": key_type, **body}, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json(), load_private_key(response.json()["private_key"])


def unknown_bearer() -> str:
    body = "sr_" + "".join(secrets.choice(BASE62) for _ in range(30))
    number, check = zlib.crc32(body.encode()), ""
    while number:
        number, rem = divmod(number, 62)
        check = BASE62[rem] + check
    return body + check.rjust(6, "0")




def audit_events(client, viewer, action: str = "auth.key", pages: int = 5) -> list[dict]:
    """The newest audit events ``viewer`` may see (admins: all), of ``action``."""
    out, cursor = [], None
    for _ in range(pages):
        params = {"action": action, "limit": 200, **({"cursor": cursor} if cursor else {})}
        response = client.get("/v1/audit-events", params=params, headers=viewer.headers)
        assert response.status_code == 200, response.text
        out += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if not cursor:
            break
    return out


def refusal_reasons(client, viewer, *, key_id: str | None = None, path: str | None = None,
                    action: str = "auth.key") -> list[str]:
    events = [e for e in audit_events(client, viewer, action) if e["outcome"] == "refused"]
    if key_id is not None:
        events = [e for e in events if e["actor_key_id"] == key_id]
    if path is not None:
        events = [e for e in events if e["details"].get("path") == path]
    return [e["details"].get("reason") for e in events]


def anonymous_refusals(client, viewer, server, reason: str) -> int:
    """How many refusals of ``reason`` without a key id are recorded (rows are aggregated per client,
    reason and minute: their ``count`` is what adds up)."""
    server.core.audit.flush_refusals()
    return sum(e["details"].get("count", 1) for e in audit_events(client, viewer, "auth.key")
               if e["outcome"] == "refused" and e["actor_key_id"] is None and e["details"].get("reason") == reason)


def assert_audited(client, viewer, reason: str, **match) -> None:
    """The refusal reason shows up in the audit log (written by a worker thread: allow a moment)."""
    deadline = time.monotonic() + 3
    while True:
        reasons = refusal_reasons(client, viewer, **match)
        if reason in reasons:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"no audited refusal {reason!r} for {match}; saw {reasons}")
        time.sleep(0.05)


def poll(check, timeout: float, interval: float = 0.05) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def shared(server, **overrides) -> Server:
    """A second server on the same database and master key as the session server."""
    return start_server(data_dir=server.settings.data_dir, database_url=server.settings.database_url, **overrides)


# --------------------------------------------------------------------------- every scheme


def test_access_token_and_password_basic(client, users):
    user = users.create()
    token = client.get("/v1/me", headers=user.headers)
    assert token.status_code == 200 and token.json()["auth_scheme"] == "access_token"
    assert token.json()["key_id"] is None and token.json()["id"] == user.id
    pw = client.get("/v1/me", headers=user.basic)
    assert pw.status_code == 200 and pw.json()["id"] == user.id


@pytest.mark.parametrize("how", ["authorization-bearer", "x-api-key", "basic-bearer", "basic-hmac"])
def test_key_schemes_without_signatures(client, users, how):
    user = users.create()
    kind = "hmac" if how == "basic-hmac" else "bearer"
    key = make_key(client, user, kind=kind, scopes=["read"])
    headers = {
        "authorization-bearer": bearer(key["secret"]),
        "x-api-key": {"X-API-Key": key["secret"]},
        "basic-bearer": basic(key["key_id"], key["secret"]),
        "basic-hmac": basic(key["key_id"], key["secret"]),
    }[how]
    response = client.get("/v1/me", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["key_id"] == key["key_id"] and body["id"] == user.id and body["scopes"] == ["read"]
    assert body["auth_scheme"] == {"authorization-bearer": "bearer_key", "x-api-key": "x_api_key"}.get(how, "basic_key")
    # the wrong secret for the same key id is refused
    if how.startswith("basic"):
        wrong = key["secret"][:-1] + ("x" if key["secret"][-1] != "x" else "y")
        assert client.get("/v1/me", headers=basic(key["key_id"], wrong)).status_code == 401


def _signing_key(client, user, scheme: str):
    """Return (key_id, material) for ``scheme``: the hmac secret, or a private key."""
    if scheme == "hmac":
        key = make_key(client, user, kind="hmac")
        return key["key_id"], key["secret"]
    created, private = generate(client, user, "ed25519" if scheme == "ed25519" else "rsa")
    return created["key_id"], private


@pytest.mark.parametrize("scheme", ["hmac", "rsa-pss", "rsa-pkcs1v15", "ed25519"])
def test_native_signed_requests(client, users, scheme):
    user = users.create()
    key_id, material = _signing_key(client, user, scheme)

    got = client.get("/v1/me", headers=sign_native(scheme, key_id, material, "GET", "/v1/me"))
    assert got.status_code == 200, got.text
    assert got.json()["key_id"] == key_id and got.json()["auth_scheme"] == "signed_request"

    # the query string is signed
    listed = client.get("/v1/api-keys?limit=1", headers=sign_native(scheme, key_id, material, "GET",
                                                                      "/v1/api-keys?limit=1"))
    assert listed.status_code == 200, listed.text
    moved = client.get("/v1/api-keys?limit=2", headers=sign_native(scheme, key_id, material, "GET",
                                                                     "/v1/api-keys?limit=1"))
    assert moved.status_code == 401

    # POST with a JSON body: the signature covers the raw bytes as sent (odd spacing kept)
    raw = ('{"name":   "signed-' + uuid.uuid4().hex[:6] + '" ,"scopes" : ["read"]}').encode()
    headers = {"Content-Type": "application/json",
               **sign_native(scheme, key_id, material, "POST", "/v1/api-keys", raw)}
    created = client.post("/v1/api-keys", content=raw, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["scopes"] == ["read"]

    # the same signature over a body that differs by one byte is refused
    tampered_raw = raw.replace(b'["read"]', b'["read","write"]')
    headers = {"Content-Type": "application/json",
               **sign_native(scheme, key_id, material, "POST", "/v1/api-keys", raw)}
    refused = client.post("/v1/api-keys", content=tampered_raw, headers=headers)
    assert refused.status_code == 401


@pytest.mark.parametrize("key_type", ["rsa", "ed25519"])
def test_kalshi_signed_requests(client, users, key_type):
    user = users.create()
    created, private = generate(client, user, key_type)
    key_id = created["key_id"]
    got = client.get("/v1/me", headers=sign_kalshi(key_id, private, "GET", "/v1/me"))
    assert got.status_code == 200, got.text
    assert got.json()["key_id"] == key_id and got.json()["auth_scheme"] == "kalshi_signature"
    # Kalshi signs the path without the query
    listed = client.get("/v1/api-keys?limit=1", headers=sign_kalshi(key_id, private, "GET", "/v1/api-keys"))
    assert listed.status_code == 200, listed.text
    # wrong method in the signature
    assert client.get("/v1/me", headers=sign_kalshi(key_id, private, "POST", "/v1/me")).status_code == 401
    if key_type == "rsa":
        # Kalshi accepts RSA-PSS only, not PKCS#1 v1.5
        pkcs1 = sign_rsa_pkcs1(key_id, private, "GET", "/v1/me")
        headers = {"KALSHI-ACCESS-KEY": key_id, "KALSHI-ACCESS-TIMESTAMP": pkcs1["SR-ACCESS-TIMESTAMP"],
                   "KALSHI-ACCESS-SIGNATURE": pkcs1["SR-ACCESS-SIGNATURE"]}
        assert client.get("/v1/me", headers=headers).status_code == 401


def test_kalshi_headers_with_an_hmac_key_are_refused(client, users):
    user = users.create()
    key = make_key(client, user, kind="hmac")
    native = sign_hmac(key["key_id"], key["secret"], "GET", "/v1/me")
    headers = {"KALSHI-ACCESS-KEY": key["key_id"], "KALSHI-ACCESS-TIMESTAMP": native["SR-ACCESS-TIMESTAMP"],
               "KALSHI-ACCESS-SIGNATURE": native["SR-ACCESS-SIGNATURE"]}
    assert client.get("/v1/me", headers=headers).status_code == 401


# --------------------------------------------------------------------------- refusal reasons


def test_unknown_keys_are_401_and_audited(client, users, server):
    admin = users.create(admin=True)
    path = f"/v1/api-keys/{uuid.uuid4()}"
    before = anonymous_refusals(client, admin, server, "unknown_key")
    response = client.get(path, headers=bearer(unknown_bearer()))
    assert response.status_code == 401
    poll(lambda: anonymous_refusals(client, admin, server, "unknown_key") == before + 1, timeout=3)
    assert anonymous_refusals(client, admin, server, "unknown_key") == before + 1

    ghost = str(uuid.uuid4())
    assert client.get("/v1/me", headers=basic(ghost, "whatever")).status_code == 401
    assert_audited(client, admin, "unknown_key", key_id=ghost)

    ghost2 = str(uuid.uuid4())
    assert client.get("/v1/me", headers=sign_hmac(ghost2, "s", "GET", "/v1/me")).status_code == 401
    assert_audited(client, admin, "unknown_key", key_id=ghost2)

    before = anonymous_refusals(client, admin, server, "malformed_key")
    assert client.get(f"/v1/api-keys/{uuid.uuid4()}", headers=bearer("sr_nonsense")).status_code == 401
    poll(lambda: anonymous_refusals(client, admin, server, "malformed_key") == before + 1, timeout=3)
    assert anonymous_refusals(client, admin, server, "malformed_key") == before + 1


def test_bad_secret_is_401_and_audited(client, users):
    user = users.create()
    key = make_key(client, user)
    assert client.get("/v1/me", headers=basic(key["key_id"], unknown_bearer())).status_code == 401
    assert_audited(client, user, "bad_secret", key_id=key["key_id"])  # the owner sees it


def test_expired_key_is_401_and_audited(client, users):
    user = users.create()
    soon = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0) + timedelta(seconds=1)
    key = make_key(client, user, expires_at=soon.isoformat())
    hkey = make_key(client, user, kind="hmac", expires_at=soon.isoformat())
    assert client.get("/v1/me", headers=bearer(key["secret"])).status_code == 200
    poll(lambda: client.get("/v1/me", headers=bearer(key["secret"])).status_code == 401, timeout=6)
    assert datetime.now(UTC) >= soon - timedelta(seconds=0.5)  # not refused early
    assert_audited(client, user, "expired", key_id=key["key_id"])
    signed = client.get("/v1/me", headers=sign_hmac(hkey["key_id"], hkey["secret"], "GET", "/v1/me"))
    assert signed.status_code == 401
    assert_audited(client, user, "expired", key_id=hkey["key_id"])


def test_disabled_key_is_401_and_audited(client, users):
    user = users.create()
    key = make_key(client, user)
    assert client.get("/v1/me", headers=bearer(key["secret"])).status_code == 200
    off = client.patch(f"/v1/api-keys/{key['key_id']}", json={"enabled": False}, headers=user.headers)
    assert off.status_code == 200
    assert client.get("/v1/me", headers=bearer(key["secret"])).status_code == 401
    assert_audited(client, user, "disabled", key_id=key["key_id"])


def test_ip_allowlist_outside_403_inside_200(client, users):
    user = users.create()
    outside = make_key(client, user, ip_allowlist=["10.0.0.0/8"])
    refused = client.get("/v1/me", headers=bearer(outside["secret"]))
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    assert "10.0" not in refused.text and "127.0.0.1" not in refused.text and "allowlist" not in refused.text
    assert_audited(client, user, "ip_not_allowed", key_id=outside["key_id"])
    event_ = next(e for e in audit_events(client, user) if e["actor_key_id"] == outside["key_id"])
    assert event_["client_ip"] == "127.0.0.1"

    inside = make_key(client, user, ip_allowlist=["127.0.0.0/8"])
    assert client.get("/v1/me", headers=bearer(inside["secret"])).status_code == 200
    only_v6 = make_key(client, user, ip_allowlist=["::1/128"])
    assert client.get("/v1/me", headers=bearer(only_v6["secret"])).status_code == 403  # we come from IPv4


def test_insufficient_scope_is_403_and_audited(client, users):
    user = users.create()
    read_only = make_key(client, user, scopes=["read"])
    victim = make_key(client, user)
    created = client.post("/v1/api-keys", json={"name": "nope"}, headers=bearer(read_only["secret"]))
    assert created.status_code == 403 and created.json()["code"] == "insufficient_scope"
    assert_audited(client, user, "insufficient_scope", key_id=read_only["key_id"], action="auth.authorize")

    read_write = make_key(client, user, scopes=["read", "write"])
    deleted = client.delete(f"/v1/api-keys/{victim['key_id']}", headers=bearer(read_write["secret"]))
    assert deleted.status_code == 403 and deleted.json()["code"] == "insufficient_scope"
    assert_audited(client, user, "insufficient_scope", key_id=read_write["key_id"], action="auth.authorize")
    assert client.get("/v1/me", headers=bearer(victim["secret"])).status_code == 200


@pytest.mark.parametrize("scheme", ["hmac", "rsa-pss", "ed25519"])
def test_bad_signature_is_401_and_audited(client, users, scheme):
    user = users.create()
    key_id, material = _signing_key(client, user, scheme)
    headers = sign_native(scheme, key_id, material, "GET", "/v1/me")
    sig = headers["SR-ACCESS-SIGNATURE"]
    if scheme == "hmac":
        bad = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    else:
        raw = bytearray(base64.b64decode(sig))
        raw[5] ^= 0x01
        bad = base64.b64encode(bytes(raw)).decode()
    assert client.get("/v1/me", headers={**headers, "SR-ACCESS-SIGNATURE": bad}).status_code == 401
    assert client.get("/v1/me", headers={**headers, "SR-ACCESS-SIGNATURE": "not base64!"}).status_code == 401
    assert_audited(client, user, "bad_signature", key_id=key_id)
    # a fresh, honest signature still works: the refusals did not poison anything
    assert client.get("/v1/me", headers=sign_native(scheme, key_id, material, "GET", "/v1/me")).status_code == 200


def test_stale_and_future_timestamps_are_401_and_audited(client, users):
    user = users.create()
    key = make_key(client, user, kind="hmac")
    stale = str(int(time.time() * 1000) - 60_000)
    future = str(int(time.time() * 1000) + 60_000)
    for stamp in (stale, future, "yesterday"):
        headers = sign_hmac(key["key_id"], key["secret"], "GET", "/v1/me", timestamp=stamp)
        assert client.get("/v1/me", headers=headers).status_code == 401, stamp
    assert_audited(client, user, "stale_timestamp", key_id=key["key_id"])
    # inside the window is fine
    recent = str(int(time.time() * 1000) - 10_000)
    headers = sign_hmac(key["key_id"], key["secret"], "GET", "/v1/me", timestamp=recent)
    assert client.get("/v1/me", headers=headers).status_code == 200


def test_signature_window_is_configurable(server, users):
    narrow = shared(server, signature_window_seconds=5)
    try:
        user = users.create()
        with narrow.client() as c:
            key = make_key(c, user, kind="hmac")
            ten_ago = str(int(time.time() * 1000) - 10_000)
            headers = sign_hmac(key["key_id"], key["secret"], "GET", "/v1/me", timestamp=ten_ago)
            assert c.get("/v1/me", headers=headers).status_code == 401
            two_ago = str(int(time.time() * 1000) - 2_000)
            headers = sign_hmac(key["key_id"], key["secret"], "GET", "/v1/me", timestamp=two_ago)
            assert c.get("/v1/me", headers=headers).status_code == 200
    finally:
        narrow.stop()


@pytest.mark.parametrize("kalshi", [False, True])
def test_replayed_signature_is_401_and_audited(client, users, kalshi):
    user = users.create()
    created, private = generate(client, user, "ed25519")
    key_id = created["key_id"]
    headers = (sign_kalshi(key_id, private, "GET", "/v1/me") if kalshi
               else sign_ed25519(key_id, private, "GET", "/v1/me"))
    assert client.get("/v1/me", headers=headers).status_code == 200
    assert client.get("/v1/me", headers=headers).status_code == 401
    assert_audited(client, user, "replayed_signature", key_id=key_id)
    # a new signature (new timestamp) is accepted
    time.sleep(0.002)
    fresh = (sign_kalshi(key_id, private, "GET", "/v1/me") if kalshi
             else sign_ed25519(key_id, private, "GET", "/v1/me"))
    assert client.get("/v1/me", headers=fresh).status_code == 200


B64 = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"


def _reencode(signature: str) -> str:
    """The same signature bytes in another spelling: flip an unused bit before the base64 padding."""
    body = signature.rstrip("=")
    assert len(body) % 4 in (2, 3), "signature length leaves no unused bits"
    last = body[-1]
    return body[:-1] + B64[B64.index(last) ^ 1] + signature[len(body):]


@pytest.mark.parametrize("scheme", ["hmac", "ed25519", "kalshi-ed25519"])
def test_replay_guard_is_not_fooled_by_another_spelling_of_the_signature(client, users, scheme):
    user = users.create()
    if scheme == "hmac":
        key_id, material = _signing_key(client, user, "hmac")
        headers = sign_hmac(key_id, material, "GET", "/v1/me")
        name = "SR-ACCESS-SIGNATURE"
        respelled = headers[name].upper()
    else:
        created, private = generate(client, user, "ed25519")
        key_id = created["key_id"]
        kalshi = scheme.startswith("kalshi")
        headers = sign_kalshi(key_id, private, "GET", "/v1/me") if kalshi else sign_ed25519(key_id, private, "GET",
                                                                                            "/v1/me")
        name = "KALSHI-ACCESS-SIGNATURE" if kalshi else "SR-ACCESS-SIGNATURE"
        respelled = _reencode(headers[name])
        assert base64.b64decode(respelled, validate=True) == base64.b64decode(headers[name], validate=True)
    assert respelled != headers[name]
    assert client.get("/v1/me", headers=headers).status_code == 200
    replay = client.get("/v1/me", headers={**headers, name: respelled})
    assert replay.status_code == 401, "a replayed signature in another spelling was accepted"
    assert_audited(client, user, "replayed_signature", key_id=key_id)


def test_rate_limit_per_key_is_429_with_retry_after_and_audited(server, users):
    limited = shared(server, rate_limit_per_key="3/minute")
    try:
        user = users.create()
        with limited.client() as c:
            key = make_key(c, user)
            other = make_key(c, user)
            codes = [c.get("/v1/me", headers=bearer(key["secret"])).status_code for _ in range(3)]
            assert codes == [200, 200, 200]
            over = c.get("/v1/me", headers=bearer(key["secret"]))
            assert over.status_code == 429, over.text
            assert over.json()["code"] == "rate_limited"
            assert 1 <= int(over.headers["Retry-After"]) <= 60
            assert c.get("/v1/me", headers=bearer(other["secret"])).status_code == 200  # per key
            assert_audited(c, user, "rate_limited", key_id=key["key_id"])
    finally:
        limited.stop()


def test_rate_limit_per_ip(server, users):
    limited = shared(server, rate_limit_per_ip="4/minute")
    try:
        user = users.create()
        with limited.client() as c:
            codes = [c.get("/v1/me", headers=user.headers).status_code for _ in range(5)]
            assert codes[:4] == [200] * 4 and codes[4] == 429
            last = c.get("/v1/me")
            assert last.status_code == 429 and int(last.headers["Retry-After"]) >= 1
    finally:
        limited.stop()


def test_a_spent_ip_failure_budget_still_admits_credentials_known_from_memory(server, users):
    """Issue 22.5: behind a shared address, one client's bad credentials spend the address's failure
    budget; the others' bearer keys and access tokens (known to this process from an earlier use)
    still pass, while anything that needs expensive work (a password, an unknown key, a signature)
    is 429."""
    limited = shared(server, auth_failures_per_ip="5/minute")
    try:
        user = users.create()
        with limited.client() as c:
            key = make_key(c, user)
            hkey = make_key(c, user, kind="hmac")
            assert c.get("/v1/me", headers=bearer(key["secret"])).status_code == 200
            assert c.get("/v1/me", headers=user.headers).status_code == 200  # the access token
            codes = [c.get("/v1/me", headers=bearer(unknown_bearer())).status_code for _ in range(8)]
            assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}, codes
            time.sleep(1.1)  # past the key cache's TTL (at most 1 s): what passes now was not merely cached
            for _ in range(3):
                assert c.get("/v1/me", headers=bearer(key["secret"])).status_code == 200
                assert c.get("/v1/me", headers={"X-API-Key": key["secret"]}).status_code == 200
                assert c.get("/v1/me", headers=user.headers).status_code == 200
            expensive = [c.get("/v1/me", headers=bearer(unknown_bearer())),
                         c.get("/v1/me", headers=basic(user.username, user.password)),
                         c.get("/v1/me", headers=sign_hmac(hkey["key_id"], hkey["secret"], "GET", "/v1/me")),
                         c.get("/v1/me")]
            for response in expensive:
                assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1, response.text
            other = make_key(c, user)  # never used in this process: not worth a database lookup, so 429
            assert c.get("/v1/me", headers=bearer(other["secret"])).status_code == 429
    finally:
        limited.stop()


def test_exempt_networks_are_never_limited_by_the_ip_failure_budget(server, users):
    limited = shared(server, auth_failures_per_ip="3/minute", auth_failure_exempt_networks=["127.0.0.0/8", "::1/128"])
    try:
        user = users.create()
        with limited.client() as c:
            codes = [c.get("/v1/me", headers=bearer(unknown_bearer())).status_code for _ in range(10)]
            codes += [c.get("/v1/me", headers=basic(user.username, "wrong")).status_code for _ in range(3)]
            assert set(codes) == {401}, codes
            assert c.get("/v1/me", headers=basic(user.username, user.password)).status_code == 200
            refresh = user.extra["refresh_token"]
            assert c.post("/v1/auth/refresh", json={"refresh_token": "nope"}).status_code == 401
            assert c.post("/v1/auth/refresh", json={"refresh_token": refresh}).status_code == 200
    finally:
        limited.stop()


# --------------------------------------------------------------------------- uniform refusals


def test_refusals_do_not_say_which_part_was_wrong(client, users):
    user = users.create()
    good = make_key(client, user)
    disabled = make_key(client, user)
    client.patch(f"/v1/api-keys/{disabled['key_id']}", json={"enabled": False}, headers=user.headers)
    soon = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    expired = make_key(client, user, expires_at=soon.isoformat())
    hkey = make_key(client, user, kind="hmac")
    poll(lambda: client.get("/v1/me", headers=bearer(expired["secret"])).status_code == 401, timeout=8)

    stale = sign_hmac(hkey["key_id"], hkey["secret"], "GET", "/v1/me", timestamp=str(int(time.time() * 1000) - 99_000))
    bad_sig = sign_hmac(hkey["key_id"], "not-the-secret", "GET", "/v1/me")
    replay = sign_hmac(hkey["key_id"], hkey["secret"], "GET", "/v1/me")
    assert client.get("/v1/me", headers=replay).status_code == 200
    attempts = {
        "unknown key": bearer(unknown_bearer()),
        "bad checksum": bearer(good["secret"][:-1] + ("A" if good["secret"][-1] != "A" else "B")),
        "unknown key id": basic(str(uuid.uuid4()), good["secret"]),
        "bad secret": basic(good["key_id"], unknown_bearer()),
        "expired": bearer(expired["secret"]),
        "disabled": bearer(disabled["secret"]),
        "disabled basic": basic(disabled["key_id"], disabled["secret"]),
        "stale": stale,
        "bad signature": bad_sig,
        "replay": replay,
        "unknown signer": sign_hmac(str(uuid.uuid4()), "x", "GET", "/v1/me"),
    }
    seen = {}
    for name, headers in attempts.items():
        response = client.get("/v1/me", headers=headers)
        assert response.status_code == 401, (name, response.text)
        seen[name] = (response.json(), response.headers.get("www-authenticate"))
    first = next(iter(seen.values()))
    different = {name: value for name, value in seen.items() if value != first}
    assert not different, f"refusal bodies differ: {first} vs {different}"
    assert client.get("/v1/me", headers=bearer(good["secret"])).status_code == 200


# --------------------------------------------------------------------------- account binding


def test_a_key_bound_to_one_account_cannot_see_another(client, users):
    user = users.create()
    a, b = connect_bitmex(client, user), connect_bitmex(client, user)
    key = make_key(client, user, account_ids=[a], scopes=["read", "write", "delete"])
    auth = bearer(key["secret"])
    listed = client.get("/v1/exchange-accounts", headers=auth)
    assert listed.status_code == 200
    assert [acc["id"] for acc in listed.json()["items"]] == [a]
    assert client.get(f"/v1/exchange-accounts/{a}", headers=auth).status_code == 200
    for response in (
        client.get(f"/v1/exchange-accounts/{b}", headers=auth),
        client.patch(f"/v1/exchange-accounts/{b}", json={"name": "x"}, headers=auth),
        client.post(f"/v1/exchange-accounts/{b}/disable", headers=auth),
        client.delete(f"/v1/exchange-accounts/{b}", headers=auth),
    ):
        assert response.status_code == 404, response.text
    # the owner's token still sees both, and b is untouched
    everything = client.get("/v1/exchange-accounts", headers=user.headers).json()["items"]
    assert {acc["id"] for acc in everything} == {a, b}
    assert client.get(f"/v1/exchange-accounts/{b}", headers=user.headers).json()["status"] == "unverified"
    # a bound key cannot connect new accounts
    creds = {"api_key": f"bm-{uuid.uuid4().hex}", "secret": "s"}
    connect = client.post("/v1/exchange-accounts", json={"exchange": "bitmex", "credentials": creds}, headers=auth)
    assert connect.status_code == 403


# --------------------------------------------------------------------------- client IPs and proxies


def test_x_forwarded_for_is_ignored_by_default(client, users):
    user = users.create()
    ten = make_key(client, user, ip_allowlist=["10.0.0.0/8"])
    loop = make_key(client, user, ip_allowlist=["127.0.0.0/8"])
    spoof = {"X-Forwarded-For": "10.1.2.3"}
    assert client.get("/v1/me", headers={**bearer(ten["secret"]), **spoof}).status_code == 403
    assert client.get("/v1/me", headers={**bearer(loop["secret"]), **spoof}).status_code == 200
    assert client.get("/v1/me", headers={**bearer(loop["secret"]), "Forwarded": "for=10.1.2.3",
                                         "X-Real-IP": "10.1.2.3"}).status_code == 200
    assert_audited(client, user, "ip_not_allowed", key_id=ten["key_id"])
    event_ = next(e for e in audit_events(client, user) if e["actor_key_id"] == ten["key_id"])
    assert event_["client_ip"] == "127.0.0.1"


def test_x_forwarded_for_is_honoured_from_a_trusted_proxy(server, users):
    proxied = shared(server, trusted_proxies=["127.0.0.1/32"])
    try:
        user = users.create()
        with proxied.client() as c:
            ten = make_key(c, user, ip_allowlist=["10.0.0.0/8"])
            v6 = make_key(c, user, ip_allowlist=["2001:db8::/32"])
            loop6 = make_key(c, user, ip_allowlist=["::1/128"])

            def status(key, xff=None):
                headers = bearer(key["secret"]) | ({"X-Forwarded-For": xff} if xff else {})
                return c.get("/v1/me", headers=headers).status_code

            assert status(ten, "10.1.2.3") == 200
            assert status(ten) == 403  # the peer itself is 127.0.0.1
            assert status(ten, "10.1.2.3, 192.168.7.7") == 403  # right-most untrusted hop is the client
            assert status(ten, "192.168.7.7, 10.1.2.3") == 200
            assert status(ten, "10.1.2.3, 127.0.0.1") == 200  # trusted hops are skipped
            assert status(ten, "garbage") == 403
            assert status(v6, "2001:db8::5") == 200
            assert status(v6, "2001:db9::5") == 403
            assert status(loop6, "::1") == 200
            assert status(loop6, "2001:db8::5") == 403
            assert status(loop6, "10.1.2.3") == 403
            assert_audited(c, user, "ip_not_allowed", key_id=loop6["key_id"])
            recorded = {e["client_ip"] for e in audit_events(c, user) if e["actor_key_id"] == loop6["key_id"]}
            assert {"2001:db8::5", "10.1.2.3"} <= recorded
    finally:
        proxied.stop()


def test_client_ip_rules():
    trusted = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"),
               ipaddress.ip_network("10.0.0.0/8")]
    assert client_ip("127.0.0.1", "203.0.113.9", []) == "127.0.0.1"  # no trusted proxies: the peer
    assert client_ip("198.51.100.1", "203.0.113.9", trusted) == "198.51.100.1"  # untrusted peer
    assert client_ip("127.0.0.1", None, trusted) == "127.0.0.1"
    assert client_ip("127.0.0.1", "203.0.113.9", trusted) == "203.0.113.9"
    assert client_ip("::1", "2001:db8::1", trusted) == "2001:db8::1"
    assert client_ip("::1", "2001:DB8:0::1", trusted) == "2001:db8::1"  # normalised
    assert client_ip("127.0.0.1", "203.0.113.9, 10.2.3.4", trusted) == "203.0.113.9"  # skip trusted hops
    assert client_ip("127.0.0.1", "1.2.3.4, 203.0.113.9", trusted) == "203.0.113.9"  # spoofed left part
    assert client_ip("127.0.0.1", "nonsense", trusted) == "127.0.0.1"
    assert client_ip("127.0.0.1", "10.0.0.1, 10.0.0.2", trusted) in ("10.0.0.1", "127.0.0.1")


def _start_server_on_ipv6(server) -> tuple[Server, str]:
    """Like support.start_server, but listening on [::1] (skip loudly if IPv6 loopback is missing)."""
    import uvicorn

    from strongroom.app import create_app
    from strongroom.core import build_core
    from strongroom.settings import Settings

    try:
        sock = socket.socket(socket.AF_INET6)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"IPV6 LOOPBACK NOT AVAILABLE: cannot bind [::1] ({exc}); client_ip() is tested directly")
    settings = Settings(**{**TEST_SETTINGS, "data_dir": server.settings.data_dir,
                           "database_url": server.settings.database_url})
    core = build_core(settings)
    app = create_app(settings, core=core)
    uv = uvicorn.Server(uvicorn.Config(app, log_config=None, proxy_headers=False, timeout_graceful_shutdown=1))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("IPv6 test server failed to start")
        time.sleep(0.01)
    return Server(f"http://[::1]:{sock.getsockname()[1]}", core, settings, uv, thread), "::1"


def test_ipv6_allowlist_over_real_ipv6(server, client, users):
    v6server, _ = _start_server_on_ipv6(server)
    try:
        user = users.create()
        loop6 = make_key(client, user, ip_allowlist=["::1/128"])
        loop4 = make_key(client, user, ip_allowlist=["127.0.0.0/8"])
        net6 = make_key(client, user, ip_allowlist=["2001:db8::/32", "::/127"])
        with v6server.client() as c:
            assert c.get("/v1/me", headers=bearer(loop6["secret"])).status_code == 200
            assert c.get("/v1/me", headers=bearer(loop4["secret"])).status_code == 403
            assert c.get("/v1/me", headers=bearer(net6["secret"])).status_code == 200  # ::1 is in ::/127
        assert client.get("/v1/me", headers=bearer(loop6["secret"])).status_code == 403  # IPv4 peer
        assert client.get("/v1/me", headers=bearer(loop4["secret"])).status_code == 200
    finally:
        v6server.stop()


# --------------------------------------------------------------------------- last_used_at


def test_last_used_at_is_written_after_use(client, users):
    user = users.create()
    key = make_key(client, user)
    url = f"/v1/api-keys/{key['key_id']}"
    assert client.get(url, headers=user.headers).json()["last_used_at"] is None
    time.sleep(1.05)  # timestamps have one-second resolution: make "updated_at moved" visible
    before = datetime.now(UTC).replace(microsecond=0)
    assert client.get("/v1/me", headers=bearer(key["secret"])).status_code == 200

    def written() -> bool:
        return client.get(url, headers=user.headers).json()["last_used_at"] is not None

    poll(written, timeout=5)  # the server flushes every 0.2 s
    got = client.get(url, headers=user.headers).json()
    used = datetime.fromisoformat(got["last_used_at"])
    assert before - timedelta(seconds=1) <= used <= datetime.now(UTC) + timedelta(seconds=1)
    # using a key is not an update of the key
    assert got["updated_at"] == key["updated_at"], "last_used_at writes must not bump updated_at"
    # an access-token request touches no key
    assert client.get("/v1/me", headers=user.headers).json()["key_id"] is None


def test_last_used_at_is_written_in_batches(server, users):
    interval = 1.0
    srv = shared(server, last_used_flush_seconds=interval)
    updates: list[float] = []
    try:
        user = users.create()
        with srv.client() as c:
            key = make_key(c, user)
            key_id = key["key_id"]

            def on_execute(conn, cursor, statement, parameters, context, executemany):
                text = statement.lstrip().upper()
                if text.startswith("UPDATE") and "API_KEYS" in text and key_id in json.dumps(parameters, default=str):
                    updates.append(time.monotonic())

            event.listen(srv.core.db.engine, "before_cursor_execute", on_execute)
            try:
                n = 40
                start = time.monotonic()
                for _ in range(n):
                    assert c.get("/v1/me", headers=bearer(key["secret"])).status_code == 200
                elapsed = time.monotonic() - start
                poll(lambda: len(updates) >= 1, timeout=3 * interval + 2)
                time.sleep(interval * 1.5)  # let any last flush land
                got = c.get(f"/v1/api-keys/{key_id}", headers=user.headers).json()
            finally:
                event.remove(srv.core.db.engine, "before_cursor_execute", on_execute)
        assert got["last_used_at"] is not None
        # at most one write per key per flush interval, not one per request
        bound = int(elapsed / interval) + 2
        assert 1 <= len(updates) <= bound, (len(updates), bound, elapsed)
        assert len(updates) < n / 4, (len(updates), n)
    finally:
        srv.stop()

