"""Smoke: health, readiness, sign-in and /v1/me over real HTTP on each backend."""


def test_health_and_ready(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"


def test_me_with_token(client, users):
    user = users.create()
    me = client.get("/v1/me", headers=user.headers)
    assert me.status_code == 200
    assert me.json()["username"] == user.username and me.json()["id"] == user.id
