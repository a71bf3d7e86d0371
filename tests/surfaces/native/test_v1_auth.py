"""Issue 2, point 3: users and sessions over real HTTP on each backend.

OAuth2 password flow, refresh rotation with reuse detection, logout, HTTP Basic, /v1/me,
sign-in throttling per client IP, and admin-only user management.
"""

from __future__ import annotations

import secrets
import time
import uuid

import pytest
from support import start_server
from support.problems import PROBLEM, assert_problem


def sign_in(client, username: str, password: str):
    return client.post("/v1/auth/token", data={"username": username, "password": password})


def wait_for_status(client, path: str, headers: dict, status: int, timeout: float = 3.0):
    """Poll ``path`` until it answers ``status`` (caches may hold a credential for up to ~1 s)."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(path, headers=headers)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}




# --------------------------------------------------------------------------- token flow


def test_password_flow_returns_bearer_pair(client, users, server):
    user = users.create(sign_in=False)
    response = sign_in(client, user.username, user.password)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == server.settings.access_token_ttl_seconds
    assert body["access_token"].startswith("sra_") and body["refresh_token"].startswith("srr_")
    assert body["access_token"] != body["refresh_token"]
    assert response.headers["content-type"].startswith("application/json")

    me = client.get("/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == user.id and me.json()["auth_scheme"] == "access_token"


def test_password_grant_type_is_accepted_and_others_refused(client, users):
    user = users.create(sign_in=False)
    ok = client.post("/v1/auth/token", data={"username": user.username, "password": user.password,
                                             "grant_type": "password"})
    assert ok.status_code == 200
    bad = client.post("/v1/auth/token", data={"username": user.username, "password": user.password,
                                              "grant_type": "client_credentials"})
    assert_problem(bad, 422)


def test_wrong_password_and_unknown_user_are_401(client, users):
    user = users.create(sign_in=False)
    wrong = sign_in(client, user.username, user.password + "x")
    body = assert_problem(wrong, 401, "unauthenticated")
    assert "access_token" not in body
    unknown = sign_in(client, f"nobody{uuid.uuid4().hex[:8]}", "whatever-password")
    assert_problem(unknown, 401, "unauthenticated")
    # the two refusals are indistinguishable to the caller
    assert wrong.json()["detail"] == unknown.json()["detail"]


def test_missing_form_fields_are_422(client):
    response = client.post("/v1/auth/token", data={"username": "someone"})
    body = assert_problem(response, 422, "validation_failed")
    assert "password" in body["errors"]


def test_invalid_access_token_is_401(client, users):
    for token in ("sra_not-a-token", "sra_" + "A" * 36, "garbage"):
        response = client.get("/v1/me", headers=bearer(token))
        assert_problem(response, 401)
        assert "www-authenticate" in {k.lower() for k in response.headers}


# --------------------------------------------------------------------------- refresh


def test_refresh_rotates_and_reuse_revokes_the_family(client, users):
    user = users.create()
    old_access, old_refresh = user.token, user.extra["refresh_token"]

    rotated = client.post("/v1/auth/refresh", json={"refresh_token": old_refresh})
    assert rotated.status_code == 200, rotated.text
    pair = rotated.json()
    assert pair["token_type"] == "bearer" and pair["expires_in"] > 0
    assert pair["access_token"] != old_access and pair["refresh_token"] != old_refresh
    assert client.get("/v1/me", headers=bearer(pair["access_token"])).status_code == 200
    # the rotated-out access token ends with its refresh token
    assert wait_for_status(client, "/v1/me", bearer(old_access), 401).status_code == 401

    # the new refresh token works once more (rotation, not one-shot sessions)
    second = client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert second.status_code == 200
    newest = second.json()
    assert client.get("/v1/me", headers=bearer(newest["access_token"])).status_code == 200

    # reusing the first (already rotated) refresh token: refused, and the whole family dies
    reused = client.post("/v1/auth/refresh", json={"refresh_token": old_refresh})
    assert_problem(reused, 401)
    gone = wait_for_status(client, "/v1/me", bearer(newest["access_token"]), 401, timeout=1.5)
    assert gone.status_code == 401, "the family's live access token still works after refresh-token reuse"
    again = client.post("/v1/auth/refresh", json={"refresh_token": newest["refresh_token"]})
    assert_problem(again, 401)


def test_refresh_reuse_does_not_touch_other_sessions(client, users):
    user = users.create()
    other = sign_in(client, user.username, user.password).json()
    refresh = user.extra["refresh_token"]
    assert client.post("/v1/auth/refresh", json={"refresh_token": refresh}).status_code == 200
    assert client.post("/v1/auth/refresh", json={"refresh_token": refresh}).status_code == 401
    time.sleep(0.6)  # beyond the cache TTL: the other session must still be live in the database
    assert client.get("/v1/me", headers=bearer(other["access_token"])).status_code == 200


@pytest.mark.parametrize("payload", [
    {"refresh_token": "srr_garbage"},
    {"refresh_token": "sra_" + "A" * 36},
    {"refresh_token": ""},
    {},
    {"refresh_token": "x", "extra": 1},
])
def test_refresh_with_bad_input_is_refused(client, payload):
    response = client.post("/v1/auth/refresh", json=payload)
    assert response.status_code in (401, 422), response.text
    assert response.headers["content-type"].startswith(PROBLEM)


def test_access_token_is_not_a_refresh_token(client, users):
    user = users.create()
    assert_problem(client.post("/v1/auth/refresh", json={"refresh_token": user.token}), 401)


# --------------------------------------------------------------------------- logout


def test_logout_ends_the_session(client, users):
    user = users.create()
    other = sign_in(client, user.username, user.password).json()
    response = client.post("/v1/auth/logout", headers=user.headers)
    assert response.status_code == 204 and response.content == b""
    assert wait_for_status(client, "/v1/me", user.headers, 401, timeout=1.5).status_code == 401
    # its refresh token is dead too
    assert_problem(client.post("/v1/auth/refresh", json={"refresh_token": user.extra["refresh_token"]}), 401)
    # another session of the same user is unaffected
    assert client.get("/v1/me", headers=bearer(other["access_token"])).status_code == 200


def test_logout_needs_authentication(client):
    assert_problem(client.post("/v1/auth/logout"), 401)


# --------------------------------------------------------------------------- basic + /me


def test_basic_username_password_on_me(client, users):
    user = users.create(sign_in=False)
    me = client.get("/v1/me", headers=user.basic)
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["id"] == user.id and body["username"] == user.username
    assert body["auth_scheme"] == "basic"
    # also through httpx's own Basic auth
    assert client.get("/v1/me", auth=(user.username, user.password)).status_code == 200
    assert_problem(client.get("/v1/me", auth=(user.username, user.password + "!")), 401)
    assert_problem(client.get("/v1/me", headers={"Authorization": "Basic !!!notbase64"}), 401)


def test_me_fields(client, users):
    user = users.create(usage_level="advanced")
    body = client.get("/v1/me", headers=user.headers).json()
    assert body["id"] == user.id
    assert body["username"] == user.username
    assert body["is_admin"] is False
    assert body["usage_level"] == "advanced"
    assert set(body["scopes"]) == {"read", "write", "delete", "trade"}  # a signed-in user trades on their accounts
    assert body["key_id"] is None and body["account_ids"] is None
    admin = users.create(admin=True)
    assert client.get("/v1/me", headers=admin.headers).json()["is_admin"] is True
    assert "password" not in str(body).lower() and "hash" not in str(body).lower()


def test_me_without_credentials_is_401(client):
    response = client.get("/v1/me")
    assert_problem(response, 401, "unauthenticated")
    assert response.headers.get("www-authenticate", "").lower().startswith("bearer")


# --------------------------------------------------------------------------- throttling


def test_repeated_failed_sign_ins_from_one_ip_get_429(server, backend, users):
    user = users.create(sign_in=False)
    throttled = start_server(data_dir=server.settings.data_dir, database_url=backend.url,
                             login_failures_per_ip="3/minute")
    try:
        with throttled.client() as c:
            for _ in range(3):
                assert_problem(sign_in(c, user.username, "wrong-password-1"), 401)
            limited = sign_in(c, user.username, "wrong-password-2")
            assert_problem(limited, 429, "rate_limited")
            retry = int(limited.headers["Retry-After"])
            assert 1 <= retry <= 60
            # even the right password waits: no unlimited guessing
            assert_problem(sign_in(c, user.username, user.password), 429)
            # Basic auth goes through the same throttle
            assert_problem(c.get("/v1/me", headers=user.basic), 429)
    finally:
        throttled.stop()


def test_successful_sign_ins_are_not_throttled(server, backend, users):
    user = users.create(sign_in=False)
    throttled = start_server(data_dir=server.settings.data_dir, database_url=backend.url,
                             login_failures_per_ip="3/minute")
    try:
        with throttled.client() as c:
            for _ in range(6):
                assert sign_in(c, user.username, user.password).status_code == 200
    finally:
        throttled.stop()


# --------------------------------------------------------------------------- /v1/users


def _new_user_body(**extra) -> dict:
    return {"username": f"n{uuid.uuid4().hex[:10]}", "password": secrets.token_urlsafe(12), **extra}


def _all_users(client, headers) -> list[dict]:
    items, cursor = [], None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/users", headers=headers, params=params)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if not cursor:
            return items


def test_admin_creates_lists_gets_and_deletes_users(client, users):
    admin = users.create(admin=True)
    body = _new_user_body(email="n@example.test")
    created = client.post("/v1/users", headers=admin.headers, json=body)
    assert created.status_code == 201, created.text
    new = created.json()
    assert new["username"] == body["username"] and new["is_admin"] is False
    assert new["usage_level"] == "basic" and new["email"] == "n@example.test"
    assert "password" not in new and body["password"] not in created.text

    # the new user can sign in
    token = sign_in(client, body["username"], body["password"])
    assert token.status_code == 200
    headers = bearer(token.json()["access_token"])
    assert client.get("/v1/me", headers=headers).json()["id"] == new["id"]

    listed = _all_users(client, admin.headers)
    assert new["id"] in {u["id"] for u in listed}
    assert len({u["id"] for u in listed}) == len(listed)
    assert all("password" not in u and "password_hash" not in u for u in listed)
    got = client.get(f"/v1/users/{new['id']}", headers=admin.headers)
    assert got.status_code == 200 and got.json()["username"] == body["username"]

    # deleting removes access: tokens, Basic and new sign-ins
    deleted = client.delete(f"/v1/users/{new['id']}", headers=admin.headers)
    assert deleted.status_code == 204
    assert wait_for_status(client, "/v1/me", headers, 401).status_code == 401
    basic = (body["username"], body["password"])
    deadline = time.monotonic() + 3
    while client.get("/v1/me", auth=basic).status_code != 401 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_problem(client.get("/v1/me", auth=basic), 401)
    assert_problem(sign_in(client, *basic), 401)
    assert_problem(client.get(f"/v1/users/{new['id']}", headers=admin.headers), 404)
    assert_problem(client.delete(f"/v1/users/{new['id']}", headers=admin.headers), 404)


def test_admin_can_create_admins(client, users):
    admin = users.create(admin=True)
    body = _new_user_body(is_admin=True)
    created = client.post("/v1/users", headers=admin.headers, json=body)
    assert created.status_code == 201 and created.json()["is_admin"] is True
    token = sign_in(client, body["username"], body["password"]).json()["access_token"]
    assert client.get("/v1/users", headers=bearer(token), params={"limit": 1}).status_code == 200


def test_non_admins_cannot_manage_users(client, users):
    user = users.create()
    victim = users.create(sign_in=False)
    assert_problem(client.post("/v1/users", headers=user.headers, json=_new_user_body()), 403, "forbidden")
    assert_problem(client.get("/v1/users", headers=user.headers), 403)
    assert_problem(client.delete(f"/v1/users/{victim.id}", headers=user.headers), 403)
    # the victim still exists and can sign in
    assert sign_in(client, victim.username, victim.password).status_code == 200
    # a user may read themself, never others
    assert client.get(f"/v1/users/{user.id}", headers=user.headers).status_code == 200
    assert_problem(client.get(f"/v1/users/{victim.id}", headers=user.headers), 404)
    # unauthenticated
    assert_problem(client.post("/v1/users", json=_new_user_body()), 401)


def test_duplicate_username_is_409(client, users):
    admin = users.create(admin=True)
    body = _new_user_body()
    assert client.post("/v1/users", headers=admin.headers, json=body).status_code == 201
    again = client.post("/v1/users", headers=admin.headers, json={**body, "password": "another-password"})
    assert_problem(again, 409, "conflict")
    existing = users.create(sign_in=False)
    assert_problem(client.post("/v1/users", headers=admin.headers,
                               json=_new_user_body(username=existing.username)), 409)
    # the original password still works: the duplicate changed nothing
    assert sign_in(client, body["username"], body["password"]).status_code == 200
    assert_problem(sign_in(client, body["username"], "another-password"), 401)


@pytest.mark.parametrize("patch", [
    {"username": "has space"},
    {"username": ""},
    {"password": "short"},
    {"usage_level": "god"},
    {"is_admin": "maybe"},
    {"unknown": 1},
])
def test_invalid_user_bodies_are_422(client, users, patch):
    admin = users.create(admin=True)
    response = client.post("/v1/users", headers=admin.headers, json=_new_user_body(**patch))
    body = assert_problem(response, 422, "validation_failed")
    assert set(patch) & set(body.get("errors", {})), body


def test_admin_cannot_delete_themself(client, users):
    admin = users.create(admin=True)
    assert_problem(client.delete(f"/v1/users/{admin.id}", headers=admin.headers), 403)
    assert client.get("/v1/me", headers=admin.headers).status_code == 200
