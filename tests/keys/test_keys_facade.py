"""The keys capability's async façade (strongroom/keys/interfaces.py): every call's database work runs in a
worker thread, never on the event loop; a key is named by its id or by a KeyNumber (TradrAPI's numbers), whose
answers differ as the contract says. In process, on a fresh SQLite and PostgreSQL database each."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from support.interleave import commit_after
from support.services import new_user
from support.threads import SessionThreads

from strongroom.errors import BadRequest, Forbidden, InsufficientScope, NotFound, ValidationFailed
from strongroom.keys import ByPage, KeyNumber, KeyQuery, Keys


def test_every_call_runs_off_the_event_loop_and_keeps_the_contract(make_core, monkeypatch):
    core = make_core()
    owner = new_user(core)
    keys: Keys = core.key_service
    threads = SessionThreads(core, monkeypatch)

    async def scenario() -> None:
        account = (await core.accounts.connect(owner, "bitmex", {"api_key": f"bm-{uuid.uuid4().hex}",
                                                                "secret": uuid.uuid4().hex})).id
        mark = threads.mark()
        bound, secret = await keys.create(owner, name="bound", scopes=["read", "write", "delete"],
                                          account_ids=[account])
        threads.assert_off_loop(mark, "create")
        assert secret is not None and secret.startswith("sr")
        wide, _ = await keys.create(owner, name="wide", scopes=["read"])
        caller = core.api_keys.load_record(bound.key_id).principal("127.0.0.1", "x_api_key")

        mark = threads.mark()
        assert (await keys.get(owner, bound.key_id)).id == bound.id
        assert (await keys.get(owner, KeyNumber(bound.id, "bearer", single_account=True))).key_id == bound.key_id
        threads.assert_off_loop(mark, "get")
        with pytest.raises(NotFound):  # by id: a key beyond a bound caller's accounts is not there
            await keys.get(caller, wide.key_id)
        with pytest.raises(Forbidden):  # by number: it is there, and refused (TradrAPI's answer)
            await keys.get(caller, KeyNumber(wide.id))
        with pytest.raises(NotFound):  # another kind, or not bound to one account: not found
            await keys.get(owner, KeyNumber(bound.id, "hmac"))
        with pytest.raises(NotFound):
            await keys.get(owner, KeyNumber(wide.id, single_account=True))

        mark = threads.mark()
        page = await keys.list(owner, limit=1)
        assert [k.id for k in page.items] == [bound.id] and page.next_cursor
        assert [k.id for k in await keys.list_all(caller)] == [bound.id]
        found, total = await keys.page(owner, KeyQuery(kind="bearer", bound_to=account), ByPage(limit=5))
        assert [k.id for k in found] == [bound.id] and total == 1
        found, total = await keys.page(owner, KeyQuery(), ByPage(sort_by="name", descending=False))
        assert [k.name for k in found] == ["bound", "wide"] and total == 2
        threads.assert_off_loop(mark, "list, list_all, page")
        with pytest.raises(ValidationFailed):
            await keys.page(owner, KeyQuery(), ByPage(page=0))

        mark = threads.mark()
        assert (await keys.update(owner, KeyNumber(bound.id), {"name": "renamed"})).name == "renamed"
        assert (await keys.update(owner, bound.key_id, {"scopes": ["read", "write", "delete"]})).name == "renamed"
        assert (await keys.set_enabled(owner, wide.key_id, False)).enabled is False
        assert (await keys.set_enabled(owner, wide.key_id, True)).enabled is True
        rolled, new_secret = await keys.roll(owner, bound.key_id, 0)
        assert new_secret != secret and rolled.key_id == bound.key_id
        assert await keys.usage(owner, bound.key_id) == []
        threads.assert_off_loop(mark, "update, set_enabled, roll, usage")
        with pytest.raises(NotFound):  # a bound key never acts on a wider one: by id, it does not see it
            await keys.update(caller, wide.key_id, {"name": "x"})
        with pytest.raises(InsufficientScope):  # by number, it is refused
            await keys.update(caller, KeyNumber(wide.id), {"name": "x"})
        with pytest.raises(InsufficientScope):
            await keys.delete(caller, KeyNumber(wide.id))

        generated, private_pem = await keys.generate(owner, name="pair", key_type="ed25519", scopes=["read"])
        assert "PRIVATE KEY" in private_pem and generated.kind == "ed25519"
        with pytest.raises(BadRequest):  # a public-key key is not rolled
            await keys.roll(owner, generated.key_id)

        await keys.require_user(owner, owner.user_id)
        with pytest.raises(Forbidden):
            await keys.require_user(owner, owner.user_id + 1)
        mark = threads.mark()
        await keys.require_account(owner, account)
        threads.assert_off_loop(mark, "require_account")
        with pytest.raises(Forbidden):
            await keys.require_account(caller, account + 1)
        with pytest.raises(NotFound):
            await keys.require_account(owner, account + 1)

        mark = threads.mark()
        await keys.delete(owner, KeyNumber(wide.id))
        await keys.delete(owner, generated.key_id)
        threads.assert_off_loop(mark, "delete")
        with pytest.raises(NotFound):
            await keys.get(owner, wide.key_id)
        assert [k.id for k in await keys.list_all(owner)] == [bound.id]

        mark = threads.mark()
        core.api_keys.list_all(owner)  # the engine called on the loop: what the check exists to catch
        with pytest.raises(AssertionError, match="event loop"):
            threads.assert_off_loop(mark, "the engine on the loop")

    asyncio.run(scenario())


@pytest.mark.parametrize("after", range(2))
def test_a_bound_callers_key_list_read_while_a_key_is_rebound_is_one_state(make_core, after):
    """A key bound to accounts lists only keys within them, decided on the rows it shows: a key rebound
    (forced) beyond its accounts after any statement of the read is either listed as it was, or not at all;
    never with its new binding (on PostgreSQL's READ COMMITTED each statement sees newer commits)."""
    core = make_core()
    owner = new_user(core)
    here, there = (asyncio.run(core.accounts.connect(owner, "bitmex", {
        "api_key": f"bm-{uuid.uuid4().hex}", "secret": uuid.uuid4().hex})).id for _ in range(2))
    bound, _ = core.api_keys.create(owner, name="bound", scopes=["read"], account_ids=[here])
    moving, _ = core.api_keys.create(owner, name="moving", scopes=["read"], account_ids=[here])
    caller = core.api_keys.load_record(bound.key_id).principal("127.0.0.1", "x_api_key")
    reader = make_core()
    reader.api_keys.list(caller)  # the reader's connection is made first
    with commit_after(reader.db.engine, after,
                      lambda: core.api_keys.update(owner, moving.key_id, {"account_ids": [there]})):
        page = reader.api_keys.list(caller)
    assert all(k.account_ids == [here] for k in page.items), [(k.name, k.account_ids) for k in page.items]
    assert [k.id for k in page.items] in ([bound.id, moving.id], [bound.id])
    assert [k.id for k in reader.api_keys.list(caller).items] == [bound.id]
    assert [k.id for k in reader.api_keys.list(caller, limit=1).items] == [bound.id]


def test_a_key_for_a_user_deleted_after_authentication_is_not_found_not_over_the_cap(make_core):
    """A request authenticated as a user whom an admin then deletes: creating a key says the user is gone (404),
    not that they hold too many keys (the cap's conditional UPDATE matched no row either way)."""
    from strongroom.errors import LimitExceeded
    from strongroom.principal import Principal

    core = make_core()
    admin = Principal(user_id=new_user(core).user_id, username="root", is_admin=True)
    gone = new_user(core)
    core.users.delete(admin, gone.user_id)
    with pytest.raises(NotFound):
        core.api_keys.create(gone, name="late")
    capped = make_core(max_api_keys_per_user=1)  # and the cap still says so for a user who is there
    owner = new_user(capped)
    capped.api_keys.create(owner, name="one")
    with pytest.raises(LimitExceeded):
        capped.api_keys.create(owner, name="two")
