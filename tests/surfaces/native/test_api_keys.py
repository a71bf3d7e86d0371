"""/v1/api-keys over real HTTP: create (bearer, hmac, rsa, ed25519), generate, validation, list,
get, update, roll, delete, the per-user cap and the checksum check that runs before any lookup."""

from __future__ import annotations

import re
import secrets
import string
import time
import uuid
import zlib
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import event
from support import start_server
from support.factories import connect_bitmex
from support.signing import (
    load_private_key,
    new_ed25519,
    new_rsa,
    public_pem,
    sign_ed25519,
    sign_hmac,
    sign_rsa_pss,
)

BASE62 = string.digits + string.ascii_letters
BEARER_RE = re.compile(r"^sr_([0-9A-Za-z]{30})([0-9A-Za-z]{6})$")


# --------------------------------------------------------------------------- helpers


def crc32_base62(body: str) -> str:
    """The 6-char base62 CRC32 the key format specifies (computed here, independently of the server)."""
    number, out = zlib.crc32(body.encode()), ""
    while number:
        number, rem = divmod(number, 62)
        out = BASE62[rem] + out
    return out.rjust(6, "0")


def create(client, headers, **body):
    body.setdefault("name", f"k-{uuid.uuid4().hex[:6]}")
    return client.post("/v1/api-keys", json=body, headers=headers)


def make(client, headers, **body) -> dict:
    response = create(client, headers, **body)
    assert response.status_code == 201, response.text
    return response.json()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}




def me(client, headers) -> int:
    return client.get("/v1/me", headers=headers).status_code


def problem(response) -> dict:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.json()


# --------------------------------------------------------------------------- bearer and hmac


def test_bearer_key_format_checksum_and_secret_shown_once(client, users, logs):
    user = users.create()
    created = make(client, user.headers, name="bot")
    secret = created["secret"]
    match = BEARER_RE.match(secret)
    assert match, f"unexpected bearer key format: {secret[:3]}..."
    assert match.group(2) == crc32_base62(secret[:-6]), "the last 6 characters are not the CRC32 of the rest"
    assert uuid.UUID(created["key_id"])
    assert created["kind"] == "bearer" and created["name"] == "bot" and created["enabled"] is True
    assert created["scopes"] == ["read", "write"]
    assert created["hint"] and secret not in created["hint"] and len(created["hint"]) < 16
    assert created["last_used_at"] is None and created["created_at"] and created["updated_at"]

    # The secret works...
    who = client.get("/v1/me", headers=bearer(secret))
    assert who.status_code == 200, who.text
    assert who.json()["key_id"] == created["key_id"] and who.json()["id"] == user.id

    # ...and is never shown again: not by get, not by list, not in the logs.
    got = client.get(f"/v1/api-keys/{created['key_id']}", headers=user.headers)
    assert got.status_code == 200
    assert secret not in got.text and "secret" not in got.json()
    assert got.json()["hint"] == created["hint"]
    listed = client.get("/v1/api-keys", headers=user.headers)
    assert listed.status_code == 200
    assert created["key_id"] in [k["key_id"] for k in listed.json()["items"]]
    assert secret not in listed.text and all("secret" not in k for k in listed.json()["items"])
    assert secret not in logs.text()
    assert secret[3:-6] not in logs.text()


def test_hmac_key_secret_shown_once_and_signs(client, users, logs):
    user = users.create()
    created = make(client, user.headers, kind="hmac", name="signer")
    secret = created["secret"]
    assert created["kind"] == "hmac" and isinstance(secret, str) and len(secret) >= 32
    key_id = created["key_id"]

    ok = client.get("/v1/me", headers=sign_hmac(key_id, secret, "GET", "/v1/me"))
    assert ok.status_code == 200, ok.text
    assert ok.json()["key_id"] == key_id and ok.json()["auth_scheme"] == "signed_request"

    got = client.get(f"/v1/api-keys/{key_id}", headers=user.headers)
    listed = client.get("/v1/api-keys", headers=user.headers)
    for response in (got, listed):
        assert response.status_code == 200 and secret not in response.text
    assert "secret" not in got.json()
    assert secret not in logs.text()

    # The shared secret is not a bearer key.
    assert me(client, bearer(secret)) == 401


# --------------------------------------------------------------------------- public keys


def test_uploading_a_public_key_needs_the_operators_level(client, users, server):
    """Issue 22.4: premier is Kalshi's rule (its surface keeps it); /v1 asks STRONGROOM_PUBLIC_KEY_UPLOAD_LEVEL,
    by default basic: anyone."""
    basic = users.create()
    for kind, private in (("ed25519", new_ed25519()), ("rsa", new_rsa())):
        made = create(client, basic.headers, kind=kind, public_key=public_pem(private))
        assert made.status_code == 201, made.text
    raised = start_server(data_dir=server.settings.data_dir, database_url=server.settings.database_url,
                          public_key_upload_level="premier")
    try:
        with raised.client() as c:
            refused = create(c, basic.headers, kind="ed25519", public_key=public_pem(new_ed25519()))
            assert refused.status_code == 403, refused.text
            assert problem(refused)["code"] == "insufficient_usage_level" and "premier" in problem(refused)["detail"]
            premier = users.create(usage_level="premier")
            assert create(c, premier.headers, kind="ed25519", public_key=public_pem(new_ed25519())).status_code == 201
            # generating a pair is not uploading: open to everyone
            assert c.post("/v1/api-keys/generate", json={"name": "g"}, headers=basic.headers).status_code == 201
    finally:
        raised.stop()
    assert len(client.get("/v1/api-keys", headers=basic.headers).json()["items"]) == 3


@pytest.mark.parametrize("variant", ["rsa-spki", "rsa-pkcs1-pem", "ed25519"])
def test_premier_user_uploads_a_public_key_and_signs(client, users, variant):
    user = users.create(usage_level="premier")
    if variant == "ed25519":
        private, kind = new_ed25519(), "ed25519"
        pem = public_pem(private)
    else:
        private, kind = new_rsa(), "rsa"
        pem = public_pem(private, pkcs1=variant == "rsa-pkcs1-pem")
    created = make(client, user.headers, kind=kind, public_key=pem, scopes=["read"])
    assert created["kind"] == kind and created.get("secret") is None
    assert "BEGIN PUBLIC KEY" in created["public_key"]
    assert created["hint"].startswith(kind)
    key_id = created["key_id"]

    sign = sign_ed25519 if kind == "ed25519" else sign_rsa_pss
    response = client.get("/v1/me", headers=sign(key_id, private, "GET", "/v1/me"))
    assert response.status_code == 200, response.text
    assert response.json()["key_id"] == key_id and response.json()["scopes"] == ["read"]

    # A signature by another private key is refused.
    other = new_ed25519() if kind == "ed25519" else new_rsa()
    assert client.get("/v1/me", headers=sign(key_id, other, "GET", "/v1/me")).status_code == 401


@pytest.mark.parametrize("key_type", ["rsa", "ed25519"])
def test_generate_returns_the_private_key_once(client, users, logs, key_type):
    user = users.create()  # generating (not uploading) needs no usage level
    response = client.post("/v1/api-keys/generate", json={"name": "gen", "key_type": key_type},
                           headers=user.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    private_pem = body["private_key"]
    if key_type == "rsa":
        assert private_pem.startswith("-----BEGIN RSA PRIVATE KEY-----"), "RSA private key must be PKCS#1"
    else:
        assert private_pem.startswith("-----BEGIN PRIVATE KEY-----"), "Ed25519 private key must be PKCS#8"
    private = load_private_key(private_pem)
    assert public_pem(private) == body["public_key"]
    assert body["kind"] == key_type and body.get("secret") is None

    signer = sign_rsa_pss if key_type == "rsa" else sign_ed25519
    ok = client.get("/v1/me", headers=signer(body["key_id"], private, "GET", "/v1/me"))
    assert ok.status_code == 200, ok.text

    marker = private_pem.splitlines()[1]  # a line of the key material itself
    got = client.get(f"/v1/api-keys/{body['key_id']}", headers=user.headers)
    listed = client.get("/v1/api-keys", headers=user.headers)
    for r in (got, listed):
        assert r.status_code == 200 and marker not in r.text and "private_key" not in r.text
    assert marker not in logs.text()


def _ec_pem() -> str:
    return public_pem(ec.generate_private_key(ec.SECP256R1()))


def _private_pem() -> str:
    from cryptography.hazmat.primitives import serialization

    return new_ed25519().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()).decode()


BAD_KEYS = {
    "not-pem": ("rsa", lambda: "ssh-rsa AAAAB3NzaC1yc2E hello", "pem"),
    "garbled-pem": ("rsa", lambda: "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n", "pem"),
    "rsa-1024": ("rsa", lambda: public_pem(new_rsa(1024)), "2048"),
    "rsa-e3": ("rsa", lambda: public_pem(new_rsa(2048, exponent=3)), "65537"),
    "ec-p256": ("rsa", _ec_pem, "unsupported"),
    "private-key": ("ed25519", _private_pem, "private"),
    "kind-mismatch": ("rsa", lambda: public_pem(new_ed25519()), "ed25519"),
}


@pytest.mark.parametrize("case", sorted(BAD_KEYS))
def test_bad_public_keys_are_refused_naming_the_problem(client, users, case):
    kind, make_pem, word = BAD_KEYS[case]
    user = users.create(usage_level="premier")
    response = create(client, user.headers, kind=kind, public_key=make_pem())
    assert 400 <= response.status_code < 500, response.text
    body = problem(response)
    assert response.status_code == 422 and body["code"] == "validation_failed"
    assert word in (body["detail"] + " " + str(body.get("errors", {}))).lower(), body
    assert "public_key" in body.get("errors", {})
    assert client.get("/v1/api-keys", headers=user.headers).json()["items"] == []


def test_public_key_required_for_public_key_kinds_and_refused_for_others(client, users):
    user = users.create(usage_level="premier")
    missing = create(client, user.headers, kind="rsa")
    assert missing.status_code == 422 and "public_key" in problem(missing)["errors"]
    extra = create(client, user.headers, kind="bearer", public_key=public_pem(new_ed25519()))
    assert extra.status_code == 422 and "public_key" in problem(extra)["errors"]
    unknown_kind = create(client, user.headers, kind="dsa")
    assert unknown_kind.status_code == 422


# --------------------------------------------------------------------------- scopes


def test_scope_validation(client, users):
    user = users.create()
    unknown = create(client, user.headers, scopes=["read", "admin"])
    assert unknown.status_code == 422 and "scopes" in problem(unknown)["errors"]
    write_only = create(client, user.headers, scopes=["write"])
    assert write_only.status_code == 422 and "scopes" in problem(write_only)["errors"]
    empty = create(client, user.headers, scopes=[])
    assert empty.status_code == 422
    full = make(client, user.headers, scopes=["read", "write", "delete", "read"])
    assert sorted(full["scopes"]) == ["delete", "read", "write"]


def test_a_key_never_exceeds_its_creator(client, users):
    user = users.create()
    read_only = make(client, user.headers, scopes=["read"])
    refused = create(client, bearer(read_only["secret"]), scopes=["read", "write"])
    assert refused.status_code == 403 and problem(refused)["code"] == "insufficient_scope"
    refused_read = create(client, bearer(read_only["secret"]), scopes=["read"])
    assert refused_read.status_code == 403 and problem(refused_read)["code"] == "insufficient_scope"

    read_write = make(client, user.headers, scopes=["read", "write"])
    escalate = create(client, bearer(read_write["secret"]), scopes=["read", "write", "delete"])
    assert escalate.status_code == 403 and problem(escalate)["code"] == "insufficient_scope"
    child = make(client, bearer(read_write["secret"]), scopes=["read"])
    assert child["scopes"] == ["read"]
    # PATCH cannot escalate either
    widen = client.patch(f"/v1/api-keys/{child['key_id']}", json={"scopes": ["read", "write", "delete"]},
                         headers=bearer(read_write["secret"]))
    assert widen.status_code == 403 and problem(widen)["code"] == "insufficient_scope"
    keys = {k["key_id"] for k in client.get("/v1/api-keys", headers=user.headers).json()["items"]}
    assert keys == {read_only["key_id"], read_write["key_id"], child["key_id"]}


# --------------------------------------------------------------------------- accounts and allowlists


def test_account_binding_to_own_accounts_only(client, users):
    owner, stranger = users.create(), users.create()
    a1, a2 = connect_bitmex(client, owner), connect_bitmex(client, owner)
    theirs = connect_bitmex(client, stranger)

    foreign = create(client, owner.headers, account_ids=[theirs])
    assert foreign.status_code == 422 and "account_ids" in problem(foreign)["errors"]
    missing = create(client, owner.headers, account_ids=[a1, 2_000_000_000])
    assert missing.status_code == 422 and "account_ids" in problem(missing)["errors"]

    bound = make(client, owner.headers, account_ids=[a1])
    assert bound["account_ids"] == [a1]
    assert client.get("/v1/me", headers=bearer(bound["secret"])).json()["account_ids"] == [a1]
    # a key bound to a1 cannot make a key that sees a2, and its children inherit the binding
    wider = create(client, bearer(bound["secret"]), account_ids=[a1, a2])
    assert wider.status_code == 403 and problem(wider)["code"] == "insufficient_scope"
    child = make(client, bearer(bound["secret"]))
    assert child["account_ids"] == [a1]
    unbound = make(client, owner.headers)
    assert unbound["account_ids"] is None


def test_a_key_bound_to_accounts_sees_only_keys_within_them(client, users):
    """Issue 22.3: keys beyond a bound key's accounts are invisible to it: absent from the list, 404 to read,
    read the usage of, change, roll or delete."""
    owner = users.create()
    mine, other = connect_bitmex(client, owner), connect_bitmex(client, owner)
    full = ["read", "write", "delete"]
    bound = make(client, owner.headers, account_ids=[mine], scopes=full)
    sibling = make(client, owner.headers, account_ids=[mine], scopes=["read"])
    elsewhere = make(client, owner.headers, account_ids=[other], scopes=["read"])
    both = make(client, owner.headers, account_ids=[mine, other], scopes=["read"])
    unbound = make(client, owner.headers, scopes=["read"])
    auth = bearer(bound["secret"])
    listed = client.get("/v1/api-keys", headers=auth, params={"limit": 200})
    assert listed.status_code == 200, listed.text
    assert {k["key_id"] for k in listed.json()["items"]} == {bound["key_id"], sibling["key_id"]}
    for beyond in (elsewhere, both, unbound):
        path = f"/v1/api-keys/{beyond['key_id']}"
        for response in (client.get(path, headers=auth), client.get(f"{path}/usage", headers=auth),
                         client.patch(path, headers=auth, json={"name": "x"}),
                         client.post(f"{path}/roll", headers=auth, json={}), client.delete(path, headers=auth)):
            assert response.status_code == 404 and problem(response)["code"] == "not_found", response.text
    assert client.get(f"/v1/api-keys/{sibling['key_id']}", headers=auth).status_code == 200
    assert client.get(f"/v1/api-keys/{sibling['key_id']}/usage", headers=auth).status_code == 200
    # the user's session (and an unbound key) still sees every key
    everything = {k["key_id"] for k in client.get("/v1/api-keys", headers=owner.headers).json()["items"]}
    assert {bound["key_id"], sibling["key_id"], elsewhere["key_id"], both["key_id"], unbound["key_id"]} <= everything


def test_empty_account_ids_is_refused(client, users):
    """Issue 22.3: ``account_ids: []`` has no meaning of its own on /v1 (null is every account): refused."""
    owner = users.create()
    response = create(client, owner.headers, account_ids=[])
    assert response.status_code == 422, response.text
    assert problem(response)["code"] == "validation_failed" and "account_ids" in problem(response)["errors"]
    key = make(client, owner.headers, account_ids=[connect_bitmex(client, owner)])
    response = client.patch(f"/v1/api-keys/{key['key_id']}", headers=owner.headers, json={"account_ids": []})
    assert response.status_code == 422 and "account_ids" in problem(response)["errors"], response.text
    assert client.get(f"/v1/api-keys/{key['key_id']}", headers=owner.headers).json()["account_ids"] != []


def test_ip_allowlist_is_validated_and_normalised(client, users):
    user = users.create()
    created = make(client, user.headers, ip_allowlist=["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1",
                                                       "10.1.2.3/8"])
    assert created["ip_allowlist"] == ["10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32", "::1/128"]
    for garbage in (["not-an-ip"], ["10.0.0.0/33"], ["2001:db8::/129"], ["10.0.0.0/8", "300.1.1.1"], [""]):
        response = create(client, user.headers, ip_allowlist=garbage)
        assert response.status_code == 422, (garbage, response.text)
        assert "ip_allowlist" in problem(response)["errors"]


# --------------------------------------------------------------------------- list, get, ownership


def test_list_pages_with_a_cursor(client, users):
    user, other = users.create(), users.create()
    make(client, other.headers)
    ids = [make(client, user.headers, name=f"k{i}")["key_id"] for i in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/api-keys", params=params, headers=user.headers)
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        assert len(items) <= 2
        seen += [k["key_id"] for k in items]
        pages += 1
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    assert seen == ids and pages == 3
    bad = client.get("/v1/api-keys", params={"cursor": "garbage!"}, headers=user.headers)
    assert bad.status_code == 422


def test_another_users_key_looks_like_404(client, users):
    owner, other = users.create(), users.create()
    key = make(client, owner.headers)
    url = f"/v1/api-keys/{key['key_id']}"
    assert client.get(url, headers=other.headers).status_code == 404
    assert client.patch(url, json={"name": "mine"}, headers=other.headers).status_code == 404
    assert client.post(url + "/roll", json={}, headers=other.headers).status_code == 404
    assert client.delete(url, headers=other.headers).status_code == 404
    assert client.get(f"/v1/api-keys/{uuid.uuid4()}", headers=owner.headers).status_code == 404
    # untouched
    got = client.get(url, headers=owner.headers).json()
    assert got["name"] == key["name"] and me(client, bearer(key["secret"])) == 200


# --------------------------------------------------------------------------- update


def test_patch_every_attribute(client, users):
    user = users.create()
    a1, a2 = connect_bitmex(client, user), connect_bitmex(client, user)
    key = make(client, user.headers, scopes=["read", "write", "delete"])
    url, auth = f"/v1/api-keys/{key['key_id']}", bearer(key["secret"])

    def patch(**changes):
        response = client.patch(url, json=changes, headers=user.headers)
        assert response.status_code == 200, response.text
        return response.json()

    time.sleep(1.05)  # updated_at has one-second resolution
    renamed = patch(name="renamed")
    assert renamed["name"] == "renamed" and renamed["updated_at"] > key["updated_at"]
    assert "secret" not in renamed and key["secret"] not in str(renamed)

    narrowed = patch(scopes=["read"])
    assert narrowed["scopes"] == ["read"]
    assert client.get("/v1/me", headers=auth).json()["scopes"] == ["read"]
    refused = create(client, auth)
    assert refused.status_code == 403 and problem(refused)["code"] == "insufficient_scope"
    assert patch(scopes=["read", "write"])["scopes"] == ["read", "write"]
    assert create(client, auth).status_code == 201

    assert patch(ip_allowlist=["10.0.0.0/8"])["ip_allowlist"] == ["10.0.0.0/8"]
    assert me(client, auth) == 403
    assert patch(ip_allowlist=["127.0.0.0/8", "::1/128"])["ip_allowlist"] == ["127.0.0.0/8", "::1/128"]
    assert me(client, auth) == 200
    bad = client.patch(url, json={"ip_allowlist": ["nope"]}, headers=user.headers)
    assert bad.status_code == 422

    assert patch(account_ids=[a2])["account_ids"] == [a2]
    assert client.get(f"/v1/exchange-accounts/{a1}", headers=auth).status_code == 404
    assert client.get(f"/v1/exchange-accounts/{a2}", headers=auth).status_code == 200

    assert patch(enabled=False)["enabled"] is False
    assert me(client, auth) == 401
    assert patch(enabled=True)["enabled"] is True
    assert me(client, auth) == 200

    later = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    expiring = patch(expires_at=later.isoformat())
    assert datetime.fromisoformat(expiring["expires_at"]) == later
    past = client.patch(url, json={"expires_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()},
                        headers=user.headers)
    assert past.status_code == 422 and "expires_at" in problem(past)["errors"]
    assert patch(expires_at=None)["expires_at"] is None
    unknown_field = client.patch(url, json={"kind": "hmac"}, headers=user.headers)
    assert unknown_field.status_code == 422
    assert me(client, auth) == 200


def test_expiry_and_enabled_validation(client, users):
    user = users.create()
    naive = create(client, user.headers, expires_at=(datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None)
                   .isoformat())
    assert naive.status_code == 422 and "expires_at" in problem(naive)["errors"]
    past = create(client, user.headers, expires_at=(datetime.now(UTC) - timedelta(seconds=5)).isoformat())
    assert past.status_code == 422 and "expires_at" in problem(past)["errors"]
    key = make(client, user.headers)
    url = f"/v1/api-keys/{key['key_id']}"
    for body in ({"enabled": None}, {"enabled": [1]}, {"name": ""}, {"name": None}, {"scopes": "read"}):
        response = client.patch(url, json=body, headers=user.headers)
        assert response.status_code == 422, (body, response.text)
    got = client.get(url, headers=user.headers).json()
    assert got["enabled"] is True and got["name"] == key["name"]


# --------------------------------------------------------------------------- roll


def test_roll_without_grace_refuses_the_old_secret_at_once(client, users):
    user = users.create()
    key = make(client, user.headers)
    old = key["secret"]
    assert me(client, bearer(old)) == 200  # cached now
    rolled = client.post(f"/v1/api-keys/{key['key_id']}/roll", headers=user.headers)
    assert rolled.status_code == 200, rolled.text
    new = rolled.json()["secret"]
    assert new != old and BEARER_RE.match(new) and rolled.json()["key_id"] == key["key_id"]
    assert rolled.json()["hint"] != key["hint"]
    assert me(client, bearer(old)) == 401
    assert me(client, bearer(new)) == 200
    got = client.get(f"/v1/api-keys/{key['key_id']}", headers=user.headers)
    assert new not in got.text and old not in got.text


def test_roll_hmac_without_grace(client, users):
    user = users.create()
    key = make(client, user.headers, kind="hmac")
    old, key_id = key["secret"], key["key_id"]
    assert client.get("/v1/me", headers=sign_hmac(key_id, old, "GET", "/v1/me")).status_code == 200
    rolled = client.post(f"/v1/api-keys/{key_id}/roll", json={"grace_seconds": 0}, headers=user.headers)
    assert rolled.status_code == 200
    new = rolled.json()["secret"]
    assert new != old
    assert client.get("/v1/me", headers=sign_hmac(key_id, old, "GET", "/v1/me")).status_code == 401
    assert client.get("/v1/me", headers=sign_hmac(key_id, new, "GET", "/v1/me")).status_code == 200


def _poll_until(check, timeout: float) -> float:
    """Call ``check`` every 50 ms until it returns True; return the time it took (or fail)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.mark.parametrize("kind", ["bearer", "hmac"])
def test_roll_with_grace_keeps_the_old_secret_for_the_grace_only(client, users, kind):
    user = users.create()
    key = make(client, user.headers, kind=kind)
    key_id, old = key["key_id"], key["secret"]

    def status(secret: str) -> int:
        if kind == "bearer":
            return me(client, bearer(secret))
        return client.get("/v1/me", headers=sign_hmac(key_id, secret, "GET", "/v1/me")).status_code

    assert status(old) == 200
    rolled = client.post(f"/v1/api-keys/{key_id}/roll", json={"grace_seconds": 2}, headers=user.headers)
    assert rolled.status_code == 200, rolled.text
    rolled_at = time.monotonic()
    new = rolled.json()["secret"]
    assert status(new) == 200 and status(old) == 200  # both work during the grace
    _poll_until(lambda: status(old) == 401, timeout=5)
    # the grace ran for (about) the 2 s asked for: not cut short
    assert time.monotonic() - rolled_at >= 1.0
    assert status(new) == 200


def test_roll_refuses_public_key_kinds_and_bad_grace(client, users):
    user = users.create()
    generated = client.post("/v1/api-keys/generate", json={"name": "g", "key_type": "ed25519"},
                            headers=user.headers).json()
    response = client.post(f"/v1/api-keys/{generated['key_id']}/roll", headers=user.headers)
    assert response.status_code == 400 and problem(response)["code"] == "bad_request"
    key = make(client, user.headers)
    negative = client.post(f"/v1/api-keys/{key['key_id']}/roll", json={"grace_seconds": -1}, headers=user.headers)
    assert negative.status_code == 422
    assert me(client, bearer(key["secret"])) == 200


# --------------------------------------------------------------------------- delete


@pytest.mark.parametrize("kind", ["bearer", "hmac"])
def test_delete_refuses_the_key_immediately(client, users, kind):
    user = users.create()
    key = make(client, user.headers, kind=kind)
    key_id = key["key_id"]

    def status() -> int:
        if kind == "bearer":
            return me(client, bearer(key["secret"]))
        return client.get("/v1/me", headers=sign_hmac(key_id, key["secret"], "GET", "/v1/me")).status_code

    assert status() == 200  # now in this process's cache
    deleted = client.delete(f"/v1/api-keys/{key_id}", headers=user.headers)
    assert deleted.status_code == 204 and deleted.content == b""
    assert status() == 401
    assert client.get(f"/v1/api-keys/{key_id}", headers=user.headers).status_code == 404
    assert client.delete(f"/v1/api-keys/{key_id}", headers=user.headers).status_code == 404


def test_delete_needs_the_delete_scope(client, users):
    user = users.create()
    read_write = make(client, user.headers)  # default scopes: read, write
    victim = make(client, user.headers)
    refused = client.delete(f"/v1/api-keys/{victim['key_id']}", headers=bearer(read_write["secret"]))
    assert refused.status_code == 403 and problem(refused)["code"] == "insufficient_scope"
    assert me(client, bearer(victim["secret"])) == 200
    full = make(client, user.headers, scopes=["read", "write", "delete"])
    assert client.delete(f"/v1/api-keys/{victim['key_id']}", headers=bearer(full["secret"])).status_code == 204


# --------------------------------------------------------------------------- the per-user cap


def test_per_user_key_cap(server, users):
    capped = start_server(data_dir=server.settings.data_dir, database_url=server.settings.database_url,
                          max_api_keys_per_user=2)
    try:
        user = users.create()
        with capped.client() as c:
            make(c, user.headers)
            make(c, user.headers, kind="hmac")
            third = create(c, user.headers)
            assert third.status_code == 400, third.text
            assert problem(third)["code"] == "limit_exceeded"
            gen = c.post("/v1/api-keys/generate", json={"name": "g"}, headers=user.headers)
            assert gen.status_code == 400 and problem(gen)["code"] == "limit_exceeded"
            assert len(c.get("/v1/api-keys", headers=user.headers).json()["items"]) == 2
    finally:
        capped.stop()


# --------------------------------------------------------------------------- checksum before lookup


@contextmanager
def api_key_lookups(server, monkeypatch):
    """Count hash lookups (calls of find_key_id_by_secret_hash) and SQL statements reading api_keys."""
    counts = {"lookups": 0, "selects": 0}
    original = server.core.api_keys.find_key_id_by_secret_hash

    def counting(digest):
        counts["lookups"] += 1
        return original(digest)

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "api_keys" in statement:
            counts["selects"] += 1

    monkeypatch.setattr(server.core.api_keys, "find_key_id_by_secret_hash", counting)
    event.listen(server.core.db.engine, "before_cursor_execute", on_execute)
    try:
        yield counts
    finally:
        event.remove(server.core.db.engine, "before_cursor_execute", on_execute)
        monkeypatch.undo()


def _tamper(secret: str) -> str:
    last = secret[-1]
    return secret[:-1] + ("A" if last != "A" else "B")


def test_bad_checksum_is_refused_before_any_lookup(server, client, users, monkeypatch):
    user = users.create()
    key = make(client, user.headers)
    secret = key["secret"]
    body_tampered = secret[:5] + ("x" if secret[5] != "x" else "y") + secret[6:]  # checksum now wrong
    with api_key_lookups(server, monkeypatch) as counts:
        for bad in (_tamper(secret), body_tampered, "sr_short", "sr_" + "!" * 36):
            assert me(client, bearer(bad)) == 401
            assert client.get("/v1/me", headers={"X-API-Key": bad}).status_code == 401
        assert counts == {"lookups": 0, "selects": 0}, counts

    # Control: a well-formed key that does not exist IS looked up, so the probe works.
    body = "sr_" + "".join(secrets.choice(BASE62) for _ in range(30))
    unknown = body + crc32_base62(body)
    with api_key_lookups(server, monkeypatch) as counts:
        assert me(client, bearer(unknown)) == 401
        assert counts["lookups"] == 1 and counts["selects"] >= 1, counts
    assert me(client, bearer(secret)) == 200
