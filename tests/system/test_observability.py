"""Issue 14 items 4 and 5: metrics, request ids, JSON logs, RateLimit headers, per-key usage."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import httpx
from support import start_server
from support.signing import sign_hmac


def _make(client: httpx.Client, user: Any, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/api-keys", json={"name": "obs", **body}, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_metrics_off_by_default_then_on_with_a_token(backend: Any, tmp_path: Any, server: Any, users: Any) -> None:
    with server.client() as client:
        assert client.get("/metrics").status_code == 404  # the shared test server keeps the default: off
    srv = start_server(data_dir=tmp_path, database_url=backend.url, metrics_enabled=True, metrics_token="scrape-me")
    try:
        with srv.client() as client:
            user = srv.core.users.create(f"m{uuid.uuid4().hex[:8]}", "password-123")
            token = client.post("/v1/auth/token", data={"username": user.username, "password": "password-123"})
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            for _ in range(3):
                assert client.get("/v1/me", headers=headers).status_code == 200
            assert client.get("/v1/me", headers={"Authorization": "Bearer sr_nonsense"}).status_code == 401
            assert client.get(f"/v1/exchange-accounts/{2**30}", headers=headers).status_code == 404
            assert client.get("/metrics").status_code == 401
            assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
            scraped = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
        text = scraped.text
        assert 'strongroom_http_requests_total{method="GET",route="/me",status="200",surface="native"} 3.0' in text
        assert 'route="/exchange-accounts/{account_id}",status="404",surface="native"' in text
        assert 'strongroom_authentications_total{outcome="ok",scheme="access_token"}' in text
        assert 'strongroom_authentications_total{outcome="malformed_key",scheme="api_key"} 1.0' in text
        assert "scrape-me" not in text and "sr_nonsense" not in text
    finally:
        srv.stop()


def test_exchange_calls_and_rate_limits_are_counted(backend: Any, tmp_path: Any, mock_exchange: Any) -> None:
    srv = start_server(data_dir=tmp_path, database_url=backend.url, metrics_enabled=True,
                       rate_limit_per_key="2/minute",
                       exchange_base_urls={"binance": mock_exchange.url, "okx": mock_exchange.url})
    try:
        with srv.client() as client:
            user = srv.core.users.create(f"m{uuid.uuid4().hex[:8]}", "password-123")
            token = client.post("/v1/auth/token", data={"username": user.username, "password": "password-123"})
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            key = client.post("/v1/api-keys", json={"name": "k"}, headers=headers).json()
            bearer = {"Authorization": f"Bearer {key['secret']}"}
            statuses = [client.get("/v1/me", headers=bearer).status_code for _ in range(3)]
            bad = client.post("/v1/exchange-accounts", headers=headers, json={
                "exchange": "binance", "credentials": {"api_key": f"k{uuid.uuid4().hex}", "secret": "s"}})
            text = client.get("/metrics").text
        assert statuses == [200, 200, 429]
        assert bad.status_code == 400
        assert 'strongroom_rate_limit_rejections_total{limit="key"} 1.0' in text
        assert 'strongroom_exchange_calls_total{operation="validate",outcome="invalid_credentials",venue="binance"}' \
            in text
        assert 'strongroom_exchange_call_seconds_count{operation="validate",venue="binance"} 1.0' in text
    finally:
        srv.stop()


def test_request_id_is_returned_and_logged(server: Any, users: Any) -> None:
    import socket
    import time

    from strongroom.logs import RequestIdFilter

    user = users.create()
    with server.client() as client:
        own = client.get("/v1/me", headers={**user.headers, "X-Request-ID": "trace-42.a"})
        assert own.headers["x-request-id"] == "trace-42.a"
        made = client.get("/v1/me", headers={**user.headers, "X-Request-ID": "bad id with spaces"})
        assert made.headers["x-request-id"] != "bad id with spaces" and len(made.headers["x-request-id"]) >= 8
        assert client.get("/healthz").headers["x-request-id"] != made.headers["x-request-id"]

    # a line logged while a request is served carries that request's id: a client that gives up
    # mid-body is logged (at info) inside the request
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.INFO)
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("strongroom.http")
    logger.addHandler(handler)
    try:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"POST /v1/auth/refresh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"X-Request-ID: abort-me-7\r\nContent-Length: 1000\r\n\r\n{\"refresh_token\": ")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any("client aborted" in r.getMessage() for r in records):
            time.sleep(0.05)
    finally:
        logger.removeHandler(handler)
    aborted = [r for r in records if "client aborted" in r.getMessage()]
    assert aborted and aborted[0].request_id == "abort-me-7"  # type: ignore[attr-defined]


def test_json_log_format(capsys: Any) -> None:
    from strongroom.logs import REQUEST_ID, configure

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure("info", "json")
        token = REQUEST_ID.set("json-req-1")
        try:
            logging.getLogger("strongroom.test").info("hello %s", "world")
        finally:
            REQUEST_ID.reset(token)
        line = capsys.readouterr().err.strip().splitlines()[-1]
        doc = json.loads(line)
        assert doc["message"] == "hello world" and doc["request_id"] == "json-req-1"
        assert doc["level"] == "INFO" and doc["logger"] == "strongroom.test" and "time" in doc
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])


def test_ratelimit_headers_on_authenticated_responses(server: Any, users: Any) -> None:
    user = users.create()
    with server.client() as client:
        key = _make(client, user)
        first = client.get("/v1/me", headers={"Authorization": f"Bearer {key['secret']}"})
        second = client.get("/v1/me", headers={"Authorization": f"Bearer {key['secret']}"})
        anonymous = client.get("/v1/exchanges")
    limit = int(server.settings.rate_limit_per_key.split("/")[0])
    assert int(first.headers["ratelimit-limit"]) == limit
    assert int(second.headers["ratelimit-remaining"]) == int(first.headers["ratelimit-remaining"]) - 1
    assert 0 <= int(first.headers["ratelimit-reset"]) <= 60
    assert "ratelimit-limit" not in anonymous.headers


def test_key_usage_per_hour_and_outcome(server: Any, users: Any) -> None:
    """A known mix: 3 ok, 2 bad signatures, 1 IP refused, 1 disabled; written in batches."""
    user = users.create()
    with server.client() as client:
        key = _make(client, user, kind="hmac")
        kid, secret = key["key_id"], key["secret"]
        for _ in range(3):
            assert client.get("/v1/me", headers=sign_hmac(kid, secret, "GET", "/v1/me")).status_code == 200
        for _ in range(2):
            assert client.get("/v1/me", headers=sign_hmac(kid, "wrong", "GET", "/v1/me")).status_code == 401
        assert client.patch(f"/v1/api-keys/{kid}", json={"ip_allowlist": ["10.9.9.9/32"]},
                            headers=user.headers).status_code == 200
        assert client.get("/v1/me", headers=sign_hmac(kid, secret, "GET", "/v1/me")).status_code == 403
        assert client.patch(f"/v1/api-keys/{kid}", json={"ip_allowlist": [], "enabled": False},
                            headers=user.headers).status_code == 200
        assert client.get("/v1/me", headers=sign_hmac(kid, secret, "GET", "/v1/me")).status_code == 401
        server.core.housekeeping.run_jobs()
        usage = client.get(f"/v1/api-keys/{kid}/usage", headers=user.headers)
        assert usage.status_code == 200, usage.text
        doc = usage.json()
        assert doc["totals"] == {"ok": 3, "rate_limited": 0, "ip_refused": 1, "expired": 0, "disabled": 1,
                                 "bad_signature": 2}
        assert len(doc["hours"]) == 1 and doc["hours"][0]["ok"] == 3
        # a range before the key existed is empty; another user's key is not found
        empty = client.get(f"/v1/api-keys/{kid}/usage", params={"to": "2020-01-01T00:00:00Z"}, headers=user.headers)
        assert empty.json()["hours"] == []
        other = users.create()
        assert client.get(f"/v1/api-keys/{kid}/usage", headers=other.headers).status_code == 404
        # a second flush adds to the same hour's row
        assert client.get("/v1/me", headers=sign_hmac(kid, secret, "GET", "/v1/me")).status_code == 401
        server.core.housekeeping.run_jobs()
        again = client.get(f"/v1/api-keys/{kid}/usage", headers=user.headers).json()
        assert again["totals"]["disabled"] == 2


def test_usage_writes_are_batched_not_per_request(backend: Any, tmp_path: Any) -> None:
    """No key_usage row (and no last_used_at) is written per request: only when the batch is."""
    from sqlalchemy import func, select

    from strongroom.models import ApiKey, KeyUsage

    srv = start_server(data_dir=tmp_path, database_url=backend.url, last_used_flush_seconds=3600)
    try:
        with srv.client() as client:
            user = srv.core.users.create(f"b{uuid.uuid4().hex[:8]}", "password-123")
            token = client.post("/v1/auth/token", data={"username": user.username, "password": "password-123"})
            key = client.post("/v1/api-keys", json={"name": "k"},
                              headers={"Authorization": f"Bearer {token.json()['access_token']}"}).json()
            for _ in range(5):
                assert client.get("/v1/me", headers={"Authorization": f"Bearer {key['secret']}"}).status_code == 200

        def written() -> tuple[int, Any]:
            with srv.core.db.session() as session:
                total = session.scalar(select(func.coalesce(func.sum(KeyUsage.count), 0))
                                       .where(KeyUsage.key_id == key["key_id"]))
                used = session.scalar(select(ApiKey.last_used_at).where(ApiKey.key_id == key["key_id"]))
            return total, used

        assert written() == (0, None)
        srv.core.housekeeping.run_jobs()
        total, used = written()
        assert total == 5 and used is not None
    finally:
        srv.stop()


def test_httpx_request_lines_only_at_debug(capsys: Any) -> None:
    """httpx logs each request at INFO with its whole URL (a webhook receiver's may carry its token)."""
    import httpx

    from strongroom.logs import configure

    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("httpx").level)
    transport = httpx.MockTransport(lambda request: httpx.Response(204))
    try:
        for level, shown in (("info", False), ("debug", True)):
            configure(level, "plain")
            with httpx.Client(transport=transport) as client:
                client.post("http://receiver.example/hooks/T000/B000/token-in-the-path")
            assert ("token-in-the-path" in capsys.readouterr().err) is shown, level
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
        logging.getLogger("httpx").setLevel(saved[2])
