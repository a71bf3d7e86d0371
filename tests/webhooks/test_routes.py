"""/v1/webhooks over real HTTP on SQLite and PostgreSQL: create (the secret once), list, get, update, delete,
rotate-secret, test, deliveries and replay, with scopes and owners; the SSRF guard's 400 on the shared server
(private addresses refused, as deployed); the guard's address rules."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from support import LOGS, Users, install_log_capture, migrated_database, start_server
from support.receiver import Receiver

from strongroom.principal import Principal
from strongroom.webhooks.guard import refusal

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def hook_server(request, tmp_path_factory) -> Iterator[Any]:
    """A server of its own (a fresh database: no other runner takes its deliveries) that allows loopback
    receivers and retries fast."""
    install_log_capture()
    path = tmp_path_factory.mktemp(f"hooks-{request.param}")
    with migrated_database(request.param, path / "strongroom.db") as url:
        server = start_server(data_dir=path / "data", database_url=url, webhook_allow_private=True,
                              webhook_retry_seconds="0.3,0.3", jobs_poll_seconds=0.1)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def hook_users(hook_server) -> Users:
    return Users(hook_server)


def test_the_endpoint_lifecycle_over_http(hook_server, hook_users):
    alice = hook_users.create()
    with Receiver() as receiver, hook_server.client(headers=alice.headers) as http:
        created = http.post("/v1/webhooks", json={"url": receiver.url, "event_types": ["webhook.test"],
                                                  "description": "alerts"})
        assert created.status_code == 201, created.text
        body = created.json()
        secret, endpoint_id = body["secret"], body["id"]
        assert secret.startswith("whsec_") and endpoint_id.startswith("wh_")
        assert body["signing"] == "hmac" and body["enabled"] and body["event_types"] == ["webhook.test"]

        listed = http.get("/v1/webhooks").json()
        assert [e["id"] for e in listed["items"]] == [endpoint_id]
        got = http.get(f"/v1/webhooks/{endpoint_id}")
        assert got.status_code == 200 and "secret" not in got.json()
        assert secret not in got.text and secret not in http.get("/v1/webhooks").text

        changed = http.patch(f"/v1/webhooks/{endpoint_id}", json={"description": "renamed", "event_types": []})
        assert changed.status_code == 200 and changed.json()["description"] == "renamed"
        assert changed.json()["event_types"] == []

        sent = http.post(f"/v1/webhooks/{endpoint_id}/test")
        assert sent.status_code == 202 and sent.json()["event_type"] == "webhook.test"
        [first] = receiver.wait(1)
        assert Webhook(secret).verify(first.body, first.headers)["type"] == "webhook.test"

        deadline = time.monotonic() + 10
        while (page := http.get(f"/v1/webhooks/{endpoint_id}/deliveries").json())["items"][0]["status"] != "delivered":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        [delivery] = page["items"]
        assert delivery["attempt_log"][0]["status_code"] == 200 and delivery["attempt_log"][0]["latency_ms"] > 0

        rotated = http.post(f"/v1/webhooks/{endpoint_id}/rotate-secret")
        assert rotated.status_code == 200
        new_secret = rotated.json()["secret"]
        assert new_secret != secret and rotated.json()["previous_secret_expires_at"] is not None

        replayed = http.post(f"/v1/webhooks/{endpoint_id}/deliveries/{delivery['id']}/replay")
        assert replayed.status_code == 202 and replayed.json()["event_id"] == delivery["event_id"]
        _, second = receiver.wait(2)
        assert second.headers["webhook-id"] == first.headers["webhook-id"]
        Webhook(new_secret).verify(second.body, second.headers)
        Webhook(secret).verify(second.body, second.headers)  # within the day after the rotation

        assert http.delete(f"/v1/webhooks/{endpoint_id}").status_code == 204
        assert http.get(f"/v1/webhooks/{endpoint_id}").status_code == 404
    for shown in (secret, new_secret):
        assert shown not in LOGS.text()


def test_ed25519_creation_shows_the_public_key(hook_server, hook_users):
    alice = hook_users.create()
    with hook_server.client(headers=alice.headers) as http:
        created = http.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "signing": "ed25519"})
        assert created.status_code == 201
        assert created.json()["secret"] == created.json()["public_key"]
        assert created.json()["public_key"].startswith("whpk_")


def test_owners_scopes_and_bad_input(hook_server, hook_users):
    alice, bob = hook_users.create(), hook_users.create()
    admin = hook_users.create(admin=True)
    with hook_server.client(headers=alice.headers) as http:
        endpoint_id = http.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x"}).json()["id"]
        for bad, field in [({"url": "ftp://example.com/x"}, "url"), ({"url": "http://127.0.0.1:9/x", "signing": "rsa"},
                                                                    "signing"),
                           ({"url": "http://127.0.0.1:9/x", "event_types": ["nope"]}, "event_types"),
                           ({"url": "http://user:pw@127.0.0.1:9/x"}, "url"), ({}, "url"),
                           ({"url": "http://127.0.0.1:9/x", "extra": 1}, "extra")]:
            answer = http.post("/v1/webhooks", json=bad)
            assert 400 <= answer.status_code < 500 and answer.headers["content-type"] == PROBLEM, (bad, answer.text)
            assert answer.json()["code"]
        assert http.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x",
                                                "event_types": ["master_key.rotated"]}).status_code == 422
        not_admin = http.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "all_users": True})
        assert not_admin.status_code == 422 and not_admin.headers["content-type"] == PROBLEM, not_admin.text
        assert "all_users" in not_admin.text
        assert http.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "all_users": "yes"}).status_code == 422
        assert http.post(f"/v1/webhooks/{endpoint_id}/deliveries/dlv_nope/replay").status_code == 404
    with hook_server.client(headers=bob.headers) as http:
        for method, path in [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/rotate-secret"),
                             ("POST", "/test"), ("GET", "/deliveries")]:
            answer = http.request(method, f"/v1/webhooks/{endpoint_id}{path}", json={} if method == "PATCH" else None)
            assert answer.status_code == 404, (method, path, answer.text)
        assert http.get("/v1/webhooks").json()["items"] == []
    with hook_server.client(headers=admin.headers) as http:  # an admin sees every endpoint
        assert endpoint_id in [e["id"] for e in http.get("/v1/webhooks?limit=200").json()["items"]]
        assert http.get(f"/v1/webhooks/{endpoint_id}").status_code == 200
        firehose = http.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/all", "all_users": True})
        assert firehose.status_code == 201 and firehose.json()["all_users"] is True, firehose.text
        assert http.get(f"/v1/webhooks/{firehose.json()['id']}").json()["all_users"] is True
        assert http.get(f"/v1/webhooks/{endpoint_id}").json()["all_users"] is False
        assert http.delete(f"/v1/webhooks/{firehose.json()['id']}").status_code == 204
    # a read-only key reads but does not change
    owner = Principal(user_id=alice.id, username=alice.username)
    _, secret = hook_server.core.api_keys.create(owner, name="reader", scopes=["read"])
    with hook_server.client(headers={"Authorization": f"Bearer {secret}"}) as http:
        assert http.get(f"/v1/webhooks/{endpoint_id}").status_code == 200
        refused = http.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x"})
        assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"
        assert http.delete(f"/v1/webhooks/{endpoint_id}").status_code == 403


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://localhost:8080/hook", "http://10.1.2.3/", "http://192.168.1.1/",
    "http://172.16.0.1/", "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/", "http://0.0.0.0/",
    "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://[fd00::1]/", "http://[fe80::1]/",
])
def test_an_ssrf_url_is_refused_with_a_clear_400(server, users, url):
    """The shared server runs as deployed: private addresses are not allowed."""
    alice = users.create()
    with httpx.Client(base_url=server.url, headers=alice.headers, timeout=30) as http:
        answer = http.post("/v1/webhooks", json={"url": url})
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"] == PROBLEM
        problem = answer.json()
        assert problem["code"] == "webhook_url_refused"
        assert "does not send to" in problem["detail"] and "STRONGROOM_WEBHOOK_ALLOW_PRIVATE" in problem["detail"]
        assert http.get("/v1/webhooks").json()["items"] == []  # nothing was stored


@pytest.mark.parametrize("address,refused", [
    ("127.0.0.1", True), ("10.0.0.1", True), ("172.31.255.255", True), ("192.168.0.1", True),
    ("169.254.169.254", True), ("100.64.0.1", True), ("100.127.255.254", True), ("0.1.2.3", True),
    ("224.0.0.1", True), ("255.255.255.255", True), ("::1", True), ("::", True), ("fc00::1", True),
    ("fd00:ec2::254", True), ("fe80::1", True), ("::ffff:8.8.8.8", True), ("::ffff:10.0.0.1", True),
    ("100.100.100.200", True), ("8.8.8.8", False), ("1.1.1.1", False), ("2606:4700:4700::1111", False),
    ("100.63.255.255", False), ("100.128.0.1", False),
])
def test_the_guard_refuses_every_non_public_address(address, refused):
    assert (refusal(ipaddress.ip_address(address)) is not None) == refused


def test_a_key_bound_to_accounts_cannot_manage_or_read_webhooks(hook_server, hook_users):
    """An endpoint receives the events of every account of its user, so a key bound to some accounts may neither
    make, change, point elsewhere nor read endpoints and their deliveries (403, nothing changed); an unbound key
    of the same user may."""
    import uuid

    alice = hook_users.create()
    with hook_server.client(headers=alice.headers) as http:
        creds = {"api_key": f"bm-{uuid.uuid4().hex}", "secret": uuid.uuid4().hex}
        account = http.post("/v1/exchange-accounts", json={"exchange": "bitmex", "credentials": creds})
        assert account.status_code == 201, account.text
        endpoint = http.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/all-accounts"}).json()
        bound = http.post("/v1/api-keys", json={"name": "bound", "scopes": ["read", "write", "delete"],
                                                "account_ids": [account.json()["id"]]}).json()["secret"]
        unbound = http.post("/v1/api-keys", json={"name": "unbound", "scopes": ["read", "write"]}).json()["secret"]
    with hook_server.client(headers={"Authorization": f"Bearer {bound}"}) as http:
        for method, path, body in [("POST", "", {"url": "http://127.0.0.1:9/mine"}), ("GET", "", None),
                                   ("GET", f"/{endpoint['id']}", None),
                                   ("PATCH", f"/{endpoint['id']}", {"url": "http://127.0.0.1:9/elsewhere"}),
                                   ("DELETE", f"/{endpoint['id']}", None), ("POST", f"/{endpoint['id']}/rotate-secret", None),
                                   ("POST", f"/{endpoint['id']}/test", None), ("GET", f"/{endpoint['id']}/deliveries", None)]:
            answer = http.request(method, f"/v1/webhooks{path}", json=body)
            assert answer.status_code == 403 and answer.headers["content-type"] == PROBLEM, (method, path, answer.text)
            assert "bound" in answer.json()["detail"] and "all-accounts" not in answer.text
    with hook_server.client(headers={"Authorization": f"Bearer {unbound}"}) as http:
        shown = http.get(f"/v1/webhooks/{endpoint['id']}")
        assert shown.status_code == 200 and shown.json()["url"] == "http://127.0.0.1:9/all-accounts"  # unchanged
        assert [e["id"] for e in http.get("/v1/webhooks").json()["items"]] == [endpoint["id"]]
