"""Issue 14 item 6: the small things a newcomer trips over, each answered clearly."""

from __future__ import annotations

import uuid
from typing import Any

from support import start_server


def test_token_endpoint_says_send_form_fields_when_it_gets_json(client: Any, users: Any) -> None:
    user = users.create(sign_in=False)
    response = client.post("/v1/auth/token", json={"username": user.username, "password": user.password})
    assert response.status_code == 422
    assert "form fields" in response.json()["detail"]
    ok = client.post("/v1/auth/token", data={"username": user.username, "password": user.password})
    assert ok.status_code == 200


def test_refresh_accepts_json_and_form(client: Any, users: Any) -> None:
    user = users.create()
    first = client.post("/v1/auth/refresh", json={"refresh_token": user.extra["refresh_token"]})
    assert first.status_code == 200, first.text
    second = client.post("/v1/auth/refresh", data={"refresh_token": first.json()["refresh_token"],
                                                    "grant_type": "refresh_token"})
    assert second.status_code == 200, second.text
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {second.json()['access_token']}"}).status_code == 200
    bad = client.post("/v1/auth/refresh", data={"token": "x"})
    assert bad.status_code == 422 and bad.json()["code"] == "validation_failed"


def test_expired_access_token_gets_invalid_token_challenge(backend: Any, tmp_path: Any) -> None:
    srv = start_server(data_dir=tmp_path, database_url=backend.url, access_token_ttl_seconds=30)
    try:
        user = srv.core.users.create(f"n{uuid.uuid4().hex[:8]}", "password-123")
        with srv.client() as client:
            pair = client.post("/v1/auth/token", data={"username": user.username, "password": "password-123"}).json()
            # expire it in the database (as 30 s would), and let the cache forget it
            from sqlalchemy import update

            from strongroom.db import utcnow
            from strongroom.models import AuthSession

            with srv.core.db.session() as session:
                session.execute(update(AuthSession).where(AuthSession.user_id == user.id)
                                .values(access_expires_at=utcnow()))
            srv.core.sessions._cache.clear()
            expired = client.get("/v1/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
            anonymous = client.get("/v1/me")
        assert expired.status_code == 401
        assert expired.headers["www-authenticate"] == 'Bearer realm="strongroom", error="invalid_token"'
        assert anonymous.headers["www-authenticate"] == 'Bearer realm="strongroom"'
    finally:
        srv.stop()


def test_trailing_slash_is_a_clear_404_never_an_empty_redirect(client: Any, users: Any) -> None:
    user = users.create()
    for method, path in (("POST", "/v1/api-keys/"), ("GET", "/v1/exchange-accounts/"), ("GET", "/v1/me/")):
        response = client.request(method, path, json={"name": "x"} if method == "POST" else None,
                                  headers=user.headers, follow_redirects=False)
        assert response.status_code == 404, (path, response.status_code)
        assert response.json()["code"] == "not_found" and response.content


def test_unknown_exchange_suggests_the_nearest_ids(client: Any, users: Any) -> None:
    user = users.create()
    response = client.post("/v1/exchange-accounts", headers=user.headers,
                           json={"exchange": "binanse", "credentials": {"api_key": "k", "secret": "s"}})
    assert response.status_code == 422
    assert "did you mean binance" in response.json()["errors"]["exchange"]
    assert "did you mean binance" in client.get("/v1/exchanges/binanse").json()["detail"]
