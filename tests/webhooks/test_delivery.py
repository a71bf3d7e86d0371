"""Webhook deliveries in process, on SQLite and PostgreSQL, to a real HTTP receiver on loopback: every delivery
is verified with the ``standardwebhooks`` package (v1) or ``cryptography`` (Ed25519 v1a). Events are recorded
with ``strongroom.events.record`` in a transaction of the test's, or by the real paths (revoking a key)."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select, update
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from support.receiver import Answer, Receiver
from support.services import new_user
from support.webhooks import FAST, deliveries, emit, running, wait_attempted, wait_idle, wait_status

from strongroom.enums import DeliveryStatus, EventType
from strongroom.errors import ValidationFailed
from strongroom.events import record
from strongroom.models import Event, Job, WebhookDelivery
from strongroom.principal import Principal


def test_a_delivery_follows_standard_webhooks_and_verifies(make_core):
    core = make_core(**FAST)
    alice = new_user(core)
    with Receiver() as receiver:
        endpoint, secret = core.webhooks.create(alice, url=receiver.url, description="bot")
        assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) >= 24
        event_id = emit(core, alice.user_id, account_id=7, name="main")
        with running(core):
            [got] = receiver.wait(1)
            [delivery] = wait_status(core, alice, endpoint.id, DeliveryStatus.DELIVERED)
    payload = Webhook(secret).verify(got.body, got.headers)  # raises unless the v1 signature is right
    assert payload["type"] == "exchange_account.connected"
    assert payload["data"] == {"account_id": 7, "name": "main"}
    assert payload["timestamp"].endswith("Z")
    assert got.headers["webhook-id"] == event_id == delivery.event_id
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 30
    assert got.headers["content-type"] == "application/json"
    assert got.headers["host"] == receiver.url.split("/")[2]
    assert secret not in got.body.decode() and "whsec_" not in got.body.decode()
    with pytest.raises(WebhookVerificationError):  # another secret does not verify it: the check can fail
        Webhook("whsec_" + base64.b64encode(b"x" * 32).decode()).verify(got.body, got.headers)
    [attempt] = delivery.attempt_log
    assert (attempt.attempt, attempt.status_code, attempt.error_kind, attempt.response_excerpt) == (1, 200, None, "ok")
    assert attempt.latency_ms > 0


def test_ed25519_endpoints_sign_v1a_which_the_public_key_verifies(make_core):
    core = make_core(**FAST)
    alice = new_user(core)
    with Receiver() as receiver:
        endpoint, public = core.webhooks.create(alice, url=receiver.url, signing="ed25519")
        assert public.startswith("whpk_") and endpoint.public_key == public
        emit(core, alice.user_id)
        with running(core):
            [got] = receiver.wait(1)
    scheme, signature = got.headers["webhook-signature"].split(",", 1)
    assert scheme == "v1a"
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public.removeprefix("whpk_")))
    signed = f"{got.headers['webhook-id']}.{got.headers['webhook-timestamp']}.".encode() + got.body
    key.verify(base64.b64decode(signature), signed)  # raises InvalidSignature if wrong
    from cryptography.exceptions import InvalidSignature

    with pytest.raises(InvalidSignature):
        key.verify(base64.b64decode(signature), signed + b" ")


def test_a_receiver_answering_500_twice_then_200_gets_exactly_three_attempts(make_core):
    core = make_core(**FAST)
    alice = new_user(core)
    with Receiver(lambda n: Answer(500, body=b"boom") if n <= 2 else Answer(200)) as receiver:
        endpoint, secret = core.webhooks.create(alice, url=receiver.url)
        emit(core, alice.user_id)
        with running(core):
            [delivery] = wait_status(core, alice, endpoint.id, DeliveryStatus.DELIVERED)
            time.sleep(1.0)  # nothing more comes
        assert len(receiver.received) == 3
    assert [a.status_code for a in delivery.attempt_log] == [500, 500, 200]
    assert [a.error_kind for a in delivery.attempt_log] == ["status", "status", None]
    assert delivery.attempt_log[0].response_excerpt == "boom"
    assert delivery.attempts == 3
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert len(ids) == 1  # the same message id on every attempt
    for got in receiver.received:
        Webhook(secret).verify(got.body, got.headers)
    gaps = [b.at - a.at for a, b in zip(receiver.received, receiver.received[1:], strict=False)]
    assert all(g >= 0.25 for g in gaps), gaps  # the retry schedule (0.3 s, jittered ±10 %)
    assert core.webhooks.get(alice, endpoint.id).failing_since is None  # delivered: not failing


def test_retries_stop_when_the_schedule_is_spent(make_core):
    core = make_core(**{**FAST, "webhook_retry_seconds": "0.2,0.2"})
    alice = new_user(core)
    with Receiver(lambda n: Answer(503)) as receiver:
        endpoint, _ = core.webhooks.create(alice, url=receiver.url)
        emit(core, alice.user_id)
        with running(core):
            [delivery] = wait_status(core, alice, endpoint.id, DeliveryStatus.FAILED)
            time.sleep(0.8)
        assert len(receiver.received) == 3  # the first attempt and two retries
    assert delivery.attempts == 3
    view = core.webhooks.get(alice, endpoint.id)
    assert view.enabled and view.failing_since is not None


def test_retry_after_is_honoured(make_core):
    core = make_core(**{**FAST, "webhook_retry_seconds": "30"})  # the schedule alone would wait 30 s
    alice = new_user(core)
    with Receiver(lambda n: Answer(429, headers=(("Retry-After", "1"),)) if n == 1 else Answer(200)) as receiver:
        endpoint, _ = core.webhooks.create(alice, url=receiver.url)
        emit(core, alice.user_id)
        with running(core):
            wait_status(core, alice, endpoint.id, DeliveryStatus.DELIVERED, timeout=25)
        first, second = receiver.received
    # at least the Retry-After, and well before the schedule's 27-33 s (a busy machine adds seconds: no tighter)
    assert 0.9 <= second.at - first.at < 25


def test_410_gone_disables_the_endpoint_with_an_event(make_core):
    core = make_core(**FAST)
    alice = new_user(core)
    with Receiver(lambda n: Answer(410)) as receiver, Receiver() as other:
        gone, _ = core.webhooks.create(alice, url=receiver.url)
        _watcher, secret = core.webhooks.create(alice, url=other.url, event_types=["webhook.disabled"])
        emit(core, alice.user_id)
        with running(core):
            wait_status(core, alice, gone.id, DeliveryStatus.FAILED)
            [notice] = other.wait(1)
            time.sleep(0.7)
        assert len(receiver.received) == 1  # no retry after a 410
    view = core.webhooks.get(alice, gone.id)
    assert not view.enabled and view.disabled_reason == "the receiver answered 410 Gone"
    payload = Webhook(secret).verify(notice.body, notice.headers)
    assert payload["type"] == "webhook.disabled" and payload["data"]["endpoint_id"] == gone.id
    # a disabled endpoint gets no new deliveries
    emit(core, alice.user_id)
    assert len(deliveries(core, alice, gone.id)) == 1


def test_an_endpoint_failing_for_days_is_disabled(make_core):
    core = make_core(**{**FAST, "webhook_retry_seconds": ",".join(["0.5"] * 40)})
    alice = new_user(core)
    with Receiver(lambda n: Answer(500)) as receiver:
        endpoint, _ = core.webhooks.create(alice, url=receiver.url)
        from sqlalchemy import update

        from strongroom.db import utcnow
        from strongroom.models import WebhookEndpoint

        with core.db.session() as session:  # it has been failing for 5 days and a minute (the default's limit)
            session.execute(update(WebhookEndpoint).where(WebhookEndpoint.public_id == endpoint.id)
                            .values(failing_since=utcnow() - timedelta(days=5, minutes=1)))
        emit(core, alice.user_id)
        with running(core):
            deadline = time.monotonic() + 30
            while core.webhooks.get(alice, endpoint.id).enabled:
                assert time.monotonic() < deadline, "the failing endpoint was not disabled"
                time.sleep(0.05)
    view = core.webhooks.get(alice, endpoint.id)
    assert view.disabled_reason is not None and "failed for" in view.disabled_reason
    with core.db.session() as session:
        types = list(session.scalars(select(Event.type).where(Event.user_id == alice.user_id)))
    assert EventType.WEBHOOK_DISABLED in types


def test_after_a_rotation_both_secrets_sign_for_a_day(make_core):
    core = make_core(**FAST)
    alice = new_user(core)
    with Receiver() as receiver:
        endpoint, old = core.webhooks.create(alice, url=receiver.url)
        rotated, new = core.webhooks.rotate_secret(alice, endpoint.id)
        assert new != old and new.startswith("whsec_")
        assert rotated.previous_secret_expires_at is not None
        assert 86_000 < rotated.previous_secret_expires_at.timestamp() - time.time() <= 86_400
        emit(core, alice.user_id)
        with running(core):
            [got] = receiver.wait(1)
    signatures = got.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    Webhook(old).verify(got.body, got.headers)
    Webhook(new).verify(got.body, got.headers)


def test_the_previous_secret_stops_signing_when_its_day_is_over(make_core):
    core = make_core(**FAST)
    alice = new_user(core)
    with Receiver() as receiver:
        endpoint, old = core.webhooks.create(alice, url=receiver.url)
        _, new = core.webhooks.rotate_secret(alice, endpoint.id)
        from sqlalchemy import update

        from strongroom.models import WebhookEndpoint

        with core.db.session() as session:  # a day later
            session.execute(update(WebhookEndpoint).where(WebhookEndpoint.public_id == endpoint.id)
                            .values(previous_expires_at=time.time() - 1))
        emit(core, alice.user_id)
        with running(core):
            [got] = receiver.wait(1)
    assert len(got.headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(got.body, got.headers)


def test_revoking_a_key_delivers_api_key_revoked_within_two_seconds(make_core):
    core = make_core(**FAST)
    alice = new_user(core)
    key, _ = core.api_keys.create(alice, name="bot")
    with Receiver() as receiver:
        _, secret = core.webhooks.create(alice, url=receiver.url, event_types=["api_key.revoked"])
        with running(core):
            wait_idle(core)  # its first round of scheduled jobs is over: the delivery's job gets a slot at once
            start = time.monotonic()
            core.api_keys.delete(alice, key.key_id)
            [got] = receiver.wait(1, timeout=2)
            assert got.at - start < 2
    payload = Webhook(secret).verify(got.body, got.headers)
    assert payload["type"] == "api_key.revoked"
    assert payload["data"]["key_id"] == key.key_id and payload["data"]["name"] == "bot"


def test_each_endpoint_gets_only_what_it_may_see_and_asked_for(make_core):
    core = make_core(**FAST)
    alice, bob = new_user(core), new_user(core)
    admin_user = core.users.create(f"adm{time.time_ns()}", "password-123", is_admin=True)
    admin = Principal(user_id=admin_user.id, username=admin_user.username, is_admin=True)
    with Receiver() as ra, Receiver() as rb, Receiver() as radmin, Receiver() as rfilter:
        core.webhooks.create(alice, url=ra.url)
        core.webhooks.create(bob, url=rb.url)
        core.webhooks.create(admin, url=radmin.url)
        core.webhooks.create(alice, url=rfilter.url, event_types=["api_key.revoked"])
        emit(core, alice.user_id, note="alice's")
        emit(core, bob.user_id, note="bob's")
        emit(core, alice.user_id, EventType.MASTER_KEY_ROTATED, version=2)  # admin-only
        with running(core):
            ra.wait(1)
            rb.wait(1)
            radmin.wait(1)
            time.sleep(0.8)
    assert [json.loads(r.body)["data"] for r in ra.received] == [{"note": "alice's"}]
    assert [json.loads(r.body)["data"] for r in rb.received] == [{"note": "bob's"}]
    assert [json.loads(r.body)["type"] for r in radmin.received] == ["master_key.rotated"]
    assert rfilter.received == []


def test_an_admins_all_users_endpoint_receives_every_users_events(make_core):
    """An admin's ``all_users`` endpoint gets every user's events (narrowed by its event_types) and the
    admin-only ones; users' own endpoints are unchanged, and a test event goes to its one endpoint only."""
    core = make_core(**FAST)
    alice, bob = new_user(core), new_user(core)
    admin_user = core.users.create(f"adm{time.time_ns()}", "password-123", is_admin=True)
    admin = Principal(user_id=admin_user.id, username=admin_user.username, is_admin=True)
    with Receiver() as firehose, Receiver() as own, Receiver() as admins_own:
        mine, _ = core.webhooks.create(alice, url=own.url)
        everyone, secret = core.webhooks.create(admin, url=firehose.url, all_users=True, event_types=[
            "exchange_account.connected", "master_key.rotated"])
        core.webhooks.create(admin, url=admins_own.url, event_types=["exchange_account.connected"])
        assert everyone.all_users and not mine.all_users
        with pytest.raises(ValidationFailed):
            core.webhooks.create(alice, url=own.url, all_users=True)
        emit(core, alice.user_id, account_id=1)
        emit(core, bob.user_id, account_id=2)
        emit(core, bob.user_id, EventType.API_KEY_REVOKED, key_id="k")  # not among the endpoint's types
        emit(core, None, EventType.MASTER_KEY_ROTATED, version=2)  # admin-only
        core.webhooks.test(alice, mine.id)
        with running(core):
            firehose.wait(3)
            own.wait(2)
            time.sleep(0.5)
    got = [json.loads(r.body) for r in firehose.received]
    assert sorted((g["type"], g["data"].get("account_id")) for g in got) == [
        ("exchange_account.connected", 1), ("exchange_account.connected", 2), ("master_key.rotated", None)]
    for r in firehose.received:
        Webhook(secret).verify(r.body, r.headers)
    assert sorted(json.loads(r.body)["type"] for r in own.received) == ["exchange_account.connected", "webhook.test"]
    assert admins_own.received == []  # an admin's own endpoint: the admin's events only, as before


def test_an_event_rolled_back_has_no_delivery(make_core):
    core = make_core(**FAST)
    alice = new_user(core)
    endpoint, _ = core.webhooks.create(alice, url="http://127.0.0.1:9/x")
    with pytest.raises(RuntimeError), core.db.session() as session:
        record(session, EventType.EXCHANGE_ACCOUNT_CONNECTED, user_id=alice.user_id, data={})
        raise RuntimeError("the change failed")
    with core.db.session() as session:
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
    assert deliveries(core, alice, endpoint.id) == []


def test_test_events_and_replays_go_to_that_endpoint_only(make_core):
    core = make_core(**FAST)
    alice = new_user(core)
    with Receiver() as one, Receiver() as two:
        first, secret = core.webhooks.create(alice, url=one.url)
        core.webhooks.create(alice, url=two.url)
        pending = core.webhooks.test(alice, first.id)
        assert pending.event_type == "webhook.test" and pending.status == DeliveryStatus.PENDING
        with running(core):
            [got] = one.wait(1)
            wait_status(core, alice, first.id, DeliveryStatus.DELIVERED)
            again = core.webhooks.replay(alice, first.id, pending.id)
            assert again.id != pending.id and again.event_id == pending.event_id
            _, second = one.wait(2)
            time.sleep(0.5)
        assert two.received == []
    assert Webhook(secret).verify(got.body, got.headers)["type"] == "webhook.test"
    assert second.headers["webhook-id"] == got.headers["webhook-id"]  # a replay is the same message
    Webhook(secret).verify(second.body, second.headers)


@pytest.mark.parametrize("action", ["test", "replay"])
def test_an_endpoint_disabled_while_a_test_or_replay_is_asked_gets_no_delivery(make_core, action):
    """The owner disables an endpoint right after a test or replay read it enabled: the test or replay is refused
    (409) and adds no delivery, or is answered before the disable lands. Before, the replay added a delivery to
    the disabled endpoint (answered as pending, then failed unsent), and the test's fan-out found no enabled
    endpoint, so the test failed reading its delivery (a 500)."""
    from support.interleave import commit_after

    from strongroom.errors import Conflict

    core = make_core(**FAST)
    alice = new_user(core)
    endpoint, _ = core.webhooks.create(alice, url="http://127.0.0.1:9/hook")
    first = core.webhooks.test(alice, endpoint.id)
    before = len(deliveries(core, alice, endpoint.id))
    with core.db.session() as session:
        events_before = session.scalar(select(func.count()).select_from(Event))

    def ask() -> object:
        if action == "test":
            return core.webhooks.test(alice, endpoint.id)
        return core.webhooks.replay(alice, endpoint.id, first.id)

    with commit_after(core.db.engine, 0, lambda: core.webhooks.update(alice, endpoint.id, {"enabled": False})) as seen, \
            pytest.raises(Conflict, match="disabled"):
        ask()
    assert seen[0].lstrip().upper().startswith("SELECT")  # the disable landed right after the endpoint was read
    assert core.webhooks.get(alice, endpoint.id).enabled is False
    assert len(deliveries(core, alice, endpoint.id)) == before
    with core.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == events_before


def test_the_delivery_refuses_a_private_address_when_not_allowed(make_core):
    """The guard runs again at delivery time: an endpoint created while private addresses were allowed (or
    whose name now resolves elsewhere) is not sent to when they are not."""
    lenient = make_core(**FAST)
    alice = new_user(lenient)
    with Receiver() as receiver:
        endpoint, _ = lenient.webhooks.create(alice, url=receiver.url)
        strict = make_core(**{**FAST, "webhook_allow_private": False, "webhook_retry_seconds": "60"})
        emit(strict, alice.user_id)
        with running(strict):
            found = wait_attempted(strict, alice, endpoint.id)
        assert receiver.received == []
    assert found[0].attempt_log[0].error_kind == "address_refused"
    assert found[0].status == DeliveryStatus.PENDING  # retried later, per the schedule


def test_metrics_count_deliveries_by_status_endpoints_by_state_and_attempts_by_outcome(make_core):
    core = make_core(**FAST)
    alice = new_user(core)
    with Receiver(lambda n: Answer(410)) as gone, Receiver() as fine:
        core.webhooks.create(alice, url=gone.url)
        core.webhooks.create(alice, url=fine.url)
        emit(core, alice.user_id)
        with running(core):
            gone.wait(1)
            fine.wait(2)  # the event, then the webhook.disabled of the other endpoint
            deadline = time.monotonic() + 10
            while b'strongroom_webhook_deliveries{status="delivered"} 2.0' not in core.metrics.exposition():
                assert time.monotonic() < deadline
                time.sleep(0.05)
    text = core.metrics.exposition().decode()
    assert 'strongroom_webhook_deliveries{status="failed"} 1.0' in text
    assert 'strongroom_webhook_deliveries{status="pending"} 0.0' in text
    assert 'strongroom_webhook_endpoints{status="disabled"} 1.0' in text
    assert 'strongroom_webhook_endpoints{status="enabled"} 1.0' in text
    assert 'strongroom_webhook_attempts_total{outcome="delivered"} 2.0' in text
    assert 'strongroom_webhook_attempts_total{outcome="gone"} 1.0' in text


def test_a_claim_takes_one_batch_and_two_claims_never_share_a_delivery(make_core):
    """On PostgreSQL a LIMIT inside an UPDATE's subquery is no limit (the planner may run it again with SKIP
    LOCKED finding new rows): a claim takes exactly one batch, and concurrent claims split the deliveries."""
    from concurrent.futures import ThreadPoolExecutor

    from strongroom.webhooks import Deliverer
    from strongroom.webhooks.delivery import BATCH

    core = make_core(**FAST)
    alice = new_user(core)
    endpoint, _ = core.webhooks.create(alice, url="http://127.0.0.1:9/x")
    with core.db.session() as session:
        for n in range(BATCH * 2 + 50):
            record(session, EventType.BALANCES_CHANGED, user_id=alice.user_id, data={"n": n})
        endpoint_row = session.execute(select(WebhookDelivery.endpoint_id)).scalars().first()
    deliverer = Deliverer(core.db, core.vault, core.settings)
    with ThreadPoolExecutor(3) as pool:
        batches = list(pool.map(lambda job: deliverer.claim(endpoint_row, job), [101, 102, 103]))
    sizes = sorted(len(b.items) for b in batches)
    assert sizes == [50, BATCH, BATCH]
    ids = [i.id for b in batches for i in b.items]
    assert len(ids) == len(set(ids)) == BATCH * 2 + 50
    assert endpoint.id


def test_a_run_that_lost_its_lease_claims_no_more_and_the_new_run_takes_its_deliveries(make_core):
    """A delivery job's run that stalled past its lease (another runner took the job: attempt 2) stops at its next
    batch instead of sending beside the new run; the new run takes back what the stalled one held."""
    from strongroom.jobs import JobQueue
    from strongroom.webhooks import Deliverer
    from strongroom.webhooks.delivery import BATCH
    from strongroom.webhooks.fanout import DELIVER

    core = make_core(**FAST)
    alice = new_user(core)
    core.webhooks.create(alice, url="http://127.0.0.1:9/x")
    with core.db.session() as session:
        for n in range(BATCH + 10):
            record(session, EventType.BALANCES_CHANGED, user_id=alice.user_id, data={"n": n})
    stalled_queue, other_queue = JobQueue(core.db, holder="stalled"), JobQueue(core.db, holder="other")
    [stalled] = stalled_queue.claim([DELIVER], 1, lease_seconds=30)
    endpoint_id = stalled.payload["endpoint_id"]
    deliverer = Deliverer(core.db, core.vault, core.settings)
    first = deliverer.claim(endpoint_id, stalled.id, stalled)
    assert first is not None and len(first.items) == BATCH  # its first batch, under a live lease
    with core.db.session() as session:  # it stalls past its lease (the clock moved on, say)
        session.execute(update(Job).where(Job.id == stalled.id).values(lease_expires_at=time.time() - 1))
    [again] = other_queue.claim([DELIVER], 1, lease_seconds=30)
    assert (again.id, again.attempt) == (stalled.id, 2)
    assert deliverer.claim(endpoint_id, stalled.id, stalled) is None  # the stalled run stops here
    taken = deliverer.claim(endpoint_id, again.id, again)
    assert taken is not None
    assert sorted(i.id for i in taken.items) == sorted(i.id for i in first.items)  # what the stalled run held


@pytest.mark.parametrize("status", [None, DeliveryStatus.SENDING])
@pytest.mark.parametrize("after", range(3))
def test_a_delivery_read_while_its_attempt_is_recorded_is_one_state(make_core, after, status):
    """The delivery list is one snapshot: an attempt recorded (forced) after any statement of the read shows
    either the delivery still sending with no attempt, or pending again with it, never sending with it (on
    PostgreSQL's READ COMMITTED each statement sees newer commits); a list filtered by status shows only
    deliveries of that status."""
    from sqlalchemy import event

    from strongroom.db import utcnow
    from strongroom.webhooks import Deliverer
    from strongroom.webhooks.delivery import Outcome

    core = make_core(**{**FAST, "webhook_retry_seconds": "60"})
    alice = new_user(core)
    endpoint, _ = core.webhooks.create(alice, url="http://127.0.0.1:9/x")
    emit(core, alice.user_id)
    with core.db.session() as session:
        endpoint_row = session.execute(select(WebhookDelivery.endpoint_id)).scalar_one()
    writer = Deliverer(core.db, core.vault, core.settings)
    batch = writer.claim(endpoint_row, 7)
    assert batch is not None and len(batch.items) == 1
    outcome = Outcome(batch.items[0], utcnow(), None, 1.0, "connect")
    seen: list[str] = []

    def interleave(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)
        if len(seen) == after + 1:
            writer.record(batch, [outcome], 7)  # another connection commits between the read's statements

    reader = make_core(**FAST)
    event.listen(reader.db.engine, "after_cursor_execute", interleave)
    try:
        views = reader.webhooks.deliveries(alice, endpoint.id, status=status).items
    finally:
        event.remove(reader.db.engine, "after_cursor_execute", interleave)
    assert len(seen) > after, "the read ran fewer statements than this interleaving needs"
    if status is not None:
        assert [v.status for v in views] in ([], [status])
    for view in views:
        assert (view.status, len(view.attempt_log), view.attempts) in {
            (DeliveryStatus.SENDING, 0, 0), (DeliveryStatus.PENDING, 1, 1)}, (view.status, view.attempt_log)
    if status is None:
        assert len(views) == 1


def test_a_delivery_follows_no_redirect_and_ignores_proxy_variables(make_core, monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # a proxy that is not there: used, it would fail
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    core = make_core(**{**FAST, "webhook_retry_seconds": "0.3"})
    alice = new_user(core)
    with Receiver() as target, Receiver(lambda n: Answer(302, headers=(("Location", target.url),))
                                        if n == 1 else Answer(200)) as receiver:
        endpoint, _ = core.webhooks.create(alice, url=receiver.url)
        emit(core, alice.user_id)
        with running(core):
            [delivery] = wait_status(core, alice, endpoint.id, DeliveryStatus.DELIVERED)
        assert target.received == []  # the redirect was not followed
        assert len(receiver.received) == 2  # straight to the receiver, no proxy; the 302 was a failed attempt
    assert [(a.status_code, a.error_kind) for a in delivery.attempt_log] == [(302, "status"), (200, None)]


@pytest.fixture
def tls_names(monkeypatch, tmp_path):
    """Names under ``.test`` resolve to 127.0.0.1 (DNS is the network edge: mocked); a throw-away CA whose
    server certificate names ``hooks.test`` only (``STRONGROOM_WEBHOOK_CA_FILE`` makes deliveries trust it)."""
    import socket

    from support.tls import authority

    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".test"):
            return real("127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return authority(tmp_path / "tls", ["hooks.test"])


def test_an_https_delivery_checks_the_certificate_for_the_urls_name(make_core, tls_names):
    """Connected to the vetted address, the delivery still sends the URL's name as SNI and checks the
    certificate against it; the Host header is the name too. Without the operator's CA file the same
    receiver is refused (certifi's CAs do not know the test CA)."""
    untrusting = make_core(**FAST)
    core = make_core(**{**FAST, "webhook_ca_file": str(tls_names.ca_file)})
    alice = new_user(core)
    with Receiver(tls=tls_names.server_context()) as receiver:
        endpoint, secret = core.webhooks.create(alice, url=f"https://hooks.test:{receiver.port}/hooks/ü")
        emit(core, alice.user_id)
        with running(untrusting):
            tried = wait_attempted(untrusting, alice, endpoint.id)
        assert receiver.received == [] and tried[0].attempt_log[0].error_kind == "connect"
        with running(core):
            [got] = receiver.wait(1)
            wait_status(core, alice, endpoint.id, DeliveryStatus.DELIVERED)
    assert got.headers["host"] == f"hooks.test:{receiver.port}" and got.path == "/hooks/%C3%BC"
    Webhook(secret).verify(got.body, got.headers)


def test_an_unreadable_ca_file_is_refused_at_start(tmp_path, tls_names):
    from pydantic import ValidationError

    from strongroom.settings import Settings

    assert Settings(data_dir=tmp_path, webhook_ca_file=tls_names.ca_file).webhook_ca_file == tls_names.ca_file
    (tmp_path / "not.pem").write_text("not a certificate")
    for bad in (tmp_path / "missing.pem", tmp_path / "not.pem"):
        with pytest.raises(ValidationError, match="a readable PEM file of CA certificates"):
            Settings(data_dir=tmp_path, webhook_ca_file=bad)


def test_a_connection_checked_for_one_name_never_carries_another_names_delivery(make_core, tls_names):
    """Two endpoints whose names resolve to the same address and port: the connection kept alive after the
    first one's certificate check is not reused for the second, whose name the certificate does not hold."""
    core = make_core(**{**FAST, "webhook_retry_seconds": "60", "webhook_ca_file": str(tls_names.ca_file)})
    alice = new_user(core)
    with Receiver(tls=tls_names.server_context()) as receiver:
        good, _ = core.webhooks.create(alice, url=f"https://hooks.test:{receiver.port}/hooks")
        with running(core):
            emit(core, alice.user_id)
            receiver.wait(1)
            wait_status(core, alice, good.id, DeliveryStatus.DELIVERED)  # its connection is now idle in a pool
            other, _ = core.webhooks.create(alice, url=f"https://other.test:{receiver.port}/hooks")
            emit(core, alice.user_id)
            wait_status(core, alice, good.id, DeliveryStatus.DELIVERED, count=2)
            found = wait_attempted(core, alice, other.id)
        assert len(receiver.received) == 2
    assert {r.headers["host"] for r in receiver.received} == {f"hooks.test:{receiver.port}"}
    assert found[0].status == DeliveryStatus.PENDING
    assert [a.error_kind for a in found[0].attempt_log] == ["connect"]  # the certificate does not name other.test


def test_connections_are_kept_for_max_pools_receivers_while_used_and_a_pool_in_use_is_never_closed(make_core,
                                                                                                   monkeypatch):
    import asyncio

    from strongroom.enums import WebhookSigning
    from strongroom.webhooks import delivery
    from strongroom.webhooks.delivery import Batch, Deliverer, Item
    from strongroom.webhooks.signing import Signer, new_hmac_secret

    monkeypatch.setattr(delivery, "MAX_POOLS", 2)
    core = make_core(**FAST)
    deliverer = Deliverer(core.db, core.vault, core.settings)
    signer = Signer(WebhookSigning.HMAC, [new_hmac_secret()])

    def batch(url: str, n: int) -> Batch:
        return Batch(1, 1, url, signer, [Item(i, 0, f"msg_{i}", b"{}") for i in range(n)])

    async def scenario(urls: list[str]) -> tuple[list[int | None], int, int]:
        first = deliverer._take(("http", "127.0.0.1", 1, "held"))  # a batch still sending (held, never closed)
        codes = []
        for url in urls:
            codes.extend(o.status_code for o in await deliverer.send(batch(url, 3)))
        pools = deliverer._pools[asyncio.get_running_loop()]
        kept, held = len(pools), int(any(p is first for p in pools.values()))
        await deliverer._give_back(first)
        await deliverer.aclose()
        return codes, kept, held

    with Receiver() as one, Receiver() as two, Receiver() as three:
        codes, kept, held = asyncio.run(scenario([one.url, two.url, three.url, one.url]))
        assert codes == [200] * 12
        assert kept == 2 and held == 1  # the held pool and the last used one; the others were closed
        assert len(one.received) == 6
        monkeypatch.setattr(delivery, "MAX_POOLS", 10)
        monkeypatch.setattr(delivery, "KEEPALIVE_SECONDS", 0.0)  # unused for 0 s: closed at every give-back
        codes, kept, held = asyncio.run(scenario([one.url, two.url, three.url]))
        assert codes == [200] * 9
        assert kept == 1 and held == 1  # only the one in use is left

    async def the_sweep_closes_what_is_idle() -> tuple[int, bool]:  # no batch ends: the sweep's close_idle
        busy, idle = deliverer._take(("http", "127.0.0.1", 1, "busy")), deliverer._take(("http", "127.0.0.1", 2, "idle"))
        idle.users -= 1
        await deliverer.close_idle()
        pools = deliverer._pools[asyncio.get_running_loop()]
        return len(pools), next(iter(pools.values())) is busy

    assert asyncio.run(the_sweep_closes_what_is_idle()) == (1, True)


def test_an_internationalised_host_and_path_are_sent_in_their_ascii_forms():
    from strongroom.webhooks import guard

    target = guard.parse("https://BÜCHER.example:8443/hooks?x=1")
    assert (target.host, target.port, target.path) == ("xn--bcher-kva.example", 8443, "/hooks?x=1")
    assert guard.parse("https://example.com/hooks/bücher?q=é&a=%20b").path == "/hooks/b%C3%BCcher?q=%C3%A9&a=%20b"
    with pytest.raises(guard.BadRequest):
        guard.parse("https://b\u00fccher..example/hooks")


def test_the_sweep_requeues_deliveries_of_dead_jobs_and_deletes_old_finished_ones(make_core):

    from sqlalchemy import update

    from strongroom.db import utcnow
    from strongroom.jobs import ClaimedJob
    from strongroom.models import WebhookAttempt
    from strongroom.webhooks import Deliverer

    core = make_core(**FAST)
    alice = new_user(core)
    endpoint, _ = core.webhooks.create(alice, url="http://127.0.0.1:9/x")
    for n in range(3):
        emit(core, alice.user_id, n=n)
    [old, held, waiting] = sorted(d.id for d in deliveries(core, alice, endpoint.id))
    with core.db.session() as session:
        ids = dict(session.execute(select(WebhookDelivery.public_id, WebhookDelivery.id)).tuples().all())
        session.execute(update(WebhookDelivery).where(WebhookDelivery.public_id == old).values(
            status=DeliveryStatus.DELIVERED, updated_at=utcnow() - timedelta(days=31)))
        session.add(WebhookAttempt(delivery_id=ids[old], attempt=1, status_code=200, latency_ms=1.0))
        session.execute(update(WebhookDelivery).where(WebhookDelivery.public_id == held).values(
            status=DeliveryStatus.SENDING, claim_job_id=999_999))  # a job that does not exist (dead, pruned)
    Deliverer(core.db, core.vault, core.settings).sweep(ClaimedJob(1, "webhooks.sweep", {}, 1, 1, "test"))
    left = {d.id: d.status for d in deliveries(core, alice, endpoint.id)}
    assert left == {held: DeliveryStatus.PENDING, waiting: DeliveryStatus.PENDING}
    with core.db.session() as session:
        assert session.scalar(select(func.count()).select_from(WebhookAttempt)) == 0  # went with its delivery
