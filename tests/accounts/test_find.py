"""The accounts façade's one query (``find`` with an AccountQuery and a paging style), the connect policy a
surface passes, and disconnecting what a query selects (issue 17 item 2): in process, without HTTP, on SQLite
and PostgreSQL. These replace the per-vendor methods (list, list_numbered, key_connected, search,
disconnect_on_exchange, one_per_exchange)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

import pytest
from support.interleave import commit_after
from support.services import new_user

from strongroom.accounts import AccountQuery, Accounts, AccountsFacade, ByCursor, ByOffset, ConnectPolicy
from strongroom.enums import AccountStatus
from strongroom.errors import AccountExists, Forbidden, InsufficientScope, NotFound, ValidationFailed
from strongroom.principal import Principal
from strongroom.scopes import DELETE


def creds(tag: str | None = None) -> dict[str, str]:
    tag = tag or uuid.uuid4().hex
    return {"api_key": tag, "secret": f"secret-{tag}"}  # distinct hints (first and last four characters)


def run(awaitable: Any) -> Any:
    return asyncio.run(awaitable)


@pytest.fixture
def setup(make_core: Any) -> tuple[Any, Accounts, Principal]:
    core = make_core()
    return core, core.accounts, new_user(core)


def ids(page: Any) -> list[int]:
    return [a.id for a in page.items]


def test_the_core_serves_the_async_facade(setup: tuple[Any, Accounts, Principal]) -> None:
    _, accounts, _me = setup
    assert isinstance(accounts, AccountsFacade)
    assert asyncio.iscoroutinefunction(accounts.find) and asyncio.iscoroutinefunction(accounts.get)


def test_one_query_filters_by_exchange_status_ids_and_key(setup: tuple[Any, Accounts, Principal]) -> None:
    _, accounts, me = setup
    binance_key = creds()
    a = run(accounts.connect(me, "binance", binance_key))
    b = run(accounts.connect(me, "okx", {**creds(), "passphrase": "p"}))
    c = run(accounts.connect(me, "binance", creds()))
    run(accounts.set_enabled(me, c.id, False))
    everything = ByCursor(limit=50)

    assert ids(run(accounts.find(me, AccountQuery(), everything))) == [a.id, b.id, c.id]
    assert ids(run(accounts.find(me, AccountQuery(exchange="BINANCE"), everything))) == [a.id, c.id]
    assert ids(run(accounts.find(me, AccountQuery(statuses=[AccountStatus.DISABLED]), everything))) == [c.id]
    assert ids(run(accounts.find(me, AccountQuery(statuses=[]), everything))) == []
    assert ids(run(accounts.find(me, AccountQuery(ids=[b.id, 10**12]), everything))) == [b.id]
    assert ids(run(accounts.find(me, AccountQuery(public_ids=[c.public_id]), everything))) == [c.id]
    by_key = AccountQuery(exchange="binance", api_key=binance_key["api_key"])
    assert ids(run(accounts.find(me, by_key, everything))) == [a.id]
    assert ids(run(accounts.find(me, AccountQuery(api_key_hint=binance_key["api_key"]), everything))) == [a.id]
    with pytest.raises(ValidationFailed):
        run(accounts.find(me, AccountQuery(api_key=binance_key["api_key"]), everything))  # which exchange?
    with pytest.raises(ValidationFailed):
        run(accounts.find(me, AccountQuery(statuses=["sleeping"]), everything))
    # disconnected accounts are found unless the query asks for live ones only
    run(accounts.disconnect(me, a.id))
    assert ids(run(accounts.find(me, AccountQuery(exchange="binance"), everything))) == [a.id, c.id]
    assert ids(run(accounts.find(me, AccountQuery(exchange="binance", live_only=True), everything))) == [c.id]


def test_cursor_and_offset_paging(setup: tuple[Any, Accounts, Principal]) -> None:
    _, accounts, me = setup
    made = [run(accounts.connect(me, "binance", creds())).id for _ in range(3)]
    first = run(accounts.find(me, AccountQuery(), ByCursor(limit=2)))
    assert ids(first) == made[:2] and first.next_cursor
    assert ids(run(accounts.find(me, AccountQuery(), ByCursor(first.next_cursor, 2)))) == made[2:]
    page = run(accounts.find(me, AccountQuery(), ByOffset(1, 1)))
    assert ids(page) == [made[1]] and page.total == 3 and page.has_next


def test_what_a_caller_may_see(setup: tuple[Any, Accounts, Principal]) -> None:
    core, accounts, me = setup
    other = new_user(core)
    mine = run(accounts.connect(me, "binance", creds())).id
    theirs = run(accounts.connect(other, "binance", creds())).id
    everything = ByCursor()
    with pytest.raises(Forbidden):
        run(accounts.find(me, AccountQuery(user_id=other.user_id), everything))
    with pytest.raises(Forbidden):
        run(accounts.find(me, AccountQuery(everyone=True), everything))
    admin = dataclasses.replace(me, is_admin=True)
    assert ids(run(accounts.find(admin, AccountQuery(everyone=True), everything))) == [mine, theirs]
    assert ids(run(accounts.find(admin, AccountQuery(user_id=other.user_id), everything))) == [theirs]
    bound = dataclasses.replace(me, account_ids=frozenset())
    assert ids(run(accounts.find(bound, AccountQuery(), everything))) == []
    with pytest.raises(InsufficientScope):
        run(accounts.find(dataclasses.replace(me, scopes=frozenset({DELETE})), AccountQuery(), everything))


def test_the_surface_passes_its_connect_policy(setup: tuple[Any, Accounts, Principal]) -> None:
    _, accounts, me = setup
    run(accounts.connect(me, "binance", creds()))
    second = run(accounts.connect(me, "binance", creds()))  # no policy: several per exchange
    with pytest.raises(AccountExists):
        run(accounts.connect(me, "binance", creds(), policy=ConnectPolicy(one_per_exchange=True)))
    assert second.status == AccountStatus.ACTIVE


def test_disconnect_what_a_query_selects(setup: tuple[Any, Accounts, Principal]) -> None:
    _, accounts, me = setup
    first = run(accounts.connect(me, "binance", creds()))
    second = run(accounts.connect(me, "binance", creds()))
    delete_only = dataclasses.replace(me, scopes=frozenset({DELETE}))
    done = run(accounts.disconnect(delete_only, AccountQuery(exchange="BINANCE")))
    assert done.id == first.id and done.status == AccountStatus.DISCONNECTED  # the oldest live one
    assert run(accounts.disconnect(me, AccountQuery(user_id=me.user_id, exchange="binance"))).id == second.id
    with pytest.raises(NotFound):
        run(accounts.disconnect(me, AccountQuery(exchange="binance")))  # none live left
    with pytest.raises(NotFound):
        run(accounts.disconnect(me, AccountQuery(exchange="no-such-venue")))


@pytest.mark.parametrize("after", range(2))
def test_an_offset_page_read_while_an_account_changes_is_one_state(make_core: Any, after: int) -> None:
    """An offset page's total and items are one snapshot: an account disabled (forced) after any statement of
    the read gives either both accounts active and counted, or one, never a total that does not match the items
    (on PostgreSQL's READ COMMITTED, and SQLite's autocommit reads, each statement sees newer commits)."""
    core = make_core()
    me = new_user(core)
    a, b = (run(core.accounts.connect(me, "binance", creds())) for _ in range(2))
    reader = make_core()
    active = AccountQuery(statuses=[AccountStatus.ACTIVE])
    assert reader.account_store.find(me, active, ByOffset(5, 10)).total == 2  # an empty page has the total too
    with commit_after(reader.db.engine, after, lambda: core.account_store.set_enabled(me, b.id, False)):
        page = reader.account_store.find(me, active, ByOffset(0, 10))
    assert {x.status for x in page.items} == {AccountStatus.ACTIVE}
    assert page.total == len(page.items) and not page.has_next, (page.total, ids(page))
    assert ids(page) in ([a.id, b.id], [a.id])
