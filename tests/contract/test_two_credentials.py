"""Issue 22.6: a request that carries two different credentials is refused 400 on every surface, in
that surface's error shape (code ``ambiguous_credentials`` where the shape has a code), rather than
one of them silently winning. Each credential alone is accepted, so the refusal is the pair's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from support.signing import load_private_key, sign_hmac, sign_kalshi
from support.threecommas import V1, hmac_key

Check = Callable[[dict[str, Any]], bool]


@pytest.fixture
def creds(client: httpx.Client, users: Any) -> dict[str, Any]:
    """A user, one bearer key, one hmac key and one RSA key (for Kalshi)."""
    user = users.create()
    made = {}
    for name, kind in (("bearer", "bearer"), ("other", "bearer"), ("hmac", "hmac")):
        response = client.post("/v1/api-keys", json={"name": name, "kind": kind}, headers=user.headers)
        assert response.status_code == 201, response.text
        made[name] = response.json()
    response = client.post("/v1/api-keys/generate", json={"name": "kalshi", "key_type": "rsa"}, headers=user.headers)
    assert response.status_code == 201, response.text
    made["rsa"] = response.json()
    return {"user": user, **made, "rsa_private": load_private_key(made["rsa"]["private_key"])}


def native_code(body: dict[str, Any]) -> bool:
    return body["status"] == 400 and body["code"] == "ambiguous_credentials"


def kalshi_code(body: dict[str, Any]) -> bool:
    return set(body) == {"error"} and body["error"]["code"] == "ambiguous_credentials"


def threecommas_code(body: dict[str, Any]) -> bool:
    return set(body) == {"error", "error_description"} and body["error"] == "ambiguous_credentials"


def cadenza_code(body: dict[str, Any]) -> bool:
    return body["success"] is False and body["data"] is None and body["errno"] < 0


def tradr_code(body: dict[str, Any]) -> bool:
    return body["statusCode"] == 400 and body["error"] == "Bad Request"


def trading_app_code(body: dict[str, Any]) -> bool:
    return body["Status Code"] == 400 and body["Message"]


def assert_refused(response: httpx.Response, shape: Check) -> None:
    assert response.status_code == 400, response.text
    assert shape(response.json()), response.text


def test_native(client: httpx.Client, creds: dict[str, Any]) -> None:
    bearer, other, hkey = creds["bearer"]["secret"], creds["other"]["secret"], creds["hmac"]
    user = creds["user"]
    signed = sign_hmac(hkey["key_id"], hkey["secret"], "GET", "/v1/me")
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {bearer}"}).status_code == 200
    assert client.get("/v1/me", headers={"X-API-Key": other}).status_code == 200
    assert client.get("/v1/me", headers=user.basic).status_code == 200
    for headers in ({"Authorization": f"Bearer {bearer}", "X-API-Key": other},
                    {"Authorization": f"Bearer {creds['user'].token}", "X-API-Key": other},
                    {**user.basic, **sign_hmac(hkey["key_id"], hkey["secret"], "GET", "/v1/me")},
                    {"X-API-Key": bearer, **signed}):
        assert_refused(client.get("/v1/me", headers=headers), native_code)
    # one credential sent twice is one credential
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {bearer}", "X-API-Key": bearer}).status_code == 200


def test_kalshi(client: httpx.Client, creds: dict[str, Any]) -> None:
    path = "/trade-api/v2/api_keys"

    def kalshi() -> dict[str, str]:
        return sign_kalshi(creds["rsa"]["key_id"], creds["rsa_private"], "GET", path)

    assert client.get(path, headers=kalshi()).status_code == 200
    assert_refused(client.get(path, headers={**kalshi(), "Authorization": f"Bearer {creds['bearer']['secret']}"}),
                   kalshi_code)
    assert_refused(client.get(path, headers={**kalshi(), "X-API-Key": creds["bearer"]["secret"]}), kalshi_code)


def test_threecommas(client: httpx.Client, creds: dict[str, Any]) -> None:
    key = hmac_key(client, creds["user"])
    path = f"{V1}/accounts"
    assert client.get(path, headers=key.headers(path.encode())).status_code == 200
    assert_refused(client.get(path, headers={**key.headers(path.encode()), "X-API-Key": creds["bearer"]["secret"]}),
                   threecommas_code)
    assert_refused(client.get(path, headers={**key.headers(path.encode()), **creds["user"].basic}), threecommas_code)


def test_cadenza(client: httpx.Client, creds: dict[str, Any]) -> None:
    path = "/api/v3/tradingAccount/list"
    user = creds["user"]
    assert client.get(path, headers=user.headers).status_code == 200
    assert_refused(client.get(path, headers={**user.headers, "X-API-Key": creds["bearer"]["secret"]}), cadenza_code)


def test_tradr(client: httpx.Client, creds: dict[str, Any]) -> None:
    user = creds["user"]
    path = f"/tradr/users/{user.id}/api-keys"
    assert client.get(path, headers={"x-api-key": creds["bearer"]["secret"]}).status_code == 200
    assert client.get(path, headers=user.headers).status_code == 200
    assert_refused(client.get(path, headers={"x-api-key": creds["bearer"]["secret"], **user.headers}), tradr_code)


def test_trading_app(client: httpx.Client, creds: dict[str, Any]) -> None:
    user = creds["user"]
    path = f"/user/{user.id}/accounts"
    assert client.get(path, headers=user.basic).status_code == 200
    assert_refused(client.get(path, headers={**user.basic, "X-API-Key": creds["bearer"]["secret"]}),
                   trading_app_code)
    assert_refused(client.get(path, headers={**user.basic, "APIKEY": creds["hmac"]["key_id"]}), trading_app_code)
