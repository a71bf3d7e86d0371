"""The vault's async façade for the console (strongroom/vault/interfaces.py: MasterKeys): the status counts
every sealed record, off the event loop, for admins only. In process, on a fresh SQLite and PostgreSQL
database each."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from support.services import new_user
from support.threads import SessionThreads

from strongroom.errors import Forbidden
from strongroom.principal import Principal
from strongroom.vault import MasterKeys


def test_status_counts_sealed_records_off_the_event_loop_for_admins_only(make_core, monkeypatch):
    core = make_core()
    owner = new_user(core)
    admin_user = core.users.create("root", "password-123", is_admin=True)
    admin = Principal(user_id=admin_user.id, username="root", is_admin=True)
    master_keys: MasterKeys = core.master_keys
    threads = SessionThreads(core, monkeypatch)

    async def scenario() -> None:
        before = await master_keys.status(admin)
        await core.accounts.connect(owner, "binance", {"api_key": f"k-{uuid.uuid4().hex}", "secret": "s"})
        await core.credential_service.create(owner, "binance", {"api_key": f"k-{uuid.uuid4().hex}", "secret": "s"})
        mark = threads.mark()
        after = await master_keys.status(admin)
        threads.assert_off_loop(mark, "status")
        current = after.current_version
        # the connect seals the account's copy, and the stored credential its own
        assert after.versions[current] == before.versions.get(current, 0) + 2
        assert after.pending == 0 and not after.missing
        with pytest.raises(Forbidden):
            await master_keys.status(owner)

    asyncio.run(scenario())
