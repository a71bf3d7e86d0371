"""Issue 11, item 1: /api/v3/auth on Strongroom's own sessions (the same tokens on /v1 and /api/v3)."""

from __future__ import annotations

import time
import uuid

from cadenza_helpers import Api, login

UNAUTHORIZED = {"data": None, "success": False, "errno": -19002, "error": "Unauthorized"}


def envelope(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    doc = response.json()
    if status == 200:
        assert doc["success"] is True and doc["errno"] == 0 and doc["error"] is None
    else:
        assert doc["success"] is False and doc["data"] is None and type(doc["errno"]) is int and doc["errno"] < 0
    return doc


def test_login_answers_a_session_and_the_user(http, cadenza_users, cadenza_server) -> None:
    user = cadenza_users.create(sign_in=False)
    before = int(time.time())
    data = envelope(http.post("/api/v3/auth/login", json={"email": user.username, "password": user.password}))["data"]
    assert data["tokenType"] == "bearer" and data["expiresIn"] == cadenza_server.settings.access_token_ttl_seconds
    assert before + data["expiresIn"] <= data["expiresAt"] <= int(time.time()) + data["expiresIn"] + 1
    assert data["accessToken"] != data["refreshToken"]
    me = data["user"]
    assert me["email"] == user.username and me["username"] == user.username
    with cadenza_server.core.db.session() as session:
        from strongroom.models import User

        assert uuid.UUID(me["id"]) == session.get(User, user.id).public_id
    # the same user again: the same stable id
    again = envelope(http.post("/api/v3/auth/login", json={"email": user.username, "password": user.password}))
    assert again["data"]["user"]["id"] == me["id"]


def test_tokens_work_on_v1_and_v1_tokens_on_v3(http, cadenza_users) -> None:
    user = cadenza_users.create()  # signed in through /v1/auth/token
    v1_token = user.token
    got = envelope(http.get("/api/v3/auth/user", headers={"Authorization": f"Bearer {v1_token}"}))["data"]
    assert got["username"] == user.username
    api = login(http, user)
    me = http.get("/v1/me", headers=api.headers)
    assert me.status_code == 200 and me.json()["id"] == user.id
    assert envelope(api.get("/auth/user"))["data"] == got


def test_refresh_rotates_and_a_reused_refresh_token_ends_the_session(http, api) -> None:
    first = api.refresh_token
    data = envelope(http.post("/api/v3/auth/token/refresh", json={"refreshToken": first}))["data"]
    assert data["refreshToken"] != first and data["accessToken"] != api.token
    assert data["user"]["username"] == api.user.username
    fresh = {"Authorization": f"Bearer {data['accessToken']}"}
    assert envelope(http.get("/api/v3/auth/user", headers=fresh))
    # the old access token ended with the rotation
    assert envelope(api.get("/auth/user"), 401) == UNAUTHORIZED
    # the old refresh token again: refused, and its whole family is ended (the new access token too)
    assert envelope(http.post("/api/v3/auth/token/refresh", json={"refreshToken": first}), 401) == UNAUTHORIZED
    assert envelope(http.get("/api/v3/auth/user", headers=fresh), 401) == UNAUTHORIZED
    assert envelope(http.post("/api/v3/auth/token/refresh", json={"refreshToken": data["refreshToken"]}), 401)


def test_logout_ends_the_session_everywhere(http, api) -> None:
    # the client's logout: POST, no body, no Content-Type
    response = http.post("/api/v3/auth/logout", headers=api.headers)
    assert envelope(response)["data"] is None
    assert envelope(api.get("/auth/user"), 401) == UNAUTHORIZED
    assert http.get("/v1/me", headers=api.headers).status_code == 401
    assert envelope(http.post("/api/v3/auth/token/refresh", json={"refreshToken": api.refresh_token}), 401)
    # a v1 logout ends a v3 session too
    again = login(http, api.user)
    assert http.post("/v1/auth/logout", headers=again.headers).status_code == 204
    assert envelope(again.get("/auth/user"), 401) == UNAUTHORIZED


def test_login_refusals(http, cadenza_users) -> None:
    user = cadenza_users.create(sign_in=False)
    wrong = http.post("/api/v3/auth/login", json={"email": user.username, "password": "not-" + user.password})
    assert envelope(wrong, 401) == {"data": None, "success": False, "errno": -100001,
                                    "error": "Invalid login credentials"}
    nobody = http.post("/api/v3/auth/login", json={"email": f"nobody-{uuid.uuid4().hex}", "password": "x" * 12})
    assert envelope(nobody, 401)["errno"] == -100001
    assert user.password not in wrong.text
    for body in ({}, {"email": user.username}, {"email": 5, "password": "x"}, {"email": "", "password": "x"},
                 {"email": user.username, "password": user.password, "extra": 1}, [], "text", None):
        doc = envelope(http.post("/api/v3/auth/login", json=body), 400)
        assert doc["errno"] == -19004 and doc["error"].startswith("Invalid request")
    doc = envelope(http.post("/api/v3/auth/login", content=b"{not json", headers={"Content-Type": "application/json"}),
                   400)
    assert doc["errno"] == -19005


def test_missing_or_bad_tokens_are_401_everywhere(http, api) -> None:
    calls = [("GET", "/api/v3/auth/user"), ("POST", "/api/v3/auth/logout"), ("GET", "/api/v3/tradingAccount/list"),
             ("POST", "/api/v3/tradingAccount/connect"), ("POST", "/api/v3/tradingAccount/disable"),
             ("GET", "/api/v3/credential/list"), ("POST", "/api/v3/credential/create"),
             ("GET", "/api/v3/tradingAccount/portfolio/list")]
    for headers in ({}, {"Authorization": "Bearer eyJhbGciOiJIUzI1NiIs..."}, {"Authorization": "Bearer sra_x"},
                    {"Authorization": f"Bearer {api.token}x"}, {"Authorization": f"Basic {api.token}"},
                    {"Authorization": f"Bearer {api.refresh_token}"}):
        for method, path in calls:
            # a body that would be refused: authentication answers first
            response = http.request(method, path, headers=headers, json={"venue": 1} if method == "POST" else None)
            assert envelope(response, 401) == UNAUTHORIZED, (headers, path)
            assert response.headers["www-authenticate"].startswith('Bearer realm="strongroom"')


def test_health_is_bare_and_public(http) -> None:
    response = http.get("/api/v3/health")
    assert response.status_code == 200
    doc = response.json()
    assert doc["status"] == "healthy" and type(doc["timestamp"]) is int and isinstance(doc["version"], str)
    assert "success" not in doc and doc["checks"]["database"]["status"] == "healthy"


def test_unknown_paths_and_methods_answer_in_the_envelope(http, api: Api) -> None:
    missing = http.get("/api/v3/nowhere", headers=api.headers)
    assert envelope(missing, 404)["errno"] == -22016
    wrong = http.get("/api/v3/tradingAccount/connect", headers=api.headers)
    assert envelope(wrong, 405)["errno"] == -19001 and "POST" in wrong.headers["allow"]
    # no trailing slash, case-sensitive paths (as the client calls them)
    assert envelope(http.get("/api/v3/tradingaccount/list", headers=api.headers), 404)
