"""Issue 12: the TradrAPI-compatible keys surface at /tradr, over real HTTP on SQLite and PostgreSQL.

Account keys (bound to one exchange account) and user keys, on the core's keys: create (the key
shown once, later reads show its hash), get, list with paging and sorting, rename, delete, then the
deleted key refused; a key bound to one account refused on another (403); an IP allowlist enforced;
a read-only key refused on create; roles never widened; every bad input a 4xx in the NestJS shape.
"""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest
from support.factories import connect_bitmex

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ACCOUNT_FIELDS = {"id", "createdAt", "updatedAt", "roles", "accountId", "friendlyName", "apiKey", "ips"}
USER_FIELDS = {"id", "createdAt", "updatedAt", "roles", "userId", "friendlyName", "apiKey", "ips", "accountIds"}
PHRASES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
           422: "Unprocessable Entity", 429: "Too Many Requests"}


# --- helpers --------------------------------------------------------------------------------------------



def xkey(secret: str) -> dict[str, str]:
    return {"x-api-key": secret}


def nest(response: httpx.Response, status: int) -> dict:
    """Assert ``status`` and the NestJS error shape; return the body."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"statusCode", "message", "error"}, body
    assert body["statusCode"] == status and body["error"] == PHRASES[status], body
    assert isinstance(body["message"], str) and body["message"], body
    return body


def new_account_key(client, auth: dict[str, str], account_id: int, roles=("read", "write", "delete"),
                    name: str | None = None, **extra) -> dict:
    body = {"accountId": account_id, "roles": list(roles), **extra}
    if name is not None:
        body["friendlyName"] = name
    response = client.post("/tradr/accounts/api-keys", headers=auth, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def new_user_key(client, auth: dict[str, str], user_id: int, roles=("read", "write", "delete"), **extra) -> dict:
    response = client.post("/tradr/users/api-keys", headers=auth,
                           json={"userId": user_id, "roles": list(roles), **extra})
    assert response.status_code == 201, response.text
    return response.json()


def hashed(server, plaintext: str) -> str:
    return server.core.hasher.token(plaintext)


# --- the life of an account key ----------------------------------------------------------------------

def test_account_key_create_get_rename_delete(server, users, client):
    user = users.create()
    account = connect_bitmex(client, user)

    created = client.post("/tradr/accounts/api-keys", headers=user.headers,
                          json={"accountId": account, "friendlyName": "Reporting Key", "roles": ["read", "write",
                                                                                                 "delete"],
                                "ips": []})
    assert created.status_code == 201, created.text
    key = created.json()
    assert set(key) == ACCOUNT_FIELDS  # lastUsedAt: never used yet
    assert isinstance(key["id"], int) and key["accountId"] == account
    assert key["roles"] == ["read", "write", "delete"] and key["ips"] == [] and key["friendlyName"] == "Reporting Key"
    assert ISO_MS.match(key["createdAt"]) and ISO_MS.match(key["updatedAt"])
    plaintext = key["apiKey"]
    assert plaintext.startswith("sr_")

    # later reads show the stored hash, never the key; the key itself authenticates
    got = client.get(f"/tradr/accounts/api-keys/{key['id']}", headers=xkey(plaintext))
    assert got.status_code == 200, got.text
    seen = got.json()
    assert seen["apiKey"] == hashed(server, plaintext) and plaintext not in got.text
    assert {k: v for k, v in seen.items() if k not in ("apiKey", "lastUsedAt")} == \
        {k: v for k, v in key.items() if k != "apiKey"}
    # the same key on /v1: one key store
    native = client.get("/v1/api-keys", headers=user.headers, params={"limit": 200}).json()["items"]
    assert [k["account_ids"] for k in native if k["name"] == "Reporting Key"] == [[account]]

    # lastUsedAt once the use is recorded
    server.core.usage.flush()
    used = client.get(f"/tradr/accounts/api-keys/{key['id']}", headers=user.headers).json()
    assert ISO_MS.match(used["lastUsedAt"])

    # rename
    renamed = client.patch(f"/tradr/accounts/api-keys/{key['id']}", headers=xkey(plaintext),
                           json={"friendlyName": "My renamed key"})
    assert renamed.status_code == 200 and renamed.json() is True
    after = client.get(f"/tradr/accounts/api-keys/{key['id']}", headers=user.headers).json()
    assert after["friendlyName"] == "My renamed key"
    assert datetime.fromisoformat(after["updatedAt"]) >= datetime.fromisoformat(after["createdAt"])

    # delete (by another key of the account), then the deleted key is refused everywhere
    other = new_account_key(client, user.headers, account)
    deleted = client.delete(f"/tradr/accounts/api-keys/{key['id']}", headers=xkey(other["apiKey"]))
    assert deleted.status_code == 200 and deleted.json() is True
    nest(client.get(f"/tradr/accounts/api-keys/{key['id']}", headers=user.headers), 404)
    nest(client.delete(f"/tradr/accounts/api-keys/{key['id']}", headers=user.headers), 404)
    refused = nest(client.get(f"/tradr/accounts/{account}/api-keys", headers=xkey(plaintext)), 401)
    assert plaintext not in str(refused)
    assert client.get("/v1/me", headers={"X-API-Key": plaintext}).status_code == 401


def test_account_key_list_paging_and_sorting(server, users, client):
    user = users.create()
    account, elsewhere = connect_bitmex(client, user), connect_bitmex(client, user)
    names = [f"k{n:02d}-{uuid.uuid4().hex[:4]}" for n in range(12)]
    ids = [new_account_key(client, user.headers, account, roles=("read",), name=n)["id"] for n in names]
    new_account_key(client, user.headers, elsewhere)  # another account's key: not listed
    new_user_key(client, user.headers, user.id)  # a user key (every account): not an account key

    first = client.get(f"/tradr/accounts/{account}/api-keys", headers=user.headers)
    assert first.status_code == 200, first.text
    page = first.json()
    assert set(page) == {"data", "limit", "page", "total"}
    assert (page["limit"], page["page"], page["total"]) == (10, 1, 12)
    assert [k["id"] for k in page["data"]] == sorted(ids, reverse=True)[:10]  # DESC by default
    assert all(set(k) == ACCOUNT_FIELDS and k["accountId"] == account for k in page["data"])
    assert all(re.fullmatch(r"[0-9a-f]{64}", k["apiKey"]) for k in page["data"])  # hashes, never keys

    second = client.get(f"/tradr/accounts/{account}/api-keys", headers=user.headers, params={"page": 2}).json()
    assert [k["id"] for k in second["data"]] == sorted(ids, reverse=True)[10:] and second["page"] == 2
    ascending = client.get(f"/tradr/accounts/{account}/api-keys", headers=user.headers,
                           params={"sortDir": "ASC", "limit": 5, "page": 3}).json()
    assert [k["id"] for k in ascending["data"]] == sorted(ids)[10:]
    assert (ascending["limit"], ascending["page"], ascending["total"]) == (5, 3, 12)
    by_name = client.get(f"/tradr/accounts/{account}/api-keys", headers=user.headers,
                         params={"sortBy": "friendlyName", "sortDir": "ASC", "limit": 100}).json()
    assert [k["friendlyName"] for k in by_name["data"]] == sorted(names)
    beyond = client.get(f"/tradr/accounts/{account}/api-keys", headers=user.headers, params={"page": 99}).json()
    assert beyond["data"] == [] and beyond["total"] == 12


# --- the power of the calling key ----------------------------------------------------------------------

def test_account_key_used_on_another_account_is_403(server, users, client):
    user = users.create()
    mine, other = connect_bitmex(client, user), connect_bitmex(client, user)
    key = new_account_key(client, user.headers, mine)
    foreign = new_account_key(client, user.headers, other)
    unbound = new_user_key(client, user.headers, user.id)
    auth = xkey(key["apiKey"])

    nest(client.get(f"/tradr/accounts/{other}/api-keys", headers=auth), 403)
    nest(client.post("/tradr/accounts/api-keys", headers=auth, json={"accountId": other, "roles": ["read"]}), 403)
    nest(client.get(f"/tradr/accounts/api-keys/{foreign['id']}", headers=auth), 403)
    nest(client.patch(f"/tradr/accounts/api-keys/{foreign['id']}", headers=auth, json={"friendlyName": "x"}), 403)
    nest(client.delete(f"/tradr/accounts/api-keys/{foreign['id']}", headers=auth), 403)
    nest(client.get(f"/tradr/users/api-keys/{unbound['id']}", headers=auth), 403)
    nest(client.delete(f"/tradr/users/api-keys/{unbound['id']}", headers=auth), 403)
    nest(client.post("/tradr/users/api-keys", headers=auth,
                     json={"userId": user.id, "roles": ["read"], "accountIds": [mine, other]}), 403)
    # an account the user does not have at all: 403 too (a bound key learns nothing beyond its accounts)
    nest(client.get("/tradr/accounts/999999/api-keys", headers=auth), 403)

    # on its own account it works; a user key it makes without accountIds gets its one account
    assert client.get(f"/tradr/accounts/{mine}/api-keys", headers=auth).status_code == 200
    made = new_user_key(client, auth, user.id, roles=("read",), accountIds=[])
    assert made["accountIds"] == [mine]
    listed = client.get(f"/tradr/users/{user.id}/api-keys", headers=auth, params={"limit": 100}).json()
    assert {k["id"] for k in listed["data"]} == {key["id"], made["id"]}  # nothing beyond its account
    assert client.get(f"/tradr/accounts/api-keys/{foreign['id']}", headers=user.headers).status_code == 200


def test_ips_allowlist_enforced(server, users, client):
    user = users.create()
    account = connect_bitmex(client, user)
    elsewhere = new_account_key(client, user.headers, account, ips=["10.1.2.3"])
    assert elsewhere["ips"] == ["10.1.2.3"]
    nest(client.get(f"/tradr/accounts/{account}/api-keys", headers=xkey(elsewhere["apiKey"])), 403)

    local = new_account_key(client, user.headers, account, ips=["127.0.0.0/8"])
    assert local["ips"] == ["127.0.0.0/8"]
    auth = xkey(local["apiKey"])
    assert client.get(f"/tradr/accounts/{account}/api-keys", headers=auth).status_code == 200
    # never more IPs than it has: "any IP" and an outside network are wider; narrower is fine
    nest(client.post("/tradr/accounts/api-keys", headers=auth,
                     json={"accountId": account, "roles": ["read"], "ips": []}), 403)
    nest(client.post("/tradr/accounts/api-keys", headers=auth,
                     json={"accountId": account, "roles": ["read"], "ips": ["10.0.0.1"]}), 403)
    assert new_account_key(client, auth, account, roles=("read",), ips=["127.0.0.1"])["ips"] == ["127.0.0.1"]
    assert new_account_key(client, auth, account, roles=("read",))["ips"] == ["127.0.0.0/8"]  # inherited


def test_read_only_key_refused_on_create_rename_and_delete(server, users, client):
    user = users.create()
    account = connect_bitmex(client, user)
    reader = new_account_key(client, user.headers, account, roles=("read",))
    target = new_account_key(client, user.headers, account, roles=("read",))
    auth = xkey(reader["apiKey"])
    nest(client.post("/tradr/accounts/api-keys", headers=auth, json={"accountId": account, "roles": ["read"]}), 403)
    # refused before its body is read: a bad body from a read-only key is still a 403
    nest(client.post("/tradr/accounts/api-keys", headers=auth, json={"nonsense": True}), 403)
    nest(client.post("/tradr/users/api-keys", headers=auth, json={"userId": user.id, "roles": ["read"]}), 403)
    nest(client.patch(f"/tradr/accounts/api-keys/{target['id']}", headers=auth, json={"friendlyName": "x"}), 403)
    nest(client.delete(f"/tradr/accounts/api-keys/{target['id']}", headers=auth), 403)
    assert client.get(f"/tradr/accounts/api-keys/{target['id']}", headers=auth).status_code == 200


def test_roles_never_widened(server, users, client):
    user = users.create()
    account = connect_bitmex(client, user)
    writer = new_account_key(client, user.headers, account, roles=("read", "write"))
    strong = new_account_key(client, user.headers, account)  # read, write, delete
    auth = xkey(writer["apiKey"])
    nest(client.post("/tradr/accounts/api-keys", headers=auth,
                     json={"accountId": account, "roles": ["read", "write", "delete"]}), 403)
    nest(client.post("/tradr/users/api-keys", headers=auth,
                     json={"userId": user.id, "roles": ["read", "delete"], "accountIds": [account]}), 403)
    # nor renames a key more powerful than itself
    nest(client.patch(f"/tradr/accounts/api-keys/{strong['id']}", headers=auth, json={"friendlyName": "x"}), 403)
    assert new_account_key(client, auth, account, roles=("read",))["roles"] == ["read"]
    assert new_account_key(client, auth, account, roles=("read", "write"))["roles"] == ["read", "write"]


# --- user keys ---------------------------------------------------------------------------------------

def test_user_keys(server, users, client):
    user, stranger = users.create(), users.create()
    a, b = connect_bitmex(client, user), connect_bitmex(client, user)
    everything = new_user_key(client, user.headers, user.id, roles=("read", "write"), friendlyName="My Personal Key",
                              ips=[], accountIds=[])
    assert set(everything) == USER_FIELDS and everything["userId"] == user.id
    assert everything["accountIds"] == [] and everything["apiKey"].startswith("sr_")
    missing = new_user_key(client, user.headers, user.id, roles=("read",))
    assert missing["accountIds"] == [] and missing["friendlyName"]
    both = new_user_key(client, user.headers, user.id, accountIds=[b, a, a])
    assert both["accountIds"] == sorted([a, b])
    # [] is TradrAPI's "every account": on /v1 the same key is unbound (account_ids null), never "no account"
    v1 = client.get("/v1/api-keys", headers=user.headers, params={"limit": 200}).json()["items"]
    assert [k["account_ids"] for k in v1 if k["name"] == "My Personal Key"] == [None]

    # the unbound key reaches both accounts; with it, everything
    auth = xkey(everything["apiKey"])
    for account in (a, b):
        assert client.get(f"/tradr/accounts/{account}/api-keys", headers=auth).status_code == 200
    got = client.get(f"/tradr/users/api-keys/{everything['id']}", headers=auth).json()
    assert got["apiKey"] == hashed(server, everything["apiKey"])
    listed = client.get(f"/tradr/users/{user.id}/api-keys", headers=auth, params={"sortDir": "ASC"}).json()
    assert [k["id"] for k in listed["data"]] == sorted([everything["id"], missing["id"], both["id"]])
    # not an account key (bound to every account): not found on the account routes
    nest(client.get(f"/tradr/accounts/api-keys/{everything['id']}", headers=user.headers), 404)
    nest(client.delete(f"/tradr/accounts/api-keys/{everything['id']}", headers=user.headers), 404)

    # rename, delete: not by the read-write key (`both` can delete, it cannot), by the user's token
    nest(client.patch(f"/tradr/users/api-keys/{both['id']}", headers=auth, json={"friendlyName": "x"}), 403)
    assert client.patch(f"/tradr/users/api-keys/{missing['id']}", headers=auth,
                        json={"friendlyName": "renamed"}).json() is True
    assert client.get(f"/tradr/users/api-keys/{missing['id']}", headers=auth).json()["friendlyName"] == "renamed"
    nest(client.delete(f"/tradr/users/api-keys/{both['id']}", headers=auth), 403)
    assert client.delete(f"/tradr/users/api-keys/{both['id']}", headers=user.headers).json() is True
    nest(client.get(f"/tradr/users/api-keys/{both['id']}", headers=auth), 404)
    nest(client.get("/tradr/accounts/api-keys/1", headers=xkey(both["apiKey"])), 401)

    # another user: their keys are not found, their user id is not ours to act for
    nest(client.get(f"/tradr/users/api-keys/{everything['id']}", headers=stranger.headers), 404)
    nest(client.delete(f"/tradr/users/api-keys/{everything['id']}", headers=stranger.headers), 404)
    nest(client.get(f"/tradr/users/{user.id}/api-keys", headers=stranger.headers), 403)
    nest(client.post("/tradr/users/api-keys", headers=stranger.headers, json={"userId": user.id, "roles": ["read"]}),
         403)
    nest(client.post("/tradr/accounts/api-keys", headers=stranger.headers, json={"accountId": a, "roles": ["read"]}),
         404)
    assert client.get(f"/tradr/users/api-keys/{everything['id']}", headers=auth).status_code == 200


# --- bad input -----------------------------------------------------------------------------------------

def test_bad_input_is_a_4xx_in_the_nestjs_shape(server, users, client):
    user = users.create()
    account = connect_bitmex(client, user)
    key = new_account_key(client, user.headers, account)
    auth = xkey(key["apiKey"])
    create = "/tradr/accounts/api-keys"

    def post(body):
        return client.post(create, headers=auth, json=body)

    assert "roles" in nest(post({"accountId": account}), 422)["message"]
    nest(post({"accountId": account, "roles": []}), 422)
    nest(post({"accountId": account, "roles": ["admin"]}), 422)
    nest(post({"accountId": account, "roles": ["write"]}), 422)  # write needs read
    assert "accountId" in nest(post({"accountId": str(account), "roles": ["read"]}), 422)["message"]
    nest(post({"accountId": True, "roles": ["read"]}), 422)
    nest(post({"accountId": account, "roles": ["read"], "expiresAt": "2030-01-01"}), 422)  # unknown field
    assert "ips" in nest(post({"accountId": account, "roles": ["read"], "ips": ["not-an-ip"]}), 422)["message"]
    assert "friendlyName" in nest(post({"accountId": account, "roles": ["read"], "friendlyName": "  "}), 422)["message"]
    nest(post({"accountId": account, "roles": ["read"], "friendlyName": "x" * 101}), 422)
    nest(post({"accountId": 2**40, "roles": ["read"]}), 403)  # outside the key's one account
    nest(client.post(create, headers=user.headers, json={"accountId": 2**40, "roles": ["read"]}), 404)
    nest(client.post(create, headers=user.headers, json={"accountId": 987654, "roles": ["read"]}), 404)
    nest(client.post(create, headers={**auth, "content-type": "application/json"}, content=b"{not json"), 400)
    nest(client.post(create, headers={**auth, "content-type": "application/json"},
                     content=b'{"accountId": 1, "accountId": 2, "roles": ["read"]}'), 400)
    nest(client.post("/tradr/users/api-keys", headers=auth, json={"userId": user.id, "roles": ["read"],
                                                                  "accountIds": ["a"]}), 422)

    listing = f"/tradr/accounts/{account}/api-keys"
    for params in ({"page": 0}, {"page": "x"}, {"limit": 0}, {"limit": 101}, {"sortDir": "UP"},
                   {"sortBy": "apiKey"}, {"page": 2**40}):
        nest(client.get(listing, headers=auth, params=params), 422)
    nest(client.get("/tradr/accounts/x/api-keys", headers=auth), 422)
    nest(client.get("/tradr/accounts/api-keys/abc", headers=auth), 422)
    nest(client.get(f"/tradr/accounts/api-keys/{2**40}", headers=auth), 404)
    nest(client.get("/tradr/accounts/api-keys/-1", headers=auth), 404)
    nest(client.patch(f"/tradr/accounts/api-keys/{key['id']}", headers=auth, json={}), 422)
    nest(client.patch(f"/tradr/accounts/api-keys/{key['id']}", headers=auth, json={"friendlyName": 7}), 422)
    nest(client.get("/tradr/nowhere", headers=auth), 404)
    assert client.put(f"/tradr/accounts/api-keys/{key['id']}", headers=auth).status_code == 405

    # authentication
    anonymous = nest(client.get(listing), 401)
    assert anonymous["message"]
    assert "x-api-key" in client.get(listing).headers["www-authenticate"]
    nest(client.get(listing, headers={"x-api-key": "YOUR_ACCOUNT_API_KEY"}), 401)
    nest(client.get(listing, headers={"x-api-key": "sr_" + "A" * 36}), 401)
    nest(client.get(listing, headers={"Authorization": f"Bearer {key['apiKey']}"}), 401)  # keys go in x-api-key
    nest(client.get(listing, headers={"Authorization": "Bearer sra_not-a-token"}), 401)
    assert client.get(listing, headers=user.headers).status_code == 200  # a /v1 access token


def test_concurrent_deletes_of_one_key_succeed_once(server, users, client):
    user = users.create()
    account = connect_bitmex(client, user)
    target = new_account_key(client, user.headers, account, roles=("read",))

    def delete(_: int) -> int:
        with server.client() as c:
            return c.delete(f"/tradr/accounts/api-keys/{target['id']}", headers=user.headers).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = sorted(pool.map(delete, range(6)))
    assert statuses == [200] + [404] * 5, statuses
    keys = client.get(f"/tradr/accounts/{account}/api-keys", headers=user.headers).json()
    assert keys["total"] == 0


@pytest.mark.parametrize("path", ["/tradr/accounts/api-keys", "/tradr/users/api-keys"])
def test_created_key_is_shown_once_in_the_audit_free_of_secrets(server, users, client, logs, path):
    """The plaintext key is in the creation response only: not in the audit log, not in the logs."""
    user = users.create()
    account = connect_bitmex(client, user)
    body = {"accountId": account} if "accounts" in path else {"userId": user.id}
    created = client.post(path, headers=user.headers, json={**body, "roles": ["read"]})
    assert created.status_code == 201, created.text
    plaintext = created.json()["apiKey"]
    events = client.get("/v1/audit-events", headers=user.headers, params={"limit": 200})
    assert events.status_code == 200 and plaintext not in events.text
    assert plaintext not in logs.text()


def test_fuzz_tradr_operations_never_500(server, users, client):
    """schemathesis, from the live /openapi.json: every /tradr operation, valid and invalid input, with an
    access token (a key could be deleted by the fuzz itself): never a 5xx, every error in the NestJS shape,
    every answer as the document describes it (status, content type, headers, body schema)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )
    from schemathesis.generation import GenerationMode

    user = users.create()
    account = connect_bitmex(client, user)
    new_user_key(client, user.headers, user.id)
    new_account_key(client, user.headers, account)
    headers = user.headers
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json").include(path_regex="^/tradr/")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 10
    statuses: dict[str, set[int]] = {}

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=8, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case):
                response = case.call_and_validate(
                    base_url=server.url, headers=headers, timeout=30,
                    checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                            response_headers_conformance, response_schema_conformance])
                statuses.setdefault(case.operation.label, set()).add(response.status_code)
                assert response.status_code < 500, (case.operation.label, response.status_code, response.text[:300])
                if response.status_code >= 400:
                    body = response.json()
                    assert set(body) == {"statusCode", "message", "error"}, body
                    assert body["statusCode"] == response.status_code and "Traceback" not in response.text

            try:
                run()
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE, operation.label
    # the fuzz reached every operation, and was not refused wholesale
    assert len(statuses) == len(operations)
    # (the document declares each operation's security, so the fuzz also sends generated keys: 401s are
    # expected; but every operation must have answered something else too)
    assert all(codes - {401} for codes in statuses.values()), statuses
