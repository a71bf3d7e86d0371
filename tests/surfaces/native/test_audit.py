"""Issue 2, point 7: the audit log over real HTTP: what is recorded, who sees it, pagination."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx

PROBLEM = "application/problem+json"


def new_key(mock) -> dict:
    tag = uuid.uuid4().hex
    creds = {"api_key": f"audit-key-{tag}", "secret": f"audit-secret-{tag}"}
    response = httpx.post(f"{mock.url}/_mock/accounts", json={"exchange": "binance", **creds}, timeout=10)
    assert response.status_code == 201
    return creds


def events(client, headers, *, limit: int = 200, stop=None, max_pages: int = 50, **params) -> list[dict]:
    """Every event visible with ``headers`` (newest first), following cursors; ``stop(items)`` ends early."""
    items, cursor = [], None
    for _ in range(max_pages):
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        response = client.get("/v1/audit-events", headers=headers, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor or (stop and stop(items)):
            break
    return items


def find(items: list[dict], action: str, outcome: str | None = None, **match) -> list[dict]:
    out = []
    for event in items:
        if event["action"] != action or (outcome and event["outcome"] != outcome):
            continue
        if all(event.get(k) == v or event["details"].get(k) == v for k, v in match.items()):
            out.append(event)
    return out


def test_account_lifecycle_is_audited_with_ip_and_outcome(client, users, mock_exchange):
    user = users.create()
    creds = new_key(mock_exchange)
    wrong = {**creds, "secret": "wrong-" + uuid.uuid4().hex}
    assert client.post("/v1/exchange-accounts", headers=user.headers,
                       json={"exchange": "binance", "credentials": wrong}).status_code == 400
    account = client.post("/v1/exchange-accounts", headers=user.headers,
                          json={"exchange": "binance", "credentials": creds, "name": "Audited"}).json()
    aid = account["id"]
    target = f"account:{aid}"
    url = f"/v1/exchange-accounts/{aid}"
    assert client.patch(url, headers=user.headers, json={"name": "Renamed"}).status_code == 200
    fresh = new_key(mock_exchange)
    assert client.post(f"{url}/rotate", headers=user.headers, json={"credentials": fresh}).status_code == 200
    assert client.post(f"{url}/disable", headers=user.headers).status_code == 200
    assert client.post(f"{url}/enable", headers=user.headers).status_code == 200
    assert client.post(f"{url}/revalidate", headers=user.headers).status_code == 200
    assert client.delete(url, headers=user.headers).status_code == 200

    mine = events(client, user.headers)
    expected = {
        ("auth.sign_in", "ok"): None,
        ("account.connect", "refused"): None,
        ("account.connect", "ok"): target,
        ("account.rename", "ok"): target,
        ("account.rotate", "ok"): target,
        ("account.disable", "ok"): target,
        ("account.enable", "ok"): target,
        ("account.revalidate", "ok"): target,
        ("account.disconnect", "ok"): target,
    }
    for (action, outcome), tgt in expected.items():
        found = find(mine, action, outcome)
        if tgt:
            found = [e for e in found if e["target"] == tgt]
        assert found, f"no {action}/{outcome} event"
        for event in found:
            assert event["client_ip"] == "127.0.0.1", event
            assert event["actor_user_id"] == user.id
            datetime.fromisoformat(event["at"])
    refused = find(mine, "account.connect", "refused")[0]
    assert refused["details"]["reason"] == "invalid_credentials"
    assert refused["details"]["exchange"] == "binance"
    assert find(mine, "account.rename", "ok", target=target)[0]["details"] == {"from": "Audited", "to": "Renamed"}
    assert find(mine, "account.disable", "ok", target=target)[0]["details"]["to"] == "disabled"

    # newest first
    ids = [e["id"] for e in mine]
    assert ids == sorted(ids, reverse=True)
    # never a secret in the log
    text = json.dumps(mine)
    for secret in (creds["secret"], wrong["secret"], fresh["secret"], creds["api_key"], fresh["api_key"],
                   user.password, user.token):
        assert secret not in text


def test_sign_ins_ok_and_failed_are_audited(client, users):
    admin = users.create(admin=True)
    user = users.create(sign_in=False)
    since = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    assert client.post("/v1/auth/token", data={"username": user.username, "password": "wrong" + user.password}
                       ).status_code == 401
    assert client.get("/v1/me", auth=(user.username, "bad-" + user.password)).status_code == 401
    token = client.post("/v1/auth/token", data={"username": user.username, "password": user.password})
    assert token.status_code == 200
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

    ok = find(events(client, headers, action="auth.sign_in"), "auth.sign_in", "ok")
    assert len(ok) == 1 and ok[0]["client_ip"] == "127.0.0.1" and ok[0]["actor_user_id"] == user.id

    def has_failures(items):
        return len([e for e in find(items, "auth.sign_in", "failed")
                    if e["details"].get("username") == user.username]) >= 2

    failed = [e for e in find(events(client, admin.headers, action="auth.sign_in", since=since, stop=has_failures),
                              "auth.sign_in", "failed")
              if e["details"].get("username") == user.username]
    assert len(failed) >= 2
    assert {e["details"].get("scheme") for e in failed} >= {"token", "basic"}
    for event in failed:
        assert event["client_ip"] == "127.0.0.1" and event["outcome"] == "failed"
        assert user.password not in json.dumps(event) and "wrong" not in json.dumps(event)
    # the targeted user sees the failed attempts on their own account too
    own_failed = find(events(client, headers, action="auth.sign_in"), "auth.sign_in", "failed")
    assert len(own_failed) >= 2 and all(e["actor_user_id"] == user.id for e in own_failed)


def test_users_see_only_their_own_events_and_admins_see_all(client, users, mock_exchange):
    alice, bob = users.create(), users.create()
    admin = users.create(admin=True)
    account = client.post("/v1/exchange-accounts", headers=bob.headers,
                          json={"exchange": "binance", "credentials": new_key(mock_exchange)}).json()
    bob_target = f"account:{account['id']}"

    alices = events(client, alice.headers)
    assert alices, "alice has at least her sign-in"
    assert all(e["actor_user_id"] == alice.id for e in alices)
    assert not [e for e in alices if e["target"] == bob_target]
    assert not find(events(client, alice.headers, action="account.connect"), "account.connect")

    def sees_bob(items):
        return any(e["target"] == bob_target for e in items)

    admins = events(client, admin.headers, action="account.connect", stop=sees_bob)
    bobs = [e for e in admins if e["target"] == bob_target]
    assert bobs and bobs[0]["actor_user_id"] == bob.id and bobs[0]["outcome"] == "ok"
    assert client.get("/v1/audit-events").status_code == 401


def test_a_key_bound_to_accounts_reads_only_events_about_them(client, users):
    """Issue 22.3: a bound key reads the events about its accounts and the keys it sees, never those about
    the user's other accounts and keys (nor the user's sign-ins)."""
    from support.factories import connect_bitmex

    user = users.create()
    mine, other = connect_bitmex(client, user), connect_bitmex(client, user)
    for account_id in (mine, other):
        renamed = client.patch(f"/v1/exchange-accounts/{account_id}", headers=user.headers, json={"name": "renamed"})
        assert renamed.status_code == 200, renamed.text

    def key(**body) -> dict:
        response = client.post("/v1/api-keys", headers=user.headers, json={"name": "k", "scopes": ["read"], **body})
        assert response.status_code == 201, response.text
        return response.json()

    bound, elsewhere, unbound = key(account_ids=[mine]), key(account_ids=[other]), key()
    auth = {"Authorization": f"Bearer {bound['secret']}"}
    assert client.post(f"/v1/exchange-accounts/{mine}/disable", headers=auth).status_code == 403  # read only
    seen = events(client, auth)
    targets = {e["target"] for e in seen}
    assert {f"account:{mine}", f"api_key:{bound['key_id']}"} <= targets
    assert targets <= {f"account:{mine}", f"api_key:{bound['key_id']}", None}, targets
    assert all(e["target"] is not None or e["actor_key_id"] == bound["key_id"] for e in seen)
    # what the user's session sees includes the rest
    everything = {e["target"] for e in events(client, user.headers)}
    assert {f"account:{other}", f"api_key:{elsewhere['key_id']}", f"api_key:{unbound['key_id']}"} <= everything
    followed = client.get("/v1/audit-events", headers=auth, params={"limit": 200, "action": "account.rename"})
    assert [e["target"] for e in followed.json()["items"]] == [f"account:{mine}"]


def test_audit_events_cursor_pagination(client, users):
    user = users.create()
    for i in range(4):
        aid = client.post("/v1/exchange-accounts", headers=user.headers,
                          json={"exchange": "bitmex", "name": f"acct {i}",
                                "credentials": {"api_key": uuid.uuid4().hex, "secret": "s"}}).json()["id"]
        client.patch(f"/v1/exchange-accounts/{aid}", headers=user.headers, json={"name": f"renamed {i}"})
    everything = events(client, user.headers)
    assert len(everything) >= 9  # sign-in + 4 connects + 4 renames

    paged, cursor, pages = [], None, 0
    while True:
        response = client.get("/v1/audit-events", headers=user.headers,
                              params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200
        page = response.json()
        assert 1 <= len(page["items"]) <= 2
        paged += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [e["id"] for e in paged] == [e["id"] for e in everything]
    assert len({e["id"] for e in paged}) == len(paged)
    assert pages == (len(everything) + 1) // 2

    renames = events(client, user.headers, action="account.rename")
    assert len(renames) == 4 and all(e["action"] == "account.rename" for e in renames)
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert events(client, user.headers, since=future) == []
    bad = client.get("/v1/audit-events", headers=user.headers, params={"cursor": "%%%"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith(PROBLEM)
