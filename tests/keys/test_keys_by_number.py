"""ApiKeyService by number (the row id), for surfaces whose key ids are numbers (TradrAPI, issue 12):
reads within the calling key's account binding, numbered pages, renames and deletes through the
power rule. In process, on a fresh SQLite and PostgreSQL database each."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from support.services import new_user

from strongroom.errors import Forbidden, InsufficientScope, NotFound, ValidationFailed
from strongroom.principal import accounts_within


@pytest.mark.parametrize(("inner", "outer", "within"), [
    (None, None, True), ([1], None, True), ([], None, True),
    (None, [1], False),  # unbound reaches every account: wider than any binding
    ([1], [1, 2], True), ([1, 2], [1], False), ([], [1], True), ([3], [1, 2], False),
])
def test_accounts_within(inner, outer, within):
    assert accounts_within(inner, outer) is within


def connect(core, principal) -> int:
    creds = {"api_key": f"bm-{uuid.uuid4().hex}", "secret": uuid.uuid4().hex}
    return asyncio.run(core.accounts.connect(principal, "bitmex", creds)).id


def as_key(core, key):
    """The principal of a request authenticated by ``key``."""
    return core.api_keys.load_record(key.key_id).principal("127.0.0.1", "x_api_key")


def test_numbered_reads_pages_and_changes(make_core):
    core = make_core()
    owner = new_user(core)
    a, b = connect(core, owner), connect(core, owner)
    keys = core.api_keys
    bound, _ = keys.create(owner, name="bound", scopes=["read", "write", "delete"], account_ids=[a])
    other, _ = keys.create(owner, name="other", scopes=["read"], account_ids=[b])
    both, _ = keys.create(owner, name="both", scopes=["read"], account_ids=[a, b])
    unbound, _ = keys.create(owner, name="unbound", scopes=["read"])
    signing, _ = keys.create(owner, name="hmac", kind="hmac", scopes=["read"], account_ids=[a])
    caller = as_key(core, bound)

    # reads: within the calling key's accounts; kinds and single-account narrowing are not-found
    assert keys.get_number(caller, bound.id).key_id == bound.key_id
    for key in (other, both, unbound):
        with pytest.raises(Forbidden):
            keys.get_number(caller, key.id)
    assert keys.get_number(owner, both.id).key_id == both.key_id  # no key: every account
    with pytest.raises(NotFound):
        keys.get_number(owner, both.id, single_account=True)
    with pytest.raises(NotFound):
        keys.get_number(owner, signing.id, kind="bearer")
    with pytest.raises(NotFound):
        keys.get_number(owner, 2**40)
    with pytest.raises(NotFound):
        keys.get_number(new_user(core), bound.id)  # another user's

    # pages: the bound caller sees only keys within its account; bound_to means exactly that one account
    page, total = keys.numbered_page(caller, kind="bearer")
    assert ([k.id for k in page], total) == ([bound.id], 1)
    page, total = keys.numbered_page(owner, kind="bearer", bound_to=a)
    assert [k.id for k in page] == [bound.id] and total == 1
    page, total = keys.numbered_page(owner, limit=2, page=2, descending=False)
    assert [k.id for k in page] == [both.id, unbound.id] and total == 5
    with pytest.raises(Forbidden):
        keys.numbered_page(caller, bound_to=b)
    with pytest.raises(NotFound):
        keys.numbered_page(owner, bound_to=987654)
    for bad in ({"page": 0}, {"limit": 0}, {"limit": 101}, {"sort_by": "secret_hash"}):
        with pytest.raises(ValidationFailed):
            keys.numbered_page(owner, **bad)

    # last use orders keys; never used counts as least recently used
    keys.record_last_used({other.key_id: datetime(2030, 1, 1, tzinfo=UTC).timestamp(),
                           unbound.key_id: datetime(2029, 1, 1, tzinfo=UTC).timestamp()})
    page, _ = keys.numbered_page(owner, kind="bearer", sort_by="last_used_at", descending=True)
    assert [k.id for k in page] == [other.id, unbound.id, both.id, bound.id]

    # changes go through the power rule
    keys.update_number(caller, bound.id, {"name": "renamed"}, kind="bearer", single_account=True)
    assert keys.get_number(owner, bound.id).name == "renamed"
    with pytest.raises(InsufficientScope):
        keys.delete_number(caller, unbound.id, kind="bearer")  # wider in accounts
    with pytest.raises(InsufficientScope):
        keys.delete_number(as_key(core, unbound), other.id)  # no delete scope
    keys.delete_number(caller, bound.id, kind="bearer", single_account=True)
    with pytest.raises(NotFound):
        keys.get_number(owner, bound.id)


def test_require_user_and_account(make_core):
    core = make_core()
    owner, stranger = new_user(core), new_user(core)
    a = connect(core, owner)
    core.api_keys.require_user(owner, owner.user_id)
    with pytest.raises(Forbidden):
        core.api_keys.require_user(owner, stranger.user_id)
    core.api_keys.require_account(owner, a)
    with pytest.raises(NotFound):
        core.api_keys.require_account(stranger, a)
    core.account_store.disconnect(owner, a)
    with pytest.raises(NotFound):
        core.api_keys.require_account(owner, a)  # not live
