"""The scheduled work every deployment runs (issue 18 item 5), on SQLite and PostgreSQL: the expiry scan
notices each key once even when two scans run at once, the key-health pass finds what the (mock) exchange
now says about each key, retention deletes only what is old, and every runner has these handlers built in."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert, select
from support import TEST_SETTINGS
from support.exchange_mock import Mock
from support.services import new_user

from strongroom.db import utcnow
from strongroom.enums import EventType, JobStatus
from strongroom.events import record
from strongroom.jobs import builtin, enqueue
from strongroom.jobs.runner import BUILTIN_HANDLERS, Registry, build_runner, load_handlers
from strongroom.models import AuditEvent, Event, EventMark, KeyUsage


def events_of(core: Any, kind: EventType) -> list[Event]:
    with core.db.session() as session:
        return list(session.scalars(select(Event).where(Event.type == kind).order_by(Event.id)))


def test_the_expiry_scan_notices_each_key_once_before_and_once_after_its_expiry(make_core):
    core = make_core(key_expiry_notice_days=7)
    principal = new_user(core)
    soon, _ = core.api_keys.create(principal, name="soon", expires_at=utcnow() + timedelta(days=3))
    core.api_keys.create(principal, name="later", expires_at=utcnow() + timedelta(days=30))
    core.api_keys.create(principal, name="never")
    assert core.api_keys.scan_expiry() == (1, 0)
    assert core.api_keys.scan_expiry() == (0, 0)  # run again (a job runs at least once): nothing more
    (expiring,) = events_of(core, EventType.API_KEY_EXPIRING)
    assert expiring.data["key_id"] == soon.key_id and expiring.user_id == principal.user_id
    assert 2 * 86_400 < expiring.data["seconds_left"] <= 3 * 86_400
    after = utcnow() + timedelta(days=4)
    assert core.api_keys.scan_expiry(after) == (0, 1)
    assert core.api_keys.scan_expiry(after + timedelta(hours=1)) == (0, 0)
    assert [e.data["key_id"] for e in events_of(core, EventType.API_KEY_EXPIRED)] == [soon.key_id]
    with core.db.session() as session:  # even with its marks gone, a key expired long ago is no news
        session.execute(EventMark.__table__.delete())
    assert core.api_keys.scan_expiry(utcnow() + timedelta(days=70)) == (0, 0)
    # a key given a new expiry is noticed again for it
    core.api_keys.update(principal, soon.key_id, {"expires_at": utcnow() + timedelta(days=2)})
    assert core.api_keys.scan_expiry() == (1, 0)


def test_two_expiry_scans_at_once_write_each_notice_once(make_core):
    one, two = make_core(), make_core()  # two processes of one deployment
    principal = new_user(one)
    keys = [one.api_keys.create(principal, name=f"k{n}", expires_at=utcnow() + timedelta(days=1))[0]
            for n in range(5)]
    barrier = threading.Barrier(2)

    def scan(core: Any) -> tuple[int, int]:
        barrier.wait(10)
        return core.api_keys.scan_expiry()

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(scan, [one, two]))
    assert sum(r[0] for r in results) == 5
    assert sorted(e.data["key_id"] for e in events_of(one, EventType.API_KEY_EXPIRING)) == sorted(
        k.key_id for k in keys)


def test_retention_deletes_only_rows_older_than_their_days(make_core):
    core = make_core(audit_retention_days=365, usage_retention_days=90, events_retention_days=30)
    principal = new_user(core)
    key, _ = core.api_keys.create(principal, name="k")
    now = utcnow()
    with core.db.session() as session:
        for age in (400, 100):
            session.execute(insert(AuditEvent).values(at=now - timedelta(days=age), action="test.old", outcome="ok",
                                                      details={}))
        for age in (100, 50):
            session.execute(insert(KeyUsage).values(key_id=key.key_id, hour=now - timedelta(days=age), outcome="ok",
                                                    count=1))
        for age in (40, 10):
            event = record(session, EventType.API_KEY_ROLLED, user_id=principal.user_id, data={"age": age})
            session.execute(Event.__table__.update().where(Event.id == event.id)
                            .values(created_at=now - timedelta(days=age)))
        for age in (100, 1):
            session.execute(insert(EventMark).values(mark=f"test:{age}", created_at=now - timedelta(days=age)))
    assert builtin.retention(core) == {"audit": 1, "usage": 1, "events": 1}
    with core.db.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "test.old")) == 1
        assert [h.replace(tzinfo=None) for h in session.scalars(select(KeyUsage.hour))] == [
            (now - timedelta(days=50)).replace(tzinfo=None)]
        assert [d["age"] for d in session.scalars(select(Event.data).where(Event.type == EventType.API_KEY_ROLLED))] \
            == [10]
        assert list(session.scalars(select(EventMark.mark).where(EventMark.mark.like("test:%")))) == ["test:1"]
    assert builtin.retention(core) == {"audit": 0, "usage": 0, "events": 0}  # again: nothing more
    keep = make_core(audit_retention_days=0, usage_retention_days=0, events_retention_days=0)
    assert builtin.retention(keep) == {}


def test_every_runner_has_the_builtin_handlers_and_schedules(make_core):
    core = make_core(balance_refresh_seconds=0, key_health_seconds=86_400)
    runner = build_runner(core)
    assert {builtin.EXPIRY_SCAN, builtin.KEY_HEALTH, builtin.BALANCE_REFRESH, builtin.RETENTION} <= set(
        runner.registry.handlers)
    assert set(runner.registry.schedules) == {builtin.EXPIRY_SCAN, builtin.KEY_HEALTH, builtin.RETENTION,
                                              "webhooks-sweep"}
    assert "strongroom.jobs.builtin:register" in BUILTIN_HANDLERS
    refreshing = load_handlers(None, Registry(services=make_core(balance_refresh_seconds=300)), BUILTIN_HANDLERS)
    assert refreshing.schedules[builtin.BALANCE_REFRESH].interval == 300
    assert load_handlers(None, Registry(), BUILTIN_HANDLERS).handlers == {}  # no process to serve: nothing


def test_a_runner_fires_the_expiry_scan_on_its_schedule(make_core):
    core = make_core(jobs_poll_seconds=0.05)
    principal = new_user(core)
    key, _ = core.api_keys.create(principal, name="soon", expires_at=utcnow() + timedelta(days=1))
    runner = build_runner(core)

    async def main() -> None:
        runner.start()
        deadline = time.monotonic() + 20
        try:
            while not await asyncio.to_thread(events_of, core, EventType.API_KEY_EXPIRING):
                assert time.monotonic() < deadline, "the scheduled expiry scan did not run"
                await asyncio.sleep(0.05)
        finally:
            await runner.stop()

    asyncio.run(main())
    assert [e.data["key_id"] for e in events_of(core, EventType.API_KEY_EXPIRING)] == [key.key_id]
    scans = [j for j in core.jobs.list(kind=builtin.EXPIRY_SCAN)]
    assert scans and all(j.status == JobStatus.SUCCEEDED for j in scans)


def test_the_key_health_pass_marks_rejected_and_withdrawing_keys_with_their_events(make_core, mock_exchange):
    """Through the runner, against the loopback mock exchange (real ccxt signatures): one key revoked at the
    venue, one given withdrawal permission, one still fine."""
    from strongroom.exchanges.gateway import ExchangeGateway
    from strongroom.settings import Settings

    mock = Mock(mock_exchange)
    urls = {"binance": mock.url, "okx": mock.url}
    gateway = ExchangeGateway(Settings(**{**TEST_SETTINGS, "exchange_base_urls": urls}))
    core = make_core(gateway=gateway, exchange_base_urls=urls, jobs_poll_seconds=0.05, key_health_seconds=86_400)
    principal = new_user(core)
    keys = [mock.new_key() for _ in range(3)]
    runner = build_runner(core)

    async def main() -> list[Any]:
        accounts = [await core.accounts.connect(principal, "binance", k, name=f"a{n}") for n, k in enumerate(keys)]
        await core.accounts.disconnect(principal, accounts[2].id)
        accounts[2] = None
        fine = mock.new_key()
        accounts.append(await core.accounts.connect(principal, "binance", fine))
        mock.post("/_mock/revoke", {"exchange": "binance", "api_key": keys[0]["api_key"]})
        mock.post("/_mock/permissions", {"exchange": "binance", "api_key": keys[1]["api_key"], "can_withdraw": True})
        with core.db.session() as session:
            job_id = enqueue(session, builtin.KEY_HEALTH)
        runner.start()
        try:
            deadline = time.monotonic() + 30
            while (await asyncio.to_thread(core.jobs.get, job_id)).status != JobStatus.SUCCEEDED:
                assert time.monotonic() < deadline, "the key-health job did not finish"
                await asyncio.sleep(0.05)
        finally:
            await runner.stop()
        again = await core.account_store.key_health()  # a second pass: nothing more changes
        found = [await core.accounts.get(principal, a.id) for a in accounts if a is not None]
        await gateway.aclose()
        return [again, found]

    again, (rejected, withdrawing, fine) = asyncio.run(main())
    assert (rejected.status, withdrawing.status, fine.status) == ("invalid", "suspended", "active")
    assert again == {"invalid": 1, "suspended": 1, "active": 1}
    (invalidated,) = events_of(core, EventType.EXCHANGE_ACCOUNT_INVALIDATED)
    (suspended,) = events_of(core, EventType.EXCHANGE_ACCOUNT_SUSPENDED)
    assert (invalidated.data["account_id"], invalidated.data["via"], invalidated.data["reason"]) == (
        rejected.id, "key_health", "invalid_credentials")
    assert (suspended.data["account_id"], suspended.data["reason"]) == (withdrawing.id, "withdrawal_permission")
    assert invalidated.user_id == suspended.user_id == principal.user_id
