"""A key never acts above itself (issue 13 item 1), over real HTTP on /v1.

A principal authenticated by a key may change, roll or delete another key of its user only if that
key is no more powerful than itself (scopes, account binding, IP allowlist, expiry); it may not widen
a key beyond itself; and the keys it creates inherit its binding, allowlist and expiry unless
narrower ones are given. Sessions and passwords act on all of the user's keys. (Requests come from
127.0.0.1, inside every allowlist used here.)
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from support.factories import connect_bitmex

FULL = ["read", "write", "delete"]


def create(client: httpx.Client, headers: dict[str, str], **body) -> httpx.Response:
    body.setdefault("name", f"k-{uuid.uuid4().hex[:6]}")
    return client.post("/v1/api-keys", json=body, headers=headers)


def make(client: httpx.Client, headers: dict[str, str], **body) -> dict:
    response = create(client, headers, **body)
    assert response.status_code == 201, response.text
    return response.json()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def refused(response: httpx.Response, attribute: str) -> None:
    """Assert a 403 insufficient_scope problem that names the attribute that is too wide."""
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["code"] == "insufficient_scope", body
    assert attribute in body["detail"], body




def acts(client: httpx.Client, headers: dict[str, str], key_id: str, attribute: str) -> None:
    """Assert that ``headers`` can neither change, roll nor delete ``key_id`` (too wide in ``attribute``)."""
    url = f"/v1/api-keys/{key_id}"
    refused(client.patch(url, json={"name": "taken"}, headers=headers), attribute)
    refused(client.patch(url, json={"ip_allowlist": []}, headers=headers), attribute)
    refused(client.post(url + "/roll", json={}, headers=headers), attribute)
    refused(client.delete(url, headers=headers), attribute)


def test_a_bound_key_cannot_take_over_an_unbound_key(client, users):
    """The attack of the report: a read,write key bound to one account rolled an unbound key."""
    user = users.create()
    a1 = connect_bitmex(client, user)
    a2 = connect_bitmex(client, user)
    bound = make(client, user.headers, scopes=FULL, account_ids=[a1])
    unbound = make(client, user.headers, scopes=FULL)
    auth = bearer(bound["secret"])
    # beyond its accounts, a key is not even there for it (issue 22.3): 404 to change, roll or delete
    other = make(client, user.headers, scopes=FULL, account_ids=[a2])  # bound to another account
    for key in (unbound, other):
        url = f"/v1/api-keys/{key['key_id']}"
        for response in (client.patch(url, json={"name": "taken"}, headers=auth),
                         client.patch(url, json={"ip_allowlist": []}, headers=auth),
                         client.post(url + "/roll", json={}, headers=auth), client.delete(url, headers=auth)):
            assert response.status_code == 404, response.text

    # untouched: same secret, name and allowlist; it still works and still sees a2
    got = client.get(f"/v1/api-keys/{unbound['key_id']}", headers=user.headers).json()
    assert got["name"] == unbound["name"] and got["ip_allowlist"] == [] and got["hint"] == unbound["hint"]
    assert client.get(f"/v1/exchange-accounts/{a2}", headers=bearer(unbound["secret"])).status_code == 200
    assert client.get(f"/v1/exchange-accounts/{a2}", headers=auth).status_code == 404

    # a key within its power (its own child, bound to a1 by inheritance) it manages as before
    child = make(client, auth, scopes=["read"])
    assert child["account_ids"] == [a1]
    url = f"/v1/api-keys/{child['key_id']}"
    assert client.patch(url, json={"name": "renamed"}, headers=auth).status_code == 200
    assert client.post(url + "/roll", json={}, headers=auth).status_code == 200
    assert client.delete(url, headers=auth).status_code == 204
    # ...and itself
    assert client.post(f"/v1/api-keys/{bound['key_id']}/roll", json={}, headers=auth).status_code == 200


def test_scopes_are_compared_too(client, users):
    user = users.create()
    read_write = make(client, user.headers, scopes=["read", "write"])
    full = make(client, user.headers, scopes=FULL)
    auth = bearer(read_write["secret"])
    url = f"/v1/api-keys/{full['key_id']}"
    refused(client.patch(url, json={"name": "taken"}, headers=auth), "scopes")
    refused(client.post(url + "/roll", json={}, headers=auth), "scopes")
    # a narrower sibling is within reach; a child scope is covered by its broad parent
    narrow = make(client, user.headers, scopes=["read::portfolio_balance"])
    assert client.post(f"/v1/api-keys/{narrow['key_id']}/roll", json={}, headers=auth).status_code == 200
    # the session still manages everything
    assert client.post(url + "/roll", json={}, headers=user.headers).status_code == 200


def test_children_inherit_allowlist_and_expiry_and_cannot_ask_for_more(client, users):
    """The report's case: a key expiring in 2030, allowlisted to 127.0.0.0/8, minted an unlimited child."""
    user = users.create()
    cap = datetime(2030, 1, 1, tzinfo=UTC)
    parent = make(client, user.headers, scopes=FULL, ip_allowlist=["127.0.0.0/8"], expires_at=cap.isoformat())
    auth = bearer(parent["secret"])
    child = make(client, auth)
    assert child["ip_allowlist"] == ["127.0.0.0/8"]
    assert datetime.fromisoformat(child["expires_at"]) == cap
    assert client.get("/v1/me", headers=bearer(child["secret"])).status_code == 200

    refused(create(client, auth, ip_allowlist=[]), "ip_allowlist")  # empty: any address
    refused(create(client, auth, ip_allowlist=["10.0.0.0/8"]), "ip_allowlist")
    refused(create(client, auth, ip_allowlist=["127.0.0.0/8", "::1/128"]), "ip_allowlist")
    refused(create(client, auth, ip_allowlist=["0.0.0.0/0"]), "ip_allowlist")
    refused(create(client, auth, expires_at=(cap + timedelta(seconds=1)).isoformat()), "expires_at")
    narrower = make(client, auth, ip_allowlist=["127.0.0.1/32"], expires_at=(cap - timedelta(days=1)).isoformat())
    assert narrower["ip_allowlist"] == ["127.0.0.1/32"]
    assert datetime.fromisoformat(narrower["expires_at"]) == cap - timedelta(days=1)

    # updates by the key must not widen what it manages beyond itself
    url = f"/v1/api-keys/{child['key_id']}"
    refused(client.patch(url, json={"ip_allowlist": []}, headers=auth), "ip_allowlist")
    refused(client.patch(url, json={"ip_allowlist": ["0.0.0.0/0"]}, headers=auth), "ip_allowlist")
    refused(client.patch(url, json={"expires_at": None}, headers=auth), "expires_at")
    refused(client.patch(url, json={"expires_at": (cap + timedelta(days=1)).isoformat()}, headers=auth), "expires_at")
    narrowed = client.patch(url, json={"ip_allowlist": ["127.0.0.1/32"]}, headers=auth)
    assert narrowed.status_code == 200 and narrowed.json()["ip_allowlist"] == ["127.0.0.1/32"]
    got = client.get(url, headers=user.headers).json()
    assert got["ip_allowlist"] == ["127.0.0.1/32"] and datetime.fromisoformat(got["expires_at"]) == cap

    # keys without an allowlist or an expiry are wider than it: out of its reach
    open_ip = make(client, user.headers, scopes=FULL, expires_at=cap.isoformat())
    acts(client, auth, open_ip["key_id"], "ip_allowlist")
    no_expiry = make(client, user.headers, scopes=FULL, ip_allowlist=["127.0.0.0/8"])
    acts(client, auth, no_expiry["key_id"], "expires_at")
    # the session widens freely
    widened = client.patch(url, json={"ip_allowlist": [], "expires_at": None}, headers=user.headers)
    assert widened.status_code == 200 and widened.json()["ip_allowlist"] == []
    acts(client, auth, child["key_id"], "ip_allowlist")


def test_a_session_made_key_is_unlimited_and_its_children_are_not_capped(client, users):
    """Inheritance applies to keys made by keys only: a session's keys and their defaults are unchanged."""
    user = users.create()
    key = make(client, user.headers, scopes=FULL)
    assert key["ip_allowlist"] == [] and key["expires_at"] is None and key["account_ids"] is None
    child = make(client, bearer(key["secret"]))
    assert child["ip_allowlist"] == [] and child["expires_at"] is None and child["account_ids"] is None
