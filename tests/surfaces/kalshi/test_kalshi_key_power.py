"""The key-management rule on the Kalshi surface (issue 13 item 1): a key deletes only keys no more
powerful than itself, and keys it generates inherit its limits. The rule lives in the service; this
checks that the surface gets it, in Kalshi's error shape."""

from __future__ import annotations

import uuid

import httpx
from support.signing import load_private_key, sign_kalshi

P = "/trade-api/v2"
FULL = ["read", "write", "delete"]


def v1_key(client: httpx.Client, user, **body) -> tuple[str, object]:
    """A key pair issued through /v1 with the user's access token: (key id, private key)."""
    response = client.post("/v1/api-keys/generate", headers=user.headers,
                           json={"name": f"boot-{uuid.uuid4().hex[:6]}", "scopes": FULL, **body})
    assert response.status_code == 201, response.text
    return response.json()["key_id"], load_private_key(response.json()["private_key"])


def call(client: httpx.Client, key: tuple[str, object], method: str, path: str, **kw) -> httpx.Response:
    return client.request(method, P + path, headers=sign_kalshi(key[0], key[1], method, P + path), **kw)


def test_a_restricted_kalshi_key_cannot_delete_a_wider_key(client, users):
    user = users.create()
    restricted = v1_key(client, user, ip_allowlist=["127.0.0.0/8"])
    wider = v1_key(client, user)  # no allowlist: any address
    response = call(client, restricted, "DELETE", f"/api_keys/{wider[0]}")
    assert response.status_code == 403, response.text
    assert response.json() == {"error": {"code": "insufficient_scope", "message": response.json()["error"]["message"]}}
    assert "ip_allowlist" in response.json()["error"]["message"]
    assert call(client, wider, "GET", "/api_keys").status_code == 200  # still there and working

    # what it generates inherits its allowlist, so it may delete that
    generated = call(client, restricted, "POST", "/api_keys/generate", json={"name": "child"})
    assert generated.status_code == 201, generated.text
    child_id = generated.json()["api_key_id"]
    got = client.get(f"/v1/api-keys/{child_id}", headers=user.headers).json()
    assert got["ip_allowlist"] == ["127.0.0.0/8"]
    assert call(client, restricted, "DELETE", f"/api_keys/{child_id}").status_code == 204
    # the wider key may delete the restricted one
    assert call(client, wider, "DELETE", f"/api_keys/{restricted[0]}").status_code == 204


def test_a_key_bound_to_accounts_lists_and_deletes_only_keys_within_them(client, users):
    """Issue 22.3: a key bound to accounts does not see the user's other keys (Kalshi's GET /api_keys
    lists names and scopes); one beyond its binding is 404 to it, as if it did not exist."""
    from support.factories import connect_bitmex

    user = users.create()
    mine, other = connect_bitmex(client, user), connect_bitmex(client, user)
    bound = v1_key(client, user, account_ids=[mine])
    sibling = v1_key(client, user, account_ids=[mine])
    elsewhere = v1_key(client, user, account_ids=[other])
    unbound = v1_key(client, user)
    response = call(client, bound, "GET", "/api_keys")
    assert response.status_code == 200, response.text
    assert {k["api_key_id"] for k in response.json()["api_keys"]} == {bound[0], sibling[0]}
    for beyond in (elsewhere, unbound):
        response = call(client, bound, "DELETE", f"/api_keys/{beyond[0]}")
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"
    # an unbound key still lists every key of its user
    response = call(client, unbound, "GET", "/api_keys")
    assert {k["api_key_id"] for k in response.json()["api_keys"]} == {bound[0], sibling[0], elsewhere[0], unbound[0]}
    assert call(client, bound, "DELETE", f"/api_keys/{sibling[0]}").status_code == 204
