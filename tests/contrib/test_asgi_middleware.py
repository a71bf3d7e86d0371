"""strongroom.contrib.asgi.StrongroomAuth in front of a tiny ASGI app, verifying through a live
Strongroom (SQLite and PostgreSQL): the identity reaches the app, refusals are answered before it,
the client's address is the one checked, signed bodies reach the app intact, the positive cache is
short, and an unreachable Strongroom fails closed. The server itself never imports the module."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import httpx
import pytest
from support import ROOT
from support.factories import make_key
from support.signing import load_private_key, sign_hmac, sign_kalshi

from strongroom.contrib.asgi import StrongroomAuth

CLIENT = ("203.0.113.7", 50000)


@pytest.fixture(scope="module")
def verify_key(server, users):
    with server.client() as client:
        return make_key(client, users.create(admin=True), scopes=["verify"])["secret"]


async def echo(scope, receive, send) -> None:
    """The protected app: answers the identity it was given and the body it received."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    out = json.dumps({"identity": scope.get("state", {}).get("strongroom"), "body": b"".join(chunks).decode()}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": out})


def call(middleware: StrongroomAuth, requests: list[tuple[str, str, dict, bytes]]) -> list[httpx.Response]:
    """Send ``requests`` (method, path, headers, body) through ``middleware`` as the client CLIENT."""

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=middleware, client=CLIENT)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
                return [await http.request(m, p, headers=h, content=b) for m, p, h, b in requests]
        finally:
            await middleware.aclose()

    return asyncio.run(run())


def test_identity_reaches_the_app_and_refusals_do_not(server, client, users, verify_key):
    user = users.create()
    key = make_key(client, user, scopes=["read"], ip_allowlist=["203.0.113.0/24"])
    fenced = make_key(client, user, ip_allowlist=["198.51.100.0/24"])
    auth = StrongroomAuth(echo, url=server.url, verify_key=verify_key)
    ok, by_header, unknown, outside, none = call(auth, [
        ("GET", "/things?x=1", {"Authorization": f"Bearer {key['secret']}"}, b""),
        ("GET", "/things", {"X-API-Key": key["secret"]}, b""),
        ("GET", "/things", {"X-API-Key": "sr_" + "F" * 30}, b""),
        ("GET", "/things", {"X-API-Key": fenced["secret"]}, b""),
        ("GET", "/things", {}, b""),
    ])
    assert ok.status_code == 200, ok.text
    identity = ok.json()["identity"]
    assert identity == {"user_id": user.id, "key_id": key["key_id"], "scopes": ["read"], "account_ids": None,
                        "expires_at": None}
    assert by_header.status_code == 200
    assert (unknown.status_code, unknown.json()) == (401, {"error": "unknown_key"})
    assert (outside.status_code, outside.json()) == (403, {"error": "ip_not_allowed"})  # 203.0.113.7 is outside
    assert none.status_code == 401 and "identity" not in none.text

    scoped = StrongroomAuth(echo, url=server.url, verify_key=verify_key,
                            required_scopes=lambda scope: ["write"] if scope["method"] == "POST" else ["read"])
    get, post = call(scoped, [("GET", "/t", {"X-API-Key": key["secret"]}, b""),
                              ("POST", "/t", {"X-API-Key": key["secret"]}, b"{}")])
    assert get.status_code == 200
    assert (post.status_code, post.json()) == (403, {"error": "insufficient_scope"})


def test_signed_requests_with_their_body(server, client, users, verify_key):
    user = users.create()
    hkey = make_key(client, user, kind="hmac")
    generated = client.post("/v1/api-keys/generate", json={"name": "r", "key_type": "rsa"}, headers=user.headers).json()
    private = load_private_key(generated["private_key"])
    body = b'{"side": "buy"}'
    signed = sign_hmac(hkey["key_id"], hkey["secret"], "POST", "/orders?x=1", body)
    kalshi = sign_kalshi(generated["key_id"], private, "GET", "/portfolio?limit=1")
    auth = StrongroomAuth(echo, url=server.url, verify_key=verify_key)
    posted, replayed, tampered, kal = call(auth, [
        ("POST", "/orders?x=1", signed, body),
        ("POST", "/orders?x=1", signed, body),
        ("POST", "/orders?x=1", sign_hmac(hkey["key_id"], hkey["secret"], "POST", "/orders?x=1", b"{}"), body),
        ("GET", "/portfolio?limit=1", kalshi, b""),
    ])
    assert posted.status_code == 200, posted.text
    assert posted.json() == {"identity": {**posted.json()["identity"], "key_id": hkey["key_id"]}, "body": body.decode()}
    assert (replayed.status_code, replayed.json()) == (401, {"error": "replayed"})
    assert (tampered.status_code, tampered.json()) == (401, {"error": "bad_signature"})
    assert kal.status_code == 200 and kal.json()["identity"]["key_id"] == generated["key_id"]


def test_the_positive_cache_is_short_and_refusals_are_not_cached(server, client, users, verify_key):
    user = users.create()
    key = make_key(client, user)
    auth = StrongroomAuth(echo, url=server.url, verify_key=verify_key, cache_seconds=1.5)
    headers = {"X-API-Key": key["secret"]}

    async def run() -> list[int]:
        statuses = []
        transport = httpx.ASGITransport(app=auth, client=CLIENT)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
            statuses.append((await http.get("/a", headers=headers)).status_code)
            off = client.patch(f"/v1/api-keys/{key['key_id']}", json={"enabled": False}, headers=user.headers)
            assert off.status_code == 200
            statuses.append((await http.get("/a", headers=headers)).status_code)  # the cached verdict
            await asyncio.sleep(1.7)
            statuses.append((await http.get("/a", headers=headers)).status_code)  # asked again: revoked
            on = client.patch(f"/v1/api-keys/{key['key_id']}", json={"enabled": True}, headers=user.headers)
            assert on.status_code == 200
            await asyncio.sleep(1.1)  # Strongroom's own key cache (STRONGROOM_KEY_CACHE_TTL_SECONDS)
            statuses.append((await http.get("/a", headers=headers)).status_code)  # a refusal was not cached
        await auth.aclose()
        return statuses

    assert asyncio.run(run()) == [200, 200, 401, 200]


def test_a_credential_that_cannot_be_one_is_the_clients_refusal_not_an_outage(server, verify_key):
    """A header the verify API refuses as malformed (422: too long) is the client's 401, never a 503."""
    auth = StrongroomAuth(echo, url=server.url, verify_key=verify_key)
    (answer,) = call(auth, [("GET", "/a", {"X-API-Key": "sr_" + "A" * 9000}, b"")])
    assert (answer.status_code, answer.json()) == (401, {"error": "unknown_key"})


def test_an_unreachable_strongroom_fails_closed(server, verify_key):
    from support import free_port

    auth = StrongroomAuth(echo, url=f"http://127.0.0.1:{free_port()}", verify_key=verify_key, timeout=2)
    started = time.monotonic()
    (answer,) = call(auth, [("GET", "/a", {"X-API-Key": "sr_whatever"}, b"")])
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert time.monotonic() - started < 5
    # and a middleware whose own key is refused does not let anyone through either
    bad = StrongroomAuth(echo, url=server.url, verify_key="sr_" + "G" * 30)
    assert call(bad, [("GET", "/a", {}, b"")])[0].status_code == 503


def test_the_server_never_imports_the_middleware():
    code = "import sys, strongroom.app; app = strongroom.app.create_app(); " \
           "sys.exit(1 if any(m.startswith('strongroom.contrib') for m in sys.modules) else 0)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "STRONGROOM_DATA_DIR": "/nonexistent"},
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
