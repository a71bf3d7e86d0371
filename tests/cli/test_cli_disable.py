"""Issue 22 item 13: ``strongroom users|keys|accounts disable|enable`` against the shared live server's
data on SQLite and PostgreSQL. A disabled user cannot sign in, and every key, session and refresh token
of theirs is refused on every surface (in its shape) within the key cache's second, until enabled; CLI
actions are audited with the operator's OS user as the client (``cli:<user>``)."""

from __future__ import annotations

import base64
import getpass
import time
import uuid
from collections.abc import Callable

import httpx
from support.problems import assert_problem
from support.signing import sign_hmac

OPERATOR_CLIENT = f"cli:{getpass.getuser()}"  # the CLI runs as this test's OS user


def eventually(check: Callable[[], bool], what: str, seconds: float = 10) -> None:
    """Wait until ``check()`` holds (changes reach a running server within its cache TTL)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def last_event(live, action: str) -> dict:
    events = live.run("audit", "tail", "--action", action, "--limit", "1", "--json").json()
    assert len(events) == 1
    return events[0]


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def test_a_disabled_user_is_refused_everywhere_until_enabled(live, client, users):
    user = users.create()
    refresh = user.extra["refresh_token"]
    bearer = client.post("/v1/api-keys", json={"name": "b"}, headers=user.headers).json()
    signed = client.post("/v1/api-keys", json={"name": "h", "kind": "hmac"}, headers=user.headers).json()
    cadenza = client.post("/api/v3/auth/login", json={"email": user.username, "password": user.password})
    assert cadenza.status_code == 200, cadenza.text
    cadenza_token = {"Authorization": f"Bearer {cadenza.json()['data']['accessToken']}"}
    calls = {  # every way in: (method, path, headers)
        "access token": lambda: client.get("/v1/me", headers=user.headers),
        "bearer key": lambda: client.get("/v1/me", headers={"Authorization": f"Bearer {bearer['secret']}"}),
        "x-api-key": lambda: client.get("/v1/me", headers={"X-API-Key": bearer["secret"]}),
        "signed key": lambda: client.get("/v1/me", headers=sign_hmac(signed["key_id"], signed["secret"], "GET",
                                                                       "/v1/me")),
        "basic password": lambda: client.get("/v1/me", headers=basic(user.username, user.password)),
        "trading app": lambda: client.get(f"/user/{user.id}/accounts", headers=basic(user.username, user.password)),
        "tradr": lambda: client.get(f"/tradr/users/{user.id}/api-keys", headers={"X-API-Key": bearer["secret"]}),
        "cadenza": lambda: client.get("/api/v3/auth/user", headers=cadenza_token),
    }
    assert {name: call().status_code for name, call in calls.items()} == dict.fromkeys(calls, 200)

    disabled = live.run("users", "disable", user.username, "--json").json()
    assert disabled["username"] == user.username and disabled["disabled"] is True
    event = last_event(live, "user.disable")
    assert event["target"] == f"user:{user.id}" and event["client_ip"] == OPERATOR_CLIENT
    assert event["details"] == {"changed": True}
    eventually(lambda: all(call().status_code == 401 for call in calls.values()), "every credential refused")
    assert_problem(calls["bearer key"](), 401)
    assert_problem(calls["access token"](), 401)
    signing_in = client.post("/v1/auth/token", data={"username": user.username, "password": user.password})
    assert signing_in.status_code == 401 and "disabled" in signing_in.text
    assert last_event(live, "auth.sign_in")["details"]["reason"] == "disabled"
    refused = client.post("/v1/auth/refresh", json={"refresh_token": refresh})
    assert refused.status_code == 401
    assert client.post("/api/v3/auth/login", json={"email": user.username,
                                                   "password": user.password}).status_code == 401
    listed = {u["username"]: u for u in live.run("users", "list", "--json").json()}
    assert listed[user.username]["disabled"] is True

    enabled = live.run("users", "enable", user.username).ok()
    assert f"{user.username} is enabled" in enabled.stdout
    assert last_event(live, "user.enable")["client_ip"] == OPERATOR_CLIENT
    eventually(lambda: all(call().status_code == 200 for call in calls.values()), "every credential back")
    # the refresh token was not spent while refused: it still works
    assert client.post("/v1/auth/refresh", json={"refresh_token": refresh}).status_code == 200


def test_disabling_an_unknown_user_is_one_error_line(live):
    nobody = live.run("users", "disable", f"nobody-{uuid.uuid4().hex[:6]}")
    assert nobody.returncode == 1 and nobody.error.startswith("no user named")


def test_keys_disable_and_enable(live, client, users):
    user = users.create()
    key = client.post("/v1/api-keys", json={"name": "k"}, headers=user.headers).json()
    me = {"X-API-Key": key["secret"]}
    assert client.get("/v1/me", headers=me).status_code == 200
    off = live.run("keys", "disable", key["key_id"], "--json").json()
    assert off["enabled"] is False and off["key_id"] == key["key_id"]
    eventually(lambda: client.get("/v1/me", headers=me).status_code == 401, "the key refused")
    event = last_event(live, "api_key.update")
    assert event["client_ip"] == OPERATOR_CLIENT and event["target"] == f"api_key:{key['key_id']}"
    assert "is enabled" in live.run("keys", "enable", key["key_id"]).ok().stdout
    eventually(lambda: client.get("/v1/me", headers=me).status_code == 200, "the key back")
    unknown = live.run("keys", "disable", "no-such-key")
    assert unknown.returncode == 1


def test_accounts_disable_and_enable(live, client, users, mock_exchange):
    user = users.create()
    api_key, secret = f"cli-key-{uuid.uuid4().hex}", f"cli-secret-{uuid.uuid4().hex}"
    registered = httpx.post(f"{mock_exchange.url}/_mock/accounts",
                            json={"exchange": "binance", "api_key": api_key, "secret": secret})
    assert registered.status_code == 201, registered.text
    created = client.post("/v1/exchange-accounts", headers=user.headers,
                          json={"exchange": "binance", "credentials": {"api_key": api_key, "secret": secret}})
    assert created.status_code == 201, created.text
    account = created.json()
    off = live.run("accounts", "disable", str(account["id"]), "--json").json()
    assert off["status"] == "disabled"
    event = last_event(live, "account.disable")
    assert event["client_ip"] == OPERATOR_CLIENT and event["target"] == f"account:{account['id']}"
    assert client.get(f"/v1/exchange-accounts/{account['id']}", headers=user.headers).json()["status"] == "disabled"
    on = live.run("accounts", "enable", str(account["id"]), "--json").json()
    assert on["status"] == "active"
    assert live.run("accounts", "disable", "999999999").returncode == 1
