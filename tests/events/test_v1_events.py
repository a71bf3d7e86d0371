"""GET /v1/events over real HTTP, on SQLite and PostgreSQL: newest first a page at a time, filtered by type
(repeated or a comma list; an unknown type is 422), a user's own events only, an admin's all (the
deployment's admin-only ones too), a key bound to accounts only those about its accounts, ``read`` needed."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from strongroom.enums import EventType
from strongroom.events import record


def make_key(client: httpx.Client, user: Any, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/api-keys", json={"name": "k", **body}, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()


def pages(client: httpx.Client, headers: dict[str, str], **params: Any) -> list[list[dict[str, Any]]]:
    """Every page of GET /v1/events with ``params``, following next_cursor."""
    found, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get("/v1/events", params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        found.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def test_a_user_pages_through_their_own_events_newest_first(client, users):
    alice, bob = users.create(), users.create()
    made = [make_key(client, alice, name=f"k{n}") for n in range(3)]
    assert client.delete(f"/v1/api-keys/{made[0]['key_id']}", headers=alice.headers).status_code == 204
    make_key(client, bob, name="bob's")
    got = pages(client, alice.headers, limit=2)
    assert [len(p) for p in got] == [2, 2]
    items = [e for p in got for e in p]
    assert [(e["type"], e["data"]["name"]) for e in items] == [
        ("api_key.revoked", "k0"), ("api_key.created", "k2"), ("api_key.created", "k1"), ("api_key.created", "k0")]
    assert all(e["user_id"] == alice.id and e["id"].startswith("evt_") for e in items)
    assert len({e["id"] for e in items}) == 4
    assert all(made[n]["secret"] not in str(items) for n in range(3))
    assert [e["data"]["name"] for e in pages(client, bob.headers)[0]] == ["bob's"]


def test_the_type_filter_takes_repeats_and_comma_lists_and_refuses_unknown_types(client, users):
    user = users.create()
    key = make_key(client, user)
    assert client.post(f"/v1/api-keys/{key['key_id']}/roll", json={}, headers=user.headers).status_code == 200
    assert client.delete(f"/v1/api-keys/{key['key_id']}", headers=user.headers).status_code == 204

    def types(params: Any) -> list[str]:
        response = client.get("/v1/events", params=params, headers=user.headers)
        assert response.status_code == 200, response.text
        return [e["type"] for e in response.json()["items"]]

    assert types({"type": "api_key.revoked"}) == ["api_key.revoked"]
    assert types([("type", "api_key.created"), ("type", "api_key.rolled")]) == ["api_key.rolled", "api_key.created"]
    assert types({"type": "api_key.created, api_key.revoked"}) == ["api_key.revoked", "api_key.created"]
    assert types({"type": "exchange_account.connected"}) == []
    for bad in ("api_key.exploded", "api_key.created,nope", "API_KEY.CREATED"):
        response = client.get("/v1/events", params={"type": bad}, headers=user.headers)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "validation_failed" and "type" in response.json()["errors"]
    for bad in ({"cursor": "not-a-cursor"}, {"limit": 0}, {"limit": 201}):
        response = client.get("/v1/events", params=bad, headers=user.headers)
        assert response.status_code == 422 and response.json()["code"] == "validation_failed"


def test_an_admin_sees_every_users_events_and_the_deployments_admin_only_ones(client, users, server):
    user, admin = users.create(), users.create(admin=True)
    key = make_key(client, user, name="the user's")
    with server.core.db.session() as session:
        rotated = record(session, EventType.MASTER_KEY_ROTATED, user_id=None, data={"version": 99})
        own_secret = record(session, EventType.API_KEY_CREATED, user_id=user.id, admin_only=True, data={})
    seen = [e for p in pages(client, admin.headers, type="master_key.rotated,api_key.created", limit=200)
            for e in p]
    ids = [e["id"] for e in seen]
    assert rotated.public_id in ids and own_secret.public_id in ids
    assert any(e["data"].get("key_id") == key["key_id"] for e in seen)
    assert next(e for e in seen if e["id"] == rotated.public_id)["user_id"] is None
    theirs = [e["id"] for p in pages(client, user.headers) for e in p]
    assert rotated.public_id not in theirs and own_secret.public_id not in theirs  # admin-only: not even one's own


def test_a_key_reads_events_with_read_scope_and_a_bound_key_only_its_accounts(client, users, mock_exchange):
    from support.exchange_mock import Mock

    user = users.create()
    mock = Mock(mock_exchange)
    accounts = []
    for _ in range(2):
        response = client.post("/v1/exchange-accounts", json={"exchange": "binance", "credentials": mock.new_key()},
                               headers=user.headers)
        assert response.status_code == 201, response.text
        accounts.append(response.json()["id"])
    bound = make_key(client, user, scopes=["read"], account_ids=[accounts[0]])
    writer = make_key(client, user, scopes=["write::orders"])
    seen = [e for p in pages(client, {"Authorization": f"Bearer {bound['secret']}"}) for e in p]
    assert [(e["type"], e["data"].get("account_id"), e["data"].get("key_id")) for e in seen] == [
        ("api_key.created", None, bound["key_id"]), ("exchange_account.connected", accounts[0], None)]
    everything = [e["type"] for p in pages(client, user.headers) for e in p]
    assert everything.count("exchange_account.connected") == 2 and everything.count("api_key.created") == 2
    refused = client.get("/v1/events", headers={"Authorization": f"Bearer {writer['secret']}"})
    assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"
    assert client.get("/v1/events").status_code == 401


def test_a_vendor_surface_connects_and_disconnects_through_the_capability_with_its_events(client, users):
    """The Trading App's wire format (HTTP Basic, seed 000): the same events as /v1, from the capability."""
    user = users.create()
    tag = uuid.uuid4().hex
    created = client.post(f"/user/{user.id}/accounts/new", headers=user.basic,
                          json={"Exchange": "BITMEX", "api_key": f"key-{tag}", "secret_key": f"secret-{tag}"})
    assert created.status_code == 200, created.text
    assert client.delete(f"/user/{user.id}/accounts/BITMEX", headers=user.basic).status_code == 200
    seen = pages(client, user.headers, type="exchange_account.connected,exchange_account.disconnected")[0]
    assert [e["type"] for e in seen] == ["exchange_account.disconnected", "exchange_account.connected"]
    assert seen[0]["data"]["account_id"] == seen[1]["data"]["account_id"]
    assert (seen[0]["data"]["from"], seen[0]["data"]["to"], seen[1]["data"]["status"]) == (
        "unverified", "disconnected", "unverified")
    assert tag not in str(seen)
