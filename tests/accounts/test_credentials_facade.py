"""The stored credentials' async façade (strongroom/accounts/interfaces.py: Credentials, Cadenza's credentials):
database work in a worker thread, never on the event loop; the contract kept (own credentials only, revoke is
terminal and disconnects). In process (the exchange accepts any key), on a fresh SQLite and PostgreSQL
database each."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from support.interleave import commit_after
from support.services import new_user
from support.threads import SessionThreads

from strongroom.accounts import Credentials
from strongroom.errors import Conflict, NotFound


def test_credentials_run_off_the_event_loop_and_keep_the_contract(make_core, monkeypatch):
    core = make_core()
    owner, other = new_user(core), new_user(core)
    credentials: Credentials = core.credential_service
    threads = SessionThreads(core, monkeypatch)

    def keys() -> dict[str, str]:
        return {"api_key": f"k-{uuid.uuid4().hex}", "secret": uuid.uuid4().hex}

    async def scenario() -> None:
        mark = threads.mark()
        stored = await credentials.create(owner, "binance", keys(), nickname="main", kind="API_KEY")
        threads.assert_off_loop(mark, "create")
        assert stored.status == "active" and stored.nickname == "main"

        mark = threads.mark()
        assert (await credentials.get(owner, stored.public_id)).id == stored.id
        page = await credentials.list(owner, statuses=["active"])
        assert [c.id for c in page.items] == [stored.id] and page.total == 1
        threads.assert_off_loop(mark, "get, list")
        with pytest.raises(NotFound):  # another user's
            await credentials.get(other, stored.public_id)
        assert (await credentials.list(owner, statuses=[])).items == []  # an empty collection matches nothing

        account, used = await credentials.connect(owner, stored.public_id, account_type="spot")
        assert used.id == stored.id and account.user_id == owner.user_id
        inline, made = await credentials.connect_inline(owner, "binance", keys(), name="inline")
        mark = threads.mark()
        linked = await credentials.linked([account.id, inline.id, 10**9])
        threads.assert_off_loop(mark, "linked")
        assert {i: c.id for i, c in linked.items()} == {account.id: stored.id, inline.id: made.id}
        mark = threads.mark()
        assert await credentials.linked([]) == {}  # nothing to look up: no database work
        assert threads.mark() == mark

        reach = await credentials.verify(owner, [stored.public_id])
        assert any(r.account is not None and r.account.id == account.id for r in reach)
        rotated = await credentials.rotate(owner, stored.public_id, {"secret": uuid.uuid4().hex})
        assert rotated.id == stored.id

        mark = threads.mark()
        revoked = await credentials.revoke(owner, stored.public_id)
        threads.assert_off_loop(mark, "revoke")
        assert revoked.status == "revoked"
        assert (await core.accounts.get(owner, account.id)).status == "disconnected"  # its account went with it
        with pytest.raises(Conflict):  # terminal
            await credentials.revoke(owner, stored.public_id)

    asyncio.run(scenario())


@pytest.mark.parametrize("after", range(2))
def test_a_credential_page_read_while_one_is_revoked_is_one_state(make_core, after):
    """A credential page's total and items are one snapshot: a credential revoked (forced) after any statement
    of the read is either still counted and listed active, or neither; the total always matches the items."""
    core = make_core()
    owner = new_user(core)
    made = [asyncio.run(core.credential_service.create(
        owner, "binance", {"api_key": f"k-{uuid.uuid4().hex}", "secret": uuid.uuid4().hex})) for _ in range(2)]
    reader = make_core()
    reader.credentials.list(owner, statuses=["active"])  # the reader's connection is made before the count
    with commit_after(reader.db.engine, after, lambda: core.credentials.revoke(owner, made[1].public_id)):
        page = reader.credentials.list(owner, statuses=["active"])
    assert {c.status for c in page.items} == {"active"}
    assert page.total == len(page.items) and not page.has_next, (page.total, [c.id for c in page.items])
    assert [c.id for c in page.items] in ([made[0].id, made[1].id], [made[0].id])
