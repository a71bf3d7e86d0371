"""``strongroom webhooks list|deliveries|replay`` on a fresh installation (SQLite and PostgreSQL): an endpoint and
an event are made through the services (as a request would), then read and replayed by the operator."""

from __future__ import annotations

import pytest
from support import TEST_SETTINGS
from support.services import FakeGateway, new_user

from strongroom.core import build_core
from strongroom.enums import EventType
from strongroom.events import record
from strongroom.settings import Settings


def test_webhooks_list_deliveries_replay(installed):
    core = build_core(Settings(**{**TEST_SETTINGS, "data_dir": installed.data_dir, "database_url": installed.url,
                                  "webhook_allow_private": True}), gateway=FakeGateway())
    try:
        alice = new_user(core)
        endpoint, secret = core.webhooks.create(alice, url="http://127.0.0.1:9/hook", description="bot")
        with core.db.session() as session:
            event = record(session, EventType.EXCHANGE_ACCOUNT_CONNECTED, user_id=alice.user_id, data={"account_id": 1})
    finally:
        core.close()

    listed = installed.run("webhooks", "list", "--json").json()
    assert [(e["id"], e["user_id"], e["url"], e["enabled"], e["all_users"]) for e in listed] == [
        (endpoint.id, alice.user_id, "http://127.0.0.1:9/hook", True, False)]
    assert secret not in installed.run("webhooks", "list", "--json").stdout
    assert installed.run("webhooks", "list", "--user", alice.username, "--json").json()[0]["id"] == endpoint.id
    text = installed.run("webhooks", "list").ok().stdout.splitlines()
    assert text[0].split("\t")[:2] == [endpoint.id, str(alice.user_id)]

    [delivery] = installed.run("webhooks", "deliveries", endpoint.id, "--json").json()
    assert (delivery["event_id"], delivery["event_type"], delivery["status"]) == (
        event.public_id, "exchange_account.connected", "pending")
    assert installed.run("webhooks", "deliveries", endpoint.id, "--status", "delivered", "--json").json() == []

    replayed = installed.run("webhooks", "replay", endpoint.id, delivery["id"], "--json").json()
    assert replayed["event_id"] == event.public_id and replayed["id"] != delivery["id"]
    assert len(installed.run("webhooks", "deliveries", endpoint.id, "--json").json()) == 2
    said = installed.run("webhooks", "replay", endpoint.id, delivery["id"]).ok().stdout.strip()
    assert said.startswith("delivery dlv_") and said.endswith(f"of event {event.public_id} queued")
    assert installed.run("webhooks", "replay", endpoint.id, "dlv_nope").error == "delivery not found"
    assert installed.run("webhooks", "deliveries", "wh_nope").error == "webhook endpoint not found"
    audit = installed.run("audit", "tail", "--json").json()
    assert [(e["action"], e["actor_user_id"]) for e in audit if e["action"] == "webhook.replay"] == [
        ("webhook.replay", 0), ("webhook.replay", 0)]


# The installed command, run in subprocesses: `make test`, not the quick loop (`make test-quick`).
pytestmark = pytest.mark.slow
