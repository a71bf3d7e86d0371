"""The key records a process caches (strongroom.auth.pipeline), in process on SQLite and PostgreSQL: a key
changed in this process is refused here at once, even when a request was reading its record meanwhile."""

from __future__ import annotations

import asyncio

from cachetools import TTLCache
from support.interleave import commit_after
from support.services import new_user


def test_a_key_revoked_while_its_record_is_read_is_not_cached_alive(make_core):
    """A revocation that commits (and drops the key from this process's cache) while a request reads the key's
    record (one statement), right after it: that request may still see the record it read (it came
    first), but the record must not stay cached afterwards, alive for the TTL (it did: dropped, then put back)."""
    core = make_core()
    owner = new_user(core)
    key, _ = core.api_keys.create(owner, name="bot")
    auth = core.auth
    auth.records = TTLCache(maxsize=1000, ttl=3600)  # nothing leaves the cache by age during the test
    assert auth.cached_record(key.key_id) is None
    with commit_after(core.db.engine, 0, lambda: core.api_keys.delete(owner, key.key_id)):
        asyncio.run(auth.record(key.key_id))
    assert auth.cached_record(key.key_id) is None
    assert asyncio.run(auth.record(key.key_id)) is None  # deleted: and now that is what is cached
