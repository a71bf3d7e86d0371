"""The Kalshi surface (/trade-api/v2) over raw HTTP: the contract the official SDKs rely on.

Exact statuses (201/200/204, empty 204 body), the ``{"error": {"code", "message"}}`` error shape
with 400/401/403/404/405/413/429, scopes (default, children, write-needs-read, delete needs the
``delete`` scope), the usage-level gate, ownership, the per-user key cap, one core shared with /v1,
IP allowlists and the audit trail of refused signatures. Requests are signed by hand from the
published scheme (tests/signing.py), not with the server's code.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from support import start_server
from support.signing import PSS, load_private_key, new_ed25519, new_rsa, public_pem, sign_kalshi

P = "/trade-api/v2"
FULL = ["read", "write", "delete"]


@dataclass
class Key:
    """A Kalshi-usable key: id and private key; ``call`` signs a request to /trade-api/v2 with it."""

    id: str
    private: object
    client: object

    def call(self, method: str, path: str, *, timestamp: str | None = None, sign_path: str | None = None,
             headers: dict | None = None, client=None, **kw):
        signed = sign_kalshi(self.id, self.private, method, sign_path or P + path, timestamp=timestamp)
        return (client or self.client).request(method, P + path, headers={**signed, **(headers or {})}, **kw)

    def generate(self, **body):
        body.setdefault("name", f"g-{uuid.uuid4().hex[:6]}")
        return self.call("POST", "/api_keys/generate", json=body)

    def create(self, public_key: str, **body):
        body.setdefault("name", f"c-{uuid.uuid4().hex[:6]}")
        return self.call("POST", "/api_keys", json={"public_key": public_key, **body})

    def listing(self, **kw) -> dict[str, dict]:
        response = self.call("GET", "/api_keys", **kw)
        assert response.status_code == 200, response.text
        return {k["api_key_id"]: k for k in response.json()["api_keys"]}


def v1_key(client, user, scopes=FULL, **extra) -> Key:
    """A key pair issued through /v1 with the user's access token."""
    response = client.post("/v1/api-keys/generate", headers=user.headers,
                           json={"name": f"boot-{uuid.uuid4().hex[:6]}", "scopes": list(scopes), **extra})
    assert response.status_code == 201, response.text
    return Key(response.json()["key_id"], load_private_key(response.json()["private_key"]), client)


def from_generated(owner: Key, response) -> Key:
    assert response.status_code == 201, response.text
    body = response.json()
    return Key(body["api_key_id"], load_private_key(body["private_key"]), owner.client)


def error(response, status: int, code: str | None = None) -> dict:
    """Assert a Kalshi error: exact status, JSON ``{"error": {"code", "message"}}``; return the inner dict."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str), body
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def audit_reasons(client, user, action="auth.key") -> list[dict]:
    response = client.get("/v1/audit-events", params={"action": action, "limit": 200}, headers=user.headers)
    assert response.status_code == 200, response.text
    return [e for e in response.json()["items"] if e["outcome"] == "refused"]


# --------------------------------------------------------------------------- success shapes


def test_success_statuses_and_bodies(client, users):
    user = users.create(usage_level="premier")
    key = v1_key(client, user)

    generated = key.generate(name="gen")
    assert generated.status_code == 201 and generated.headers["content-type"].startswith("application/json")
    body = generated.json()
    uuid.UUID(body["api_key_id"])
    assert body["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")  # PKCS#1
    private = load_private_key(body["private_key"])
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048

    listing = key.call("GET", "/api_keys")
    assert listing.status_code == 200
    items = {k["api_key_id"]: k for k in listing.json()["api_keys"]}
    assert set(items) == {key.id, body["api_key_id"]}
    item = items[body["api_key_id"]]
    assert item["name"] == "gen" and item["scopes"] == ["read", "write"]
    assert isinstance(item["api_key_id"], str) and all(isinstance(s, str) for s in item["scopes"])

    created = key.create(public_pem(new_rsa()), name="own")
    assert created.status_code == 201
    assert set(created.json()) >= {"api_key_id"} and "private_key" not in created.json()
    created_id = created.json()["api_key_id"]
    assert key.listing()[created_id]["name"] == "own"

    deleted = key.call("DELETE", f"/api_keys/{created_id}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert created_id not in key.listing()
    error(key.call("DELETE", f"/api_keys/{created_id}"), 404, "not_found")

    # The query string is not signed: a signature over the bare path admits ?fcm_subtrader_id=...
    assert key.call("GET", "/api_keys", params={"fcm_subtrader_id": "x"}).status_code == 200
    # A PKCS#1 public key is accepted too (leniently), stored as SPKI.
    pkcs1 = key.create(public_pem(new_rsa(), pkcs1=True))
    assert pkcs1.status_code == 201, pkcs1.text


def test_ed25519_generate_returns_pkcs8_and_signs(client, users):
    user = users.create()
    key = v1_key(client, user)
    response = key.generate(name="ed", key_type="ed25519")
    assert response.status_code == 201
    assert response.json()["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    ed = from_generated(key, response)
    assert ed.listing()[ed.id]["name"] == "ed"
    error(key.generate(key_type="dsa"), 400)


# --------------------------------------------------------------------------- scopes


def test_scopes_default_children_and_rules(client, users):
    user = users.create()
    key = v1_key(client, user)

    default = key.generate()
    assert default.status_code == 201
    assert key.listing()[default.json()["api_key_id"]]["scopes"] == ["read", "write"]

    for scopes in (["read::portfolio_balance", "write::trade"], ["read", "write", "write::transfer",
                   "read::block_trade_accept", "write::block_trade_accept"], ["read"]):
        response = key.generate(scopes=scopes)
        assert response.status_code == 201, (scopes, response.text)
        assert key.listing()[response.json()["api_key_id"]]["scopes"] == scopes

    # write without read; unknown scopes; not a list; empty.
    own_public = public_pem(new_rsa())
    for scopes in (["write"], ["write", "read::portfolio_balance"], ["admin"], ["read", "trading"], ["READ"],
                   ["read::"], ["read::Bad-Name"], "read", [1], []):
        error(key.generate(scopes=scopes), 400)
        error(key.create(own_public, scopes=scopes), 400)
    # trade is a scope (issue 19), implied by nothing: a key without it cannot grant it
    error(key.generate(scopes=["read", "trade"]), 403, "insufficient_scope")
    # Nothing was created by the refusals (3 + 1 bootstrap keys).
    assert len(key.listing()) == 5


def test_delete_needs_the_delete_scope(client, users):
    """Strongroom's decision: deleting a key needs `delete`, so Kalshi's default ["read","write"] cannot."""
    user = users.create()
    full = v1_key(client, user)
    default = from_generated(full, full.generate())  # ["read", "write"]
    victim = from_generated(full, full.generate())

    error(default.call("DELETE", f"/api_keys/{victim.id}"), 403, "insufficient_scope")
    assert victim.id in full.listing()
    # It may list and generate, but not grant more than it holds.
    assert default.generate().status_code == 201
    error(default.generate(scopes=FULL), 403, "insufficient_scope")
    # A read-only key lists but cannot generate; a child-scope-only key cannot manage keys.
    read_only = from_generated(full, full.generate(scopes=["read"]))
    assert victim.id in read_only.listing()
    error(read_only.generate(scopes=["read"]), 403, "insufficient_scope")
    child = from_generated(full, full.generate(scopes=["read::portfolio_balance"]))
    error(child.call("GET", "/api_keys"), 403, "insufficient_scope")

    assert full.call("DELETE", f"/api_keys/{victim.id}").status_code == 204
    # Scope refusals are audited.
    refusals = audit_reasons(client, user, action="auth.authorize")
    assert any(e["details"]["reason"] == "insufficient_scope" and e["actor_key_id"] == default.id for e in refusals)


# --------------------------------------------------------------------------- 400


def test_bad_bodies_are_400(client, users):
    user = users.create(usage_level="premier")
    key = v1_key(client, user)
    json_headers = {"content-type": "application/json"}

    error(key.call("POST", "/api_keys/generate", content=b"{not json", headers=json_headers), 400)
    error(key.call("POST", "/api_keys/generate", content=b"", headers=json_headers), 400)
    error(key.call("POST", "/api_keys/generate", json=["name"]), 400)
    error(key.call("POST", "/api_keys/generate", json={}), 400, "validation_failed")
    error(key.generate(name=""), 400)
    error(key.generate(name="   "), 400)
    error(key.generate(name="x" * 101), 400)
    error(key.generate(name=5), 400)
    error(key.call("POST", "/api_keys", json={"name": "no-key"}), 400)

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    odd_exponent = rsa.generate_private_key(public_exponent=3, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    private_pem = new_rsa().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()).decode()
    good = public_pem(new_rsa())
    for bad in ("not a pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                good.replace("A", "B", 5), public_pem(weak), public_pem(odd_exponent), public_pem(ec_key),
                private_pem, ""):
        response = key.create(bad)
        error(response, 400)
        body_lines = [line for line in bad.splitlines() if len(line) > 16 and "-----" not in line]
        assert not any(line in response.text for line in body_lines)  # the input is never echoed
    # Sub-account and FCM restrictions do not exist here: refused, never silently widened.
    error(key.call("POST", "/api_keys/generate", json={"name": "sub", "subaccount": 1}), 400, "validation_failed")
    error(key.call("POST", "/api_keys/generate", json={"name": "fcm", "fcm_subtrader_id": "x"}), 400)
    error(key.call("POST", "/api_keys", json={"name": "sub", "public_key": good, "subaccount": 0}), 400)
    # Only the bootstrap key exists.
    assert list(key.listing()) == [key.id]


# --------------------------------------------------------------------------- 401


def test_unauthenticated_requests_are_401(client, users):
    user = users.create()
    key = v1_key(client, user)
    path = "/api_keys"

    error(client.get(P + path), 401, "unauthenticated")
    # Only Kalshi signatures are accepted here: not the user's access token, nor a bearer key.
    error(client.get(P + path, headers=user.headers), 401)
    bearer = client.post("/v1/api-keys", headers=user.headers, json={"name": "bearer"}).json()
    error(client.get(P + path, headers={"Authorization": f"Bearer {bearer['secret']}"}), 401)
    error(client.get(P + path, headers={"X-API-Key": bearer["secret"]}), 401)

    good = sign_kalshi(key.id, key.private, "GET", P + path)
    for broken in ({"KALSHI-ACCESS-KEY": str(uuid.uuid4())},            # unknown key id
                   {"KALSHI-ACCESS-KEY": "not-a-key-id"},
                   {"KALSHI-ACCESS-KEY": bearer["key_id"]},             # a bearer key has no public key
                   {"KALSHI-ACCESS-SIGNATURE": "%%%not-base64%%%"},
                   {"KALSHI-ACCESS-SIGNATURE": ""},
                   {"KALSHI-ACCESS-TIMESTAMP": "soon"}):
        error(client.get(P + path, headers={**good, **broken}), 401, "unauthenticated")
    for missing in good:
        error(client.get(P + path, headers={k: v for k, v in good.items() if k != missing}), 401)

    # Signed over the wrong thing: another method, path without the prefix, path with the query,
    # another key's private key, PKCS#1 v1.5 instead of PSS.
    error(key.call("GET", path, sign_path="/api_keys"), 401)
    error(key.call("GET", path, sign_path=P + "/api_keys/generate"), 401)
    stamp = str(int(time.time() * 1000))
    with_query = (stamp + "GET" + P + path + "?limit=5").encode()
    error(client.get(P + path + "?limit=5", headers={
        "KALSHI-ACCESS-KEY": key.id, "KALSHI-ACCESS-TIMESTAMP": stamp,
        "KALSHI-ACCESS-SIGNATURE": base64.b64encode(key.private.sign(with_query, PSS, hashes.SHA256())).decode()}), 401)
    post_signed = sign_kalshi(key.id, key.private, "POST", P + path, timestamp=stamp)
    error(client.get(P + path, headers=post_signed), 401)
    error(client.get(P + path, headers={**sign_kalshi(key.id, new_rsa(), "GET", P + path)}), 401)
    message = (stamp + "GET" + P + path).encode()
    pkcs1 = base64.b64encode(key.private.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
    error(client.get(P + path, headers={"KALSHI-ACCESS-KEY": key.id, "KALSHI-ACCESS-TIMESTAMP": stamp,
                                        "KALSHI-ACCESS-SIGNATURE": pkcs1}), 401)
    # After all that, the key still works.
    assert key.id in key.listing()


def test_timestamp_window_and_replay(client, users, server):
    user = users.create()
    key = v1_key(client, user)
    now = time.time()

    def at(offset_seconds: float) -> str:
        return str(int((now + offset_seconds) * 1000))

    assert key.call("GET", "/api_keys", timestamp=at(-5)).status_code == 200  # inside the 30 s window
    error(key.call("GET", "/api_keys", timestamp=at(-120)), 401, "unauthenticated")  # stale
    error(key.call("GET", "/api_keys", timestamp=at(+120)), 401)  # from the future
    error(key.call("GET", "/api_keys", timestamp=str(int(now))), 401)  # seconds, not milliseconds
    # Timestamps that are "digits" to str.isdigit() but not to int(): 401, never a 500.
    good = sign_kalshi(key.id, key.private, "GET", P + "/api_keys")
    for stamp in (b"\xb2", b"1\xb9", b"9" * 5000, b"-1", b"1e12"):
        raw_headers = [(k.encode(), v.encode()) for k, v in good.items() if k != "KALSHI-ACCESS-TIMESTAMP"]
        error(client.get(P + "/api_keys", headers=raw_headers + [(b"KALSHI-ACCESS-TIMESTAMP", stamp)]), 401)

    headers = sign_kalshi(key.id, key.private, "GET", P + "/api_keys")
    assert client.get(P + "/api_keys", headers=headers).status_code == 200
    error(client.get(P + "/api_keys", headers=headers), 401)  # the very same signature again
    # A replayed signature is refused even for a request that would otherwise be valid and new.
    error(client.get(P + "/api_keys", headers=headers), 401)

    # The tampered case, for the audit trail below.
    raw = bytearray(base64.b64decode(headers["KALSHI-ACCESS-SIGNATURE"]))
    raw[7] ^= 0x80
    error(client.get(P + "/api_keys", headers={**headers, "KALSHI-ACCESS-TIMESTAMP": at(0),
                                                "KALSHI-ACCESS-SIGNATURE": base64.b64encode(bytes(raw)).decode()}),
          401)

    server.core.audit.flush_refusals()  # refusals are aggregated per client, reason and minute, counts batched
    refusals = audit_reasons(client, user)
    reasons = {e["details"]["reason"] for e in refusals}
    assert {"stale_timestamp", "replayed_signature", "bad_signature"} <= reasons, reasons
    for event in refusals:
        assert event["actor_key_id"] == key.id and event["actor_user_id"] == user.id
        assert event["details"]["path"] == P + "/api_keys" and event["details"]["method"] == "GET"
        assert "KALSHI" not in str(event) and headers["KALSHI-ACCESS-SIGNATURE"] not in str(event)
    assert sum(e["details"]["count"] for e in refusals if e["details"]["reason"] == "replayed_signature") == 2


# --------------------------------------------------------------------------- 403


def test_kalshi_asks_premier_or_the_operators_level_if_higher(client, users, server):
    """Issue 22.4: the Kalshi surface passes its premier rule to the service; an operator's higher level wins."""
    premier = users.create(usage_level="premier")
    assert v1_key(client, premier).create(public_pem(new_rsa())).status_code == 201
    raised = start_server(data_dir=server.settings.data_dir, database_url=server.settings.database_url,
                          public_key_upload_level="market_maker")
    try:
        with raised.client() as c:
            refused = error(v1_key(c, premier).create(public_pem(new_rsa())), 403, "insufficient_usage_level")
            assert "market_maker" in refused["message"]
            maker = users.create(usage_level="market_maker")
            assert v1_key(c, maker).create(public_pem(new_ed25519())).status_code == 201
    finally:
        raised.stop()


def test_usage_level_gates_create_not_generate(client, users, server):
    basic = users.create()
    key = v1_key(client, basic)
    error(key.create(public_pem(new_rsa())), 403, "insufficient_usage_level")
    error(key.create(public_pem(new_ed25519())), 403, "insufficient_usage_level")
    assert key.generate().status_code == 201
    assert key.generate(key_type="ed25519").status_code == 201
    assert len(key.listing()) == 3
    # A level change reaches signed requests once the key cache refreshes (design: within 1 s).
    for level, status in (("advanced", 403), ("premier", 201), ("market_maker", 201), ("basic", 403)):
        server.core.users.set_usage_level(_admin(server), basic.id, level)
        time.sleep(server.settings.key_cache_ttl_seconds + 0.1)
        response = key.create(public_pem(new_rsa()))
        assert response.status_code == status, (level, response.text)
    # An admin may always.
    admin = users.create(admin=True)
    assert v1_key(client, admin).create(public_pem(new_rsa())).status_code == 201


def _admin(server):
    from strongroom.principal import Principal

    return Principal(user_id=0, username="test-operator", is_admin=True, client_ip="test", scheme="cli")


def test_ip_allowlist_applies_to_kalshi_signatures(client, users):
    user = users.create()
    outside = v1_key(client, user, ip_allowlist=["10.0.0.0/8"])
    inside = v1_key(client, user, ip_allowlist=["127.0.0.0/8", "::1/128"])
    error(outside.call("GET", "/api_keys"), 403, "forbidden")
    error(outside.generate(), 403)
    assert inside.call("GET", "/api_keys").status_code == 200
    assert any(e["details"]["reason"] == "ip_not_allowed" and e["actor_key_id"] == outside.id
               for e in audit_reasons(client, user))


# --------------------------------------------------------------------------- 404 and ownership


def test_unknown_and_foreign_key_ids_are_404(client, users):
    alice, bob = users.create(), users.create()
    a, b = v1_key(client, alice), v1_key(client, bob)
    a_generated = from_generated(a, a.generate())

    error(a.call("DELETE", f"/api_keys/{uuid.uuid4()}"), 404, "not_found")
    foreign = b.call("DELETE", f"/api_keys/{a_generated.id}")
    unknown = b.call("DELETE", f"/api_keys/{uuid.uuid4()}")
    error(foreign, 404, "not_found")
    assert foreign.json() == unknown.json()  # indistinguishable from an unknown id
    # Bob sees only his keys; Alice's key survived and still works.
    assert list(b.listing()) == [b.id]
    assert set(a.listing()) == {a.id, a_generated.id}
    assert a_generated.call("GET", "/api_keys").status_code == 200
    # Unknown routes and methods under the prefix answer in Kalshi's shape too.
    error(a.call("GET", "/no_such_thing"), 404)
    error(a.call("PUT", "/api_keys"), 405)
    error(a.call("POST", "/api_keys/generate", content=b"{" + b" " * 70_000 + b"}",
                 headers={"content-type": "application/json"}), 413)


# --------------------------------------------------------------------------- one core with /v1


def test_same_keys_as_v1(client, users):
    user = users.create(usage_level="premier")
    key = v1_key(client, user)
    generated = key.generate(name="kalshi-gen", scopes=["read", "write::trade"]).json()["api_key_id"]
    created = key.create(public_pem(new_ed25519()), name="kalshi-own").json()["api_key_id"]
    bearer = client.post("/v1/api-keys", headers=user.headers, json={"name": "v1-bearer"}).json()["key_id"]

    native = client.get("/v1/api-keys", headers=user.headers, params={"limit": 200})
    assert native.status_code == 200
    by_id = {k["key_id"]: k for k in native.json()["items"]}
    assert set(by_id) == {key.id, generated, created, bearer}
    assert (by_id[generated]["kind"], by_id[generated]["name"], by_id[generated]["scopes"]) == \
        ("rsa", "kalshi-gen", ["read", "write::trade"])
    assert by_id[created]["kind"] == "ed25519" and by_id[created]["public_key"].startswith("-----BEGIN PUBLIC KEY")
    kalshi = key.listing()
    assert set(kalshi) == set(by_id)
    for key_id, item in kalshi.items():
        assert item["name"] == by_id[key_id]["name"] and item["scopes"] == by_id[key_id]["scopes"]

    # Deleting on one surface removes it from the other.
    assert client.delete(f"/v1/api-keys/{generated}", headers=user.headers).status_code == 204
    assert generated not in key.listing()
    assert key.call("DELETE", f"/api_keys/{bearer}").status_code == 204
    assert client.get(f"/v1/api-keys/{bearer}", headers=user.headers).status_code == 404
    # A /v1 change (disable) takes effect for Kalshi signatures.
    own = from_generated(key, key.generate())
    assert client.patch(f"/v1/api-keys/{own.id}", headers=user.headers, json={"enabled": False}).status_code == 200
    error(own.call("GET", "/api_keys"), 401)


# --------------------------------------------------------------------------- limits (own servers, same DB)


def shared(server, **overrides):
    return start_server(data_dir=server.settings.data_dir, database_url=server.settings.database_url, **overrides)


def test_rate_limit_per_key_is_429(server, client, users):
    user = users.create()
    key, other = v1_key(client, user), v1_key(client, user)
    limited = shared(server, rate_limit_per_key="2/minute")
    try:
        with limited.client() as c:
            assert key.call("GET", "/api_keys", client=c).status_code == 200
            assert key.call("GET", "/api_keys", client=c).status_code == 200
            refused = key.call("GET", "/api_keys", client=c)
            error(refused, 429, "rate_limited")
            if "retry-after" in refused.headers:
                assert int(refused.headers["retry-after"]) >= 1
            error(key.call("POST", "/api_keys/generate", client=c, json={"name": "x"}), 429)
            assert other.call("GET", "/api_keys", client=c).status_code == 200  # per key
    finally:
        limited.stop()
    assert any(e["details"]["reason"] == "rate_limited" for e in audit_reasons(client, user))


def test_per_user_key_cap_is_400(server, client, users):
    user = users.create(usage_level="premier")
    key = v1_key(client, user)  # 1 of 2
    capped = shared(server, max_api_keys_per_user=2)
    try:
        with capped.client() as c:
            second = key.call("POST", "/api_keys/generate", client=c, json={"name": "second"})
            assert second.status_code == 201  # 2 of 2
            error(key.call("POST", "/api_keys/generate", client=c, json={"name": "third"}), 400, "limit_exceeded")
            error(key.call("POST", "/api_keys", client=c, json={"name": "third", "public_key": public_pem(new_rsa())}),
                  400, "limit_exceeded")
            assert len(key.listing(client=c)) == 2
            deleted = key.call("DELETE", f"/api_keys/{second.json()['api_key_id']}", client=c)
            assert deleted.status_code == 204
            assert key.call("POST", "/api_keys/generate", client=c, json={"name": "again"}).status_code == 201
    finally:
        capped.stop()
    # Another user is not affected by this user's count.
    assert v1_key(client, users.create()).generate().status_code == 201


def test_cli_generated_key_is_kalshi_usable(server, users, tmp_path):
    """`strongroom keys generate --scopes` reaches the key; the private key signs at once; no overwrite."""
    from support import run_cli

    user = users.create()
    out = tmp_path / "k.pem"
    env = {"STRONGROOM_DATA_DIR": str(server.settings.data_dir), "STRONGROOM_DATABASE_URL": server.settings.database_url,
           "STRONGROOM_ARGON2_TIME_COST": "1", "STRONGROOM_ARGON2_MEMORY_KIB": "1024", "STRONGROOM_ARGON2_PARALLELISM": "1"}
    done = run_cli("keys", "generate", "--user", user.username, "--name", "cli", "--out", str(out),
                   "--scopes", "read,write::trade", "--key-type", "ed25519", env=env)
    assert done.returncode == 0, done.stderr
    assert out.read_text().startswith("-----BEGIN PRIVATE KEY-----") and out.stat().st_mode & 0o777 == 0o600
    with server.client() as c:
        key = Key(done.stdout.strip(), load_private_key(out.read_text()), c)
        assert key.listing()[key.id]["scopes"] == ["read", "write::trade"]
    before = out.read_text()
    again = run_cli("keys", "generate", "--user", user.username, "--name", "cli", "--out", str(out), env=env)
    assert again.returncode != 0 and "exists" in again.stderr and out.read_text() == before
    # An unwritable --out fails before any key is made (its private key would be lost).
    nowhere = run_cli("keys", "generate", "--user", user.username, "--name", "lost", "--out",
                      str(tmp_path / "missing" / "k.pem"), env=env)
    assert nowhere.returncode != 0 and "cannot write" in nowhere.stderr
    with server.client() as c:
        assert [k["name"] for k in key.listing(client=c).values()] == ["cli"]


def test_a_key_holding_trade_is_listed_as_write_trade(client, users):
    """Issue 19: Kalshi has no ``trade`` scope; its key listing shows ours as ``write::trade`` (once), while
    /v1 shows what the key holds. A ``write::trade`` grant stays what it was: it is not ``trade``."""
    user = users.create()
    key = v1_key(client, user)
    trader = client.post("/v1/api-keys", headers=user.headers,
                         json={"name": "trader", "scopes": ["read", "trade", "write::trade"]}).json()["key_id"]
    old = client.post("/v1/api-keys", headers=user.headers,
                      json={"name": "old", "scopes": ["read", "write::trade"]}).json()["key_id"]
    listed = key.listing()
    assert listed[trader]["scopes"] == ["read", "write::trade"]
    assert listed[old]["scopes"] == ["read", "write::trade"]
    native = {k["key_id"]: k["scopes"] for k in client.get("/v1/api-keys", headers=user.headers).json()["items"]}
    assert native[trader] == ["read", "trade", "write::trade"] and native[old] == ["read", "write::trade"]
