"""State changes racing themselves over real HTTP, on SQLite and PostgreSQL (issue 13 items 4 and 7,
issue 8 item 5): each change takes effect exactly once, whatever the database.

Every race is a bounded number of requests released together by a barrier; nothing is timed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import httpx
from sqlalchemy import select
from support import Server, start_server
from support.factories import connect_bitmex


def race(server: Server, n: int, call: Callable[[httpx.Client, int], httpx.Response]) -> list[httpx.Response]:
    """Send ``n`` requests at once (one client each, released together); return the responses in order."""
    barrier = Barrier(n)

    def one(i: int) -> httpx.Response:
        with server.client() as client:
            client.get("/healthz")  # connected before the barrier: the requests leave together
            barrier.wait(timeout=60)
            return call(client, i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def statuses(responses: list[httpx.Response]) -> list[int]:
    return sorted(r.status_code for r in responses)


def audit_events(server: Server, action: str, target: str) -> list[dict]:
    from strongroom.models import AuditEvent

    with server.core.db.session() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action == action, AuditEvent.target == target)
                               .order_by(AuditEvent.id))
        return [{"outcome": r.outcome, **r.details} for r in rows]




def make_key(client: httpx.Client, headers: dict[str, str], **body) -> dict:
    response = client.post("/v1/api-keys", json={"name": f"k-{uuid.uuid4().hex[:6]}", **body}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


# --------------------------------------------------------------------------- refresh tokens


def test_concurrent_refreshes_of_one_token_redeem_it_once(server, client, users):
    user = users.create()
    refresh = user.extra["refresh_token"]
    responses = race(server, 16, lambda c, i: c.post("/v1/auth/refresh", json={"refresh_token": refresh}))
    assert statuses(responses) == [200] + [401] * 15, [r.text for r in responses if r.status_code != 401]
    from strongroom.models import AuditEvent

    with server.core.db.session() as session:
        events = list(session.scalars(select(AuditEvent).where(
            AuditEvent.action == "auth.refresh", AuditEvent.actor_user_id == user.id)))
    assert sorted(e.outcome for e in events) == ["ok"] + ["refused"] * 15
    assert {e.details["reason"] for e in events if e.outcome == "refused"} == {"reused_refresh_token"}
    # the losers count as reuse of a leaked token: the family, the winner's new pair included, is revoked
    winner = next(r for r in responses if r.status_code == 200).json()
    assert client.get("/v1/me", headers=bearer(winner["access_token"])).status_code == 401
    assert client.post("/v1/auth/refresh", json={"refresh_token": winner["refresh_token"]}).status_code == 401


# --------------------------------------------------------------------------- exchange accounts


def test_32_concurrent_disconnects_succeed_once(server, client, users):
    user = users.create()
    account_id = connect_bitmex(client, user)
    responses = race(server, 32, lambda c, i: c.delete(f"/v1/exchange-accounts/{account_id}", headers=user.headers))
    assert statuses(responses) == [200] + [409] * 31, [r.text for r in responses if r.status_code != 409]
    assert all(r.json()["code"] == "conflict" for r in responses if r.status_code == 409)
    assert len(audit_events(server, "account.disconnect", f"account:{account_id}")) == 1
    got = client.get(f"/v1/exchange-accounts/{account_id}", headers=user.headers).json()
    assert got["status"] == "disconnected"


def test_concurrent_disables_change_the_status_once(server, client, users):
    user = users.create()
    account_id = connect_bitmex(client, user)
    responses = race(server, 16, lambda c, i: c.post(f"/v1/exchange-accounts/{account_id}/disable",
                                                     headers=user.headers))
    assert statuses(responses) == [200] * 16
    assert all(r.json()["status"] == "disabled" for r in responses)
    events = audit_events(server, "account.disable", f"account:{account_id}")
    assert len(events) == 16
    transitions = [e for e in events if e["from"] != e["to"]]
    assert transitions == [{"outcome": "ok", "from": "unverified", "to": "disabled"}], events


def test_concurrent_renames_each_start_from_the_name_before(server, client, users):
    user = users.create()
    account_id = connect_bitmex(client, user)
    original = client.get(f"/v1/exchange-accounts/{account_id}", headers=user.headers).json()["name"]
    responses = race(server, 16, lambda c, i: c.patch(f"/v1/exchange-accounts/{account_id}", json={"name": f"n{i}"},
                                                      headers=user.headers))
    assert statuses(responses) == [200] * 16
    events = audit_events(server, "account.rename", f"account:{account_id}")
    # applied one after another: each rename's "from" is the name the one before left (no lost update)
    assert [e["from"] for e in events] == [original] + [e["to"] for e in events[:-1]], events
    final = client.get(f"/v1/exchange-accounts/{account_id}", headers=user.headers).json()["name"]
    assert final == events[-1]["to"]


# --------------------------------------------------------------------------- API keys


def test_concurrent_deletes_of_a_key_succeed_once(server, client, users):
    user = users.create()
    key = make_key(client, user.headers)
    responses = race(server, 16, lambda c, i: c.delete(f"/v1/api-keys/{key['key_id']}", headers=user.headers))
    assert statuses(responses) == [204] + [404] * 15, [r.text for r in responses if r.status_code != 404]
    assert len(audit_events(server, "api_key.delete", f"api_key:{key['key_id']}")) == 1
    from strongroom.models import User

    with server.core.db.session() as session:
        assert session.get(User, user.id).api_key_count == 0


def test_concurrent_rolls_with_grace_lose_no_secret(server, client, users):
    user = users.create()
    key = make_key(client, user.headers)
    url = f"/v1/api-keys/{key['key_id']}/roll"
    responses = race(server, 8, lambda c, i: c.post(url, json={"grace_seconds": 600}, headers=user.headers))
    assert statuses(responses) == [200] * 8, [r.text for r in responses]
    secrets = [r.json()["secret"] for r in responses]
    assert len(set(secrets)) == 8
    # applied one after another: the last secret is current and the one before it is in its grace;
    # the original secret was rolled out of its grace by the second roll
    working = [s for s in secrets if client.get("/v1/me", headers=bearer(s)).status_code == 200]
    assert len(working) == 2, f"{len(working)} of the 8 rolled secrets work"
    assert client.get("/v1/me", headers=bearer(key["secret"])).status_code == 401
    assert len(audit_events(server, "api_key.roll", f"api_key:{key['key_id']}")) == 8


def test_concurrent_creations_never_exceed_the_cap(server, users):
    capped = start_server(data_dir=server.settings.data_dir, database_url=server.settings.database_url,
                          max_api_keys_per_user=3)
    try:
        user = users.create()
        with capped.client() as c:
            make_key(c, user.headers)
            responses = race(capped, 16, lambda c, i: c.post("/v1/api-keys", json={"name": f"k{i}"},
                                                             headers=user.headers))
            assert statuses(responses) == [201] * 2 + [400] * 14, [r.text for r in responses]
            assert all(r.json()["code"] == "limit_exceeded" for r in responses if r.status_code == 400)
            keys = c.get("/v1/api-keys", headers=user.headers).json()["items"]
            assert len(keys) == 3
            # a deletion gives the slot back, once
            assert c.delete(f"/v1/api-keys/{keys[0]['key_id']}", headers=user.headers).status_code == 204
            responses = race(capped, 8, lambda c, i: c.post("/v1/api-keys", json={"name": f"again{i}"},
                                                            headers=user.headers))
            assert statuses(responses) == [201] + [400] * 7
            assert len(c.get("/v1/api-keys", headers=user.headers).json()["items"]) == 3
    finally:
        capped.stop()
