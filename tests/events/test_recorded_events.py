"""Events written in the transaction of their change (issue 18 item 3), in process on SQLite and PostgreSQL:
each type is written by its change, once, with no secret in it, and a change that rolls back writes none."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from support.services import Outcome, new_user

from strongroom import events
from strongroom.balances.valuation import AssetValue
from strongroom.enums import EventType
from strongroom.errors import InvalidCredentials
from strongroom.models import ApiKey, Event, ExchangeAccount
from strongroom.principal import Principal


class Boom(Exception):
    """Raised by a listener after the event was written: its transaction must roll back."""


@contextmanager
def failing_after(kind: EventType) -> Iterator[None]:
    """Make the recording of an event of ``kind`` fail (after its row was inserted) while inside."""

    def listener(session: Any, event: events.RecordedEvent) -> None:
        if event.type == kind:
            raise Boom

    events.on_record(listener)
    try:
        yield
    finally:
        events._listeners.remove(listener)


def recorded(core: Any, kind: EventType | None = None) -> list[Event]:
    with core.db.session() as session:
        query = select(Event).order_by(Event.id)
        if kind is not None:
            query = query.where(Event.type == kind)
        return list(session.scalars(query))


class Gateway:
    """Answers like an exchange: keys in ``rejected`` are refused, keys in ``withdraw`` can withdraw."""

    def __init__(self) -> None:
        self.rejected: set[str] = set()
        self.withdraw: set[str] = set()

    async def validate(self, info: Any, credentials: dict[str, str]) -> Outcome:
        if credentials["api_key"] in self.rejected:
            raise InvalidCredentials("the exchange rejected the credentials")
        return Outcome(can_withdraw=credentials["api_key"] in self.withdraw)

    async def fetch_balance(self, info: Any, credentials: dict[str, str], account_type: str) -> dict[str, Any]:
        return {}

    async def fetch_tickers(self, info: Any) -> dict[str, Decimal]:
        return {}

    async def aclose(self) -> None:
        pass


def creds() -> dict[str, str]:
    tag = uuid.uuid4().hex
    return {"api_key": f"key-{tag}", "secret": f"secret-{tag}"}


def test_key_changes_write_created_rolled_and_revoked_without_a_secret(make_core):
    core = make_core()
    principal = new_user(core)
    key, secret = core.api_keys.create(principal, name="bot", kind="hmac", scopes=["read"])
    _, new_secret = core.api_keys.roll(principal, key.key_id, grace_seconds=60)
    core.api_keys.delete(principal, key.key_id)
    written = recorded(core)
    assert [e.type for e in written] == [EventType.API_KEY_CREATED, EventType.API_KEY_ROLLED,
                                         EventType.API_KEY_REVOKED]
    for event in written:
        assert event.user_id == principal.user_id and not event.admin_only
        assert event.data["key_id"] == key.key_id and event.data["name"] == "bot"
        assert event.public_id.startswith("evt_")
    assert written[0].data["scopes"] == ["read"] and written[0].data["kind"] == "hmac"
    assert written[1].data["grace_seconds"] == 60 and written[1].data["previous_valid_until"]
    text = json.dumps([e.data for e in written])
    assert secret and secret not in text and new_secret not in text and key.hint not in text


@pytest.mark.parametrize("kind", [EventType.API_KEY_CREATED, EventType.API_KEY_ROLLED, EventType.API_KEY_REVOKED])
def test_a_key_change_that_rolls_back_writes_no_event(make_core, kind):
    core = make_core()
    principal = new_user(core)
    key, _ = (core.api_keys.create(principal, name="k") if kind != EventType.API_KEY_CREATED else (None, None))
    before = recorded(core)
    with failing_after(kind), pytest.raises(Boom):
        if kind == EventType.API_KEY_CREATED:
            core.api_keys.create(principal, name="never")
        elif kind == EventType.API_KEY_ROLLED:
            core.api_keys.roll(principal, key.key_id)
        else:
            core.api_keys.delete(principal, key.key_id)
    assert [e.id for e in recorded(core)] == [e.id for e in before]
    with core.db.session() as session:  # and the change itself rolled back with it
        names = set(session.scalars(select(ApiKey.name).where(ApiKey.user_id == principal.user_id)))
        hashes = set(session.scalars(select(ApiKey.secret_hash).where(ApiKey.user_id == principal.user_id)))
    assert names == ({"k"} if key else set())
    if key is not None:
        assert hashes == {key.secret_hash}


def test_account_changes_write_connected_invalidated_suspended_and_disconnected(make_core):
    gateway = Gateway()
    core = make_core(gateway=gateway)
    principal = new_user(core)
    one, two = creds(), creds()
    first = asyncio.run(core.accounts.connect(principal, "binance", one, name="main"))
    second = asyncio.run(core.accounts.connect(principal, "binance", two, account_type="margin"))
    gateway.rejected.add(one["api_key"])
    gateway.withdraw.add(two["api_key"])
    for _ in range(2):  # the second revalidation finds them as they are: no second event
        assert asyncio.run(core.accounts.revalidate(principal, first.id)).status == "invalid"
        assert asyncio.run(core.accounts.revalidate(principal, second.id)).status == "suspended"
    asyncio.run(core.accounts.disconnect(principal, first.id))
    written = [(e.type, e.data["account_id"]) for e in recorded(core)]
    assert written == [(EventType.EXCHANGE_ACCOUNT_CONNECTED, first.id), (EventType.EXCHANGE_ACCOUNT_CONNECTED, second.id),
                       (EventType.EXCHANGE_ACCOUNT_INVALIDATED, first.id),
                       (EventType.EXCHANGE_ACCOUNT_SUSPENDED, second.id),
                       (EventType.EXCHANGE_ACCOUNT_DISCONNECTED, first.id)]
    invalidated, suspended, disconnected = recorded(core)[2:]
    assert invalidated.data | {"public_id": None} == {
        "account_id": first.id, "public_id": None, "exchange": "binance", "name": "main", "account_type": "spot",
        "from": "active", "to": "invalid", "reason": "invalid_credentials", "via": "revalidate"}
    assert suspended.data["reason"] == "withdrawal_permission" and suspended.data["to"] == "suspended"
    assert disconnected.data["from"] == "invalid" and disconnected.data["to"] == "disconnected"
    text = json.dumps([e.data for e in recorded(core)])
    assert one["api_key"] not in text and one["secret"] not in text and first.key_hint not in text


def test_an_account_change_that_rolls_back_writes_no_event(make_core):
    gateway = Gateway()
    core = make_core(gateway=gateway)
    principal = new_user(core)
    key = creds()
    with failing_after(EventType.EXCHANGE_ACCOUNT_CONNECTED), pytest.raises(Boom):
        asyncio.run(core.accounts.connect(principal, "binance", key))
    with core.db.session() as session:
        assert session.scalar(select(ExchangeAccount.id).where(ExchangeAccount.user_id == principal.user_id)) is None
    account = asyncio.run(core.accounts.connect(principal, "binance", key))  # the same key: nothing half written
    gateway.rejected.add(key["api_key"])
    with failing_after(EventType.EXCHANGE_ACCOUNT_INVALIDATED), pytest.raises(Boom):
        asyncio.run(core.accounts.revalidate(principal, account.id))
    assert asyncio.run(core.accounts.get(principal, account.id)).status == "active"
    with failing_after(EventType.EXCHANGE_ACCOUNT_DISCONNECTED), pytest.raises(Boom):
        asyncio.run(core.accounts.disconnect(principal, account.id))
    assert asyncio.run(core.accounts.get(principal, account.id)).status == "active"
    assert [e.type for e in recorded(core)] == [EventType.EXCHANGE_ACCOUNT_CONNECTED]


def test_a_balance_refresh_that_finds_a_withdrawal_key_suspends_the_account_with_its_event(make_core):
    gateway = Gateway()
    core = make_core(gateway=gateway, balance_key_check_seconds=0)
    principal = new_user(core)
    key = creds()
    account = asyncio.run(core.accounts.connect(principal, "binance", key))
    gateway.withdraw.add(key["api_key"])
    with pytest.raises(Exception) as refused:
        asyncio.run(core.balances.refresh(principal, account.id))
    assert getattr(refused.value, "code", None) == "withdrawal_permission"
    event = recorded(core, EventType.EXCHANGE_ACCOUNT_SUSPENDED)
    assert len(event) == 1 and event[0].data["via"] == "balances.refresh" and event[0].data["from"] == "active"


def usd(amount: str) -> list[AssetValue]:
    value = Decimal(amount)
    return [AssetValue("USDT", value, Decimal(0), value, value, None, Decimal(1))]


def test_balances_changed_is_written_when_the_total_moves_past_the_threshold(make_core):
    core = make_core(balance_change_threshold_usd=Decimal(100), balance_change_threshold_percent=Decimal(5))
    principal = new_user(core)
    account = asyncio.run(core.accounts.connect(principal, "binance", creds()))
    at = datetime(2026, 12, 1, tzinfo=UTC)
    totals = ["10000", "10400", "9600", "10500.5", "10499", "5"]  # baseline; +4%; -4% (of the baseline); +5%...
    for n, total in enumerate(totals):
        core.balance_store.record_snapshot(account.id, usd(total), at + timedelta(minutes=n))
    changed = recorded(core, EventType.BALANCES_CHANGED)
    assert [(e.data["previous_total_usd"], e.data["total_usd"], e.data["change_usd"]) for e in changed] == [
        ("10000", "10500.5", "500.5"), ("10500.5", "5", "-10495.5")]
    assert changed[0].data["account_id"] == account.id and changed[0].user_id == principal.user_id


def test_a_small_account_moves_by_the_usd_threshold_not_the_percentage(make_core):
    core = make_core(balance_change_threshold_usd=Decimal(100), balance_change_threshold_percent=Decimal(5))
    principal = new_user(core)
    account = asyncio.run(core.accounts.connect(principal, "binance", creds()))
    at = datetime(2026, 12, 1, tzinfo=UTC)
    for n, total in enumerate(["10", "90", "0", "150"]):  # +800% but $80; -$90; then +$150 from 10
        core.balance_store.record_snapshot(account.id, usd(total), at + timedelta(minutes=n))
    assert [e.data["total_usd"] for e in recorded(core, EventType.BALANCES_CHANGED)] == ["150"]


def test_a_snapshot_that_rolls_back_writes_no_balance_event_and_keeps_the_baseline(make_core):
    core = make_core()
    principal = new_user(core)
    account = asyncio.run(core.accounts.connect(principal, "binance", creds()))
    at = datetime(2026, 12, 1, tzinfo=UTC)
    core.balance_store.record_snapshot(account.id, usd("1000"), at)
    with failing_after(EventType.BALANCES_CHANGED), pytest.raises(Boom):
        core.balance_store.record_snapshot(account.id, usd("5000"), at + timedelta(minutes=1))
    with core.db.session() as session:
        assert session.get(ExchangeAccount, account.id).balance_baseline_usd == "1000"
    assert recorded(core, EventType.BALANCES_CHANGED) == []
    core.balance_store.record_snapshot(account.id, usd("5000"), at + timedelta(minutes=2))
    assert [e.data["previous_total_usd"] for e in recorded(core, EventType.BALANCES_CHANGED)] == ["1000"]


def test_a_master_key_rotation_writes_an_admin_only_event_of_the_deployment(make_core):
    from strongroom.cli.context import OPERATOR, master_keys

    core = make_core()
    version, _ = master_keys(core).rotate(OPERATOR)
    (event,) = recorded(core, EventType.MASTER_KEY_ROTATED)
    assert event.user_id is None and event.admin_only
    assert event.data == {"version": version, "provider": "file", "via": "rotate"}
    user = new_user(core)
    assert [e.type for e in core.events.list(user).items] == []
    admin = Principal(user_id=user.user_id, username="a", is_admin=True)
    assert [e.public_id for e in core.events.list(admin).items] == [event.public_id]


def test_a_spent_failure_budget_writes_one_event_per_window(make_core):
    core = make_core(auth_failures_per_key="3/minute")
    principal = new_user(core)
    key, _ = core.api_keys.create(principal, name="target")

    async def fail(times: int) -> list[bool]:
        return [await core.auth.count_failure("198.51.100.7", key.key_id) is not None for _ in range(times)]

    assert asyncio.run(fail(8)) == [False] * 3 + [True] * 5
    assert asyncio.run(fail(2)) == [True, True]
    (event,) = recorded(core, EventType.API_KEY_FAILURE_BUDGET_EXHAUSTED)
    assert event.user_id == principal.user_id and event.data["key_id"] == key.key_id
    assert event.data["limit"] == "3/minute"
    # another process counting the same window writes nothing more; the next window writes again
    ends = datetime.fromisoformat(event.data["window_ends"]).timestamp()
    assert core.api_keys.budget_exhausted(key.key_id, 60, ends) is False
    assert core.api_keys.budget_exhausted(key.key_id, 60, ends + 60) is True
    assert core.api_keys.budget_exhausted("no-such-key", 60, ends) is False
    assert len(recorded(core, EventType.API_KEY_FAILURE_BUDGET_EXHAUSTED)) == 2


def test_deleting_a_user_writes_an_admin_only_event_naming_what_went_with_them(make_core):
    from sqlalchemy import func

    from strongroom.models import User, WebhookDelivery, WebhookEndpoint

    core = make_core(gateway=Gateway(), webhook_allow_private=True)
    admin_user = new_user(core)
    admin = Principal(user_id=admin_user.user_id, username="root", is_admin=True)
    core.webhooks.create(admin, url="http://127.0.0.1:9/admin")  # an admin's endpoint: admin-only events
    doomed = new_user(core)
    core.webhooks.create(doomed, url="http://127.0.0.1:9/own")
    key, _ = core.api_keys.create(doomed, name="bot")
    account = asyncio.run(core.accounts.connect(doomed, "binance", creds(), name="main"))
    with core.db.session() as session:
        public_id = session.get(User, doomed.user_id).public_id
    with failing_after(EventType.USER_DELETED), pytest.raises(Boom):  # the event fails: nothing is deleted
        core.users.delete(admin, doomed.user_id)
    assert core.users.by_username(admin, doomed.username) is not None
    core.users.delete(admin, doomed.user_id)
    (event,) = recorded(core, EventType.USER_DELETED)
    assert event.user_id is None and event.admin_only
    assert event.data == {"user_id": doomed.user_id, "public_id": str(public_id), "username": doomed.username,
                          "key_ids": [key.key_id], "account_ids": [account.id]}
    assert [e.type for e in core.events.list(admin_user).items if e.type == EventType.USER_DELETED] == []
    assert [e.public_id for e in core.events.list(admin, types=[EventType.USER_DELETED]).items] == [event.public_id]
    with core.db.session() as session:  # one delivery, to the admin's endpoint; the user's own went with them
        targets = session.execute(select(WebhookEndpoint.url).join(
            WebhookDelivery, WebhookDelivery.endpoint_id == WebhookEndpoint.id).join(
            Event, Event.id == WebhookDelivery.event_id).where(Event.type == EventType.USER_DELETED)).scalars().all()
        assert targets == ["http://127.0.0.1:9/admin"]
        assert session.scalar(select(func.count()).select_from(WebhookEndpoint)
                              .where(WebhookEndpoint.url == "http://127.0.0.1:9/own")) == 0


@pytest.mark.parametrize("after", [0, 1, 2])
def test_a_key_created_while_its_user_is_deleted_is_named_or_never_made(make_core, after):
    """A key created for a user while an admin deletes them: either it is made first and ``user.deleted`` names
    it (whoever caches keys drops it on that event), or it is refused; never deleted with the user unnamed.
    The creation starts, in another thread, right after statement ``after`` of the delete, which then goes on
    after giving it time to commit (the old delete read the key ids unlocked: one made meanwhile went unnamed)."""
    import threading

    from sqlalchemy import event as sa_event

    from strongroom.errors import DomainError

    core = make_core()
    admin = Principal(user_id=new_user(core).user_id, username="root", is_admin=True)
    doomed = new_user(core)
    made: list[str] = []
    refused: list[Exception] = []

    def create() -> None:
        try:
            made.append(core.api_keys.create(doomed, name="late")[0].key_id)
        except DomainError as exc:  # the user is gone (their row locked, then deleted)
            refused.append(exc)

    worker = threading.Thread(target=create)
    seen: list[str] = []

    def interleave(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if threading.current_thread() is worker:
            return
        seen.append(statement)
        if len(seen) == after + 1:
            worker.start()
            worker.join(1.5)  # made and committed, or waiting for the delete's lock

    sa_event.listen(core.db.engine, "after_cursor_execute", interleave)
    try:
        core.users.delete(admin, doomed.user_id)
    finally:
        sa_event.remove(core.db.engine, "after_cursor_execute", interleave)
    worker.join(30)
    assert not worker.is_alive()
    assert len(made) + len(refused) == 1, (made, refused)
    (deleted,) = recorded(core, EventType.USER_DELETED)
    assert deleted.data["key_ids"] == made
    with core.db.session() as session:
        assert session.scalar(select(ApiKey).where(ApiKey.user_id == doomed.user_id)) is None
