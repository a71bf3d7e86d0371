"""The access-token cache of SessionService (issue 13 item 5, "never clear a whole cache on a miss"):
an unknown refresh token leaves it alone; reuse of a refresh token drops only its own family's tokens.

The cache is given a long TTL here so that nothing leaves it by age during a test (the assertions are
about what the service removes, not about time).
"""

from __future__ import annotations

import uuid

import pytest
from cachetools import TTLCache
from support.services import new_user

from strongroom.crypto import tokens
from strongroom.errors import Unauthenticated


def test_misses_and_reuse_never_clear_other_cached_tokens(make_core):
    core = make_core()
    sessions = core.sessions
    sessions._cache = TTLCache(maxsize=1000, ttl=3600)  # nothing expires by age during the test
    alice, bob = new_user(core), new_user(core)
    a = sessions.issue(alice)
    b = sessions.issue(bob)
    assert sessions.resolve(a.access_token).id == alice.user_id
    assert sessions.resolve(b.access_token).id == bob.user_id
    assert sessions.resolve_cached(b.access_token).id == bob.user_id

    # an unknown (well-formed) refresh token is refused and removes nothing from the cache
    with pytest.raises(Unauthenticated):
        sessions.refresh(tokens.new_token(sessions.refresh_prefix), "127.0.0.1")
    assert sessions.resolve_cached(a.access_token).id == alice.user_id
    assert sessions.resolve_cached(b.access_token).id == bob.user_id

    # alice's refresh token used twice: her family is revoked and its tokens leave the cache, bob's stay
    rotated = sessions.refresh(a.refresh_token, "127.0.0.1")
    assert sessions.resolve(rotated.access_token).id == alice.user_id  # cached now too
    with pytest.raises(Unauthenticated):
        sessions.refresh(a.refresh_token, "127.0.0.1")
    assert sessions.resolve_cached(a.access_token) is False
    assert sessions.resolve_cached(rotated.access_token) is False
    assert sessions.resolve(rotated.access_token) is None  # revoked in the database
    assert sessions.resolve_cached(b.access_token).id == bob.user_id


def test_the_cache_is_bounded_by_size(make_core):
    sessions = make_core().sessions
    assert isinstance(sessions._cache, TTLCache) and 0 < sessions._cache.maxsize <= 1_000_000


@pytest.mark.parametrize("after", [0, 1])
def test_a_token_logged_out_while_it_is_resolved_is_not_cached_alive(make_core, after):
    """A logout that commits while a resolve of its token is reading (after the resolve's statement ``after``):
    the resolve may answer with what it read (the request came before the logout), but it must not leave the
    token cached as alive afterwards (it did: the logout dropped it, then the resolve put it back)."""
    from support.interleave import commit_after

    core = make_core()
    sessions = core.sessions
    sessions._cache = TTLCache(maxsize=1000, ttl=3600)  # nothing leaves the cache by age during the test
    alice = new_user(core)
    pair = sessions.issue(alice)
    with commit_after(core.db.engine, after, lambda: sessions.logout(alice, pair.access_token)):
        sessions.resolve(pair.access_token)
    assert sessions.resolve_cached(pair.access_token) in (False, None)
    assert sessions.resolve(pair.access_token) is None


def test_a_session_is_not_started_with_a_password_changed_since_it_was_checked(make_core):
    """A sign-in checks the old password, an admin then sets a new one (ending every session), then the sign-in
    starts its session: refused, not a session that outlives the reset (it did). The sign-in cache's principal
    (an old password accepted for up to the cache's TTL) is refused the same way; the new password works."""
    import asyncio

    from strongroom.enums import AuthMethod
    from strongroom.principal import Principal

    core = make_core()
    admin = Principal(user_id=new_user(core).user_id, username="root", is_admin=True)
    alice = core.users.create(f"a{uuid.uuid4().hex[:8]}", "old-password-1")
    checked = asyncio.run(core.user_service.sign_in(alice.username, "old-password-1", "127.0.0.1",
                                                    scheme=AuthMethod.PASSWORD_GRANT))
    remembered = asyncio.run(core.user_service.sign_in(alice.username, "old-password-1", "127.0.0.1",
                                                       scheme=AuthMethod.PASSWORD_GRANT))  # from the cache
    core.users.set_password(admin, alice.id, "new-password-2")
    for principal in (checked, remembered):
        with pytest.raises(Unauthenticated):
            core.sessions.issue(principal)
    fresh = asyncio.run(core.user_service.sign_in(alice.username, "new-password-2", "127.0.0.1",
                                                  scheme=AuthMethod.PASSWORD_GRANT))
    from datetime import UTC, datetime

    from sqlalchemy import update

    before = datetime(2020, 1, 1, tzinfo=UTC)  # long ago: a change now would show whatever its precision
    with core.db.session() as session:
        session.execute(update(type(alice)).where(type(alice).id == alice.id).values(updated_at=before))
    pair = core.sessions.issue(fresh)
    assert core.sessions.resolve(pair.access_token).id == alice.id
    with core.db.session() as session:  # a sign-in is not a change of the user
        assert session.get(type(alice), alice.id).updated_at == before
    assert "password_hash" not in repr(fresh)  # never shown
    assert "argon2" not in repr(core.sessions.resolve(pair.access_token))


def test_a_password_set_while_a_session_is_started_ends_it(make_core):
    """A password set (in another thread) right after the session's start checked the password: it either waits
    for the session and ends it with the others, or comes first and the start is refused; never a session that
    outlives the reset."""
    import asyncio
    import threading
    from typing import Any

    from sqlalchemy import event

    from strongroom.enums import AuthMethod
    from strongroom.principal import Principal

    core = make_core()
    admin = Principal(user_id=new_user(core).user_id, username="root", is_admin=True)
    alice = core.users.create(f"a{uuid.uuid4().hex[:8]}", "old-password-1")
    checked = asyncio.run(core.user_service.sign_in(alice.username, "old-password-1", "127.0.0.1",
                                                    scheme=AuthMethod.PASSWORD_GRANT))
    setter = threading.Thread(target=core.users.set_password, args=(admin, alice.id, "new-password-2"))

    def interleave(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if threading.current_thread() is not setter and "password_hash" in statement and not setter.is_alive() \
                and setter.ident is None:
            setter.start()
            setter.join(1.5)  # done, or waiting for the row the session's start holds

    event.listen(core.db.engine, "after_cursor_execute", interleave)
    try:
        try:
            pair = core.sessions.issue(checked)
        except Unauthenticated:
            pair = None
    finally:
        event.remove(core.db.engine, "after_cursor_execute", interleave)
    setter.join(30)
    assert setter.ident is not None and not setter.is_alive()
    assert pair is None or core.sessions.resolve(pair.access_token) is None
